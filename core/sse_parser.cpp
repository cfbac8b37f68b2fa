#include "core/sse_parser.hpp"

#include <algorithm>
#include <cstring>

namespace tollgate::core {
namespace {

constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

// Grows geometrically like std::string would, but never past `limit`, so the memory held for
// a partial block stays within max_event_bytes instead of up to twice that.
void append_bounded(std::string& s, std::string_view tail, std::size_t limit) {
  const std::size_t need = s.size() + tail.size();
  if (need > s.capacity()) s.reserve(std::min(limit, std::max(need, 2 * s.capacity())));
  s.append(tail);
}

bool is_eol(char c) noexcept { return c == '\n' || c == '\r'; }

// Next CR or LF at or after `from`. memchr is vectorised, unlike a byte loop testing for both;
// caching each character's next hit keeps LF-only and CR-only text linear.
class eol_finder {
 public:
  explicit eol_finder(std::string_view s) noexcept
      : s_(s), lf_(find(0, '\n')), cr_(find(0, '\r')) {}
  std::size_t next(std::size_t from) noexcept {
    if (lf_ < from) lf_ = find(from, '\n');
    if (cr_ < from) cr_ = find(from, '\r');
    return std::min(lf_, cr_);
  }

 private:
  std::size_t find(std::size_t from, char c) const noexcept {
    if (from >= s_.size()) return s_.size();
    const void* hit = std::memchr(s_.data() + from, c, s_.size() - from);
    return hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - s_.data()) : s_.size();
  }
  std::string_view s_;
  std::size_t lf_, cr_;
};

}  // namespace

sse_parser::sse_parser(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

void sse_parser::feed_erased(std::string_view in, sink on_event) {
  if (!bom_decided_) {
    // The BOM may itself arrive split across feeds, so match it byte by byte.
    std::size_t k = 0;
    while (k < in.size() && bom_matched_ < utf8_bom.size() && in[k] == utf8_bom[bom_matched_]) {
      ++k;
      ++bom_matched_;
    }
    if (bom_matched_ < utf8_bom.size() && k == in.size()) return;  // still undecided
    in.remove_prefix(k);
    const std::size_t replay = bom_matched_ == utf8_bom.size() ? 0 : bom_matched_;
    bom_decided_ = true;
    bom_matched_ = 0;
    // A BOM prefix that turned out not to be a BOM is ordinary content.
    if (replay > 0) scan(utf8_bom.substr(0, replay), on_event);
  }
  scan(in, on_event);
}

void sse_parser::scan(std::string_view in, sink on_event) {
  const char* p = in.data();
  const std::size_t n = in.size();
  std::size_t i = 0;
  std::size_t block_begin = 0;  // start of the current block's bytes within `in`

  if (held_) {
    if (n == 0) return;
    held_ = false;
    i = p[0] == '\n' ? 1 : 0;
    emit_block(in, 0, i, on_event);
    block_begin = i;
  }

  eol_finder eol(in);
  while (i < n) {
    const char c = p[i];
    if (!is_eol(c)) {
      at_line_start_ = false;
      after_cr_ = false;
      i = eol.next(i + 1);
      continue;
    }
    if (c == '\n' && after_cr_) {  // second half of a CRLF that straddled a feed or a line
      after_cr_ = false;
      ++i;
      continue;
    }
    if (c == '\r') block_has_cr_ = true;
    if (!at_line_start_) {
      at_line_start_ = true;
      after_cr_ = c == '\r';
      ++block_lines_;
      ++i;
      continue;
    }
    // A blank line: the block ends with this terminator.
    std::size_t end = i + 1;
    if (c == '\r') {
      if (end == n) {
        held_ = true;
        hold_tail(in.substr(block_begin));
        return;
      }
      if (p[end] == '\n') ++end;
    }
    emit_block(in, block_begin, end, on_event);
    block_begin = i = end;
  }
  hold_tail(in.substr(block_begin));
}

void sse_parser::hold_tail(std::string_view tail) {
  if (discarding_ || tail.empty()) return;
  if (buffer_.size() + tail.size() > max_event_bytes_) {
    // Counted now rather than at its end, so a stream cut off inside it still shows it.
    ++oversized_;
    discarding_ = true;
    buffer_.clear();
    return;
  }
  append_bounded(buffer_, tail, max_event_bytes_);
}

void sse_parser::emit_block(std::string_view in, std::size_t begin, std::size_t end,
                            sink on_event) {
  at_line_start_ = true;
  after_cr_ = false;
  const bool one_lf_line = block_lines_ == 1 && !block_has_cr_;
  block_lines_ = 0;
  block_has_cr_ = false;
  if (discarding_) {
    discarding_ = false;
    return;
  }
  const std::string_view rest = in.substr(begin, end - begin);
  if (buffer_.size() + rest.size() > max_event_bytes_) {
    ++oversized_;
    buffer_.clear();
    return;
  }
  if (buffer_.empty()) {
    // The common case: a view into the caller's bytes, no copy.
    if (!(one_lf_line && dispatch_data_line(rest, on_event))) dispatch(rest, on_event);
    return;
  }
  append_bounded(buffer_, rest, max_event_bytes_);
  if (!(one_lf_line && dispatch_data_line(buffer_, on_event))) dispatch(buffer_, on_event);
  buffer_.clear();
}

// A block that is one "data:" line ended by LF, then the blank line: what dispatch() would
// make of it, without splitting lines. False for any other single line (a comment, another
// field), which dispatch() then handles.
bool sse_parser::dispatch_data_line(std::string_view raw, sink on_event) {
  constexpr std::string_view field = "data:";
  if (!raw.starts_with(field)) return false;
  sse_event ev;
  ev.raw = raw;
  ev.data = raw.substr(field.size(), raw.size() - field.size() - 2);  // without "\n\n"
  if (!ev.data.empty() && ev.data.front() == ' ') ev.data.remove_prefix(1);
  ev.has_data = true;
  on_event.call(on_event.target, ev);
  return true;
}

void sse_parser::dispatch(std::string_view raw, sink on_event) {
  sse_event ev;
  ev.raw = raw;
  std::size_t data_lines = 0;
  std::size_t pos = 0;
  const std::size_t n = raw.size();
  eol_finder eols(raw);
  while (pos < n) {
    const std::size_t eol = eols.next(pos);
    const std::string_view line = raw.substr(pos, eol - pos);
    pos = eol;
    if (pos < n) pos += (raw[pos] == '\r' && pos + 1 < n && raw[pos + 1] == '\n') ? 2 : 1;
    if (line.empty() || line.front() == ':') continue;

    const std::size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    // A field without a colon has an empty value, still a view into the line.
    std::string_view value = line.substr(colon == std::string_view::npos ? line.size() : colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "data") {
      if (data_lines == 0) {
        ev.data = value;
      } else {
        if (data_lines == 1) joined_.assign(ev.data);
        joined_.push_back('\n');
        joined_.append(value);
      }
      ++data_lines;
    } else if (name == "event") {
      ev.event = value;
    } else if (name == "id") {
      if (value.find('\0') == std::string_view::npos) ev.id = value;
    }
    // "retry" and unknown fields are for the client; the raw bytes carry them there.
  }
  if (data_lines > 1) ev.data = joined_;
  ev.has_data = data_lines > 0;
  on_event.call(on_event.target, ev);
}

bool sse_parser::finish_erased(sink on_event) {
  if (held_) {
    held_ = false;
    emit_block({}, 0, 0, on_event);
  }
  const bool clean = buffer_.empty() && !discarding_ && bom_matched_ == 0;
  reset_stream();
  return clean;
}

bool sse_parser::finish() noexcept {
  const bool clean = !held_ && buffer_.empty() && !discarding_ && bom_matched_ == 0;
  reset_stream();
  return clean;
}

std::size_t sse_parser::buffered_bytes() const noexcept {
  return buffer_.size() + (bom_decided_ ? 0 : bom_matched_);
}

void sse_parser::reset_stream() noexcept {
  buffer_.clear();
  bom_matched_ = 0;
  bom_decided_ = false;
  at_line_start_ = true;
  after_cr_ = false;
  held_ = false;
  discarding_ = false;
  block_lines_ = 0;
  block_has_cr_ = false;
}

void sse_parser::reset() noexcept {
  reset_stream();
  oversized_ = 0;
}

}  // namespace tollgate::core
