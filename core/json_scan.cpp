#include "core/json_scan.hpp"

#include "core/swar.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <utility>

namespace tollgate::core {
namespace {

bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool is_scalar(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '-' || c == '+' || c == '.';
}

// The longest escaped spelling of one decoded byte is \u00XX, six characters: a raw key
// longer than six times the sought key cannot be equal to it.
constexpr std::size_t max_escape_expansion = 6;

// Bytes the container-skipping loop must stop at; everything else is passed over with one lookup.
constexpr std::array<bool, 256> container_stop = [] {
  std::array<bool, 256> t{};
  for (unsigned char c : {'"', '{', '}', '[', ']'}) t[c] = true;
  return t;
}();
bool stops_container(char c) noexcept { return container_stop[static_cast<unsigned char>(c)]; }

// Length of the run of backslashes that ends just before `end`, looking no further back than
// `from`.
std::size_t backslashes_before(const char* p, std::size_t from, std::size_t end) noexcept {
  std::size_t run = 0;
  while (end - run > from && p[end - run - 1] == '\\') ++run;
  return run;
}

// The first quote at or after i, or n. Most strings are short (keys, ids, enum values): one
// inline block finds their end without memchr's call and set-up, which long text then pays
// only once.
[[gnu::always_inline]] inline std::size_t find_quote(const char* p, std::size_t n, std::size_t i) noexcept {
  if (n - i >= swar::block16::size) {
    if (const unsigned quotes = swar::block16(p + i).equal_to('"'); quotes != 0)
      return i + static_cast<unsigned>(std::countr_zero(quotes));
    i += swar::block16::size;
  }
  const auto* quote = static_cast<const char*>(std::memchr(p + i, '"', n - i));
  return quote != nullptr ? static_cast<std::size_t>(quote - p) : n;
}

// Index of the closing quote of a string, or n if it is not in this chunk. `escape` carries
// a backslash seen as the last byte of the previous chunk.
// A quote after an odd run of backslashes is escaped. No run straddles a chunk boundary: a
// chunk that ends on an odd run hands the escape over, and the byte it escapes is skipped here.
[[gnu::always_inline]] inline std::size_t skip_string(const char* p, std::size_t n, std::size_t i,
                                                      bool& escape) noexcept {
  if (escape) {
    escape = false;
    ++i;
  }
  const std::size_t from = i;
  while (i < n) {
    const std::size_t q = find_quote(p, n, i);
    if (q == n) break;
    if (backslashes_before(p, from, q) % 2 == 0) return q;
    i = q + 1;
  }
  escape = backslashes_before(p, from, n) % 2 == 1;
  return n;
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads "XXXX" at raw[i]; false if not four hex digits.
bool read_hex4(std::string_view raw, std::size_t i, std::uint32_t& out) noexcept {
  if (raw.size() < i + 4) return false;
  out = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    const int d = hex_digit(raw[i + k]);
    if (d < 0) return false;
    out = out * 16 + static_cast<std::uint32_t>(d);
  }
  return true;
}

// Compares a key's raw text (between the quotes) with `key` as a JSON parser would see it.
bool key_equals(std::string_view raw, std::string_view key) noexcept {
  // Decoding only shortens a key. Otherwise the byte-by-byte walk below stops at the first
  // difference, which for nearly every key is its first byte: cheaper than looking for a
  // backslash first.
  if (raw.size() < key.size()) return false;
  std::size_t k = 0;
  auto put = [&](std::uint32_t byte) noexcept {
    if (k >= key.size() || static_cast<unsigned char>(key[k]) != byte) return false;
    ++k;
    return true;
  };
  std::size_t i = 0;
  while (i < raw.size()) {
    if (raw[i] != '\\') {
      if (!put(static_cast<unsigned char>(raw[i]))) return false;
      ++i;
      continue;
    }
    if (i + 1 >= raw.size()) return false;
    const char e = raw[i + 1];
    i += 2;
    std::uint32_t cp = 0;
    switch (e) {
      case '"': case '\\': case '/': cp = static_cast<unsigned char>(e); break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u': {
        if (!read_hex4(raw, i, cp)) return false;
        i += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          std::uint32_t low = 0;
          if (raw.size() < i + 2 || raw[i] != '\\' || raw[i + 1] != 'u' ||
              !read_hex4(raw, i + 2, low) || low < 0xDC00 || low > 0xDFFF)
            return false;
          i += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        break;
      }
      default: return false;
    }
    bool ok = true;
    if (cp < 0x80) {
      ok = put(cp);
    } else if (cp < 0x800) {
      ok = put(0xC0 | (cp >> 6)) && put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      ok = put(0xE0 | (cp >> 12)) && put(0x80 | ((cp >> 6) & 0x3F)) && put(0x80 | (cp & 0x3F));
    } else {
      ok = put(0xF0 | (cp >> 18)) && put(0x80 | ((cp >> 12) & 0x3F)) &&
           put(0x80 | ((cp >> 6) & 0x3F)) && put(0x80 | (cp & 0x3F));
    }
    if (!ok) return false;
  }
  return k == key.size();
}

}  // namespace

namespace detail {

void member_scanner::reserve_key(std::size_t key_size) {
  key_buf_.reserve(key_size * max_escape_expansion);
}

void member_scanner::reset() noexcept {
  auto keep = std::move(key_buf_);  // keep its capacity: run() must not allocate
  const bool stop = stop_at_value_end_;
  *this = member_scanner{};
  key_buf_ = std::move(keep);
  key_buf_.clear();
  stop_at_value_end_ = stop;
}

bool bracket_stack::push(bool is_object) noexcept {
  if (depth_ >= max_json_depth) return false;
  const std::uint64_t bit = std::uint64_t{1} << (depth_ % 64);
  if (is_object) kinds_[depth_ / 64] |= bit;
  else kinds_[depth_ / 64] &= ~bit;
  ++depth_;
  return true;
}

bool bracket_stack::pop(bool is_object) noexcept {
  if (depth_ == 0) return false;
  --depth_;
  const bool was_object = (kinds_[depth_ / 64] >> (depth_ % 64)) & 1U;
  return was_object == is_object;
}

void member_scanner::end_value(std::size_t at) noexcept {
  if (matched_) {
    value_end_ = at;
    value_ended_ = true;
  }
  state_ = state::after_value;
}

std::size_t member_scanner::skip_container(const char* p, std::size_t n, std::size_t j) noexcept {
  auto bracket = [this](char d) noexcept {  // false on a mismatch or nesting too deep
    if (d == '{' || d == '[') return open_.push(d == '{');
    return open_.pop(d == '}');
  };
  while (j < n) {
    if (container_string_) {
      j = skip_string(p, n, j, escape_);
      if (j == n) return still_open;
      container_string_ = false;
      ++j;
      continue;
    }
    if (n - j < swar::block16::size) {
      while (j < n && !stops_container(p[j])) ++j;
      if (j == n) return still_open;
      const char d = p[j++];
      if (d == '"') {
        container_string_ = true;
        continue;
      }
      if (!bracket(d)) { fail(); return still_open; }
      if (open_.depth() == 0) return j;
      continue;
    }
    // Outside strings, a container is keys, short values and punctuation: sixteen bytes are
    // settled from their masks. The parity of the quotes before a byte says whether it is
    // inside a string; only brackets outside strings are visited. The masks cannot see
    // escapes, so they are trusted only up to the block's first backslash, and a string that
    // is still open at the end of what they covered is left to skip_string.
    const swar::block16 block(p + j);
    const unsigned backslashes = block.equal_to('\\');
    const unsigned covered = backslashes != 0 ? (backslashes & (0u - backslashes)) - 1 : 0xFFFFu;
    const unsigned quotes = block.equal_to('"') & covered;
    const unsigned in_string = swar::prefix_parity16(quotes);
    unsigned brackets = (block.equal_to('{') | block.equal_to('[') | block.equal_to('}') | block.equal_to(']')) &
                        covered & ~in_string;
    for (; brackets != 0; brackets &= brackets - 1) {
      const std::size_t at = j + static_cast<unsigned>(std::countr_zero(brackets));
      if (!bracket(p[at])) { fail(); return still_open; }
      if (open_.depth() == 0) return at + 1;
    }
    const std::size_t advance = backslashes != 0 ? static_cast<unsigned>(std::countr_zero(backslashes))
                                                 : swar::block16::size;
    // A backslash inside a string starts its escape: skip_string takes the string from
    // there. One outside strings is not JSON; like any other stray byte it is passed over.
    container_string_ = std::popcount(quotes) % 2 == 1;
    j += advance + (backslashes != 0 && !container_string_ ? 1 : 0);
  }
  return still_open;
}

void member_scanner::scan(std::string_view in, std::size_t base, std::string_view key,
                          bool last) noexcept {
  if (outcome_ != outcome::scanning || (stop_at_value_end_ && value_ended_)) return;
  const char* p = in.data();
  const std::size_t n = in.size();
  std::size_t i = 0;
  std::size_t key_from = 0;  // where the current key's text starts in this chunk
  // The bytes of a split key must be kept until its closing quote; the limit bounds them.
  const std::size_t key_limit = key.size() * max_escape_expansion;
  auto keep_key_part = [&](std::string_view part) noexcept {
    if (key_too_long_ || key_buf_.size() + part.size() > key_limit) {
      key_too_long_ = true;
      return;
    }
    if (key_buf_.size() + part.size() > key_buf_.capacity()) {  // no reserve_key(): cannot match
      key_too_long_ = true;
      return;
    }
    key_buf_.append(part);
  };

  while (i < n) {
    const char c = p[i];
    switch (state_) {
      case state::before_object:
        if (is_ws(c)) { ++i; break; }
        if (c != '{') { fail(); return; }
        state_ = state::before_first_key;
        ++i;
        break;

      case state::before_first_key:
      case state::before_key:
        if (is_ws(c)) { ++i; break; }
        if (c == '}' && state_ == state::before_first_key) {
          outcome_ = outcome::absent;
          return;
        }
        if (c != '"') { fail(); return; }
        key_begin_ = base + i;
        key_from = i + 1;
        key_spans_ = false;
        key_too_long_ = false;
        key_buf_.clear();
        escape_ = false;
        state_ = state::in_key;
        ++i;
        break;

      case state::in_key: {
        const std::size_t j = skip_string(p, n, i, escape_);
        if (j == n) {
          if (!last) keep_key_part(in.substr(key_from));
          key_spans_ = true;
          i = n;
          break;
        }
        std::string_view raw = in.substr(key_from, j - key_from);
        if (key_spans_) {
          keep_key_part(raw);
          raw = key_buf_.view();
        }
        matched_ = !key_too_long_ && key_equals(raw, key);
        state_ = state::before_colon;
        i = j + 1;
        break;
      }

      case state::before_colon:
        if (is_ws(c)) { ++i; break; }
        if (c != ':') { fail(); return; }
        state_ = state::before_value;
        ++i;
        break;

      case state::before_value:
        if (is_ws(c)) { ++i; break; }
        if (matched_) {
          value_begin_ = base + i;
          value_started_ = true;
        }
        if (c == '"') {
          escape_ = false;
          state_ = state::in_string;
        } else if (c == '{' || c == '[') {
          open_.clear();
          open_.push(c == '{');
          container_string_ = false;
          state_ = state::in_container;
        } else if (is_scalar(c)) {
          state_ = state::in_scalar;
        } else {
          fail();
          return;
        }
        ++i;
        break;

      case state::in_string: {
        const std::size_t j = skip_string(p, n, i, escape_);
        if (j == n) { i = n; break; }
        end_value(base + j + 1);
        if (stop_at_value_end_ && value_ended_) return;
        i = j + 1;
        break;
      }

      case state::in_scalar: {
        std::size_t j = i;
        while (j < n && is_scalar(p[j])) ++j;
        i = j;
        if (j < n) end_value(base + j);  // the delimiter is the next state's to judge
        if (stop_at_value_end_ && value_ended_) return;
        break;
      }

      case state::in_container: {
        const std::size_t end = skip_container(p, n, i);
        if (end == still_open) {
          if (outcome_ == outcome::malformed) return;
          i = n;
          break;
        }
        end_value(base + end);
        if (stop_at_value_end_ && value_ended_) return;
        i = end;
        break;
      }

      case state::after_value:
        if (is_ws(c)) { ++i; break; }
        if (c == ',') {
          if (matched_) {
            state_ = state::after_comma;
          } else {
            prev_comma_ = base + i;
            has_prev_comma_ = true;
            state_ = state::before_key;
          }
          ++i;
          break;
        }
        if (c != '}') { fail(); return; }
        if (matched_) {
          erase_begin_ = has_prev_comma_ ? prev_comma_ : key_begin_;
          erase_end_ = value_end_;
          outcome_ = outcome::found;
        } else {
          outcome_ = outcome::absent;
        }
        return;

      case state::after_comma:
        // Erasing up to the next key keeps `{"a":1, "b":2}` tidy as `{"b":2}`, and refuses a
        // trailing comma rather than producing `{,}`-like text.
        if (is_ws(c)) { ++i; break; }
        if (c != '"') { fail(); return; }
        erase_begin_ = key_begin_;
        erase_end_ = base + i;
        outcome_ = outcome::found;
        return;
    }
  }
}

void member_scanner::run(std::string_view in, std::size_t base, std::string_view key,
                         bool last) noexcept {
  scan(in, base, key, last);
  const bool stopped_early = stop_at_value_end_ && value_ended_;  // the chunk's rest is not read yet
  if (last && outcome_ == outcome::scanning && !stopped_early) fail();  // the text ended inside the object
}

namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

// Reading backwards, a quote outside strings closes one: in JSON every quote inside a string
// is escaped, so the string opens at the nearest unescaped quote before it. Its index, or
// npos.
std::size_t string_start_before(const char* p, std::size_t closing_quote) noexcept {
  std::size_t end = closing_quote;
  while (end > 0) {
    const auto* quote = static_cast<const char*>(::memrchr(p, '"', end));
    if (quote == nullptr) return npos;
    const auto at = static_cast<std::size_t>(quote - p);
    if (backslashes_before(p, 0, at) % 2 == 0) return at;
    end = at;
  }
  return npos;
}

// Reading backwards, a quote where a string must end: one not escaped.
bool closes_string(const char* p, std::size_t at) noexcept {
  return p[at] == '"' && backslashes_before(p, 0, at) % 2 == 0;
}

// The first byte of the value that ends just before `end`, or npos when what ends there is
// not one.
std::size_t value_start_before(const char* p, std::size_t end, bracket_stack& open) noexcept {
  std::size_t i = end - 1;
  if (p[i] == '"') return closes_string(p, i) ? string_start_before(p, i) : npos;
  if (is_scalar(p[i])) {
    while (i > 0 && is_scalar(p[i - 1])) --i;
    return i;
  }
  if (p[i] != '}' && p[i] != ']') return npos;
  // Read backwards, a closing bracket opens a level and an opening one closes it.
  open.clear();
  open.push(p[i] == '}');
  while (i > 0) {
    const char c = p[--i];
    if (!stops_container(c)) continue;
    if (c == '"') {
      if (!closes_string(p, i) || (i = string_start_before(p, i)) == npos) return npos;
    } else if (c == '}' || c == ']') {
      if (!open.push(c == '}')) return npos;
    } else {
      if (!open.pop(c == '{')) return npos;
      if (open.depth() == 0) return i;
    }
  }
  return npos;
}

bool blank(const char* p, std::size_t n) noexcept {
  return std::all_of(p, p + n, is_ws);
}

}  // namespace

tail_match find_last_top_level_member(std::string_view object_text, std::string_view key) noexcept {
  using enum tail_match::outcome;
  const char* p = object_text.data();
  std::size_t i = object_text.size();  // what is left to read is [0, i)
  auto skip_blanks = [&] {
    while (i > 0 && is_ws(p[i - 1])) --i;
  };
  skip_blanks();
  if (i == 0 || p[i - 1] != '}') return {};
  --i;
  skip_blanks();
  if (i > 0 && p[i - 1] == '{') return {blank(p, i - 1) ? absent : unsure};
  bracket_stack open;
  for (;;) {
    // member = key ws ':' ws value, read from the value's end
    if (i == 0) return {};
    const std::size_t value_end = i;
    const std::size_t value_begin = value_start_before(p, i, open);
    if (value_begin == npos) return {};
    i = value_begin;
    skip_blanks();
    if (i == 0 || p[i - 1] != ':') return {};
    --i;
    skip_blanks();
    if (i == 0 || !closes_string(p, i - 1)) return {};
    const std::size_t key_end = i - 1;
    const std::size_t key_begin = string_start_before(p, key_end);
    if (key_begin == npos) return {};
    i = key_begin;
    skip_blanks();
    if (i == 0 || (p[i - 1] != ',' && p[i - 1] != '{')) return {};
    const bool first_member = p[i - 1] == '{';
    if (first_member && !blank(p, i - 1)) return {};
    if (key_equals(object_text.substr(key_begin + 1, key_end - key_begin - 1), key)) return {found, value_begin, value_end};
    if (first_member) return {absent};
    --i;
    skip_blanks();
  }
}

}  // namespace detail

std::optional<member_span> find_top_level_member(std::string_view object_text,
                                                 std::string_view key) noexcept {
  detail::member_scanner s;
  s.run(object_text, 0, key, true);
  if (s.result() != detail::member_scanner::outcome::found) return std::nullopt;
  return member_span{s.erase_begin(), s.erase_end(), s.value_begin(), s.value_end()};
}

top_level_member_capture::top_level_member_capture(std::string key, std::size_t max_value_bytes)
    : key_(std::move(key)), max_value_bytes_(max_value_bytes) {
  scanner_.stop_at_value_end(true);
  scanner_.reserve_key(key_.size());
}

bool top_level_member_capture::done() const noexcept {
  return complete_ || overflowed_ || read_from_end_ || scanner_.result() != detail::member_scanner::outcome::scanning;
}

bool top_level_member_capture::keep(std::string_view value_bytes) noexcept {
  if (value_.size() + value_bytes.size() > max_value_bytes_) {
    overflowed_ = true;
    value_.clear();
    return false;
  }
  try {
    value_.append(value_bytes);
  } catch (...) {  // out of memory: give up on this value, not on the process
    overflowed_ = true;
    value_.clear();
    return false;
  }
  return true;
}

void top_level_member_capture::feed(std::string_view bytes, bool last) noexcept {
  if (done()) return;
  if (last && offset_ == 0) {
    using enum detail::tail_match::outcome;
    const detail::tail_match tail = detail::find_last_top_level_member(bytes, key_);
    if (tail.what != unsure) {
      read_from_end_ = true;
      if (tail.what == found && keep(bytes.substr(tail.value_begin, tail.value_end - tail.value_begin)))
        complete_ = true;
      return;
    }
  }
  scan_forward(bytes, last);
}

void top_level_member_capture::scan_forward(std::string_view bytes, bool last) noexcept {
  std::size_t from = 0;  // bytes[from..] are not scanned yet
  for (;;) {
    const std::size_t base = offset_ + from;
    scanner_.run(bytes.substr(from), base, key_, last);
    if (scanner_.value_started()) {
      if (!taking_) {  // a member of that name: its value replaces any earlier one's
        value_.clear();
        value_whole_ = false;
        taking_ = true;
      }
      // The slice of this piece that belongs to the value.
      const std::size_t begin = std::max(scanner_.value_begin(), base);
      const std::size_t end = scanner_.value_ended() ? scanner_.value_end() : offset_ + bytes.size();
      if (end > begin && !keep(bytes.substr(begin - offset_, end - begin))) return;
    }
    if (!scanner_.value_ended()) break;
    value_whole_ = true;
    taking_ = false;
    from = scanner_.value_end() - offset_;
    scanner_.next_member();
  }
  offset_ += bytes.size();
  switch (scanner_.result()) {
    case detail::member_scanner::outcome::scanning: break;
    case detail::member_scanner::outcome::malformed: value_.clear(); break;
    case detail::member_scanner::outcome::found:
    case detail::member_scanner::outcome::absent: complete_ = value_whole_; break;  // the object ended
  }
}

void top_level_member_capture::reset() noexcept {
  scanner_.reset();
  value_.clear();
  offset_ = 0;
  taking_ = false;
  value_whole_ = false;
  read_from_end_ = false;
  complete_ = false;
  overflowed_ = false;
}

}  // namespace tollgate::core
