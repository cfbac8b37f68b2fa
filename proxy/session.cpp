#include "proxy/session.hpp"

#include "adapters/anthropic_native.hpp"
#include "adapters/openai.hpp"
#include "adapters/registry.hpp"
#include "proxy/admission.hpp"
#include "proxy/metering.hpp"
#include "proxy/mock_provider.hpp"
#include "proxy/http_out.hpp"
#include "proxy/relay.hpp"
#include "proxy/request_reader.hpp"
#include "proxy/request_context.hpp"

#include <boost/json.hpp>

namespace tollgate::proxy {
namespace {

using clock = std::chrono::steady_clock;
namespace openai = adapters::openai;

constexpr std::size_t max_header_bytes = 32 * 1024;

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

// Every answer tollgate makes itself ends here: the bytes are built before the call and
// owned by this frame, so the callers below need no frame of their own.
net::awaitable<bool> send_response(worker_context& worker, client_connection& client, std::string response,
                                   bool keep_alive) {
  client.expires_after(worker.config.client_idle_timeout);
  auto [ec, n] = co_await net::async_write(client, net::buffer(response), use_nothrow);
  co_return !ec && keep_alive;
}

net::awaitable<bool> reply_error(worker_context& worker, client_connection& client, request_context& ctx,
                                 core::error_kind kind, std::string_view message, bool keep_alive,
                                 std::string_view param = {}) {
  auto info = core::describe(kind);
  ctx.status = info.http_status;
  ctx.error = kind;
  return send_response(worker, client,
                       http_out::error_response(info.http_status, message, info.type, info.code, keep_alive, ctx.id, param),
                       keep_alive);
}

net::awaitable<bool> write_json(worker_context& worker, client_connection& client, request_context& ctx, int status,
                                std::string_view body, bool keep_alive) {
  ctx.status = status;
  std::string response;
  http_out::begin_head(response, status, keep_alive, ctx.id);
  http_out::add_header(response, "Content-Type", "application/json");
  http_out::end_head_with_length(response, body.size());
  response += body;
  return send_response(worker, client, std::move(response), keep_alive);
}

net::awaitable<bool> refuse(worker_context& worker, client_connection& client, request_context& ctx,
                            const admission_refusal& refusal, bool anthropic_shape, bool keep_alive) {
  ctx.error = refusal.kind;
  ctx.status = core::describe(refusal.kind).http_status;
  return send_response(worker, client, refusal_response(refusal, anthropic_shape, keep_alive, ctx.id), keep_alive);
}

// Anthropic's front API: only to Anthropic providers, bytes relayed both ways.
net::awaitable<bool> handle_native_messages(worker_context& worker, client_connection& client,
                                            const client_request& request, request_context& ctx,
                                            bool keep_alive) {
  namespace anthropic = adapters::anthropic;
  auto reject = [&](core::error_kind kind, const std::string& message) {
    auto info = core::describe(kind);
    ctx.error = kind;
    return write_json(worker, client, ctx, info.http_status,
                      anthropic::native_error_body(anthropic::native_error_type(info.http_status), message), keep_alive);
  };
  if (auto refusal = identify_caller(worker, request, ctx)) co_return co_await refuse(worker, client, ctx, *refusal, true, keep_alive);
  auto native = anthropic::parse_native_request(request.body());
  if (!native) co_return co_await reject(core::error_kind::bad_request, native.error().message);
  ctx.model = native->model;
  ctx.model_id = worker.stats.model_id(ctx.model);
  ctx.stream = native->stream;
  ctx.prompt_tokens_estimate = request.body().size() / 4;
  admission_input input{request.body(), static_cast<std::int64_t>(ctx.prompt_tokens_estimate), true, true};
  auto admission = admit_and_route(worker, ctx, input);
  if (admission.pending) admission.refusal = co_await admit_on_accounting_thread(worker, ctx, *admission.pending);
  if (admission.refusal) co_return co_await refuse(worker, client, ctx, *admission.refusal, true, keep_alive);
  const auto& provider = worker.providers[ctx.provider_index];
  std::string body = ctx.upstream_model == ctx.model ? std::string() : openai::replace_model(request.body(), ctx.upstream_model);
  relay_request relay_args{request, provider, "/messages", body.empty() ? std::string_view(request.body()) : body,
                           {}, keep_alive, native->stream, relay_mode::anthropic_passthrough};
  relay_args.withhold_client_key = !ctx.caller.key_fingerprint.empty();
  co_return co_await relay(worker, client, relay_args, ctx);
}

// Each route's work is its own coroutine, so a request pays only for the frame of the route it
// takes: a coroutine's frame holds every local of every branch, and Asio recycles frames only
// up to about 1 KiB. Steps that only prepare the next one's arguments are plain functions
// returning its awaitable: every frame is an allocation and a resumption per request.

// An OpenAI-compatible provider gets the client's bytes, the model renamed when an alias or a
// fallback chose another. A body that differs is kept in ctx, which outlives the relay.
net::awaitable<bool> relay_passthrough(worker_context& worker, client_connection& client, const client_request& request,
                                       request_context& ctx, openai::front_request& front, openai::endpoint endpoint,
                                       bool keep_alive) {
  const auto& provider = worker.providers[ctx.provider_index];
  std::string_view body = request.body();
  if (!front.rewritten_body.empty()) body = ctx.upstream_body = std::move(front.rewritten_body);
  if (ctx.upstream_model != ctx.model) body = ctx.upstream_body = openai::replace_model(body, ctx.upstream_model);
  relay_request relay_args{request, provider, openai::path_below_root(endpoint), body,
                           {}, keep_alive, front.stream, relay_mode::openai_passthrough,
                           front.stream && !front.client_wants_usage};
  relay_args.withhold_client_key = !ctx.caller.key_fingerprint.empty();
  return relay(worker, client, relay_args, ctx);
}

// Mock and translating providers work on the parsed request.
net::awaitable<bool> serve_parsed(worker_context& worker, client_connection& client, const client_request& request,
                                  request_context& ctx, openai::front_request front, openai::endpoint endpoint,
                                  bool keep_alive) {
  const auto& provider = worker.providers[ctx.provider_index];
  const auto type = provider.config->type;
  boost::system::error_code ec;
  auto parsed = boost::json::parse(request.body(), ec);  // validated already, so this parses
  if (ec || !parsed.is_object())
    co_return co_await reply_error(worker, client, ctx, core::error_kind::bad_request, "Invalid JSON body.", keep_alive);
  const auto& body = parsed.get_object();

  if (type == core::provider_type::mock) {
    if (endpoint == openai::endpoint::completions) {
      co_return co_await reply_error(worker, client, ctx, core::error_kind::bad_request,
                                     "The mock provider serves /v1/chat/completions and /v1/embeddings.", keep_alive);
    }
    mock_request mock_args{endpoint, body, ctx.upstream_model, front.stream, front.client_wants_usage,
                           provider.config->mock_token_latency, keep_alive};
    co_return co_await serve_mock(worker, client, mock_args, ctx);
  }

  if (endpoint != openai::endpoint::chat_completions) {
    co_return co_await reply_error(worker, client, ctx, core::error_kind::bad_request,
                                   std::string(openai::route_label(endpoint)) + " is not supported for model `" +
                                       ctx.model + "`: its provider \"" + provider.config->name + "\" is of type " +
                                       std::string(core::provider_type_name(type)) + ".",
                                   keep_alive);
  }
  const auto* adapter = adapters::translating_adapter(type);
  adapters::translation_options options{ctx.upstream_model, worker.config.default_max_tokens, front.stream,
                                        front.client_wants_usage};
  auto call = adapter->translate_request(body, options);
  if (!call) {
    co_return co_await reply_error(worker, client, ctx, core::error_kind::bad_request, call.error().message,
                                   keep_alive, call.error().param);
  }
  relay_request relay_args{request,      provider,     call->path, call->body, call->headers, keep_alive,
                           front.stream, relay_mode::translated,   false,      adapter,      &options,
                           call->framing};
  relay_args.withhold_client_key = !ctx.caller.key_fingerprint.empty();
  co_return co_await relay(worker, client, relay_args, ctx);
}

// What handle_request does next, decided without suspending. Routing, caller identity,
// parsing and admission are plain functions, so their locals and error texts live in no
// coroutine frame: Asio recycles frames only up to about 1 KiB, and a bigger one cost a
// memalign and a free on every request (and evicted a recyclable frame).
struct request_plan {
  enum class step : std::uint8_t { reply_error, refuse, list_models, native_messages, admit_remotely, relay };
  step next = step::reply_error;
  core::error_kind error = core::error_kind::bad_request;  // reply_error
  std::string message;                                     // reply_error
  std::string param;                                       // reply_error
  admission_step admission;                                // refuse (its refusal), admit_remotely
  std::optional<openai::front_request> front;              // admit_remotely, relay
  openai::endpoint endpoint{};                             // admit_remotely, relay
};

request_plan plan_request(worker_context& worker, const client_request& request, request_context& ctx) {
  request_plan plan;
  auto answer = [&plan](core::error_kind kind, std::string message, std::string param = {}) {
    plan.error = kind;
    plan.message = std::move(message);
    plan.param = std::move(param);
    return std::move(plan);
  };
  auto refuse_with = [&plan](admission_refusal refusal) {
    plan.next = request_plan::step::refuse;
    plan.admission.refusal = std::move(refusal);
    return std::move(plan);
  };
  // ctx.method and ctx.path were filled when the header arrived.
  if (ctx.path == "/v1/models") {
    ctx.route = models_route;
    if (request.method() != http::verb::get)
      return answer(core::error_kind::method_not_allowed,
                    "Method " + std::string(ctx.method) + " is not allowed on /v1/models; use GET.");
    plan.next = request_plan::step::list_models;
    return plan;
  }
  if (ctx.path == "/v1/messages") {
    ctx.route = messages_route;
    if (request.method() != http::verb::post)
      return answer(core::error_kind::method_not_allowed,
                    "Method " + std::string(ctx.method) + " is not allowed on /v1/messages; use POST.");
    plan.next = request_plan::step::native_messages;
    return plan;
  }
  auto endpoint = openai::endpoint_for_path(ctx.path);
  if (!endpoint) {
    return answer(core::error_kind::not_found,
                  "Unknown request URL: " + std::string(ctx.method) + " " + std::string(ctx.path) +
                      ". tollgate serves POST /v1/chat/completions, /v1/completions, /v1/embeddings, "
                      "/v1/messages and GET /v1/models.");
  }
  ctx.route = static_cast<std::uint8_t>(*endpoint);
  if (request.method() != http::verb::post) {
    return answer(core::error_kind::method_not_allowed,
                  "Method " + std::string(ctx.method) + " is not allowed on " + std::string(ctx.path) + "; use POST.");
  }

  if (auto refusal = identify_caller(worker, request, ctx)) return refuse_with(std::move(*refusal));
  auto front = openai::parse_front_request(*endpoint, request.body());
  if (!front) return answer(core::error_kind::bad_request, front.error().message, front.error().param);
  ctx.model = std::move(front->model);
  ctx.model_id = worker.stats.model_id(ctx.model);
  ctx.stream = front->stream;
  ctx.prompt_tokens_estimate = front->prompt_tokens_estimate;

  admission_input input{request.body(), static_cast<std::int64_t>(ctx.prompt_tokens_estimate),
                        *endpoint != openai::endpoint::embeddings, false};
  plan.admission = admit_and_route(worker, ctx, input);
  if (plan.admission.refusal) {
    plan.next = request_plan::step::refuse;
    return plan;
  }
  plan.front = std::move(*front);
  plan.endpoint = *endpoint;
  plan.next = plan.admission.pending ? request_plan::step::admit_remotely : request_plan::step::relay;
  return plan;
}

// The plan's next step. What a step's coroutine needs is handed over by value or consumed
// before this returns: the plan itself does not outlive the call.
net::awaitable<bool> carry_out(worker_context& worker, client_connection& client, const client_request& request,
                               request_context& ctx, request_plan& plan, bool keep_alive) {
  using step = request_plan::step;
  switch (plan.next) {
    case step::reply_error:
      return reply_error(worker, client, ctx, plan.error, plan.message, keep_alive, plan.param);
    case step::refuse:
      return refuse(worker, client, ctx, *plan.admission.refusal, false, keep_alive);
    case step::list_models:
      return write_json(worker, client, ctx, 200, openai::models_list(worker.config.providers), keep_alive);
    case step::native_messages:
      return handle_native_messages(worker, client, request, ctx, keep_alive);
    case step::admit_remotely:
    case step::relay:
      break;
  }
  if (worker.providers[ctx.provider_index].config->type == core::provider_type::openai)
    return relay_passthrough(worker, client, request, ctx, *plan.front, plan.endpoint, keep_alive);
  return serve_parsed(worker, client, request, ctx, std::move(*plan.front), plan.endpoint, keep_alive);
}

// Admission that needs the accounting thread: the one step that suspends before the route.
net::awaitable<bool> admit_then_carry_out(worker_context& worker, client_connection& client,
                                          const client_request& request, request_context& ctx, request_plan plan,
                                          bool keep_alive) {
  plan.admission.refusal = co_await admit_on_accounting_thread(worker, ctx, *plan.admission.pending);
  plan.next = plan.admission.refusal ? request_plan::step::refuse : request_plan::step::relay;
  co_return co_await carry_out(worker, client, request, ctx, plan, keep_alive);
}

// admit -> route -> translate -> relay. Returns whether the connection may carry another request.
net::awaitable<bool> handle_request(worker_context& worker, client_connection& client,
                                    const client_request& request, request_context& ctx,
                                    bool keep_alive) {
  request_plan plan = plan_request(worker, request, ctx);
  if (plan.next == request_plan::step::admit_remotely)
    return admit_then_carry_out(worker, client, request, ctx, std::move(plan), keep_alive);
  return carry_out(worker, client, request, ctx, plan, keep_alive);
}

// The account phase: runs for every request, whatever its outcome.
void account(worker_context& worker, request_context& ctx) {
  if (ctx.finished == clock::time_point{}) ctx.finished = clock::now();  // relay() sets it
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
  if (ctx.route != unknown_route && ctx.route != models_route) meter(worker, ctx);
  worker.log.record(ctx, worker.wall.unix_ms(ctx.finished));
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
  client_connection client(std::move(socket));
  session_handle handle{&client, false};
  session_registration registration(worker, sessions, handle);
  client.read_buffer().reserve(8 * 1024);  // most requests arrive in one read

  const request_limits limits{max_header_bytes, worker.config.max_body_bytes};
  client_request request;
  auto idle_since = clock::now();
  for (;;) {
    client.expires_at(idle_since + worker.config.client_idle_timeout);
    client.expect_fresh_data();
    const read_outcome incoming = co_await read_request(client, request, limits);
    if (incoming.what == read_outcome::kind::closed) break;

    busy_scope busy(worker, handle);
    request_context ctx;
    ctx.started = clock::now();
    ctx.started_unix_ms = worker.wall.unix_ms(ctx.started);
    ctx.id = worker.next_request_id();
    if (incoming.has_head) {
      ctx.method = request.method_string();
      ctx.path = path_of(request.target());
    }
    bool keep_alive = false;
    bool clean = false;
    switch (incoming.what) {
      case read_outcome::kind::too_large:
        clean = co_await reply_error(worker, client, ctx, core::error_kind::payload_too_large,
                                     "Request body exceeds TOLLGATE_MAX_BODY_BYTES (" +
                                         std::to_string(worker.config.max_body_bytes) + " bytes).",
                                     false);
        break;
      case read_outcome::kind::malformed:
        clean = co_await reply_error(worker, client, ctx, core::error_kind::bad_request,
                                     "Malformed HTTP request: " + incoming.ec.message() + ".", false);
        break;
      case read_outcome::kind::body_lost:
        ctx.error = core::error_kind::client_disconnected;
        ctx.status = core::describe(core::error_kind::client_disconnected).http_status;
        break;
      case read_outcome::kind::request:
        // Serving may take as long as the upstream needs; only waits on the client time out.
        client.expires_never();
        // Draining: answer what was already sent, then close rather than wait for more.
        keep_alive = incoming.keep_alive && !worker.draining.load(std::memory_order_relaxed);
        clean = co_await handle_request(worker, client, request, ctx, keep_alive);
        break;
      case read_outcome::kind::closed:
        break;
    }
    account(worker, ctx);
    if (!clean || !keep_alive) break;
    request.reset(0);
    idle_since = ctx.finished;  // microseconds ago: no need to read the clock again
  }
  client.socket().shutdown(tcp::socket::shutdown_send, ignored);
  client.socket().close(ignored);
}

}  // namespace tollgate::proxy
