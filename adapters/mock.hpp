#pragma once

#include "adapters/openai.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// The built-in `mock` provider's answers: deterministic, OpenAI-shaped, no network. The proxy
// adds the timing (per-token latency); everything about content lives here.
namespace tollgate::adapters::mock {

// Models whose name contains "echo" repeat the last user message; every other model writes
// lorem ipsum of the requested length (max_completion_tokens / max_tokens, default 32 words).
struct reply {
  std::vector<std::string> tokens;  // each is one streamed delta, a word and its trailing space
  openai::usage usage;
};

reply make_reply(const boost::json::object& request, std::string_view model);

// Bodies and chunks in OpenAI's exact wire shapes.
std::string completion_body(const reply& r, std::string_view model);
std::string embeddings_body(const boost::json::object& request, std::string_view model, openai::usage& usage);

// One `data: {...}\n\n` event each.
std::string role_chunk(std::string_view model, bool with_usage_null);
std::string token_chunk(std::string_view model, std::string_view token, bool with_usage_null);
std::string finish_chunk(std::string_view model, bool with_usage_null);
std::string usage_chunk(std::string_view model, const openai::usage& usage);

// Longest reply the mock writes, whatever max_tokens asks for.
inline constexpr std::size_t max_tokens = 4096;

}  // namespace tollgate::adapters::mock
