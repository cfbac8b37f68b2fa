#include "core/calendar.hpp"

namespace tollgate::core {

namespace {

using namespace std::chrono;

local_days local_day_of(sys_seconds t, const utc_offset_fn& zone) {
  auto local = local_seconds{t.time_since_epoch()} + zone(t);
  return floor<days>(local);
}

}  // namespace

utc_offset_fn fixed_offset(std::chrono::minutes offset) {
  return [offset](sys_seconds) { return offset; };
}

sys_seconds local_midnight_to_utc(local_days local_day, const utc_offset_fn& zone) {
  const local_seconds local{local_day.time_since_epoch()};
  const sys_seconds as_utc{local.time_since_epoch()};
  // The offsets in force a day either side cover any real zone (transitions are months
  // apart and offsets stay within ±1 day), so one of them is the offset at local midnight
  // unless midnight itself was skipped.
  const minutes before = zone(as_utc - days{1});
  const minutes after = zone(as_utc + days{1});
  const sys_seconds via_before = as_utc - before;
  const sys_seconds via_after = as_utc - after;
  const bool before_ok = zone(via_before) == before;
  const bool after_ok = zone(via_after) == after;
  if (before_ok && after_ok) return std::min(via_before, via_after);  // overlap: first occurrence
  if (before_ok) return via_before;
  if (after_ok) return via_after;
  // Gap: the wall clock jumps over midnight at the instant the old offset would have shown it.
  return via_before;
}

period_bounds day_bounds(sys_seconds t, const utc_offset_fn& zone) {
  const local_days day = local_day_of(t, zone);
  return {local_midnight_to_utc(day, zone), local_midnight_to_utc(day + days{1}, zone)};
}

period_bounds month_bounds(sys_seconds t, const utc_offset_fn& zone) {
  const year_month_day ymd{local_day_of(t, zone)};
  const year_month first = ymd.year() / ymd.month();
  const year_month next = first + months{1};  // calendar arithmetic: Dec + 1 = Jan of next year
  return {local_midnight_to_utc(local_days{first / day{1}}, zone),
          local_midnight_to_utc(local_days{next / day{1}}, zone)};
}

period_bounds period_bounds_of(period p, sys_seconds t, const utc_offset_fn& zone) {
  return p == period::day ? day_bounds(t, zone) : month_bounds(t, zone);
}

month_progress month_elapsed(sys_seconds t, const utc_offset_fn& zone) {
  const auto bounds = month_bounds(t, zone);
  return {t - bounds.start, bounds.length()};
}

}  // namespace tollgate::core
