#include "adapters/anthropic_native.hpp"

#include <boost/json.hpp>

namespace tollgate::adapters::anthropic {
namespace json = boost::json;

boost::system::result<native_request, openai::request_error> parse_native_request(std::string_view body) {
  unsigned char arena[8192];
  json::monotonic_resource resource(arena, sizeof(arena));
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec, &resource);
  if (ec) return openai::request_error{"The request body is not valid JSON: " + ec.message() + ".", ""};
  const auto* object = parsed.if_object();
  if (!object) return openai::request_error{"The request body must be a JSON object.", ""};
  const auto* model = object->if_contains("model");
  if (!model || !model->is_string() || model->get_string().empty())
    return openai::request_error{"model: Field required (a non-empty string).", "model"};
  const auto* messages = object->if_contains("messages");
  if (!messages || !messages->is_array())
    return openai::request_error{"messages: Field required (an array).", "messages"};
  native_request request;
  request.model = std::string(model->get_string());
  if (const auto* stream = object->if_contains("stream"); stream && !stream->is_null()) {
    if (!stream->is_bool()) return openai::request_error{"stream: Input should be a valid boolean.", "stream"};
    request.stream = stream->get_bool();
  }
  return request;
}

std::string native_error_body(std::string_view type, std::string_view message) {
  return json::serialize(json::object{{"type", "error"}, {"error", json::object{{"type", type}, {"message", message}}}});
}

std::string_view native_error_type(int status) noexcept {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    default: return "api_error";
  }
}

}  // namespace tollgate::adapters::anthropic
