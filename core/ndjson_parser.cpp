#include "core/ndjson_parser.hpp"

#include <algorithm>
#include <cstring>

namespace tollgate::core {
namespace {

// Grows geometrically like std::string would, but never past `limit`, so the memory held for
// a partial line stays within the line limit instead of up to twice that.
void append_bounded(std::string& s, std::string_view tail, std::size_t limit) {
  const std::size_t need = s.size() + tail.size();
  if (need > s.capacity()) s.reserve(std::min(limit, std::max(need, 2 * s.capacity())));
  s.append(tail);
}

bool is_blank(std::string_view line) noexcept {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

ndjson_parser::ndjson_parser(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

void ndjson_parser::feed_erased(std::string_view in, sink on_line) {
  std::size_t begin = 0;
  while (begin < in.size()) {
    // memchr is vectorised; NDJSON has a single terminator byte, so this is the whole scan.
    const void* hit = std::memchr(in.data() + begin, '\n', in.size() - begin);
    if (!hit) break;
    const auto lf = static_cast<std::size_t>(static_cast<const char*>(hit) - in.data());
    complete_line(in.substr(begin, lf - begin), on_line);
    begin = lf + 1;
  }
  hold_tail(in.substr(begin));
}

void ndjson_parser::complete_line(std::string_view rest, sink on_line) {
  if (discarding_) {  // the LF that ends an oversized line: resume with the next one
    discarding_ = false;
    return;
  }
  const std::size_t total = buffer_.size() + rest.size();
  const char last = !rest.empty() ? rest.back() : (!buffer_.empty() ? buffer_.back() : '\0');
  const std::size_t content = total - (last == '\r' ? 1 : 0);
  if (content > max_line_bytes_) {
    ++oversized_;
    buffer_.clear();
    return;
  }
  std::string_view line = rest;  // the common case: a view into the caller's bytes, no copy
  if (!buffer_.empty()) {
    append_bounded(buffer_, rest, max_line_bytes_ + 1);
    line = buffer_;
  }
  if (last == '\r') line.remove_suffix(1);
  if (!is_blank(line)) on_line.call(on_line.target, line);
  buffer_.clear();
}

void ndjson_parser::hold_tail(std::string_view tail) {
  if (discarding_ || tail.empty()) return;
  // A trailing CR may be half of a CRLF, so it does not count against the limit yet.
  const std::size_t allowed = max_line_bytes_ + (tail.back() == '\r' ? 1 : 0);
  if (buffer_.size() + tail.size() > allowed) {
    // Counted now rather than at its end, so a stream cut off inside it still shows it.
    ++oversized_;
    discarding_ = true;
    buffer_.clear();
    return;
  }
  append_bounded(buffer_, tail, max_line_bytes_ + 1);
}

bool ndjson_parser::finish_erased(sink on_line) {
  bool clean = !discarding_;
  if (!discarding_ && !buffer_.empty()) {
    std::string_view line = buffer_;
    if (line.back() == '\r') line.remove_suffix(1);
    if (!is_blank(line)) {
      clean = false;
      on_line.call(on_line.target, line);
    }
  }
  reset_stream();
  return clean;
}

void ndjson_parser::reset_stream() noexcept {
  buffer_.clear();
  discarding_ = false;
}

void ndjson_parser::reset() noexcept {
  reset_stream();
  oversized_ = 0;
}

}  // namespace tollgate::core
