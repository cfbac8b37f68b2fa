#pragma once

#include "adapters/provider.hpp"

namespace tollgate::adapters {

// The operations of a provider whose wire format differs from OpenAI's. One table per type,
// so the proxy dispatches without knowing any provider by name.
struct provider_adapter {
  boost::system::result<upstream_call, openai::request_error> (*translate_request)(const boost::json::object&,
                                                                                   const translation_options&);
  boost::system::result<translated_response, std::string> (*translate_response)(std::string_view,
                                                                                const translation_options&);
  translated_error (*translate_error)(int status, std::string_view body);
  std::unique_ptr<stream_translator> (*make_stream_translator)(const translation_options&);
};

// nullptr for `openai` (relayed as is) and `mock` (answered in-process).
const provider_adapter* translating_adapter(provider_type type) noexcept;

}  // namespace tollgate::adapters
