#include "adapters/registry.hpp"

#include "adapters/anthropic.hpp"
#include "adapters/gemini.hpp"
#include "adapters/ollama.hpp"

namespace tollgate::adapters {

const provider_adapter* translating_adapter(provider_type type) noexcept {
  static constexpr provider_adapter anthropic_adapter{anthropic::translate_request, anthropic::translate_response,
                                                      anthropic::translate_error, anthropic::make_stream_translator};
  static constexpr provider_adapter gemini_adapter{gemini::translate_request, gemini::translate_response,
                                                   gemini::translate_error, gemini::make_stream_translator};
  static constexpr provider_adapter ollama_adapter{ollama::translate_request, ollama::translate_response,
                                                   ollama::translate_error, ollama::make_stream_translator};
  switch (type) {
    case provider_type::anthropic: return &anthropic_adapter;
    case provider_type::gemini: return &gemini_adapter;
    case provider_type::ollama: return &ollama_adapter;
    case provider_type::openai:
    case provider_type::mock: return nullptr;
  }
  return nullptr;
}

}  // namespace tollgate::adapters
