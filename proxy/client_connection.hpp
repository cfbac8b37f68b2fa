#pragma once

#include "proxy/asio.hpp"
#include "proxy/edge_socket.hpp"
#include "proxy/header_arena.hpp"
#include "proxy/socket_deadline.hpp"

namespace tollgate::proxy {

// A client's connection: the socket, its single deadline (see socket_deadline) and the bytes
// read ahead of the request being parsed. An AsyncStream, so net::async_write works on it.
//
// The deadline runs only while tollgate waits on the client (for a request, or for a write
// the socket could not take at once); it is cleared while a request is being served, which
// may take as long as the upstream needs.
class client_connection {
 public:
  using executor_type = net::any_io_executor;

  explicit client_connection(tcp::socket socket)
      : socket_(std::move(socket)), deadline_(socket_.get_executor(), socket_) {}

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  tcp::socket& socket() noexcept { return socket_; }
  beast::flat_buffer& read_buffer() noexcept { return buffer_; }
  // Header fields of the request in progress and of its upstream response.
  header_arena& arena() noexcept { return arena_; }

  void expires_after(std::chrono::steady_clock::duration timeout) { deadline_.expires_after(timeout); }
  void expires_at(std::chrono::steady_clock::time_point deadline) { deadline_.expires_at(deadline); }
  void expires_never() noexcept { deadline_.expires_never(); }
  // See edge_socket: the next read is for a request the client has yet to send, unless
  // part of one is already buffered.
  void expect_fresh_data() noexcept {
    if (buffer_.size() == 0) socket_.expect_fresh_data();
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) { socket_.async_read_some(b, deadline_.wrap(std::move(handler))); },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) { socket_.async_write_some(b, deadline_.wrap(std::move(handler))); },
        token, buffers);
  }

 private:
  edge_socket socket_;
  socket_deadline deadline_;
  beast::flat_buffer buffer_;
  header_arena arena_;
};

}  // namespace tollgate::proxy
