#include "core/budget.hpp"

#include <algorithm>
#include <limits>

namespace tollgate::core {

namespace {

__extension__ using wide = __int128;

micro_usd clamp_to_int64(wide v) {
  if (v > std::numeric_limits<micro_usd>::max()) return std::numeric_limits<micro_usd>::max();
  if (v < 0) return 0;
  return static_cast<micro_usd>(v);
}

bool has_budget(const std::optional<provider_budget>& b) { return b && b->monthly > 0; }

bool contains(const period_bounds& period, sys_seconds t) { return t >= period.start && t < period.end; }

struct period_change {
  bool entered = false;  // `current` moved on to a later period
  bool rolled = false;   // ... and it had held one before: a rollover, not the first period
};

// Moves `current` on to the period holding `now` once `now` has left it.
template <class BoundsOf>
period_change enter_period(period_bounds& current, sys_seconds now, BoundsOf bounds_of) {
  if (now < current.end) return {};
  const auto next = bounds_of(now);
  if (next.start <= current.start) return {};
  const bool rolled = current.start != sys_seconds{};
  current = next;
  return {true, rolled};
}

}  // namespace

std::string_view throttle_state_name(throttle_state s) noexcept {
  return s == throttle_state::throttled ? "throttled" : "normal";
}

std::string_view throttle_reason_name(throttle_reason r) noexcept {
  switch (r) {
    case throttle_reason::projected_over_budget: return "projected_over_budget";
    case throttle_reason::projected_under_budget: return "projected_under_budget";
    case throttle_reason::daily_budget_exhausted: return "daily_budget_exhausted";
    case throttle_reason::new_day: return "new_day";
    case throttle_reason::new_month: return "new_month";
    case throttle_reason::budget_changed: return "budget_changed";
  }
  return "unknown";
}

micro_usd project_month_end(micro_usd spent, const month_progress& progress) noexcept {
  if (spent <= 0) return 0;
  const std::int64_t length = std::max<std::int64_t>(progress.length.count(), 1);
  const std::int64_t elapsed = std::clamp<std::int64_t>(progress.elapsed.count(), 1, length);
  return clamp_to_int64(wide{spent} * length / elapsed);
}

budget_tracker::budget_tracker(throttle_settings settings, utc_offset_fn zone)
    : settings_(settings), zone_(std::move(zone)) {}

budget_tracker::provider_state& budget_tracker::state_for(std::string_view provider) {
  auto it = providers_.find(provider);
  if (it == providers_.end()) it = providers_.emplace(std::string(provider), provider_state{}).first;
  return it->second;
}

void budget_tracker::set_budget(const std::string& provider, provider_budget budget) {
  state_for(provider).budget = budget;
}

void budget_tracker::remove_budget(std::string_view provider) {
  if (auto it = providers_.find(provider); it != providers_.end()) it->second.budget.reset();
}

budget_tracker::rollover budget_tracker::roll(provider_state& s, sys_seconds now) const {
  rollover r;
  if (auto month = enter_period(s.month, now, [this](sys_seconds t) { return month_bounds(t, zone_); });
      month.entered) {
    r.month = month.rolled;
    s.month_spent = 0;
    s.month_throttled = false;  // the issue: state resets at the month boundary
  }
  if (auto day = enter_period(s.day, now, [this](sys_seconds t) { return day_bounds(t, zone_); }); day.entered) {
    r.day = day.rolled;
    s.day_spent = 0;
    s.day_exhausted = false;
  }
  return r;
}

void budget_tracker::record_spend(std::string_view provider, micro_usd cost, sys_seconds at) {
  if (cost <= 0) return;
  auto& s = state_for(provider);
  const auto r = roll(s, at);
  s.rolled_month = s.rolled_month || r.month;
  s.rolled_day = s.rolled_day || r.day;
  // A record older than the current period belongs to a closed one.
  if (contains(s.month, at)) s.month_spent += cost;
  if (contains(s.day, at)) s.day_spent += cost;
}

void budget_tracker::restore_spend(std::string_view provider, micro_usd month_spent, micro_usd day_spent,
                                   sys_seconds now) {
  auto& s = state_for(provider);
  roll(s, now);
  s.month_spent = std::max<micro_usd>(month_spent, 0);
  s.day_spent = std::max<micro_usd>(day_spent, 0);
}

std::vector<throttle_transition> budget_tracker::evaluate(sys_seconds now) {
  std::vector<throttle_transition> out;
  for (auto& [name, s] : providers_) {
    const auto r = roll(s, now);
    const bool rolled_month = s.rolled_month || r.month;
    const bool rolled_day = s.rolled_day || r.day;
    s.rolled_month = s.rolled_day = false;

    const bool was_day_exhausted = s.reported_day_exhausted;
    if (has_budget(s.budget)) {
      const micro_usd budget = s.budget->monthly;
      s.projected = project_month_end(s.month_spent, month_elapsed(now, zone_));
      s.ratio_bp = clamp_to_int64(wide{s.projected} * 10'000 / budget);
      const wide scaled = wide{s.projected} * 10'000;
      if (!s.month_throttled && scaled >= wide{settings_.throttle_ratio_bp} * budget) s.month_throttled = true;
      else if (s.month_throttled && scaled < wide{settings_.unthrottle_ratio_bp} * budget) s.month_throttled = false;
      s.day_exhausted = s.budget->daily && *s.budget->daily > 0 && s.day_spent >= *s.budget->daily;
    } else {
      s.projected = project_month_end(s.month_spent, month_elapsed(now, zone_));
      s.ratio_bp = 0;
      s.month_throttled = false;
      s.day_exhausted = false;
    }

    const throttle_state from = s.reported;
    const throttle_state to = s.throttled() ? throttle_state::throttled : throttle_state::normal;
    s.reported_day_exhausted = s.day_exhausted;
    if (from == to) continue;
    s.reported = to;

    throttle_reason reason;
    if (to == throttle_state::throttled) {
      reason = s.month_throttled ? throttle_reason::projected_over_budget : throttle_reason::daily_budget_exhausted;
    } else if (!has_budget(s.budget)) {
      reason = throttle_reason::budget_changed;
    } else if (rolled_month) {
      reason = throttle_reason::new_month;
    } else if (rolled_day && was_day_exhausted) {
      reason = throttle_reason::new_day;
    } else if (was_day_exhausted && !s.day_exhausted) {
      reason = throttle_reason::budget_changed;  // daily cap raised or removed mid-day
    } else {
      reason = throttle_reason::projected_under_budget;
    }
    out.push_back({name, from, to, s.month_spent, s.budget ? s.budget->monthly : 0, s.projected, s.ratio_bp, reason,
                   now});
  }
  return out;
}

bool budget_tracker::is_throttled(std::string_view provider) const {
  auto it = providers_.find(provider);
  return it != providers_.end() && it->second.reported == throttle_state::throttled;
}

bool budget_tracker::should_skip(std::string_view provider) const { return settings_.enabled && is_throttled(provider); }

std::vector<std::string> budget_tracker::skipped_providers() const {
  std::vector<std::string> out;
  if (!settings_.enabled) return out;
  for (const auto& [name, s] : providers_)
    if (s.reported == throttle_state::throttled) out.push_back(name);
  return out;
}

std::optional<provider_budget_status> budget_tracker::status(std::string_view provider) const {
  auto it = providers_.find(provider);
  if (it == providers_.end()) return std::nullopt;
  const auto& s = it->second;
  return provider_budget_status{s.budget.value_or(provider_budget{}), s.month_spent, s.day_spent, s.projected,
                                s.ratio_bp, s.reported};
}

provider_request_quota::provider_request_quota(utc_offset_fn zone) : zone_(std::move(zone)) {}

void provider_request_quota::set_limit(const std::string& provider, std::int64_t per_day) {
  counters_[provider].limit = per_day;
}

void provider_request_quota::remove_limit(std::string_view provider) {
  if (auto it = counters_.find(provider); it != counters_.end()) counters_.erase(it);
}

bool provider_request_quota::try_acquire(std::string_view provider, sys_seconds now) {
  auto it = counters_.find(provider);
  if (it == counters_.end()) return true;
  auto& c = it->second;
  const auto day = day_start(now, zone_);
  if (day > c.day_start) {
    c.day_start = day;
    c.used = 0;
  }
  if (c.used >= c.limit) return false;
  ++c.used;
  return true;
}

void provider_request_quota::restore(std::string_view provider, std::int64_t used_today, sys_seconds now) {
  auto it = counters_.find(provider);
  if (it == counters_.end()) return;
  it->second.day_start = day_start(now, zone_);
  it->second.used = std::max<std::int64_t>(used_today, 0);
}

std::int64_t provider_request_quota::used_today(std::string_view provider, sys_seconds now) const {
  auto it = counters_.find(provider);
  if (it == counters_.end()) return 0;
  return day_start(now, zone_) > it->second.day_start ? 0 : it->second.used;
}

bool provider_request_quota::over_quota(std::string_view provider, sys_seconds now) const {
  auto it = counters_.find(provider);
  return it != counters_.end() && used_today(provider, now) >= it->second.limit;
}

std::chrono::seconds provider_request_quota::retry_after(sys_seconds now) const { return day_end(now, zone_) - now; }

}  // namespace tollgate::core
