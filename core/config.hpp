#pragma once

#include "core/address.hpp"
#include "core/caller.hpp"
#include "core/env.hpp"
#include "core/policy.hpp"
#include "core/pricing.hpp"
#include "core/providers.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::core {

struct config {
  host_port listen;
  host_port metrics_listen;
  unsigned workers = 1;
  upstream_url upstream;
  std::string upstream_api_key_env;
  std::string upstream_api_key;  // secret: never logged, masked by describe()
  std::chrono::milliseconds upstream_connect_timeout{};
  std::chrono::milliseconds upstream_timeout{};
  std::chrono::milliseconds stream_idle_timeout{};
  std::chrono::milliseconds client_idle_timeout{};
  std::chrono::seconds drain_timeout{};
  std::size_t max_body_bytes = 0;
  std::size_t max_sse_event_bytes = 0;
  std::size_t upstream_pool_size = 0;
  bool access_log = true;
  std::uint32_t default_max_tokens = 4096;
  provider_set providers;  // includes TOLLGATE_FALLBACKS

  // Ledger (storage/).
  std::string db_path;
  std::chrono::milliseconds ledger_flush_interval{};
  bool ledger_fail_open = false;  // ledger unusable: false = 503 for requests needing enforcement

  // Prices on top of the built-in table; the file (JSON) is read and parsed by the proxy.
  std::vector<price_entry> price_overrides;
  std::string prices_file;

  // Callers, quotas and budgets (issue 4).
  std::vector<virtual_key> keys;  // hashes only; no secret is kept
  bool require_key = false;
  time_zone_spec time_zone;
  std::vector<quota_rule> quotas;
  std::vector<budget_rule> budgets;  // provider names checked against `providers`
  std::chrono::seconds throttle_eval_interval{};
  std::int64_t throttle_ratio_bp = 11'000;
  std::int64_t unthrottle_ratio_bp = 9'500;  // < throttle_ratio_bp
  bool cost_throttle_enabled = false;        // false = observe mode
  std::vector<provider_request_limit> provider_daily_quota;  // provider names checked
  std::optional<upstream_url> alert_webhook;
  std::string admin_token;  // secret: never logged, masked by describe(); "" = admin API off
};

// Every TOLLGATE_* variable is described once, here: the loader, --help and
// --print-config all walk this table.
struct setting {
  std::string_view name;
  std::string_view default_value;
  std::string_view help;
};

std::span<const setting> settings();

// cpu_count resolves TOLLGATE_WORKERS=0 ("one per core").
boost::system::result<config, config_error> load_config(const env_lookup& env, unsigned cpu_count);

// "NAME=value" lines of the effective configuration, secrets masked.
std::vector<std::string> describe(const config& cfg);

// TOLLGATE_* names present in the environment that no setting knows: almost always typos.
std::vector<std::string> unknown_variables(std::span<const std::string> environment_names);

// "sk-…abcd (51 chars)": enough to tell keys apart in a support ticket, useless to an attacker.
std::string mask_secret(std::string_view secret);

}  // namespace tollgate::core
