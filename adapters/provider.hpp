#pragma once

#include "adapters/openai.hpp"
#include "core/provider_type.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The seam between the OpenAI-shaped front API and each provider's wire format. The relay
// drives these interfaces without knowing which provider is behind them.
namespace tollgate::adapters {

using core::provider_type;

// How an upstream frames a streamed body.
enum class stream_framing : std::uint8_t { sse, ndjson };

// Per-request facts a translation needs beyond the request body.
struct translation_options {
  std::string model;                     // the provider's model name (alias and "provider/" prefix resolved)
  std::uint32_t default_max_tokens = 4096;  // Anthropic requires max_tokens; used when the client sent none
  bool stream = false;
  bool client_wants_usage = false;       // the client asked for stream_options.include_usage
};

// A whole (non-streamed) answer translated to an OpenAI chat.completion body.
struct translated_response {
  std::string body;
  std::optional<openai::usage> usage;
};

// What to send upstream. Authentication headers are added by the proxy, not here.
struct upstream_call {
  std::string path;  // appended to the provider's base URL, query string included ("/messages")
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. anthropic-version
  stream_framing framing = stream_framing::sse;
};

// An upstream error answer turned into what the OpenAI-shaped client gets.
struct translated_error {
  int status = 502;
  std::string body;  // {"error":{"message","type","param","code"}}
};

// Turns one upstream stream into OpenAI chat.completion.chunk server-sent events.
// Appends only complete events ("data: {...}\n\n") to `out`.
class stream_translator {
 public:
  virtual ~stream_translator() = default;
  // One upstream event: for SSE its `event:` type (may be empty) and data; for NDJSON the line
  // as data and an empty type.
  virtual void on_event(std::string_view event_type, std::string_view data, std::string& out) = 0;
  // Called only when complete() and not failed(): appends what the OpenAI stream still owes
  // (the usage chunk when the client asked for it, "data: [DONE]"). For every other ending the
  // relay writes the error event (unless failed() says one went out) and "data: [DONE]" itself,
  // so each stream ends in exactly one way whichever provider is behind it.
  virtual void on_end(std::string& out) = 0;
  // The provider reported an error inside the stream; the translator already emitted it as an
  // OpenAI error event and ignores everything after it.
  virtual bool failed() const = 0;
  // Best knowledge of usage so far; a later event never zeroes an earlier count.
  virtual std::optional<openai::usage> usage() const = 0;
  // The provider said the answer is complete (message_stop, done:true, a finishReason, [DONE]).
  virtual bool complete() const = 0;
  // Text-bearing chunks relayed: the basis for charging a stream cut off before its usage.
  virtual std::uint64_t output_chunks() const = 0;
};

}  // namespace tollgate::adapters
