#pragma once

// Test-only: instants written as calendar dates, so tables of periods read like calendars.
#include <chrono>

namespace tollgate::testing {

inline std::chrono::sys_seconds utc(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

}  // namespace tollgate::testing
