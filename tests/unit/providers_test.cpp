#include "core/config.hpp"
#include "tests/unit/env_map.hpp"
#include "core/providers.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>

namespace {

using namespace tollgate::core;

using tollgate::testing::env_of;

provider_set load(std::map<std::string, std::string> values) {
  auto cfg = load_config(env_of(std::move(values)), 1);
  REQUIRE(cfg.has_value());
  return cfg->providers;
}

config_error load_error(std::map<std::string, std::string> values) {
  auto cfg = load_config(env_of(std::move(values)), 1);
  REQUIRE_FALSE(cfg.has_value());
  return cfg.error();
}

const std::map<std::string, std::string> three_providers = {
    {"TOLLGATE_PROVIDERS", "openai, anthropic,local"},
    {"TOLLGATE_PROVIDER_OPENAI_TYPE", "openai"},
    {"TOLLGATE_PROVIDER_OPENAI_MODELS", "gpt-4o,gpt-4o-mini"},
    {"OPENAI_API_KEY", "sk-openai-000000000000"},
    {"TOLLGATE_PROVIDER_ANTHROPIC_TYPE", "anthropic"},
    {"TOLLGATE_PROVIDER_ANTHROPIC_MODELS", "claude-sonnet-4-5"},
    {"TOLLGATE_PROVIDER_ANTHROPIC_TIMEOUT_MS", "1234"},
    {"ANTHROPIC_API_KEY", "sk-ant-1111111111111"},
    {"TOLLGATE_PROVIDER_LOCAL_TYPE", "ollama"},
    {"TOLLGATE_PROVIDER_LOCAL_BASE_URL", "http://127.0.0.1:11434"},
    {"TOLLGATE_MODEL_ALIASES", "fast=local/llama3.2, smart=anthropic/claude-sonnet-4-5"},
};

}  // namespace

TEST_CASE("providers: nothing configured and no key means the built-in mock") {
  auto set = load({});
  REQUIRE(set.providers.size() == 1);
  CHECK(set.implicit_mock);
  CHECK(set.providers[0].type == provider_type::mock);
  CHECK(set.providers[0].mock_token_latency.count() > 0);
  auto route = resolve_model(set, "anything");
  REQUIRE(route);
  CHECK(route->model == "anything");
}

TEST_CASE("providers: the single-upstream variables are shorthand for one openai provider") {
  SUBCASE("an API key alone") {
    auto set = load({{"OPENAI_API_KEY", "sk-abcdefghijklmnop"}});
    REQUIRE(set.providers.size() == 1);
    CHECK_FALSE(set.implicit_mock);
    CHECK(set.providers[0].name == "openai");
    CHECK(set.providers[0].type == provider_type::openai);
    CHECK(set.providers[0].base_url.host == "api.openai.com");
    CHECK(set.providers[0].api_key == "sk-abcdefghijklmnop");
    CHECK(set.providers[0].models.empty());
  }
  SUBCASE("a URL alone (key passed through from clients)") {
    auto set = load({{"TOLLGATE_UPSTREAM_URL", "http://127.0.0.1:8000/v1"}, {"TOLLGATE_UPSTREAM_TIMEOUT_MS", "777"}});
    REQUIRE(set.providers.size() == 1);
    CHECK(set.providers[0].base_url.port == 8000);
    CHECK(set.providers[0].api_key.empty());
    CHECK(set.providers[0].timeout.count() == 777);
  }
}

TEST_CASE("providers: several providers, per-type defaults and overrides") {
  auto set = load(three_providers);
  REQUIRE(set.providers.size() == 3);
  const auto& openai = set.providers[0];
  const auto& anthropic = set.providers[1];
  const auto& local = set.providers[2];
  CHECK(openai.base_url.to_string() == "https://api.openai.com/v1");
  CHECK(openai.api_key == "sk-openai-000000000000");
  CHECK(anthropic.type == provider_type::anthropic);
  CHECK(anthropic.base_url.to_string() == "https://api.anthropic.com/v1");
  CHECK(anthropic.api_key_env == "ANTHROPIC_API_KEY");
  CHECK(anthropic.api_key == "sk-ant-1111111111111");
  CHECK(anthropic.timeout.count() == 1234);
  CHECK(local.type == provider_type::ollama);
  CHECK(local.api_key_env.empty());
  CHECK(local.models.empty());
  CHECK(set.aliases.size() == 2);
}

TEST_CASE("providers: model resolution order") {
  auto set = load(three_providers);
  struct row {
    const char* requested;
    std::size_t provider;
    const char* model;
  };
  const row rows[] = {
      {"gpt-4o-mini", 0, "gpt-4o-mini"},              // listed by openai
      {"claude-sonnet-4-5", 1, "claude-sonnet-4-5"},  // listed by anthropic
      {"anthropic/claude-opus-4", 1, "claude-opus-4"},  // explicit provider prefix
      {"local/qwen2.5:7b", 2, "qwen2.5:7b"},
      {"fast", 2, "llama3.2"},                         // alias
      {"smart", 1, "claude-sonnet-4-5"},
      {"mistral", 2, "mistral"},                       // unlisted: the catch-all (local lists nothing)
      {"meta-llama/Llama-3-8B", 2, "meta-llama/Llama-3-8B"},  // a slash that is not a provider
  };
  for (const auto& r : rows) {
    CAPTURE(r.requested);
    auto route = resolve_model(set, r.requested);
    REQUIRE(route);
    CHECK(route->provider_index == r.provider);
    CHECK(route->model == r.model);
  }
}

TEST_CASE("providers: without a catch-all, an unknown model does not resolve") {
  auto values = three_providers;
  values["TOLLGATE_PROVIDER_LOCAL_MODELS"] = "llama3.2";
  auto set = load(values);
  CHECK_FALSE(resolve_model(set, "mistral"));
  CHECK_FALSE(resolve_model(set, "nobody/x"));
  CHECK(resolve_model(set, "local/mistral"));  // explicit addressing always reaches the provider
}

TEST_CASE("providers: configuration errors name the variable") {
  struct row {
    std::map<std::string, std::string> env;
    const char* variable;
    const char* message_part;
  };
  const row rows[] = {
      {{{"TOLLGATE_PROVIDERS", "a"}}, "TOLLGATE_PROVIDER_A_TYPE", "is required"},
      {{{"TOLLGATE_PROVIDERS", "a"}, {"TOLLGATE_PROVIDER_A_TYPE", "bedrock"}}, "TOLLGATE_PROVIDER_A_TYPE", "must be"},
      {{{"TOLLGATE_PROVIDERS", "Bad Name"}}, "TOLLGATE_PROVIDERS", "a-z"},
      {{{"TOLLGATE_PROVIDERS", "a,a"}, {"TOLLGATE_PROVIDER_A_TYPE", "mock"}}, "TOLLGATE_PROVIDERS", "twice"},
      {{{"TOLLGATE_PROVIDERS", "a"}, {"TOLLGATE_PROVIDER_A_TYPE", "openai"}, {"TOLLGATE_PROVIDER_A_BASE_URL", "nope"}},
       "TOLLGATE_PROVIDER_A_BASE_URL", "absolute URL"},
      {{{"TOLLGATE_PROVIDERS", "a"}, {"TOLLGATE_PROVIDER_A_TYPE", "mock"}, {"TOLLGATE_PROVIDER_A_TIMEOUT_MS", "0"}},
       "TOLLGATE_PROVIDER_A_TIMEOUT_MS", "milliseconds"},
      {{{"TOLLGATE_PROVIDERS", "a"}, {"TOLLGATE_PROVIDER_A_TYPE", "mock"}, {"TOLLGATE_PROVIDER_A_MODELS", "m"},
        {"TOLLGATE_MODEL_ALIASES", "x=b/m"}},
       "TOLLGATE_MODEL_ALIASES", "no provider serves"},
      {{{"TOLLGATE_MODEL_ALIASES", "novalue"}}, "TOLLGATE_MODEL_ALIASES", "alias=provider/model"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.variable);
    auto error = load_error(r.env);
    CHECK(error.variable == r.variable);
    CHECK(error.message.find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("providers: provider variables are not reported as typos, but misspelt ones are") {
  std::vector<std::string> names = {"TOLLGATE_PROVIDER_LOCAL_TYPE", "TOLLGATE_PROVIDER_LOCAL_MODELS",
                                    "TOLLGATE_PROVIDER_LOCAL_MODLES", "TOLLGATE_PROVIDERS"};
  auto unknown = unknown_variables(names);
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0] == "TOLLGATE_PROVIDER_LOCAL_MODLES");
  CHECK(provider_variable_prefix("local-llm") == "TOLLGATE_PROVIDER_LOCAL_LLM_");
}

TEST_CASE("providers: print-config masks every provider key") {
  auto cfg = load_config(env_of(three_providers), 1);
  REQUIRE(cfg.has_value());
  std::string all;
  for (const auto& line : describe(*cfg)) all += line + "\n";
  CHECK(all.find("sk-ant-1111111111111") == std::string::npos);
  CHECK(all.find("provider anthropic: type=anthropic base_url=https://api.anthropic.com/v1 ANTHROPIC_API_KEY=sk-…1111") !=
        std::string::npos);
  CHECK(all.find("provider local: type=ollama base_url=http://127.0.0.1:11434 models=(any)") != std::string::npos);
}
