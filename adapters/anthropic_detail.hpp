#pragma once

#include "adapters/openai.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <string_view>

// Pieces shared by anthropic.cpp (whole responses) and anthropic_stream.cpp (streams), so a
// stop reason or an error type maps the same way on both paths. Not part of the adapter API.
namespace tollgate::adapters::anthropic::detail {

// Anthropic's usage object keeps the prompt in three parts; OpenAI's prompt_tokens is the
// whole prompt, so the parts are kept apart until the sum is needed.
struct usage_counts {
  std::uint64_t input = 0;
  std::uint64_t output = 0;
  std::uint64_t cache_read = 0;
  std::uint64_t cache_creation = 0;
  bool seen = false;  // at least one count was read

  // Takes each count present in `usage`, never lowering one already seen: message_delta
  // counts are cumulative, and a later event must not undo an earlier one.
  void merge(const boost::json::object& usage);
  openai::usage to_openai() const noexcept;
};

// stop_reason -> finish_reason ("end_turn" -> "stop", "tool_use" -> "tool_calls", ...).
std::string_view finish_reason_for(std::string_view stop_reason) noexcept;

// Anthropic error type -> OpenAI error type ("overloaded_error" -> "server_error").
std::string_view openai_error_type_for(std::string_view anthropic_type) noexcept;

// {"error":{"message":"Anthropic: <message>","type":<mapped>,"param":null,"code":<anthropic type>}}
std::string error_body_for(std::string_view anthropic_type, std::string_view message);

}  // namespace tollgate::adapters::anthropic::detail
