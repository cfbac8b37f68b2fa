#pragma once

// The response being read from an upstream. A plain head (see core/http_head.hpp) is read
// straight from the connection's buffer; anything else goes through Beast's parser, head only.
// The body is always delimited here: Content-Length, chunked coding (core::chunked_decoder)
// or the end of the connection. Beast alone spent most of a streamed event's relay cost on
// its chunk parsing, and thousands of instructions per response on the head.
#include "core/chunked_decoder.hpp"
#include "core/http_head.hpp"
#include "proxy/asio.hpp"
#include "proxy/header_arena.hpp"
#include "proxy/header_block.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace tollgate::proxy {

class upstream_response {
 public:
  // Starts the next response, keeping the memory. The arena serves Beast's fields when the
  // head is not plain.
  void reset(header_arena& arena, std::size_t max_header_bytes);

  // The parser protocol read_until() drives (see http_read.hpp), as Beast's parsers speak it:
  // put() takes what it can of `bytes` and returns how much; http::error::need_more when the
  // head is not all there yet. Body bytes go to body(), which the relay drains.
  std::size_t put(net::const_buffer bytes, error_code& ec);
  // The connection ended: complete for a body delimited by it, partial_message otherwise.
  void put_eof(error_code& ec);
  bool got_some() const noexcept { return got_some_; }
  bool is_header_done() const noexcept { return header_done_; }
  bool is_done() const noexcept { return done_; }

  int status() const noexcept { return status_; }
  std::span<const header_field> fields() const noexcept { return head_.fields(); }
  const header_block& head() const noexcept { return head_; }
  // Set when the body is Content-Length delimited.
  std::optional<std::uint64_t> content_length() const noexcept;
  // Whether the connection may carry another request once this response is read.
  bool keep_alive() const noexcept { return keep_alive_; }
  std::string& body() noexcept { return body_; }

 private:
  using general_parser = http::response_parser<http::empty_body, arena_allocator<char>>;

  std::size_t put_head(std::string_view bytes, error_code& ec);
  std::size_t put_head_generally(std::string_view bytes, error_code& ec);
  void begin_body(core::body_framing framing, std::uint64_t length);

  std::size_t max_header_bytes_ = 0;
  header_arena* arena_ = nullptr;
  std::optional<general_parser> general_;
  header_block head_;
  int status_ = 0;
  bool got_some_ = false;
  bool header_done_ = false;
  bool done_ = false;
  bool keep_alive_ = false;
  core::body_framing framing_ = core::body_framing::none;
  std::uint64_t length_ = 0;
  std::uint64_t remaining_ = 0;
  core::chunked_decoder chunks_;
  std::string body_;
};

}  // namespace tollgate::proxy
