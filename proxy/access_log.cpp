#include "proxy/access_log.hpp"

#include "core/json_string.hpp"

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <ctime>
#include <unistd.h>

namespace tollgate::proxy {
namespace {

void write_all(int fd, const char* data, std::size_t size) noexcept {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // a closed or broken log sink must never take the proxy down
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// The cursor record() writes a line through. Room is made before the line starts.
class line_cursor {
 public:
  explicit line_cursor(char* at) noexcept : at_(at) {}
  char* end() const noexcept { return at_; }

  template <std::size_t N>
  void literal(const char (&text)[N]) noexcept {
    std::memcpy(at_, text, N - 1);
    at_ += N - 1;
  }
  void boolean(bool value) noexcept {
    if (value) literal("true");
    else literal("false");
  }
  void number(std::uint64_t value) noexcept { at_ = std::to_chars(at_, at_ + 20, value).ptr; }
  void string(std::string_view text) noexcept { at_ = core::write_json_string(at_, text); }
  // "%.3f" of the duration in milliseconds, without printf: microseconds, rounded.
  void millis(std::chrono::steady_clock::duration d) noexcept {
    auto micros = std::chrono::round<std::chrono::microseconds>(d).count();
    if (micros < 0) {
      *at_++ = '-';
      micros = -micros;
    }
    number(static_cast<std::uint64_t>(micros) / 1000);
    const auto fraction = static_cast<unsigned>(static_cast<std::uint64_t>(micros) % 1000);
    at_[0] = '.';
    at_[1] = static_cast<char>('0' + fraction / 100);
    at_[2] = static_cast<char>('0' + fraction / 10 % 10);
    at_[3] = static_cast<char>('0' + fraction % 10);
    at_ += 4;
  }
  void advance_to(char* at) noexcept { at_ = at; }

 private:
  char* at_;
};

}  // namespace

// The date and time change once a second: strftime runs then, not per line.
char* access_log::write_timestamp(char* out, std::int64_t unix_ms) {
  const std::int64_t ms_in_second = ((unix_ms % 1000) + 1000) % 1000;  // before 1970 too
  const std::int64_t second = (unix_ms - ms_in_second) / 1000;
  if (second != cached_second_) {
    const auto seconds = static_cast<time_t>(second);
    tm utc{};
    ::gmtime_r(&seconds, &utc);
    cached_length_ = std::strftime(cached_text_, sizeof cached_text_, "%Y-%m-%dT%H:%M:%S", &utc);
    cached_second_ = second;
  }
  std::memcpy(out, cached_text_, cached_length_);
  out += cached_length_;
  const auto millis = static_cast<unsigned>(ms_in_second);
  out[0] = '.';
  out[1] = static_cast<char>('0' + millis / 100);
  out[2] = static_cast<char>('0' + millis / 10 % 10);
  out[3] = static_cast<char>('0' + millis % 10);
  out[4] = 'Z';
  return out + 5;
}

void access_log::record(const request_context& ctx, std::int64_t finished_unix_ms) {
  if (!enabled_) return;
  if (used_ > flush_threshold) flush();  // the caller flushes at the threshold; this keeps room regardless
  // Model, path and provider name are capped so every line fits max_line_bytes, and can be
  // written atomically.
  constexpr std::size_t max_field = 256;
  static_assert(2 + 6 * (request_id::max_size + 16 + 3 * max_field + 64) + 1024 <= max_line_bytes);
  line_cursor out(buffer_.get() + used_);
  out.literal("{\"event\":\"request\",\"ts\":\"");
  out.advance_to(write_timestamp(out.end(), finished_unix_ms));
  out.literal("\",\"request_id\":");
  out.string(ctx.id);
  out.literal(",\"method\":");
  out.string(ctx.method.substr(0, 16));
  out.literal(",\"path\":");
  out.string(std::string_view(ctx.path).substr(0, max_field));
  out.literal(",\"status\":");
  out.number(static_cast<std::uint64_t>(ctx.status));
  out.literal(",\"model\":");
  out.string(std::string_view(ctx.model).substr(0, max_field));
  if (ctx.provider) {
    out.literal(",\"provider\":");
    out.string(std::string_view(ctx.provider->name).substr(0, max_field));
  }
  out.literal(",\"stream\":");
  out.boolean(ctx.stream);
  out.literal(",\"upstream_status\":");
  out.number(static_cast<std::uint64_t>(ctx.upstream_status));
  out.literal(",\"ttfb_ms\":");
  if (ctx.upstream_first_byte != steady_time{}) out.millis(ctx.upstream_first_byte - ctx.upstream_sent);
  else out.literal("null");
  out.literal(",\"duration_ms\":");
  out.millis(ctx.finished - ctx.started);
  if (ctx.usage) {
    out.literal(",\"prompt_tokens\":");
    out.number(ctx.usage->prompt_tokens);
    out.literal(",\"completion_tokens\":");
    out.number(ctx.usage->completion_tokens);
    out.literal(",\"cached_prompt_tokens\":");
    out.number(ctx.usage->cached_prompt_tokens);
    if (ctx.usage_estimated) out.literal(",\"usage_source\":\"estimated\"");
    else out.literal(",\"usage_source\":\"upstream\"");
  } else {
    out.literal(",\"prompt_tokens\":null,\"completion_tokens\":null,\"cached_prompt_tokens\":null");
  }
  if (ctx.stream) {
    out.literal(",\"stream_completed\":");
    out.boolean(ctx.stream_completed);
    out.literal(",\"events\":");
    out.number(ctx.events_relayed);
  }
  if (ctx.error) {
    out.literal(",\"error\":");
    out.string(core::describe(*ctx.error).reason);
  }
  out.literal("}\n");
  used_ = static_cast<std::size_t>(out.end() - buffer_.get());
}

void access_log::flush() noexcept {
  const std::string_view lines(buffer_.get(), used_);
  std::size_t start = 0;
  while (start < lines.size()) {
    // Largest run of whole lines that fits in one atomic pipe write.
    std::size_t end = start;
    while (end < lines.size()) {
      std::size_t newline = lines.find('\n', end);
      if (newline == std::string_view::npos) newline = lines.size() - 1;
      if (newline + 1 - start > PIPE_BUF && end > start) break;
      end = newline + 1;
    }
    write_all(fd_, lines.data() + start, end - start);
    start = end;
  }
  used_ = 0;
}

void write_event_line(int fd, const std::string& json_object_text) noexcept {
  std::string line = json_object_text + "\n";
  write_all(fd, line.data(), line.size());
}

}  // namespace tollgate::proxy
