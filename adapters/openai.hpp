#pragma once

#include "core/providers.hpp"

#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

// The OpenAI-shaped front API, which is also the wire format of every OpenAI-compatible
// upstream (OpenAI, vLLM, Ollama's /v1, ...).
namespace tollgate::adapters::openai {

enum class endpoint : std::uint8_t { chat_completions, completions, embeddings };

// "/v1/chat/completions" -> chat_completions; the query string must already be stripped.
std::optional<endpoint> endpoint_for_path(std::string_view path) noexcept;
// The path below the API root: "/chat/completions". Appended to an upstream's base path.
std::string_view path_below_root(endpoint kind) noexcept;
// Stable metric label: "/v1/chat/completions".
std::string_view route_label(endpoint kind) noexcept;

struct usage {
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;
  std::uint64_t cached_prompt_tokens = 0;
};

struct front_request {
  endpoint kind = endpoint::chat_completions;
  std::string model;
  bool stream = false;
  // The client asked for the usage chunk itself; when it did not, tollgate asks for it
  // anyway (it meters every stream) and hides it again on the way back.
  bool client_wants_usage = false;
  // Empty when the client's bytes go upstream unchanged.
  std::string rewritten_body;
  // About four bytes of text per token: what a stream that dies before its usage chunk is
  // charged for the prompt.
  std::uint64_t prompt_tokens_estimate = 0;
};

struct request_error {
  std::string message;
  std::string param;  // the offending field, as OpenAI reports it ("" when none)
};

boost::system::result<front_request, request_error> parse_front_request(endpoint kind, std::string_view body);

// Parses a usage object's JSON text ({"prompt_tokens":..,"completion_tokens":..,...}).
std::optional<usage> parse_usage(std::string_view usage_json) noexcept;

// What the relay should do with one streamed chunk's `data:` payload.
struct stream_chunk_outcome {
  enum class action : std::uint8_t { forward, erase, drop };
  action what = action::forward;
  // erase: the payload without its bytes [erase_begin, erase_end) is what the client gets. A
  // range rather than a new string: the relay splices the event's bytes around it, one copy.
  std::size_t erase_begin = 0;
  std::size_t erase_end = 0;
  std::optional<usage> found_usage;
  // The chunk carries generated text or tool-call arguments: roughly one token, which is what
  // a stream cut off before its usage chunk is charged per such chunk.
  bool delivers_output = false;
};

// hide_usage: the client did not ask for usage, so `"usage":null` members are removed and a
// usage-only chunk (empty choices) is dropped: the client sees what the upstream would have sent it.
void inspect_stream_chunk(std::string_view data, bool hide_usage, stream_chunk_outcome& out);

// The same JSON object with its top-level "model" replaced: an alias or "provider/model"
// becomes the name the provider knows. Works for any request body with a "model" member.
std::string replace_model(std::string_view body, std::string_view model);

// GET /v1/models: every listed model as "provider/model" and, where no other provider lists
// it, by its bare name; then every alias.
std::string models_list(const core::provider_set& providers);

// {"error":{"message":..,"type":..,"param":..,"code":..}}
std::string error_body(std::string_view message, std::string_view type, std::string_view code,
                       std::string_view param = {});

}  // namespace tollgate::adapters::openai
