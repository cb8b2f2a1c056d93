// Tests of weir::internal::SpscRing: the bounded ring between two workers of
// an exchange.

#include "weir/internal/spsc_ring.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace weir::internal {
namespace {

TEST(SpscRingTest, CapacityIsRoundedUpToAPowerOfTwoOfAtLeastTwo) {
  EXPECT_EQ(SpscRing<int>(0).capacity(), 2u);
  EXPECT_EQ(SpscRing<int>(1).capacity(), 2u);
  EXPECT_EQ(SpscRing<int>(2).capacity(), 2u);
  EXPECT_EQ(SpscRing<int>(3).capacity(), 4u);
  EXPECT_EQ(SpscRing<int>(4).capacity(), 4u);
  EXPECT_EQ(SpscRing<int>(5).capacity(), 8u);
  EXPECT_EQ(SpscRing<int>(64).capacity(), 64u);
  EXPECT_EQ(SpscRing<int>(65).capacity(), 128u);
  EXPECT_EQ(SpscRing<int>(1000).capacity(), 1024u);
}

TEST(SpscRingTest, HoldsExactlyCapacityElements) {
  for (size_t requested : {1u, 2u, 3u, 7u, 8u, 100u}) {
    SpscRing<int> ring(requested);
    const size_t capacity = ring.capacity();
    for (size_t idx = 0; idx < capacity; ++idx) {
      int value = static_cast<int>(idx);
      ASSERT_TRUE(ring.TryPush(value)) << "requested " << requested << ", push " << idx;
      EXPECT_EQ(ring.SizeApprox(), idx + 1);
    }
    int extra = -1;
    EXPECT_FALSE(ring.TryPush(extra)) << "requested " << requested;
    EXPECT_EQ(ring.SizeApprox(), capacity);
  }
}

TEST(SpscRingTest, EmptyRingPopsNothingAndLeavesOutputUntouched) {
  SpscRing<std::string> ring(4);
  std::string out = "unchanged";
  EXPECT_FALSE(ring.TryPop(out));
  EXPECT_EQ(out, "unchanged");
  EXPECT_EQ(ring.SizeApprox(), 0u);

  std::string value = "a";
  ASSERT_TRUE(ring.TryPush(value));
  ASSERT_TRUE(ring.TryPop(out));
  EXPECT_EQ(out, "a");
  out = "unchanged";
  EXPECT_FALSE(ring.TryPop(out));
  EXPECT_EQ(out, "unchanged");
}

TEST(SpscRingTest, FullRingRejectsPushAndLeavesValueUntouched) {
  SpscRing<std::unique_ptr<std::string>> ring(2);
  auto first = std::make_unique<std::string>("first");
  auto second = std::make_unique<std::string>("second");
  ASSERT_TRUE(ring.TryPush(first));
  ASSERT_TRUE(ring.TryPush(second));
  EXPECT_EQ(first, nullptr);  // moved into the ring
  EXPECT_EQ(second, nullptr);

  auto rejected = std::make_unique<std::string>("rejected");
  const std::string* rejected_raw = rejected.get();
  EXPECT_FALSE(ring.TryPush(rejected));
  ASSERT_NE(rejected, nullptr);
  EXPECT_EQ(rejected.get(), rejected_raw);
  EXPECT_EQ(*rejected, "rejected");

  std::string plain = "not moved";
  SpscRing<std::string> strings(1);
  std::string filler = "filler";
  ASSERT_TRUE(strings.TryPush(filler));
  ASSERT_TRUE(strings.TryPush(filler));
  EXPECT_FALSE(strings.TryPush(plain));
  EXPECT_EQ(plain, "not moved");

  // Popping one frees exactly one slot.
  std::unique_ptr<std::string> out;
  ASSERT_TRUE(ring.TryPop(out));
  EXPECT_EQ(*out, "first");
  EXPECT_TRUE(ring.TryPush(rejected));
  EXPECT_EQ(rejected, nullptr);
  auto another = std::make_unique<std::string>("another");
  EXPECT_FALSE(ring.TryPush(another));
  EXPECT_NE(another, nullptr);
}

TEST(SpscRingTest, PopsInFifoOrderAcrossWrapAround) {
  SpscRing<int> ring(4);
  int next_push = 0;
  int next_pop = 0;
  // Interleave pushes and pops with varying fill levels so the indexes wrap
  // around the slots many times.
  for (int round = 0; round < 1000; ++round) {
    const int pushes = 1 + round % 4;
    for (int idx = 0; idx < pushes; ++idx) {
      int value = next_push;
      if (!ring.TryPush(value)) break;
      ++next_push;
    }
    const int pops = 1 + (round * 7) % 4;
    for (int idx = 0; idx < pops; ++idx) {
      int out = -1;
      if (!ring.TryPop(out)) break;
      ASSERT_EQ(out, next_pop);
      ++next_pop;
    }
    ASSERT_EQ(ring.SizeApprox(), static_cast<size_t>(next_push - next_pop));
  }
  int out = -1;
  while (ring.TryPop(out)) {
    ASSERT_EQ(out, next_pop);
    ++next_pop;
  }
  EXPECT_EQ(next_pop, next_push);
  EXPECT_GT(next_push, 1000);
}

// One producer and one consumer thread, both spinning (never blocking) on a
// small ring: every value arrives exactly once and in order.
TEST(SpscRingTest, TwoThreadStressKeepsOrder) {
  constexpr int64_t kCount = 1'000'000;
  SpscRing<int64_t> ring(64);
  std::atomic<bool> rejected_value_changed{false};

  std::thread producer([&] {
    for (int64_t next = 0; next < kCount;) {
      int64_t value = next;
      if (ring.TryPush(value)) {
        ++next;
      } else {
        // A rejected push leaves the value untouched.
        if (value != next) rejected_value_changed.store(true);
        std::this_thread::yield();
      }
    }
  });

  int64_t expected = 0;
  int64_t mismatches = 0;
  int64_t first_mismatch = -1;
  while (expected < kCount) {
    int64_t out = -1;
    if (!ring.TryPop(out)) {
      std::this_thread::yield();
      continue;
    }
    if (out != expected) {
      if (first_mismatch < 0) first_mismatch = expected;
      ++mismatches;
    }
    ++expected;
  }
  producer.join();

  EXPECT_EQ(mismatches, 0) << "first out-of-order value at position " << first_mismatch;
  EXPECT_FALSE(rejected_value_changed.load());
  int64_t leftover = -1;
  EXPECT_FALSE(ring.TryPop(leftover));
  EXPECT_EQ(ring.SizeApprox(), 0u);
}

}  // namespace
}  // namespace weir::internal
