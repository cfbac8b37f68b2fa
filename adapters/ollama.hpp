#pragma once

#include "adapters/openai.hpp"
#include "adapters/provider.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

// Ollama's native chat API (POST /api/chat), which streams newline-delimited JSON. Ollama also
// serves an OpenAI-compatible /v1; this adapter exists for deployments that only expose the
// native API and for its exact token counts (prompt_eval_count, eval_count).
//
// Pure functions over Boost.JSON: no I/O, and nothing here throws.
namespace tollgate::adapters::ollama {

// The OpenAI chat request as Ollama's /api/chat body. "stream" is always sent explicitly
// (taken from options.stream): Ollama streams unless told otherwise. Errors name the
// offending OpenAI parameter and become a 400 for the client.
boost::system::result<upstream_call, openai::request_error> translate_request(
    const boost::json::object& openai_request, const translation_options& options);

using adapters::translated_response;

// A non-streamed /api/chat answer as an OpenAI chat.completion. The error string (for logs)
// means the upstream sent something that is not an Ollama chat response.
boost::system::result<translated_response, std::string> translate_response(
    std::string_view body, const translation_options& options);

// An Ollama error answer ({"error":"..."} with its HTTP status) as an OpenAI-shaped error.
translated_error translate_error(int status, std::string_view body);

// Feed it one NDJSON line per on_event (event_type empty).
std::unique_ptr<stream_translator> make_stream_translator(const translation_options& options);

}  // namespace tollgate::adapters::ollama
