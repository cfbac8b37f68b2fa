#pragma once

#include "proxy/request_context.hpp"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

namespace tollgate::proxy {

// One JSON line per request. Each worker owns one and buffers lines; flush() hands them to
// the file descriptor in whole lines of at most PIPE_BUF bytes, which the kernel writes
// atomically to a pipe, so lines from different workers never interleave.
// Never writes API keys, headers or message content.
class access_log {
 public:
  access_log(int fd, bool enabled) : fd_(fd), enabled_(enabled) {}
  access_log(const access_log&) = delete;
  access_log& operator=(const access_log&) = delete;
  ~access_log() { flush(); }

  // finished_unix_ms is the line's timestamp: when the request finished.
  void record(const request_context& ctx, std::int64_t finished_unix_ms);
  void flush() noexcept;
  bool wants_flush() const noexcept { return used_ >= flush_threshold; }

 private:
  static constexpr std::size_t flush_threshold = 32 * 1024;
  // The longest line record() can write: every capped field escaped at six bytes a byte.
  static constexpr std::size_t max_line_bytes = 8 * 1024;
  char* write_timestamp(char* out, std::int64_t unix_ms);

  int fd_;
  bool enabled_;
  // Raw bytes rather than a std::string: a line is written through a cursor with no size or
  // capacity checks per piece, since room for the longest line is made before it starts.
  std::unique_ptr<char[]> buffer_{new char[flush_threshold + max_line_bytes]};
  std::size_t used_ = 0;
  // The Unix second cached_text_ ("2026-11-22T04:06:00") shows; none yet.
  std::int64_t cached_second_ = std::numeric_limits<std::int64_t>::min();
  char cached_text_[32] = {};
  std::size_t cached_length_ = 0;
};

// {"event":...} line for lifecycle events, written directly (not on the hot path).
void write_event_line(int fd, const std::string& json_object_text) noexcept;

}  // namespace tollgate::proxy
