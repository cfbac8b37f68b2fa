#pragma once

// A parser driven by plain reads on a connection that keeps its own read buffer
// (client_connection, upstream_connection): Beast's parsers, or upstream_response, which speaks
// the same put/put_eof protocol. http::async_read and friends wrap every read in three
// composed-operation layers, each with its own frame and executor bookkeeping; at tens of
// thousands of requests per second per core that was a measurable share of the CPU.
#include "proxy/asio.hpp"

namespace tollgate::proxy {

// How much one read asks for: a whole typical message head, or a burst of stream events.
inline constexpr std::size_t read_chunk_bytes = 16 * 1024;

// Feeds what the connection already holds to the parser; true when the parser has had
// enough for now (the message, or its part being waited for, is complete) or failed.
template <class Parser, class Done>
bool parse_buffered(beast::flat_buffer& buffer, Parser& parser, error_code& ec, Done done) {
  ec = {};
  if (buffer.size() > 0) {
    std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == http::error::need_more) ec = {};
    if (ec) return true;
  }
  return done(parser);
}

// Reads and parses until done(parser) holds. A connection that ends first yields
// http::error::end_of_stream when nothing of the message had arrived (a keep-alive peer that
// closed, or a pooled connection the server closed), or the parser's verdict on the part that
// had (partial_message, or success for a body delimited by the end of the connection).
template <class Connection, class Parser, class Done>
net::awaitable<error_code> read_until(Connection& connection, Parser& parser, Done done) {
  auto& buffer = connection.read_buffer();
  for (;;) {
    error_code ec;
    if (parse_buffered(buffer, parser, ec, done)) co_return ec;
    std::size_t room = beast::read_size(buffer, read_chunk_bytes);
    if (room == 0) co_return http::make_error_code(http::error::buffer_overflow);
    auto [read_ec, n] = co_await connection.async_read_some(buffer.prepare(room), use_nothrow);
    buffer.commit(n);
    if (read_ec == net::error::eof) {
      error_code eof_ec = http::error::end_of_stream;
      if (parser.got_some()) parser.put_eof(eof_ec);
      co_return eof_ec;
    }
    if (read_ec) co_return read_ec;
  }
}

inline constexpr auto head_done = [](const auto& parser) { return parser.is_header_done(); };
inline constexpr auto message_done = [](const auto& parser) { return parser.is_done(); };

}  // namespace tollgate::proxy
