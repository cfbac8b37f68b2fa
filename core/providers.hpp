#pragma once

#include "core/address.hpp"
#include "core/env.hpp"
#include "core/provider_type.hpp"

#include <boost/container/small_vector.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::core {

// One provider instance from TOLLGATE_PROVIDERS, e.g. "anthropic" or "local".
struct provider_config {
  std::string name;  // lower-case, as used in "name/model"
  provider_type type = provider_type::openai;
  upstream_url base_url;  // unused by the mock
  std::string api_key_env;  // "" for types that take no key
  std::string api_key;      // secret: never logged
  std::vector<std::string> models;  // empty: serves any model name (a catch-all)
  std::chrono::milliseconds timeout{};
  std::chrono::milliseconds mock_token_latency{};  // mock only
};

struct model_alias {
  std::string name;
  std::string target;  // "provider/model" or a bare model name
};

// TOLLGATE_FALLBACKS: what to try, in order, when the provider serving `model` fails before
// the first byte or is skipped (unhealthy, throttled, out of quota).
struct model_fallback {
  std::string model;                 // as the client asks for it (alias or name), matched exactly
  std::vector<std::string> targets;  // "provider/model", aliases or bare names
};

struct provider_set {
  std::vector<provider_config> providers;
  std::vector<model_alias> aliases;
  std::vector<model_fallback> fallbacks;
  // Nothing was configured and no API key was found: tollgate runs its built-in mock so a
  // fresh checkout streams end to end.
  bool implicit_mock = false;
};

struct resolved_model {
  std::size_t provider_index = 0;
  std::string model;  // the provider's own name for it
};

// alias -> "provider/model" -> a bare name some provider lists -> the first catch-all provider.
std::optional<resolved_model> resolve_model(const provider_set& set, std::string_view requested);

// The primary and its fallbacks. Resolved for every request and rarely more than a few, so
// they are kept inline rather than in a heap allocation.
using candidate_list = boost::container::small_vector<resolved_model, 4>;

// The primary (resolve_model) followed by each fallback target of `requested`, resolved, with
// repeats of the same provider and model dropped. Empty when the primary does not resolve.
candidate_list resolve_candidates(const provider_set& set, std::string_view requested);

// Environment-variable stem of a provider: "local-llm" -> "TOLLGATE_PROVIDER_LOCAL_LLM_".
std::string provider_variable_prefix(std::string_view provider_name);

// Per-type defaults: base URL and the conventional API-key variable.
std::string_view default_base_url(provider_type type) noexcept;
std::string_view default_api_key_env(provider_type type) noexcept;

struct provider_defaults {
  upstream_url legacy_upstream;  // TOLLGATE_UPSTREAM_URL, the single-upstream shorthand
  bool legacy_upstream_set = false;
  std::string legacy_api_key_env;
  std::string legacy_api_key;
  std::chrono::milliseconds timeout{};
};

// TOLLGATE_PROVIDERS and each TOLLGATE_PROVIDER_<NAME>_* plus TOLLGATE_MODEL_ALIASES and
// TOLLGATE_FALLBACKS.
// Without TOLLGATE_PROVIDERS: one `openai` provider from the single-upstream variables, or the
// built-in mock when neither TOLLGATE_UPSTREAM_URL nor an API key is set.
boost::system::result<provider_set, config_error> load_providers(const env_lookup& env,
                                                                 const provider_defaults& defaults);

// The suffixes a provider's variables may have (for --help and typo detection).
std::span<const std::string_view> provider_variable_suffixes() noexcept;

}  // namespace tollgate::core
