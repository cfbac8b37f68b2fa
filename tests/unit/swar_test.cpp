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

TEST_CASE("swar: block16 masks every matching byte of sixteen, at every lane") {
  for (unsigned lane = 0; lane < 16; ++lane) {
    for (unsigned char filler : {0x00, 0x22, 0x5c, 0x7f, 0x80, 0xff}) {
      char bytes[16];
      for (char& b : bytes) b = static_cast<char>(filler);
      bytes[lane] = '"';
      const swar::block16 block(bytes);
      CAPTURE(lane);
      CAPTURE(static_cast<unsigned>(filler));
      const unsigned expected = filler == '"' ? 0xFFFFu : 1u << lane;
      CHECK(block.equal_to('"') == expected);
      CHECK(block.equal_to(static_cast<char>(filler)) == (0xFFFFu & ~(filler == '"' ? 0u : 1u << lane)));
    }
  }
}

TEST_CASE("swar: gather_highs packs each byte's high bit into its own bit") {
  for (unsigned bits = 0; bits < 256; ++bits) {
    std::uint64_t mask = 0;
    for (unsigned lane = 0; lane < 8; ++lane)
      if (bits & (1u << lane)) mask |= 0x80ULL << (8 * lane);
    CAPTURE(bits);
    CHECK(swar::gather_highs(mask) == bits);
  }
}

TEST_CASE("swar: prefix_parity16 is the running parity of the mask's bits") {
  for (unsigned mask = 0; mask <= 0xFFFFu; mask += 7) {
    unsigned expected = 0;
    bool parity = false;
    for (unsigned bit = 0; bit < 16; ++bit) {
      parity ^= ((mask >> bit) & 1u) != 0;
      if (parity) expected |= 1u << bit;
    }
    CAPTURE(mask);
    REQUIRE(swar::prefix_parity16(mask) == expected);
  }
}
