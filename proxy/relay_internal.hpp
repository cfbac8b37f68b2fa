#pragma once

// Pieces the relay's files share; nothing outside proxy/relay*.cpp includes this.
#include "proxy/relay.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <memory>

namespace tollgate::proxy::relay_detail {

// Upstream response bodies are handed over piece by piece: the parser appends decoded bytes
// (chunked framing removed) and the relay drains them after every read. Unlike string_body it
// never reserves Content-Length up front, so no response is ever held whole.
struct drained_body {
  using value_type = std::string;

  class reader {
   public:
    template <bool is_request, class Fields>
    reader(http::header<is_request, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>&, error_code& ec) { ec = {}; }
    template <class ConstBuffers>
    std::size_t put(const ConstBuffers& buffers, error_code& ec) {
      std::size_t total = 0;
      for (auto piece : beast::buffers_range_ref(buffers)) {
        body_.append(static_cast<const char*>(piece.data()), piece.size());
        total += piece.size();
      }
      ec = {};
      return total;
    }
    void finish(error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};
using upstream_parser = http::response_parser<drained_body>;

// Reads until some body bytes are decoded, the message is complete, or an error occurs.
// http::async_read_some cannot be used for this: it keeps reading while the parser reports
// need_more, which it does whenever a read ends just after a chunk's data and before the next
// chunk-size line; every streamed event would then wait for the one after it.
net::awaitable<error_code> read_body_piece(upstream_connection& connection, upstream_parser& parser);

// Notices a client hanging up while tollgate waits on the upstream (a long generation, a
// stalled stream) and cancels the upstream request instead of letting it run on unpaid-for.
class disconnect_watch {
 public:
  explicit disconnect_watch(beast::tcp_stream& client) : state_(std::make_shared<state>()) {
    state_->socket = &client.socket();
    arm(state_);
  }
  ~disconnect_watch() {
    state_->active = false;
    error_code ignored;
    state_->socket->cancel(ignored);
  }
  disconnect_watch(const disconnect_watch&) = delete;
  disconnect_watch& operator=(const disconnect_watch&) = delete;

  bool client_gone() const noexcept { return state_->gone; }
  void guard(upstream_connection* upstream) noexcept { state_->upstream = upstream; }

 private:
  struct state {
    bool active = true;
    bool gone = false;
    tcp::socket* socket = nullptr;
    upstream_connection* upstream = nullptr;
  };

  static void arm(const std::shared_ptr<state>& s) {
    s->socket->async_wait(tcp::socket::wait_read, [s](error_code ec) {
      if (!s->active || ec) return;
      char probe;
      ssize_t n = ::recv(s->socket->native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0) return;  // a pipelined request: the client is still there
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        arm(s);
        return;
      }
      s->gone = true;
      if (s->upstream) s->upstream->tcp().cancel();
    });
  }

  std::shared_ptr<state> state_;
};

bool is_http_protocol_error(const error_code& ec);
core::error_kind classify_before_response(const error_code& ec);
core::error_kind classify_mid_body(const error_code& ec);
std::string describe_failure(const relay_request& request, core::error_kind kind, const error_code& cause,
                             std::uint64_t events);
bool is_hop_by_hop(http::field name);
void copy_end_to_end_headers(std::string& out, const http::fields& fields);

template <class Buffers>
net::awaitable<bool> write_to_client(worker_context& worker, beast::tcp_stream& client, const Buffers& buffers) {
  client.expires_after(worker.config.client_idle_timeout);
  auto [ec, n] = co_await net::async_write(client, buffers, use_nothrow);
  co_return !ec;
}

// Records a client that hung up; returns false (the connection is finished).
bool note_client_gone(worker_context& worker, request_context& ctx);

net::awaitable<bool> fail_before_response(worker_context& worker, beast::tcp_stream& client,
                                          const relay_request& request, request_context& ctx, core::error_kind kind,
                                          const error_code& cause);

// Relays a server-sent-event (or NDJSON) stream; see relay_stream.cpp.
net::awaitable<bool> relay_events(worker_context& worker, beast::tcp_stream& client, const relay_request& request,
                                  request_context& ctx, upstream_connection& connection, upstream_parser& parser,
                                  disconnect_watch& watch, bool& upstream_reusable);

}  // namespace tollgate::proxy::relay_detail
