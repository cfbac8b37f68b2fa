#pragma once

#include "adapters/openai.hpp"
#include "adapters/provider.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

// Anthropic Messages API (POST {base}/messages) behind the OpenAI chat.completions front API.
// Pure functions: no I/O, no clock, no exceptions escaping except std::bad_alloc.
// The field-by-field mapping and its deliberate gaps are tabled at the top of anthropic.cpp.
namespace tollgate::adapters::anthropic {

// The Messages API version every translated request is written against.
inline constexpr std::string_view api_version = "2023-06-01";

// An OpenAI chat.completions request (already validated: has model and non-empty messages)
// as a Messages API call. Parameters Anthropic cannot honour and whose loss would change the
// answer silently (n > 1, logprobs, response_format, audio, ...) are a request_error, which
// the proxy returns as a 400. options.stream, not the body's "stream", decides "stream": the
// proxy picks the response translator from the same flag, so the two always agree.
boost::system::result<upstream_call, openai::request_error> translate_request(
    const boost::json::object& openai_request, const translation_options& options);

using adapters::translated_response;

// A 2xx Messages API body as an OpenAI chat.completion body. The error string (for logs, not
// for clients) says why the body is not a Messages response. "created" is 0: the adapter has
// no clock and Anthropic's message carries no timestamp.
boost::system::result<translated_response, std::string> translate_response(std::string_view body,
                                                                           const translation_options& options);

// An Anthropic error answer ({"type":"error","error":{"type":..,"message":..}}) as an
// OpenAI-shaped error with the status OpenAI clients expect (529 overloaded -> 503). The
// error's "code" keeps Anthropic's error type. Any body, JSON or not, gives a valid result.
translated_error translate_error(int status, std::string_view body);

// Messages API server-sent events -> chat.completion.chunk events. See anthropic_stream.cpp
// for the exact chunk sequence.
std::unique_ptr<stream_translator> make_stream_translator(const translation_options& options);

// Usage from native Messages traffic (the /v1/messages pass-through): message_start carries
// the prompt side, message_delta the cumulative output count. A whole non-streamed message
// (type "message") is accepted too. event_type may be empty (the data's "type" decides).
// Counts only ever grow; unrelated or malformed events leave `usage` unchanged.
void accumulate_native_usage(std::string_view event_type, std::string_view data, openai::usage& usage);

}  // namespace tollgate::adapters::anthropic
