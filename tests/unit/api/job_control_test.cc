// Pipeline::Start() and JobHandle: Stop (drain and finish), Cancel, Wait,
// destroying a running handle, live metrics, and running a pipeline twice.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kDeadline = absl::Seconds(20);
constexpr int kMaxWorkers = 8;

// Polls `condition` every millisecond until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

int64_t Sum(const std::vector<testing::OperatorMetricsSnapshot>& metrics, const std::string& name,
            int64_t testing::OperatorMetricsSnapshot::*field) {
  int64_t total = 0;
  for (const auto& m : metrics) {
    if (m.name == name) total += m.*field;
  }
  return total;
}

class JobControlTest : public ::testing::TestWithParam<int> {
 protected:
  int parallelism() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Parallelism, JobControlTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return absl::StrCat("p", param_info.param);
                         });

// ---------------------------------------------------------------------------
// Helpers: an endless source, a function that counts Open/Close.

// Counts how often each worker's function instance was opened and closed.
struct Lifecycle {
  std::array<std::atomic<int>, kMaxWorkers> opened{};
  std::array<std::atomic<int>, kMaxWorkers> closed{};
  int total_closed() const {
    int total = 0;
    for (const auto& n : closed) total += n.load();
    return total;
  }
};

// Per key: counts records and, on an event-time timer far in the future
// (reached only by the final watermark), emits (key, count).
class CountUntilTheEnd
    : public KeyedProcessFunction<int64_t, int64_t, std::pair<int64_t, int64_t>> {
 public:
  static constexpr Timestamp kFarFuture = int64_t{1} << 50;

  explicit CountUntilTheEnd(std::shared_ptr<Lifecycle> lifecycle)
      : lifecycle_(std::move(lifecycle)) {}

  absl::Status Open(const RuntimeContext& runtime) override {
    worker_ = runtime.worker_index;
    ++lifecycle_->opened[worker_];
    return absl::OkStatus();
  }
  absl::Status ProcessElement(const int64_t&, Context& ctx,
                              Collector<std::pair<int64_t, int64_t>>&) override {
    ++counts_[ctx.current_key()];
    ctx.timer_service().RegisterEventTimeTimer(kFarFuture);
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp, OnTimerContext& ctx,
                       Collector<std::pair<int64_t, int64_t>>& out) override {
    out.Collect({ctx.current_key(), counts_[ctx.current_key()]});
    return absl::OkStatus();
  }
  absl::Status Close() override {
    ++lifecycle_->closed[worker_];
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<Lifecycle> lifecycle_;
  int worker_ = 0;
  absl::flat_hash_map<int64_t, int64_t> counts_;
};

// Tells whether an EndlessSource / SlowSink still exists, so readers and
// writers can report use after their factory was destroyed.
struct Liveness {
  std::atomic<bool> source_alive{true};
  std::atomic<bool> sink_alive{true};
  std::atomic<int> used_after_destruction{0};
};

// Never ends by itself and always has more: emits 0, 1, 2, ... (timestamp =
// value) from each of its splits, `per_poll` per split and poll.
class EndlessSource final : public Source<int64_t> {
 public:
  EndlessSource(int splits, int per_poll,
                std::shared_ptr<Liveness> liveness = std::make_shared<Liveness>())
      : splits_(splits), per_poll_(per_poll), liveness_(std::move(liveness)) {}
  ~EndlessSource() override { liveness_->source_alive = false; }

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    std::vector<SourceSplit> splits;
    for (int s = 0; s < splits_; ++s) splits.push_back({absl::StrCat("endless-", s)});
    return splits;
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int64_t>>> CreateReader(
      const SourceReaderContext& context) override {
    return std::unique_ptr<SourceReader<int64_t>>(
        new Reader(this, static_cast<int>(context.splits.size())));
  }

 private:
  class Reader final : public SourceReader<int64_t> {
   public:
    Reader(const EndlessSource* source, int splits)
        : source_(source), liveness_(source->liveness_), next_(splits, 0) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<int64_t>& out) override {
      if (next_.empty()) return PollResult::kEndOfInput;
      if (!liveness_->source_alive) {
        ++liveness_->used_after_destruction;
        return absl::InternalError("the source was destroyed while its reader runs");
      }
      for (size_t split = 0; split < next_.size(); ++split) {
        for (int k = 0; k < source_->per_poll_; ++k, ++next_[split]) {
          out.Collect(static_cast<int>(split), next_[split], next_[split]);
        }
      }
      return PollResult::kMoreAvailable;
    }

   private:
    const EndlessSource* source_;
    std::shared_ptr<Liveness> liveness_;
    std::vector<int64_t> next_;
  };

  int splits_;
  int per_poll_;
  std::shared_ptr<Liveness> liveness_;
};

// Counts records; each Write sleeps `delay` (a slow external system).
class SlowSink final : public Sink<int64_t> {
 public:
  SlowSink(absl::Duration delay, std::shared_ptr<Liveness> liveness = std::make_shared<Liveness>())
      : delay_(delay), liveness_(std::move(liveness)) {}
  ~SlowSink() override { liveness_->sink_alive = false; }

  absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<int64_t>>(new Writer(this));
  }
  int64_t written() const { return written_.load(); }

 private:
  class Writer final : public SinkWriter<int64_t> {
   public:
    explicit Writer(SlowSink* sink) : sink_(sink), liveness_(sink->liveness_) {}
    absl::Status Write(std::span<int64_t> values, std::span<const Timestamp>) override {
      if (!liveness_->sink_alive) {
        ++liveness_->used_after_destruction;
        return absl::InternalError("the sink was destroyed while its writer runs");
      }
      absl::SleepFor(sink_->delay_);
      sink_->written_ += static_cast<int64_t>(values.size());
      return absl::OkStatus();
    }

   private:
    SlowSink* sink_;
    std::shared_ptr<Liveness> liveness_;
  };

  absl::Duration delay_;
  std::shared_ptr<Liveness> liveness_;
  std::atomic<int64_t> written_{0};
};

std::vector<int64_t> Iota64(int n) {
  std::vector<int64_t> values(n);
  for (int i = 0; i < n; ++i) values[i] = i;
  return values;
}

// ---------------------------------------------------------------------------
// Stop.

TEST_P(JobControlTest, StopDrainsAnUnboundedJobAndFinishesOk) {
  constexpr int kRecords = 3000;
  constexpr int kKeys = 37;
  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 100});
  auto lifecycle = std::make_shared<Lifecycle>();
  auto records = testing::CollectingSink<int64_t>::Create();
  auto totals = testing::CollectingSink<std::pair<int64_t, int64_t>>::Create();
  auto numbers = pipeline.Source(testing::VectorSource<int64_t>::Create(
                                     Iota64(kRecords), {.records_per_poll = 50, .unbounded = true}),
                                 WatermarkStrategy<int64_t>::ForMonotonousTimestamps());
  numbers.Sink(records);
  numbers.KeyBy([](const int64_t& x) { return x % kKeys; })
      .Process(CountUntilTheEnd(lifecycle))
      .Name("count")
      .Sink(totals);

  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // Everything is read and nothing ends by itself.
  ASSERT_TRUE(WaitFor([&] { return records->size() == kRecords; }));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(job->done());
  EXPECT_EQ(totals->size(), 0u) << "the far timers wait for the final watermark";
  EXPECT_EQ(records->flushes(), 0);
  EXPECT_EQ(lifecycle->total_closed(), 0);

  job->Stop();
  job->Stop();  // harmless
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(job->done());

  // The final watermark fired every key's timer, with complete counts.
  std::map<int64_t, int64_t> expected;
  for (int x = 0; x < kRecords; ++x) ++expected[x % kKeys];
  std::map<int64_t, int64_t> got;
  for (const auto& [key, count] : totals->Values()) {
    EXPECT_TRUE(got.emplace(key, count).second) << "key " << key << " twice";
  }
  EXPECT_EQ(got, expected);
  for (const auto& record : totals->Records())
    EXPECT_EQ(record.timestamp, CountUntilTheEnd::kFarFuture);
  EXPECT_EQ(Sum(testing::OperatorMetricsOf(job->Metrics()), "count",
                &testing::OperatorMetricsSnapshot::timers_fired),
            kKeys);
  // Sinks flushed once per worker; functions closed once per worker.
  EXPECT_EQ(records->flushes(), parallelism());
  EXPECT_EQ(totals->flushes(), parallelism());
  EXPECT_EQ(records->size(), static_cast<size_t>(kRecords));
  for (int w = 0; w < kMaxWorkers; ++w) {
    EXPECT_EQ(lifecycle->opened[w].load(), w < parallelism() ? 1 : 0);
    EXPECT_EQ(lifecycle->closed[w].load(), w < parallelism() ? 1 : 0);
  }
}

TEST_P(JobControlTest, StopEndsABusyEndlessSource) {
  Pipeline pipeline({.parallelism = parallelism()});
  auto sink = std::make_shared<SlowSink>(absl::ZeroDuration());
  pipeline.Source(std::make_shared<EndlessSource>(3, 10))
      .Map([](int64_t x) { return x * 2; })
      .Name("double")
      .Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitFor([&] { return sink->written() > 1000; }));
  job->Stop();
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;
  // Everything read before the stop was written.
  const auto metrics = testing::OperatorMetricsOf(job->Metrics());
  EXPECT_EQ(Sum(metrics, "double", &testing::OperatorMetricsSnapshot::records_out),
            sink->written());
}

// ---------------------------------------------------------------------------
// Cancel and Wait.

TEST_P(JobControlTest, CancelReturnsCancelledQuickly) {
  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 16, .queue_capacity = 2});
  auto lifecycle = std::make_shared<Lifecycle>();
  // A slow sink behind a KeyBy: the rings fill up and the job is backpressured.
  auto sink = std::make_shared<SlowSink>(absl::Milliseconds(1));
  auto totals = testing::CollectingSink<std::pair<int64_t, int64_t>>::Create();
  auto keyed = pipeline.Source(std::make_shared<EndlessSource>(4, 100)).KeyBy([](const int64_t& x) {
    return x % 11;
  });
  keyed.AsStream().Sink(sink);
  keyed.Process(CountUntilTheEnd(lifecycle)).Sink(totals);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitFor([&] { return sink->written() > 0; }));

  const absl::Time start = absl::Now();
  job->Cancel();
  absl::Status status = job->Wait();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_TRUE(job->done());
  // Abandoned: no final watermark, no timers, no flush; but every function was closed.
  EXPECT_EQ(totals->size(), 0u);
  EXPECT_EQ(totals->flushes(), 0);
  EXPECT_EQ(lifecycle->total_closed(), parallelism());
  // Cancel and Wait again change nothing.
  job->Cancel();
  EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
}

TEST_P(JobControlTest, WaitTwiceReturnsTheSameStatus) {
  {  // OK.
    Pipeline pipeline({.parallelism = parallelism()});
    pipeline.Source(testing::VectorSource<int64_t>::Create(Iota64(100))).Sink([](const int64_t&) {
    });
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_TRUE(job->Wait().ok());
    EXPECT_TRUE(job->Wait().ok());
    // Cancel and Stop after the end leave the outcome alone.
    job->Cancel();
    job->Stop();
    EXPECT_TRUE(job->Wait().ok());
    EXPECT_TRUE(job->done());
  }
  {  // Cancelled.
    Pipeline pipeline({.parallelism = parallelism()});
    pipeline.Source(std::make_shared<EndlessSource>(2, 10)).Sink([](const int64_t&) {});
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    job->Cancel();
    const absl::Status first = job->Wait();
    EXPECT_EQ(first.code(), absl::StatusCode::kCancelled);
    EXPECT_EQ(job->Wait(), first);
  }
  {  // Failed: the failure wins over a later Cancel.
    Pipeline pipeline({.parallelism = parallelism()});
    pipeline.Source(std::make_shared<EndlessSource>(2, 10))
        .Map([](int64_t x) -> absl::StatusOr<int64_t> {
          if (x == 500) return absl::DataLossError("bad record 500");
          return x;
        })
        .Name("check")
        .Sink([](const int64_t&) {});
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(WaitFor([&] { return job->done(); }));
    job->Cancel();
    const absl::Status first = job->Wait();
    EXPECT_EQ(first.code(), absl::StatusCode::kDataLoss) << first;
    EXPECT_THAT(first.message(), HasSubstr("check"));
    EXPECT_EQ(job->Wait(), first);
  }
}

TEST_P(JobControlTest, WaitFromSeveralThreads) {
  Pipeline pipeline({.parallelism = parallelism()});
  pipeline.Source(std::make_shared<EndlessSource>(2, 10)).Sink([](const int64_t&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  std::vector<absl::Status> statuses(3);
  std::vector<std::thread> waiters;
  for (auto& status : statuses) {
    waiters.emplace_back([&job, &status] { status = job->Wait(); });
  }
  absl::SleepFor(absl::Milliseconds(10));
  job->Stop();
  for (auto& waiter : waiters) waiter.join();
  for (const auto& status : statuses) EXPECT_TRUE(status.ok()) << status;
}

TEST_P(JobControlTest, DestroyingARunningHandleCancelsWithoutHanging) {
  auto lifecycle = std::make_shared<Lifecycle>();
  auto sink = std::make_shared<SlowSink>(absl::Milliseconds(1));
  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 16, .queue_capacity = 2});
  auto totals = testing::CollectingSink<std::pair<int64_t, int64_t>>::Create();
  auto keyed = pipeline.Source(std::make_shared<EndlessSource>(4, 50)).KeyBy([](const int64_t& x) {
    return x % 5;
  });
  keyed.AsStream().Sink(sink);
  keyed.Process(CountUntilTheEnd(lifecycle)).Sink(totals);
  absl::Time start;
  {
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(WaitFor([&] { return sink->written() > 0; }));
    // A moved-from handle is destroyed harmlessly too.
    JobHandle moved = *std::move(job);
    start = absl::Now();
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // The threads were joined: every function instance has been closed.
  EXPECT_EQ(lifecycle->total_closed(), parallelism());
  EXPECT_EQ(totals->size(), 0u);
}

// ---------------------------------------------------------------------------
// A job outlives the Pipeline (and the streams) it was started from.

TEST_P(JobControlTest, JobOutlivesItsPipeline) {
  auto liveness = std::make_shared<Liveness>();
  auto pipeline = std::make_unique<Pipeline>(PipelineOptions{.parallelism = parallelism()});
  pipeline->Source(std::make_shared<EndlessSource>(2, 10, liveness))
      .Map([](int64_t x) { return x + 1; })
      .Sink(std::make_shared<SlowSink>(absl::ZeroDuration(), liveness))
      .Name("out");
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  pipeline.reset();
  ASSERT_TRUE(WaitFor([&] {
    return Sum(testing::OperatorMetricsOf(job->Metrics()), "out",
               &testing::OperatorMetricsSnapshot::records_in) > 1000 ||
           job->done();
  }));
  job->Stop();
  absl::Status status = job->Wait();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(liveness->used_after_destruction.load(), 0);
}

// ---------------------------------------------------------------------------
// Metrics.

TEST_P(JobControlTest, MetricsWhileRunning) {
  constexpr int kRecords = 2000;
  const int p = parallelism();
  Pipeline pipeline({.parallelism = p, .batch_size = 64});
  auto sink = testing::CollectingSink<int64_t>::Create();
  pipeline
      .Source(testing::VectorSource<int64_t>::Create(Iota64(kRecords),
                                                     {.records_per_poll = 100, .unbounded = true}))
      .Name("numbers")
      .Filter([](const int64_t& x) { return x % 4 != 0; })
      .Name("three-quarters")
      .KeyBy([](const int64_t& x) { return x; })
      .Name("by-value")
      .AsStream()
      .Sink(sink)
      .Name("collect");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  // Counters are live: they reach their totals while the job still runs.
  ASSERT_TRUE(WaitFor([&] {
    return Sum(testing::OperatorMetricsOf(job->Metrics()), "collect",
               &testing::OperatorMetricsSnapshot::records_in) == kRecords * 3 / 4;
  }));
  EXPECT_FALSE(job->done());
  std::vector<testing::OperatorMetricsSnapshot> live = testing::OperatorMetricsOf(job->Metrics());
  std::map<std::string, std::set<int>> workers;
  for (const auto& m : live) workers[m.name].insert(m.worker);
  std::set<int> all;
  for (int w = 0; w < p; ++w) all.insert(w);
  for (const char* name : {"numbers", "three-quarters", "by-value", "collect"})
    EXPECT_EQ(workers[name], all) << name;
  EXPECT_EQ(Sum(live, "numbers", &testing::OperatorMetricsSnapshot::records_out), kRecords);
  EXPECT_EQ(Sum(live, "three-quarters", &testing::OperatorMetricsSnapshot::records_in), kRecords);
  EXPECT_EQ(Sum(live, "three-quarters", &testing::OperatorMetricsSnapshot::records_out),
            kRecords * 3 / 4);
  EXPECT_EQ(Sum(live, "by-value", &testing::OperatorMetricsSnapshot::records_in), kRecords * 3 / 4);

  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  // Still available after the end, with the same totals.
  std::vector<testing::OperatorMetricsSnapshot> final_metrics =
      testing::OperatorMetricsOf(job->Metrics());
  EXPECT_EQ(final_metrics.size(), live.size());
  EXPECT_EQ(Sum(final_metrics, "collect", &testing::OperatorMetricsSnapshot::records_in),
            kRecords * 3 / 4);
}

// ---------------------------------------------------------------------------
// Running a pipeline twice.

TEST_P(JobControlTest, RunTwiceGivesTheSameResults) {
  constexpr int kRecords = 2000;
  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 50});
  auto lifecycle = std::make_shared<Lifecycle>();
  auto records = testing::CollectingSink<int64_t>::Create();
  auto totals = testing::CollectingSink<std::pair<int64_t, int64_t>>::Create();
  auto numbers = pipeline.Source(
      testing::VectorSource<int64_t>::Create(Iota64(kRecords), {.records_per_poll = 64}),
      WatermarkStrategy<int64_t>::ForMonotonousTimestamps());
  numbers.Map([](int64_t x) { return x * x; }).Sink(records);
  numbers.KeyBy([](const int64_t& x) { return x % 13; })
      .Process(CountUntilTheEnd(lifecycle))
      .Name("count")
      .Sink(totals);

  ASSERT_TRUE(pipeline.Run().ok());
  std::vector<int64_t> first_records = records->Values();
  std::vector<std::pair<int64_t, int64_t>> first_totals = totals->Values();
  ASSERT_EQ(first_records.size(), static_cast<size_t>(kRecords));
  ASSERT_EQ(first_totals.size(), 13u);

  testing::JobResult second = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(second.status.ok()) << second.status;
  std::vector<int64_t> all_records = records->Values();
  std::vector<std::pair<int64_t, int64_t>> all_totals = totals->Values();
  ASSERT_EQ(all_records.size(), 2u * kRecords);
  ASSERT_EQ(all_totals.size(), 26u);
  std::vector<int64_t> second_records(all_records.begin() + kRecords, all_records.end());
  std::vector<std::pair<int64_t, int64_t>> second_totals(all_totals.begin() + 13, all_totals.end());
  std::sort(first_records.begin(), first_records.end());
  std::sort(second_records.begin(), second_records.end());
  std::sort(first_totals.begin(), first_totals.end());
  std::sort(second_totals.begin(), second_totals.end());
  EXPECT_EQ(first_records, second_records);
  // Function state starts fresh in each run (counts are not carried over).
  EXPECT_EQ(first_totals, second_totals);
  EXPECT_EQ(second.RecordsIn("count"), kRecords);
  EXPECT_EQ(second.TimersFired("count"), 13);
  // Opened and closed once per worker per run.
  for (int w = 0; w < parallelism(); ++w) {
    EXPECT_EQ(lifecycle->opened[w].load(), 2);
    EXPECT_EQ(lifecycle->closed[w].load(), 2);
  }
}

// ---------------------------------------------------------------------------
// Records reach sinks while the job runs (no end of input needed).

const OutputTag<int64_t> kHundreds("hundreds");

class SplitHundreds : public ProcessFunction<int64_t, int64_t> {
 public:
  absl::Status ProcessElement(const int64_t& x, Context& ctx, Collector<int64_t>& out) override {
    if (x % 100 == 0) {
      ctx.Output(kHundreds, x);
    } else {
      out.Collect(x);
    }
    return absl::OkStatus();
  }
};

TEST_P(JobControlTest, MainAndSideOutputsReachSinksWhileRunning) {
  // A busy source that never idles and emits no watermarks: nothing but the
  // data itself pushes records downstream.
  // Batches far larger than what the test waits for: records must not wait
  // for a batch to fill up either.
  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 100'000});
  auto main = std::make_shared<SlowSink>(absl::ZeroDuration());
  auto side = std::make_shared<SlowSink>(absl::ZeroDuration());
  auto split = pipeline.Source(std::make_shared<EndlessSource>(1, 1)).Process(SplitHundreds{});
  split.Sink(main);
  split.SideOutput(kHundreds).Sink(side);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(WaitFor([&] { return main->written() > 0; }, absl::Seconds(5)));
  EXPECT_TRUE(WaitFor([&] { return side->written() > 0; }, absl::Seconds(5)))
      << "side-output records wait for a watermark or end of input";
  job->Cancel();
  EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace weir
