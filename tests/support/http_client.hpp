#pragma once

// A small blocking HTTP/1.1 client for tests, always to 127.0.0.1. Every call is bounded by its
// timeout and throws http_error on timeout or failure; tests may use exceptions, and a clear
// message beats a hung test.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tollgate::testing {

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers{};  // lower-case; repeated fields joined by ", "
  std::string body{};                            // decoded (chunked framing removed)
};

class http_error : public std::runtime_error {
 public:
  http_error(const std::string& what, bool timed_out)
      : std::runtime_error(what), timed_out_(timed_out) {}
  bool timed_out() const { return timed_out_; }

 private:
  bool timed_out_;
};

using http_headers = std::map<std::string, std::string>;

// One request on a fresh connection, closed afterwards. A non-empty body gets
// Content-Type: application/json unless `headers` sets one.
http_response http_request(std::uint16_t port, std::string method, std::string target,
                           std::string body = {}, http_headers headers = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

// One kept-alive connection: several requests on the same socket, or one response read piece
// by piece (streaming), or an abrupt close mid-response. Not thread-safe. A timeout closes the
// connection (the operation cannot be resumed reliably), so later calls throw.
class http_connection {
 public:
  explicit http_connection(std::uint16_t port,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~http_connection();

  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  // A whole request/response exchange on this connection.
  http_response request(std::string method, std::string target, std::string body = {},
                        http_headers headers = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Streaming: send the request, then read the header, then the body as it arrives.
  void start(std::string method, std::string target, std::string body = {},
             http_headers headers = {},
             std::chrono::milliseconds timeout = std::chrono::seconds(10));
  http_response read_header(std::chrono::milliseconds timeout = std::chrono::seconds(10));  // body empty
  // The next decoded body bytes, as soon as any arrive; nullopt once the body is complete.
  // Throws if the connection breaks before the body is complete (reset, truncated chunked
  // body, ...) or nothing arrives within the timeout.
  std::optional<std::string> read_body_some(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The rest of the body (until complete), with the same error rules.
  std::string read_body(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Abrupt close, as a client that goes away mid-response: FIN, or RST with reset = true
  // (the kernel sends RST anyway if unread response bytes are pending).
  void close(bool reset = false);
  // Half-close: FIN after what was sent, while the response can still be read.
  void shutdown_send();
  bool is_open() const;
  // Has the server closed its side (FIN or RST)? Waits up to `wait` for it; bytes that arrive
  // meanwhile are kept for the next read. True after our own close().
  bool remote_closed(std::chrono::milliseconds wait = std::chrono::milliseconds(0));

  std::uint16_t local_port() const;  // our ephemeral port, to correlate with server logs

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Connects, sends raw_bytes as is, and returns everything received until the server closes
// the connection (FIN or RST) or the timeout passes. For malformed-HTTP tests. Throws only if
// the connection cannot be made.
std::string raw_exchange(std::uint16_t port, std::string raw_bytes,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));
// The same with the bytes sent in pieces, `pause` apart: a request that arrives over several reads.
std::string raw_exchange(std::uint16_t port, const std::vector<std::string>& pieces, std::chrono::milliseconds pause,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace tollgate::testing
