#include "core/providers.hpp"
#include "core/text.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace tollgate::core {
namespace {

constexpr std::array<std::string_view, 6> suffixes = {"TYPE", "BASE_URL", "API_KEY_ENV", "MODELS", "TIMEOUT_MS",
                                                      "TOKEN_LATENCY_MS"};

// Built in so a fresh checkout shows streaming without any provider: slow enough to watch.
constexpr std::chrono::milliseconds implicit_mock_latency{20};

std::vector<std::string_view> split_list(std::string_view text) {
  std::vector<std::string_view> items;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
    if (!item.empty()) items.push_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return items;
}

bool valid_provider_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::optional<std::chrono::milliseconds> parse_millis(std::string_view text, std::uint64_t min) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || value < min || value > 86'400'000)
    return std::nullopt;
  return std::chrono::milliseconds(value);
}

config_error error(std::string variable, std::string message) { return {std::move(variable), std::move(message)}; }

boost::system::result<provider_config, config_error> load_provider(const env_lookup& env, std::string_view name,
                                                                   const provider_defaults& defaults) {
  provider_config provider;
  provider.name = std::string(name);
  std::string prefix = provider_variable_prefix(name);
  auto get = [&](std::string_view suffix) { return env(prefix + std::string(suffix)); };

  auto type_text = get("TYPE");
  if (!type_text) return error(prefix + "TYPE", "is required (openai, anthropic, gemini, ollama or mock)");
  auto type = parse_provider_type(*type_text);
  if (!type) return error(prefix + "TYPE", "must be openai, anthropic, gemini, ollama or mock, got \"" + *type_text + "\"");
  provider.type = *type;

  if (provider.type != provider_type::mock) {
    std::string url = get("BASE_URL").value_or(std::string(default_base_url(provider.type)));
    if (auto err = parse_upstream_url(url, provider.base_url); !err.empty()) return error(prefix + "BASE_URL", err);
  }
  provider.api_key_env = get("API_KEY_ENV").value_or(std::string(default_api_key_env(provider.type)));
  if (!provider.api_key_env.empty()) provider.api_key = env(provider.api_key_env).value_or("");

  if (auto models = get("MODELS")) {
    for (auto model : split_list(*models)) provider.models.emplace_back(model);
  }
  provider.timeout = defaults.timeout;
  if (auto timeout = get("TIMEOUT_MS")) {
    auto value = parse_millis(*timeout, 1);
    if (!value) return error(prefix + "TIMEOUT_MS", "expected milliseconds between 1 and 86400000, got \"" + *timeout + "\"");
    provider.timeout = *value;
  }
  if (auto latency = get("TOKEN_LATENCY_MS")) {
    auto value = parse_millis(*latency, 0);
    if (!value) return error(prefix + "TOKEN_LATENCY_MS", "expected milliseconds, got \"" + *latency + "\"");
    provider.mock_token_latency = *value;
  }
  return provider;
}

std::optional<resolved_model> resolve_without_aliases(const std::vector<provider_config>& providers,
                                                     std::string_view requested) {
  if (auto slash = requested.find('/'); slash != std::string_view::npos) {
    auto provider_name = requested.substr(0, slash);
    auto model = requested.substr(slash + 1);
    for (std::size_t i = 0; i < providers.size(); ++i)
      if (providers[i].name == provider_name && !model.empty()) return resolved_model{i, std::string(model)};
    // Not a provider prefix: model names such as "meta-llama/Llama-3-8B" contain slashes too.
  }
  for (std::size_t i = 0; i < providers.size(); ++i) {
    const auto& models = providers[i].models;
    if (std::find(models.begin(), models.end(), requested) != models.end()) return resolved_model{i, std::string(requested)};
  }
  for (std::size_t i = 0; i < providers.size(); ++i)
    if (providers[i].models.empty()) return resolved_model{i, std::string(requested)};
  return std::nullopt;
}

using text::trim;

std::vector<std::string_view> split_trimmed(std::string_view text, char separator) {
  return text::split(text, separator, text::empty_items::keep);
}

// Parsed after the aliases so a target may name one ("fast=...|cheap").
boost::system::result<std::vector<model_fallback>, config_error> parse_fallbacks(const provider_set& set,
                                                                                 std::string_view text) {
  constexpr std::string_view variable = "TOLLGATE_FALLBACKS";
  std::vector<model_fallback> fallbacks;
  for (auto entry : split_trimmed(text, ';')) {
    if (entry.empty()) continue;
    auto equals = entry.find('=');
    if (equals == std::string_view::npos)
      return error(std::string(variable), "expected model=target|target, got \"" + std::string(entry) + "\"");
    model_fallback fallback;
    fallback.model = std::string(trim(entry.substr(0, equals)));
    if (fallback.model.empty())
      return error(std::string(variable), "missing model name in \"" + std::string(entry) + "\"");
    for (auto target : split_trimmed(entry.substr(equals + 1), '|')) {
      if (target.empty()) continue;
      // A chain must land somewhere now, not fail on the first outage that needs it.
      if (!resolve_model(set, target))
        return error(std::string(variable), "fallback \"" + std::string(target) + "\" for \"" + fallback.model +
                                                "\" is not served by any provider");
      fallback.targets.emplace_back(target);
    }
    if (fallback.targets.empty())
      return error(std::string(variable), "\"" + fallback.model + "\" has no fallback targets");
    if (!resolve_model(set, fallback.model))
      return error(std::string(variable), "\"" + fallback.model +
                                              "\" is not served by any provider, so its fallbacks would never apply");
    bool duplicate = std::any_of(fallbacks.begin(), fallbacks.end(),
                                 [&](const model_fallback& f) { return f.model == fallback.model; });
    if (duplicate)
      return error(std::string(variable), "\"" + fallback.model + "\" has two fallback chains; list its targets once");
    fallbacks.push_back(std::move(fallback));
  }
  return fallbacks;
}

}  // namespace

std::string provider_variable_prefix(std::string_view provider_name) {
  std::string prefix = "TOLLGATE_PROVIDER_";
  for (char c : provider_name) prefix.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  prefix.push_back('_');
  return prefix;
}

std::string_view default_base_url(provider_type type) noexcept {
  switch (type) {
    case provider_type::openai: return "https://api.openai.com/v1";
    case provider_type::anthropic: return "https://api.anthropic.com/v1";
    case provider_type::gemini: return "https://generativelanguage.googleapis.com/v1beta";
    case provider_type::ollama: return "http://127.0.0.1:11434";
    case provider_type::mock: return "";
  }
  return "";
}

std::string_view default_api_key_env(provider_type type) noexcept {
  switch (type) {
    case provider_type::openai: return "OPENAI_API_KEY";
    case provider_type::anthropic: return "ANTHROPIC_API_KEY";
    case provider_type::gemini: return "GEMINI_API_KEY";
    case provider_type::ollama:
    case provider_type::mock: return "";
  }
  return "";
}

std::span<const std::string_view> provider_variable_suffixes() noexcept { return suffixes; }

boost::system::result<provider_set, config_error> load_providers(const env_lookup& env,
                                                                 const provider_defaults& defaults) {
  provider_set set;
  auto names = env("TOLLGATE_PROVIDERS");
  if (!names || split_list(*names).empty()) {
    provider_config single;
    single.timeout = defaults.timeout;
    if (defaults.legacy_upstream_set || !defaults.legacy_api_key.empty()) {
      single.name = "openai";
      single.type = provider_type::openai;
      single.base_url = defaults.legacy_upstream;
      single.api_key_env = defaults.legacy_api_key_env;
      single.api_key = defaults.legacy_api_key;
    } else {
      single.name = "mock";
      single.type = provider_type::mock;
      single.mock_token_latency = implicit_mock_latency;
      set.implicit_mock = true;
    }
    set.providers.push_back(std::move(single));
  } else {
    for (auto name : split_list(*names)) {
      if (!valid_provider_name(name))
        return error("TOLLGATE_PROVIDERS", "provider names use a-z, 0-9, - and _; got \"" + std::string(name) + "\"");
      bool duplicate = std::any_of(set.providers.begin(), set.providers.end(),
                                   [&](const provider_config& p) { return p.name == name; });
      if (duplicate) return error("TOLLGATE_PROVIDERS", "provider \"" + std::string(name) + "\" is listed twice");
      auto provider = load_provider(env, name, defaults);
      if (!provider) return provider.error();
      set.providers.push_back(std::move(*provider));
    }
  }

  if (auto aliases = env("TOLLGATE_MODEL_ALIASES")) {
    for (auto item : split_list(*aliases)) {
      auto equals = item.find('=');
      if (equals == std::string_view::npos || equals == 0 || equals + 1 == item.size())
        return error("TOLLGATE_MODEL_ALIASES", "expected alias=provider/model, got \"" + std::string(item) + "\"");
      model_alias alias{std::string(item.substr(0, equals)), std::string(item.substr(equals + 1))};
      // An alias must land somewhere now, not fail on the first request that uses it.
      if (!resolve_without_aliases(set.providers, alias.target))
        return error("TOLLGATE_MODEL_ALIASES",
                     "alias \"" + alias.name + "\" points at \"" + alias.target + "\", which no provider serves");
      set.aliases.push_back(std::move(alias));
    }
  }
  if (auto fallbacks = env("TOLLGATE_FALLBACKS")) {
    auto loaded = parse_fallbacks(set, *fallbacks);
    if (!loaded) return loaded.error();
    set.fallbacks = std::move(*loaded);
  }
  return set;
}

std::optional<resolved_model> resolve_model(const provider_set& set, std::string_view requested) {
  for (const auto& alias : set.aliases)
    if (alias.name == requested) return resolve_without_aliases(set.providers, alias.target);
  return resolve_without_aliases(set.providers, requested);
}

candidate_list resolve_candidates(const provider_set& set, std::string_view requested) {
  candidate_list candidates;
  auto primary = resolve_model(set, requested);
  if (!primary) return candidates;
  candidates.push_back(std::move(*primary));
  auto chain = std::find_if(set.fallbacks.begin(), set.fallbacks.end(),
                            [&](const model_fallback& f) { return f.model == requested; });
  if (chain == set.fallbacks.end()) return candidates;
  for (const auto& target : chain->targets) {
    auto resolved = resolve_model(set, target);
    if (!resolved) continue;  // checked at load; kept defensive for hand-built sets
    bool repeat = std::any_of(candidates.begin(), candidates.end(), [&](const resolved_model& c) {
      return c.provider_index == resolved->provider_index && c.model == resolved->model;
    });
    if (!repeat) candidates.push_back(std::move(*resolved));
  }
  return candidates;
}

}  // namespace tollgate::core
