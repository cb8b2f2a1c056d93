// A bounded single-producer/single-consumer ring: the channel between one
// worker and another in an exchange. Internal.
//
// Thread-safety: exactly one thread calls TryPush and exactly one (possibly
// different) thread calls TryPop/Empty. Neither call ever blocks.

#ifndef WEIR_INTERNAL_SPSC_RING_H_
#define WEIR_INTERNAL_SPSC_RING_H_

#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>
#include <utility>

namespace weir::internal {

inline constexpr size_t kCacheLine = 64;

template <class T>
class SpscRing {
 public:
  // Capacity is rounded up to a power of two (at least 2).
  explicit SpscRing(size_t capacity)
      : capacity_(std::bit_ceil(capacity < 2 ? size_t{2} : capacity)),
        mask_(capacity_ - 1),
        slots_(std::make_unique<T[]>(capacity_)) {}

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  size_t capacity() const { return capacity_; }

  // Moves `value` in and returns true, or returns false (value untouched) when full.
  bool TryPush(T& value) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ == capacity_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ == capacity_) return false;
    }
    slots_[tail & mask_] = std::move(value);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Moves the oldest element into `out` and returns true, or returns false when empty.
  bool TryPop(T& out) {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return false;
    }
    out = std::move(slots_[head & mask_]);
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  // Approximate number of elements (exact when called by either endpoint while the other is idle).
  size_t SizeApprox() const {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  const size_t capacity_;
  const size_t mask_;
  std::unique_ptr<T[]> slots_;
  // Consumer side.
  alignas(kCacheLine) std::atomic<size_t> head_{0};
  size_t tail_cache_ = 0;
  // Producer side.
  alignas(kCacheLine) std::atomic<size_t> tail_{0};
  size_t head_cache_ = 0;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_SPSC_RING_H_
