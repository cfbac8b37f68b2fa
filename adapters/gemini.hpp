#pragma once

#include "adapters/openai.hpp"
#include "adapters/provider.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

// Google's Gemini API (generativelanguage.googleapis.com/v1beta) behind the OpenAI chat API.
// Pure functions over Boost.JSON: no I/O, and nothing here throws to the caller.
namespace tollgate::adapters::gemini {

// An OpenAI chat request (already checked by openai::parse_front_request) as a generateContent
// or streamGenerateContent?alt=sse call. Parameters Gemini cannot honour are refused with a
// message naming them rather than silently changing what the client asked for.
boost::system::result<upstream_call, openai::request_error> translate_request(const boost::json::object& openai_request,
                                                                              const translation_options& options);

using adapters::translated_response;

// A generateContent answer as an OpenAI chat.completion. The error is a message for a 502: the
// upstream said 200 but its body is not a GenerateContentResponse.
boost::system::result<translated_response, std::string> translate_response(std::string_view body,
                                                                           const translation_options& options);

// A Gemini error answer ({"error":{code,message,status}}, possibly wrapped in an array, or not
// JSON at all) as an OpenAI error body and status.
translated_error translate_error(int status, std::string_view body);

// streamGenerateContent?alt=sse events as chat.completion.chunk events.
std::unique_ptr<stream_translator> make_stream_translator(const translation_options& options);

}  // namespace tollgate::adapters::gemini
