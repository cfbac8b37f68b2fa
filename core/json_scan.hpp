#pragma once

#include "core/inline_buffer.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate::core {

// Locating one top-level member of a JSON object by scanning its structure, without parsing
// or reserialising it: the bytes around the member stay exactly as the provider sent them.
//
// Scope of validation: the scan checks structure (strings and escapes, bracket nesting and
// matching, key/colon/value/comma order) up to the end of the member it returns, and no
// further. Scalars are accepted as any run of [A-Za-z0-9+-.] without checking their spelling.
// It is meant for provider output, not as a JSON validator.
//
// Keys are compared after unescaping: "us\u0061ge" matches usage, as a JSON parser would see
// it. Keys with invalid escapes never match.
//
// Nesting deeper than max_json_depth counts as malformed.
inline constexpr std::size_t max_json_depth = 512;

struct member_span {
  // Erasing [erase_begin, erase_end) removes the member and exactly one adjacent comma,
  // leaving valid JSON:
  //   first or middle member: from its key's opening quote up to the next key's opening quote
  //                           (its own comma and the whitespace after it go too);
  //   last of several:        from the preceding comma up to the end of its value;
  //   only member:            from its key's opening quote up to the end of its value.
  std::size_t erase_begin, erase_end;
  std::size_t value_begin, value_end;  // the member's value text
};

// First member named `key` at depth 1 of `object_text` (never a nested one, never text inside
// strings). nullopt if absent or if the text is not an object.
std::optional<member_span> find_top_level_member(std::string_view object_text,
                                                 std::string_view key) noexcept;

namespace detail {

// The brackets a container value has open, innermost last, one bit each: object or array.
class bracket_stack {
 public:
  bool push(bool is_object) noexcept;  // false past max_json_depth
  bool pop(bool is_object) noexcept;   // false when nothing is open or the kinds differ
  std::size_t depth() const noexcept { return depth_; }
  void clear() noexcept { depth_ = 0; }

 private:
  std::size_t depth_ = 0;
  std::array<std::uint64_t, max_json_depth / 64> kinds_{};
};

// The last member named `key` at depth 1 of a whole object, found by reading its members
// backwards from the closing brace: value, colon, key, then a comma or the opening brace. The
// member a provider's usage is in comes last or nearly, so only the bytes after it are read.
// Structure is checked from the member to the end, and not before it. `unsure` when the text
// does not read as an object that way; the forward scan decides then.
struct tail_match {
  enum class outcome : std::uint8_t { found, absent, unsure };
  outcome what = outcome::unsure;
  std::size_t value_begin = 0, value_end = 0;
};
tail_match find_last_top_level_member(std::string_view object_text, std::string_view key) noexcept;

// The scanner behind both entry points: a byte-driven state machine that can stop at any
// byte and resume with the next chunk. Offsets are absolute across chunks.
class member_scanner {
 public:
  enum class outcome : std::uint8_t { scanning, found, absent, malformed };

  // `base` is the absolute offset of chunk[0]. With `last` the text ends with this chunk.
  void run(std::string_view chunk, std::size_t base, std::string_view key, bool last) noexcept;
  void stop_at_value_end(bool on) noexcept { stop_at_value_end_ = on; }
  // After the sought member's value ended: go on with the members after it, as if its key had
  // not matched, to meet a later member of the same name or the end of the object.
  void next_member() noexcept { matched_ = value_started_ = value_ended_ = false; }
  // Sizes the buffer for keys split across chunks up front, so run() never allocates.
  void reserve_key(std::size_t key_size);
  void reset() noexcept;

  outcome result() const noexcept { return outcome_; }
  bool value_started() const noexcept { return value_started_; }  // of the matching member
  bool value_ended() const noexcept { return value_ended_; }
  std::size_t value_begin() const noexcept { return value_begin_; }
  std::size_t value_end() const noexcept { return value_end_; }
  std::size_t erase_begin() const noexcept { return erase_begin_; }
  std::size_t erase_end() const noexcept { return erase_end_; }

 private:
  enum class state : std::uint8_t {
    before_object, before_first_key, before_key, in_key, before_colon, before_value,
    in_string, in_scalar, in_container, after_value, after_comma,
  };
  // run() without its end-of-text check: returns as soon as the outcome is settled or the
  // value sought has ended, so the per-byte loop tests only the chunk's end.
  void scan(std::string_view chunk, std::size_t base, std::string_view key, bool last) noexcept;
  // Inside a container value, from p[j]: the index just past its closing bracket, or
  // still_open when it goes on past this chunk or turned out malformed (mismatched brackets,
  // nesting past max_json_depth), outcome_ then saying which.
  static constexpr std::size_t still_open = static_cast<std::size_t>(-1);
  std::size_t skip_container(const char* p, std::size_t n, std::size_t j) noexcept;
  void end_value(std::size_t at) noexcept;
  void fail() noexcept { outcome_ = outcome::malformed; }

  state state_ = state::before_object;
  outcome outcome_ = outcome::scanning;
  bool escape_ = false;            // inside a string, the previous byte was a backslash
  bool container_string_ = false;  // in_container: currently inside a string
  bool matched_ = false;           // the current member's key equals the one sought
  bool value_started_ = false;
  bool value_ended_ = false;
  bool stop_at_value_end_ = false;
  bool key_spans_ = false;  // the current key began in an earlier chunk: its text is in key_buf_
  bool key_too_long_ = false;
  bracket_stack open_;  // inside a container value
  std::size_t key_begin_ = 0;
  std::size_t prev_comma_ = 0;
  bool has_prev_comma_ = false;
  std::size_t value_begin_ = 0, value_end_ = 0, erase_begin_ = 0, erase_end_ = 0;
  // Only for keys split across chunks; bounded, see reserve_key(). Inline room for keys of up
  // to 10 bytes ("usage" is 5), so a capture of one costs no allocation.
  inline_buffer<64> key_buf_;
};

}  // namespace detail

// The value a JSON parser reads for `key` in an object that arrives in pieces and must not be
// buffered whole: that of its last top-level member of that name, once the object has ended
// well-formed. Only the value's bytes are copied, at most max_value_bytes of them. A text
// that arrives whole (its first piece is also its last) is read from its end, see
// detail::find_last_top_level_member; any other is scanned forwards. Not thread-safe.
class top_level_member_capture {
 public:
  explicit top_level_member_capture(std::string key, std::size_t max_value_bytes = 64 * 1024);

  // `last`: no bytes follow these. Pieces after done() are ignored.
  void feed(std::string_view bytes, bool last = false) noexcept;
  bool complete() const noexcept { return complete_; }  // the object ended, with the member in it
  // The value's text once complete(), else empty. Valid until the next reset() or destruction.
  std::string_view value() const noexcept { return complete_ ? value_.view() : ""; }
  // The value exceeded max_value_bytes (or memory ran out copying it): given up.
  bool overflowed() const noexcept { return overflowed_; }
  // The outcome is settled (complete, absent, malformed or overflowed): stop feeding.
  bool done() const noexcept;
  void reset() noexcept;

 private:
  void scan_forward(std::string_view bytes, bool last) noexcept;
  bool keep(std::string_view value_bytes) noexcept;  // false once overflowed

  std::string key_;
  std::size_t max_value_bytes_;
  detail::member_scanner scanner_;
  // The caller reuses its buffer between pieces, so the value's bytes must be copied; inline
  // room for a typical usage object (an OpenAI one with its details is about 250 bytes).
  inline_buffer<512> value_;
  std::size_t offset_ = 0;       // absolute offset of the next byte fed
  bool taking_ = false;          // value_ is receiving the current member's value
  bool value_whole_ = false;     // value_ holds a whole value: the last one met so far
  bool read_from_end_ = false;   // settled by find_last_top_level_member
  bool complete_ = false;
  bool overflowed_ = false;
};

}  // namespace tollgate::core
