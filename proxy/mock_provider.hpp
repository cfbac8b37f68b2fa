#pragma once

#include "adapters/openai.hpp"
#include "proxy/asio.hpp"
#include "proxy/client_connection.hpp"
#include "proxy/request_context.hpp"
#include "proxy/worker_context.hpp"

#include <boost/json/object.hpp>

#include <chrono>

namespace tollgate::proxy {

struct mock_request {
  adapters::openai::endpoint kind;
  const boost::json::object& body;
  std::string_view model;
  bool stream;
  bool client_wants_usage;
  std::chrono::milliseconds token_latency;
  bool keep_alive;
};

// The built-in `mock` provider, answered in-process: no upstream, the same response shapes,
// timing (one token per token_latency) and accounting as a real OpenAI stream.
net::awaitable<bool> serve_mock(worker_context& worker, client_connection& client, const mock_request& request,
                                request_context& ctx);

}  // namespace tollgate::proxy
