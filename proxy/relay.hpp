#pragma once

#include "adapters/registry.hpp"
#include "proxy/asio.hpp"
#include "proxy/client_connection.hpp"
#include "proxy/client_request.hpp"
#include "proxy/request_context.hpp"
#include "proxy/worker_context.hpp"

#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace tollgate::proxy {

enum class relay_mode : std::uint8_t {
  openai_passthrough,     // OpenAI-shaped client, OpenAI-compatible upstream: bytes relayed, usage read
  anthropic_passthrough,  // Anthropic client (/v1/messages), Anthropic upstream: the same, natively
  translated,             // OpenAI-shaped client, another provider's wire format
};

struct relay_request {
  const client_request& from_client;  // its header lines are forwarded in the passthrough modes
  const provider_runtime& provider;
  std::string_view upstream_path;  // below the provider's base path, query string included
  std::string_view upstream_body;
  std::span<const std::pair<std::string, std::string>> extra_headers;
  bool keep_alive;  // the client may send another request on this connection afterwards
  bool stream;      // the client asked for a streamed answer
  relay_mode mode;
  bool hide_usage = false;  // openai_passthrough: tollgate added include_usage, so strip it again
  const adapters::provider_adapter* adapter = nullptr;        // translated
  const adapters::translation_options* options = nullptr;     // translated
  adapters::stream_framing framing = adapters::stream_framing::sse;
  // The client authenticated with a tollgate virtual key: never pass it on to a provider.
  bool withhold_client_key = false;
};

// The relay phase: sends the request upstream and streams the answer back to the client with
// backpressure (one upstream read is written out before the next is issued), so memory per
// request stays bounded whatever the client's or upstream's speed.
// Fills ctx (statuses, timings, usage, error). Returns whether the client connection is still
// in a clean state to carry another request. `request` is taken by value so a caller may
// build it and return the relay's awaitable; what it views must outlive the relay.
net::awaitable<bool> relay(worker_context& worker, client_connection& client, relay_request request,
                           request_context& ctx);

}  // namespace tollgate::proxy
