#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace tollgate::core {

// One block of a text/event-stream: everything up to and including the blank line that ends
// it. The relay forwards `raw` untouched, so it is the source of truth; the field views are a
// parsed reading of it for the code that needs to look inside.
struct sse_event {
  std::string_view raw;    // exact bytes of this block, including its terminating blank line
  std::string_view event;  // value of the last "event:" field, "" if none
  std::string_view data;   // "data:" lines joined with '\n' (one leading space after ':' removed);
                           // a single line's is a view into raw
  std::string_view id;     // last "id:" field ("" if none; ignored if it contains NUL, per WHATWG)
  bool has_data = false;   // at least one data line; comment-only and empty blocks have false
  bool is_done() const noexcept { return has_data && data == "[DONE]"; }
};

// Incremental SSE framing. Not thread-safe; one per stream.
//
// Lifetime: every view in the sse_event passed to on_event is valid only during that call.
// When a whole block lies inside one feed() input, `raw` (and single-line `data`) point into
// that input; otherwise they point into the parser's own buffers.
//
// A block whose blank line ends in CR as the very last byte of a feed() is held until the
// next byte is seen: the CR may be the first half of a CRLF, and the LF belongs to that
// block's raw bytes. The next feed() (or finish(on_event)) emits it.
//
// Blocks that are nothing but blank lines (e.g. the stray "\n" in "data: a\n\n\n") are
// emitted too, with has_data == false, so that concatenating every raw reproduces the stream.
//
// on_event must not throw and must not call back into this parser; if it throws anyway,
// call reset() before using the parser again.
class sse_parser {
 public:
  explicit sse_parser(std::size_t max_event_bytes = 1 << 20);

  // Calls on_event(const sse_event&) for every complete block, in order.
  template <class OnEvent>
  void feed(std::string_view bytes, OnEvent&& on_event) {
    feed_erased(bytes, make_sink(on_event));
  }

  // End of stream. Emits a block held for a possible LF (see above), then returns true when
  // nothing partial was pending (a clean end). A trailing incomplete block is discarded.
  // Either way the parser is ready for a new stream (BOM detection re-armed);
  // oversized_events() keeps counting.
  template <class OnEvent>
  bool finish(OnEvent&& on_event) {
    return finish_erased(make_sink(on_event));
  }
  // As above but with nowhere to emit: a held block is discarded and counts as not clean.
  // Prefer finish(on_event).
  bool finish() noexcept;

  // Blocks discarded for exceeding max_event_bytes (counted when the limit is crossed).
  std::size_t oversized_events() const noexcept { return oversized_; }
  std::size_t buffered_bytes() const noexcept;  // bytes of the incomplete block held right now
  void reset() noexcept;                        // back to a fresh stream, counter zeroed

 private:
  // Type-erased callback so the parsing code lives in the .cpp, not in every caller.
  struct sink {
    void* target;
    void (*call)(void* target, const sse_event& event);
  };
  template <class F>
  static sink make_sink(F& f) noexcept {
    return sink{const_cast<void*>(static_cast<const void*>(std::addressof(f))),
                [](void* target, const sse_event& event) {
                  (*static_cast<std::remove_reference_t<F>*>(target))(event);
                }};
  }

  void feed_erased(std::string_view bytes, sink on_event);
  bool finish_erased(sink on_event);
  void scan(std::string_view in, sink on_event);
  void emit_block(std::string_view in, std::size_t begin, std::size_t end, sink on_event);
  void hold_tail(std::string_view tail);
  void dispatch(std::string_view raw, sink on_event);
  bool dispatch_data_line(std::string_view raw, sink on_event);
  void reset_stream() noexcept;

  std::size_t max_event_bytes_;
  std::size_t oversized_ = 0;
  std::string buffer_;  // raw bytes of the incomplete block seen in earlier feeds
  std::string joined_;  // multi-line data, reused across events
  std::size_t bom_matched_ = 0;
  bool bom_decided_ = false;
  bool at_line_start_ = true;  // the last byte ended a line (or nothing seen in this block yet)
  bool after_cr_ = false;      // the last byte was a CR: an LF next is part of the same terminator
  bool held_ = false;          // block complete except for a possible LF after its final CR
  bool discarding_ = false;    // inside an oversized block: skip to its end, keep nothing
  // What scan() saw of the block in progress: a block of one line and no CR ("data: x\n\n",
  // nearly every event of a real stream) needs no line splitting.
  std::size_t block_lines_ = 0;
  bool block_has_cr_ = false;
};

}  // namespace tollgate::core
