#pragma once

// Reading the next request on a client connection. The plain shape every SDK sends (a
// Content-Length body or none, no chunking, no folding) is read by core::read_request_head
// straight from the connection's buffer; anything else goes to Beast's general parser. Beast
// alone spent several thousand instructions per request on what is mostly a dozen header lines.
#include "proxy/asio.hpp"
#include "proxy/client_connection.hpp"
#include "proxy/client_request.hpp"

#include <cstdint>

namespace tollgate::proxy {

struct request_limits {
  std::size_t max_header_bytes = 32 * 1024;
  std::uint64_t max_body_bytes = 0;
};

struct read_outcome {
  enum class kind : std::uint8_t {
    request,    // complete
    closed,     // the client left or went idle between requests: nothing to answer
    malformed,  // answer 400 and close; `ec` says why
    too_large,  // the body is over max_body_bytes: answer 413 and close
    body_lost,  // the client left part-way through the body
  };
  kind what = kind::closed;
  bool has_head = false;  // the request's method and target are set
  bool keep_alive = false;
  error_code ec;
};

// Reads the next request into `request`, replacing the previous one. The deadline the caller
// armed on the connection bounds the whole read.
net::awaitable<read_outcome> read_request(client_connection& client, client_request& request, request_limits limits);

}  // namespace tollgate::proxy
