// Tests of how watermarks, idleness and end of input combine: the InputSet
// every operator uses, and event time end to end through the public API
// (source watermarks, exchanges, keyed event-time timers, idle splits).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/internal/operator.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using internal::InputSet;
using ::testing::Optional;

// ---------------------------------------------------------------------------
// InputSet.

// What OperatorBase::HandleEnd does with an ended input.
std::optional<Timestamp> EndInput(InputSet& inputs, int input) {
  inputs.End(input);
  return inputs.Watermark(input, kMaxTimestamp);
}

TEST(InputSetTest, StartsWithoutWatermark) {
  InputSet inputs(3);
  EXPECT_EQ(inputs.size(), 3);
  EXPECT_EQ(inputs.watermark(), kMinTimestamp);
  EXPECT_FALSE(inputs.idle());
  EXPECT_FALSE(inputs.ended());
}

TEST(InputSetTest, WatermarkIsMinimumOverInputs) {
  InputSet inputs(3);
  EXPECT_EQ(inputs.Watermark(0, 10), std::nullopt);  // inputs 1 and 2 have none yet
  EXPECT_EQ(inputs.Watermark(1, 20), std::nullopt);
  EXPECT_THAT(inputs.Watermark(2, 5), Optional(5));
  EXPECT_EQ(inputs.watermark(), 5);
  EXPECT_THAT(inputs.Watermark(2, 30), Optional(10));
  EXPECT_THAT(inputs.Watermark(0, 25), Optional(20));
  EXPECT_EQ(inputs.Watermark(0, 26), std::nullopt);  // input 1 still holds it at 20
  EXPECT_EQ(inputs.watermark(), 20);
}

TEST(InputSetTest, SingleInputFollowsItsWatermark) {
  InputSet inputs(1);
  EXPECT_THAT(inputs.Watermark(0, -100), Optional(-100));
  EXPECT_THAT(inputs.Watermark(0, 7), Optional(7));
  EXPECT_EQ(inputs.Watermark(0, 7), std::nullopt);  // no change, nothing to emit
  EXPECT_THAT(inputs.Watermark(0, kMaxTimestamp), Optional(kMaxTimestamp));
}

TEST(InputSetTest, WatermarkNeverGoesBackwards) {
  InputSet inputs(2);
  inputs.Watermark(0, 100);
  EXPECT_THAT(inputs.Watermark(1, 100), Optional(100));
  // A regressing input is ignored.
  EXPECT_EQ(inputs.Watermark(0, 50), std::nullopt);
  EXPECT_EQ(inputs.watermark(), 100);
  EXPECT_EQ(inputs.Watermark(1, 150), std::nullopt);  // input 0 is still at 100, not 50
  EXPECT_THAT(inputs.Watermark(0, 120), Optional(120));

  // An idle input lets the watermark pass it; when it comes back behind, the
  // combined watermark holds instead of going back.
  InputSet with_idle(2);
  with_idle.Watermark(0, 10);
  with_idle.Watermark(1, 10);
  bool became_idle = false;
  with_idle.Idle(0, &became_idle);
  EXPECT_THAT(with_idle.Watermark(1, 200), Optional(200));
  EXPECT_EQ(with_idle.Watermark(0, 50), std::nullopt);  // back, but behind: no regression
  EXPECT_EQ(with_idle.watermark(), 200);
  EXPECT_EQ(with_idle.Watermark(1, 300), std::nullopt);  // held by input 0 (at 50)
  EXPECT_EQ(with_idle.Watermark(0, 180), std::nullopt);  // combined 180 < 200
  EXPECT_THAT(with_idle.Watermark(0, 250), Optional(250));
  EXPECT_EQ(with_idle.watermark(), 250);
}

TEST(InputSetTest, IdleInputDoesNotHoldBackTheWatermark) {
  InputSet inputs(2);
  EXPECT_EQ(inputs.Watermark(0, 100), std::nullopt);  // input 1 holds it at -inf
  bool became_idle = true;
  EXPECT_THAT(inputs.Idle(1, &became_idle), Optional(100));
  EXPECT_FALSE(became_idle);
  EXPECT_FALSE(inputs.idle());
  EXPECT_THAT(inputs.Watermark(0, 110), Optional(110));
}

TEST(InputSetTest, IdleWhenEveryInputIsIdle) {
  InputSet inputs(3);
  inputs.Watermark(0, 10);
  inputs.Watermark(1, 20);
  inputs.Watermark(2, 30);
  bool became_idle = true;
  EXPECT_THAT(inputs.Idle(0, &became_idle), Optional(20));
  EXPECT_FALSE(became_idle);
  EXPECT_THAT(inputs.Idle(1, &became_idle), Optional(30));
  EXPECT_FALSE(became_idle);
  EXPECT_FALSE(inputs.idle());
  // All idle: the operator turns idle once, and its watermark stays.
  EXPECT_EQ(inputs.Idle(2, &became_idle), std::nullopt);
  EXPECT_TRUE(became_idle);
  EXPECT_TRUE(inputs.idle());
  EXPECT_EQ(inputs.watermark(), 30);
  EXPECT_EQ(inputs.Idle(2, &became_idle), std::nullopt);
  EXPECT_FALSE(became_idle) << "reported idle twice";
  EXPECT_TRUE(inputs.idle());
}

// Each input goes idle before the next one's watermark arrives (producers
// that drained their input one after another, read through a repartition
// topic): once all are idle, the watermark is the newest any of them sent,
// not stuck at none.
TEST(InputSetTest, AllIdleTakesTheNewestWatermarkAnyIdleInputSent) {
  InputSet inputs(3);
  bool became_idle = false;
  EXPECT_EQ(inputs.Watermark(0, 4989), std::nullopt);
  EXPECT_EQ(inputs.Idle(0, &became_idle), std::nullopt);  // inputs 1 and 2 have none
  EXPECT_EQ(inputs.Watermark(1, 4994), std::nullopt);     // input 2 has none
  EXPECT_EQ(inputs.Idle(1, &became_idle), std::nullopt);
  EXPECT_FALSE(became_idle);
  EXPECT_THAT(inputs.Idle(2, &became_idle), Optional(4994));
  EXPECT_TRUE(became_idle);
  // An input that comes back below it cannot move it back.
  EXPECT_EQ(inputs.Watermark(2, 100), std::nullopt);
  EXPECT_EQ(inputs.watermark(), 4994);
}

TEST(InputSetTest, IdleWhenEveryInputThatHasNotEndedIsIdle) {
  {
    InputSet inputs(3);
    EndInput(inputs, 2);
    bool became_idle = true;
    inputs.Idle(0, &became_idle);
    EXPECT_FALSE(became_idle);
    inputs.Idle(1, &became_idle);
    EXPECT_TRUE(became_idle);
    EXPECT_TRUE(inputs.idle());
    EXPECT_FALSE(inputs.ended());
  }
  {
    // The other order: input 0 idles first, then the last active input ends
    // (as the runtime delivers it: its final watermark, then end).
    InputSet inputs(2);
    bool became_idle = true;
    inputs.Idle(0, &became_idle);
    EXPECT_FALSE(became_idle);
    EXPECT_THAT(inputs.Watermark(1, kMaxTimestamp), Optional(kMaxTimestamp));
    EXPECT_FALSE(inputs.End(1));
    inputs.Watermark(1, kMaxTimestamp);
    EXPECT_TRUE(inputs.idle());
    EXPECT_FALSE(inputs.ended());
  }
}

TEST(InputSetTest, ABatchActivatesAnIdleInput) {
  InputSet inputs(2);
  bool became_idle = false;
  inputs.Idle(0, &became_idle);
  inputs.Idle(1, &became_idle);
  ASSERT_TRUE(inputs.idle());
  inputs.Activate(0);
  EXPECT_FALSE(inputs.idle());
  // Input 0 is active again, without a watermark yet: it holds input 1 back.
  EXPECT_EQ(inputs.Watermark(1, 50), std::nullopt);
  EXPECT_THAT(inputs.Watermark(0, 40), Optional(40));
  // Turning idle again is reported again.
  inputs.Idle(0, &became_idle);
  EXPECT_FALSE(became_idle);  // input 1 is active (it sent a watermark)
  inputs.Idle(1, &became_idle);
  EXPECT_TRUE(became_idle);
}

TEST(InputSetTest, AWatermarkActivatesAnIdleInput) {
  InputSet inputs(2);
  bool became_idle = false;
  inputs.Watermark(0, 5);
  inputs.Watermark(1, 5);
  inputs.Idle(0, &became_idle);
  inputs.Idle(1, &became_idle);
  ASSERT_TRUE(became_idle);
  EXPECT_THAT(inputs.Watermark(0, 10), Optional(10));  // input 1 is still idle
  EXPECT_FALSE(inputs.idle());
  EXPECT_EQ(inputs.Watermark(1, 8), std::nullopt);  // back at 8: holds, never regresses
  EXPECT_EQ(inputs.Watermark(0, 20), std::nullopt);
  EXPECT_THAT(inputs.Watermark(1, 15), Optional(15));
}

TEST(InputSetTest, EndedInputCountsAsPlusInfinity) {
  InputSet inputs(3);
  inputs.Watermark(0, 10);
  inputs.Watermark(1, 20);
  inputs.Watermark(2, 30);
  ASSERT_EQ(inputs.watermark(), 10);
  EXPECT_THAT(EndInput(inputs, 0), Optional(20));
  EXPECT_FALSE(inputs.ended());
  EXPECT_THAT(EndInput(inputs, 1), Optional(30));
  // A late watermark on an ended input changes nothing.
  EXPECT_EQ(inputs.Watermark(0, 5), std::nullopt);
  EXPECT_EQ(inputs.watermark(), 30);
  EXPECT_FALSE(inputs.ended());
  EXPECT_THAT(EndInput(inputs, 2), Optional(kMaxTimestamp));
  EXPECT_TRUE(inputs.ended());
  EXPECT_EQ(inputs.watermark(), kMaxTimestamp);
}

TEST(InputSetTest, EndIsCountedOncePerInput) {
  InputSet inputs(2);
  EXPECT_FALSE(inputs.End(0));
  EXPECT_FALSE(inputs.End(0));
  EXPECT_FALSE(inputs.ended());
  EXPECT_TRUE(inputs.End(1));
  EXPECT_TRUE(inputs.ended());
}

TEST(InputSetTest, EndedAndIdleInputsLetTheRestThrough) {
  InputSet inputs(3);
  bool became_idle = false;
  inputs.Watermark(0, 10);
  EndInput(inputs, 1);
  inputs.Idle(2, &became_idle);
  EXPECT_FALSE(became_idle);
  EXPECT_EQ(inputs.watermark(), 10);
  EXPECT_THAT(inputs.Watermark(0, 70), Optional(70));
}

TEST(InputSetTest, InputWatermarkIsEachInputsOwn) {
  InputSet inputs(2);
  bool became_idle = false;
  EXPECT_EQ(inputs.input_watermark(1), kMinTimestamp);
  inputs.Watermark(0, 500);
  inputs.Watermark(1, 90);
  EXPECT_EQ(inputs.watermark(), 90);
  EXPECT_EQ(inputs.input_watermark(0), 500);
  EXPECT_EQ(inputs.input_watermark(1), 90);
  // Idle: it holds nothing back.
  inputs.Idle(1, &became_idle);
  EXPECT_EQ(inputs.input_watermark(1), kMaxTimestamp);
  EXPECT_EQ(inputs.watermark(), 500);
  // Active again (a batch): back at its own watermark.
  inputs.Activate(1);
  EXPECT_EQ(inputs.input_watermark(1), 90);
  EndInput(inputs, 1);
  EXPECT_EQ(inputs.input_watermark(1), kMaxTimestamp);
  EXPECT_EQ(inputs.input_watermark(0), 500);
}

// ---------------------------------------------------------------------------
// Event time end to end.

// What a WatermarkProbe saw, from every worker.
struct Observations {
  struct Element {
    int worker;
    Timestamp ts;
    Timestamp watermark;
  };
  struct Timer {
    int worker;
    Timestamp ts;
    Timestamp watermark;  // ctx.current_watermark() while firing
    Timestamp ctx_ts;     // ctx.timestamp() while firing
    TimeDomain domain;
  };

  std::vector<Element> Elements() const {
    std::lock_guard<std::mutex> lock(mutex);
    return elements;
  }
  std::vector<Timer> Timers() const {
    std::lock_guard<std::mutex> lock(mutex);
    return timers;
  }

  mutable std::mutex mutex;
  std::vector<Element> elements;
  std::vector<Timer> timers;
  std::atomic<int64_t> timers_fired{0};
};

// Registers an event-time timer at every element's timestamp and records the
// watermark it sees for elements and timers.
class WatermarkProbe final : public KeyedProcessFunction<int, int, int> {
 public:
  explicit WatermarkProbe(std::shared_ptr<Observations> observations)
      : observations_(std::move(observations)) {}

  absl::Status ProcessElement(const int&, Context& ctx, Collector<int>&) override {
    {
      std::lock_guard<std::mutex> lock(observations_->mutex);
      observations_->elements.push_back(
          {ctx.worker_index(), ctx.timestamp(), ctx.current_watermark()});
    }
    ctx.timer_service().RegisterEventTimeTimer(ctx.timestamp());
    return absl::OkStatus();
  }

  absl::Status OnTimer(Timestamp timestamp, OnTimerContext& ctx, Collector<int>& out) override {
    {
      std::lock_guard<std::mutex> lock(observations_->mutex);
      observations_->timers.push_back({ctx.worker_index(), timestamp, ctx.current_watermark(),
                                       ctx.timestamp(), ctx.time_domain()});
    }
    observations_->timers_fired.fetch_add(1);
    out.Collect(ctx.current_key());
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<Observations> observations_;
};

// Adds KeyBy -> WatermarkProbe ("probe") -> a discarding sink.
void AddProbe(const Stream<int>& stream, std::shared_ptr<Observations> observations) {
  stream.KeyBy([](const int& x) { return x % 17; })
      .Process(WatermarkProbe(std::move(observations)))
      .Name("probe")
      .Sink([](const int&) {});
}

// Elements are never late, timers fire only once the watermark has reached
// them, each worker fires its timers in timestamp order, and every element's
// timer fires exactly once.
void ExpectEventTimeInvariants(const Observations& observations) {
  const std::vector<Observations::Element> elements = observations.Elements();
  const std::vector<Observations::Timer> timers = observations.Timers();

  std::map<int, Timestamp> last_element_watermark;
  for (const auto& element : elements) {
    EXPECT_GT(element.ts, element.watermark) << "element at " << element.ts << " arrived late";
    auto [it, inserted] = last_element_watermark.emplace(element.worker, element.watermark);
    if (!inserted) {
      EXPECT_GE(element.watermark, it->second)
          << "watermark went backwards on worker " << element.worker;
      it->second = element.watermark;
    }
  }

  std::map<int, Timestamp> last_timer;
  for (const auto& timer : timers) {
    EXPECT_GE(timer.watermark, timer.ts) << "timer " << timer.ts << " fired early";
    EXPECT_EQ(timer.ctx_ts, timer.ts);
    EXPECT_EQ(timer.domain, TimeDomain::kEventTime);
    auto [it, inserted] = last_timer.emplace(timer.worker, timer.ts);
    if (!inserted) {
      EXPECT_GE(timer.ts, it->second) << "timers out of order on worker " << timer.worker;
      it->second = timer.ts;
    }
  }

  std::multiset<Timestamp> element_ts;
  for (const auto& element : elements) element_ts.insert(element.ts);
  std::multiset<Timestamp> timer_ts;
  for (const auto& timer : timers) timer_ts.insert(timer.ts);
  EXPECT_TRUE(element_ts == timer_ts)
      << elements.size() << " elements, " << timers.size() << " timers";
}

class EventTimeTest : public ::testing::TestWithParam<int> {};

TEST_P(EventTimeTest, TimersFireInOrderOnceTheWatermarkPassesThem) {
  constexpr int kRecords = 4000;
  constexpr int64_t kDelayMs = 50;
  // Timestamps are unique, so every element registers its own timer.
  std::vector<testing::TimestampedValue<int>> records;
  for (int idx = 0; idx < kRecords; ++idx) records.push_back({idx, 1000 + 10 * int64_t{idx}});
  const Timestamp max_ts = records.back().timestamp;

  Pipeline pipeline({.parallelism = GetParam(), .batch_size = 64});
  auto observations = std::make_shared<Observations>();
  // Out of order by up to 50 ms; the watermark allows exactly that.
  auto source = testing::VectorSource<int>::Create(
      records, {.splits = 4, .records_per_poll = 32, .jitter = absl::Milliseconds(kDelayMs)});
  AddProbe(pipeline.Source(
               source, WatermarkStrategy<int>::BoundedOutOfOrderness(absl::Milliseconds(kDelayMs))),
           observations);
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(30));
  ASSERT_TRUE(result.status.ok()) << result.status;

  ExpectEventTimeInvariants(*observations);
  const auto timers = observations->Timers();
  ASSERT_EQ(timers.size(), static_cast<size_t>(kRecords));
  EXPECT_EQ(result.TimersFired("probe"), kRecords);

  int fired_while_running = 0;
  int fired_at_end = 0;
  for (const auto& timer : timers) {
    if (timer.watermark == kMaxTimestamp) {
      ++fired_at_end;
    } else {
      ++fired_while_running;
    }
    // No watermark before the end can reach past the newest record's bound.
    if (timer.ts > max_ts - kDelayMs - 1) {
      EXPECT_EQ(timer.watermark, kMaxTimestamp) << "timer " << timer.ts;
    }
  }
  // Intermediate watermarks drove most timers; the final +inf fired the rest.
  EXPECT_GT(fired_while_running, 0);
  EXPECT_GT(fired_at_end, 0);
}

INSTANTIATE_TEST_SUITE_P(Parallelism, EventTimeTest, ::testing::Values(1, 2, 4));

// Polls `condition` until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// An unbounded source whose splits run dry (and report idle), next to a live
// one: the watermark follows the live split and reaches the bound of its
// newest record while the job keeps running; Stop() then fires the rest.
TEST(IdlenessTest, WatermarkFollowsTheLiveSplitWhileOthersRunDry) {
  constexpr int kLiveRecords = 3000;
  constexpr int64_t kDelayMs = 10;
  std::vector<testing::TimestampedValue<int>> live;
  for (int idx = 0; idx < kLiveRecords; ++idx) live.push_back({idx, 1000 + 10 * int64_t{idx}});
  const Timestamp live_watermark = live.back().timestamp - kDelayMs - 1;
  // Four splits of one old record each: they run dry after their first poll.
  std::vector<testing::TimestampedValue<int>> dry;
  for (int idx = 0; idx < 4; ++idx) dry.push_back({100'000 + idx, idx});

  const auto strategy = WatermarkStrategy<int>::BoundedOutOfOrderness(absl::Milliseconds(kDelayMs))
                            .WithIdleness(absl::Milliseconds(20));
  // Parallelism 2: worker 1 has no split of the live source at all.
  Pipeline pipeline({.parallelism = 2, .batch_size = 32});
  auto observations = std::make_shared<Observations>();
  auto live_stream =
      pipeline.Source(testing::VectorSource<int>::Create(
                          live, {.splits = 1, .records_per_poll = 20, .unbounded = true}),
                      strategy);
  auto dry_stream = pipeline.Source(
      testing::VectorSource<int>::Create(dry, {.splits = 4, .unbounded = true}), strategy);
  AddProbe(live_stream.Union(dry_stream), observations);

  int64_t expected_before_stop = 0;
  for (const auto& record : live) expected_before_stop += record.timestamp <= live_watermark;
  expected_before_stop += static_cast<int64_t>(dry.size());

  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const bool advanced = WaitFor([&] { return observations->timers_fired >= expected_before_stop; });
  const int64_t fired_before_stop = observations->timers_fired.load();
  EXPECT_FALSE(job->done()) << "an unbounded source ended by itself";
  job->Stop();
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;

  EXPECT_TRUE(advanced) << "the watermark stalled: " << fired_before_stop << " of "
                        << expected_before_stop << " timers fired before Stop()";
  // Nothing past the live split's bound can fire before Stop().
  EXPECT_EQ(fired_before_stop, expected_before_stop);
  ExpectEventTimeInvariants(*observations);
  const auto timers = observations->Timers();
  EXPECT_EQ(timers.size(), live.size() + dry.size());
  for (const auto& timer : timers) {
    if (timer.ts > live_watermark) {
      EXPECT_EQ(timer.watermark, kMaxTimestamp) << "timer " << timer.ts;
    } else {
      EXPECT_LE(timer.watermark, live_watermark) << "timer " << timer.ts;
    }
  }
}

// A source scripted poll by poll: `script(poll, output)` runs on every poll.
// Its splits all go to worker 0.
class ScriptedSource final : public Source<int> {
 public:
  using Script = std::function<PollResult(int poll, SourceOutput<int>& out)>;
  ScriptedSource(int num_splits, Script script)
      : num_splits_(num_splits), script_(std::move(script)) {}

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    std::vector<SourceSplit> splits;
    for (int split = 0; split < num_splits_; ++split) {
      splits.push_back({"scripted-" + std::to_string(split)});
    }
    return splits;
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int>>> CreateReader(
      const SourceReaderContext&) override {
    return std::unique_ptr<SourceReader<int>>(new Reader(script_));
  }

 private:
  class Reader final : public SourceReader<int> {
   public:
    explicit Reader(Script script) : script_(std::move(script)) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<int>& out) override {
      return script_(poll_++, out);
    }

   private:
    Script script_;
    int poll_ = 0;
  };

  int num_splits_;
  Script script_;
};

// A split that stops delivering without saying so holds the watermark back
// until the idleness timeout passes; then the watermark follows the others.
TEST(IdlenessTest, SilentSplitTimesOutWithIdleness) {
  for (bool with_idleness : {true, false}) {
    SCOPED_TRACE(with_idleness ? "with idleness" : "without idleness");
    constexpr int64_t kDelayMs = 5;
    auto emitted = std::make_shared<std::atomic<int>>(0);
    // Split 1 delivers one record and falls silent; split 0 delivers one
    // record per millisecond, with timestamps 10 ms apart, until stopped.
    auto next_emit = std::make_shared<std::chrono::steady_clock::time_point>();
    auto source =
        std::make_shared<ScriptedSource>(2, [emitted, next_emit](int poll, SourceOutput<int>& out) {
          if (poll == 0) {
            out.Collect(1, 1'000'000, 1000);
            emitted->fetch_add(1);
          }
          const auto now = std::chrono::steady_clock::now();
          if (now >= *next_emit) {
            const int seq = emitted->load();
            out.Collect(0, seq, 1000 + 10 * int64_t{seq});
            emitted->fetch_add(1);
            *next_emit = now + std::chrono::milliseconds(1);
          }
          return PollResult::kNothingAvailable;
        });
    auto strategy = WatermarkStrategy<int>::BoundedOutOfOrderness(absl::Milliseconds(kDelayMs));
    if (with_idleness) strategy = strategy.WithIdleness(absl::Milliseconds(30));

    Pipeline pipeline({.parallelism = 1});
    auto observations = std::make_shared<Observations>();
    AddProbe(pipeline.Source(source, strategy), observations);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    if (with_idleness) {
      // Timers past the silent split's record (1000) fire only once it counts as idle.
      EXPECT_TRUE(WaitFor([&] { return observations->timers_fired >= 50; }))
          << "the watermark stayed behind the silent split";
    } else {
      ASSERT_TRUE(WaitFor([&] { return emitted->load() >= 100; }));
      // Split 1's bound (1000 - 5 - 1) is below every record's timestamp.
      EXPECT_EQ(observations->timers_fired.load(), 0);
    }
    job->Stop();
    absl::Status status = job->Wait();
    ASSERT_TRUE(status.ok()) << status;
    ExpectEventTimeInvariants(*observations);
    EXPECT_EQ(observations->Timers().size(), static_cast<size_t>(emitted->load()));
  }
}

// A split that reported idle and then delivers again holds the watermark
// back again.
TEST(IdlenessTest, SplitThatResumesHoldsTheWatermarkAgain) {
  constexpr int64_t kDelayMs = 5;
  constexpr int kPolls = 60;
  constexpr int kResumePoll = 20;
  auto source = std::make_shared<ScriptedSource>(2, [](int poll, SourceOutput<int>& out) {
    out.Collect(0, poll, 1000 + 10 * int64_t{poll});
    if (poll == 0) out.MarkIdle(1);
    // Split 1 comes back once, in step with split 0, then falls silent
    // without reporting idle again.
    if (poll == kResumePoll) out.Collect(1, 1'000'000, 1000 + 10 * int64_t{poll});
    return poll + 1 == kPolls ? PollResult::kEndOfInput : PollResult::kMoreAvailable;
  });
  Pipeline pipeline({.parallelism = 1});
  auto observations = std::make_shared<Observations>();
  AddProbe(pipeline.Source(
               source, WatermarkStrategy<int>::BoundedOutOfOrderness(absl::Milliseconds(kDelayMs))),
           observations);
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  ASSERT_TRUE(result.status.ok()) << result.status;

  ExpectEventTimeInvariants(*observations);
  const Timestamp held_at = 1000 + 10 * kResumePoll - kDelayMs - 1;
  const auto timers = observations->Timers();
  EXPECT_EQ(timers.size(), static_cast<size_t>(kPolls + 1));
  for (const auto& timer : timers) {
    if (timer.ts <= held_at) {
      // While split 1 was idle, split 0 alone drove the watermark.
      EXPECT_LE(timer.watermark, held_at) << "timer " << timer.ts;
    } else {
      // Afterwards split 1 (silent at 1200) holds it until the end.
      EXPECT_EQ(timer.watermark, kMaxTimestamp) << "timer " << timer.ts;
    }
  }
}

// A split that delivers and reports idle in the same poll (a reader that
// has caught up, as a Kafka partition does on every poll of a quiet topic)
// still advances the watermark with what it delivered.
TEST(IdlenessTest, CaughtUpSplitStillAdvancesTheWatermark) {
  constexpr int64_t kDelayMs = 5;
  constexpr int kPolls = 30;
  auto source = std::make_shared<ScriptedSource>(1, [](int poll, SourceOutput<int>& out) {
    out.Collect(0, poll, 1000 + 10 * int64_t{poll});
    out.MarkIdle(0);
    return poll + 1 == kPolls ? PollResult::kEndOfInput : PollResult::kMoreAvailable;
  });
  Pipeline pipeline({.parallelism = 1});
  auto observations = std::make_shared<Observations>();
  AddProbe(pipeline.Source(
               source, WatermarkStrategy<int>::BoundedOutOfOrderness(absl::Milliseconds(kDelayMs))),
           observations);
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  ASSERT_TRUE(result.status.ok()) << result.status;

  ExpectEventTimeInvariants(*observations);
  // The watermark after poll p is 1000 + 10 p - 6; the last poll ends the input.
  const Timestamp last_running_watermark = 1000 + 10 * (kPolls - 2) - kDelayMs - 1;
  const auto timers = observations->Timers();
  EXPECT_EQ(timers.size(), static_cast<size_t>(kPolls));
  for (const auto& timer : timers) {
    if (timer.ts <= last_running_watermark) {
      EXPECT_LT(timer.watermark, kMaxTimestamp) << "timer " << timer.ts << " waited for the end";
    } else {
      EXPECT_EQ(timer.watermark, kMaxTimestamp) << "timer " << timer.ts;
    }
  }
}

// What a BroadcastWatermarkProbe saw for each main element.
struct BroadcastObservation {
  int value = 0;
  Timestamp broadcast_watermark = kMinTimestamp;
  Timestamp watermark = kMinTimestamp;
};

struct BroadcastProbeShared {
  std::atomic<int> rows{0};
  // The newest broadcast_watermark() a main element saw.
  std::atomic<Timestamp> seen{kMinTimestamp};
  std::mutex mu;
  std::vector<BroadcastObservation> observations;
};

class BroadcastWatermarkProbe final : public KeyedBroadcastProcessFunction<int, int, int, int> {
 public:
  explicit BroadcastWatermarkProbe(std::shared_ptr<BroadcastProbeShared> shared)
      : shared_(std::move(shared)) {}
  absl::Status ProcessElement(const int& value, ReadOnlyContext& ctx, Collector<int>&) override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->observations.push_back({value, ctx.broadcast_watermark(), ctx.current_watermark()});
    shared_->seen = ctx.broadcast_watermark();
    return absl::OkStatus();
  }
  absl::Status ProcessBroadcastElement(const int&, Context&, Collector<int>&) override {
    ++shared_->rows;
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<BroadcastProbeShared> shared_;
};

// broadcast_watermark() is the broadcast input's own: the main input's
// event time does not move it, an idle broadcast input shows +inf.
TEST(BroadcastWatermarkTest, FollowsTheBroadcastInputAlone) {
  auto shared = std::make_shared<BroadcastProbeShared>();
  std::atomic<int> phase{0};  // 1: the broadcast source turns idle; 2: it ends
  // One row at 100 (watermark 99), then nothing until told.
  auto rows = std::make_shared<ScriptedSource>(1, [&phase](int poll, SourceOutput<int>& out) {
    if (poll == 0) out.Collect(0, 1, 100);
    if (phase.load() == 1) out.MarkIdle(0);
    return phase.load() == 2 ? PollResult::kEndOfInput : PollResult::kNothingAvailable;
  });
  // Probes at 5000 once the row arrived: the main watermark is far ahead of
  // the broadcast one.
  auto events = std::make_shared<ScriptedSource>(1, [&](int, SourceOutput<int>& out) {
    if (shared->rows.load() == 0) return PollResult::kNothingAvailable;
    const Timestamp seen = shared->seen.load();
    if (phase.load() == 0 && seen == 99) {
      // Keep probing a while at 99, then let the broadcast side go idle.
      std::lock_guard<std::mutex> lock(shared->mu);
      if (shared->observations.size() >= 50) phase = 1;
    } else if (phase.load() == 1 && seen == kMaxTimestamp) {
      phase = 2;
      return PollResult::kEndOfInput;
    }
    out.Collect(0, static_cast<int>(phase.load()), 5000);
    absl::SleepFor(absl::Milliseconds(1));
    return PollResult::kMoreAvailable;
  });
  Pipeline pipeline({.parallelism = 1});
  auto monotonous = WatermarkStrategy<int>::ForMonotonousTimestamps();
  pipeline.Source(events, monotonous)
      .KeyBy([](int) { return 0; })
      .Connect(pipeline.Source(rows, monotonous).Broadcast())
      .Process(BroadcastWatermarkProbe(shared))
      .Sink(testing::CollectingSink<int>::Create());
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(20));
  ASSERT_TRUE(result.status.ok()) << result.status;

  size_t held = 0;
  size_t idle = 0;
  for (const BroadcastObservation& o : shared->observations) {
    // Never the main input's 4999: only what the broadcast side said.
    EXPECT_THAT(o.broadcast_watermark, ::testing::AnyOf(kMinTimestamp, 99, kMaxTimestamp));
    EXPECT_LE(o.watermark, 4999);
    if (o.broadcast_watermark == 99) {
      ++held;
      EXPECT_LE(o.watermark, 99);  // the job's watermark waits for the broadcast side
    }
    if (o.broadcast_watermark == kMaxTimestamp) {
      ++idle;
      EXPECT_EQ(o.value, 1) << "idle before the source said so";
    }
  }
  EXPECT_GE(held, 40u);
  EXPECT_GE(idle, 1u);
}

}  // namespace
}  // namespace weir
