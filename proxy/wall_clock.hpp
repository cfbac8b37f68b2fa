#pragma once

#include <chrono>
#include <cstdint>

namespace tollgate::proxy {

// Turns the steady-clock readings a request takes anyway (start, finish) into Unix time, so
// the ledger row and the access log line need no clock read of their own: each read costs
// about as much as parsing a header line. The worker re-anchors it on its 100 ms flush tick,
// so it follows steps of the system clock within that and slews to within microseconds.
class wall_clock {
 public:
  wall_clock() noexcept { anchor(); }

  void anchor() noexcept {
    steady_ = std::chrono::steady_clock::now();
    since_epoch_ = std::chrono::system_clock::now().time_since_epoch();
  }

  std::int64_t unix_ms(std::chrono::steady_clock::time_point at) const noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch_ + (at - steady_)).count();
  }

 private:
  std::chrono::steady_clock::time_point steady_;
  std::chrono::system_clock::duration since_epoch_{};  // the system clock's reading at steady_
};

}  // namespace tollgate::proxy
