// Backpressure through exchanges: a slow consumer bounds how far the sources
// run ahead, and tiny rings never deadlock.

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

// Records counted on their way in (right after the source) and out (at the
// sink), and the largest gap between the two the sink ever saw.
struct FlowCounters {
  std::atomic<int64_t> emitted{0};
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> max_in_flight{0};
  std::atomic<int64_t> sum{0};
};

// A sink that sleeps after every batch, recording how many records were
// between the source and itself when each batch arrived.
class SlowSink final : public Sink<int> {
 public:
  SlowSink(std::shared_ptr<FlowCounters> counters, absl::Duration per_batch)
      : counters_(std::move(counters)), per_batch_(per_batch) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<int>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<int>>(new Writer(counters_, per_batch_));
  }

 private:
  class Writer final : public SinkWriter<int> {
   public:
    Writer(std::shared_ptr<FlowCounters> counters, absl::Duration per_batch)
        : counters_(std::move(counters)), per_batch_(per_batch) {}

    absl::Status Write(std::span<int> values, std::span<const Timestamp>) override {
      const int64_t received = counters_->received.fetch_add(static_cast<int64_t>(values.size())) +
                               static_cast<int64_t>(values.size());
      // Read after `received`, so a concurrent emit can only overstate the gap.
      const int64_t in_flight = counters_->emitted.load() - received;
      int64_t max = counters_->max_in_flight.load();
      while (in_flight > max && !counters_->max_in_flight.compare_exchange_weak(max, in_flight)) {
      }
      int64_t sum = 0;
      for (int value : values) sum += value;
      counters_->sum.fetch_add(sum);
      absl::SleepFor(per_batch_);
      return absl::OkStatus();
    }

   private:
    std::shared_ptr<FlowCounters> counters_;
    absl::Duration per_batch_;
  };

  std::shared_ptr<FlowCounters> counters_;
  absl::Duration per_batch_;
};

// A source that is much faster than its sink must not run ahead without
// bound: once the rings of the exchange are full, the workers stop polling
// their sources. So the records between the source and the sink never exceed
// what the rings hold plus what one poll per worker can put in an outbox.
TEST(BackpressureTest, SlowSinkBoundsRecordsInFlight) {
  constexpr int kRecords = 50'000;
  constexpr int kParallelism = 2;
  constexpr size_t kBatchSize = 16;
  constexpr size_t kQueueCapacity = 2;
  constexpr size_t kRecordsPerPoll = 64;  // per split; one split per worker

  PipelineOptions options{
      .parallelism = kParallelism, .batch_size = kBatchSize, .queue_capacity = kQueueCapacity};
  Pipeline pipeline(options);
  auto counters = std::make_shared<FlowCounters>();
  std::vector<int> input(kRecords);
  for (int idx = 0; idx < kRecords; ++idx) input[idx] = idx;
  pipeline
      .Source(testing::VectorSource<int>::Create(
          input, {.splits = kParallelism, .records_per_poll = kRecordsPerPoll}))
      .Map([counters](int x) {
        counters->emitted.fetch_add(1);
        return x;
      })
      .KeyBy([](const int& x) { return x % 1000; })
      .AsStream()
      .Sink(std::make_shared<SlowSink>(counters, absl::Microseconds(50)));

  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(60));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(counters->emitted.load(), kRecords);
  EXPECT_EQ(counters->received.load(), kRecords);
  EXPECT_EQ(counters->sum.load(), int64_t{kRecords} * (kRecords - 1) / 2);

  // Every ring (one per pair of workers) holds its capacity (rounded up to a
  // power of two, at least 2) of batches of at most batch_size records; a
  // worker polls its source only with an empty outbox, so an outbox holds at
  // most one poll.
  const int64_t ring_slots =
      static_cast<int64_t>(std::bit_ceil(std::max<size_t>(2, kQueueCapacity)));
  const int64_t in_rings = int64_t{kParallelism} * kParallelism * ring_slots * kBatchSize;
  const int64_t one_poll_per_worker = int64_t{kParallelism} * kRecordsPerPoll;
  const int64_t bound = 2 * in_rings + 2 * one_poll_per_worker;
  const int64_t max_in_flight = counters->max_in_flight.load();
  EXPECT_LE(max_in_flight, bound) << "records in flight grew past what the rings hold";
  // The sink really was the bottleneck: the rings filled up.
  EXPECT_GT(max_in_flight, int64_t{2} * kBatchSize);
  EXPECT_LT(bound * 20, kRecords) << "the input must dwarf the bound for the test to mean anything";
}

// Emits every main element and every broadcast element (negated, minus one)
// it sees.
class EchoBoth final : public BroadcastProcessFunction<int, int, int> {
 public:
  absl::Status ProcessElement(const int& value, ReadOnlyContext&, Collector<int>& out) override {
    out.Collect(value);
    return absl::OkStatus();
  }
  absl::Status ProcessBroadcastElement(const int& value, Context&, Collector<int>& out) override {
    out.Collect(-value - 1);
    return absl::OkStatus();
  }
};

// Rings of one or two batches of a few records, two all-to-all exchanges in a
// row (the second with a hot key) and a broadcast join: workers are
// backpressured all the time, yet everything arrives.
TEST(BackpressureTest, TinyRingsDoNotDeadlock) {
  constexpr int kParallelism = 4;
  constexpr int kRecords = 20'000;
  constexpr int kBroadcastRecords = 500;
  for (size_t queue_capacity : {size_t{1}, size_t{2}}) {
    SCOPED_TRACE(::testing::Message() << "queue_capacity " << queue_capacity);
    Pipeline pipeline(
        {.parallelism = kParallelism, .batch_size = 4, .queue_capacity = queue_capacity});
    std::vector<int> input(kRecords);
    for (int idx = 0; idx < kRecords; ++idx) input[idx] = idx;
    std::vector<int> broadcast_input(kBroadcastRecords);
    for (int idx = 0; idx < kBroadcastRecords; ++idx) broadcast_input[idx] = idx;

    auto rules = pipeline
                     .Source(testing::VectorSource<int>::Create(
                         broadcast_input, {.splits = 2, .records_per_poll = 8}))
                     .Broadcast();
    auto sink = testing::CollectingSink<int>::Create();
    pipeline
        .Source(testing::VectorSource<int>::Create(input, {.splits = 4, .records_per_poll = 16}))
        .KeyBy([](const int& x) { return x % 101; })
        .AsStream()
        .Map([](int x) { return x; })
        // 90% of the records share one key: one worker receives most of them.
        .KeyBy([](const int& x) { return x % 10 == 0 ? x : -1; })
        .AsStream()
        .Connect(rules)
        .Process(EchoBoth{})
        .Sink(sink);

    testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(30));
    ASSERT_TRUE(result.status.ok()) << result.status;

    std::vector<int> main_seen(kRecords, 0);
    std::vector<int> broadcast_seen(kBroadcastRecords, 0);
    for (int value : sink->Values()) {
      if (value >= 0) {
        ASSERT_LT(value, kRecords);
        ++main_seen[value];
      } else {
        ASSERT_LT(-value - 1, kBroadcastRecords);
        ++broadcast_seen[-value - 1];
      }
    }
    for (int idx = 0; idx < kRecords; ++idx) {
      ASSERT_EQ(main_seen[idx], 1) << "main record " << idx;
    }
    for (int idx = 0; idx < kBroadcastRecords; ++idx) {
      ASSERT_EQ(broadcast_seen[idx], kParallelism) << "broadcast record " << idx;
    }
    EXPECT_EQ(sink->flushes(), kParallelism);
  }
}

}  // namespace
}  // namespace weir
