#pragma once

#include <cstddef>
#include <string>
#include <utility>

namespace tollgate::proxy {

// A string handed from one message to the next on a connection, so a body's buffer is
// allocated once per connection rather than once per request. Bounded: a rare huge message
// should not pin its memory for the life of the connection.
class spare_string {
 public:
  std::string take() noexcept { return std::move(value_); }
  void keep(std::string value) noexcept {
    if (value.capacity() > max_kept_bytes) return;
    value.clear();
    value_ = std::move(value);
  }

 private:
  static constexpr std::size_t max_kept_bytes = 64 * 1024;
  std::string value_;
};

}  // namespace tollgate::proxy
