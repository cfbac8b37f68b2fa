#pragma once

#include "proxy/asio.hpp"
#include "proxy/request_context.hpp"
#include "proxy/worker_context.hpp"

#include <string_view>

namespace tollgate::proxy {

struct relay_request {
  const http::request<http::string_body>& client_request;
  std::string_view upstream_body;
  bool keep_alive;  // the client may send another request on this connection afterwards
  bool hide_usage;  // tollgate added include_usage: strip what the client did not ask for
};

// The relay phase: sends the request upstream and streams the answer back to the client with
// backpressure (one upstream read is written out before the next is issued), so memory per
// request stays bounded whatever the client's or upstream's speed.
// Fills ctx (statuses, timings, usage, error). Returns whether the client connection is still
// in a clean state to carry another request.
net::awaitable<bool> relay(worker_context& worker, beast::tcp_stream& client, const relay_request& request,
                           request_context& ctx);

}  // namespace tollgate::proxy
