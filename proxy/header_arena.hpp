#pragma once

#include "proxy/asio.hpp"

#include <array>
#include <cstddef>
#include <new>

namespace tollgate::proxy {

// Memory for the header fields Beast parses on a client's connection: the upstream response's,
// and a request's when it was not the plain shape (see request_reader). Beast's fields
// allocate every header line separately; served from here, a dozen or so lines cost no malloc. Owned by the client's connection; everything allocated from it is
// freed by the end of each request, which starts it over. Requests whose headers do not fit
// fall back to the heap for the excess.
class header_arena {
 public:
  header_arena() = default;
  header_arena(const header_arena&) = delete;
  header_arena& operator=(const header_arena&) = delete;

  void* allocate(std::size_t bytes, std::size_t alignment) {
    std::size_t start = (used_ + alignment - 1) & ~(alignment - 1);
    if (alignment <= alignof(std::max_align_t) && start + bytes <= storage_.size()) {
      used_ = start + bytes;
      ++live_;
      return storage_.data() + start;
    }
    return ::operator new(bytes, std::align_val_t(alignment));
  }

  void deallocate(void* pointer, std::size_t bytes, std::size_t alignment) noexcept {
    auto* p = static_cast<std::byte*>(pointer);
    if (p >= storage_.data() && p < storage_.data() + storage_.size()) {
      if (--live_ == 0) used_ = 0;
      return;
    }
    ::operator delete(pointer, bytes, std::align_val_t(alignment));
  }

 private:
  alignas(std::max_align_t) std::array<std::byte, 8 * 1024> storage_;
  std::size_t used_ = 0;
  std::size_t live_ = 0;
};

template <class T>
class arena_allocator {
 public:
  using value_type = T;

  explicit arena_allocator(header_arena& arena) noexcept : arena_(&arena) {}
  template <class U>
  arena_allocator(const arena_allocator<U>& other) noexcept : arena_(other.arena()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(arena_->allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* pointer, std::size_t n) noexcept { arena_->deallocate(pointer, n * sizeof(T), alignof(T)); }

  header_arena* arena() const noexcept { return arena_; }
  friend bool operator==(const arena_allocator& a, const arena_allocator& b) noexcept { return a.arena_ == b.arena_; }

 private:
  header_arena* arena_;
};

// The data plane's HTTP messages keep their header fields in the connection's arena.
using arena_fields = http::basic_fields<arena_allocator<char>>;

}  // namespace tollgate::proxy
