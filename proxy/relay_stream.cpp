#include "proxy/relay_internal.hpp"

#include "adapters/anthropic.hpp"
#include "adapters/openai.hpp"
#include "core/json_string.hpp"
#include "core/ndjson_parser.hpp"
#include "core/sse_parser.hpp"
#include "proxy/http_out.hpp"

#include <array>
#include <span>

namespace tollgate::proxy::relay_detail {
namespace {

namespace openai = adapters::openai;

struct stream_gauge {
  explicit stream_gauge(worker_stats& stats) : stats_(stats) { ++stats_.active_streams; }
  ~stream_gauge() { --stats_.active_streams; }
  stream_gauge(const stream_gauge&) = delete;
  stream_gauge& operator=(const stream_gauge&) = delete;
  worker_stats& stats_;
};

// The event's raw bytes without part of its payload, so its framing (CRLF or LF, comments,
// other fields) survives; a payload spread over several data lines is re-framed.
void append_without(std::string& out, const core::sse_event& event, std::size_t erase_begin, std::size_t erase_end) {
  if (event.data.find('\n') != std::string_view::npos) {
    out += "data: ";
    out += event.data.substr(0, erase_begin);
    out += event.data.substr(erase_end);
    out += "\n\n";
    return;
  }
  // A single data line's payload is a view into the event's raw bytes (see sse_event).
  const auto at = static_cast<std::size_t>(event.data.data() - event.raw.data());
  out.append(event.raw.data(), at + erase_begin);
  out += event.raw.substr(at + erase_end);
}

// What each upstream event becomes for the client, per relay mode, and how the stream must
// end when it does not end by itself.
class event_handler {
 public:
  event_handler(const relay_request& request, request_context& ctx) : request_(request), ctx_(ctx) {
    if (request.mode == relay_mode::translated) translator_ = request.adapter->make_stream_translator(*request.options);
  }

  void on_sse(const core::sse_event& event, std::string& out) {
    switch (request_.mode) {
      case relay_mode::openai_passthrough:
        on_openai(event, out);
        return;
      case relay_mode::anthropic_passthrough:
        out += event.raw;
        if (!event.has_data) return;
        adapters::anthropic::accumulate_native_usage(event.event, event.data, native_usage_);
        if (event.event == "content_block_delta") count_event(true);
        if (event.event == "message_stop") complete_ = true;
        return;
      case relay_mode::translated:
        if (!event.has_data) return;
        ++ctx_.events_relayed;
        translator_->on_event(event.event, event.data, out);
        return;
    }
  }

  void on_line(std::string_view line, std::string& out) {
    ++ctx_.events_relayed;
    translator_->on_event({}, line, out);
  }

  bool complete() const {
    if (translator_) return translator_->complete() && !translator_->failed();
    return complete_;
  }

  // Clean end of the upstream body.
  void finish(std::string& out) {
    if (translator_ && complete()) translator_->on_end(out);
  }

  // The stream cannot end by itself: one error event in the client's own format, then the
  // end marker its SDK expects.
  void fail(std::string& out, core::error_kind kind, const std::string& message) {
    auto info = core::describe(kind);
    if (request_.mode == relay_mode::anthropic_passthrough) {
      out += "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":";
      core::append_json_string(out, message);
      out += "}}\n\n";
      return;
    }
    if (!(translator_ && translator_->failed())) {
      out += "data: ";
      out += openai::error_body(message, info.type, info.code);
      out += "\n\n";
    }
    out += "data: [DONE]\n\n";
  }

  // Whether the client must be told the stream failed: it broke before completing, or (when
  // translated) the provider's stream ended without saying it was complete.
  bool needs_failure(bool upstream_failed) const {
    if (complete()) return false;
    return upstream_failed || request_.mode == relay_mode::translated;
  }

  void settle_usage() {
    if (translator_) {
      if (auto usage = translator_->usage()) ctx_.usage = usage;
      ctx_.output_chunks = translator_->output_chunks();
    } else if (request_.mode == relay_mode::anthropic_passthrough &&
               (native_usage_.prompt_tokens > 0 || native_usage_.completion_tokens > 0)) {
      ctx_.usage = native_usage_;
    }
  }

 private:
  void on_openai(const core::sse_event& event, std::string& out) {
    if (!event.has_data || !event.event.empty() || event.is_done()) {
      if (event.is_done()) complete_ = true;
      out += event.raw;
      return;
    }
    openai::inspect_stream_chunk(event.data, request_.hide_usage, outcome_);
    // Only a chunk that carries usage updates it: a later chunk without usage never zeroes it.
    if (outcome_.found_usage) ctx_.usage = outcome_.found_usage;
    count_event(outcome_.delivers_output);
    switch (outcome_.what) {
      case openai::stream_chunk_outcome::action::forward:
        out += event.raw;
        break;
      case openai::stream_chunk_outcome::action::erase:
        append_without(out, event, outcome_.erase_begin, outcome_.erase_end);
        break;
      case openai::stream_chunk_outcome::action::drop:
        break;
    }
  }

  void count_event(bool delivers_output) {
    ++ctx_.events_relayed;
    if (delivers_output) ++ctx_.output_chunks;
  }

  const relay_request& request_;
  request_context& ctx_;
  std::unique_ptr<adapters::stream_translator> translator_;
  openai::stream_chunk_outcome outcome_;
  openai::usage native_usage_;
  bool complete_ = false;
};

// One write for whatever is ready: the response head if it is still pending, the events as one
// chunk, and the terminating chunk when the stream is over. Written at once when the socket
// takes it all (the usual case: no coroutine frame, no reactor round trip); the pieces stay
// here for write_later otherwise.
class pending_write {
 public:
  write_state start(client_connection& client, const std::string& head, const std::string& out, bool last) {
    count_ = 0;
    if (!head.empty()) parts_[count_++] = net::buffer(head);
    if (!out.empty()) {
      parts_[count_++] = net::buffer(http_out::chunk_header(size_line_, out.size()));
      parts_[count_++] = net::buffer(out);
      parts_[count_++] = net::buffer(http_out::chunk_trailer);
    }
    if (last) parts_[count_++] = net::buffer(http_out::last_chunk);
    sent_ = 0;
    if (count_ == 0) return write_state::done;
    return write_now(client, pieces(), sent_);
  }
  net::awaitable<bool> finish(worker_context& worker, client_connection& client) {
    return write_later(worker, client, pieces(), sent_);
  }
  // Once the write is over, whatever its outcome.
  static void settle(std::string& head, std::string& out, request_context& ctx) {
    ctx.response_bytes += out.size();
    out.clear();
    head.clear();
  }

 private:
  std::span<const net::const_buffer> pieces() const { return {parts_.data(), count_}; }

  char size_line_[24];
  std::array<net::const_buffer, 5> parts_;
  std::size_t count_ = 0;
  std::size_t sent_ = 0;
};

}  // namespace

// Each upstream read is framed into events, turned into what the client expects, and written
// out before the next read.
net::awaitable<bool> relay_events(worker_context& worker, client_connection& client, const relay_request& request,
                                  request_context& ctx, upstream_connection& connection, disconnect_watch& watch,
                                  bool& upstream_reusable) {
  ctx.stream = true;
  stream_gauge gauge(worker.stats);
  auto& response = connection.response();
  // The request head's buffer, reused: that head went out before the response began.
  std::string& head = connection.head_buffer();
  head.clear();
  http_out::begin_head(head, ctx.upstream_status, request.keep_alive, ctx.id);
  if (request.mode == relay_mode::translated) {
    http_out::add_header(head, "Content-Type", "text/event-stream; charset=utf-8");
    http_out::add_header(head, "Cache-Control", "no-cache");
  } else {
    copy_end_to_end_headers(head, response.fields());
  }
  http_out::end_head_chunked(head);
  // When the first events came with the upstream's header they go out with ours, in one write;
  // otherwise the header goes out at once, so the client sees the stream open before the
  // first token.
  pending_write writer;
  if (connection.read_buffer().size() == 0) {
    std::string no_events;
    auto state = writer.start(client, head, no_events, false);
    if (state == write_state::pending)
      state = co_await writer.finish(worker, client) ? write_state::done : write_state::failed;
    pending_write::settle(head, no_events, ctx);
    if (state == write_state::failed) co_return note_client_gone(worker, ctx);
  }

  event_handler handler(request, ctx);
  bool ndjson = request.mode == relay_mode::translated && request.framing == adapters::stream_framing::ndjson;
  core::sse_parser events(worker.config.max_sse_event_bytes);
  core::ndjson_parser lines(worker.config.max_sse_event_bytes);
  std::string out;
  auto on_event = [&](const core::sse_event& event) { handler.on_sse(event, out); };
  auto on_line = [&](std::string_view line) { handler.on_line(line, out); };
  error_code upstream_ec;
  auto& body = response.body();

  while (!response.is_done()) {
    if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    error_code ec;
    if (!take_buffered_body(connection, ec)) {
      connection.expires_after(worker.config.stream_idle_timeout);
      ec = co_await read_body_piece(connection);
      if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    }
    if (!body.empty()) {
      auto oversized_before = events.oversized_events() + lines.oversized_lines();
      if (ndjson) lines.feed(body, on_line);
      else events.feed(body, on_event);
      worker.stats.sse_oversized_events += events.oversized_events() + lines.oversized_lines() - oversized_before;
      body.clear();
    }
    if (ec) {
      upstream_ec = ec;
      break;
    }
    // The last piece goes out below, together with the end of the stream.
    if (!response.is_done() && (!out.empty() || !head.empty())) {
      auto state = writer.start(client, head, out, false);
      if (state == write_state::pending)
      state = co_await writer.finish(worker, client) ? write_state::done : write_state::failed;
      pending_write::settle(head, out, ctx);
      if (state == write_state::failed) co_return note_client_gone(worker, ctx);
    }
  }
  // A last block (or line) completed by the final byte is handed on.
  if (ndjson) lines.finish(on_line);
  else events.finish(on_event);

  ctx.stream_completed = handler.complete();
  if (handler.needs_failure(static_cast<bool>(upstream_ec))) {
    // Never a silent truncation: the client's SDK gets an error it raises, then a clean end.
    auto kind = upstream_ec ? classify_mid_body(upstream_ec) : core::error_kind::upstream_stream_truncated;
    ctx.error = kind;
    worker.stats.count_upstream_error(kind);
    ++worker.stats.stream_interruptions;
    handler.fail(out, kind, describe_failure(request, kind, upstream_ec, ctx.events_relayed));
  } else {
    handler.finish(out);
  }
  handler.settle_usage();
  auto state = writer.start(client, head, out, true);
  if (state == write_state::pending)
    state = co_await writer.finish(worker, client) ? write_state::done : write_state::failed;
  pending_write::settle(head, out, ctx);
  if (state == write_state::failed) co_return note_client_gone(worker, ctx);
  upstream_reusable = !upstream_ec && response.keep_alive();
  co_return request.keep_alive;
}

}  // namespace tollgate::proxy::relay_detail
