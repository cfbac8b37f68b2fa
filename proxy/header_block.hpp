#pragma once

#include "core/http_head.hpp"
#include "proxy/asio.hpp"

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::proxy {

// One header line of a message tollgate received.
class header_field {
 public:
  header_field(core::header_name code, std::string_view name, std::string_view value) noexcept
      : code_(code), name_(name), value_(value) {}
  core::header_name name() const noexcept { return code_; }  // header_name::other for most
  std::string_view name_string() const noexcept { return name_; }  // as sent
  std::string_view value() const noexcept { return value_; }

 private:
  core::header_name code_;
  std::string_view name_;
  std::string_view value_;
};

// A received message's head: its header lines as a flat list over one copy of the head's text.
// Beast's fields keep every line in its own node of a list and of an ordered index; a message
// tollgate receives is read once and scanned a few times, never edited. Reused from message to
// message on a connection, so after the first it allocates nothing.
class header_block {
 public:
  // Starts the next message, keeping the memory, with room for `text_bytes` of kept text.
  void reset(std::size_t text_bytes) {
    text_.clear();
    text_.reserve(text_bytes);
    fields_.clear();
  }
  // A copy of `text` that lives as long as this message: what every view in the block points
  // into. The total kept must stay within the text_bytes given to reset(), so earlier views
  // stay valid.
  std::string_view keep(std::string_view text) noexcept {
    const std::size_t at = text_.size();
    text_.append(text);
    return std::string_view(text_).substr(at);
  }
  void add(core::header_name id, std::string_view name, std::string_view value) { fields_.emplace_back(id, name, value); }

  // Starts the next message with a head core/http_head read: a copy of its text, and its
  // header lines as views into the copy. Returns what moves any other view into `text` (the
  // start line's parts) to the copy: the original is a read buffer the next read may reuse.
  auto adopt(std::string_view text, const core::header_lines& lines) {
    reset(text.size());
    auto moved = [copy = keep(text).data(), from = text.data()](std::string_view view) noexcept {
      return std::string_view(copy + (view.data() - from), view.size());
    };
    for (std::size_t i = 0; i < lines.count; ++i) {
      const auto& line = lines.lines[i];
      add(line.id, moved(line.name), moved(line.value));
    }
    return moved;
  }

  // A head Beast parsed (the shapes core/http_head leaves alone): the text its lines need
  // kept, and then the lines themselves, named as the plain reader names them.
  template <class Fields>
  static std::size_t text_bytes_of(const Fields& parsed) noexcept {
    std::size_t bytes = 0;
    for (const auto& f : parsed) bytes += f.name_string().size() + f.value().size();
    return bytes;
  }
  template <class Fields>
  void add_parsed(const Fields& parsed) {
    for (const auto& f : parsed) add(core::classify_header(f.name_string()), keep(f.name_string()), keep(f.value()));
  }

  std::span<const header_field> fields() const noexcept { return fields_; }
  // The first value of a header, or "" when absent.
  std::string_view value_of(core::header_name name) const noexcept {
    for (const auto& f : fields_)
      if (f.name() == name) return f.value();
    return {};
  }
  bool has(std::string_view name) const noexcept {
    for (const auto& f : fields_)
      if (beast::iequals(f.name_string(), name)) return true;
    return false;
  }

 private:
  std::string text_;
  std::vector<header_field> fields_;
};

}  // namespace tollgate::proxy
