#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace tollgate::storage {

// Bounded single-producer single-consumer ring. Each proxy worker owns one, so a submit is
// two relaxed/acquire loads, a copy into a preallocated slot and one release store: no lock,
// no syscall, no contention with other workers or with the writer thread.
template <typename T>
class spsc_ring {
 public:
  explicit spsc_ring(std::size_t capacity) : slots_(round_up(capacity)), mask_(slots_.size() - 1) {}

  spsc_ring(const spsc_ring&) = delete;
  spsc_ring& operator=(const spsc_ring&) = delete;

  std::size_t capacity() const noexcept { return slots_.size(); }

  // Producer only. Returns the depth after the push (exact from half full up, an upper bound
  // below), or 0 when the ring is full or copying the value failed to allocate: the caller
  // counts that as a drop.
  std::size_t try_push(const T& value) noexcept {
    return try_write([&value](T& slot) { slot = value; });
  }

  // Producer only. As try_push, but fills the slot in place with write(T& slot): the slot
  // still holds whatever the consumer's move left in it, so write must assign all of it. A
  // throw leaves the slot unpublished and returns 0.
  template <typename Write>
  std::size_t try_write(Write&& write) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - cached_head_ >= slots_.size()) {
      // Only refresh the shared head when our cached view says full: keeps the consumer's
      // cache line out of the producer's fast path.
      cached_head_ = head_.load(std::memory_order_acquire);
      if (tail - cached_head_ >= slots_.size()) return 0;
    }
    try {
      write(slots_[tail & mask_]);
    } catch (...) {
      return 0;  // the slot is not published, so a half-written value is harmless
    }
    tail_.store(tail + 1, std::memory_order_release);
    std::size_t depth = static_cast<std::size_t>(tail + 1 - cached_head_);
    // The cached head only moves when the ring looks full, so this estimate only grows; past
    // half, refresh it so callers waking the consumer at half full see the real depth.
    if (depth >= slots_.size() / 2) {
      cached_head_ = head_.load(std::memory_order_acquire);
      depth = static_cast<std::size_t>(tail + 1 - cached_head_);
    }
    // The consumer may already have taken this very element; 0 must keep meaning "refused".
    return depth == 0 ? 1 : depth;
  }

  // Consumer only. Moves every published element, or the first `limit` of them, into sink;
  // returns how many. A consumer that must make room for them first asks size() and passes
  // it as the limit, since the producer may publish more in between.
  template <typename Sink>
  std::size_t drain(Sink&& sink, std::size_t limit = static_cast<std::size_t>(-1)) {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t published = tail_.load(std::memory_order_acquire);
    const std::uint64_t tail = published - head > limit ? head + limit : published;
    for (std::uint64_t i = head; i != tail; ++i) sink(std::move(slots_[i & mask_]));
    head_.store(tail, std::memory_order_release);
    return static_cast<std::size_t>(tail - head);
  }

  // Any thread; approximate while both sides run, exact once they are quiet.
  std::size_t size() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    return tail >= head ? static_cast<std::size_t>(tail - head) : 0;
  }

 private:
  static std::size_t round_up(std::size_t n) {
    std::size_t p = 2;
    while (p < n) p <<= 1;
    return p;
  }

  // 64 rather than hardware_destructive_interference_size: GCC warns that the latter is not
  // ABI-stable, and 64 is right on every x86-64 and most ARM64 parts we deploy on.
  static constexpr std::size_t line = 64;

  std::vector<T> slots_;
  const std::size_t mask_;
  alignas(line) std::atomic<std::uint64_t> head_{0};  // written by the consumer
  alignas(line) std::atomic<std::uint64_t> tail_{0};  // written by the producer
  std::uint64_t cached_head_ = 0;                      // producer-private
};

}  // namespace tollgate::storage
