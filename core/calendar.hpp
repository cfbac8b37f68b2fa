#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace tollgate::core {

using sys_seconds = std::chrono::sys_seconds;

// The zone quotas and budgets follow (TOLLGATE_TZ). Injected rather than read from the TZ
// database so core stays pure and tests can use fixed offsets or a fake DST rule; the proxy
// adapts std::chrono::time_zone (or similar) to this signature.
// Returns local time minus UTC at the given instant (e.g. -5h for New York in winter).
using utc_offset_fn = std::function<std::chrono::minutes(sys_seconds)>;

// A zone with a constant offset; UTC is fixed_offset(0min).
utc_offset_fn fixed_offset(std::chrono::minutes offset);

enum class period : std::uint8_t { day, month };

// Periods are half-open [start, end): `end` is the next period's start, so a DST day is 23h
// or 25h long and no instant belongs to two periods.
struct period_bounds {
  sys_seconds start;
  sys_seconds end;
  std::chrono::seconds length() const noexcept { return end - start; }
};

// The calendar day / month (in the zone) containing `t`.
period_bounds day_bounds(sys_seconds t, const utc_offset_fn& zone);
period_bounds month_bounds(sys_seconds t, const utc_offset_fn& zone);
period_bounds period_bounds_of(period p, sys_seconds t, const utc_offset_fn& zone);

inline sys_seconds day_start(sys_seconds t, const utc_offset_fn& zone) { return day_bounds(t, zone).start; }
inline sys_seconds day_end(sys_seconds t, const utc_offset_fn& zone) { return day_bounds(t, zone).end; }
inline sys_seconds month_start(sys_seconds t, const utc_offset_fn& zone) { return month_bounds(t, zone).start; }
inline sys_seconds month_end(sys_seconds t, const utc_offset_fn& zone) { return month_bounds(t, zone).end; }

// How far into its month `t` is, counted in seconds (not whole days) so a projection made at
// noon on the 1st is not off by a day. `elapsed` is in [0, length).
struct month_progress {
  std::chrono::seconds elapsed;
  std::chrono::seconds length;
  double fraction() const noexcept {
    return length.count() > 0 ? static_cast<double>(elapsed.count()) / static_cast<double>(length.count()) : 0.0;
  }
};
month_progress month_elapsed(sys_seconds t, const utc_offset_fn& zone);

// The UTC instant at which the zone's wall clock first shows local midnight of `local_day`.
// In a DST overlap that is the earlier of the two instants; when midnight falls in a DST gap
// (a few zones switch at 00:00) it is the transition instant, the first moment of that day.
sys_seconds local_midnight_to_utc(std::chrono::local_days local_day, const utc_offset_fn& zone);

}  // namespace tollgate::core
