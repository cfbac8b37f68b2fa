#pragma once

#include "proxy/asio.hpp"

#include <chrono>
#include <memory>

namespace tollgate::proxy {
namespace deadline_detail {

// Shared with the timer's handler, which may outlive the socket_deadline.
struct state {
  explicit state(const net::any_io_executor& executor) : timer(executor) {}
  net::steady_timer timer;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::uint64_t generation = 0;  // tells a re-armed wait's stale completion from the live one
  bool armed = false;
  bool timed_out = false;
  tcp::socket* socket = nullptr;  // null once the owner is gone
};

// Completes a read or write with beast::error::timeout when the deadline closed the socket:
// the error the relay (and any Beast code on top) expects from a timed-out stream.
template <class Handler>
struct checked_handler {
  Handler handler;
  std::shared_ptr<state> deadline;

  void operator()(error_code ec, std::size_t n) {
    if (ec && deadline->timed_out) ec = beast::error::timeout;
    std::move(handler)(ec, n);
  }
};

}  // namespace deadline_detail

// One deadline for whatever is in progress on a socket: when it passes, the socket is closed
// and the pending operation fails with beast::error::timeout.
//
// Beast's tcp_stream starts and cancels a timer wait around every single read and write; on
// a fast peer that cost more CPU than the system calls themselves. Here the timer is armed
// lazily: moving the deadline later (every request, every body piece) is a store, and a wait
// that fires early re-arms for the current deadline. The deadline keeps running between
// operations, so an owner that goes idle without wanting a timeout calls expires_never().
class socket_deadline {
 public:
  socket_deadline(const net::any_io_executor& executor, tcp::socket& socket);
  ~socket_deadline();
  socket_deadline(const socket_deadline&) = delete;
  socket_deadline& operator=(const socket_deadline&) = delete;

  void expires_after(std::chrono::steady_clock::duration timeout) {
    expires_at(std::chrono::steady_clock::now() + timeout);
  }
  // For callers that have just read the clock anyway.
  void expires_at(std::chrono::steady_clock::time_point deadline);
  void expires_never() noexcept { state_->deadline = std::chrono::steady_clock::time_point::max(); }
  bool timed_out() const noexcept { return state_->timed_out; }
  // For composed operations run on the socket directly (connect, TLS handshake): their error,
  // or beast::error::timeout when the deadline cut them short.
  error_code checked(error_code ec) const noexcept { return timed_out() ? error_code(beast::error::timeout) : ec; }

  template <class Handler>
  deadline_detail::checked_handler<std::decay_t<Handler>> wrap(Handler&& handler) const {
    return {std::forward<Handler>(handler), state_};
  }

 private:
  std::shared_ptr<deadline_detail::state> state_;
};

}  // namespace tollgate::proxy

// The wrapped handler keeps the caller's executor, allocator and cancellation slot.
template <template <typename, typename> class Associator, typename Handler, typename DefaultCandidate>
struct boost::asio::associator<Associator, tollgate::proxy::deadline_detail::checked_handler<Handler>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
  using wrapper = tollgate::proxy::deadline_detail::checked_handler<Handler>;
  static typename Associator<Handler, DefaultCandidate>::type get(const wrapper& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }
  static auto get(const wrapper& h, const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};
