#include "proxy/relay_internal.hpp"

#include "adapters/anthropic.hpp"
#include "adapters/openai.hpp"
#include "core/json_scan.hpp"
#include "proxy/http_out.hpp"
#include "proxy/http_read.hpp"

#include <array>

namespace tollgate::proxy {
namespace relay_detail {

net::execution_context::id disconnect_sweeper::id;

disconnect_watch::disconnect_watch(client_connection& client, std::chrono::steady_clock::time_point started,
                                   disconnect_sweeper& sweeper)
    : socket_(client.socket()), started_(started) {
  sweeper.enlist(*this);
}

disconnect_watch::~disconnect_watch() {
  if (sweeper_) sweeper_->remove(*this);
  if (armed_) {
    armed_->owner = nullptr;
    error_code ignored;
    socket_.cancel(ignored);
  }
}

void disconnect_watch::arm() {
  armed_ = std::make_shared<armed_state>(armed_state{this});
  wait(armed_);
}

void disconnect_watch::wait(const std::shared_ptr<armed_state>& state) {
  state->owner->socket_.async_wait(tcp::socket::wait_read, [state](error_code ec) {
    auto* watch = state->owner;
    if (!watch || ec) return;
    char probe;
    ssize_t n = ::recv(watch->socket_.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return;  // a pipelined request: the client is still there
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      wait(state);
      return;
    }
    watch->gone_ = true;
    if (watch->upstream_) watch->upstream_->cancel();
  });
}

void disconnect_sweeper::enlist(disconnect_watch& watch) {
  watch.sweeper_ = this;
  watch.prev_ = newest_;
  watch.next_ = nullptr;
  (newest_ ? newest_->next_ : oldest_) = &watch;
  newest_ = &watch;
  enlisted_since_tick_ = true;
  if (!ticking_) start_ticking(watch.socket_.get_executor());
}

void disconnect_sweeper::remove(disconnect_watch& watch) noexcept {
  (watch.prev_ ? watch.prev_->next_ : oldest_) = watch.next_;
  (watch.next_ ? watch.next_->prev_ : newest_) = watch.prev_;
  watch.prev_ = watch.next_ = nullptr;
  watch.sweeper_ = nullptr;
}

void disconnect_sweeper::start_ticking(const net::any_io_executor& executor) {
  if (!timer_) timer_.emplace(executor);
  ticking_ = true;
  timer_->expires_after(disconnect_watch::watch_delay);
  timer_->async_wait([this](error_code ec) {
    if (ec) return;  // shut down: the service may be gone
    tick();
  });
}

void disconnect_sweeper::tick() {
  auto due = std::chrono::steady_clock::now() - disconnect_watch::watch_delay;
  while (oldest_ && oldest_->started_ <= due) {
    auto& watch = *oldest_;
    remove(watch);
    watch.arm();
  }
  // Keep ticking while relays come and go; stop once a whole period saw none.
  ticking_ = false;
  if (oldest_ || enlisted_since_tick_) {
    enlisted_since_tick_ = false;
    ticking_ = true;
    timer_->expires_after(disconnect_watch::watch_delay);
    timer_->async_wait([this](error_code ec) {
      if (ec) return;
      tick();
    });
  }
}

namespace {
// A body piece is ready once some body bytes are decoded or the message is over.
constexpr auto piece_ready = [](upstream_response& response) { return response.is_done() || !response.body().empty(); };
}  // namespace

bool take_buffered_body(upstream_connection& connection, error_code& ec) {
  return parse_buffered(connection.read_buffer(), connection.response(), ec, piece_ready);
}

net::awaitable<error_code> read_body_piece(upstream_connection& connection) {
  return read_until(connection, connection.response(), piece_ready);
}

// Beast reports a peer that closed the connection in its HTTP category too; that is a
// connection failure (retryable on a pooled connection), not a malformed response.
bool is_http_protocol_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
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

std::string describe_failure(const relay_request& request, core::error_kind kind, const error_code& cause,
                             std::uint64_t events) {
  const auto& provider = *request.provider.config;
  std::string upstream = provider.name + " (" + provider.base_url.to_string() + ")";
  switch (kind) {
    case core::error_kind::upstream_timeout:
      return "The upstream " + upstream + " did not answer within " + std::to_string(provider.timeout.count()) + " ms.";
    case core::error_kind::upstream_tls:
      return "TLS with the upstream " + upstream + " failed: " + cause.message() + ".";
    case core::error_kind::upstream_protocol:
      return "The upstream " + upstream + " sent a malformed response: " + cause.message() + ".";
    case core::error_kind::upstream_stream_idle:
      return "The upstream " + upstream + " sent nothing for too long after " + std::to_string(events) +
             " events; the response is incomplete.";
    case core::error_kind::upstream_stream_truncated:
      return "The upstream " + upstream + " ended the stream after " + std::to_string(events) +
             " events, before it was complete; the response is incomplete.";
    case core::error_kind::upstream_stream_reset:
      return "The connection to the upstream " + upstream + " broke after " + std::to_string(events) + " events (" +
             cause.message() + "); the response is incomplete.";
    default:
      return "Could not reach the upstream " + upstream + ": " + cause.message() + ".";
  }
}

bool is_hop_by_hop(core::header_name name) {
  using enum core::header_name;
  switch (name) {
    case connection:
    case keep_alive:
    case proxy_connection:
    case proxy_authenticate:
    case proxy_authorization:
    case te:
    case trailer:
    case transfer_encoding:
    case upgrade:
    case content_length:
      return true;
    default:
      return false;
  }
}

void copy_end_to_end_headers(std::string& out, std::span<const header_field> fields) {
  for (const auto& f : fields) {
    if (is_hop_by_hop(f.name())) continue;
    http_out::add_header(out, f.name_string(), f.value());
  }
}

bool note_client_gone(worker_context& worker, request_context& ctx) {
  ctx.error = core::error_kind::client_disconnected;
  ctx.status = core::describe(core::error_kind::client_disconnected).http_status;
  ++worker.stats.client_disconnects;
  return false;
}

net::awaitable<bool> fail_before_response(worker_context& worker, client_connection& client,
                                          const relay_request& request, request_context& ctx, core::error_kind kind,
                                          const error_code& cause) {
  auto info = core::describe(kind);
  ctx.error = kind;
  ctx.status = info.http_status;
  worker.stats.count_upstream_error(kind);
  std::string response = http_out::error_response(info.http_status, describe_failure(request, kind, cause, 0),
                                                  info.type, info.code, request.keep_alive, ctx.id);
  bool written = co_await write_to_client(worker, client, net::buffer(response));
  co_return written && request.keep_alive;
}

}  // namespace relay_detail

namespace {

using namespace relay_detail;
using clock = std::chrono::steady_clock;

// Only the client's end-to-end headers an upstream of the same API understands go through:
// a translated request carries none of them.
bool forwards_client_header(const relay_request& request, const header_field& f) {
  if (request.mode == relay_mode::translated) return false;
  // With its own key the provider gets that; a virtual key is tollgate's, never the provider's.
  bool own_key = !request.provider.config->api_key.empty() || request.withhold_client_key;
  switch (f.name()) {
    case core::header_name::host:
    case core::header_name::content_type:
    case core::header_name::expect:
    case core::header_name::accept_encoding:  // the relay reads bodies to meter them: no compression
      return false;
    case core::header_name::authorization:
      return !own_key;
    default:
      break;
  }
  if (is_hop_by_hop(f.name())) return false;
  auto name = f.name_string();
  if (name.size() > 11 && beast::iequals(name.substr(0, 11), "x-tollgate-")) return false;
  if (own_key && beast::iequals(name, "x-api-key")) return false;
  return true;
}

void upstream_request_head(const relay_request& request, std::string& head) {
  head.clear();
  head += "POST ";
  head += request.provider.config->base_url.base_path;
  head += request.upstream_path;
  head += " HTTP/1.1\r\n";
  head += request.provider.fixed_headers;
  for (const auto& f : request.from_client.fields())
    if (forwards_client_header(request, f)) http_out::add_header(head, f.name_string(), f.value());
  for (const auto& [name, value] : request.extra_headers) http_out::add_header(head, name, value);
  if (request.mode == relay_mode::anthropic_passthrough &&
      !request.from_client.head().has("anthropic-version"))
    http_out::add_header(head, "anthropic-version", "2023-06-01");
  head += "Content-Type: application/json\r\nContent-Length: ";
  head += std::to_string(request.upstream_body.size());
  head += "\r\n\r\n";
}

std::optional<adapters::openai::usage> usage_from_member(const relay_request& request, std::string_view usage_json) {
  if (request.mode == relay_mode::anthropic_passthrough) {
    // A non-streamed Anthropic message: its usage member alone, seen as the message it came from.
    adapters::openai::usage usage;
    std::string message = "{\"type\":\"message\",\"usage\":" + std::string(usage_json) + "}";
    adapters::anthropic::accumulate_native_usage("", message, usage);
    if (usage.prompt_tokens == 0 && usage.completion_tokens == 0) return std::nullopt;
    return usage;
  }
  return adapters::openai::parse_usage(usage_json);
}

// A body in the client's own format: passed through as it arrives, its usage captured on the way.
net::awaitable<bool> relay_plain(worker_context& worker, client_connection& client, const relay_request& request,
                                 request_context& ctx, upstream_connection& connection, disconnect_watch& watch,
                                 bool& upstream_reusable) {
  auto& response = connection.response();
  // The request head's buffer, reused: that head went out before the response began.
  std::string& head = connection.head_buffer();
  head.clear();
  http_out::begin_head(head, ctx.upstream_status, request.keep_alive, ctx.id);
  copy_end_to_end_headers(head, response.fields());
  auto length = response.content_length();
  bool chunked = !length;
  if (length) http_out::end_head_with_length(head, static_cast<std::size_t>(*length));
  else http_out::end_head_chunked(head);

  bool meter = ctx.upstream_status / 100 == 2 &&
               response.head().value_of(core::header_name::content_type).find("json") != std::string_view::npos;
  auto& usage_capture = connection.usage_capture();
  usage_capture.reset();
  bool head_sent = false;
  error_code upstream_ec;
  auto& body = response.body();
  for (;;) {
    bool done = response.is_done();
    if (!done) {
      if (watch.client_gone()) co_return note_client_gone(worker, ctx);
      if (!take_buffered_body(connection, upstream_ec)) {
        connection.expires_after(worker.config.stream_idle_timeout);
        upstream_ec = co_await read_body_piece(connection);
        if (watch.client_gone()) co_return note_client_gone(worker, ctx);
      }
      done = !upstream_ec && response.is_done();
    }
    if (upstream_ec && !head_sent && body.empty()) {
      // Nothing reached the client yet: it can still get a proper error response.
      co_return co_await fail_before_response(worker, client, request, ctx, classify_before_response(upstream_ec),
                                              upstream_ec);
    }
    if (meter) usage_capture.feed(body, done);  // a body that came whole is read from its end
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
      std::span pieces(out.data(), parts);
      std::size_t sent = 0;
      auto state = write_now(client, pieces, sent);
      if (state == write_state::pending)
        state = co_await write_later(worker, client, pieces, sent) ? write_state::done : write_state::failed;
      if (state == write_state::failed) co_return note_client_gone(worker, ctx);
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
  if (meter && usage_capture.complete()) ctx.usage = usage_from_member(request, usage_capture.value());
  upstream_reusable = response.keep_alive();
  co_return request.keep_alive;
}

// Translated answers that are not streams (whole responses and errors) must be read whole to
// be translated: bounded, and rejected past the bound rather than buffered without limit.
constexpr std::size_t max_translated_body = 16 * 1024 * 1024;

net::awaitable<bool> relay_translated_whole(worker_context& worker, client_connection& client,
                                            const relay_request& request, request_context& ctx,
                                            upstream_connection& connection, disconnect_watch& watch,
                                            bool& upstream_reusable) {
  auto& response = connection.response();
  std::string whole;
  while (!response.is_done()) {
    error_code ec;
    if (!take_buffered_body(connection, ec)) {
      connection.expires_after(worker.config.stream_idle_timeout);
      ec = co_await read_body_piece(connection);
    }
    if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    whole += response.body();
    response.body().clear();
    if (ec) co_return co_await fail_before_response(worker, client, request, ctx, classify_mid_body(ec), ec);
    if (whole.size() > max_translated_body) {
      co_return co_await fail_before_response(worker, client, request, ctx, core::error_kind::upstream_protocol,
                                              http::make_error_code(http::error::body_limit));
    }
  }
  upstream_reusable = response.keep_alive();

  int status = 200;
  std::string body;
  if (ctx.upstream_status / 100 == 2) {
    auto translated = request.adapter->translate_response(whole, *request.options);
    if (!translated) {
      auto info = core::describe(core::error_kind::upstream_protocol);
      ctx.error = core::error_kind::upstream_protocol;
      worker.stats.count_upstream_error(core::error_kind::upstream_protocol);
      status = info.http_status;
      body = adapters::openai::error_body(translated.error(), info.type, info.code);
    } else {
      body = std::move(translated->body);
      ctx.usage = translated->usage;
    }
  } else {
    auto translated = request.adapter->translate_error(ctx.upstream_status, whole);
    status = translated.status;
    body = std::move(translated.body);
  }
  ctx.status = status;
  std::string out;
  http_out::begin_head(out, status, request.keep_alive, ctx.id);
  http_out::add_header(out, "Content-Type", "application/json");
  // A rate-limited caller needs to know when to come back, whichever provider said so.
  if (auto retry = response.head().value_of(core::header_name::retry_after); !retry.empty()) http_out::add_header(out, "Retry-After", retry);
  http_out::end_head_with_length(out, body.size());
  out += body;
  ctx.response_bytes = body.size();
  if (!co_await write_to_client(worker, client, net::buffer(out))) co_return note_client_gone(worker, ctx);
  co_return request.keep_alive;
}

}  // namespace

net::awaitable<bool> relay(worker_context& worker, client_connection& client, relay_request request,
                           request_context& ctx) {
  disconnect_watch watch(client, ctx.started, worker.disconnect_sweeper);
  const auto& target = request.provider.target;
  std::unique_ptr<upstream_connection> connection;

  for (int attempt = 0;; ++attempt) {
    // An idle pooled connection needs no coroutine (each is a frame to allocate).
    std::optional<boost::system::result<upstream_lease, upstream_failure>> lease;
    if (auto idle = worker.pool.take_idle(target, ctx.started)) lease.emplace(upstream_lease{std::move(idle), true});
    else lease.emplace(co_await worker.pool.acquire(target));
    if (watch.client_gone()) co_return note_client_gone(worker, ctx);
    if (!*lease) {
      co_return co_await fail_before_response(worker, client, request, ctx, (*lease).error().kind,
                                              (*lease).error().cause);
    }
    bool reused = (*lease)->reused;
    ++(reused ? worker.stats.upstream_connections_reused : worker.stats.upstream_connections_opened);
    connection = std::move((*lease)->connection);
    watch.guard(connection.get());

    ctx.upstream_sent = clock::now();
    connection->expires_at(ctx.upstream_sent + request.provider.config->timeout);
    std::string& head = connection->head_buffer();
    upstream_request_head(request, head);
    std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(request.upstream_body)};
    error_code ec;
    std::size_t sent = 0;
    if (!connection->is_tls()) {
      sent = send_now(connection->socket().native_handle(), out, ec);
      if (ec == net::error::would_block) ec = {};
    }
    if (!ec && sent < net::buffer_size(out)) ec = co_await write_rest(*connection, out, sent);
    if (!ec) {
      // Bodies are drained as they arrive, never held whole; only the head has a limit.
      connection->response().reset(client.arena(), 64 * 1024);
      connection->expect_fresh_data();
      ec = co_await read_until(*connection, connection->response(), head_done);
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
  auto& response = connection->response();
  ctx.upstream_status = response.status();
  ctx.status = ctx.upstream_status;
  if (ctx.upstream_status == 429 || ctx.upstream_status >= 500) {
    ctx.error = core::error_kind::upstream_status;
    worker.stats.count_upstream_error(core::error_kind::upstream_status);
  }

  bool success = ctx.upstream_status / 100 == 2;
  bool stream = request.mode == relay_mode::translated
                    ? success && request.stream
                    : success && response.head().value_of(core::header_name::content_type).starts_with("text/event-stream");
  bool upstream_reusable = false;
  bool client_clean = false;
  if (stream)
    client_clean = co_await relay_events(worker, client, request, ctx, *connection, watch, upstream_reusable);
  else if (request.mode == relay_mode::translated)
    client_clean =
        co_await relay_translated_whole(worker, client, request, ctx, *connection, watch, upstream_reusable);
  else
    client_clean = co_await relay_plain(worker, client, request, ctx, *connection, watch, upstream_reusable);
  watch.guard(nullptr);
  // The request is done: the pool's idle time and the request's duration start and end here.
  ctx.finished = clock::now();
  if (upstream_reusable) worker.pool.release(target, std::move(connection), ctx.finished);
  co_return client_clean;
}

}  // namespace tollgate::proxy
