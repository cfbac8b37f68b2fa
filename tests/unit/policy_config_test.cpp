#include "core/config.hpp"
#include "tests/unit/env_map.hpp"
#include "core/policy.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>

namespace {

using namespace tollgate::core;

using tollgate::testing::env_of;

config load(std::map<std::string, std::string> values) {
  auto cfg = load_config(env_of(std::move(values)), 1);
  if (!cfg) FAIL(cfg.error().variable << ": " << cfg.error().message);
  return *cfg;
}

config_error load_error(std::map<std::string, std::string> values) {
  auto cfg = load_config(env_of(std::move(values)), 1);
  REQUIRE_FALSE(cfg.has_value());
  return cfg.error();
}

std::string describe_all(const config& cfg) {
  std::string all;
  for (const auto& line : describe(cfg)) all += line + "\n";
  return all;
}

const std::map<std::string, std::string> three_providers = {
    {"TOLLGATE_PROVIDERS", "openai,anthropic,local"},
    {"TOLLGATE_PROVIDER_OPENAI_TYPE", "openai"},
    {"TOLLGATE_PROVIDER_OPENAI_MODELS", "gpt-4o,gpt-4o-mini"},
    {"TOLLGATE_PROVIDER_ANTHROPIC_TYPE", "anthropic"},
    {"TOLLGATE_PROVIDER_ANTHROPIC_MODELS", "claude-sonnet-4-5"},
    {"TOLLGATE_PROVIDER_LOCAL_TYPE", "ollama"},
    {"TOLLGATE_MODEL_ALIASES", "fast=local/llama3.2,smart=anthropic/claude-sonnet-4-5"},
};

std::map<std::string, std::string> with(std::map<std::string, std::string> base,
                                        const std::map<std::string, std::string>& extra) {
  for (const auto& [k, v] : extra) base[k] = v;
  return base;
}

}  // namespace

TEST_CASE("policy config: defaults") {
  auto cfg = load({});
  CHECK(cfg.db_path == "./data/tollgate.db");
  CHECK(cfg.ledger_flush_interval.count() == 50);
  CHECK_FALSE(cfg.ledger_fail_open);
  CHECK(cfg.price_overrides.empty());
  CHECK(cfg.prices_file.empty());
  CHECK(cfg.keys.empty());
  CHECK_FALSE(cfg.require_key);
  CHECK(cfg.time_zone.name == "UTC");
  REQUIRE(cfg.time_zone.fixed_offset);
  CHECK(cfg.time_zone.fixed_offset->count() == 0);
  CHECK(cfg.quotas.empty());
  CHECK(cfg.budgets.empty());
  CHECK(cfg.throttle_eval_interval.count() == 60);
  CHECK(cfg.throttle_ratio_bp == 11'000);
  CHECK(cfg.unthrottle_ratio_bp == 9'500);
  CHECK_FALSE(cfg.cost_throttle_enabled);
  CHECK(cfg.provider_daily_quota.empty());
  CHECK_FALSE(cfg.alert_webhook);
  CHECK(cfg.admin_token.empty());
  CHECK(cfg.providers.fallbacks.empty());
}

TEST_CASE("policy config: values are parsed") {
  auto cfg = load(with(three_providers, {{"TOLLGATE_DB_PATH", "/var/lib/tollgate/ledger.db"},
                                         {"TOLLGATE_LEDGER_FLUSH_MS", "200"},
                                         {"TOLLGATE_LEDGER_FAIL_OPEN", "true"},
                                         {"TOLLGATE_PRICES", "gpt-4o=2.5:10:1.25,my-model=1:2"},
                                         {"TOLLGATE_PRICES_FILE", "/etc/tollgate/prices.json"},
                                         {"TOLLGATE_KEYS", "tg-eng-key-000001,department=eng"},
                                         {"TOLLGATE_REQUIRE_KEY", "true"},
                                         {"TOLLGATE_TZ", "Europe/Berlin"},
                                         {"TOLLGATE_QUOTAS", "user:alice:daily_tokens=200000"},
                                         {"TOLLGATE_BUDGETS", "openai=1000,anthropic=500:25"},
                                         {"TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "5"},
                                         {"TOLLGATE_THROTTLE_RATIO", "1.5"},
                                         {"TOLLGATE_UNTHROTTLE_RATIO", "1.2345"},
                                         {"TOLLGATE_COST_THROTTLE_ENABLED", "true"},
                                         {"TOLLGATE_PROVIDER_DAILY_QUOTA", "local=1000, openai=50000"},
                                         {"TOLLGATE_ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/xyz"},
                                         {"TOLLGATE_ADMIN_TOKEN", "admin-token-0123456789"}}));
  CHECK(cfg.db_path == "/var/lib/tollgate/ledger.db");
  CHECK(cfg.ledger_flush_interval.count() == 200);
  CHECK(cfg.ledger_fail_open);
  REQUIRE(cfg.price_overrides.size() == 2);
  CHECK(cfg.price_overrides[1].model == "my-model");
  CHECK(cfg.price_overrides[1].price == model_price{1'000'000, 2'000'000, 1'000'000});
  CHECK(cfg.prices_file == "/etc/tollgate/prices.json");
  REQUIRE(cfg.keys.size() == 1);
  CHECK(cfg.keys[0].departments == std::vector<std::string>{"eng"});
  CHECK(cfg.require_key);
  CHECK(cfg.time_zone.name == "Europe/Berlin");
  CHECK_FALSE(cfg.time_zone.fixed_offset);
  REQUIRE(cfg.quotas.size() == 1);
  CHECK(cfg.quotas[0].limits.daily_tokens == 200'000);
  REQUIRE(cfg.budgets.size() == 2);
  CHECK(cfg.budgets[0].provider == "openai");
  CHECK(cfg.budgets[0].budget.monthly == 1'000'000'000);
  CHECK_FALSE(cfg.budgets[0].budget.daily);
  CHECK(cfg.budgets[1].budget.monthly == 500'000'000);
  CHECK(cfg.budgets[1].budget.daily == 25'000'000);
  CHECK(cfg.throttle_eval_interval.count() == 5);
  CHECK(cfg.throttle_ratio_bp == 15'000);
  CHECK(cfg.unthrottle_ratio_bp == 12'345);
  CHECK(cfg.cost_throttle_enabled);
  REQUIRE(cfg.provider_daily_quota.size() == 2);
  CHECK(cfg.provider_daily_quota[0].provider == "local");
  CHECK(cfg.provider_daily_quota[0].per_day == 1000);
  CHECK(cfg.provider_daily_quota[1].per_day == 50'000);
  REQUIRE(cfg.alert_webhook);
  CHECK(cfg.alert_webhook->tls);
  CHECK(cfg.alert_webhook->host == "hooks.example.com");
  CHECK(cfg.alert_webhook->base_path == "/services/T0/B0/xyz");
  CHECK(cfg.admin_token == "admin-token-0123456789");

  auto all = describe_all(cfg);
  CHECK(all.find("TOLLGATE_BUDGETS=openai=1000,anthropic=500:25\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_PROVIDER_DAILY_QUOTA=local=1000,openai=50000\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_THROTTLE_RATIO=1.50\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_UNTHROTTLE_RATIO=1.2345\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_PRICES=gpt-4o=2.5:10:1.25,my-model=1:2:1\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_TZ=Europe/Berlin\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_QUOTAS=user:alice:daily_tokens=200000\n") != std::string::npos);
}

TEST_CASE("policy config: secrets never appear in describe()") {
  auto cfg = load({{"TOLLGATE_KEYS", "tg-eng-key-000001,department=eng;sha256:" + std::string(64, 'a')},
                   {"TOLLGATE_ADMIN_TOKEN", "admin-token-0123456789"},
                   {"TOLLGATE_ALERT_WEBHOOK_URL", "https://hooks.example.com:8443/services/T0/B0/xyz"}});
  auto all = describe_all(cfg);
  CHECK(all.find("eng-key-0000") == std::string::npos);
  CHECK(all.find("token-0123456") == std::string::npos);
  CHECK(all.find("xyz") == std::string::npos);
  CHECK(all.find("TOLLGATE_ADMIN_TOKEN=adm…6789 (22 chars)\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_KEYS=" + cfg.keys[0].fingerprint + "=tg-…0001 department=eng; tgk_aaaaaaaaaaaa=sha256:aaaa…\n") !=
        std::string::npos);
  CHECK(all.find("TOLLGATE_ALERT_WEBHOOK_URL=https://hooks.example.com:8443/… (path hidden)\n") != std::string::npos);
  CHECK(describe_all(load({})).find("TOLLGATE_ADMIN_TOKEN=(unset)\n") != std::string::npos);
}

TEST_CASE("policy config: invalid values name the variable") {
  struct row {
    std::map<std::string, std::string> env;
    const char* variable;
    const char* message_part;
  };
  const row rows[] = {
      {{{"TOLLGATE_DB_PATH", ""}}, "TOLLGATE_DB_PATH", "file path"},
      {{{"TOLLGATE_LEDGER_FLUSH_MS", "0"}}, "TOLLGATE_LEDGER_FLUSH_MS", "between 1 and 60000"},
      {{{"TOLLGATE_LEDGER_FLUSH_MS", "60001"}}, "TOLLGATE_LEDGER_FLUSH_MS", "between 1 and 60000"},
      {{{"TOLLGATE_LEDGER_FAIL_OPEN", "sometimes"}}, "TOLLGATE_LEDGER_FAIL_OPEN", "true or false"},
      {{{"TOLLGATE_PRICES", "gpt-4o=abc:1"}}, "TOLLGATE_PRICES", "\"gpt-4o=abc:1\": price is not"},
      {{{"TOLLGATE_KEYS", "short"}}, "TOLLGATE_KEYS", "shorter than 8"},
      {{{"TOLLGATE_REQUIRE_KEY", "yes please"}}, "TOLLGATE_REQUIRE_KEY", "true or false"},
      {{{"TOLLGATE_TZ", "Mars Time"}}, "TOLLGATE_TZ", "Europe/Berlin"},
      {{{"TOLLGATE_QUOTAS", "team:eng:daily_usd=5"}}, "TOLLGATE_QUOTAS", "unknown scope \"team\""},
      {{{"TOLLGATE_QUOTAS", "key:sk-live-secret:daily_tokens=5"}}, "TOLLGATE_QUOTAS", "key fingerprint"},
      {{{"TOLLGATE_BUDGETS", "mock=0"}}, "TOLLGATE_BUDGETS", "monthly budget must be a positive"},
      {{{"TOLLGATE_BUDGETS", "azure=100"}}, "TOLLGATE_BUDGETS", "unknown provider \"azure\" (known providers: mock)"},
      {{{"TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "0"}}, "TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "between 1 and 86400"},
      {{{"TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "86401"}}, "TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "between 1 and 86400"},
      {{{"TOLLGATE_THROTTLE_RATIO", "abc"}}, "TOLLGATE_THROTTLE_RATIO", "decimal ratio"},
      {{{"TOLLGATE_THROTTLE_RATIO", "1.12345"}}, "TOLLGATE_THROTTLE_RATIO", "at most 4 decimals"},
      {{{"TOLLGATE_THROTTLE_RATIO", "0"}}, "TOLLGATE_THROTTLE_RATIO", "greater than 0"},
      {{{"TOLLGATE_UNTHROTTLE_RATIO", "1.10"}}, "TOLLGATE_UNTHROTTLE_RATIO", "below TOLLGATE_THROTTLE_RATIO (1.10)"},
      {{{"TOLLGATE_THROTTLE_RATIO", "0.9"}}, "TOLLGATE_UNTHROTTLE_RATIO", "got 0.95"},
      {{{"TOLLGATE_COST_THROTTLE_ENABLED", "2"}}, "TOLLGATE_COST_THROTTLE_ENABLED", "true or false"},
      {{{"TOLLGATE_PROVIDER_DAILY_QUOTA", "mock=0"}}, "TOLLGATE_PROVIDER_DAILY_QUOTA", "whole number from 1"},
      {{{"TOLLGATE_PROVIDER_DAILY_QUOTA", "gemini=1000"}}, "TOLLGATE_PROVIDER_DAILY_QUOTA",
       "unknown provider \"gemini\" (known providers: mock)"},
      {{{"TOLLGATE_ALERT_WEBHOOK_URL", "ftp://hooks.example.com/x"}}, "TOLLGATE_ALERT_WEBHOOK_URL", "http or https"},
      {{{"TOLLGATE_ALERT_WEBHOOK_URL", "hooks.example.com"}}, "TOLLGATE_ALERT_WEBHOOK_URL", "absolute URL"},
      {{{"TOLLGATE_ADMIN_TOKEN", "has space"}}, "TOLLGATE_ADMIN_TOKEN", "without spaces"},
      {{{"TOLLGATE_FALLBACKS", "gpt-4o"}}, "TOLLGATE_FALLBACKS", "model=target|target"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.variable);
    CAPTURE(r.message_part);
    auto error = load_error(r.env);
    CHECK(error.variable == r.variable);
    CHECK(error.message.find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("policy config: budgets and daily quotas name the providers that exist") {
  // The implicit provider is "mock" without any key, "openai" with the single-upstream variables.
  CHECK(load({{"TOLLGATE_BUDGETS", "mock=10"}, {"TOLLGATE_PROVIDER_DAILY_QUOTA", "mock=5"}}).budgets.size() == 1);
  CHECK(load({{"OPENAI_API_KEY", "sk-abcdefghijklmnop"}, {"TOLLGATE_BUDGETS", "openai=10"}}).budgets.size() == 1);
  auto error = load_error(with(three_providers, {{"TOLLGATE_BUDGETS", "openai=1,gemini=2"}}));
  CHECK(error.variable == "TOLLGATE_BUDGETS");
  CHECK(error.message == "unknown provider \"gemini\" (known providers: openai, anthropic, local)");
}

TEST_CASE("policy config: keys may live in the ledger database instead of TOLLGATE_KEYS") {
  // Keys created through the admin API are stored, not configured: requiring a key, or a quota
  // for a fingerprint the environment does not list, is not a configuration error.
  auto cfg = load({{"TOLLGATE_REQUIRE_KEY", "true"}, {"TOLLGATE_QUOTAS", "key:tgk_0123456789ab:models=gpt-4o-mini"}});
  CHECK(cfg.require_key);
  CHECK(cfg.keys.empty());
  REQUIRE(cfg.quotas.size() == 1);
  CHECK(cfg.quotas[0].subject == quota_subject{quota_scope::key, "tgk_0123456789ab"});
}

TEST_CASE("policy config: the new variables are known, not typos") {
  std::vector<std::string> names;
  for (const auto& s : settings()) names.emplace_back(s.name);
  CHECK(unknown_variables(names).empty());
  for (const char* name : {"TOLLGATE_DB_PATH", "TOLLGATE_KEYS", "TOLLGATE_TZ", "TOLLGATE_QUOTAS", "TOLLGATE_BUDGETS",
                           "TOLLGATE_PROVIDER_DAILY_QUOTA", "TOLLGATE_FALLBACKS", "TOLLGATE_ADMIN_TOKEN"}) {
    CAPTURE(name);
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
  }
}

TEST_CASE("quota rules: valid entries") {
  std::vector<quota_rule> rules;
  auto err = parse_quota_rules(
      "department:eng:daily_usd=50,monthly_usd=1000; user:alice:daily_tokens=200000 ;"
      "key:tgk_0123456789ab:models=gpt-4o-mini;department:team:ml:models=llama3.2:1b|gpt-4.1*,monthly_tokens=5;",
      rules);
  REQUIRE_MESSAGE(err.empty(), err);
  REQUIRE(rules.size() == 4);
  CHECK(rules[0].subject == quota_subject{quota_scope::department, "eng"});
  CHECK(rules[0].limits.daily_cost == 50'000'000);
  CHECK(rules[0].limits.monthly_cost == 1'000'000'000);
  CHECK_FALSE(rules[0].limits.daily_tokens);
  CHECK(rules[1].subject == quota_subject{quota_scope::user, "alice"});
  CHECK(rules[1].limits.daily_tokens == 200'000);
  CHECK(rules[2].subject == quota_subject{quota_scope::key, "tgk_0123456789ab"});
  CHECK(rules[2].limits.allowed_models == std::vector<std::string>{"gpt-4o-mini"});
  // Names and model ids may contain ':'; the name ends before the first limit.
  CHECK(rules[3].subject == quota_subject{quota_scope::department, "team:ml"});
  CHECK(rules[3].limits.allowed_models == std::vector<std::string>{"llama3.2:1b", "gpt-4.1*"});
  CHECK(rules[3].limits.monthly_tokens == 5);

  auto text = format_quota_rules(rules);
  CHECK(text ==
        "department:eng:daily_usd=50,monthly_usd=1000;user:alice:daily_tokens=200000;"
        "key:tgk_0123456789ab:models=gpt-4o-mini;department:team:ml:monthly_tokens=5,models=llama3.2:1b|gpt-4.1*");
  std::vector<quota_rule> again;
  REQUIRE(parse_quota_rules(text, again).empty());
  CHECK(format_quota_rules(again) == text);
  CHECK(parse_quota_rules("", again).empty());
  CHECK(again.empty());
}

TEST_CASE("quota rules: errors") {
  struct row {
    const char* text;
    const char* message_part;
  };
  const row rows[] = {
      {"eng", "expected scope:name:limit=value"},
      {"team:eng:daily_usd=5", "unknown scope \"team\""},
      {"department:eng", "has no limit"},
      {"department:eng:", "has no limit"},
      {"department:eng:models=", "models lists no model"},
      {"department:eng:weekly_usd=5", "unknown limit \"weekly_usd\""},
      {"department:eng:daily_usd", "has no limit"},
      {"department:eng:daily_tokens=5,monthly_usd", "expected limit=value"},
      {"department:eng:daily_tokens=1;department:eng:monthly_tokens=2", "department:eng already has a rule"},
      {"user:alice:daily_tokens=0", "whole number from 1"},
      {"user:alice:daily_tokens=-5", "whole number from 1"},
      {"user:alice:monthly_tokens=1e6", "whole number from 1"},
      {"user:alice:daily_usd=0", "positive USD amount"},
      {"user:alice:monthly_usd=1.1234567", "at most 6 decimals"},
      {"user:alice:daily_tokens=1,daily_tokens=2", "daily_tokens is given twice"},
      {"department:data science:daily_tokens=1", "department \"data science\" must be"},
      {"department::daily_tokens=1", "department \"\" must be"},
      {"key:sk-my-real-secret:daily_tokens=5", "must be a key fingerprint"},
      {"key:tgk_0123456789AB:daily_tokens=5", "must be a key fingerprint"},
      {"department:eng:models=gpt-*-mini", "'*' may only end an entry"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    std::vector<quota_rule> rules;
    auto err = parse_quota_rules(r.text, rules);
    CHECK(err.find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("budget rules and provider request limits") {
  std::vector<budget_rule> budgets;
  REQUIRE(parse_budget_rules(" openai=1000 , anthropic=500:25,gemini=0.5:0.01,", budgets).empty());
  REQUIRE(budgets.size() == 3);
  CHECK(budgets[2].budget.monthly == 500'000);
  CHECK(budgets[2].budget.daily == 10'000);
  CHECK(format_budget_rules(budgets) == "openai=1000,anthropic=500:25,gemini=0.5:0.01");

  struct row {
    const char* text;
    const char* message_part;
  };
  const row budget_errors[] = {
      {"openai", "expected provider=monthly_usd[:daily_usd]"},
      {"=5", "missing provider name"},
      {"openai=", "monthly budget"},
      {"openai=0", "monthly budget must be a positive"},
      {"openai=-5", "monthly budget"},
      {"openai=1e3", "monthly budget"},
      {"openai=:25", "monthly budget"},
      {"openai=100:0", "daily budget must be a positive"},
      {"openai=100:", "daily budget"},
      {"openai=100:1:2", "daily budget"},
      {"openai=1,openai=2", "provider \"openai\" has two budgets"},
  };
  for (const auto& r : budget_errors) {
    CAPTURE(r.text);
    CHECK(parse_budget_rules(r.text, budgets).find(r.message_part) != std::string::npos);
  }

  std::vector<provider_request_limit> limits;
  REQUIRE(parse_provider_request_limits("gemini=1000,openai=50000", limits).empty());
  REQUIRE(limits.size() == 2);
  CHECK(limits[0].provider == "gemini");
  CHECK(limits[0].per_day == 1000);
  CHECK(format_provider_request_limits(limits) == "gemini=1000,openai=50000");
  const row limit_errors[] = {
      {"gemini", "expected provider=requests_per_day"},
      {"gemini=0", "whole number from 1"},
      {"gemini=1.5", "whole number from 1"},
      {"gemini=1,gemini=2", "provider \"gemini\" has two daily quotas"},
  };
  for (const auto& r : limit_errors) {
    CAPTURE(r.text);
    CHECK(parse_provider_request_limits(r.text, limits).find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("time zone spec") {
  struct row {
    const char* text;
    const char* name;
    std::optional<int> offset_minutes;
  };
  const row valid[] = {
      {"UTC", "UTC", 0},
      {"utc", "UTC", 0},
      {"Z", "UTC", 0},
      {"GMT", "UTC", 0},
      {" UTC ", "UTC", 0},
      {"+05:30", "UTC+05:30", 330},
      {"-08:00", "UTC-08:00", -480},
      {"+0545", "UTC+05:45", 345},
      {"UTC+2", "UTC+02:00", 120},
      {"UTC-03:30", "UTC-03:30", -210},
      {"UTC+14", "UTC+14:00", 840},
      {"GMT+0", "UTC", 0},
      {"Europe/Berlin", "Europe/Berlin", std::nullopt},
      {"America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires", std::nullopt},
      {"Etc/GMT+2", "Etc/GMT+2", std::nullopt},
      {"EST5EDT", "EST5EDT", std::nullopt},
  };
  for (const auto& r : valid) {
    CAPTURE(r.text);
    time_zone_spec tz;
    auto err = parse_time_zone(r.text, tz);
    REQUIRE_MESSAGE(err.empty(), err);
    CHECK(tz.name == r.name);
    CHECK(tz.fixed_offset.has_value() == r.offset_minutes.has_value());
    if (r.offset_minutes && tz.fixed_offset) CHECK(tz.fixed_offset->count() == *r.offset_minutes);
  }
  struct bad_row {
    const char* text;
    const char* message_part;
  };
  const bad_row invalid[] = {
      {"", "expected UTC"},
      {"+15:00", "at most 14 hours"},
      {"+14:30", "at most 14 hours"},
      {"+05:60", "59 minutes"},
      {"+5:3", "[+-]HH[:MM]"},
      {"UTC+", "[+-]HH[:MM]"},
      {"GMT+2", "ambiguous"},
      {"Europe//Berlin", "tz database name"},
      {"/etc/localtime", "tz database name"},
      {"Europe/Berlin/", "tz database name"},
      {"../../etc/passwd", "tz database name"},
      {"Mars Time", "tz database name"},
      {"5", "tz database name"},
  };
  for (const auto& r : invalid) {
    CAPTURE(r.text);
    time_zone_spec tz;
    CHECK(parse_time_zone(r.text, tz).find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("ratios are exact basis points") {
  struct row {
    const char* text;
    std::int64_t bp;
  };
  const row valid[] = {{"1.10", 11'000}, {"0.95", 9'500}, {"1", 10'000}, {"1.2345", 12'345}, {"2.5", 25'000},
                       {"0.0001", 1}, {"100", 1'000'000}};
  for (const auto& r : valid) {
    CAPTURE(r.text);
    std::int64_t bp = 0;
    CHECK(parse_ratio_bp(r.text, bp).empty());
    CHECK(bp == r.bp);
  }
  for (const char* text : {"abc", "1.12345", "", "-1", "+1", "1.", ".5", "1e2", "1,1", "0", "0.0000", "100.01"}) {
    CAPTURE(text);
    std::int64_t bp = 42;
    CHECK_FALSE(parse_ratio_bp(text, bp).empty());
    CHECK(bp == 42);
  }
  CHECK(format_ratio_bp(11'000) == "1.10");
  CHECK(format_ratio_bp(9'500) == "0.95");
  CHECK(format_ratio_bp(10'000) == "1.00");
  CHECK(format_ratio_bp(12'345) == "1.2345");
  CHECK(format_ratio_bp(1) == "0.0001");
}

TEST_CASE("format_usd drops trailing zeros") {
  CHECK(format_usd(0) == "0");
  CHECK(format_usd(25'500'000) == "25.5");
  CHECK(format_usd(1) == "0.000001");
  CHECK(format_usd(1'000'000'000) == "1000");
  CHECK(format_usd(-1'500'000) == "-1.5");
}

TEST_CASE("fallbacks: candidates in order, duplicates dropped") {
  auto cfg = load(with(three_providers,
                       {{"TOLLGATE_FALLBACKS",
                         " gpt-4o = anthropic/claude-sonnet-4-5 | smart|openai/gpt-4o|local/llama3.2 ;"
                         "fast=openai/gpt-4o-mini;"}}));
  const auto& set = cfg.providers;
  REQUIRE(set.fallbacks.size() == 2);
  CHECK(set.fallbacks[0].model == "gpt-4o");
  CHECK(set.fallbacks[0].targets ==
        std::vector<std::string>{"anthropic/claude-sonnet-4-5", "smart", "openai/gpt-4o", "local/llama3.2"});

  struct expected {
    std::size_t provider;
    const char* model;
  };
  struct row {
    const char* requested;
    std::vector<expected> candidates;
  };
  const row rows[] = {
      // smart and openai/gpt-4o repeat earlier candidates.
      {"gpt-4o", {{0, "gpt-4o"}, {1, "claude-sonnet-4-5"}, {2, "llama3.2"}}},
      {"fast", {{2, "llama3.2"}, {0, "gpt-4o-mini"}}},
      {"gpt-4o-mini", {{0, "gpt-4o-mini"}}},
      {"openai/gpt-4o", {{0, "gpt-4o"}}},  // matched exactly as the client sends it
  };
  for (const auto& r : rows) {
    CAPTURE(r.requested);
    auto candidates = resolve_candidates(set, r.requested);
    REQUIRE(candidates.size() == r.candidates.size());
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      CHECK(candidates[i].provider_index == r.candidates[i].provider);
      CHECK(candidates[i].model == r.candidates[i].model);
    }
  }
  CHECK(describe_all(cfg).find("TOLLGATE_FALLBACKS=gpt-4o=anthropic/claude-sonnet-4-5|smart|openai/gpt-4o|"
                               "local/llama3.2;fast=openai/gpt-4o-mini\n") != std::string::npos);

  auto no_catch_all = with(three_providers, {{"TOLLGATE_PROVIDER_LOCAL_MODELS", "llama3.2"}});
  CHECK(resolve_candidates(load(no_catch_all).providers, "mistral").empty());
}

TEST_CASE("fallbacks: errors name TOLLGATE_FALLBACKS and the target") {
  auto no_catch_all = with(three_providers, {{"TOLLGATE_PROVIDER_LOCAL_MODELS", "llama3.2"}});
  struct row {
    const char* text;
    const char* message_part;
  };
  const row rows[] = {
      {"gpt-4o", "expected model=target|target"},
      {"=smart", "missing model name"},
      {"gpt-4o=| ", "\"gpt-4o\" has no fallback targets"},
      {"gpt-4o=smart|mistral", "fallback \"mistral\" for \"gpt-4o\" is not served by any provider"},
      {"gpt-4o=nobody/x", "fallback \"nobody/x\""},
      {"mistral=gpt-4o", "\"mistral\" is not served by any provider"},
      {"gpt-4o=smart;gpt-4o=fast", "two fallback chains"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    auto error = load_error(with(no_catch_all, {{"TOLLGATE_FALLBACKS", r.text}}));
    CHECK(error.variable == "TOLLGATE_FALLBACKS");
    CHECK(error.message.find(r.message_part) != std::string::npos);
  }
}
