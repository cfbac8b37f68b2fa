#pragma once

#include "proxy/asio.hpp"
#include "proxy/session.hpp"
#include "proxy/worker_context.hpp"

#include <chrono>
#include <optional>
#include <thread>

namespace tollgate::proxy {

// One thread, one single-threaded io_context, one SO_REUSEPORT acceptor: the kernel spreads
// connections across workers and nothing on the request path is shared between them.
// Other threads talk to a worker only by posting to its io_context.
class worker {
 public:
  worker(unsigned index, const core::config& config, ssl::context& tls_context, const std::atomic<bool>& draining);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Start-up only; throws with a readable message when the address cannot be bound.
  void listen(const tcp::endpoint& endpoint);
  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void start();
  void begin_drain();  // stop accepting; close idle connections; busy ones close after their request
  void stop();         // close everything, flush the log, end the event loop
  void join();

  int in_flight() const noexcept { return context_.in_flight.load(std::memory_order_relaxed); }
  // A copy of the worker's counters, taken on the worker's own thread.
  std::optional<worker_stats> snapshot(std::chrono::milliseconds timeout);
  // Start-up wiring and messages from other threads (which must post, never touch directly).
  worker_context& context() noexcept { return context_; }
  net::any_io_executor executor() { return io_.get_executor(); }

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> flush_loop();

  // Only this worker's thread touches its sockets, so per-descriptor locking in the reactor is
  // pure cost; posting from other threads still goes through the (locked) scheduler.
  net::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  tcp::acceptor acceptor_;
  worker_context context_;
  session_set sessions_;
  std::thread thread_;
};

}  // namespace tollgate::proxy
