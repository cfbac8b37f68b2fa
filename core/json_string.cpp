#include "core/json_string.hpp"

#include "core/swar.hpp"

#include <cstring>

namespace tollgate::core {
namespace {

bool needs_escape(unsigned char c) noexcept { return c < 0x20 || c == '"' || c == '\\'; }

// The first byte at or after p that needs escaping, or end. Log fields and error messages
// rarely have one, so eight bytes are checked at a time.
const char* next_escape(const char* p, const char* end) noexcept {
  for (; end - p >= 8; p += 8) {
    const std::uint64_t x = swar::load(p);
    if (const std::uint64_t hits = swar::below(x, 0x20) | swar::equal_to(x, '"') | swar::equal_to(x, '\\'))
      return p + swar::first_match(hits);
  }
  while (p != end && !needs_escape(static_cast<unsigned char>(*p))) ++p;
  return p;
}

// memcpy's pointers must be valid even for zero bytes, and an empty view may hold nullptr.
char* copy_run(char* out, const char* from, const char* to) noexcept {
  if (from == to) return out;
  std::memcpy(out, from, static_cast<std::size_t>(to - from));
  return out + (to - from);
}

}  // namespace

char* write_json_string(char* out, std::string_view text) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  *out++ = '"';
  const char* run = text.data();
  const char* const end = run + text.size();
  for (;;) {
    const char* const at = next_escape(run, end);
    out = copy_run(out, run, at);
    if (at == end) break;
    const auto c = static_cast<unsigned char>(*at);
    *out++ = '\\';
    switch (c) {
      case '"': *out++ = '"'; break;
      case '\\': *out++ = '\\'; break;
      case '\n': *out++ = 'n'; break;
      case '\r': *out++ = 'r'; break;
      case '\t': *out++ = 't'; break;
      default:
        std::memcpy(out, "u00", 3);
        out[3] = hex[c >> 4];
        out[4] = hex[c & 0xf];
        out += 5;
    }
    run = at + 1;
  }
  *out++ = '"';
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  const std::size_t at = out.size();
  out.resize(at + 2 + 6 * text.size());
  out.resize(static_cast<std::size_t>(write_json_string(out.data() + at, text) - out.data()));
}

}  // namespace tollgate::core
