#include "core/calendar.hpp"

#include "tests/unit/civil_time.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

namespace {

using namespace tollgate::core;
using namespace std::chrono;
using namespace std::chrono_literals;

using tollgate::testing::utc;

// A fake US-Eastern rule for 2026: EDT (-4h) from 2026-03-08 07:00 UTC (02:00 EST) until
// 2026-11-01 06:00 UTC (02:00 EDT), EST (-5h) otherwise.
minutes fake_new_york(sys_seconds t) {
  return (t >= utc(2026, 3, 8, 7) && t < utc(2026, 11, 1, 6)) ? minutes{-4h} : minutes{-5h};
}

// A zone whose clocks jump from 00:00 to 01:00 on 2026-04-05 (local midnight never happens).
minutes fake_midnight_gap(sys_seconds t) { return t >= utc(2026, 4, 5, 0) ? minutes{60min} : minutes{0min}; }

}  // namespace

TEST_CASE("calendar: month bounds table") {
  struct row {
    const char* name;
    sys_seconds t;
    minutes offset;
    sys_seconds start;
    sys_seconds end;
  };
  const row rows[] = {
      {"utc mid-month 31 days", utc(2026, 1, 15, 12), 0min, utc(2026, 1, 1), utc(2026, 2, 1)},
      {"utc 30-day month", utc(2026, 4, 30, 23, 59, 59), 0min, utc(2026, 4, 1), utc(2026, 5, 1)},
      {"utc Feb non-leap 28", utc(2026, 2, 10), 0min, utc(2026, 2, 1), utc(2026, 3, 1)},
      {"utc Feb leap 29", utc(2028, 2, 29, 23), 0min, utc(2028, 2, 1), utc(2028, 3, 1)},
      {"century non-leap 2100", utc(2100, 2, 28), 0min, utc(2100, 2, 1), utc(2100, 3, 1)},
      {"leap 2000", utc(2000, 2, 29), 0min, utc(2000, 2, 1), utc(2000, 3, 1)},
      {"utc Dec -> Jan", utc(2026, 12, 31, 23, 59, 59), 0min, utc(2026, 12, 1), utc(2027, 1, 1)},
      {"exact month start belongs to it", utc(2026, 3, 1), 0min, utc(2026, 3, 1), utc(2026, 4, 1)},
      // 2027-01-01 03:00 UTC is still 2026-12-31 22:00 in UTC-5.
      {"negative offset keeps previous month", utc(2027, 1, 1, 3), -300min, utc(2026, 12, 1, 5), utc(2027, 1, 1, 5)},
      // 2026-11-30 20:00 UTC is already 2026-12-01 05:30 in UTC+9:30.
      {"positive offset moves to next month", utc(2026, 11, 30, 20), 570min, utc(2026, 11, 30, 14, 30),
       utc(2026, 12, 31, 14, 30)},
      {"positive offset leap Feb", utc(2024, 2, 29, 18), 300min, utc(2024, 1, 31, 19), utc(2024, 2, 29, 19)},
  };
  for (const auto& r : rows) {
    const std::string name = r.name;
    CAPTURE(name);
    const auto b = month_bounds(r.t, fixed_offset(r.offset));
    CHECK(b.start == r.start);
    CHECK(b.end == r.end);
    CHECK(month_start(r.t, fixed_offset(r.offset)) == r.start);
    CHECK(month_end(r.t, fixed_offset(r.offset)) == r.end);
  }
}

TEST_CASE("calendar: day bounds with offsets") {
  CHECK(day_start(utc(2026, 5, 10, 13), fixed_offset(0min)) == utc(2026, 5, 10));
  CHECK(day_end(utc(2026, 5, 10, 13), fixed_offset(0min)) == utc(2026, 5, 11));
  // 02:00 UTC is 21:00 the previous day in UTC-5.
  CHECK(day_start(utc(2026, 5, 10, 2), fixed_offset(-300min)) == utc(2026, 5, 9, 5));
  CHECK(day_end(utc(2026, 5, 10, 2), fixed_offset(-300min)) == utc(2026, 5, 10, 5));
  // 20:00 UTC is 01:00 the next day in UTC+5.
  CHECK(day_start(utc(2026, 5, 10, 20), fixed_offset(300min)) == utc(2026, 5, 10, 19));
  CHECK(day_bounds(utc(2028, 2, 29, 12), fixed_offset(0min)).end == utc(2028, 3, 1));
  CHECK(period_bounds_of(period::day, utc(2026, 5, 10, 13), fixed_offset(0min)).length() == 24h);
  CHECK(period_bounds_of(period::month, utc(2026, 5, 10, 13), fixed_offset(0min)).length() == days{31});
}

TEST_CASE("calendar: DST gives a 23h and a 25h day") {
  const utc_offset_fn ny = fake_new_york;
  const auto spring = day_bounds(utc(2026, 3, 8, 12), ny);
  CHECK(spring.start == utc(2026, 3, 8, 5));  // midnight EST
  CHECK(spring.end == utc(2026, 3, 9, 4));    // midnight EDT
  CHECK(spring.length() == 23h);
  const auto fall = day_bounds(utc(2026, 11, 1, 12), ny);
  CHECK(fall.start == utc(2026, 11, 1, 4));
  CHECK(fall.end == utc(2026, 11, 2, 5));
  CHECK(fall.length() == 25h);
  // Ordinary days on either side of the switch.
  CHECK(day_bounds(utc(2026, 3, 7, 12), ny).length() == 24h);
  CHECK(day_bounds(utc(2026, 3, 9, 12), ny).length() == 24h);
  // March is one hour short, November one hour long.
  CHECK(month_bounds(utc(2026, 3, 20), ny).length() == days{31} - 1h);
  CHECK(month_bounds(utc(2026, 11, 20), ny).length() == days{30} + 1h);
  CHECK(month_bounds(utc(2026, 11, 20), ny).start == utc(2026, 11, 1, 4));
}

TEST_CASE("calendar: midnight skipped by a DST gap starts the day at the transition") {
  const utc_offset_fn zone = fake_midnight_gap;
  const auto b = day_bounds(utc(2026, 4, 5, 12), zone);
  CHECK(b.start == utc(2026, 4, 5, 0));   // local jumps 00:00 -> 01:00 here
  CHECK(b.end == utc(2026, 4, 5, 23));    // next local midnight at +1h
  CHECK(b.length() == 23h);
  CHECK(day_bounds(utc(2026, 4, 4, 12), zone).end == b.start);
}

TEST_CASE("calendar: elapsed fraction counts seconds") {
  const auto z = fixed_offset(0min);
  auto p = month_elapsed(utc(2026, 4, 1), z);
  CHECK(p.elapsed == 0s);
  CHECK(p.fraction() == 0.0);
  p = month_elapsed(utc(2026, 4, 16), z);  // 15 of 30 days
  CHECK(p.fraction() == doctest::Approx(0.5));
  p = month_elapsed(utc(2026, 4, 1, 12), z);  // half a day, not zero whole days
  CHECK(p.elapsed == 12h);
  CHECK(p.fraction() == doctest::Approx(0.5 / 30));
  p = month_elapsed(utc(2028, 2, 15, 12), z);  // leap February: 14.5 of 29 days
  CHECK(p.fraction() == doctest::Approx(0.5));
  p = month_elapsed(utc(2026, 12, 31, 23, 59, 59), z);
  CHECK(p.length == days{31});
  CHECK(p.elapsed == days{31} - 1s);
}
