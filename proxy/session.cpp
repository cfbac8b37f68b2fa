#include "proxy/session.hpp"

#include "adapters/openai.hpp"
#include "proxy/http_out.hpp"
#include "proxy/relay.hpp"
#include "proxy/request_context.hpp"

namespace tollgate::proxy {
namespace {

using clock = std::chrono::steady_clock;
namespace openai = adapters::openai;

constexpr std::size_t max_header_bytes = 32 * 1024;

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

net::awaitable<bool> reply_error(worker_context& worker, beast::tcp_stream& stream, request_context& ctx,
                                 core::error_kind kind, std::string_view message, bool keep_alive,
                                 std::string_view param = {}) {
  auto info = core::describe(kind);
  ctx.status = info.http_status;
  ctx.error = kind;
  std::string response =
      http_out::error_response(info.http_status, message, info.type, info.code, keep_alive, ctx.id, param);
  stream.expires_after(worker.config.client_idle_timeout);
  auto [ec, n] = co_await net::async_write(stream, net::buffer(response), use_nothrow);
  co_return !ec && keep_alive;
}

// admit -> route -> translate -> relay. Returns whether the connection may carry another request.
net::awaitable<bool> handle_request(worker_context& worker, beast::tcp_stream& stream,
                                    const http::request<http::string_body>& request, request_context& ctx,
                                    bool keep_alive) {
  ctx.method = std::string(request.method_string());
  ctx.path = std::string(path_of(request.target()));
  auto endpoint = openai::endpoint_for_path(ctx.path);
  if (!endpoint) {
    co_return co_await reply_error(worker, stream, ctx, core::error_kind::not_found,
                                   "Unknown request URL: " + std::string(request.method_string()) + " " + ctx.path +
                                       ". tollgate serves POST /v1/chat/completions, /v1/completions and "
                                       "/v1/embeddings.",
                                   keep_alive);
  }
  ctx.route = static_cast<std::uint8_t>(*endpoint);
  if (request.method() != http::verb::post) {
    co_return co_await reply_error(worker, stream, ctx, core::error_kind::method_not_allowed,
                                   "Method " + std::string(request.method_string()) + " is not allowed on " +
                                       ctx.path + "; use POST.",
                                   keep_alive);
  }

  auto front = openai::parse_front_request(*endpoint, request.body());
  if (!front) {
    co_return co_await reply_error(worker, stream, ctx, core::error_kind::bad_request, front.error().message,
                                   keep_alive, front.error().param);
  }
  ctx.model = std::move(front->model);
  ctx.model_id = worker.stats.model_id(ctx.model);
  ctx.stream = front->stream;
  ctx.prompt_tokens_estimate = front->prompt_tokens_estimate;

  std::string_view upstream_body = front->rewritten_body.empty() ? std::string_view(request.body())
                                                                 : std::string_view(front->rewritten_body);
  relay_request relay_args{request, upstream_body, keep_alive, front->stream && !front->client_wants_usage};
  co_return co_await relay(worker, stream, relay_args, ctx);
}

// The account phase: runs for every request, whatever its outcome.
void account(worker_context& worker, request_context& ctx) {
  ctx.finished = clock::now();
  if (ctx.stream && ctx.upstream_status / 100 == 2 && !ctx.usage) {
    // The stream ended (upstream failure, client hang-up) before the upstream reported usage:
    // what was delivered is still charged, marked as an estimate.
    ctx.usage = adapters::openai::usage{ctx.prompt_tokens_estimate, ctx.output_chunks, 0};
    ctx.usage_estimated = true;
  }
  auto& stats = worker.stats;
  stats.count_request(ctx.route, ctx.model_id, ctx.status);
  stats.request_duration.observe(std::chrono::duration<double>(ctx.finished - ctx.started).count());
  if (ctx.usage)
    stats.count_tokens(ctx.model_id, ctx.usage->prompt_tokens, ctx.usage->completion_tokens,
                       ctx.usage->cached_prompt_tokens);
  worker.log.record(ctx);
  if (worker.log.wants_flush()) worker.log.flush();
}

struct session_registration {
  session_registration(worker_context& worker, session_set& sessions, session_handle& handle)
      : worker_(worker), sessions_(sessions), handle_(handle) {
    sessions_.insert(&handle_);
    worker_.open_sessions.fetch_add(1, std::memory_order_relaxed);
  }
  ~session_registration() {
    sessions_.erase(&handle_);
    worker_.open_sessions.fetch_sub(1, std::memory_order_relaxed);
  }
  session_registration(const session_registration&) = delete;
  session_registration& operator=(const session_registration&) = delete;

  worker_context& worker_;
  session_set& sessions_;
  session_handle& handle_;
};

struct busy_scope {
  busy_scope(worker_context& worker, session_handle& handle) : worker_(worker), handle_(handle) {
    handle_.busy = true;
    worker_.in_flight.fetch_add(1, std::memory_order_relaxed);
    ++worker_.stats.active_requests;
  }
  ~busy_scope() {
    handle_.busy = false;
    worker_.in_flight.fetch_sub(1, std::memory_order_relaxed);
    --worker_.stats.active_requests;
  }
  busy_scope(const busy_scope&) = delete;
  busy_scope& operator=(const busy_scope&) = delete;

  worker_context& worker_;
  session_handle& handle_;
};

}  // namespace

net::awaitable<void> serve_client(worker_context& worker, session_set& sessions, tcp::socket socket) {
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  beast::tcp_stream stream(std::move(socket));
  session_handle handle{&stream, false};
  session_registration registration(worker, sessions, handle);
  beast::flat_buffer buffer;

  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(max_header_bytes);
    parser.body_limit(worker.config.max_body_bytes);
    stream.expires_after(worker.config.client_idle_timeout);
    auto [header_ec, header_bytes] = co_await http::async_read_header(stream, buffer, parser, use_nothrow);
    if (header_ec == http::error::end_of_stream || header_ec == net::error::eof ||
        header_ec == beast::error::timeout || header_ec == net::error::operation_aborted ||
        header_ec == net::error::connection_reset || header_ec == net::error::bad_descriptor)
      break;

    busy_scope busy(worker, handle);
    request_context ctx;
    ctx.started = clock::now();
    ctx.id = worker.next_request_id();
    bool keep_alive = false;
    bool clean = false;
    if (header_ec == http::error::body_limit) {
      clean = co_await reply_error(worker, stream, ctx, core::error_kind::payload_too_large,
                                   "Request body exceeds TOLLGATE_MAX_BODY_BYTES (" +
                                       std::to_string(worker.config.max_body_bytes) + " bytes).",
                                   false);
    } else if (header_ec) {
      clean = co_await reply_error(worker, stream, ctx, core::error_kind::bad_request,
                                   "Malformed HTTP request: " + header_ec.message() + ".", false);
    } else {
      ctx.method = std::string(parser.get().method_string());
      ctx.path = std::string(path_of(parser.get().target()));
      error_code body_ec;
      if (!parser.is_done()) {
        // curl and some SDKs wait for this before sending a body over 1 KiB.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          static constexpr std::string_view proceed = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await net::async_write(stream, net::buffer(proceed), use_nothrow);
        }
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_nothrow);
        body_ec = ec;
      }
      if (body_ec == http::error::body_limit) {
        clean = co_await reply_error(worker, stream, ctx, core::error_kind::payload_too_large,
                                     "Request body exceeds TOLLGATE_MAX_BODY_BYTES (" +
                                         std::to_string(worker.config.max_body_bytes) + " bytes).",
                                     false);
      } else if (body_ec) {
        ctx.error = core::error_kind::client_disconnected;
        ctx.status = core::describe(core::error_kind::client_disconnected).http_status;
      } else {
        // Draining: answer what was already sent, then close rather than wait for more.
        keep_alive = parser.get().keep_alive() && !worker.draining.load(std::memory_order_relaxed);
        clean = co_await handle_request(worker, stream, parser.get(), ctx, keep_alive);
      }
    }
    account(worker, ctx);
    if (!clean || !keep_alive) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
}

}  // namespace tollgate::proxy
