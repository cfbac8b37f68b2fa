#include "core/quota.hpp"

#include "tests/unit/civil_time.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace tollgate::core;
using namespace std::chrono;
using namespace std::chrono_literals;

using tollgate::testing::utc;

const quota_subject eng{quota_scope::department, "eng"};
const quota_subject sales{quota_scope::department, "sales"};
const quota_subject alice{quota_scope::user, "alice"};

admission_request req(std::vector<quota_subject> subjects, std::int64_t tokens, micro_usd cost,
                      std::string model = "gpt-4o") {
  return {std::move(subjects), std::move(model), {tokens, cost}};
}

quota_reservation admitted(std::variant<quota_reservation, quota_rejection> r) {
  REQUIRE(std::holds_alternative<quota_reservation>(r));
  return std::get<quota_reservation>(r);
}

quota_rejection rejected(std::variant<quota_reservation, quota_rejection> r) {
  REQUIRE(std::holds_alternative<quota_rejection>(r));
  return std::get<quota_rejection>(r);
}

}  // namespace

TEST_CASE("quota: worst case prices prompt plus max_tokens") {
  const model_price gpt4o{2'500'000, 10'000'000, 1'250'000};
  const auto w = worst_case(1000, 500, gpt4o);
  CHECK(w.tokens == 1500);
  CHECK(w.cost == 2500 + 5000);
  CHECK(worst_case(1000, 500, std::nullopt).cost == 0);
  CHECK(worst_case(-3, 10, gpt4o).tokens == 10);
}

TEST_CASE("quota: daily token limit, settle and reset at local midnight") {
  quota_book book(fixed_offset(-300min));  // UTC-5: days start at 05:00 UTC
  book.set_limits(eng, {.daily_tokens = 1000});
  const auto t0 = utc(2026, 4, 10, 12);
  auto r1 = admitted(book.admit(req({eng}, 600, 0), t0));
  auto rej = rejected(book.admit(req({eng}, 600, 0), t0));  // 600 reserved + 600 > 1000
  CHECK(rej.subject == eng);
  CHECK(rej.type == quota_type::tokens);
  CHECK(rej.window == period::day);
  CHECK(rej.limit == 1000);
  CHECK(rej.current == 600);
  CHECK(rej.retry_after == 17h);  // until 2026-04-11 05:00 UTC
  // Settling frees what the request did not use.
  CHECK(book.settle(r1, {200, 0}, t0));
  CHECK_FALSE(book.settle(r1, {200, 0}, t0));  // double settle is a no-op
  auto r2 = admitted(book.admit(req({eng}, 800, 0), t0));
  CHECK(rejected(book.admit(req({eng}, 1, 0), t0)).current == 1000);
  CHECK(book.release(r2, t0));
  CHECK(book.usage(eng, t0)->day_used.tokens == 200);
  CHECK(book.usage(eng, t0)->day_reserved.tokens == 0);
  CHECK(book.in_flight() == 0);
  // Still the same local day one second before 05:00 UTC, a fresh one at 05:00.
  admitted(book.admit(req({eng}, 800, 0), utc(2026, 4, 11, 4, 59, 59)));
  CHECK(rejected(book.admit(req({eng}, 1, 0), utc(2026, 4, 11, 4, 59, 59))).retry_after == 1s);
  admitted(book.admit(req({eng}, 1000, 0), utc(2026, 4, 11, 5)));
}

TEST_CASE("quota: monthly cost limit and month reset") {
  quota_book book(fixed_offset(0min));
  book.set_limits(alice, {.monthly_cost = 5'000'000});  // $5
  auto r = admitted(book.admit(req({alice}, 10, 4'000'000), utc(2026, 2, 27)));
  book.settle(r, {10, 4'500'000}, utc(2026, 2, 27));
  auto rej = rejected(book.admit(req({alice}, 10, 600'000), utc(2026, 2, 28, 12)));
  CHECK(rej.type == quota_type::cost);
  CHECK(rej.window == period::month);
  CHECK(rej.current == 4'500'000);
  CHECK(rej.retry_after == 12h);  // non-leap February ends on the 28th
  admitted(book.admit(req({alice}, 10, 600'000), utc(2026, 3, 1)));
  CHECK(book.usage(alice, utc(2026, 3, 1))->month_used.cost == 0);
}

TEST_CASE("quota: a request spanning the period boundary charges the closed period") {
  quota_book book(fixed_offset(0min));
  book.set_limits(eng, {.daily_tokens = 100});
  auto r = admitted(book.admit(req({eng}, 100, 0), utc(2026, 4, 10, 23, 59)));
  admitted(book.admit(req({eng}, 100, 0), utc(2026, 4, 11)));  // new day: old reservation gone
  CHECK(book.settle(r, {90, 0}, utc(2026, 4, 11, 0, 1)));
  const auto u = book.usage(eng, utc(2026, 4, 11, 0, 2));
  CHECK(u->day_used.tokens == 0);
  CHECK(u->day_reserved.tokens == 100);
}

TEST_CASE("quota: several departments, the strictest wins") {
  quota_book book(fixed_offset(0min));
  book.set_limits(eng, {.daily_tokens = 1'000'000, .monthly_cost = 100});
  book.set_limits(sales, {.daily_tokens = 50});
  const auto now = utc(2026, 4, 10, 12);
  // sales' daily limit and eng's monthly limit both fail: the month lasts longer.
  auto rej = rejected(book.admit(req({sales, eng}, 60, 200), now));
  CHECK(rej.subject == eng);
  CHECK(rej.window == period::month);
  CHECK(rej.type == quota_type::cost);
  // Only sales fails.
  rej = rejected(book.admit(req({eng, sales}, 60, 10), now));
  CHECK(rej.subject == sales);
  CHECK(rej.window == period::day);
  // A rejected admission reserves nothing anywhere.
  CHECK(book.usage(eng, now)->day_reserved.tokens == 0);
  // Both fit: reserved against both; a duplicate listing counts once; unknown subjects are
  // not tracked.
  auto r = admitted(book.admit(req({eng, sales, eng, alice}, 50, 10), now));
  CHECK(book.usage(eng, now)->month_reserved.cost == 10);
  CHECK(book.usage(eng, now)->day_reserved.tokens == 50);
  CHECK(book.usage(sales, now)->day_reserved.tokens == 50);
  CHECK_FALSE(book.usage(alice, now).has_value());
  book.settle(r, {40, 8}, now);
  CHECK(book.usage(eng, now)->month_used.cost == 8);
  CHECK(book.usage(sales, now)->day_used.tokens == 40);
}

TEST_CASE("quota: model allow-list") {
  quota_book book(fixed_offset(0min));
  book.set_limits(eng, {.daily_tokens = 10, .allowed_models = {"gpt-4o-mini", "claude-haiku-*"}});
  const auto now = utc(2026, 4, 10);
  admitted(book.admit(req({eng}, 1, 0, "gpt-4o-mini"), now));
  admitted(book.admit(req({eng}, 1, 0, "claude-haiku-4-5-20251001"), now));
  auto rej = rejected(book.admit(req({eng}, 1, 0, "gpt-4o"), now));
  CHECK(rej.type == quota_type::model);
  CHECK_FALSE(rej.window.has_value());
  CHECK(rej.retry_after == 0s);
  // A model refusal beats a token refusal: no wait would help.
  book.set_limits(sales, {.daily_tokens = 0});
  rej = rejected(book.admit(req({sales, eng}, 1, 0, "gpt-4o"), now));
  CHECK(rej.type == quota_type::model);
  CHECK(quota_type_name(rej.type) == "model");
  CHECK(quota_scope_name(rej.subject.scope) == "department");
  CHECK(period_name(period::month) == "month");
}

TEST_CASE("quota: restore after restart") {
  quota_book book(fixed_offset(0min));
  book.set_limits(alice, {.daily_tokens = 1000, .monthly_cost = 1000});
  const auto now = utc(2026, 4, 10);
  book.restore(alice, {900, 100}, {5000, 990}, now);
  CHECK(rejected(book.admit(req({alice}, 101, 0), now)).current == 900);
  CHECK(rejected(book.admit(req({alice}, 1, 11), now)).current == 990);
  admitted(book.admit(req({alice}, 100, 10), now));
}

TEST_CASE("quota: 200 concurrently issued requests never overshoot") {
  // Workers issue 200 requests at once; the owner thread applies them in arrival order,
  // interleaved with completions. At every step used + reserved stays within the limits, so
  // the recorded spend (used) can never exceed them.
  quota_book book(fixed_offset(0min));
  const micro_usd cost_limit = 1'000'000;
  const std::int64_t token_limit = 60'000;
  book.set_limits(eng, {.daily_tokens = token_limit, .monthly_cost = cost_limit});
  book.set_limits(alice, {.monthly_cost = cost_limit / 2});
  std::mt19937_64 rng(20261122);
  auto uniform = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };

  const auto now = utc(2026, 4, 10, 12);
  struct in_flight {
    quota_reservation handle;
    quota_amount worst;
  };
  std::vector<in_flight> pending;
  int issued = 0, admitted_count = 0, rejected_count = 0, settled = 0;
  auto check_invariant = [&] {
    const auto e = *book.usage(eng, now);
    const auto a = *book.usage(alice, now);
    REQUIRE(e.month_used.cost + e.month_reserved.cost <= cost_limit);
    REQUIRE(e.day_used.tokens + e.day_reserved.tokens <= token_limit);
    REQUIRE(a.month_used.cost + a.month_reserved.cost <= cost_limit / 2);
  };
  while (issued < 200 || !pending.empty()) {
    // Mostly arrivals while any remain, so many requests are in flight at once.
    const bool arrive = issued < 200 && (pending.empty() || uniform(0, 3) != 0);
    if (arrive) {
      ++issued;
      const quota_amount worst{uniform(1, 2'000), uniform(1, 40'000)};
      std::vector<quota_subject> who{eng};
      if (uniform(0, 1) == 1) who.push_back(alice);
      auto r = book.admit({who, "gpt-4o", worst}, now);
      if (auto* h = std::get_if<quota_reservation>(&r)) {
        pending.push_back({*h, worst});
        ++admitted_count;
      } else {
        const auto& rej = std::get<quota_rejection>(r);
        CHECK(rej.current <= rej.limit);
        ++rejected_count;
      }
    } else {
      const auto i = static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(pending.size()) - 1));
      const auto p = pending[i];
      pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
      if (uniform(0, 9) == 0) {
        CHECK(book.release(p.handle, now));
      } else {
        // Actual usage is anything up to the worst case (max_tokens may not be reached).
        CHECK(book.settle(p.handle, {uniform(0, p.worst.tokens), uniform(0, p.worst.cost)}, now));
      }
      ++settled;
    }
    check_invariant();
  }
  const auto e = *book.usage(eng, now);
  CHECK(e.month_reserved.cost == 0);
  CHECK(e.day_reserved.tokens == 0);
  CHECK(e.month_used.cost <= cost_limit);
  CHECK(e.day_used.tokens <= token_limit);
  CHECK(book.in_flight() == 0);
  // The limits were actually contended: some requests got in, some were turned away.
  CHECK(admitted_count > 20);
  CHECK(rejected_count > 20);
  CHECK(admitted_count + rejected_count == 200);
  CHECK(settled == admitted_count);
}
