#pragma once

// Pieces the relay's files share; nothing outside proxy/relay*.cpp includes this.
#include "proxy/relay.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>

namespace tollgate::proxy::relay_detail {

// Reads the connection's response until some body bytes are decoded, the message is complete,
// or an error occurs: a streamed event goes on as soon as it is in, never waiting for the next.
net::awaitable<error_code> read_body_piece(upstream_connection& connection);
// The part of read_body_piece that needs no I/O: decodes what the connection already holds.
// True when that was enough (ec says how it went); false when a read is needed.
bool take_buffered_body(upstream_connection& connection, error_code& ec);

class disconnect_sweeper;

// Notices a client hanging up while tollgate waits on the upstream (a long generation, a
// stalled stream) and cancels the upstream request instead of letting it run on unpaid-for.
//
// Watching costs an epoll_ctl: Asio re-registers the descriptor for every wait it cannot try
// speculatively. Most requests to a nearby upstream finish in well under a millisecond, so
// the wait is only armed once a request has been running for watch_delay, by a sweep over
// the io_context's running relays (disconnect_sweeper); a hang-up is still noticed within a
// few tens of milliseconds, and a stream's writes notice it in any case.
class disconnect_watch {
 public:
  static constexpr auto watch_delay = std::chrono::milliseconds(20);

  disconnect_watch(client_connection& client, std::chrono::steady_clock::time_point started,
                   disconnect_sweeper& sweeper);
  ~disconnect_watch();
  disconnect_watch(const disconnect_watch&) = delete;
  disconnect_watch& operator=(const disconnect_watch&) = delete;

  bool client_gone() const noexcept { return gone_; }
  void guard(upstream_connection* upstream) noexcept { upstream_ = upstream; }

 private:
  friend class disconnect_sweeper;

  // What the socket wait's handler sees; it may run after the watch is gone.
  struct armed_state {
    disconnect_watch* owner;
  };
  void arm();
  static void wait(const std::shared_ptr<armed_state>& state);

  tcp::socket& socket_;
  upstream_connection* upstream_ = nullptr;
  bool gone_ = false;
  std::chrono::steady_clock::time_point started_;
  disconnect_sweeper* sweeper_ = nullptr;  // set while waiting to be armed
  disconnect_watch* prev_ = nullptr;
  disconnect_watch* next_ = nullptr;
  std::shared_ptr<armed_state> armed_;
};

// One per io_context (an Asio service): the relays whose disconnect watch is not armed yet,
// oldest first, and a timer that ticks while there are any to arm the ones that are due.
class disconnect_sweeper : public net::execution_context::service {
 public:
  using key_type = disconnect_sweeper;
  static net::execution_context::id id;

  explicit disconnect_sweeper(net::execution_context& context) : net::execution_context::service(context) {}

  void enlist(disconnect_watch& watch);
  void remove(disconnect_watch& watch) noexcept;

 private:
  void shutdown() override { timer_.reset(); }
  void start_ticking(const net::any_io_executor& executor);
  void tick();

  disconnect_watch* oldest_ = nullptr;
  disconnect_watch* newest_ = nullptr;
  std::optional<net::steady_timer> timer_;
  bool ticking_ = false;
  bool enlisted_since_tick_ = false;
};

bool is_http_protocol_error(const error_code& ec);
core::error_kind classify_before_response(const error_code& ec);
core::error_kind classify_mid_body(const error_code& ec);
std::string describe_failure(const relay_request& request, core::error_kind kind, const error_code& cause,
                             std::uint64_t events);
bool is_hop_by_hop(core::header_name name);
void copy_end_to_end_headers(std::string& out, std::span<const header_field> fields);

// One non-blocking sendmsg of as much of `buffers` as the socket takes now (at most the first
// 8 pieces). Most writes fit the socket buffer whole; done this way they skip Asio's op,
// reactor and completion round trip and Beast's timer. ec is would_block when nothing fit.
template <class ConstBuffers>
std::size_t send_now(int fd, const ConstBuffers& buffers, error_code& ec) noexcept {
  constexpr std::size_t max_pieces = 8;
  std::array<iovec, max_pieces> pieces;
  std::size_t count = 0;
  for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers) && count < max_pieces;
       ++it) {
    net::const_buffer piece(*it);
    if (piece.size() == 0) continue;
    pieces[count].iov_base = const_cast<void*>(piece.data());
    pieces[count].iov_len = piece.size();
    ++count;
  }
  msghdr message{};
  message.msg_iov = pieces.data();
  message.msg_iovlen = count;
  for (;;) {
    ssize_t n = ::sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      ec = {};
      return static_cast<std::size_t>(n);
    }
    if (errno == EINTR) continue;
    ec = error_code(errno, net::error::get_system_category());
    return 0;
  }
}

// Whatever send_now could not write goes out asynchronously, under the given stream's timeout.
// The buffer sequence is taken by value (a span or a small array): a coroutine's reference
// parameters must outlive its first suspension.
template <class Stream, class Buffers>
net::awaitable<error_code> write_rest(Stream& stream, Buffers buffers, std::size_t sent) {
  beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(sent);
  auto [ec, n] = co_await net::async_write(stream, rest, use_nothrow);
  co_return ec;
}

// Most client writes complete at once; only the rest of one that did not needs a coroutine
// (its frame is a malloc) and the client's idle timeout.
enum class write_state : std::uint8_t { done, failed, pending };

template <class Buffers>
write_state write_now(client_connection& client, const Buffers& buffers, std::size_t& sent) noexcept {
  error_code ec;
  sent = send_now(client.socket().native_handle(), buffers, ec);
  if (sent == net::buffer_size(buffers)) return write_state::done;
  return ec && ec != net::error::would_block ? write_state::failed : write_state::pending;
}

template <class Buffers>
net::awaitable<bool> write_later(worker_context& worker, client_connection& client, Buffers buffers, std::size_t sent) {
  client.expires_after(worker.config.client_idle_timeout);
  error_code ec = co_await write_rest(client, buffers, sent);
  client.expires_never();
  co_return !ec;
}

// Both in one, for writes off the hot path (error responses, translated answers); the relay's
// per-piece writes call write_now and, only when it returns pending, write_later.
template <class Buffers>
net::awaitable<bool> write_to_client(worker_context& worker, client_connection& client, const Buffers& buffers) {
  std::size_t sent = 0;
  switch (write_now(client, buffers, sent)) {
    case write_state::done: co_return true;
    case write_state::failed: co_return false;
    case write_state::pending: break;
  }
  co_return co_await write_later(worker, client, buffers, sent);
}

// Records a client that hung up; returns false (the connection is finished).
bool note_client_gone(worker_context& worker, request_context& ctx);

net::awaitable<bool> fail_before_response(worker_context& worker, client_connection& client,
                                          const relay_request& request, request_context& ctx, core::error_kind kind,
                                          const error_code& cause);

// Relays a server-sent-event (or NDJSON) stream; see relay_stream.cpp.
net::awaitable<bool> relay_events(worker_context& worker, client_connection& client, const relay_request& request,
                                  request_context& ctx, upstream_connection& connection, disconnect_watch& watch,
                                  bool& upstream_reusable);

}  // namespace tollgate::proxy::relay_detail
