// Pipeline construction and Run(): option validation, configuration errors
// reported by Start(), and end-to-end runs of small pipelines.

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

std::vector<int> Iota(int n) {
  std::vector<int> values(n);
  for (int i = 0; i < n; ++i) values[i] = i;
  return values;
}

TEST(PipelineTest, MapFilterSink) {
  Pipeline pipeline({.parallelism = 2});
  auto sink = testing::CollectingSink<int>::Create();
  std::vector<int> input(1000);
  for (int i = 0; i < 1000; ++i) input[i] = i;
  pipeline.Source(testing::VectorSource<int>::Create(input))
      .Filter([](const int& x) { return x % 2 == 0; })
      .Map([](int x) { return x * 3; })
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int> expected;
  for (int i = 0; i < 1000; i += 2) expected.push_back(i * 3);
  EXPECT_THAT(sink->Values(), UnorderedElementsAreArray(expected));
}

// A pipeline with a source and a sink, built with `options`.
absl::Status StartWith(PipelineOptions options) {
  Pipeline pipeline(std::move(options));
  pipeline.Source(testing::VectorSource<int>::Create(Iota(3))).Sink([](const int&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();
  return job->Wait();
}

TEST(PipelineTest, StartRejectsBadOptions) {
  EXPECT_EQ(StartWith({.parallelism = 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({.parallelism = -1}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({.parallelism = 4, .max_parallelism = 3}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({.max_parallelism = 32769}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({.batch_size = 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartWith({.queue_capacity = 0}).code(), absl::StatusCode::kInvalidArgument);
  // The limits themselves are fine.
  EXPECT_TRUE(StartWith({.parallelism = 4, .max_parallelism = 4}).ok());
  EXPECT_TRUE(StartWith({.max_parallelism = 32768, .batch_size = 1, .queue_capacity = 1}).ok());
}

TEST(PipelineTest, RunReportsConfigurationErrorsToo) {
  Pipeline pipeline({.parallelism = 0});
  pipeline.Source(testing::VectorSource<int>::Create(Iota(3))).Sink([](const int&) {});
  EXPECT_EQ(pipeline.Run().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PipelineTest, APipelineWithoutSinkIsRejected) {
  Pipeline pipeline;
  pipeline.Source(testing::VectorSource<int>::Create(Iota(3))).Map([](int x) { return x; });
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("sink"));
}

TEST(PipelineTest, StreamsFromDifferentPipelinesCannotBeCombined) {
  Pipeline first;
  Pipeline second;
  auto a = first.Source(testing::VectorSource<int>::Create(Iota(3)));
  auto b = second.Source(testing::VectorSource<int>::Create(Iota(3)));
  a.Union(b).Sink([](const int&) {});
  EXPECT_EQ(first.Run().code(), absl::StatusCode::kInvalidArgument);

  Pipeline third;
  Pipeline fourth;
  auto main = third.Source(testing::VectorSource<int>::Create(Iota(3)));
  auto broadcast = fourth.Source(testing::VectorSource<int>::Create(Iota(3))).Broadcast();
  struct Join : BroadcastProcessFunction<int, int, int> {
    absl::Status ProcessElement(const int&, ReadOnlyContext&, Collector<int>&) override {
      return absl::OkStatus();
    }
    absl::Status ProcessBroadcastElement(const int&, Context&, Collector<int>&) override {
      return absl::OkStatus();
    }
  };
  main.Connect(broadcast).Process(Join{}).Sink([](const int&) {});
  EXPECT_EQ(third.Run().code(), absl::StatusCode::kInvalidArgument);
}

// A source whose DiscoverSplits or CreateReader fails.
class BrokenSource final : public Source<int> {
 public:
  explicit BrokenSource(bool fail_discovery) : fail_discovery_(fail_discovery) {}
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    if (fail_discovery_) return absl::NotFoundError("topic 'nope' does not exist");
    return std::vector<SourceSplit>{{"only"}};
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int>>> CreateReader(
      const SourceReaderContext&) override {
    return absl::PermissionDeniedError("not allowed to read");
  }

 private:
  bool fail_discovery_;
};

TEST(PipelineTest, SourceErrorsAreReturnedByStart) {
  {
    Pipeline pipeline({.parallelism = 2});
    pipeline.Source(std::make_shared<BrokenSource>(true)).Name("kafka").Sink([](const int&) {});
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_FALSE(job.ok());
    EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(job.status().message(), HasSubstr("kafka"));
    EXPECT_THAT(job.status().message(), HasSubstr("topic 'nope' does not exist"));
  }
  {
    Pipeline pipeline({.parallelism = 2});
    pipeline.Source(std::make_shared<BrokenSource>(false)).Name("kafka").Sink([](const int&) {});
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_FALSE(job.ok());
    EXPECT_EQ(job.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(job.status().message(), HasSubstr("kafka"));
  }
}

class FailingOpen : public ProcessFunction<int, int> {
 public:
  absl::Status Open(const RuntimeContext& runtime) override {
    if (runtime.worker_index == runtime.parallelism - 1)
      return absl::FailedPreconditionError("no connection");
    return absl::OkStatus();
  }
  absl::Status ProcessElement(const int& x, Context&, Collector<int>& out) override {
    out.Collect(x);
    return absl::OkStatus();
  }
};

TEST(PipelineTest, AFailingOpenFailsStart) {
  Pipeline pipeline({.parallelism = 3});
  pipeline.Source(testing::VectorSource<int>::Create(Iota(3)))
      .Process(FailingOpen{})
      .Name("connect")
      .Sink([](const int&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(job.status().message(), HasSubstr("connect"));
  EXPECT_THAT(job.status().message(), HasSubstr("no connection"));
}

TEST(PipelineTest, SideOutputTagUsedWithTwoTypesIsRejected) {
  const OutputTag<int> as_int("same-id");
  const OutputTag<std::string> as_string("same-id");
  struct Emit : ProcessFunction<int, int> {
    absl::Status ProcessElement(const int&, Context&, Collector<int>&) override {
      return absl::OkStatus();
    }
  };
  Pipeline pipeline;
  auto processed = pipeline.Source(testing::VectorSource<int>::Create(Iota(3))).Process(Emit{});
  processed.SideOutput(as_int).Sink([](const int&) {});
  processed.SideOutput(as_string).Sink([](const std::string&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("same-id"));
}

// Checkpoints file each operator's state under its uid: two operators with
// one uid would each restore both snapshots (one sink committing the other's
// transactions). Start names the uid and the operators.
TEST(PipelineTest, TwoOperatorsWithOneUidAreRejected) {
  Pipeline pipeline;
  auto numbers = pipeline.Source(testing::VectorSource<int>::Create(Iota(3))).Uid("numbers");
  numbers.Sink([](const int&) {}).Uid("out");
  numbers.Map([](int x) { return x + 1; }).Sink([](const int&) {}).Name("plus-one").Uid("out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("uid 'out'"));
  EXPECT_THAT(job.status().message(), HasSubstr("Sink#1 'out'"));
  EXPECT_THAT(job.status().message(), HasSubstr("Sink#3 'plus-one'"));
}

// Display names are labels, free to repeat: the operators run apart, and
// their metrics keep them apart too (the second gets "<name>#<id>").
TEST(PipelineTest, DisplayNamesMayRepeat) {
  Pipeline pipeline;
  auto numbers = pipeline.Source(testing::VectorSource<int>::Create(Iota(10)));
  std::atomic<int> first{0};
  std::atomic<int> second{0};
  numbers.Map([](int x) { return x + 1; })
      .Name("step")
      .Sink([&first](const int&) { ++first; })
      .Name("out");
  numbers.Map([](int x) { return x + 2; })
      .Name("step")
      .Sink([&second](const int&) { ++second; })
      .Name("out");
  testing::JobResult result = testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(first.load(), 10);
  EXPECT_EQ(second.load(), 10);
  EXPECT_EQ(result.RecordsIn("out"), 10);
  EXPECT_EQ(result.RecordsIn("out#4"), 10);
  EXPECT_EQ(result.RecordsOut("step"), 10);
  EXPECT_EQ(result.RecordsOut("step#3"), 10);
}

// Stream::Sink returns the sink's handle: Name and Uid apply to the sink,
// never to the operator before it.
TEST(PipelineTest, SinkNameAndUidNameTheSinkNotItsInput) {
  Pipeline pipeline;
  pipeline.Source(testing::VectorSource<int>::Create(Iota(5)))
      .Map([](int x) { return x * 2; })
      .Name("double")
      .Sink([](const int&) {})
      .Name("printed")
      .Uid("printer");
  testing::JobResult result = testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.RecordsOut("double"), 5);
  EXPECT_EQ(result.RecordsIn("printed"), 5);
  EXPECT_EQ(result.RecordsIn("printer"), 0);  // a uid is no display name once Name() is set
  std::set<std::string> names;
  for (const testing::OperatorMetricsSnapshot& m : result.metrics) names.insert(m.name);
  EXPECT_EQ(names, (std::set<std::string>{"Source#0", "double", "printed"}));
}

// Without Name() an operator is shown by its uid: Uid("x") alone labels
// logs, errors and metrics "x".
TEST(PipelineTest, AUidIsTheDefaultDisplayName) {
  Pipeline pipeline;
  pipeline.Source(testing::VectorSource<int>::Create(Iota(5)))
      .Uid("numbers")
      .Sink([](const int& x) -> absl::Status {
        return x == 3 ? absl::DataLossError("three") : absl::OkStatus();
      })
      .Uid("checker");
  absl::Status status = pipeline.Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("operator 'checker'"));
}

// A side output runs no operator: a uid there would identify nothing.
TEST(PipelineTest, AUidOnASideOutputIsRejected) {
  const OutputTag<int> tag("odd");
  Pipeline pipeline;
  auto numbers = pipeline.Source(testing::VectorSource<int>::Create(Iota(4)));
  numbers.Sink([](const int&) {});
  numbers.SideOutput(tag).Uid("odd").Sink([](const int&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("uid 'odd'"));
  EXPECT_THAT(job.status().message(), HasSubstr("side output"));
}

TEST(PipelineTest, AnEmptyUidIsRejected) {
  Pipeline pipeline;
  pipeline.Source(testing::VectorSource<int>::Create(Iota(4))).Sink([](const int&) {}).Uid("");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("non-empty uid"));
}

// A side output runs no operator of its own and takes no snapshot: its name
// is only a label, and may repeat.
TEST(PipelineTest, SideOutputsMayShareANameWithAnything) {
  const OutputTag<int> tag("odd");
  struct SplitOdd : ProcessFunction<int, int> {
    explicit SplitOdd(OutputTag<int> odd) : odd(std::move(odd)) {}
    absl::Status ProcessElement(const int& value, Context& ctx, Collector<int>& out) override {
      if (value % 2 != 0) {
        ctx.Output(odd, value);
      } else {
        out.Collect(value);
      }
      return absl::OkStatus();
    }
    OutputTag<int> odd;
  };
  Pipeline pipeline;
  auto split = pipeline.Source(testing::VectorSource<int>::Create(Iota(4)))
                   .Process(SplitOdd(tag))
                   .Name("split");
  std::atomic<int> odd{0};
  split.SideOutput(tag).Name("split").Sink([&odd](const int&) { ++odd; }).Name("odd");
  split.Sink([](const int&) {}).Name("even");
  ASSERT_TRUE(pipeline.Run().ok());
  EXPECT_EQ(odd.load(), 2);
}

TEST(PipelineTest, EmptyInput) {
  for (int parallelism : {1, 3}) {
    Pipeline pipeline({.parallelism = parallelism});
    auto sink = testing::CollectingSink<int>::Create();
    pipeline.Source(testing::VectorSource<int>::Create(std::vector<int>{}))
        .KeyBy([](const int& x) { return x; })
        .AsStream()
        .Sink(sink);
    testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
    ASSERT_TRUE(result.status.ok()) << result.status;
    EXPECT_EQ(sink->size(), 0u);
    EXPECT_EQ(sink->flushes(), parallelism);
  }
}

TEST(PipelineTest, MoreWorkersThanSplits) {
  Pipeline pipeline({.parallelism = 4});
  auto sink = testing::CollectingSink<int>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(Iota(500), {.splits = 1}))
      .KeyBy([](const int& x) { return x % 10; })
      .AsStream()
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_THAT(sink->Values(), UnorderedElementsAreArray(Iota(500)));
}

// KeyBy honours a non-default max_parallelism (key groups) when routing.
class WhereAmI : public KeyedProcessFunction<int, int, std::pair<int, int>> {
 public:
  absl::Status ProcessElement(const int& x, Context& ctx,
                              Collector<std::pair<int, int>>& out) override {
    out.Collect({x, ctx.worker_index()});
    return absl::OkStatus();
  }
};

TEST(PipelineTest, KeyByUsesMaxParallelismKeyGroups) {
  constexpr int kMaxParallelism = 7;
  constexpr int kParallelism = 3;
  Pipeline pipeline({.parallelism = kParallelism, .max_parallelism = kMaxParallelism});
  auto sink = testing::CollectingSink<std::pair<int, int>>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(Iota(300)))
      .KeyBy([](const int& x) { return x; })
      .Process(WhereAmI{})
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_EQ(sink->size(), 300u);
  std::set<int> workers;
  for (const auto& [x, worker] : sink->Values()) {
    EXPECT_EQ(worker,
              WorkerForKeyGroup(KeyGroupOf(x, kMaxParallelism), kMaxParallelism, kParallelism))
        << x;
    workers.insert(worker);
  }
  EXPECT_EQ(workers.size(), static_cast<size_t>(kParallelism));
}

TEST(PipelineTest, MovedPipelineRuns) {
  auto sink = testing::CollectingSink<int>::Create();
  Pipeline original({.parallelism = 2});
  original.Source(testing::VectorSource<int>::Create(Iota(100)))
      .Map([](int x) { return x + 1; })
      .Sink(sink);
  Pipeline moved = std::move(original);
  EXPECT_EQ(moved.options().parallelism, 2);
  ASSERT_TRUE(moved.Run().ok());
  EXPECT_EQ(sink->size(), 100u);
}

TEST(PipelineTest, TimestampAssignerReplacesSourceTimestamps) {
  Pipeline pipeline({.parallelism = 2});
  auto sink = testing::CollectingSink<int>::Create();
  pipeline
      .Source(testing::VectorSource<int>::Create(Iota(100)),
              WatermarkStrategy<int>::ForMonotonousTimestamps().WithTimestampAssigner(
                  [](const int& x, Timestamp source_ts) { return 1000 * x + source_ts; }))
      .Sink(sink);
  ASSERT_TRUE(pipeline.Run().ok());
  ASSERT_EQ(sink->size(), 100u);
  for (const auto& record : sink->Records()) EXPECT_EQ(record.timestamp, 1001 * record.value);
}

// What a record looked like downstream: its value, its timestamp and the
// watermark of the operator that saw it.
struct Seen {
  int value;
  Timestamp timestamp;
  Timestamp watermark;
};
class Observe final : public ProcessFunction<int, Seen> {
 public:
  absl::Status ProcessElement(const int& value, Context& ctx, Collector<Seen>& out) override {
    out.Collect(Seen{value, ctx.timestamp(), ctx.current_watermark()});
    return absl::OkStatus();
  }
};

// A record the assigner gives kNoTimestamp (a tombstone) moves no
// watermark and carries its split's latest event time, even when the
// source's own timestamp (the broker's clock) is far ahead of the data.
TEST(PipelineTest, RecordsWithoutEventTimeMoveNoWatermark) {
  constexpr Timestamp kWallClock = 1'796'428'800'000;  // "now", ten days after the data
  constexpr Timestamp kDataStart = 1'795'564'800'000;
  std::vector<testing::TimestampedValue<int>> records;
  for (int idx = 1; idx <= 200; ++idx) {
    // Every tenth record is a tombstone (-1): no event time of its own.
    records.push_back({idx % 10 == 0 ? -1 : idx, kWallClock + idx});
  }
  Pipeline pipeline({.parallelism = 1, .batch_size = 1});
  auto sink = testing::CollectingSink<Seen>::Create();
  pipeline
      .Source(testing::VectorSource<int>::Create(records),
              WatermarkStrategy<int>::ForMonotonousTimestamps().WithTimestampAssigner(
                  [](const int& value, Timestamp) {
                    return value < 0 ? kNoTimestamp : kDataStart + value * 1000;
                  }))
      .Process(Observe{})
      .Sink(sink);
  ASSERT_TRUE(pipeline.Run().ok());
  std::vector<Seen> seen = sink->Values();
  ASSERT_EQ(seen.size(), 200u);
  Timestamp previous = kMinTimestamp;
  for (const Seen& s : seen) {
    if (s.value < 0) {
      EXPECT_EQ(s.timestamp, previous) << "a tombstone carries the latest event time";
    } else {
      EXPECT_EQ(s.timestamp, kDataStart + s.value * 1000);
      previous = s.timestamp;
    }
    EXPECT_LT(s.watermark, kDataStart + 200 * 1000) << "the watermark never reaches the wall clock";
  }
}

// Emits `first` at once, then reports idle (a caught-up Kafka partition)
// until *gate opens, then emits `second` and ends.
class GatedSource final : public Source<int> {
 public:
  GatedSource(std::vector<testing::TimestampedValue<int>> first,
              std::vector<testing::TimestampedValue<int>> second,
              std::shared_ptr<std::atomic<bool>> gate)
      : first_(std::move(first)), second_(std::move(second)), gate_(std::move(gate)) {}
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return std::vector<SourceSplit>{{.id = "gated"}};
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int>>> CreateReader(
      const SourceReaderContext&) override {
    return std::unique_ptr<SourceReader<int>>(new Reader(this));
  }

 private:
  class Reader final : public SourceReader<int> {
   public:
    explicit Reader(const GatedSource* source) : source_(source) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<int>& out) override {
      if (out.num_splits() == 0) return PollResult::kEndOfInput;
      if (wave_ == 0) {
        for (const auto& r : source_->first_) out.Collect(0, r.value, r.timestamp);
        wave_ = 1;
      }
      if (wave_ == 1 && source_->gate_->load()) {
        for (const auto& r : source_->second_) out.Collect(0, r.value, r.timestamp);
        out.FinishSplit(0);
        wave_ = 2;
        return PollResult::kEndOfInput;
      }
      out.MarkIdle(0);
      return PollResult::kNothingAvailable;
    }

   private:
    const GatedSource* source_;
    int wave_ = 0;
  };
  std::vector<testing::TimestampedValue<int>> first_, second_;
  std::shared_ptr<std::atomic<bool>> gate_;
};

// A backfill: the main input replays week-old events and pauses (idle),
// while the broadcast side (a table changing now) runs far ahead. The
// operator emits results for the main input only, so its output watermark
// stays at the main input's: the events after the pause are not late
// downstream. (A two-input operator that dropped its idle main input from
// the minimum would forward the broadcast side's watermark.)
TEST(PipelineTest, BroadcastJoinOutputWatermarkStaysWithItsIdleMainInput) {
  constexpr Timestamp kWeekAgo = 1'795'564'800'000;
  constexpr Timestamp kNow = kWeekAgo + 7 * 24 * 3600 * 1000LL;
  constexpr int kContent = 400;
  std::vector<testing::TimestampedValue<int>> first, second, content;
  for (int i = 0; i < 100; ++i) first.push_back({i, kWeekAgo + i * 1000});
  for (int i = 100; i < 200; ++i) second.push_back({i, kWeekAgo + i * 1000});
  for (int i = 0; i < kContent; ++i) content.push_back({i, kNow + i});
  auto gate = std::make_shared<std::atomic<bool>>(false);

  // Passes events through; opens the gate once the broadcast side has run
  // far ahead for a while (and is still running).
  class Pass final : public KeyedBroadcastProcessFunction<int, int, int, int> {
   public:
    explicit Pass(std::shared_ptr<std::atomic<bool>> gate) : gate_(std::move(gate)) {}
    absl::Status ProcessElement(const int& value, ReadOnlyContext&, Collector<int>& out) override {
      out.Collect(value);
      return absl::OkStatus();
    }
    absl::Status ProcessBroadcastElement(const int&, Context&, Collector<int>&) override {
      if (++seen_ == kContent / 2) gate_->store(true);
      return absl::OkStatus();
    }

   private:
    std::shared_ptr<std::atomic<bool>> gate_;
    int seen_ = 0;
  };
  Pipeline pipeline({.parallelism = 1, .batch_size = 8});
  auto strategy = WatermarkStrategy<int>::ForMonotonousTimestamps();
  auto broadcast = pipeline
                       .Source(testing::VectorSource<int>::Create(
                                   content, {.splits = 1, .records_per_second = 1000}),
                               strategy)
                       .Broadcast();
  auto sink = testing::CollectingSink<Seen>::Create();
  pipeline.Source(std::make_shared<GatedSource>(first, second, gate), strategy)
      .KeyBy([](const int& v) { return v % 4; })
      .Connect(broadcast)
      .Process(Pass(gate))
      .Process(Observe{})
      .Sink(sink);
  ASSERT_TRUE(pipeline.Run().ok());
  std::vector<Seen> seen = sink->Values();
  ASSERT_EQ(seen.size(), 200u);
  for (const Seen& s : seen) {
    EXPECT_LT(s.watermark, s.timestamp) << "event " << s.value << " arrived late downstream";
    EXPECT_LT(s.watermark, kWeekAgo + 200 * 1000) << "the broadcast side's watermark leaked";
  }
}

}  // namespace
}  // namespace weir
