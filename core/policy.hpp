#pragma once

#include "core/budget.hpp"
#include "core/pricing.hpp"
#include "core/quota.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::core {

// The spending policy as configured (issue 4): caller quotas, provider budgets, provider
// request quotas and the zone their days and months follow. Parsers return "" on success,
// else a message saying what is wrong (the loader prefixes the variable name); format_*
// gives the same text back for --print-config.

// One TOLLGATE_QUOTAS entry, "scope:name:limit,limit,...".
struct quota_rule {
  quota_subject subject;
  quota_limits limits;
};

// "department:eng:daily_usd=50,monthly_usd=1000;user:alice:daily_tokens=200000;
//  key:tgk_0123456789ab:models=gpt-4o-mini|gpt-4.1*". Limits: daily_tokens, monthly_tokens,
// daily_usd, monthly_usd (decimal USD), models (a|b|prefix*).
std::string parse_quota_rules(std::string_view text, std::vector<quota_rule>& out);
std::string format_quota_rules(const std::vector<quota_rule>& rules);

// One TOLLGATE_BUDGETS entry, "provider=monthly_usd[:daily_usd]".
struct budget_rule {
  std::string provider;
  provider_budget budget;
};
std::string parse_budget_rules(std::string_view text, std::vector<budget_rule>& out);
std::string format_budget_rules(const std::vector<budget_rule>& rules);

// One TOLLGATE_PROVIDER_DAILY_QUOTA entry, "provider=requests_per_day".
struct provider_request_limit {
  std::string provider;
  std::int64_t per_day = 0;
};
std::string parse_provider_request_limits(std::string_view text, std::vector<provider_request_limit>& out);
std::string format_provider_request_limits(const std::vector<provider_request_limit>& limits);

// TOLLGATE_TZ. A fixed offset is resolved here; a named zone only looks like an IANA name and
// is resolved by the proxy against the system tz database (core reads no files).
struct time_zone_spec {
  std::string name;                                // "UTC", "UTC+05:30", or e.g. "Europe/Berlin"
  std::optional<std::chrono::minutes> fixed_offset;  // set for UTC and numeric offsets
};
// "UTC", "Z", "GMT" -> UTC; "+05:30", "-08:00", "UTC+2", "UTC-03:30" -> fixed (at most 14 h);
// "Area/Location[/...]" -> named.
std::string parse_time_zone(std::string_view text, time_zone_spec& out);

// An exact decimal ratio with at most 4 decimals, in basis points: "1.10" -> 11000.
std::string parse_ratio_bp(std::string_view text, std::int64_t& out);
std::string format_ratio_bp(std::int64_t bp);  // 11000 -> "1.10", 12345 -> "1.2345"

// micro-USD as a decimal without trailing zeros: 25'500'000 -> "25.5".
std::string format_usd(micro_usd amount);

}  // namespace tollgate::core
