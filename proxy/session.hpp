#pragma once

#include "proxy/asio.hpp"
#include "proxy/client_connection.hpp"
#include "proxy/worker_context.hpp"

#include <unordered_set>

namespace tollgate::proxy {

// What a worker needs to see of each client connection to drain it: idle ones are closed at
// once, busy ones finish their request and then close.
struct session_handle {
  client_connection* connection = nullptr;
  bool busy = false;
};
using session_set = std::unordered_set<session_handle*>;

// Serves one client connection: HTTP/1.1 keep-alive, one request at a time.
net::awaitable<void> serve_client(worker_context& worker, session_set& sessions, tcp::socket socket);

}  // namespace tollgate::proxy
