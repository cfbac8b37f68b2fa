#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

// Eight bytes at a time in a plain 64-bit integer, for scans over text in which most bytes are
// uninteresting: header values, JSON, log fields. Each mask has the high bit set in exactly the
// bytes that match, so the first match is found from the mask directly.
namespace tollgate::core::swar {

static_assert(std::endian::native == std::endian::little, "byte order of first_match");

inline constexpr std::uint64_t ones = 0x0101010101010101ULL;
inline constexpr std::uint64_t highs = 0x8080808080808080ULL;
inline constexpr std::uint64_t lows = ~highs;

inline std::uint64_t load(const char* p) noexcept {
  std::uint64_t x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

// Bytes equal to c.
inline std::uint64_t equal_to(std::uint64_t x, unsigned char c) noexcept {
  const std::uint64_t t = x ^ (ones * c);
  return ~(((t & lows) + lows) | t | lows);
}

// Bytes below n (n at most 0x80). Adding 0x80 - n to the low seven bits sets a byte's high bit
// exactly when they are n or more, and no sum carries into the next byte.
inline std::uint64_t below(std::uint64_t x, unsigned char n) noexcept {
  return ~(((x & lows) + ones * static_cast<unsigned char>(0x80 - n)) | x) & highs;
}

// The offset of the first matching byte of a non-zero mask.
inline unsigned first_match(std::uint64_t mask) noexcept { return static_cast<unsigned>(std::countr_zero(mask)) >> 3; }

}  // namespace tollgate::core::swar
