#include "core/chunked_decoder.hpp"

#include <algorithm>

namespace tollgate::core {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Extension and trailer bytes: anything visible, blanks, obs-text; no other control byte.
bool is_line_byte(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 ? u != 0x7f : c == '\t';
}

}  // namespace

chunked_decoder::step chunked_decoder::decode(std::string_view input, std::string& out) {
  std::size_t i = 0;
  auto fail = [&] { return step{i, status::invalid}; };
  while (i < input.size()) {
    if (state_ == state::data) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, input.size() - i));
      out.append(input.data() + i, n);
      i += n;
      remaining_ -= n;
      if (remaining_ == 0) state_ = state::data_cr;
      continue;
    }
    if (state_ == state::done) return step{i, status::done};
    const char c = input[i++];
    switch (state_) {
      case state::size:
        if (const int digit = hex_value(c); digit >= 0) {
          if (++size_digits_ > max_size_digits) return fail();
          remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(digit);
        } else if (size_digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          line_bytes_ = 0;
          state_ = state::extension;
        } else if (size_digits_ > 0 && c == '\r') {
          state_ = state::size_lf;
        } else {
          return fail();
        }
        break;
      case state::extension:
        if (c == '\r') {
          state_ = state::size_lf;
        } else if (!is_line_byte(c) || ++line_bytes_ > max_extension_bytes) {
          return fail();
        }
        break;
      case state::size_lf:
        if (c != '\n') return fail();
        size_digits_ = 0;
        line_bytes_ = 0;
        state_ = remaining_ == 0 ? state::trailer_start : state::data;
        break;
      case state::data_cr:
        if (c != '\r') return fail();
        state_ = state::data_lf;
        break;
      case state::data_lf:
        if (c != '\n') return fail();
        state_ = state::size;
        break;
      case state::trailer_start:
        if (c == '\r') {
          state_ = state::last_lf;
        } else if (!is_line_byte(c) || ++line_bytes_ > max_trailer_bytes) {
          return fail();
        } else {
          state_ = state::trailer_line;
        }
        break;
      case state::trailer_line:
        if (c == '\r') {
          state_ = state::trailer_lf;
        } else if (!is_line_byte(c) || ++line_bytes_ > max_trailer_bytes) {
          return fail();
        }
        break;
      case state::trailer_lf:
        if (c != '\n') return fail();
        state_ = state::trailer_start;
        break;
      case state::last_lf:
        if (c != '\n') return fail();
        state_ = state::done;
        return step{i, status::done};
      case state::data:
      case state::done:
        break;  // handled above
    }
  }
  return step{i, state_ == state::done ? status::done : status::more};
}

}  // namespace tollgate::core
