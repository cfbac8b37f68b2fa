#pragma once

#include "proxy/asio.hpp"

#include <boost/version.hpp>

#include <memory>
#include <type_traits>
#include <utility>

// Asio starts every socket read with a recv() on the spot, and only when that fails with
// EAGAIN does it queue the read for epoll. Most of a proxy's reads come before their data:
// the next request on a keep-alive connection, the response to a request just sent. So two
// of a plain request's four recv() calls failed, each costing about as much as a real one.
//
// Asio's epoll reactor is edge-triggered and skips that first recv() while a read has
// reported the socket drained and epoll has not signalled it since. It counts only end of
// stream as drained. A read that returned less than its buffer drained the socket as surely
// (TCP copies until the buffer is full or the queue is empty), and bytes that arrive after
// it raise a new edge; edge_socket's reads report that, as nginx clears its ready flag after
// a short read.
//
// But an end of stream or a reset that came in with those bytes raises no edge of its own,
// so a read that must notice one may not wait for the next edge. Reads in the middle of a
// message (a body still arriving, a stream's next event) therefore re-arm epoll after a
// drained read (EPOLL_CTL_MOD reports what is already there; it costs what the recv() did),
// and only a read the owner marks with expect_fresh_data() waits for the edge alone. The
// price of that: a client that sends a request and its FIN together is seen to have closed
// only when the keep-alive idle deadline passes, not at once. It still gets its response.
// And an upstream that closes right behind a response without saying so is seen by the reset
// its kernel returns to the next request, which the relay retries on a new connection.
//
// This reaches into Asio's reactor, whose interface is not public, so it is compiled only
// for the Asio it was written against (Boost 1.81, epoll); anywhere else edge_socket reads
// as tcp::socket does. The io_context must be single-threaded (tollgate's are): drained_ is
// written when a read is performed and read when the next one starts.
#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && \
    !defined(BOOST_ASIO_DISABLE_EPOLL)
#define TOLLGATE_EDGE_READS 1
#else
#define TOLLGATE_EDGE_READS 0
#endif

namespace tollgate::proxy {

#if TOLLGATE_EDGE_READS
namespace edge_detail {

namespace asio_detail = boost::asio::detail;

class recv_op_base : public asio_detail::reactor_op {
 public:
  recv_op_base(asio_detail::socket_type socket, net::mutable_buffer buffer, bool& drained, func_type complete)
      : reactor_op(error_code(), &recv_op_base::perform, complete), socket_(socket), buffer_(buffer), drained_(drained) {}

 private:
  static status perform(reactor_op* base) {
    auto* op = static_cast<recv_op_base*>(base);
    if (!asio_detail::socket_ops::non_blocking_recv1(op->socket_, op->buffer_.data(), op->buffer_.size(), 0,
                                                      /*is_stream=*/true, op->ec_, op->bytes_transferred_))
      return not_done;
    // Short, at end of stream, or failed: nothing more to read until epoll says so.
    op->drained_ = op->bytes_transferred_ < op->buffer_.size();
    return op->drained_ ? done_and_exhausted : done;
  }

  asio_detail::socket_type socket_;
  net::mutable_buffer buffer_;
  bool& drained_;
};

// Owns the handler the way Asio's own receive operation does: the memory comes from the
// handler's allocator (Asio's recycling one for coroutines) and is freed before the upcall.
template <class Handler, class IoExecutor>
class recv_op : public recv_op_base {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(recv_op);

  recv_op(asio_detail::socket_type socket, net::mutable_buffer buffer, bool& drained, Handler& handler,
          const IoExecutor& io_executor)
      : recv_op_base(socket, buffer, drained, &recv_op::complete),
        handler_(std::move(handler)),
        work_(handler_, io_executor) {}

 private:
  static void complete(void* owner, asio_detail::operation* base, const error_code&, std::size_t) {
    auto* op = static_cast<recv_op*>(base);
    ptr p = {std::addressof(op->handler_), op, op};
    asio_detail::handler_work<Handler, IoExecutor> work(std::move(op->work_));
    asio_detail::binder2<Handler, error_code, std::size_t> bound(op->handler_, op->ec_, op->bytes_transferred_);
    p.h = std::addressof(bound.handler_);
    p.reset();
    if (owner) {  // null when the io_context is being destroyed: free, do not call
      asio_detail::fenced_block fence(asio_detail::fenced_block::half);
      work.complete(bound, bound.handler_);
    }
  }

  Handler handler_;
  asio_detail::handler_work<Handler, IoExecutor> work_;
};

// Per-operation cancellation, as Asio's own reads support it.
class read_cancellation {
 public:
  read_cancellation(asio_detail::reactor* reactor, asio_detail::reactor::per_descriptor_data* data,
                    asio_detail::socket_type socket)
      : reactor_(reactor), data_(data), socket_(socket) {}

  void operator()(net::cancellation_type_t type) {
    if (!!(type & (net::cancellation_type::terminal | net::cancellation_type::partial | net::cancellation_type::total)))
      reactor_->cancel_ops_by_key(socket_, *data_, asio_detail::reactor::read_op, this);
  }

 private:
  asio_detail::reactor* reactor_;
  asio_detail::reactor::per_descriptor_data* data_;
  asio_detail::socket_type socket_;
};

}  // namespace edge_detail
#endif

// A TCP socket whose reads skip the doomed recv() described above. Everything else is
// tcp::socket, which it converts to (the acceptor, connect and TLS use that); reads must go
// through edge_socket itself, so that it knows whether the last one drained the socket.
class edge_socket : public tcp::socket {
 public:
  explicit edge_socket(const net::any_io_executor& executor) : tcp::socket(executor) { find_reactor(); }
  explicit edge_socket(tcp::socket&& socket) : tcp::socket(std::move(socket)) { find_reactor(); }
  // A pending read refers to drained_.
  edge_socket(edge_socket&&) = delete;
  edge_socket& operator=(edge_socket&&) = delete;

  // The next read waits for bytes the peer has yet to send (nothing of them is buffered):
  // the next request on a keep-alive connection, or the response to a request just written.
  void expect_fresh_data() noexcept {
#if TOLLGATE_EDGE_READS
    fresh_ = true;
#endif
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) { start_read(b, std::move(handler)); }, token, buffers);
  }

 private:
  void find_reactor() {
#if TOLLGATE_EDGE_READS
    reactor_ = &net::use_service<edge_detail::asio_detail::reactor>(net::query(get_executor(), net::execution::context));
#endif
  }

  template <class MutableBuffers, class Handler>
  void start_read(const MutableBuffers& buffers, Handler&& handler) {
#if TOLLGATE_EDGE_READS
    namespace asio_detail = edge_detail::asio_detail;
    using handler_type = std::decay_t<Handler>;
    using op = edge_detail::recv_op<handler_type, net::any_io_executor>;
    const bool fresh = std::exchange(fresh_, false);
    // read_some may fill less than it was given: the first buffer with room will do.
    net::mutable_buffer buffer;
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      if (net::mutable_buffer b(*it); b.size() != 0) {
        buffer = b;
        break;
      }
    }
    auto& impl = impl_.get_implementation();
    const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
    auto slot = net::get_associated_cancellation_slot(handler);
    typename op::ptr p = {std::addressof(handler), op::ptr::allocate(handler), nullptr};
    p.p = new (p.v) op(impl.socket_, buffer, drained_, handler, impl_.get_executor());
    if (slot.is_connected()) {
      p.p->cancellation_key_ =
          &slot.template emplace<edge_detail::read_cancellation>(reactor_, &impl.reactor_data_, impl.socket_);
    }
    // As Asio does: nothing to read into completes at once, with no bytes.
    if (buffer.size() == 0 ||
        ((impl.state_ & asio_detail::socket_ops::non_blocking) == 0 &&
         !asio_detail::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, p.p->ec_))) {
      reactor_->post_immediate_completion(p.p, is_continuation);
    } else {
      // Not speculative: Asio re-arms epoll instead of trying the recv() (see above).
      const bool speculative = fresh || !drained_;
      reactor_->start_op(asio_detail::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, is_continuation,
                         speculative);
    }
    p.v = p.p = nullptr;
#else
    tcp::socket::async_read_some(buffers, std::forward<Handler>(handler));
#endif
  }

#if TOLLGATE_EDGE_READS
  bool fresh_ = false;
  bool drained_ = false;  // the last read found the receive queue empty
  edge_detail::asio_detail::reactor* reactor_ = nullptr;  // the socket's io_context's
#endif
};

}  // namespace tollgate::proxy
