#include "proxy/relay.hpp"

#include "adapters/openai.hpp"
#include "core/json_scan.hpp"
#include "core/sse_parser.hpp"
#include "proxy/http_out.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <memory>

namespace tollgate::proxy {
namespace {

using clock = std::chrono::steady_clock;

// Upstream response bodies are handed over piece by piece: the parser appends decoded bytes
// (chunked framing removed) and the relay drains them after every read. Unlike string_body it
// never reserves Content-Length up front, so no response is ever held whole.
struct drained_body {
  using value_type = std::string;

  class reader {
   public:
    template <bool is_request, class Fields>
    reader(http::header<is_request, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>&, error_code& ec) { ec = {}; }
    template <class ConstBuffers>
    std::size_t put(const ConstBuffers& buffers, error_code& ec) {
      std::size_t total = 0;
      for (auto piece : beast::buffers_range_ref(buffers)) {
        body_.append(static_cast<const char*>(piece.data()), piece.size());
        total += piece.size();
      }
      ec = {};
      return total;
    }
    void finish(error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};
using upstream_parser = http::response_parser<drained_body>;

// Reads until some body bytes are decoded, the message is complete, or an error occurs.
// http::async_read_some cannot be used for this: it keeps reading while the parser reports
// need_more, which it does whenever a read ends just after a chunk's data and before the next
// chunk-size line; every streamed event would then wait for the one after it.
net::awaitable<error_code> read_body_piece(upstream_connection& connection, upstream_parser& parser) {
  auto& buffer = connection.read_buffer();
  const auto& body = parser.get().body();
  for (;;) {
    if (buffer.size() > 0) {
      error_code ec;
      std::size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec && ec != http::error::need_more) co_return ec;
      if (parser.is_done() || !body.empty()) co_return error_code{};
    } else if (parser.is_done()) {
      co_return error_code{};
    }
    std::size_t room = beast::read_size(buffer, 64 * 1024);
    if (room == 0) co_return http::make_error_code(http::error::buffer_overflow);
    auto [ec, n] = co_await connection.async_read_some(buffer.prepare(room), use_nothrow);
    buffer.commit(n);
    if (ec == net::error::eof) {
      // Legitimate only for a body delimited by the end of the connection.
      error_code eof_ec;
      if (parser.got_some()) parser.put_eof(eof_ec);
      else eof_ec = http::error::partial_message;
      co_return eof_ec;
    }
    if (ec) co_return ec;
  }
}

// Notices a client hanging up while tollgate waits on the upstream (a long generation, a
// stalled stream) and cancels the upstream request instead of letting it run on unpaid-for.
class disconnect_watch {
 public:
  explicit disconnect_watch(beast::tcp_stream& client) : state_(std::make_shared<state>()) {
    state_->socket = &client.socket();
    arm(state_);
  }
  ~disconnect_watch() {
    state_->active = false;
    error_code ignored;
    state_->socket->cancel(ignored);
  }
  disconnect_watch(const disconnect_watch&) = delete;
  disconnect_watch& operator=(const disconnect_watch&) = delete;

  bool client_gone() const noexcept { return state_->gone; }
  void guard(upstream_connection* upstream) noexcept { state_->upstream = upstream; }

 private:
  struct state {
    bool active = true;
    bool gone = false;
    tcp::socket* socket = nullptr;
    upstream_connection* upstream = nullptr;
  };

  static void arm(const std::shared_ptr<state>& s) {
    s->socket->async_wait(tcp::socket::wait_read, [s](error_code ec) {
      if (!s->active || ec) return;
      char probe;
      ssize_t n = ::recv(s->socket->native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) return;  // a pipelined request: the client is still there
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        arm(s);
        return;
      }
      s->gone = true;
      if (s->upstream) s->upstream->tcp().cancel();
    });
  }

  std::shared_ptr<state> state_;
};

bool is_http_protocol_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category();
}

core::error_kind classify_before_response(const error_code& ec) {
  if (ec == beast::error::timeout) return core::error_kind::upstream_timeout;
  if (is_http_protocol_error(ec)) return core::error_kind::upstream_protocol;
  return core::error_kind::upstream_unreachable;
}

core::error_kind classify_mid_body(const error_code& ec) {
  if (ec == beast::error::timeout) return core::error_kind::upstream_stream_idle;
  if (ec == http::error::partial_message || ec == net::error::eof || ec == ssl::error::stream_truncated)
    return core::error_kind::upstream_stream_truncated;
  if (is_http_protocol_error(ec)) return core::error_kind::upstream_protocol;
  return core::error_kind::upstream_stream_reset;
}

std::string describe_failure(const worker_context& worker, core::error_kind kind, const error_code& cause,
                             std::uint64_t events) {
  std::string upstream = worker.config.upstream.to_string();
  switch (kind) {
    case core::error_kind::upstream_timeout:
      return "The upstream " + upstream + " did not answer within " +
             std::to_string(worker.config.upstream_timeout.count()) + " ms.";
    case core::error_kind::upstream_tls:
      return "TLS with the upstream " + upstream + " failed: " + cause.message() + ".";
    case core::error_kind::upstream_protocol:
      return "The upstream " + upstream + " sent a malformed HTTP response: " + cause.message() + ".";
    case core::error_kind::upstream_stream_idle:
      return "The upstream sent nothing for " + std::to_string(worker.config.stream_idle_timeout.count()) +
             " ms after " + std::to_string(events) + " events; the response is incomplete.";
    case core::error_kind::upstream_stream_truncated:
      return "The upstream closed the stream after " + std::to_string(events) +
             " events, before it was complete; the response is incomplete.";
    case core::error_kind::upstream_stream_reset:
      return "The upstream connection broke after " + std::to_string(events) + " events (" + cause.message() +
             "); the response is incomplete.";
    default:
      return "Could not reach the upstream " + upstream + ": " + cause.message() + ".";
  }
}

bool is_hop_by_hop(http::field name) {
  switch (name) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::proxy_authenticate:
    case http::field::proxy_authorization:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
    case http::field::content_length:
      return true;
    default:
      return false;
  }
}

void copy_end_to_end_headers(std::string& out, const http::fields& fields) {
  for (const auto& f : fields) {
    if (is_hop_by_hop(f.name())) continue;
    http_out::add_header(out, f.name_string(), f.value());
  }
}

std::string upstream_request_head(const worker_context& worker, const relay_request& request,
                                  const request_context& ctx) {
  const auto& config = worker.config;
  std::string head;
  head.reserve(512);
  head += "POST ";
  head += config.upstream.base_path;
  head += adapters::openai::path_below_root(static_cast<adapters::openai::endpoint>(ctx.route));
  head += " HTTP/1.1\r\n";
  head += worker.upstream_fixed_headers;
  bool own_key = !config.upstream_api_key.empty();
  for (const auto& f : request.client_request) {
    switch (f.name()) {
      case http::field::host:
      case http::field::content_type:
      case http::field::expect:
      // The relay reads bodies to meter them: they must arrive uncompressed.
      case http::field::accept_encoding:
        continue;
      case http::field::authorization:
        if (own_key) continue;
        break;
      default:
        if (is_hop_by_hop(f.name())) continue;
        if (f.name() == http::field::unknown && f.name_string().size() > 11 &&
            beast::iequals(f.name_string().substr(0, 11), "x-tollgate-"))
          continue;
    }
    http_out::add_header(head, f.name_string(), f.value());
  }
  head += "Content-Type: application/json\r\nContent-Length: ";
  head += std::to_string(request.upstream_body.size());
  head += "\r\n\r\n";
  return head;
}

template <class Buffers>
net::awaitable<bool> write_to_client(worker_context& worker, beast::tcp_stream& client, const Buffers& buffers) {
  client.expires_after(worker.config.client_idle_timeout);
  auto [ec, n] = co_await net::async_write(client, buffers, use_nothrow);
  co_return !ec;
}

bool note_client_gone(worker_context& worker, request_context& ctx) {
  ctx.error = core::error_kind::client_disconnected;
  ctx.status = core::describe(core::error_kind::client_disconnected).http_status;
  ++worker.stats.client_disconnects;
  return false;
}

net::awaitable<bool> fail_before_response(worker_context& worker, beast::tcp_stream& client,
                                          const relay_request& request, request_context& ctx, core::error_kind kind,
                                          const error_code& cause) {
  auto info = core::describe(kind);
  ctx.error = kind;
  ctx.status = info.http_status;
  worker.stats.count_upstream_error(kind);
  std::string response = http_out::error_response(info.http_status, describe_failure(worker, kind, cause, 0), info.type,
                                                  info.code, request.keep_alive, ctx.id);
  bool written = co_await write_to_client(worker, client, net::buffer(response));
  co_return written && request.keep_alive;
}

// The event's raw bytes with its payload replaced, so its framing (CRLF or LF, comments,
// other fields) survives a rewrite; a payload spread over several data lines is re-framed.
void append_with_new_data(std::string& out, const core::sse_event& event, std::string_view new_data) {
  std::size_t at = event.data.find('\n') == std::string_view::npos ? event.raw.find(event.data) : std::string_view::npos;
  if (at == std::string_view::npos) {
    out += "data: ";
    out += new_data;
    out += "\n\n";
    return;
  }
  out += event.raw.substr(0, at);
  out += new_data;
  out += event.raw.substr(at + event.data.size());
}

struct stream_gauge {
  explicit stream_gauge(worker_stats& stats) : stats_(stats) { ++stats_.active_streams; }
  ~stream_gauge() { --stats_.active_streams; }
  stream_gauge(const stream_gauge&) = delete;
  stream_gauge& operator=(const stream_gauge&) = delete;
  worker_stats& stats_;
};

// A plain (non-SSE) response: passed through as it arrives, its usage captured on the way.
net::awaitable<bool> relay_plain(worker_context& worker, beast::tcp_stream& client, const relay_request& request,
                                 request_context& ctx, upstream_connection& connection, upstream_parser& parser,
                                 disconnect_watch& watch, bool& upstream_reusable) {
  auto& response = parser.get();
  std::string head;
  http_out::begin_head(head, ctx.upstream_status, request.keep_alive, ctx.id);
  copy_end_to_end_headers(head, response.base());
  auto length = parser.content_length();
  bool chunked = !length;
  if (length) http_out::end_head_with_length(head, static_cast<std::size_t>(*length));
  else http_out::end_head_chunked(head);

  bool meter = ctx.upstream_status / 100 == 2 &&
               response[http::field::content_type].find("json") != std::string_view::npos;
  core::top_level_member_capture usage_capture("usage");
  bool head_sent = false;
  error_code upstream_ec;
  parser.eager(true);  // one put() decodes everything buffered, not one chunk per call
  auto& body = response.body();
  for (;;) {
    bool done = parser.is_done();
    if (!done) {
      if (watch.client_gone()) co_return note_client_gone(worker, ctx);
      connection.tcp().expires_after(worker.config.stream_idle_timeout);
      upstream_ec = co_await read_body_piece(connection, parser);
      if (watch.client_gone()) co_return note_client_gone(worker, ctx);
      done = !upstream_ec && parser.is_done();
    }
    if (upstream_ec && !head_sent && body.empty()) {
      // Nothing reached the client yet: it can still get a proper error response.
      co_return co_await fail_before_response(worker, client, request, ctx, classify_before_response(upstream_ec),
                                              upstream_ec);
    }
    if (meter) usage_capture.feed(body);
    char size_line[24];
    std::array<net::const_buffer, 5> out;
    std::size_t parts = 0;
    if (!head_sent) out[parts++] = net::buffer(head);
    if (!body.empty()) {
      if (chunked) out[parts++] = net::buffer(http_out::chunk_header(size_line, body.size()));
      out[parts++] = net::buffer(body);
      if (chunked) out[parts++] = net::buffer(http_out::chunk_trailer);
    }
    if (done && chunked) out[parts++] = net::buffer(http_out::last_chunk);
    if (parts > 0) {
      if (!co_await write_to_client(worker, client, std::span(out.data(), parts))) co_return note_client_gone(worker, ctx);
      head_sent = true;
      ctx.response_bytes += body.size();
    }
    body.clear();
    if (upstream_ec) {
      // The client holds a partial body; closing the connection is the only honest signal
      // left (a short Content-Length body, or a chunked body without its last chunk).
      auto kind = classify_mid_body(upstream_ec);
      ctx.error = kind;
      worker.stats.count_upstream_error(kind);
      co_return false;
    }
    if (done) break;
  }
  if (meter && usage_capture.complete()) ctx.usage = adapters::openai::parse_usage(usage_capture.value());
  upstream_reusable = response.keep_alive();
  co_return request.keep_alive;
}

// A server-sent event stream: each upstream read is framed into events, inspected for usage,
// and written to the client before the next read.
net::awaitable<bool> relay_events(worker_context& worker, beast::tcp_stream& client, const relay_request& request,
                                  request_context& ctx, upstream_connection& connection, upstream_parser& parser,
                                  disconnect_watch& watch, bool& upstream_reusable) {
  ctx.stream = true;
  stream_gauge gauge(worker.stats);
  auto& response = parser.get();
  std::string head;
  http_out::begin_head(head, ctx.upstream_status, request.keep_alive, ctx.id);
  copy_end_to_end_headers(head, response.base());
  http_out::end_head_chunked(head);
  // The header goes out at once: the client sees the stream open before the first token.
  if (!co_await write_to_client(worker, client, net::buffer(head))) co_return note_client_gone(worker, ctx);

  core::sse_parser events(worker.config.max_sse_event_bytes);
  adapters::openai::stream_chunk_outcome outcome;
  std::string out;
  bool saw_done = false;
  error_code upstream_ec;
  parser.eager(true);
  auto& body = response.body();
  auto on_event = [&](const core::sse_event& event) {
    if (event.has_data && event.event.empty() && !event.is_done()) {
      ++ctx.events_relayed;
      adapters::openai::inspect_stream_chunk(event.data, request.hide_usage, outcome);
      // Only a chunk that carries usage updates it: a later chunk without usage never zeroes it.
      if (outcome.found_usage) ctx.usage = outcome.found_usage;
      if (outcome.delivers_output) ++ctx.output_chunks;
      switch (outcome.what) {
        case adapters::openai::stream_chunk_outcome::action::forward:
          out += event.raw;
          break;
        case adapters::openai::stream_chunk_outcome::action::rewrite:
          append_with_new_data(out, event, outcome.rewritten_data);
          break;
        case adapters::openai::stream_chunk_outcome::action::drop:
          break;
      }
      return;
    }
    if (event.is_done()) saw_done = true;
    out += event.raw;
  };

  while (!parser.is_done()) {
    if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    connection.tcp().expires_after(worker.config.stream_idle_timeout);
    error_code ec = co_await read_body_piece(connection, parser);
    if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    if (!body.empty()) {
      auto oversized_before = events.oversized_events();
      events.feed(body, on_event);
      worker.stats.sse_oversized_events += events.oversized_events() - oversized_before;
      body.clear();
    }
    if (!out.empty()) {
      char size_line[24];
      std::array<net::const_buffer, 3> chunk{net::buffer(http_out::chunk_header(size_line, out.size())),
                                             net::buffer(out), net::buffer(http_out::chunk_trailer)};
      if (!co_await write_to_client(worker, client, chunk)) co_return note_client_gone(worker, ctx);
      ctx.response_bytes += out.size();
      out.clear();
    }
    if (ec) {
      upstream_ec = ec;
      break;
    }
  }
  // A last block whose terminating CR arrived as the final byte is complete: hand it on.
  events.finish(on_event);
  ctx.stream_completed = saw_done;

  if (upstream_ec && !saw_done) {
    // Never a silent truncation: a final error event (which the OpenAI SDKs raise as an
    // APIError) and [DONE], then the response ends properly.
    auto kind = classify_mid_body(upstream_ec);
    auto info = core::describe(kind);
    ctx.error = kind;
    worker.stats.count_upstream_error(kind);
    ++worker.stats.stream_interruptions;
    out += "data: ";
    out += adapters::openai::error_body(describe_failure(worker, kind, upstream_ec, ctx.events_relayed), info.type,
                                        info.code);
    out += "\n\ndata: [DONE]\n\n";
  }
  char size_line[24];
  std::array<net::const_buffer, 4> tail{net::buffer(http_out::chunk_header(size_line, out.size())), net::buffer(out),
                                        net::buffer(http_out::chunk_trailer), net::buffer(http_out::last_chunk)};
  std::span<const net::const_buffer> to_send(tail);
  if (out.empty()) to_send = to_send.subspan(3);
  if (!co_await write_to_client(worker, client, to_send)) co_return note_client_gone(worker, ctx);
  ctx.response_bytes += out.size();
  upstream_reusable = !upstream_ec && response.keep_alive();
  co_return request.keep_alive;
}

}  // namespace

net::awaitable<bool> relay(worker_context& worker, beast::tcp_stream& client, const relay_request& request,
                           request_context& ctx) {
  disconnect_watch watch(client);
  std::string head = upstream_request_head(worker, request, ctx);
  std::unique_ptr<upstream_connection> connection;
  std::optional<upstream_parser> parser;

  for (int attempt = 0;; ++attempt) {
    auto lease = co_await worker.pool.acquire(worker.target);
    if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    if (!lease) {
      co_return co_await fail_before_response(worker, client, request, ctx, lease.error().kind, lease.error().cause);
    }
    bool reused = lease->reused;
    ++(reused ? worker.stats.upstream_connections_reused : worker.stats.upstream_connections_opened);
    connection = std::move(lease->connection);
    watch.guard(connection.get());

    connection->tcp().expires_after(worker.config.upstream_timeout);
    ctx.upstream_sent = clock::now();
    std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(request.upstream_body)};
    auto [write_ec, written] = co_await net::async_write(*connection, out, use_nothrow);
    error_code ec = write_ec;
    if (!ec) {
      parser.emplace();
      parser->body_limit(boost::none);  // bodies are drained as they arrive, never held whole
      parser->header_limit(64 * 1024);
      auto [read_ec, n] = co_await http::async_read_header(*connection, connection->read_buffer(), *parser, use_nothrow);
      ec = read_ec;
    }
    if (!ec) break;
    watch.guard(nullptr);
    if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    // A pooled connection the server closed while idle fails exactly like this. The server
    // never began to answer, so one attempt on a fresh connection is safe.
    if (reused && attempt == 0 && ec != beast::error::timeout && !is_http_protocol_error(ec)) continue;
    co_return co_await fail_before_response(worker, client, request, ctx, classify_before_response(ec), ec);
  }

  ctx.upstream_first_byte = clock::now();
  worker.stats.upstream_ttfb.observe(std::chrono::duration<double>(ctx.upstream_first_byte - ctx.upstream_sent).count());
  ctx.upstream_status = parser->get().result_int();
  ctx.status = ctx.upstream_status;
  if (ctx.upstream_status == 429 || ctx.upstream_status >= 500) {
    ctx.error = core::error_kind::upstream_status;
    worker.stats.count_upstream_error(core::error_kind::upstream_status);
  }

  bool event_stream = ctx.upstream_status / 100 == 2 &&
                      parser->get()[http::field::content_type].starts_with("text/event-stream");
  bool upstream_reusable = false;
  bool client_clean =
      event_stream
          ? co_await relay_events(worker, client, request, ctx, *connection, *parser, watch, upstream_reusable)
          : co_await relay_plain(worker, client, request, ctx, *connection, *parser, watch, upstream_reusable);
  watch.guard(nullptr);
  if (upstream_reusable) worker.pool.release(worker.target, std::move(connection));
  co_return client_clean;
}

}  // namespace tollgate::proxy
