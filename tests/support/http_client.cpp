#include "tests/support/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <thread>

namespace tollgate::testing {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t body_limit = 1ull << 30;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

template <class Fields>
std::map<std::string, std::string> header_map(const Fields& fields) {
  std::map<std::string, std::string> out;
  for (const auto& f : fields) {
    auto [it, inserted] = out.emplace(lower(f.name_string()), std::string(f.value()));
    if (!inserted) it->second += ", " + std::string(f.value());
  }
  return out;
}

std::chrono::milliseconds remaining(clock_type::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
  return std::max(left, 0ms);
}

// Runs one asynchronous operation on a private io_context until it completes. The tcp_stream
// expiry bounds it (it closes the socket on timeout, which completes the operation); the
// run_for margin is a second fence in case an operation ignores that.
class runner {
 public:
  runner(net::io_context& ioc, beast::tcp_stream& stream) : ioc_(ioc), stream_(stream) {}

  template <class Start>
  boost::system::error_code run(std::chrono::milliseconds timeout, Start&& start) {
    boost::system::error_code result;
    bool done = false;
    stream_.expires_after(timeout);
    start([&](boost::system::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc_.restart();
    ioc_.run_for(timeout + 2s);
    if (!done) {
      boost::system::error_code ignored;
      stream_.socket().close(ignored);
      ioc_.restart();
      ioc_.run_for(1s);
      result = beast::error::timeout;
    }
    if (stream_.socket().is_open()) stream_.expires_never();
    return result;
  }

 private:
  net::io_context& ioc_;
  beast::tcp_stream& stream_;
};

[[noreturn]] void fail(boost::system::error_code ec, std::string_view what,
                       std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    throw http_error("http client: timed out after " + std::to_string(timeout.count()) +
                         " ms while " + std::string(what),
                     true);
  }
  if (ec == http::error::end_of_stream) {
    throw http_error("http client: connection closed by the server while " + std::string(what), false);
  }
  if (ec == http::error::partial_message) {
    throw http_error("http client: connection closed mid-message (partial message) while " +
                         std::string(what),
                     false);
  }
  throw http_error("http client: " + ec.message() + " while " + std::string(what), false);
}

bool has_header(const http_headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return true;
  }
  return false;
}

}  // namespace

struct http_connection::impl {
  net::io_context ioc{1};
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  std::uint16_t port = 0;
  std::optional<http::response_parser<http::buffer_body>> parser;  // a response being streamed
  bool head_request = false;

  boost::system::error_code run_op(std::chrono::milliseconds timeout, auto&& start) {
    return runner(ioc, stream).run(timeout, start);
  }

  void send(std::string method, std::string target, std::string body, const http_headers& headers,
            std::chrono::milliseconds timeout) {
    if (!stream.socket().is_open()) throw http_error("http client: connection is closed", false);
    http::request<http::string_body> req;
    const http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) {
      req.method_string(method);
    } else {
      req.method(verb);
    }
    req.target(target);
    req.version(11);
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    if (!body.empty() && !has_header(headers, "content-type")) {
      req.set(http::field::content_type, "application/json");
    }
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = std::move(body);
    if (!has_header(headers, "content-length") && !has_header(headers, "transfer-encoding")) {
      req.prepare_payload();
    }
    head_request = verb == http::verb::head;
    parser.reset();
    const auto ec = run_op(timeout, [&](auto handler) { http::async_write(stream, req, handler); });
    if (ec) fail(ec, "sending " + method + " " + std::string(target), timeout);
  }
};

http_connection::http_connection(std::uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>()) {
  impl_->port = port;
  const tcp::endpoint endpoint(net::ip::make_address_v4("127.0.0.1"), port);
  const auto ec =
      impl_->run_op(timeout, [&](auto handler) { impl_->stream.async_connect(endpoint, handler); });
  if (ec) fail(ec, "connecting to 127.0.0.1:" + std::to_string(port), timeout);
  boost::system::error_code ignored;
  impl_->stream.socket().set_option(tcp::no_delay(true), ignored);
}

http_connection::~http_connection() = default;

http_response http_connection::request(std::string method, std::string target, std::string body,
                                       http_headers headers, std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  const std::string what = method + " " + target;
  impl_->send(std::move(method), std::move(target), std::move(body), headers, timeout);
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  if (impl_->head_request) parser.skip(true);
  const auto ec = impl_->run_op(remaining(deadline), [&](auto handler) {
    http::async_read(impl_->stream, impl_->buffer, parser, handler);
  });
  if (ec) fail(ec, "reading the response to " + what, timeout);
  http_response out;
  out.status = static_cast<int>(parser.get().result_int());
  out.headers = header_map(parser.get());
  out.body = std::move(parser.get().body());
  return out;
}

void http_connection::start(std::string method, std::string target, std::string body,
                            http_headers headers, std::chrono::milliseconds timeout) {
  impl_->send(std::move(method), std::move(target), std::move(body), headers, timeout);
}

http_response http_connection::read_header(std::chrono::milliseconds timeout) {
  auto& parser = impl_->parser.emplace();
  parser.body_limit(body_limit);
  if (impl_->head_request) parser.skip(true);
  const auto ec = impl_->run_op(timeout, [&](auto handler) {
    http::async_read_header(impl_->stream, impl_->buffer, parser, handler);
  });
  if (ec) {
    impl_->parser.reset();
    fail(ec, "reading a response header", timeout);
  }
  http_response out;
  out.status = static_cast<int>(parser.get().result_int());
  out.headers = header_map(parser.get());
  return out;
}

std::optional<std::string> http_connection::read_body_some(std::chrono::milliseconds timeout) {
  if (!impl_->parser) throw std::logic_error("http_connection: read_header() first");
  auto& parser = *impl_->parser;
  const auto deadline = clock_type::now() + timeout;
  char buf[16384];
  for (;;) {
    if (parser.is_done()) {
      impl_->parser.reset();
      return std::nullopt;
    }
    // A read may only consume framing (a chunk header): loop until body bytes or the end.
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    auto ec = impl_->run_op(remaining(deadline), [&](auto handler) {
      http::async_read_some(impl_->stream, impl_->buffer, parser, handler);
    });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      impl_->parser.reset();
      fail(ec, "reading a response body", timeout);
    }
    const std::size_t n = sizeof buf - parser.get().body().size;
    if (n > 0) return std::string(buf, n);
  }
}

std::string http_connection::read_body(std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  std::string body;
  while (auto piece = read_body_some(remaining(deadline))) body += *piece;
  return body;
}

void http_connection::close(bool reset) {
  boost::system::error_code ignored;
  auto& sock = impl_->stream.socket();
  if (!sock.is_open()) return;
  if (reset) sock.set_option(net::socket_base::linger(true, 0), ignored);
  sock.close(ignored);
  impl_->parser.reset();
}

void http_connection::shutdown_send() {
  boost::system::error_code ignored;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

bool http_connection::is_open() const { return impl_->stream.socket().is_open(); }

bool http_connection::remote_closed(std::chrono::milliseconds wait) {
  auto& sock = impl_->stream.socket();
  if (!sock.is_open()) return true;
  const int fd = sock.native_handle();
  const auto deadline = clock_type::now() + wait;
  for (;;) {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    const int r = ::poll(&p, 1, static_cast<int>(remaining(deadline).count()));
    if (r < 0 && errno != EINTR) return false;
    if (r > 0) {
      if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
      if ((p.revents & POLLIN) != 0) {
        // Data, not a close: keep it for the next read and look again.
        auto space = impl_->buffer.prepare(4096);
        const ssize_t n = ::recv(fd, space.data(), space.size(), MSG_DONTWAIT);
        if (n == 0) return true;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return true;
        if (n > 0) impl_->buffer.commit(static_cast<std::size_t>(n));
        continue;
      }
    }
    if (clock_type::now() >= deadline) return false;
  }
}

std::uint16_t http_connection::local_port() const {
  boost::system::error_code ec;
  const auto ep = impl_->stream.socket().local_endpoint(ec);
  return ec ? 0 : ep.port();
}

http_response http_request(std::uint16_t port, std::string method, std::string target,
                           std::string body, http_headers headers,
                           std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  http_connection connection(port, timeout);
  return connection.request(std::move(method), std::move(target), std::move(body),
                            std::move(headers), std::max(remaining(deadline), 1ms));
}

std::string raw_exchange(std::uint16_t port, std::string raw_bytes,
                         std::chrono::milliseconds timeout) {
  return raw_exchange(port, std::vector<std::string>{std::move(raw_bytes)}, std::chrono::milliseconds(0), timeout);
}

std::string raw_exchange(std::uint16_t port, const std::vector<std::string>& pieces, std::chrono::milliseconds pause,
                         std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  net::io_context ioc{1};
  beast::tcp_stream stream{ioc};
  runner r(ioc, stream);
  const tcp::endpoint endpoint(net::ip::make_address_v4("127.0.0.1"), port);
  auto ec = r.run(timeout, [&](auto handler) { stream.async_connect(endpoint, handler); });
  if (ec) fail(ec, "connecting to 127.0.0.1:" + std::to_string(port), timeout);
  // A write error is not fatal: the server may answer and close before taking every byte.
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0) std::this_thread::sleep_for(pause);
    ec = r.run(remaining(deadline),
               [&](auto handler) { net::async_write(stream, net::buffer(pieces[i]), handler); });
    if (ec) break;
  }
  std::string received;
  char buf[16384];
  while (stream.socket().is_open() && clock_type::now() < deadline) {
    std::size_t got = 0;
    ec = r.run(remaining(deadline), [&](auto handler) {
      stream.async_read_some(net::buffer(buf), [&, handler](boost::system::error_code e,
                                                            std::size_t n) mutable {
        got = n;
        handler(e, n);
      });
    });
    received.append(buf, got);
    if (ec) break;  // EOF, reset or timeout: everything we could get is in
  }
  return received;
}

}  // namespace tollgate::testing
