#include "proxy/access_log.hpp"

#include <cerrno>
#include <climits>
#include <cstdio>
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

void append_millis(std::string& out, std::chrono::steady_clock::duration d) {
  char text[32];
  int n = std::snprintf(text, sizeof text, "%.3f", std::chrono::duration<double, std::milli>(d).count());
  out.append(text, static_cast<std::size_t>(n));
}

void append_timestamp(std::string& out) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  char text[40];
  std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  n += static_cast<std::size_t>(std::snprintf(text + n, sizeof text - n, ".%03ldZ", now.tv_nsec / 1'000'000));
  out.append(text, n);
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(hex[u >> 4]);
          out.push_back(hex[u & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
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
  out += ",\"status\":" + std::to_string(ctx.status);
  out += ",\"model\":";
  append_json_string(out, std::string_view(ctx.model).substr(0, max_field));
  if (ctx.provider) {
    out += ",\"provider\":";
    append_json_string(out, ctx.provider->name);
  }
  out += ",\"stream\":";
  out += ctx.stream ? "true" : "false";
  out += ",\"upstream_status\":" + std::to_string(ctx.upstream_status);
  out += ",\"ttfb_ms\":";
  if (ctx.upstream_first_byte != steady_time{}) append_millis(out, ctx.upstream_first_byte - ctx.upstream_sent);
  else out += "null";
  out += ",\"duration_ms\":";
  append_millis(out, ctx.finished - ctx.started);
  if (ctx.usage) {
    out += ",\"prompt_tokens\":" + std::to_string(ctx.usage->prompt_tokens);
    out += ",\"completion_tokens\":" + std::to_string(ctx.usage->completion_tokens);
    out += ",\"cached_prompt_tokens\":" + std::to_string(ctx.usage->cached_prompt_tokens);
    out += ctx.usage_estimated ? ",\"usage_source\":\"estimated\"" : ",\"usage_source\":\"upstream\"";
  } else {
    out += ",\"prompt_tokens\":null,\"completion_tokens\":null,\"cached_prompt_tokens\":null";
  }
  if (ctx.stream) {
    out += ",\"stream_completed\":";
    out += ctx.stream_completed ? "true" : "false";
    out += ",\"events\":" + std::to_string(ctx.events_relayed);
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
