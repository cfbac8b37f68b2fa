#pragma once

#include "core/errors.hpp"
#include "proxy/asio.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace tollgate::proxy {

struct upstream_target {
  std::string host;
  std::uint16_t port = 0;
  bool tls = false;
  std::string key;  // pool key, "https://host:port"; computed once when the target is made

  static upstream_target make(std::string host, std::uint16_t port, bool tls) {
    std::string key = (tls ? "https://" : "http://") + host + ":" + std::to_string(port);
    return {std::move(host), port, tls, std::move(key)};
  }
};

namespace upstream_detail {

// A connection's deadline, shared with its timer's handler so that handler may outlive the
// connection. The timer is armed lazily: moving the deadline later (every request, every body
// piece) is a store, and a timer that fires early re-arms for the current deadline. Beast's
// tcp_stream instead starts and cancels a timer wait around every single read and write,
// which on a fast upstream cost more CPU than the system calls themselves.
struct deadline_state {
  explicit deadline_state(const net::any_io_executor& executor) : timer(executor) {}
  net::steady_timer timer;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::uint64_t generation = 0;  // tells a re-armed wait's stale completion from the live one
  bool armed = false;
  bool timed_out = false;
  tcp::socket* socket = nullptr;  // null once the connection is gone
};

// Completes a read or write with beast::error::timeout when the deadline closed the socket,
// the error the relay (and any Beast code on top) expects from a timed-out stream.
template <class Handler>
struct deadline_checked {
  Handler handler;
  std::shared_ptr<deadline_state> state;

  void operator()(error_code ec, std::size_t n) {
    if (ec && state->timed_out) ec = beast::error::timeout;
    std::move(handler)(ec, n);
  }
};

}  // namespace upstream_detail

// One connection to an upstream, plain or TLS, presented as a single AsyncStream so the relay
// is written (and compiled) once. One deadline covers whatever is in progress on it: when it
// passes, the socket is closed and the pending operation fails with beast::error::timeout.
class upstream_connection {
 public:
  using executor_type = net::any_io_executor;

  upstream_connection(net::any_io_executor executor, ssl::context* tls_context);
  ~upstream_connection();
  upstream_connection(const upstream_connection&) = delete;
  upstream_connection& operator=(const upstream_connection&) = delete;

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  net::ip::tcp::socket& socket() noexcept { return socket_; }
  ssl::stream<net::ip::tcp::socket&>* tls_stream() noexcept { return tls_ ? &*tls_ : nullptr; }
  // The deadline and socket controls under their beast::tcp_stream names, for code written
  // against the earlier tcp_stream-based connection (connection.tcp().expires_after(...)).
  upstream_connection& tcp() noexcept { return *this; }
  // Bytes read past the end of the previous response stay with the connection.
  beast::flat_buffer& read_buffer() noexcept { return buffer_; }
  // Scratch space for the request head, then the response head, of the request in progress:
  // its capacity carries over from request to request instead of being allocated for each.
  // Bounded by the header size limits on both sides.
  std::string& head_buffer() noexcept { return head_; }

  void expires_after(std::chrono::steady_clock::duration timeout);
  void expires_never() noexcept { deadline_->deadline = std::chrono::steady_clock::time_point::max(); }
  // Pending operations complete with operation_aborted (a client that hung up, say).
  void cancel() noexcept {
    error_code ignored;
    socket_.cancel(ignored);
  }
  // For composed operations run on socket() or tls_stream() directly (connect, handshake):
  // their error, or beast::error::timeout when the deadline cut them short.
  error_code checked(error_code ec) const noexcept {
    return deadline_->timed_out ? error_code(beast::error::timeout) : ec;
  }
  bool is_tls() const noexcept { return tls_.has_value(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          upstream_detail::deadline_checked<decltype(handler)> checked{std::move(handler), deadline_};
          if (tls_) tls_->async_read_some(b, std::move(checked));
          else socket_.async_read_some(b, std::move(checked));
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          upstream_detail::deadline_checked<decltype(handler)> checked{std::move(handler), deadline_};
          if (tls_) tls_->async_write_some(b, std::move(checked));
          else socket_.async_write_some(b, std::move(checked));
        },
        token, buffers);
  }

  std::chrono::steady_clock::time_point idle_since{};

 private:
  net::ip::tcp::socket socket_;
  std::optional<ssl::stream<net::ip::tcp::socket&>> tls_;
  std::shared_ptr<upstream_detail::deadline_state> deadline_;
  beast::flat_buffer buffer_;
  std::string head_;
};

struct upstream_failure {
  core::error_kind kind;
  error_code cause;  // for the error message: "connection refused", "certificate verify failed", ...
};

struct upstream_lease {
  std::unique_ptr<upstream_connection> connection;
  bool reused = false;
};

// Per-worker keep-alive pool with a small DNS cache. Single-threaded by construction: only
// its worker's event loop touches it.
class upstream_pool {
 public:
  upstream_pool(net::any_io_executor executor, ssl::context& tls_context, std::size_t max_idle_per_target,
                std::chrono::milliseconds connect_timeout);

  // A pooled connection when a healthy one is idle, otherwise a new one (DNS, TCP, TLS).
  net::awaitable<boost::system::result<upstream_lease, upstream_failure>> acquire(const upstream_target& target);
  // The idle part of acquire, without a coroutine: null when no healthy connection is idle.
  std::unique_ptr<upstream_connection> take_idle(const upstream_target& target);
  // Only for connections whose last response was read completely and allows keep-alive.
  void release(const upstream_target& target, std::unique_ptr<upstream_connection> connection);
  void clear() { idle_.clear(); }

 private:
  net::awaitable<boost::system::result<tcp::resolver::results_type, upstream_failure>> resolve(
      const upstream_target& target);

  struct cached_address {
    tcp::resolver::results_type endpoints;
    std::chrono::steady_clock::time_point expires;
  };

  net::any_io_executor executor_;
  ssl::context& tls_context_;
  std::size_t max_idle_;
  std::chrono::milliseconds connect_timeout_;
  tcp::resolver resolver_;
  std::unordered_map<std::string, cached_address> addresses_;
  std::unordered_map<std::string, std::deque<std::unique_ptr<upstream_connection>>> idle_;
};

}  // namespace tollgate::proxy

// The wrapped handler keeps the caller's executor, allocator and cancellation slot.
template <template <typename, typename> class Associator, typename Handler, typename DefaultCandidate>
struct boost::asio::associator<Associator, tollgate::proxy::upstream_detail::deadline_checked<Handler>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
  using wrapper = tollgate::proxy::upstream_detail::deadline_checked<Handler>;
  static typename Associator<Handler, DefaultCandidate>::type get(const wrapper& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }
  static auto get(const wrapper& h, const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};
