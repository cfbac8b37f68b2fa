#include "tests/support/fake_upstream.hpp"

#include "tests/support/fake_wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace tollgate::testing {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
namespace wire = fake_wire;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Errors are values here: a fake that throws on every peer hang-up would make the benchmark
// measure exception handling.
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// How often a sleeping or stalled stream looks at its socket: the brief promises that a peer
// closing is noticed within ~100 ms.
constexpr auto watch_slice = 10ms;

// What a session does after a response.
enum class after { keep_alive, close, closed };

// The peer shut its sending side or reset the connection. POLLRDHUP reports the FIN even when
// unread bytes (a pipelined request, a TLS alert) sit in front of it, and poll() consumes
// nothing, so the next request parse is unaffected.
bool peer_gone(tcp::socket& sock) {
  if (!sock.is_open()) return true;
  pollfd p{sock.native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

// Sleeps for `d` in short slices; false as soon as the peer has gone.
net::awaitable<bool> watchful_sleep(tcp::socket& sock, std::chrono::milliseconds d) {
  net::steady_timer timer(sock.get_executor());
  const auto deadline = clock_type::now() + d;
  for (;;) {
    if (peer_gone(sock)) co_return false;
    const auto now = clock_type::now();
    if (now >= deadline) co_return true;
    timer.expires_after(std::min<clock_type::duration>(deadline - now, watch_slice));
    auto [ec] = co_await timer.async_wait(use_tuple);
    if (ec) co_return false;
  }
}

// Closes without losing the response: shutting down our side and draining what the peer still
// sends avoids the RST that close() with unread input would produce (which can destroy an error
// response the peer has not read yet). Bounded to one second.
net::awaitable<void> lingering_close(tcp::socket& sock) {
  boost::system::error_code ec;
  sock.shutdown(tcp::socket::shutdown_send, ec);
  net::steady_timer timer(sock.get_executor());
  const auto deadline = clock_type::now() + 1s;
  char sink[4096];
  while (!ec && clock_type::now() < deadline) {
    pollfd p{sock.native_handle(), POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0) {
      if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) break;
      if (::recv(sock.native_handle(), sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
      continue;
    }
    timer.expires_after(watch_slice);
    std::tie(ec) = co_await timer.async_wait(use_tuple);
  }
  sock.close(ec);
}

void abortive_close(tcp::socket& sock) {
  boost::system::error_code ec;
  sock.set_option(net::socket_base::linger(true, 0), ec);
  sock.close(ec);
}

template <class Stream>
net::awaitable<bool> write_all(Stream& stream, std::string_view data) {
  auto [ec, n] = co_await net::async_write(stream, net::buffer(data.data(), data.size()), use_tuple);
  co_return !ec;
}

// POST {/v1beta,/v1}/models/<model>:generateContent or :streamGenerateContent: the model
// (percent-decoded) and whether it streams.
bool gemini_route(std::string_view target, std::string& model, bool& stream) {
  std::string_view path = target.substr(0, target.find('?'));
  for (std::string_view prefix : {std::string_view("/v1beta/models/"), std::string_view("/v1/models/")}) {
    if (!path.starts_with(prefix)) continue;
    path.remove_prefix(prefix.size());
    const std::size_t colon = path.rfind(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view method = path.substr(colon + 1);
    if (method != "generateContent" && method != "streamGenerateContent") return false;
    stream = method == "streamGenerateContent";
    model.clear();
    const std::string_view encoded = path.substr(0, colon);
    for (std::size_t i = 0; i < encoded.size(); ++i) {
      if (encoded[i] == '%' && i + 2 < encoded.size() && std::isxdigit(static_cast<unsigned char>(encoded[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(encoded[i + 2]))) {
        model += static_cast<char>(std::stoi(std::string(encoded.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        model += encoded[i];
      }
    }
    return true;
  }
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Whole plain responses (header + body) per worker thread, keyed by everything that shapes
// them: the benchmark sends the same few requests over and over.
using response_cache = std::unordered_map<std::string, std::shared_ptr<const std::string>>;

std::shared_ptr<const std::string> plain_response(const wire::script& s, bool keep_alive) {
  thread_local response_cache cache;
  std::string key;
  key.reserve(s.model.size() + 48);
  key += static_cast<char>('0' + static_cast<int>(s.kind));
  key += s.stream ? 'S' : 's';
  key += s.include_usage ? 'U' : 'u';
  key += s.crlf ? 'C' : 'c';
  key += keep_alive ? 'K' : 'k';
  key += std::to_string(s.events) + ':' + std::to_string(s.prompt_tokens) + ':' + s.tool_name + ':' + s.model;
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  std::string bytes;
  if (s.stream) {
    const wire::framed_stream plan = wire::stream_events(s);
    bytes = wire::response_head(200, plan.content_type, -1, keep_alive);
    for (const auto& event : plan.events) bytes += wire::chunk(event);
    bytes += wire::last_chunk;
  } else {
    const std::string body = wire::response_body(s);
    bytes = wire::response_head(200, "application/json", static_cast<long long>(body.size()),
                                keep_alive) +
            body;
  }
  auto entry = std::make_shared<const std::string>(std::move(bytes));
  if (entry->size() > (1u << 20)) return entry;  // a huge scripted response: not worth keeping
  if (cache.size() >= 1024) cache.clear();       // bounded; tests vary models and counts freely
  cache.emplace(std::move(key), entry);
  return entry;
}

}  // namespace

struct fake_upstream::impl {
  fake_upstream_options options;
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::unique_ptr<ssl::context> tls;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::uint16_t port = 0;
  std::size_t next_context = 0;  // accept loop only

  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> streams_started{0};
  std::atomic<std::uint64_t> streams_completed{0};
  std::atomic<std::uint64_t> streams_aborted{0};
  std::atomic<std::uint64_t> faults_injected{0};

  mutable std::mutex mutex;
  std::vector<recorded_request> recorded;

  fake_upstream_stats snapshot() const {
    fake_upstream_stats s;
    s.connections = connections.load();
    s.requests = requests.load();
    s.streams_started = streams_started.load();
    s.streams_completed = streams_completed.load();
    s.streams_aborted = streams_aborted.load();
    s.faults_injected = faults_injected.load();
    return s;
  }

  // ---- responses -------------------------------------------------------------------------

  template <class Stream>
  net::awaitable<after> send_error(Stream& stream, int status, std::string_view message,
                                   std::string_view type, std::string_view code, bool keep_alive) {
    wire::error_reply reply;
    reply.body = wire::error_body(message, type, code);
    co_return co_await send_reply(stream, status, std::move(reply), keep_alive);
  }

  // An error answer already shaped for its format (wire::status_error / wire::error_for).
  template <class Stream>
  net::awaitable<after> send_reply(Stream& stream, int status, wire::error_reply reply, bool keep_alive) {
    const std::string bytes = wire::response_head(status, "application/json",
                                                  static_cast<long long>(reply.body.size()), keep_alive,
                                                  reply.headers) +
                              reply.body;
    if (!co_await write_all(stream, bytes)) co_return after::closed;
    co_return keep_alive ? after::keep_alive : after::close;
  }

  // Applies a scripted failure; returns whether the peer closed while we stalled.
  net::awaitable<bool> inject_fault(tcp::socket& sock, wire::fail_mode mode) {
    ++faults_injected;
    switch (mode) {
      case wire::fail_mode::reset:
        abortive_close(sock);
        co_return false;
      case wire::fail_mode::truncate: {
        boost::system::error_code ec;
        sock.shutdown(tcp::socket::shutdown_send, ec);
        sock.close(ec);
        co_return false;
      }
      case wire::fail_mode::stall: {
        const bool timed_out = co_await watchful_sleep(sock, 60s);
        abortive_close(sock);
        co_return !timed_out;
      }
      case wire::fail_mode::none:
        break;
    }
    co_return false;
  }

  template <class Stream>
  net::awaitable<after> send_stream(Stream& stream, const wire::script& s, bool keep_alive) {
    tcp::socket& sock = beast::get_lowest_layer(stream);
    const wire::framed_stream plan = wire::stream_events(s);
    if (!co_await write_all(stream, wire::response_head(200, plan.content_type, -1, keep_alive))) {
      co_return after::closed;
    }
    ++streams_started;
    // K content events, then the fault. K >= the content events: the fault replaces the event
    // after the last content event, or the last event (a Gemini stream has no end marker), so a
    // faulted stream never completes.
    const std::size_t fail_at =
        std::min(plan.first_content + std::min(static_cast<std::size_t>(s.fail_after), plan.content_events),
                 plan.events.size() - 1);
    const auto aborted = [this] {
      ++streams_aborted;
      return after::closed;
    };
    for (std::size_t i = 0; i < plan.events.size(); ++i) {
      if (s.fail != wire::fail_mode::none && i == fail_at) {
        if (co_await inject_fault(sock, s.fail)) ++streams_aborted;
        co_return after::closed;
      }
      if (s.delay_ms > 0) {
        if (!co_await watchful_sleep(sock, std::chrono::milliseconds(s.delay_ms))) co_return aborted();
      } else if (peer_gone(sock)) {
        co_return aborted();
      }
      if (s.comments && !co_await write_all(stream, wire::chunk(wire::sse_comment(s.crlf)))) {
        co_return aborted();
      }
      const std::string& event = plan.events[i];
      if (s.split) {
        // Two HTTP chunks, the cut inside the JSON, so the SSE event spans two reads and two
        // chunks on the proxy's side.
        const std::size_t half = event.size() / 2;
        if (!co_await write_all(stream, wire::chunk(std::string_view(event).substr(0, half))) ||
            !co_await watchful_sleep(sock, 5ms) ||
            !co_await write_all(stream, wire::chunk(std::string_view(event).substr(half)))) {
          co_return aborted();
        }
      } else if (!co_await write_all(stream, wire::chunk(event))) {
        co_return aborted();
      }
    }
    if (!co_await write_all(stream, wire::last_chunk)) co_return aborted();
    ++streams_completed;
    co_return keep_alive ? after::keep_alive : after::close;
  }

  // Everything a script can ask for, event by event.
  template <class Stream>
  net::awaitable<after> send_scripted(Stream& stream, const wire::script& s, bool keep_alive) {
    tcp::socket& sock = beast::get_lowest_layer(stream);
    if (s.first_byte_delay_ms > 0 &&
        !co_await watchful_sleep(sock, std::chrono::milliseconds(s.first_byte_delay_ms))) {
      co_return after::close;
    }
    if (s.fail != wire::fail_mode::none && s.fail_before_header) {
      co_await inject_fault(sock, s.fail);
      co_return after::closed;
    }
    if (s.status != 200) {
      co_return co_await send_reply(stream, s.status, wire::status_error(s.kind, s.status), keep_alive);
    }
    if (s.stream) co_return co_await send_stream(stream, s, keep_alive);

    const std::string body = wire::response_body(s);
    std::string bytes = wire::response_head(200, "application/json",
                                            static_cast<long long>(body.size()), keep_alive);
    if (s.fail == wire::fail_mode::none) {
      if (!co_await write_all(stream, bytes + body)) co_return after::closed;
      co_return keep_alive ? after::keep_alive : after::close;
    }
    // A fault in a Content-Length body: the header and at most all but the last byte.
    bytes.append(body, 0, std::min<std::size_t>(static_cast<std::size_t>(s.fail_after),
                                                body.size() - 1));
    if (co_await write_all(stream, bytes)) co_await inject_fault(sock, s.fail);
    co_return after::closed;
  }

  template <class Stream>
  net::awaitable<after> respond(Stream& stream, http::request<http::string_body>& req) {
    const bool keep_alive = req.keep_alive();
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));

    if (req.method() == http::verb::get && path == "/_stats") {
      const fake_upstream_stats st = snapshot();
      const std::string body =
          "{\"connections\":" + std::to_string(st.connections) +
          ",\"requests\":" + std::to_string(st.requests) +
          ",\"streams_started\":" + std::to_string(st.streams_started) +
          ",\"streams_completed\":" + std::to_string(st.streams_completed) +
          ",\"streams_aborted\":" + std::to_string(st.streams_aborted) +
          ",\"faults_injected\":" + std::to_string(st.faults_injected) + "}";
      const std::string bytes = wire::response_head(200, "application/json",
                                                    static_cast<long long>(body.size()), keep_alive) +
                                body;
      if (!co_await write_all(stream, bytes)) co_return after::closed;
      co_return keep_alive ? after::keep_alive : after::close;
    }

    if (options.record_requests) {
      recorded_request r;
      r.method = std::string(req.method_string());
      r.target = std::string(target);
      for (const auto& field : req) {
        auto [it, inserted] = r.headers.emplace(lower(field.name_string()), std::string(field.value()));
        if (!inserted) it->second += ", " + std::string(field.value());
      }
      r.body = req.body();
      std::lock_guard lock(mutex);
      recorded.push_back(std::move(r));
    }
    // Counted after recording, so a test that saw requests == n finds n recorded requests.
    ++requests;

    wire::endpoint kind = wire::endpoint::chat;
    std::string gemini_model;
    bool gemini_stream = false;
    const bool post = req.method() == http::verb::post;
    if (post && path == "/v1/chat/completions") {
      kind = wire::endpoint::chat;
    } else if (post && path == "/v1/completions") {
      kind = wire::endpoint::completions;
    } else if (post && path == "/v1/embeddings") {
      kind = wire::endpoint::embeddings;
    } else if (post && path == "/v1/messages") {
      kind = wire::endpoint::anthropic;
    } else if (post && path == "/api/chat") {
      kind = wire::endpoint::ollama;
    } else if (post && gemini_route(target, gemini_model, gemini_stream)) {
      kind = wire::endpoint::gemini;
      if (gemini_stream && target.find("alt=sse") == std::string_view::npos) {
        co_return co_await send_reply(
            stream, 400, wire::error_for(kind, 400, "the fake streams Gemini only with ?alt=sse"), keep_alive);
      }
    } else {
      co_return co_await send_error(
          stream, 404, "Invalid URL (" + std::string(req.method_string()) + " " + std::string(path) + ")",
          "invalid_request_error", {}, keep_alive);
    }

    wire::script s;
    if (std::string error = wire::parse_script(req.body(), kind, s, gemini_model, gemini_stream);
        !error.empty()) {
      co_return co_await send_reply(stream, 400, wire::error_for(kind, 400, error), keep_alive);
    }
    if (!s.plain()) co_return co_await send_scripted(stream, s, keep_alive);

    const std::shared_ptr<const std::string> bytes = plain_response(s, keep_alive);
    if (s.stream) ++streams_started;
    if (!co_await write_all(stream, *bytes)) {
      if (s.stream) ++streams_aborted;
      co_return after::closed;
    }
    if (s.stream) ++streams_completed;
    co_return keep_alive ? after::keep_alive : after::close;
  }

  // ---- connections -----------------------------------------------------------------------

  template <class Stream>
  net::awaitable<void> serve(Stream& stream) {
    tcp::socket& sock = beast::get_lowest_layer(stream);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(64 * 1024 * 1024);
      auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
      if (!ec && !parser.is_done()) {
        if (beast::iequals(parser.get()[http::field::expect], "100-continue") &&
            !co_await write_all(stream, "HTTP/1.1 100 Continue\r\n\r\n")) {
          co_return;
        }
        std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, use_tuple);
      }
      after next = after::close;
      if (!ec) {
        next = co_await respond(stream, parser.get());
      } else if (ec == http::error::body_limit) {
        next = co_await send_error(stream, 413, "request body too large", "invalid_request_error",
                                   {}, false);
      } else if (ec == http::error::header_limit) {
        next = co_await send_error(stream, 431, "request header too large", "invalid_request_error",
                                   {}, false);
      } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
        next = co_await send_error(stream, 400, "malformed HTTP request: " + ec.message(),
                                   "invalid_request_error", {}, false);
      } else {
        next = after::closed;  // the peer went away between or during requests
      }
      if (next == after::keep_alive) continue;
      if (next == after::close) co_await lingering_close(sock);
      boost::system::error_code ignored;
      sock.close(ignored);
      co_return;
    }
  }

  net::awaitable<void> session(tcp::socket sock) {
    boost::system::error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    if (!tls) {
      co_await serve(sock);
      co_return;
    }
    ssl::stream<tcp::socket> stream(std::move(sock), *tls);
    std::tie(ec) = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
    if (ec) co_return;
    co_await serve(stream);
  }

  net::awaitable<void> accept_loop() {
    net::steady_timer backoff(acceptor->get_executor());
    for (;;) {
      net::io_context& ctx = *contexts[next_context++ % contexts.size()];
      auto [ec, sock] = co_await acceptor->async_accept(ctx, use_tuple);
      if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
      if (ec) {  // e.g. EMFILE under load: back off instead of spinning
        backoff.expires_after(10ms);
        co_await backoff.async_wait(use_tuple);
        continue;
      }
      ++connections;
      net::co_spawn(ctx, session(std::move(sock)), [](const std::exception_ptr&) {
        // A session that throws (only std::bad_alloc is plausible) just ends its connection.
      });
    }
  }
};

fake_upstream::fake_upstream(fake_upstream_options options) : impl_(std::make_unique<impl>()) {
  impl& self = *impl_;
  self.options = std::move(options);
  const int threads = std::max(1, self.options.threads);

  if (!self.options.tls_cert_file.empty() && !self.options.tls_key_file.empty()) {
    self.tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    self.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3);
    self.tls->use_certificate_chain_file(self.options.tls_cert_file);
    self.tls->use_private_key_file(self.options.tls_key_file, ssl::context::pem);
  }

  for (int i = 0; i < threads; ++i) {
    self.contexts.push_back(std::make_unique<net::io_context>(1));
    self.guards.push_back(net::make_work_guard(*self.contexts.back()));
  }

  const std::string host = self.options.host == "localhost" ? "127.0.0.1" : self.options.host;
  const tcp::endpoint endpoint(net::ip::make_address(host), self.options.port);
  self.acceptor = std::make_unique<tcp::acceptor>(*self.contexts.front());
  self.acceptor->open(endpoint.protocol());
  self.acceptor->set_option(net::socket_base::reuse_address(true));
  self.acceptor->bind(endpoint);
  self.acceptor->listen(net::socket_base::max_listen_connections);
  self.port = self.acceptor->local_endpoint().port();

  net::co_spawn(*self.contexts.front(), self.accept_loop(), [](const std::exception_ptr&) {});
  for (auto& ctx : self.contexts) {
    self.threads.emplace_back([&ctx = *ctx] {
      for (;;) {
        try {
          ctx.run();
          return;
        } catch (...) {  // keep serving; a handler's exception must not kill the fake
        }
      }
    });
  }
}

fake_upstream::~fake_upstream() {
  impl& self = *impl_;
  // Stop first, then destroy: the pending coroutine frames (and their sockets) are destroyed
  // with the io_contexts, after every thread has left run(), so nothing races the teardown.
  for (auto& ctx : self.contexts) ctx->stop();
  for (auto& t : self.threads) t.join();
  self.acceptor.reset();
  self.guards.clear();
  self.contexts.clear();
}

std::uint16_t fake_upstream::port() const { return impl_->port; }

bool fake_upstream::tls() const { return impl_->tls != nullptr; }

fake_upstream_stats fake_upstream::stats() const { return impl_->snapshot(); }

std::vector<recorded_request> fake_upstream::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->recorded;
}

bool fake_upstream::wait_until(std::function<bool(const fake_upstream_stats&)> pred,
                               std::chrono::milliseconds timeout) const {
  const auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (pred(stats())) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
}

}  // namespace tollgate::testing
