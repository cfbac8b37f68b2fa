#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace tollgate::core {

// Bytes kept inside the object up to N, on the heap beyond. For per-request text that is
// nearly always short: the common case costs no allocation, and nothing to free on whichever
// thread ends up with the object (glibc's cross-thread free is the expensive kind). A
// moved-from buffer is empty and inline, ready for reuse.
template <std::size_t N>
class inline_buffer {
 public:
  inline_buffer() noexcept = default;
  inline_buffer(const inline_buffer& other) { append(other.view()); }
  inline_buffer(inline_buffer&& other) noexcept { take(other); }
  inline_buffer& operator=(const inline_buffer& other) {
    if (this != &other) {
      clear();
      append(other.view());
    }
    return *this;
  }
  inline_buffer& operator=(inline_buffer&& other) noexcept {
    if (this != &other) {
      heap_.reset();
      capacity_ = N;
      take(other);
    }
    return *this;
  }

  std::string_view view() const noexcept { return {data(), size_}; }
  const char* data() const noexcept { return heap_ ? heap_.get() : local_.data(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return capacity_; }

  // At most one allocation, and none up to N. Throws std::bad_alloc with the contents unchanged.
  void reserve(std::size_t capacity) {
    if (capacity <= capacity_) return;
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(bigger.get(), data(), size_);
    heap_ = std::move(bigger);
    capacity_ = capacity;
  }

  // Throws std::bad_alloc with the contents unchanged.
  void append(std::string_view bytes) {
    if (bytes.empty()) return;  // data() may be null, which memcpy must not see
    if (bytes.size() > capacity_ - size_) reserve(std::max(size_ + bytes.size(), 2 * capacity_));
    std::memcpy(writable() + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }

  // Keeps the capacity, a heap block included: a reused buffer stops allocating once warm.
  void clear() noexcept { size_ = 0; }

 private:
  char* writable() noexcept { return heap_ ? heap_.get() : local_.data(); }

  // Leaves `other` empty and inline.
  void take(inline_buffer& other) noexcept {
    if (other.heap_) {
      heap_ = std::move(other.heap_);
      capacity_ = other.capacity_;
    } else if (other.size_ != 0) {
      std::memcpy(local_.data(), other.local_.data(), other.size_);
    }
    size_ = other.size_;
    other.size_ = 0;
    other.capacity_ = N;
  }

  std::unique_ptr<char[]> heap_;
  std::size_t size_ = 0;
  std::size_t capacity_ = N;
  std::array<char, N> local_;  // not initialised: only [0, size_) is ever read
};

}  // namespace tollgate::core
