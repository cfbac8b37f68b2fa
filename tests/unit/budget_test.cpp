#include "core/budget.hpp"

#include "tests/unit/civil_time.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

namespace {

using namespace tollgate::core;
using namespace std::chrono;
using namespace std::chrono_literals;

using tollgate::testing::utc;

constexpr micro_usd usd(std::int64_t dollars) { return dollars * 1'000'000; }

}  // namespace

TEST_CASE("budget: projection table") {
  struct row {
    const char* name;
    sys_seconds now;
    minutes offset;
    micro_usd spent;
    micro_usd projected;
  };
  const row rows[] = {
      {"nothing spent", utc(2026, 4, 10), 0min, 0, 0},
      {"half of April", utc(2026, 4, 16), 0min, usd(500), usd(1000)},
      {"half a day into April", utc(2026, 4, 1, 12), 0min, usd(10), usd(600)},
      {"first second of the month", utc(2026, 4, 1), 0min, 1, 30 * 86'400},
      {"leap February halfway", utc(2028, 2, 15, 12), 0min, usd(500), usd(1000)},
      {"non-leap February halfway", utc(2026, 2, 15), 0min, usd(500), usd(1000)},
      {"31-day month, 1/31 elapsed", utc(2026, 1, 2), 0min, usd(1), usd(31)},
      {"December to the last second", utc(2026, 12, 31, 23, 59, 59), 0min, usd(2678399), usd(2678400)},
      // 2026-05-01 02:00 UTC is still April 30 21:00 in UTC-5: 29 days 21 h of 30 days.
      {"UTC-5 still in April", utc(2026, 5, 1, 2), -300min, usd(717), usd(720)},
      // 2026-04-30 20:00 UTC is already May 1 05:00 in UTC+9: 5 h into May.
      {"UTC+9 already in May", utc(2026, 4, 30, 20), 540min, usd(5), usd(744)},
  };
  for (const auto& r : rows) {
    const std::string name = r.name;
    CAPTURE(name);
    CHECK(project_month_end(r.spent, month_elapsed(r.now, fixed_offset(r.offset))) == r.projected);
  }
}

TEST_CASE("budget: hysteresis table") {
  struct step {
    sys_seconds now;
    micro_usd spent_total;  // month-to-date spend at `now`
    throttle_state state;
    std::optional<throttle_reason> transition;
  };
  using enum throttle_state;
  using enum throttle_reason;
  // Budget $1000 for April (30 days). projected = spent * 30 / days elapsed.
  const step steps[] = {
      {utc(2026, 4, 16), usd(500), normal, std::nullopt},                 // 1000: at budget
      {utc(2026, 4, 16), usd(549), normal, std::nullopt},                 // 1098
      {utc(2026, 4, 16), usd(550), throttled, projected_over_budget},     // 1100: exactly 1.10
      {utc(2026, 4, 17), usd(551), throttled, std::nullopt},              // 1033: inside the band
      {utc(2026, 4, 18), usd(552), throttled, std::nullopt},              // 974: still >= 950
      {utc(2026, 4, 19), usd(570), throttled, std::nullopt},              // 950 exactly: not below
      {utc(2026, 4, 19), usd(570), throttled, std::nullopt},              // re-evaluation: no event
      {utc(2026, 4, 19, 0, 0, 1), usd(570), normal, projected_under_budget},  // 949.99..: release
      {utc(2026, 4, 21), usd(700), normal, std::nullopt},                 // 1050: inside the band
      {utc(2026, 4, 22), usd(800), throttled, projected_over_budget},     // 1142
      {utc(2026, 4, 30, 23, 59, 59), usd(800), normal, projected_under_budget},  // ~800 at month end
      {utc(2026, 4, 30, 23, 59, 59), usd(1100), throttled, projected_over_budget},
  };
  budget_tracker tracker({}, fixed_offset(0min));
  tracker.set_budget("openai", {usd(1000), std::nullopt});
  micro_usd spent = 0;
  auto run = [&](sys_seconds now, micro_usd total, throttle_state state, std::optional<throttle_reason> reason) {
    tracker.record_spend("openai", total - spent, now);
    spent = total;
    const auto t = tracker.evaluate(now);
    CHECK(tracker.is_throttled("openai") == (state == throttled));
    if (!reason) {
      CHECK(t.empty());
      return;
    }
    REQUIRE(t.size() == 1);
    CHECK(t[0].provider == "openai");
    CHECK(t[0].to == state);
    CHECK(t[0].from != state);
    CHECK(t[0].reason == *reason);
    CHECK(t[0].spent == spent);
    CHECK(t[0].budget == usd(1000));
    CHECK(t[0].at == now);
  };
  for (std::size_t i = 0; i < std::size(steps); ++i) {
    CAPTURE(i);
    run(steps[i].now, steps[i].spent_total, steps[i].state, steps[i].transition);
  }
  // Month boundary: everything resets even though April ended over budget.
  const auto t = tracker.evaluate(utc(2026, 5, 1));
  REQUIRE(t.size() == 1);
  CHECK(t[0].reason == new_month);
  CHECK(t[0].to == normal);
  CHECK(t[0].spent == 0);
  CHECK(tracker.status("openai")->month_spent == 0);
}

TEST_CASE("budget: transition record carries projection and ratio") {
  budget_tracker tracker({}, fixed_offset(0min));
  tracker.set_budget("anthropic", {usd(100), std::nullopt});
  tracker.record_spend("anthropic", usd(60), utc(2026, 4, 10));
  const auto t = tracker.evaluate(utc(2026, 4, 16));  // 60 / 0.5 = 120
  REQUIRE(t.size() == 1);
  CHECK(t[0].projected == usd(120));
  CHECK(t[0].ratio_bp == 12'000);
  CHECK(t[0].from == throttle_state::normal);
  CHECK(throttle_reason_name(t[0].reason) == "projected_over_budget");
  CHECK(throttle_state_name(t[0].to) == "throttled");
  const auto st = tracker.status("anthropic");
  REQUIRE(st.has_value());
  CHECK(st->projected == usd(120));
  CHECK(st->state == throttle_state::throttled);
}

TEST_CASE("budget: observe mode reports but does not skip") {
  budget_tracker observe({.enabled = false}, fixed_offset(0min));
  budget_tracker enforce({.enabled = true}, fixed_offset(0min));
  for (auto* b : {&observe, &enforce}) {
    b->set_budget("gemini", {usd(10), std::nullopt});
    b->record_spend("gemini", usd(20), utc(2026, 6, 2));
    CHECK(b->evaluate(utc(2026, 6, 3)).size() == 1);
    CHECK(b->is_throttled("gemini"));
  }
  CHECK_FALSE(observe.should_skip("gemini"));
  CHECK(observe.skipped_providers().empty());
  CHECK(enforce.should_skip("gemini"));
  CHECK(enforce.skipped_providers() == std::vector<std::string>{"gemini"});
  CHECK_FALSE(enforce.should_skip("openai"));
}

TEST_CASE("budget: custom ratios") {
  budget_tracker tracker({.throttle_ratio_bp = 10'000, .unthrottle_ratio_bp = 8'000, .enabled = true},
                         fixed_offset(0min));
  tracker.set_budget("p", {usd(100), std::nullopt});
  tracker.record_spend("p", usd(50), utc(2026, 4, 2));
  CHECK(tracker.evaluate(utc(2026, 4, 16)).size() == 1);  // 100 >= 1.00 x 100
  CHECK(tracker.evaluate(utc(2026, 4, 18)).empty());      // 88 >= 80
  CHECK(tracker.evaluate(utc(2026, 4, 20)).size() == 1);  // 78.9 < 80
}

TEST_CASE("budget: daily cap and day rollover") {
  budget_tracker tracker({.enabled = true}, fixed_offset(0min));
  tracker.set_budget("openai", {usd(1'000'000), usd(50)});
  tracker.record_spend("openai", usd(49), utc(2026, 4, 10, 9));
  CHECK(tracker.evaluate(utc(2026, 4, 10, 10)).empty());
  tracker.record_spend("openai", usd(1), utc(2026, 4, 10, 11));
  auto t = tracker.evaluate(utc(2026, 4, 10, 12));
  REQUIRE(t.size() == 1);
  CHECK(t[0].reason == throttle_reason::daily_budget_exhausted);
  CHECK(tracker.should_skip("openai"));
  CHECK(tracker.evaluate(utc(2026, 4, 10, 23, 59, 59)).empty());
  t = tracker.evaluate(utc(2026, 4, 11));
  REQUIRE(t.size() == 1);
  CHECK(t[0].reason == throttle_reason::new_day);
  CHECK(tracker.status("openai")->day_spent == 0);
  CHECK(tracker.status("openai")->month_spent == usd(50));
}

TEST_CASE("budget: time zone decides the month and late records") {
  // UTC-5: the April month ends at 2026-05-01 05:00 UTC.
  budget_tracker tracker({.enabled = true}, fixed_offset(-300min));
  tracker.set_budget("openai", {usd(100), std::nullopt});
  tracker.record_spend("openai", usd(200), utc(2026, 5, 1, 3));  // still April locally
  auto t = tracker.evaluate(utc(2026, 5, 1, 4));
  REQUIRE(t.size() == 1);
  CHECK(t[0].spent == usd(200));
  t = tracker.evaluate(utc(2026, 5, 1, 5));
  REQUIRE(t.size() == 1);
  CHECK(t[0].reason == throttle_reason::new_month);
  // A record stamped in April arriving after the rollover does not count against May.
  tracker.record_spend("openai", usd(500), utc(2026, 5, 1, 4, 59, 59));
  CHECK(tracker.status("openai")->month_spent == 0);
  CHECK(tracker.evaluate(utc(2026, 5, 2)).empty());
}

TEST_CASE("budget: rollover seen first by record_spend still reports new_month") {
  budget_tracker tracker({}, fixed_offset(0min));
  tracker.set_budget("p", {usd(10), std::nullopt});
  tracker.record_spend("p", usd(100), utc(2026, 4, 20));
  CHECK(tracker.evaluate(utc(2026, 4, 21)).size() == 1);
  tracker.record_spend("p", 1, utc(2026, 5, 1, 0, 0, 30));  // May: tiny spend
  const auto t = tracker.evaluate(utc(2026, 5, 1, 12));
  REQUIRE(t.size() == 1);
  CHECK(t[0].reason == throttle_reason::new_month);
  CHECK(t[0].spent == 1);
}

TEST_CASE("budget: removing a budget releases; restore rebuilds spend") {
  budget_tracker tracker({.enabled = true}, fixed_offset(0min));
  tracker.set_budget("p", {usd(10), std::nullopt});
  tracker.restore_spend("p", usd(30), usd(5), utc(2026, 4, 16));
  auto t = tracker.evaluate(utc(2026, 4, 16));
  REQUIRE(t.size() == 1);
  CHECK(t[0].spent == usd(30));
  CHECK(t[0].projected == usd(60));
  tracker.remove_budget("p");
  t = tracker.evaluate(utc(2026, 4, 16, 1));
  REQUIRE(t.size() == 1);
  CHECK(t[0].reason == throttle_reason::budget_changed);
  CHECK_FALSE(tracker.should_skip("p"));
  // Providers without a budget are never throttled but their spend is tracked.
  tracker.record_spend("free", usd(1'000), utc(2026, 4, 16));
  CHECK(tracker.evaluate(utc(2026, 4, 16, 2)).empty());
  CHECK(tracker.status("free")->month_spent == usd(1'000));
  CHECK_FALSE(tracker.status("unknown").has_value());
}

TEST_CASE("budget: provider daily request quota") {
  provider_request_quota quota(fixed_offset(-300min));
  quota.set_limit("gemini", 3);
  const auto t0 = utc(2026, 4, 10, 12);
  CHECK(quota.try_acquire("gemini", t0));
  CHECK(quota.try_acquire("gemini", t0));
  CHECK_FALSE(quota.over_quota("gemini", t0));
  CHECK(quota.try_acquire("gemini", t0));
  CHECK(quota.over_quota("gemini", t0));
  CHECK_FALSE(quota.try_acquire("gemini", t0));
  CHECK(quota.used_today("gemini", t0) == 3);  // the refused one was not counted
  CHECK(quota.try_acquire("openai", t0));      // no limit
  CHECK_FALSE(quota.over_quota("openai", t0));
  // Local midnight in UTC-5 is 05:00 UTC.
  CHECK(quota.retry_after(t0) == 17h);
  CHECK(quota.over_quota("gemini", utc(2026, 4, 11, 4, 59, 59)));
  CHECK_FALSE(quota.over_quota("gemini", utc(2026, 4, 11, 5)));
  CHECK(quota.used_today("gemini", utc(2026, 4, 11, 5)) == 0);
  CHECK(quota.try_acquire("gemini", utc(2026, 4, 11, 5)));
  CHECK(quota.used_today("gemini", utc(2026, 4, 11, 6)) == 1);
  quota.remove_limit("gemini");
  CHECK(quota.try_acquire("gemini", utc(2026, 4, 11, 6)));
}

TEST_CASE("budget: provider daily request quota survives a restart through restore") {
  provider_request_quota quota(fixed_offset(0min));
  quota.set_limit("gemini", 5);
  const auto t0 = utc(2026, 4, 10, 12);
  quota.restore("gemini", 4, t0);  // four requests already in today's ledger
  CHECK(quota.used_today("gemini", t0) == 4);
  CHECK(quota.try_acquire("gemini", t0));
  CHECK_FALSE(quota.try_acquire("gemini", t0));
  // Restoring a provider without a limit does nothing; the next day starts from zero.
  quota.restore("openai", 100, t0);
  CHECK(quota.used_today("openai", t0) == 0);
  CHECK(quota.used_today("gemini", utc(2026, 4, 11, 0)) == 0);
}
