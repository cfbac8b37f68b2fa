#pragma once

#include "core/inline_buffer.hpp"
#include "core/ledger_record.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace tollgate::storage::detail {

// A ledger record as it travels from a worker's ring to the writer: all its text packed into
// one buffer with inline room for a typical row (a request id, fingerprint, provider, model
// and route reason come to under 100 bytes). Filling one then costs the worker no allocation,
// and the writer no free of memory another thread allocated. A row with more text takes one
// heap block.
class packed_record {
 public:
  // Throws std::bad_alloc (heap exhausted) or std::length_error (text beyond 4 GiB), leaving
  // the record unspecified but valid.
  void assign(const core::ledger_record_view& record) {
    std::size_t total = 0;
    core::for_each_text(record, [&](std::string_view text) { total += text.size(); });
    if (total > std::numeric_limits<std::uint32_t>::max()) throw std::length_error("ledger record text");
    text_.clear();
    text_.reserve(total);
    fields_ = core::convert_text<span>(record, [&](std::string_view text) {
      const span at{static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(text.size())};
      text_.append(text);
      return at;
    });
  }

  std::int64_t time_ms() const noexcept { return fields_.time_ms; }

  // Valid until this record is next assigned, moved from or destroyed.
  core::ledger_record_view view() const noexcept {
    const std::string_view text = text_.view();
    return core::convert_text<std::string_view>(
        fields_, [&](span at) noexcept { return std::string_view(text.data() + at.offset, at.size); });
  }

 private:
  struct span {
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
  };

  // 224 bytes keep the whole record at 384, six cache lines, about what the eight strings of
  // a core::ledger_record took.
  static constexpr std::size_t inline_text = 224;

  core::basic_ledger_record<span> fields_;
  core::inline_buffer<inline_text> text_;
};

}  // namespace tollgate::storage::detail
