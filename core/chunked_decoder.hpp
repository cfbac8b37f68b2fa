#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tollgate::core {

// Undoes the chunked transfer coding (RFC 9112, section 7.1) of a body that arrives in pieces
// split anywhere. Chunk extensions and trailer fields are read past and dropped: the relay
// frames what it forwards itself and has no use for them.
class chunked_decoder {
 public:
  enum class status : std::uint8_t {
    more,     // all of the input was used; the body goes on
    done,     // the last chunk and the trailer section are read; bytes after them are not used
    invalid,  // not chunked coding (or a chunk line or trailer section past its limit)
  };
  struct step {
    std::size_t consumed = 0;  // of the input
    status what = status::more;
  };

  // Appends the chunk data found in `input` to `out`.
  step decode(std::string_view input, std::string& out);

 private:
  enum class state : std::uint8_t {
    size, extension, size_lf, data, data_cr, data_lf, trailer_start, trailer_line, trailer_lf, last_lf, done,
  };
  // A chunk-size of more hex digits would not fit; extensions and trailers are rare and short.
  static constexpr unsigned max_size_digits = 15;
  static constexpr std::size_t max_extension_bytes = 4 * 1024;
  static constexpr std::size_t max_trailer_bytes = 16 * 1024;

  state state_ = state::size;
  unsigned size_digits_ = 0;
  std::uint64_t remaining_ = 0;  // of the current chunk's data
  std::size_t line_bytes_ = 0;   // of the current chunk's extensions, or of the trailer section
};

}  // namespace tollgate::core
