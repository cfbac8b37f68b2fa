#include "proxy/request_reader.hpp"

#include "core/http_head.hpp"
#include "proxy/http_read.hpp"

#include <algorithm>

namespace tollgate::proxy {
namespace {

using kind = read_outcome::kind;
using request_message = http::request<http::string_body, arena_fields>;

// How a read that failed before a request began ends: quietly for a client that left or
// idled out, with a 400 for anything else.
read_outcome before_request(error_code ec, bool got_some) {
  read_outcome outcome;
  if (ec == net::error::eof) {
    if (!got_some) return outcome;
    ec = http::error::partial_message;
  }
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
      ec == net::error::connection_reset || ec == net::error::bad_descriptor)
    return outcome;
  outcome.what = ec == http::error::body_limit ? kind::too_large : kind::malformed;
  outcome.ec = ec;
  return outcome;
}

struct plain_head {
  core::head_status status = core::head_status::incomplete;
  std::size_t head_bytes = 0;
  std::uint64_t content_length = 0;
  bool keep_alive = false;
};

// Not a coroutine: core::request_head is big, and belongs on a stack rather than in a frame.
plain_head take_plain_head(const beast::flat_buffer& buffer, client_request& request, std::size_t max_header_bytes) {
  core::request_head head;
  const std::string_view bytes(static_cast<const char*>(buffer.data().data()), buffer.size());
  plain_head result;
  result.status = core::read_request_head(bytes, head);
  if (result.status != core::head_status::complete) return result;
  if (head.head_bytes > max_header_bytes) {
    result.status = core::head_status::unusual;  // the general parser reports the limit
    return result;
  }
  request.reset(0);
  const auto moved = request.head().adopt(bytes.substr(0, head.head_bytes), head.headers);
  request.set_line(moved(head.method), moved(head.target), head.http11);
  result.head_bytes = head.head_bytes;
  result.content_length = head.content_length;
  result.keep_alive = head.keep_alive;
  return result;
}

// What Beast parsed, as a client_request.
void adopt_parsed(const request_message& parsed, client_request& request) {
  request.reset(parsed.method_string().size() + parsed.target().size() + header_block::text_bytes_of(parsed));
  auto& head = request.head();
  request.set_line(head.keep(parsed.method_string()), head.keep(parsed.target()), parsed.version() == 11);
  head.add_parsed(parsed);
}

// curl and some SDKs wait for this before sending a body over 1 KiB.
net::awaitable<void> continue_if_expected(client_connection& client, std::string_view expect) {
  if (!beast::iequals(expect, "100-continue")) co_return;
  static constexpr std::string_view proceed = "HTTP/1.1 100 Continue\r\n\r\n";
  co_await net::async_write(client, net::buffer(proceed), use_nothrow);
}

// Everything the plain reader leaves alone: chunked bodies, folded lines, over-long heads,
// and whatever is not HTTP at all.
net::awaitable<read_outcome> read_with_parser(client_connection& client, client_request& request,
                                              request_limits limits) {
  http::request_parser<http::string_body, arena_allocator<char>> parser(
      std::piecewise_construct, std::make_tuple(std::move(request.body())),
      std::make_tuple(arena_allocator<char>(client.arena())));
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.max_body_bytes);
  parser.eager(true);  // a body that is all buffered is taken in one put()
  read_outcome outcome;
  error_code ec = co_await read_until(client, parser, head_done);
  if (ec) {
    outcome = before_request(ec, true);
    request.reset(0);
  } else {
    outcome.has_head = true;
    adopt_parsed(parser.get(), request);
    if (!parser.is_done()) {
      co_await continue_if_expected(client, request.head().value_of(core::header_name::expect));
      ec = co_await read_until(client, parser, message_done);
    }
    outcome.what = !ec ? kind::request : ec == http::error::body_limit ? kind::too_large : kind::body_lost;
    outcome.keep_alive = parser.keep_alive();
    outcome.ec = ec;
  }
  request.body() = std::move(parser.get().body());
  co_return outcome;
}

}  // namespace

net::awaitable<read_outcome> read_request(client_connection& client, client_request& request, request_limits limits) {
  auto& buffer = client.read_buffer();
  for (;;) {
    if (buffer.size() > 0) {
      const plain_head head = take_plain_head(buffer, request, limits.max_header_bytes);
      if (head.status == core::head_status::complete) {
        buffer.consume(head.head_bytes);
        read_outcome outcome{kind::request, true, head.keep_alive, {}};
        if (head.content_length > limits.max_body_bytes) {
          outcome.what = kind::too_large;
          co_return outcome;
        }
        // Bodies are read straight into their string, whatever of them is not buffered already.
        auto& body = request.body();
        const auto length = static_cast<std::size_t>(head.content_length);
        const std::size_t buffered = std::min(buffer.size(), length);
        body.assign(static_cast<const char*>(buffer.data().data()), buffered);
        buffer.consume(buffered);
        if (buffered == length) co_return outcome;
        co_await continue_if_expected(client, request.head().value_of(core::header_name::expect));
        body.resize(length);
        for (std::size_t have = buffered; have < length;) {
          auto [ec, n] = co_await client.async_read_some(net::buffer(body.data() + have, length - have), use_nothrow);
          have += n;
          if (ec) {
            outcome.what = kind::body_lost;
            outcome.ec = ec;
            break;
          }
        }
        co_return outcome;
      }
      if (head.status == core::head_status::unusual || buffer.size() >= limits.max_header_bytes)
        co_return co_await read_with_parser(client, request, limits);
    }
    const std::size_t room = beast::read_size(buffer, read_chunk_bytes);
    auto [ec, n] = co_await client.async_read_some(buffer.prepare(room), use_nothrow);
    buffer.commit(n);
    if (ec) co_return before_request(ec, buffer.size() > 0);
  }
}

}  // namespace tollgate::proxy
