#include "core/http_head.hpp"

#include "core/swar.hpp"

namespace tollgate::core {
namespace {

enum char_class : std::uint8_t {
  token_char = 1,   // RFC 9110 tchar: header names and methods
  target_char = 2,  // visible ASCII: the request target
};

constexpr std::array<std::uint8_t, 256> char_classes = [] {
  std::array<std::uint8_t, 256> classes{};
  for (int c = 0x21; c <= 0x7e; ++c) classes[c] = target_char;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) classes[static_cast<unsigned char>(c)] |= token_char;
  for (int c = '0'; c <= '9'; ++c) classes[c] |= token_char;
  for (int c = 'a'; c <= 'z'; ++c) classes[c] |= token_char;
  for (int c = 'A'; c <= 'Z'; ++c) classes[c] |= token_char;
  return classes;
}();

bool is(char c, char_class wanted) noexcept { return (char_classes[static_cast<unsigned char>(c)] & wanted) != 0; }

// The bytes of a block that are `wanted` for sure: for a target, all of them; for a token,
// letters, digits and '-', what names and methods are made of (the table judges the rest).
template <char_class wanted>
unsigned surely(const swar::block16& block) noexcept {
  if constexpr (wanted == target_char) return block.in_range(0x21, 0x7e);
  else return block.lower_cased().in_range('a', 'z') | block.in_range('0', '9') | block.equal_to('-');
}

// Length of the run of `wanted` characters at the start of [p, end), sixteen bytes a step.
template <char_class wanted>
[[gnu::always_inline]] inline std::size_t run_of(const char* p, const char* end) noexcept {
  const char* q = p;
  while (end - q >= static_cast<std::ptrdiff_t>(swar::block16::size)) {
    const unsigned sure = surely<wanted>(swar::block16(q));
    if (sure != 0xFFFFu) {
      q += std::countr_one(sure);
      break;
    }
    q += swar::block16::size;
  }
  while (q != end && is(*q, wanted)) ++q;
  return static_cast<std::size_t>(q - p);
}

// A byte no field value may hold as is: the controls (CR and LF end the line; HTAB is the one
// allowed inside) and DEL.
bool is_control(char c) noexcept { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// The first control byte in [p, end), or end. Sixteen bytes per step while there are as many:
// header values are most of a head's bytes, and most hold no control byte at all.
const char* first_control(const char* p, const char* end) noexcept {
  while (end - p >= static_cast<std::ptrdiff_t>(swar::block16::size)) {
    const swar::block16 block(p);
    if (const unsigned controls = block.in_range(0, 0x1f) | block.equal_to(0x7f)) return p + std::countr_zero(controls);
    p += swar::block16::size;
  }
  while (end - p >= 8) {
    const std::uint64_t x = swar::load(p);
    if (const std::uint64_t controls = swar::below(x, 0x20) | swar::equal_to(x, 0x7f)) return p + swar::first_match(controls);
    p += 8;
  }
  while (p != end && !is_control(*p)) ++p;
  return p;
}

// `text` (token characters only) equals the lower-case `name`, ignoring case. OR-ing 0x20
// lower-cases a letter and leaves '-' alone; no other token character can land on either.
bool names_equal(std::string_view text, std::string_view name) noexcept {
  if (text.size() != name.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i)
    if ((text[i] | 0x20) != name[i]) return false;
  return true;
}

// names_equal for names of 8 bytes or more, 8 at a time; the last load overlaps the one before
// it when the length is not a multiple of 8. OR-ing 0x20 into a whole word lower-cases every
// letter of a token and leaves '-' and digits, which have that bit already, as they are.
bool long_names_equal(std::string_view text, std::string_view name) noexcept {
  constexpr std::uint64_t lower_case = 0x2020202020202020ULL;
  const std::size_t n = name.size();
  for (std::size_t i = 0; i + 8 < n; i += 8)
    if ((swar::load(text.data() + i) | lower_case) != swar::load(name.data() + i)) return false;
  return (swar::load(text.data() + n - 8) | lower_case) == swar::load(name.data() + n - 8);
}

bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim_blanks(std::string_view s) noexcept {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

bool read_content_length(std::string_view value, std::uint64_t& length) noexcept {
  // 18 digits cannot overflow; a longer value is either absurd or zero-padded: not plain.
  if (value.empty() || value.size() > 18) return false;
  std::uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  length = n;
  return true;
}

// What the header lines say about the connection and the body.
struct framing_fields {
  bool close = false;
  bool keep_alive = false;
  bool has_length = false;
  std::uint64_t length = 0;
  bool chunked = false;
};

// Connection: only the close and keep-alive options are plain (Upgrade, TE and friends are not).
bool read_connection(std::string_view value, framing_fields& facts) noexcept {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    const std::string_view option = trim_blanks(value.substr(0, comma));
    if (names_equal(option, "close")) {
      facts.close = true;
    } else if (names_equal(option, "keep-alive")) {
      facts.keep_alive = true;
    } else if (!option.empty()) {
      return false;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return true;
}

// Notes what a framing-related header says; false when it makes the message not plain.
bool note_field(header_name id, std::string_view value, framing_fields& facts) noexcept {
  switch (id) {
    case header_name::upgrade:
      return false;
    case header_name::connection:
      return read_connection(value, facts);
    case header_name::content_length:
      if (facts.has_length || !read_content_length(value, facts.length)) return false;
      facts.has_length = true;
      return true;
    case header_name::transfer_encoding:
      // Only chunked alone: other codings would have to be undone or passed on.
      if (facts.chunked || !names_equal(value, "chunked")) return false;
      facts.chunked = true;
      return true;
    default:
      return true;
  }
}

// The header lines from p (just past the start line) through the blank line.
head_status read_fields(const char* const begin, const char* p, const char* const end, header_lines& headers,
                        framing_fields& facts, std::size_t& head_bytes) noexcept {
  headers.count = 0;
  for (;;) {
    if (p == end) return head_status::incomplete;
    if (*p == '\r') {
      if (p + 1 == end) return head_status::incomplete;
      if (p[1] != '\n') return head_status::unusual;
      // Both options at once, or both framings: parsers disagree on which wins.
      if ((facts.close && facts.keep_alive) || (facts.chunked && facts.has_length)) return head_status::unusual;
      head_bytes = static_cast<std::size_t>(p + 2 - begin);
      return head_status::complete;
    }
    // field-line = field-name ":" OWS field-value OWS; a line starting with a blank is obs-fold.
    const std::size_t name_size = run_of<token_char>(p, end);
    if (p + name_size == end) return head_status::incomplete;
    if (name_size == 0 || p[name_size] != ':') return head_status::unusual;
    const char* value_begin = p + name_size + 1;
    const char* cr = value_begin;
    for (;;) {
      cr = first_control(cr, end);
      if (cr == end) return head_status::incomplete;
      if (*cr != '\t') break;
      ++cr;
    }
    if (*cr != '\r') return head_status::unusual;  // a bare LF, or a control byte in the value
    if (cr + 1 == end) return head_status::incomplete;
    if (cr[1] != '\n') return head_status::unusual;
    if (headers.count == max_plain_headers) return head_status::unusual;
    const std::string_view name(p, name_size);
    const std::string_view value = trim_blanks(std::string_view(value_begin, static_cast<std::size_t>(cr - value_begin)));
    const header_name id = classify_header(name);
    if (!note_field(id, value, facts)) return head_status::unusual;
    headers.lines[headers.count++] = http_header{name, value, id};
    p = cr + 2;
  }
}

// Finds the start line's end (its CR). Complete when the whole line is there, ended by CRLF,
// with no control byte in it.
head_status find_start_line(const char* begin, const char* end, const char*& cr) noexcept {
  cr = first_control(begin, end);
  if (cr == end || cr + 1 == end) return head_status::incomplete;
  return cr[0] == '\r' && cr[1] == '\n' ? head_status::complete : head_status::unusual;
}

bool read_version(std::string_view version, bool& http11) noexcept {
  if (version == "HTTP/1.1") {
    http11 = true;
  } else if (version == "HTTP/1.0") {
    http11 = false;
  } else {
    return false;
  }
  return true;
}

}  // namespace

head_status read_request_head(std::string_view bytes, request_head& head) noexcept {
  const char* const begin = bytes.data();
  const char* const end = begin + bytes.size();

  // request-line = method SP request-target SP HTTP-version CRLF
  const char* cr = nullptr;
  if (const head_status line = find_start_line(begin, end, cr); line != head_status::complete) return line;
  const char* p = begin;
  const std::size_t method_size = run_of<token_char>(p, cr);
  if (method_size == 0 || p + method_size == cr || p[method_size] != ' ') return head_status::unusual;
  head.method = std::string_view(p, method_size);
  p += method_size + 1;
  const std::size_t target_size = run_of<target_char>(p, cr);
  if (target_size == 0 || p + target_size == cr || p[target_size] != ' ') return head_status::unusual;
  head.target = std::string_view(p, target_size);
  p += target_size + 1;
  if (!read_version(std::string_view(p, static_cast<std::size_t>(cr - p)), head.http11)) return head_status::unusual;

  framing_fields facts;
  const head_status status = read_fields(begin, cr + 2, end, head.headers, facts, head.head_bytes);
  if (status != head_status::complete) return status;
  if (facts.chunked) return head_status::unusual;
  head.content_length = facts.length;
  head.keep_alive = head.http11 ? !facts.close : facts.keep_alive;
  return head_status::complete;
}

head_status read_response_head(std::string_view bytes, response_head& head) noexcept {
  const char* const begin = bytes.data();
  const char* const end = begin + bytes.size();

  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
  const char* cr = nullptr;
  if (const head_status found = find_start_line(begin, end, cr); found != head_status::complete) return found;
  const std::string_view line(begin, static_cast<std::size_t>(cr - begin));
  constexpr std::size_t reason_at = 13;  // "HTTP/1.1 200 "
  if (line.size() < reason_at || line[8] != ' ' || line[12] != ' ' || !read_version(line.substr(0, 8), head.http11))
    return head_status::unusual;
  int status = 0;
  for (char c : line.substr(9, 3)) {
    if (c < '0' || c > '9') return head_status::unusual;
    status = status * 10 + (c - '0');
  }
  if (status < 100) return head_status::unusual;
  head.status = status;

  framing_fields facts;
  const head_status result = read_fields(begin, cr + 2, end, head.headers, facts, head.head_bytes);
  if (result != head_status::complete) return result;
  head.keep_alive = head.http11 ? !facts.close : facts.keep_alive;
  head.content_length = 0;
  if (status < 200 || status == 204 || status == 304) {
    head.framing = body_framing::none;
  } else if (facts.chunked) {
    head.framing = body_framing::chunked;
  } else if (facts.has_length) {
    head.framing = body_framing::length;
    head.content_length = facts.length;
  } else {
    head.framing = body_framing::until_close;
    head.keep_alive = false;
  }
  return head_status::complete;
}

header_name classify_header(std::string_view name) noexcept {
  using enum header_name;
  // Dispatched on the length first: most lines are then decided by one compare, or none.
  auto is = [name](std::string_view lower, header_name id) {
    const bool equal = lower.size() >= 8 ? long_names_equal(name, lower) : names_equal(name, lower);
    return equal ? id : other;
  };
  switch (name.size()) {
    case 2: return is("te", te);
    case 4: return is("host", host);
    case 6: return is("expect", expect);
    case 7: {
      const header_name first = is("trailer", trailer);
      return first != other ? first : is("upgrade", upgrade);
    }
    case 10: {
      const header_name first = is("connection", connection);
      return first != other ? first : is("keep-alive", keep_alive);
    }
    case 11: return is("retry-after", retry_after);
    case 12: return is("content-type", content_type);
    case 13: return is("authorization", authorization);
    case 14: return is("content-length", content_length);
    case 15: return is("accept-encoding", accept_encoding);
    case 16: return is("proxy-connection", proxy_connection);
    case 17: return is("transfer-encoding", transfer_encoding);
    case 18: return is("proxy-authenticate", proxy_authenticate);
    case 19: return is("proxy-authorization", proxy_authorization);
    default: return other;
  }
}

}  // namespace tollgate::core
