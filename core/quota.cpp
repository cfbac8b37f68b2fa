#include "core/quota.hpp"

#include <algorithm>
#include <limits>

namespace tollgate::core {

namespace {

bool model_allowed(const std::vector<std::string>& allowed, std::string_view model) {
  if (allowed.empty()) return true;
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& entry) {
    if (!entry.empty() && entry.back() == '*') return model.starts_with(std::string_view(entry).substr(0, entry.size() - 1));
    return model == entry;
  });
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b) return std::numeric_limits<std::int64_t>::max();
  return a + b;
}

}  // namespace

std::string_view quota_scope_name(quota_scope s) noexcept {
  switch (s) {
    case quota_scope::department: return "department";
    case quota_scope::user: return "user";
    case quota_scope::key: return "key";
  }
  return "department";
}

std::string_view quota_type_name(quota_type t) noexcept {
  switch (t) {
    case quota_type::tokens: return "tokens";
    case quota_type::cost: return "cost";
    case quota_type::model: return "model";
  }
  return "tokens";
}

std::string_view period_name(period p) noexcept { return p == period::day ? "day" : "month"; }

quota_amount worst_case(std::int64_t estimated_prompt_tokens, std::int64_t max_tokens,
                        const std::optional<model_price>& price) noexcept {
  const std::int64_t prompt = std::max<std::int64_t>(estimated_prompt_tokens, 0);
  const std::int64_t completion = std::max<std::int64_t>(max_tokens, 0);
  return {saturating_add(prompt, completion), price ? cost_micro_usd(*price, {prompt, completion, 0}) : 0};
}

quota_book::quota_book(utc_offset_fn zone) : zone_(std::move(zone)) {}

void quota_book::set_limits(const quota_subject& subject, quota_limits limits) {
  subjects_[subject].limits = std::move(limits);
}

void quota_book::remove_limits(const quota_subject& subject) { subjects_.erase(subject); }

quota_book::now_bounds quota_book::bounds_at(sys_seconds now) const {
  return {day_bounds(now, zone_), month_bounds(now, zone_)};
}

void quota_book::roll(subject_state& s, const now_bounds& b) {
  // Reservations of the closed period are dropped with it; settle() then finds the window
  // start changed and charges nothing to the new period.
  if (b.day.start > s.day.start) s.day = window{b.day.start, {}, {}};
  if (b.month.start > s.month.start) s.month = window{b.month.start, {}, {}};
}

std::variant<quota_reservation, quota_rejection> quota_book::admit(const admission_request& request,
                                                                   sys_seconds now) {
  const auto b = bounds_at(now);
  std::optional<quota_rejection> worst;
  auto consider = [&](quota_rejection r) {
    if (!worst) {
      worst = std::move(r);
      return;
    }
    const bool r_model = r.type == quota_type::model;
    const bool w_model = worst->type == quota_type::model;
    if (w_model) return;
    if (r_model || r.retry_after > worst->retry_after) worst = std::move(r);
  };

  // Iterate in the caller's order so ties go to the first subject listed.
  std::vector<quota_subject> tracked;
  for (const auto& subject : request.subjects) {
    auto it = subjects_.find(subject);
    if (it == subjects_.end()) continue;
    if (std::find(tracked.begin(), tracked.end(), subject) != tracked.end()) continue;
    tracked.push_back(subject);
    auto& s = it->second;
    roll(s, b);
    const auto& l = s.limits;
    if (!model_allowed(l.allowed_models, request.model)) {
      consider({subject, quota_type::model, std::nullopt, 0, 0, std::chrono::seconds{0}});
      continue;
    }
    auto check = [&](const std::optional<std::int64_t>& limit, const window& w, quota_type type, period p,
                     const period_bounds& bounds) {
      if (!limit) return;
      const std::int64_t used = type == quota_type::tokens ? w.used.tokens : w.used.cost;
      const std::int64_t reserved = type == quota_type::tokens ? w.reserved.tokens : w.reserved.cost;
      const std::int64_t want = type == quota_type::tokens ? request.worst.tokens : request.worst.cost;
      const std::int64_t current = saturating_add(used, reserved);
      if (saturating_add(current, want) > *limit) consider({subject, type, p, *limit, current, bounds.end - now});
    };
    check(l.daily_tokens, s.day, quota_type::tokens, period::day, b.day);
    check(l.daily_cost, s.day, quota_type::cost, period::day, b.day);
    check(l.monthly_tokens, s.month, quota_type::tokens, period::month, b.month);
    check(l.monthly_cost, s.month, quota_type::cost, period::month, b.month);
  }
  if (worst) return *worst;

  for (const auto& subject : tracked) {
    auto& s = subjects_.at(subject);
    for (window* w : {&s.day, &s.month}) {
      w->reserved.tokens = saturating_add(w->reserved.tokens, request.worst.tokens);
      w->reserved.cost = saturating_add(w->reserved.cost, request.worst.cost);
    }
  }
  const std::uint64_t id = next_id_++;
  reservations_.emplace(id, reservation_record{std::move(tracked), b.day.start, b.month.start, request.worst});
  return quota_reservation{id};
}

bool quota_book::settle(quota_reservation reservation, quota_amount actual, sys_seconds now) {
  auto it = reservations_.find(reservation.id);
  if (it == reservations_.end()) return false;
  const auto record = std::move(it->second);
  reservations_.erase(it);
  const auto b = bounds_at(now);
  actual.tokens = std::max<std::int64_t>(actual.tokens, 0);
  actual.cost = std::max<micro_usd>(actual.cost, 0);
  for (const auto& subject : record.subjects) {
    auto sit = subjects_.find(subject);
    if (sit == subjects_.end()) continue;  // limits removed meanwhile: nothing to account
    auto& s = sit->second;
    roll(s, b);
    auto apply = [&](window& w, sys_seconds admitted_in) {
      if (w.start != admitted_in) return;  // that period closed; its reservation went with it
      w.reserved.tokens -= record.amount.tokens;
      w.reserved.cost -= record.amount.cost;
      w.used.tokens = saturating_add(w.used.tokens, actual.tokens);
      w.used.cost = saturating_add(w.used.cost, actual.cost);
    };
    apply(s.day, record.day_start);
    apply(s.month, record.month_start);
  }
  return true;
}

void quota_book::restore(const quota_subject& subject, quota_amount day_used, quota_amount month_used,
                         sys_seconds now) {
  auto it = subjects_.find(subject);
  if (it == subjects_.end()) return;
  roll(it->second, bounds_at(now));
  it->second.day.used = day_used;
  it->second.month.used = month_used;
}

std::optional<quota_usage> quota_book::usage(const quota_subject& subject, sys_seconds now) {
  auto it = subjects_.find(subject);
  if (it == subjects_.end()) return std::nullopt;
  roll(it->second, bounds_at(now));
  const auto& s = it->second;
  return quota_usage{s.day.used, s.day.reserved, s.month.used, s.month.reserved};
}

}  // namespace tollgate::core
