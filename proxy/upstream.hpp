#pragma once

#include "core/errors.hpp"
#include "core/json_scan.hpp"
#include "proxy/asio.hpp"
#include "proxy/edge_socket.hpp"
#include "proxy/socket_deadline.hpp"
#include "proxy/upstream_response.hpp"

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

// One connection to an upstream, plain or TLS, presented as a single AsyncStream so the relay
// is written (and compiled) once. One socket_deadline covers whatever is in progress on it.
class upstream_connection {
 public:
  using executor_type = net::any_io_executor;

  upstream_connection(net::any_io_executor executor, ssl::context* tls_context);
  upstream_connection(const upstream_connection&) = delete;
  upstream_connection& operator=(const upstream_connection&) = delete;

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  net::ip::tcp::socket& socket() noexcept { return socket_; }
  ssl::stream<net::ip::tcp::socket&>* tls_stream() noexcept { return tls_ ? &*tls_ : nullptr; }
  // Bytes read past the end of the previous response stay with the connection.
  beast::flat_buffer& read_buffer() noexcept { return buffer_; }
  // Scratch space for the request head, then the response head, of the request in progress:
  // its capacity carries over from request to request instead of being allocated for each.
  // Bounded by the header size limits on both sides.
  std::string& head_buffer() noexcept { return head_; }
  // The response being read; its memory carries over from response to response.
  upstream_response& response() noexcept { return response_; }
  // The scan for a whole response's usage member. Kept here, like the buffers, because it
  // carries room for the member inline: in the relay's coroutine frame that room would push
  // the frame past the size Asio recycles, and cost a malloc per request.
  core::top_level_member_capture& usage_capture() noexcept { return usage_capture_; }

  void expires_after(std::chrono::steady_clock::duration timeout) { deadline_.expires_after(timeout); }
  void expires_at(std::chrono::steady_clock::time_point deadline) { deadline_.expires_at(deadline); }
  void expires_never() noexcept { deadline_.expires_never(); }
  // See edge_socket: the next read is for the response to a request just written, unless
  // bytes the server sent ahead of it are already buffered.
  void expect_fresh_data() noexcept {
    if (buffer_.size() == 0) socket_.expect_fresh_data();
  }
  // Pending operations complete with operation_aborted (a client that hung up, say).
  void cancel() noexcept {
    error_code ignored;
    socket_.cancel(ignored);
  }
  // For composed operations run on socket() or tls_stream() directly (connect, handshake):
  // their error, or beast::error::timeout when the deadline cut them short.
  error_code checked(error_code ec) const noexcept { return deadline_.checked(ec); }
  bool is_tls() const noexcept { return tls_.has_value(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_) tls_->async_read_some(b, deadline_.wrap(std::move(handler)));
          else socket_.async_read_some(b, deadline_.wrap(std::move(handler)));
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_) tls_->async_write_some(b, deadline_.wrap(std::move(handler)));
          else socket_.async_write_some(b, deadline_.wrap(std::move(handler)));
        },
        token, buffers);
  }

  std::chrono::steady_clock::time_point idle_since{};

 private:
  edge_socket socket_;
  std::optional<ssl::stream<net::ip::tcp::socket&>> tls_;
  socket_deadline deadline_;
  beast::flat_buffer buffer_;
  std::string head_;
  upstream_response response_;
  core::top_level_member_capture usage_capture_{"usage"};
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
  // `now` is any recent reading of the steady clock: idle limits are seconds long.
  std::unique_ptr<upstream_connection> take_idle(const upstream_target& target,
                                                 std::chrono::steady_clock::time_point now);
  // Only for connections whose last response was read completely and allows keep-alive;
  // `now` is when that response ended.
  void release(const upstream_target& target, std::unique_ptr<upstream_connection> connection,
               std::chrono::steady_clock::time_point now);
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
