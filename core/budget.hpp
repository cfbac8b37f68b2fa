#pragma once

#include "core/calendar.hpp"
#include "core/pricing.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::core {

// Provider budgets and the cost throttle (issue 4).
//
// Threading contract: one budget_tracker, owned by one thread (the evaluator that runs every
// TOLLGATE_THROTTLE_EVAL_INTERVAL_S and is fed every settled cost). Workers never call it;
// they read an immutable snapshot of skipped_providers() the owner publishes after
// evaluate(), as health state is published (ARCHITECTURE.md, "Pure pieces").

struct provider_budget {
  micro_usd monthly = 0;                // must be > 0 to be enforced
  std::optional<micro_usd> daily;       // hard cap per calendar day, when set
};

// Ratios are basis points (1/10000) so the comparisons are exact integers: with doubles,
// 1.10 * budget lands a hair above 110% and a projection of exactly 110% would not throttle.
struct throttle_settings {
  std::int64_t throttle_ratio_bp = 11'000;    // TOLLGATE_THROTTLE_RATIO 1.10
  std::int64_t unthrottle_ratio_bp = 9'500;   // TOLLGATE_UNTHROTTLE_RATIO 0.95
  bool enabled = false;                       // TOLLGATE_COST_THROTTLE_ENABLED; false = observe
};

enum class throttle_state : std::uint8_t { normal, throttled };
std::string_view throttle_state_name(throttle_state s) noexcept;

// Why a transition happened; also the `reason` of the log line, audit row and webhook.
enum class throttle_reason : std::uint8_t {
  projected_over_budget,   // projected >= throttle_ratio x monthly budget
  projected_under_budget,  // projected < unthrottle_ratio x monthly budget (release)
  daily_budget_exhausted,  // today's spend >= daily budget
  new_day,                 // daily cap released at the day boundary
  new_month,               // state reset at the month boundary
  budget_changed,          // the budget was removed or raised and the rule no longer holds
};
std::string_view throttle_reason_name(throttle_reason r) noexcept;

struct throttle_transition {
  std::string provider;
  throttle_state from;
  throttle_state to;
  micro_usd spent;           // this month so far
  micro_usd budget;          // monthly budget
  micro_usd projected;       // projected month-end spend
  std::int64_t ratio_bp;     // projected / budget, basis points
  throttle_reason reason;
  sys_seconds at;
};

// What metrics and the admin API show per provider.
struct provider_budget_status {
  provider_budget budget;
  micro_usd month_spent = 0;
  micro_usd day_spent = 0;
  micro_usd projected = 0;
  std::int64_t ratio_bp = 0;
  throttle_state state = throttle_state::normal;
};

// projected month-end spend = spent / (elapsed / length), in integer micro-USD (rounded down).
// Elapsed is clamped to at least 1 s so the first second of a month does not divide by zero.
micro_usd project_month_end(micro_usd spent, const month_progress& progress) noexcept;

class budget_tracker {
 public:
  budget_tracker(throttle_settings settings, utc_offset_fn zone);

  // Adding or changing a budget keeps the spend counted so far. A provider without a budget
  // is tracked for spend only and never throttled.
  void set_budget(const std::string& provider, provider_budget budget);
  void remove_budget(std::string_view provider);
  void set_enabled(bool enabled) noexcept { settings_.enabled = enabled; }

  // Adds a settled cost at `at`. Costs from a period that has already closed (late records)
  // do not count against the current one.
  void record_spend(std::string_view provider, micro_usd cost, sys_seconds at);
  // Restart: the spend of the current month and day rebuilt from the ledger, as of `now`.
  void restore_spend(std::string_view provider, micro_usd month_spent, micro_usd day_spent, sys_seconds now);

  // Recomputes every provider at `now`; returns the state changes (empty when none). Also
  // applies month and day rollovers. Transitions are computed and returned in observe mode.
  std::vector<throttle_transition> evaluate(sys_seconds now);

  bool is_throttled(std::string_view provider) const;
  // Whether routing should skip the provider: throttled AND enforcement enabled.
  bool should_skip(std::string_view provider) const;
  std::vector<std::string> skipped_providers() const;
  std::optional<provider_budget_status> status(std::string_view provider) const;

 private:
  struct provider_state {
    std::optional<provider_budget> budget;
    // The current periods: a settlement inside them needs no calendar maths.
    period_bounds month{};
    period_bounds day{};
    micro_usd month_spent = 0;
    micro_usd day_spent = 0;
    bool month_throttled = false;  // hysteresis latch
    bool day_exhausted = false;
    // Rollovers seen by record_spend since the last evaluate(), so the transition it
    // reports names the boundary as its reason.
    bool rolled_month = false;
    bool rolled_day = false;
    // The state as of the last evaluate(): what routing sees and what transitions compare to.
    throttle_state reported = throttle_state::normal;
    bool reported_day_exhausted = false;
    micro_usd projected = 0;
    std::int64_t ratio_bp = 0;
    bool throttled() const noexcept { return month_throttled || day_exhausted; }
  };
  provider_state& state_for(std::string_view provider);
  // Brings the counters to the periods containing `now`; returns what was reset.
  struct rollover {
    bool month = false;
    bool day = false;
  };
  rollover roll(provider_state& s, sys_seconds now) const;

  throttle_settings settings_;
  utc_offset_fn zone_;
  std::map<std::string, provider_state, std::less<>> providers_;
};

// Daily request quota per provider (TOLLGATE_PROVIDER_DAILY_QUOTA, e.g. gemini=1000): free
// tiers cap requests per day, so once over, the provider is skipped like a throttled one.
// Same threading contract as budget_tracker: one owner; try_acquire is the single counting
// point, so the count cannot pass the limit.
class provider_request_quota {
 public:
  explicit provider_request_quota(utc_offset_fn zone);

  void set_limit(const std::string& provider, std::int64_t per_day);
  void remove_limit(std::string_view provider);

  // Counts one request at `now` and returns true when it fits today's quota; returns false
  // (and does not count) when the quota is used up. Providers without a limit always pass.
  bool try_acquire(std::string_view provider, sys_seconds now);
  // Restart: today's count rebuilt from the ledger, so a restart does not hand out a fresh quota.
  void restore(std::string_view provider, std::int64_t used_today, sys_seconds now);
  bool over_quota(std::string_view provider, sys_seconds now) const;
  std::int64_t used_today(std::string_view provider, sys_seconds now) const;
  // Seconds until the quota resets (next local midnight).
  std::chrono::seconds retry_after(sys_seconds now) const;

 private:
  struct counter {
    std::int64_t limit = 0;
    sys_seconds day_start{};
    std::int64_t used = 0;
  };
  utc_offset_fn zone_;
  std::map<std::string, counter, std::less<>> counters_;
};

}  // namespace tollgate::core
