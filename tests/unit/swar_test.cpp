#include "core/swar.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace swar = tollgate::core::swar;

namespace {

// Eight bytes with `value` in lane `lane` and `filler` everywhere else.
std::uint64_t lanes(unsigned char value, unsigned lane, unsigned char filler) {
  char bytes[8];
  for (char& b : bytes) b = static_cast<char>(filler);
  bytes[lane] = static_cast<char>(value);
  return swar::load(bytes);
}

}  // namespace

TEST_CASE("swar: masks mark exactly the matching bytes, in every lane, for every byte value") {
  for (unsigned lane = 0; lane < 8; ++lane) {
    for (unsigned v = 0; v < 256; ++v) {
      const auto value = static_cast<unsigned char>(v);
      // Fillers on both sides of the boundaries, so no borrow or carry can leak into the lane.
      for (unsigned char filler : {0x00, 0x1f, 0x20, 0x3a, 0x7f, 0x80, 0xff}) {
        const std::uint64_t x = lanes(value, lane, filler);
        const std::uint64_t lane_bit = 0x80ULL << (8 * lane);
        CAPTURE(lane);
        CAPTURE(v);
        CAPTURE(static_cast<unsigned>(filler));
        CHECK(((swar::equal_to(x, ':') & lane_bit) != 0) == (value == ':'));
        CHECK(((swar::below(x, 0x20) & lane_bit) != 0) == (value < 0x20));
        CHECK(((swar::below(x, 0x80) & lane_bit) != 0) == (value < 0x80));
        if (filler != ':' && value == ':') CHECK(swar::first_match(swar::equal_to(x, ':')) == lane);
      }
    }
  }
}

TEST_CASE("swar: find_each visits every occurrence in order, at any length and alignment") {
  for (std::size_t length = 0; length <= 70; ++length) {
    for (std::size_t period : {1, 2, 3, 7, 16, 17}) {
      std::string text(length, 'a');
      std::vector<std::size_t> expected;
      for (std::size_t i = 0; i < length; i += period) {
        text[i] = ':';
        expected.push_back(i);
      }
      std::vector<std::size_t> seen;
      CHECK_FALSE(swar::find_each(text, ':', [&](std::size_t at) {
        seen.push_back(at);
        return false;
      }));
      CAPTURE(length);
      CAPTURE(period);
      CHECK(seen == expected);
      if (!expected.empty()) {
        std::size_t calls = 0;
        CHECK(swar::find_each(text, ':', [&](std::size_t at) { return ++calls, at == expected.back(); }));
        CHECK(calls == expected.size());  // stops at the first true
      }
    }
  }
}
