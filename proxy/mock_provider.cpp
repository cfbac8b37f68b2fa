#include "proxy/mock_provider.hpp"

#include "adapters/mock.hpp"
#include "proxy/http_out.hpp"

#include <array>

namespace tollgate::proxy {
namespace {

namespace mock = adapters::mock;

template <class Buffers>
net::awaitable<bool> write_out(worker_context& worker, client_connection& client, const Buffers& buffers) {
  client.expires_after(worker.config.client_idle_timeout);
  auto [ec, n] = co_await net::async_write(client, buffers, use_nothrow);
  client.expires_never();  // the pause before the next token is not the client's doing
  co_return !ec;
}

net::awaitable<void> pause(net::steady_timer& timer, std::chrono::milliseconds duration) {
  if (duration.count() == 0) co_return;
  timer.expires_after(duration);
  co_await timer.async_wait(use_nothrow);
}

bool client_gone(worker_context& worker, request_context& ctx) {
  ctx.error = core::error_kind::client_disconnected;
  ctx.status = core::describe(core::error_kind::client_disconnected).http_status;
  ++worker.stats.client_disconnects;
  return false;
}

net::awaitable<bool> write_json(worker_context& worker, client_connection& client, const mock_request& request,
                                request_context& ctx, const std::string& body) {
  std::string response;
  http_out::begin_head(response, 200, request.keep_alive, ctx.id);
  http_out::add_header(response, "Content-Type", "application/json");
  http_out::end_head_with_length(response, body.size());
  response += body;
  ctx.status = 200;
  ctx.response_bytes = body.size();
  if (!co_await write_out(worker, client, net::buffer(response))) co_return client_gone(worker, ctx);
  co_return request.keep_alive;
}

net::awaitable<bool> write_chunk(worker_context& worker, client_connection& client, const std::string& event,
                                 request_context& ctx) {
  char size_line[24];
  std::array<net::const_buffer, 3> chunk{net::buffer(http_out::chunk_header(size_line, event.size())),
                                         net::buffer(event), net::buffer(http_out::chunk_trailer)};
  ctx.response_bytes += event.size();
  co_return co_await write_out(worker, client, chunk);
}

}  // namespace

net::awaitable<bool> serve_mock(worker_context& worker, client_connection& client, const mock_request& request,
                                request_context& ctx) {
  ctx.upstream_sent = std::chrono::steady_clock::now();
  ctx.upstream_first_byte = ctx.upstream_sent;
  ctx.upstream_status = 200;

  if (request.kind == adapters::openai::endpoint::embeddings) {
    adapters::openai::usage usage;
    std::string body = mock::embeddings_body(request.body, request.model, usage);
    ctx.usage = usage;
    co_return co_await write_json(worker, client, request, ctx, body);
  }

  auto reply = mock::make_reply(request.body, request.model);
  net::steady_timer timer(client.get_executor());
  if (!request.stream) {
    // A real provider answers a non-streamed call only once it has generated every token.
    co_await pause(timer, request.token_latency * static_cast<int>(reply.tokens.size()));
    ctx.usage = reply.usage;
    co_return co_await write_json(worker, client, request, ctx, mock::completion_body(reply, request.model));
  }

  ctx.stream = true;
  ctx.status = 200;
  ++worker.stats.active_streams;
  struct gauge_guard {
    worker_stats& stats;
    ~gauge_guard() { --stats.active_streams; }
  } guard{worker.stats};

  std::string head;
  http_out::begin_head(head, 200, request.keep_alive, ctx.id);
  http_out::add_header(head, "Content-Type", "text/event-stream; charset=utf-8");
  http_out::add_header(head, "Cache-Control", "no-cache");
  http_out::end_head_chunked(head);
  if (!co_await write_out(worker, client, net::buffer(head))) co_return client_gone(worker, ctx);

  bool usage_null = request.client_wants_usage;
  if (!co_await write_chunk(worker, client, mock::role_chunk(request.model, usage_null), ctx))
    co_return client_gone(worker, ctx);
  for (const auto& token : reply.tokens) {
    co_await pause(timer, request.token_latency);
    if (!co_await write_chunk(worker, client, mock::token_chunk(request.model, token, usage_null), ctx))
      co_return client_gone(worker, ctx);
    ++ctx.events_relayed;
    ++ctx.output_chunks;
  }
  std::string tail = mock::finish_chunk(request.model, usage_null);
  if (request.client_wants_usage) tail += mock::usage_chunk(request.model, reply.usage);
  tail += "data: [DONE]\n\n";
  char size_line[24];
  std::array<net::const_buffer, 4> end{net::buffer(http_out::chunk_header(size_line, tail.size())), net::buffer(tail),
                                       net::buffer(http_out::chunk_trailer), net::buffer(http_out::last_chunk)};
  ctx.response_bytes += tail.size();
  if (!co_await write_out(worker, client, end)) co_return client_gone(worker, ctx);
  ctx.usage = reply.usage;
  ctx.stream_completed = true;
  co_return request.keep_alive;
}

}  // namespace tollgate::proxy
