#include "proxy/access_log.hpp"

#include <cerrno>
#include <charconv>
#include <climits>
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

void append_number(std::string& out, std::uint64_t value) {
  char text[20];
  auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  out.append(text, end);
}

// "%.3f" of the duration in milliseconds, without printf: microseconds, rounded.
void append_millis(std::string& out, std::chrono::steady_clock::duration d) {
  auto micros = std::chrono::round<std::chrono::microseconds>(d).count();
  if (micros < 0) {
    out.push_back('-');
    micros = -micros;
  }
  auto whole = static_cast<std::uint64_t>(micros) / 1000;
  auto fraction = static_cast<unsigned>(static_cast<std::uint64_t>(micros) % 1000);
  append_number(out, whole);
  char digits[4] = {'.', static_cast<char>('0' + fraction / 100), static_cast<char>('0' + fraction / 10 % 10),
                    static_cast<char>('0' + fraction % 10)};
  out.append(digits, sizeof digits);
}

}  // namespace

// The date and time change once a second: strftime runs then, not per line.
void access_log::append_timestamp(std::string& out) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  if (now.tv_sec != cached_second_) {
    tm utc{};
    ::gmtime_r(&now.tv_sec, &utc);
    cached_length_ = std::strftime(cached_text_, sizeof cached_text_, "%Y-%m-%dT%H:%M:%S", &utc);
    cached_second_ = now.tv_sec;
  }
  out.append(cached_text_, cached_length_);
  auto millis = static_cast<unsigned>(now.tv_nsec / 1'000'000);
  char tail[5] = {'.', static_cast<char>('0' + millis / 100), static_cast<char>('0' + millis / 10 % 10),
                  static_cast<char>('0' + millis % 10), 'Z'};
  out.append(tail, sizeof tail);
}

namespace {
}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  // Log fields rarely need escaping: copy the runs between escapes whole.
  std::size_t run = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto u = static_cast<unsigned char>(text[i]);
    if (u >= 0x20 && u != '"' && u != '\\') continue;
    out.append(text, run, i - run);
    run = i + 1;
    switch (u) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out.push_back(hex[u >> 4]);
        out.push_back(hex[u & 0xf]);
    }
  }
  out.append(text, run);
  out.push_back('"');
}

void access_log::record(const request_context& ctx) {
  if (!enabled_) return;
  // Model and path come from clients: cap them so one request cannot produce a line too
  // long to be written atomically.
  constexpr std::size_t max_field = 256;
  std::string& out = buffer_;
  out += "{\"event\":\"request\",\"ts\":\"";
  append_timestamp(out);
  out += "\",\"request_id\":";
  append_json_string(out, ctx.id);
  out += ",\"method\":";
  append_json_string(out, ctx.method.substr(0, 16));
  out += ",\"path\":";
  append_json_string(out, std::string_view(ctx.path).substr(0, max_field));
  out += ",\"status\":";
  append_number(out, static_cast<std::uint64_t>(ctx.status));
  out += ",\"model\":";
  append_json_string(out, std::string_view(ctx.model).substr(0, max_field));
  if (ctx.provider) {
    out += ",\"provider\":";
    append_json_string(out, ctx.provider->name);
  }
  out += ",\"stream\":";
  out += ctx.stream ? "true" : "false";
  out += ",\"upstream_status\":";
  append_number(out, static_cast<std::uint64_t>(ctx.upstream_status));
  out += ",\"ttfb_ms\":";
  if (ctx.upstream_first_byte != steady_time{}) append_millis(out, ctx.upstream_first_byte - ctx.upstream_sent);
  else out += "null";
  out += ",\"duration_ms\":";
  append_millis(out, ctx.finished - ctx.started);
  if (ctx.usage) {
    out += ",\"prompt_tokens\":";
    append_number(out, ctx.usage->prompt_tokens);
    out += ",\"completion_tokens\":";
    append_number(out, ctx.usage->completion_tokens);
    out += ",\"cached_prompt_tokens\":";
    append_number(out, ctx.usage->cached_prompt_tokens);
    out += ctx.usage_estimated ? ",\"usage_source\":\"estimated\"" : ",\"usage_source\":\"upstream\"";
  } else {
    out += ",\"prompt_tokens\":null,\"completion_tokens\":null,\"cached_prompt_tokens\":null";
  }
  if (ctx.stream) {
    out += ",\"stream_completed\":";
    out += ctx.stream_completed ? "true" : "false";
    out += ",\"events\":";
    append_number(out, ctx.events_relayed);
  }
  if (ctx.error) {
    out += ",\"error\":";
    append_json_string(out, core::describe(*ctx.error).reason);
  }
  out += "}\n";
}

void access_log::flush() noexcept {
  std::size_t start = 0;
  while (start < buffer_.size()) {
    // Largest run of whole lines that fits in one atomic pipe write.
    std::size_t end = start;
    while (end < buffer_.size()) {
      std::size_t newline = buffer_.find('\n', end);
      if (newline == std::string::npos) newline = buffer_.size() - 1;
      if (newline + 1 - start > PIPE_BUF && end > start) break;
      end = newline + 1;
    }
    write_all(fd_, buffer_.data() + start, end - start);
    start = end;
  }
  buffer_.clear();
}

void write_event_line(int fd, const std::string& json_object_text) noexcept {
  std::string line = json_object_text + "\n";
  write_all(fd, line.data(), line.size());
}

}  // namespace tollgate::proxy
