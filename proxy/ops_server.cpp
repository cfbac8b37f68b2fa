#include "proxy/ops_server.hpp"

#include "core/this_thread.hpp"
#include "proxy/http_out.hpp"

#include <stdexcept>

namespace tollgate::proxy {

ops_server::ops_server(handlers h) : handlers_(std::move(h)), acceptor_(io_) {}

ops_server::~ops_server() { stop(); }

void ops_server::listen(const tcp::endpoint& endpoint) {
  error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + endpoint.address().to_string() + ":" +
                             std::to_string(endpoint.port()) + " (TOLLGATE_METRICS_LISTEN): " + ec.message());
  }
}

void ops_server::start() {
  net::co_spawn(io_, accept_loop(), net::detached);
  thread_ = std::thread([this] {
    core::name_this_thread("tg-ops");
    io_.run();
  });
}

void ops_server::stop() {
  if (!thread_.joinable()) return;
  net::post(io_, [this] {
    error_code ignored;
    acceptor_.close(ignored);
    io_.stop();
  });
  thread_.join();
}

net::awaitable<void> ops_server::accept_loop() {
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) break;
    if (ec) continue;
    net::co_spawn(io_, serve(std::move(socket)), net::detached);
  }
}

net::awaitable<void> ops_server::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(1024 * 1024);  // admin bodies are small JSON objects
    stream.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_nothrow);
    if (ec) break;
    const auto& request = parser.get();
    std::string_view path = request.target().substr(0, request.target().find('?'));
    ops_response reply;
    const bool read_only = request.method() == http::verb::get || request.method() == http::verb::head;
    if (path == "/metrics" || path == "/healthz" || path == "/readyz") {
      if (!read_only) {
        reply = {405, R"({"error":{"message":"use GET","type":"invalid_request_error","param":null,"code":"method_not_allowed"}})"};
      } else if (path == "/metrics") {
        reply = {200, handlers_.render_metrics(), "text/plain; version=0.0.4; charset=utf-8"};
      } else if (path == "/healthz") {
        reply = {200, R"({"status":"ok"})"};
      } else {
        bool ready = handlers_.ready();
        reply = {ready ? 200 : 503, handlers_.readiness_body ? handlers_.readiness_body(ready)
                                                             : (ready ? R"({"status":"ready"})" : R"({"status":"not ready"})")};
      }
    } else {
      // Plain statements around the co_await: GCC 12 mishandles temporaries of a co_await
      // inside a conditional expression.
      std::optional<ops_response> routed;
      if (handlers_.route) routed = co_await handlers_.route(request);
      if (routed) {
        reply = std::move(*routed);
      } else {
        reply = {404, R"({"error":{"message":"not found: the operations listener serves /metrics, /healthz, /readyz, /stats, /stats/raw and /admin/","type":"invalid_request_error","param":null,"code":"not_found"}})"};
      }
    }
    bool keep_alive = request.keep_alive();
    std::string response;
    http_out::begin_head(response, reply.status, keep_alive, "");
    http_out::add_header(response, "Content-Type", reply.content_type);
    http_out::end_head_with_length(response, reply.body.size());
    if (request.method() != http::verb::head) response += reply.body;
    stream.expires_after(std::chrono::seconds(30));
    auto [write_ec, written] = co_await net::async_write(stream, net::buffer(response), use_nothrow);
    if (write_ec || !keep_alive) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace tollgate::proxy
