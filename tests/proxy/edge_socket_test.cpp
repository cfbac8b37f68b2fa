// edge_socket over real loopback TCP: no read may miss bytes, an end of stream or a reset,
// and a read for fresh data after a drained one calls recv() only once the data is there.

#include "proxy/edge_socket.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>

namespace {

// recv() calls on one descriptor. The definition below takes the place of libc's for the
// whole test binary; it forwards every call to the system call unchanged.
int counted_descriptor = -1;
int recv_calls = 0;

}  // namespace

extern "C" ssize_t recv(int descriptor, void* data, size_t size, int flags) {
  if (descriptor == counted_descriptor) ++recv_calls;
  return syscall(SYS_recvfrom, descriptor, data, size, flags, nullptr, nullptr);
}

namespace tollgate::proxy {
namespace {

using namespace std::chrono_literals;

struct read_result {
  error_code ec;
  std::size_t bytes = 0;
};

// A connected pair on one single-threaded io_context: `socket` under test, `peer` the other
// end, written to synchronously by the test.
template <class Socket>
struct connected_pair {
  net::io_context io{1};
  tcp::socket peer{io};
  std::optional<Socket> socket;
  std::array<char, 64> buffer{};

  connected_pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
    peer.connect(acceptor.local_endpoint());
    socket.emplace(acceptor.accept());
    counted_descriptor = socket->native_handle();
    recv_calls = 0;
  }
  ~connected_pair() { counted_descriptor = -1; }

  void send(const std::string& bytes) { net::write(peer, net::buffer(bytes)); }

  // Starts a read into `buffer` (or its first `size` bytes); the result lands in `out`.
  void start_read(std::optional<read_result>& out, std::size_t size = 64) {
    out.reset();
    socket->async_read_some(net::buffer(buffer.data(), size),
                            [&out](error_code ec, std::size_t n) { out = read_result{ec, n}; });
  }

  // Runs the loop until the read completes or `limit` passes.
  bool finish(std::optional<read_result>& out, std::chrono::milliseconds limit = 2000ms) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!out && std::chrono::steady_clock::now() < until) {
      io.restart();
      io.run_one_for(10ms);
    }
    return out.has_value();
  }

  // A read started and run to completion; its bytes are in `buffer`.
  read_result read(std::size_t size = 64, std::chrono::milliseconds limit = 2000ms) {
    std::optional<read_result> out;
    start_read(out, size);
    REQUIRE(finish(out, limit));
    return *out;
  }

  // Runs the loop for a while with nothing of ours to complete: epoll reports what arrived.
  void idle(std::chrono::milliseconds period) {
    net::steady_timer timer(io, period);
    bool fired = false;
    timer.async_wait([&fired](error_code) { fired = true; });
    while (!fired) {
      io.restart();
      io.run_one_for(10ms);
    }
  }

  std::string got(const read_result& r) const { return std::string(buffer.data(), r.bytes); }
};

// Reads "hello", then waits for "world" with fresh_data_expected marked on the second read;
// the number of recv() calls it took.
template <class Socket>
int recv_calls_for_two_requests() {
  connected_pair<Socket> pair;
  pair.send("hello");
  CHECK(pair.got(pair.read()) == "hello");
  if constexpr (std::is_same_v<Socket, edge_socket>) pair.socket->expect_fresh_data();
  std::optional<read_result> r;
  pair.start_read(r);
  pair.idle(30ms);
  CHECK_FALSE(r.has_value());
  pair.send("world");
  REQUIRE(pair.finish(r));
  CHECK_FALSE(r->ec);
  CHECK(pair.got(*r) == "world");
  return recv_calls;
}

TEST_CASE("edge socket: a read for fresh data after a drained read calls recv() only when the data is there") {
  // The instrumented recv() must be what Asio calls, or the counts below mean nothing.
  CHECK(recv_calls_for_two_requests<edge_socket>() == 2);
  // Asio's socket tries the second read at once and fails with EAGAIN first.
  CHECK(recv_calls_for_two_requests<tcp::socket>() == 3);
}

TEST_CASE("edge socket: bytes that arrive while no read is pending wait for the next read") {
  connected_pair<edge_socket> pair;
  pair.send("a");
  CHECK(pair.got(pair.read()) == "a");
  pair.send("b");
  pair.idle(30ms);  // epoll reports "b" with no read queued
  pair.socket->expect_fresh_data();
  CHECK(pair.got(pair.read()) == "b");
}

TEST_CASE("edge socket: a read in mid-message sees an end of stream that came with the last bytes") {
  connected_pair<edge_socket> pair;
  pair.send("partial");
  pair.peer.shutdown(tcp::socket::shutdown_send);
  pair.idle(30ms);  // the bytes and the FIN both arrived, under one edge
  CHECK(pair.got(pair.read()) == "partial");
  CHECK(pair.read().ec == net::error::eof);  // no new edge comes: the read must look for itself
}

TEST_CASE("edge socket: a read in mid-message sees a reset that came after the last bytes") {
  connected_pair<edge_socket> pair;
  pair.send("partial");
  CHECK(pair.got(pair.read()) == "partial");
  pair.peer.set_option(net::socket_base::linger(true, 0));
  pair.peer.close();  // RST
  pair.idle(30ms);
  CHECK(pair.read().ec == net::error::connection_reset);
}

TEST_CASE("edge socket: a read that filled its buffer leaves the rest for the next one, fresh or not") {
  connected_pair<edge_socket> pair;
  pair.send("0123456789abcdefghij");
  pair.idle(30ms);
  CHECK(pair.got(pair.read(10)) == "0123456789");
  pair.socket->expect_fresh_data();  // wrongly, but a full read did not drain the socket
  CHECK(pair.got(pair.read()) == "abcdefghij");
}

TEST_CASE("edge socket: pending reads can be cancelled, by the socket or by their own slot") {
  connected_pair<edge_socket> pair;
  std::optional<read_result> r;
  pair.start_read(r);
  pair.idle(10ms);
  pair.socket->cancel();
  REQUIRE(pair.finish(r));
  CHECK(r->ec == net::error::operation_aborted);

  net::cancellation_signal signal;
  r.reset();
  pair.socket->async_read_some(
      net::buffer(pair.buffer),
      net::bind_cancellation_slot(signal.slot(), [&r](error_code ec, std::size_t n) { r = read_result{ec, n}; }));
  pair.idle(10ms);
  signal.emit(net::cancellation_type::terminal);
  REQUIRE(pair.finish(r));
  CHECK(r->ec == net::error::operation_aborted);

  pair.send("still works");
  CHECK(pair.got(pair.read()) == "still works");
}

TEST_CASE("edge socket: an empty buffer completes at once, a closed socket with an error") {
  connected_pair<edge_socket> pair;
  const read_result empty = pair.read(0, 100ms);
  CHECK_FALSE(empty.ec);
  CHECK(empty.bytes == 0);
  pair.socket->close();
  CHECK(pair.read().ec == net::error::bad_descriptor);
}

}  // namespace
}  // namespace tollgate::proxy
