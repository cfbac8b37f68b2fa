#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

// HTTP/1.x message heads as real clients and servers send them, read without copying.
// HTTP/1.1 allows much more than they use (folded header lines, bare LF line ends, Upgrade,
// odd Connection options, transfer codings other than chunked); these readers accept only the
// plain shape and call everything else unusual, leaving it to a general parser. So they never
// have to be right about an edge case: on the bytes they accept, any conforming parser reaches
// the same result.
namespace tollgate::core {

// The header names tollgate acts on; every other name is `other` and is forwarded or dropped
// by its text alone. Classifying a line into this small vocabulary is a switch on the length
// and at most two compares: Beast's table of some 350 names cost about 140 instructions a
// line, on every line of every request and response. The head readers classify each line
// once, for their own framing checks and for whoever keeps the lines.
enum class header_name : std::uint8_t {
  other, accept_encoding, authorization, connection, content_length, content_type, expect, host,
  keep_alive, proxy_authenticate, proxy_authorization, proxy_connection, retry_after, te, trailer,
  transfer_encoding, upgrade,
};

// `name` must be a token, as every head reader (ours and Beast's) guarantees.
header_name classify_header(std::string_view name) noexcept;

struct http_header {
  std::string_view name;   // as sent; compare case-insensitively
  std::string_view value;  // without surrounding spaces or tabs
  header_name id;          // classify_header(name)
};

// More header lines than this is not the plain shape (SDKs send 10 to 20, providers 10 to 30).
inline constexpr std::size_t max_plain_headers = 64;

struct header_lines {
  header_lines() noexcept {}  // leaves `lines` unwritten: 2 KiB of zeros per head was a fifth of the reading
  std::size_t count = 0;
  union {
    std::array<http_header, max_plain_headers> lines;  // [0, count) is written
  };
};

enum class head_status : std::uint8_t {
  complete,    // the head is read; its body starts at head_bytes
  incomplete,  // no blank line yet: read more and ask again
  unusual,     // valid or not, not the plain shape: let a general parser decide
};

struct request_head {
  std::string_view method;
  std::string_view target;
  bool http11 = true;  // HTTP/1.1, else HTTP/1.0
  bool keep_alive = true;
  std::size_t head_bytes = 0;
  std::uint64_t content_length = 0;  // 0 when absent: a request without one has no body
  header_lines headers;
};

// Reads `bytes` as the start of a request. Views in `head` point into `bytes`. A request with
// a chunked body is unusual.
head_status read_request_head(std::string_view bytes, request_head& head) noexcept;

// How a response's body is delimited (RFC 9112, section 6.3).
enum class body_framing : std::uint8_t {
  none,         // 1xx, 204 and 304 have no body
  length,       // Content-Length bytes
  chunked,      // Transfer-Encoding: chunked
  until_close,  // neither: the body ends with the connection
};

struct response_head {
  int status = 0;
  bool http11 = true;
  bool keep_alive = true;
  body_framing framing = body_framing::none;
  std::uint64_t content_length = 0;  // framing == length
  std::size_t head_bytes = 0;
  header_lines headers;
};

// Reads `bytes` as the start of a response to a request that was not HEAD or CONNECT. Views
// in `head` point into `bytes`.
head_status read_response_head(std::string_view bytes, response_head& head) noexcept;

}  // namespace tollgate::core
