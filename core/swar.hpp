#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Many bytes at a time, for scans over text in which most bytes are uninteresting: header
// values, JSON, log fields. The masks below work on eight bytes in a plain 64-bit integer; each
// has the high bit set in exactly the bytes that match, so the first match is found from the
// mask directly. block16 does the same sixteen bytes at a time.
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

// A mask's eight high bits as bits 0..7, byte 0's first. The multiply moves each byte's bit to
// the top byte, each to its own place, and no two partial products overlap, so none carries.
inline unsigned gather_highs(std::uint64_t mask) noexcept {
  return static_cast<unsigned>(((mask >> 7) * 0x0102040810204080ULL) >> 56);
}

// Sixteen bytes loaded once and matched against several characters: each match is a 16-bit
// mask with bit i set when byte i matches. SSE2 where there is SSE2 (every x86-64), else the
// same masks built from two 64-bit words.
class block16 {
 public:
  static constexpr std::size_t size = 16;

  explicit block16(const char* p) noexcept {
#if defined(__SSE2__)
    bytes_ = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
#else
    low_ = load(p);
    high_ = load(p + 8);
#endif
  }

  unsigned equal_to(char c) const noexcept {
#if defined(__SSE2__)
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes_, _mm_set1_epi8(c))));
#else
    const auto byte = static_cast<unsigned char>(c);
    return gather_highs(swar::equal_to(low_, byte)) | gather_highs(swar::equal_to(high_, byte)) << 8;
#endif
  }

  // Bytes from lo to hi, with 0 <= lo <= hi < 0x7f; bytes of 0x80 and up are never in range.
  unsigned in_range(char lo, char hi) const noexcept {
#if defined(__SSE2__)
    // Signed compares: the bytes from 0x80 up are negative, below any ASCII bound.
    const __m128i from_lo = _mm_cmpgt_epi8(bytes_, _mm_set1_epi8(static_cast<char>(lo - 1)));
    const __m128i to_hi = _mm_cmplt_epi8(bytes_, _mm_set1_epi8(static_cast<char>(hi + 1)));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(from_lo, to_hi)));
#else
    auto half = [lo, hi](std::uint64_t x) {
      return gather_highs(below(x, static_cast<unsigned char>(hi + 1)) & ~below(x, static_cast<unsigned char>(lo)));
    };
    return half(low_) | half(high_) << 8;
#endif
  }

  // The same bytes with bit 0x20 set: ASCII letters in lower case.
  block16 lower_cased() const noexcept {
    block16 out = *this;
#if defined(__SSE2__)
    out.bytes_ = _mm_or_si128(bytes_, _mm_set1_epi8(0x20));
#else
    out.low_ |= ones * 0x20;
    out.high_ |= ones * 0x20;
#endif
    return out;
  }

 private:
#if defined(__SSE2__)
  __m128i bytes_;
#else
  std::uint64_t low_, high_;
#endif
};

// Bit i of the result is the parity of bits 0..i of a 16-bit mask: with the mask of a block's
// quotes, the bytes that lie inside a string opened in this block.
inline unsigned prefix_parity16(unsigned mask) noexcept {
  mask ^= mask << 1;
  mask ^= mask << 2;
  mask ^= mask << 4;
  mask ^= mask << 8;
  return mask & 0xFFFFu;
}

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
