#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tollgate::core {

// The wire formats tollgate speaks to upstreams. `openai` covers every OpenAI-compatible
// server (OpenAI, vLLM, DeepSeek, Groq, NIM, Ollama's /v1).
enum class provider_type : std::uint8_t { openai, anthropic, gemini, ollama, mock };

constexpr std::string_view provider_type_name(provider_type type) noexcept {
  switch (type) {
    case provider_type::openai: return "openai";
    case provider_type::anthropic: return "anthropic";
    case provider_type::gemini: return "gemini";
    case provider_type::ollama: return "ollama";
    case provider_type::mock: return "mock";
  }
  return "openai";
}

constexpr std::optional<provider_type> parse_provider_type(std::string_view text) noexcept {
  for (auto type : {provider_type::openai, provider_type::anthropic, provider_type::gemini, provider_type::ollama,
                    provider_type::mock})
    if (provider_type_name(type) == text) return type;
  return std::nullopt;
}

}  // namespace tollgate::core
