#pragma once

#include "adapters/openai.hpp"

#include <boost/system/result.hpp>

#include <string>
#include <string_view>

// Anthropic's own front API (POST /v1/messages), relayed natively to Anthropic providers so
// the Anthropic SDKs work through tollgate unchanged.
namespace tollgate::adapters::anthropic {

struct native_request {
  std::string model;
  bool stream = false;
};

boost::system::result<native_request, openai::request_error> parse_native_request(std::string_view body);

// {"type":"error","error":{"type":..,"message":..}}: what an Anthropic SDK expects.
std::string native_error_body(std::string_view type, std::string_view message);

// Anthropic's error type for an HTTP status tollgate produces itself.
std::string_view native_error_type(int status) noexcept;

}  // namespace tollgate::adapters::anthropic
