#include "storage/ledger.hpp"
#include "storage/spend.hpp"
#include "storage_fixture.hpp"

#include <doctest/doctest.h>

using namespace tollgate::storage;
using tollgate::core::ledger_record;
using tollgate::storage::testing::temp_dir;

namespace {

// 2026-03-01T00:00:00Z, 2026-04-01T00:00:00Z, and the day 2026-03-15.
constexpr std::int64_t month_start = 1'772'323'200'000;
constexpr std::int64_t month_end = 1'775'001'600'000;
constexpr std::int64_t day_start = 1'773'532'800'000;
constexpr std::int64_t day_end = day_start + 86'400'000;

ledger_record row(std::int64_t time_ms, const char* provider, const char* key, const char* departments,
                  const char* user, std::int64_t prompt, std::int64_t completion, std::int64_t cost) {
  ledger_record r;
  r.time_ms = time_ms;
  r.request_id = "r" + std::to_string(time_ms);
  r.provider = provider;
  r.key_fingerprint = key;
  r.departments = departments;
  r.user = user;
  r.model = "m";
  r.http_status = 200;
  r.prompt_tokens = prompt;
  r.completion_tokens = completion;
  r.cached_tokens = prompt / 2;  // part of prompt, must not be counted again
  r.cost_micro_usd = cost;
  return r;
}

}  // namespace

TEST_CASE("spend: day and month totals rebuilt across bounds") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  {
    ledger l(path, ledger_options{});
    // Outside both: the last millisecond of February, and the first of April.
    l.submit(0, row(month_start - 1, "openai", "k1", "a", "u1", 1000, 1000, 1'000'000));
    l.submit(0, row(month_end, "openai", "k1", "a", "u1", 1000, 1000, 1'000'000));
    // Month only: first millisecond of the month, the millisecond before the day, the day's end.
    l.submit(0, row(month_start, "openai", "k1", "a", "u1", 10, 5, 100));
    l.submit(0, row(day_start - 1, "anthropic", "k2", "b", "u2", 20, 10, 200));
    l.submit(0, row(day_end, "openai", "", "", "", 1, 1, 7));
    // Day (and month): the first and last millisecond of the day.
    l.submit(0, row(day_start, "openai", "k1", "a, b", "u1", 100, 50, 1'000));
    l.submit(0, row(day_end - 1, "gemini", "k2", "b,b,c", "u2", 200, 100, 2'000));
    l.stop();
    REQUIRE(l.stats().written == 7);
  }
  const auto result = rebuild_spend(path, time_range{day_start, day_end}, time_range{month_start, month_end});
  REQUIRE_MESSAGE(result.ok, result.error);
  const auto& day = result.snapshot.day;
  const auto& month = result.snapshot.month;

  CHECK(day.total == spend_totals{2, 450, 3'000});
  CHECK(day.by_provider.size() == 2);
  CHECK(day.by_provider.at("openai") == spend_totals{1, 150, 1'000});
  CHECK(day.by_provider.at("gemini") == spend_totals{1, 300, 2'000});
  CHECK(day.by_key.at("k1") == spend_totals{1, 150, 1'000});
  CHECK(day.by_key.at("k2") == spend_totals{1, 300, 2'000});
  CHECK(day.by_department.at("a") == spend_totals{1, 150, 1'000});
  CHECK(day.by_department.at("b") == spend_totals{2, 450, 3'000});  // "b,b,c" bills b once
  CHECK(day.by_department.at("c") == spend_totals{1, 300, 2'000});
  CHECK(day.by_user.at("u2") == spend_totals{1, 300, 2'000});

  CHECK(month.total == spend_totals{5, 497, 3'307});
  CHECK(month.by_provider.at("openai") == spend_totals{3, 167, 1'107});
  CHECK(month.by_provider.at("anthropic") == spend_totals{1, 30, 200});
  CHECK(month.by_provider.at("gemini") == spend_totals{1, 300, 2'000});
  CHECK(month.by_key.at("k1") == spend_totals{2, 165, 1'100});
  CHECK(month.by_key.count("") == 0);  // anonymous traffic is only in the total
  CHECK(month.by_department.at("a") == spend_totals{2, 165, 1'100});
  CHECK(month.by_department.at("b") == spend_totals{3, 480, 3'200});
  CHECK(month.by_department.count("") == 0);
  CHECK(month.by_user.at("u1") == spend_totals{2, 165, 1'100});
  CHECK(month.by_user.at("u2") == spend_totals{2, 330, 2'200});
}

TEST_CASE("spend: an empty ledger gives zeros, an unopenable one an error") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  { ledger l(path, ledger_options{}); }
  auto result = rebuild_spend(path, time_range{day_start, day_end}, time_range{month_start, month_end});
  REQUIRE(result.ok);
  CHECK(result.snapshot.month.total == spend_totals{});
  CHECK(result.snapshot.day.by_provider.empty());

  result = rebuild_spend(dir.file("nope.db"), time_range{day_start, day_end}, time_range{month_start, month_end});
  CHECK_FALSE(result.ok);
  CHECK_FALSE(result.error.empty());
}
