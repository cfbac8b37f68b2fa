#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace tollgate::core {

// Incremental newline-delimited JSON framing (Ollama's streaming body). Framing only: it never
// looks inside a line, so it needs no JSON library; the adapter decodes the payload.
// Not thread-safe; one per stream.
//
// A line ends at LF. One CR right before that LF is dropped (CRLF tolerated); a CR anywhere
// else is content. Lines that are empty or only spaces, tabs and CRs are skipped: they carry no
// JSON text, and a keep-alive newline must not reach the decoder as a malformed line.
//
// Lifetime: the view passed to on_line is valid only during that call. When a whole line lies
// inside one feed() input it points into that input (no copy); otherwise into the parser's own
// buffer.
//
// A line whose content (terminator excluded) is longer than max_line_bytes is discarded and
// counted as soon as the limit is crossed, so a stream cut off inside it still shows it. The
// buffer never holds more than max_line_bytes + 1 bytes (the extra byte is a CR that may turn
// out to be the first half of a CRLF).
//
// on_line must not throw and must not call back into this parser; if it throws anyway, call
// reset() before using the parser again.
class ndjson_parser {
 public:
  explicit ndjson_parser(std::size_t max_line_bytes = 1 << 20);

  // Calls on_line(std::string_view) for every complete non-blank line, in order.
  template <class OnLine>
  void feed(std::string_view bytes, OnLine&& on_line) {
    feed_erased(bytes, make_sink(on_line));
  }

  // End of stream. A last line without its LF is emitted all the same: a provider that omits
  // the final newline still sent a whole JSON value, and the decoder is the judge of that.
  // Returns true when the stream ended on a line boundary (nothing but blanks pending and no
  // oversized line in progress); false tells the relay the body may have been truncated.
  // Either way the parser is ready for a new stream; oversized_lines() keeps counting.
  template <class OnLine>
  bool finish(OnLine&& on_line) {
    return finish_erased(make_sink(on_line));
  }

  // Lines discarded for exceeding max_line_bytes.
  std::size_t oversized_lines() const noexcept { return oversized_; }
  std::size_t buffered_bytes() const noexcept { return buffer_.size(); }  // partial line held now
  void reset() noexcept;  // back to a fresh stream, counter zeroed

 private:
  // Type-erased callback so the framing code lives in the .cpp, not in every caller.
  struct sink {
    void* target;
    void (*call)(void* target, std::string_view line);
  };
  template <class F>
  static sink make_sink(F& f) noexcept {
    return sink{const_cast<void*>(static_cast<const void*>(std::addressof(f))),
                [](void* target, std::string_view line) {
                  (*static_cast<std::remove_reference_t<F>*>(target))(line);
                }};
  }

  void feed_erased(std::string_view bytes, sink on_line);
  bool finish_erased(sink on_line);
  void complete_line(std::string_view rest, sink on_line);
  void hold_tail(std::string_view tail);
  void reset_stream() noexcept;

  std::size_t max_line_bytes_;
  std::size_t oversized_ = 0;
  std::string buffer_;       // bytes of the incomplete line seen in earlier feeds
  bool discarding_ = false;  // inside an oversized line: skip to its LF, keep nothing
};

}  // namespace tollgate::core
