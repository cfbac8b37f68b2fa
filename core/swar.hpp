#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Many bytes at a time, for scans over text in which most bytes are uninteresting: header
// values, JSON, log fields. The masks work on eight bytes in a plain 64-bit integer; each has
// the high bit set in exactly the bytes that match, so the first match is found from the mask
// directly.
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

// Calls visit(position) for each occurrence of c in text, in order, until it returns true;
// returns whether one did. For a byte that occurs a dozen times in a few hundred: memchr per
// occurrence pays its call and set-up each time, this pays one compare per 16 bytes.
template <class Visit>
bool find_each(std::string_view text, char c, Visit&& visit) {
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const char* p = begin;
#if defined(__SSE2__)
  const __m128i wanted = _mm_set1_epi8(c);
  for (; end - p >= 16; p += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    for (auto hits = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, wanted))); hits != 0;
         hits &= hits - 1) {
      if (visit(static_cast<std::size_t>(p - begin) + static_cast<unsigned>(std::countr_zero(hits)))) return true;
    }
  }
#endif
  for (; (p = static_cast<const char*>(std::memchr(p, c, static_cast<std::size_t>(end - p)))) != nullptr; ++p)
    if (visit(static_cast<std::size_t>(p - begin))) return true;
  return false;
}

}  // namespace tollgate::core::swar
