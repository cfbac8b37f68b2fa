#include "proxy/worker.hpp"

#include "core/this_thread.hpp"

#include <sys/socket.h>

#include <future>
#include <stdexcept>

namespace tollgate::proxy {
namespace {

// How often buffered access-log lines reach stdout when traffic is too light to fill a batch.
constexpr auto log_flush_interval = std::chrono::milliseconds(100);

}  // namespace

worker::worker(unsigned index, const core::config& config, ssl::context& tls_context,
               const std::atomic<bool>& draining)
    : acceptor_(io_), context_(index, config, io_.get_executor(), tls_context, draining) {}

worker::~worker() {
  if (thread_.joinable()) {
    stop();
    join();
  }
}

void worker::listen(const tcp::endpoint& endpoint) {
  error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    int enable = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &enable, sizeof enable) != 0)
      ec = error_code(errno, boost::system::system_category());
  }
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + endpoint.address().to_string() + ":" +
                             std::to_string(endpoint.port()) + ": " + ec.message());
  }
}

void worker::start() {
  net::co_spawn(io_, accept_loop(), net::detached);
  net::co_spawn(io_, flush_loop(), net::detached);
  thread_ = std::thread([this] {
    core::name_this_thread("tg-worker-" + std::to_string(context_.index));
    io_.run();
  });
}

net::awaitable<void> worker::accept_loop() {
  net::steady_timer backoff(io_);
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) break;
    if (ec) {
      // Out of file descriptors and the like: back off briefly instead of spinning.
      backoff.expires_after(std::chrono::milliseconds(10));
      co_await backoff.async_wait(use_nothrow);
      continue;
    }
    net::co_spawn(io_, serve_client(context_, sessions_, std::move(socket)), net::detached);
  }
}

net::awaitable<void> worker::flush_loop() {
  net::steady_timer timer(io_);
  for (;;) {
    timer.expires_after(log_flush_interval);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    context_.log.flush();
    context_.wall.anchor();
    if (ec) break;
  }
}

void worker::begin_drain() {
  net::post(io_, [this] {
    error_code ignored;
    acceptor_.close(ignored);
    for (auto* session : sessions_) {
      if (!session->busy) session->connection->socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
  });
}

void worker::stop() {
  net::post(io_, [this] {
    error_code ignored;
    acceptor_.close(ignored);
    for (auto* session : sessions_) session->connection->socket().close(ignored);
    context_.pool.clear();
    context_.log.flush();
    io_.stop();
  });
}

void worker::join() {
  if (thread_.joinable()) thread_.join();
  context_.log.flush();
}

std::optional<worker_stats> worker::snapshot(std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) return context_.stats;  // loop joined: nothing writes any more
  auto copy = std::make_shared<std::promise<worker_stats>>();
  auto result = copy->get_future();
  net::post(io_, [this, copy] { copy->set_value(context_.stats); });
  if (result.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return result.get();
}

}  // namespace tollgate::proxy
