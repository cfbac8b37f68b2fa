#pragma once

// Shared between fake_wire.cpp (OpenAI, parsing) and fake_wire_providers.cpp (Anthropic,
// Gemini, Ollama). Not for tests: use fake_wire.hpp.

#include "tests/support/fake_wire.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <string_view>

namespace tollgate::testing::fake_wire::detail {

inline constexpr std::string_view script_prefix = "fake:";

// Applies the options of a "fake" object to `out`; an error message for unknown or mistyped
// options (strict: a misspelt option in a test must not silently do nothing).
std::string apply_fake(const boost::json::object& fake, script& out);

// When `text` (a last user message) starts with "fake:", applies the JSON object after it.
std::string apply_message_script(std::string_view text, script& out);

// Anthropic, Gemini and Ollama request bodies; `out` already has kind, and for Gemini the
// model and stream from the URL.
std::string parse_provider_request(const boost::json::object& body, script& out);

std::string provider_body(const script& s);
framed_stream provider_stream(const script& s);
error_reply provider_error(endpoint kind, int status, std::string_view message, bool scripted);

}  // namespace tollgate::testing::fake_wire::detail
