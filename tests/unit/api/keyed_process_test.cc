// KeyBy + KeyedProcessFunction: a randomized comparison of per-key running
// counts and sums against a plain single-threaded computation (at parallelism
// 1, 2 and 4, several seeds), key ownership and per-key order; event-time and
// processing-time timers.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
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

constexpr absl::Duration kDeadline = absl::Seconds(20);

// ---------------------------------------------------------------------------
// Randomized running count and sum per key.

template <class K>
struct Event {
  K key{};
  int64_t value = 0;
  int64_t seq = 0;  // index in the input: the record's split is seq % splits
};

template <class K>
struct Update {
  K key{};
  int64_t count = 0;  // records of this key so far, this one included
  int64_t sum = 0;    // sum of their values
  int64_t value = 0;
  int64_t seq = 0;
  int worker = 0;
};

template <class K>
class RunningCountAndSum : public KeyedProcessFunction<K, Event<K>, Update<K>> {
 public:
  using Base = KeyedProcessFunction<K, Event<K>, Update<K>>;

  absl::Status ProcessElement(const Event<K>& e, typename Base::Context& ctx,
                              Collector<Update<K>>& out) override {
    if (!(ctx.current_key() == e.key))
      return absl::InternalError("current_key() is not the record's key");
    if (ctx.timestamp() != e.seq)
      return absl::InternalError("timestamp() is not the record's timestamp");
    Totals& totals = totals_[ctx.current_key()];
    ++totals.count;
    totals.sum += e.value;
    out.Collect(
        Update<K>{ctx.current_key(), totals.count, totals.sum, e.value, e.seq, ctx.worker_index()});
    return absl::OkStatus();
  }

 private:
  struct Totals {
    int64_t count = 0;
    int64_t sum = 0;
  };
  absl::flat_hash_map<K, Totals> totals_;
};

template <class K>
K KeyFromNumber(int64_t n) {
  if constexpr (std::is_same_v<K, std::string>) {
    return absl::StrCat("user-", n);
  } else {
    return static_cast<K>(n);
  }
}

struct RandomCase {
  int parallelism = 1;
  uint64_t seed = 0;
};

std::string CaseName(const ::testing::TestParamInfo<RandomCase>& param_info) {
  return absl::StrCat("p", param_info.param.parallelism, "_seed", param_info.param.seed);
}

std::vector<RandomCase> AllCases() {
  std::vector<RandomCase> cases;
  for (int parallelism : {1, 2, 4}) {
    for (uint64_t seed : {1, 2, 3, 4, 5}) cases.push_back({parallelism, seed});
  }
  return cases;
}

// Runs the running count/sum pipeline over random input and checks it
// against a single-threaded computation.
template <class K>
void CheckRunningCountAndSum(const RandomCase& test_case) {
  std::mt19937_64 rng(test_case.seed * 7919 + static_cast<uint64_t>(test_case.parallelism));
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };

  // Random shape: a single hot key up to many cold ones, tiny to large
  // batches and polls, tiny rings (backpressure) to roomy ones.
  const int64_t num_keys = std::vector<int64_t>{1, 7, 100, 1000, 5000}[uniform(0, 4)];
  const int num_records = static_cast<int>(uniform(2000, 6000));
  const int splits = static_cast<int>(uniform(1, 6));
  const PipelineOptions options{.parallelism = test_case.parallelism,
                                .batch_size = static_cast<size_t>(uniform(1, 300)),
                                .queue_capacity = static_cast<size_t>(uniform(1, 8))};
  const testing::VectorSourceOptions source_options{
      .splits = splits, .records_per_poll = static_cast<size_t>(uniform(1, 200))};
  SCOPED_TRACE(absl::StrCat("keys=", num_keys, " records=", num_records, " splits=", splits,
                            " batch_size=", options.batch_size,
                            " queue_capacity=", options.queue_capacity,
                            " records_per_poll=", source_options.records_per_poll));

  std::vector<testing::TimestampedValue<Event<K>>> input;
  std::map<K, std::pair<int64_t, int64_t>> expected;  // key -> (count, sum), computed plainly
  for (int seq = 0; seq < num_records; ++seq) {
    // Skewed keys: half the records hit the first tenth of the key space.
    const int64_t n = uniform(0, 1) == 0 ? uniform(0, std::max<int64_t>(0, num_keys / 10 - 1))
                                         : uniform(0, num_keys - 1);
    Event<K> e{KeyFromNumber<K>(n), uniform(-1000, 1000), seq};
    auto& [count, sum] = expected[e.key];
    ++count;
    sum += e.value;
    input.push_back({e, seq});
  }

  Pipeline pipeline(options);
  auto sink = testing::CollectingSink<Update<K>>::Create();
  pipeline.Source(testing::VectorSource<Event<K>>::Create(input, source_options))
      .KeyBy([](const Event<K>& e) { return e.key; })
      .Process(RunningCountAndSum<K>{})
      .Name("running")
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.RecordsIn("running"), num_records);
  EXPECT_EQ(result.RecordsOut("running"), num_records);

  // The sink runs fused after the keyed operator, so per key its records
  // appear in the order the keyed operator processed them.
  const std::vector<testing::TimestampedValue<Update<K>>> records = sink->Records();
  ASSERT_EQ(records.size(), static_cast<size_t>(num_records));
  struct Seen {
    int64_t count = 0;
    int64_t sum = 0;
    int worker = -1;
    std::vector<int64_t> last_seq_per_split;
  };
  std::map<K, Seen> seen;
  std::vector<bool> seqs(num_records, false);
  int errors = 0;
  auto fail = [&errors](const std::string& message) {
    if (++errors <= 10) ADD_FAILURE() << message;
  };
  for (const auto& [u, timestamp] : records) {
    if (timestamp != u.seq) fail(absl::StrCat("record ", u.seq, " has timestamp ", timestamp));
    if (u.seq < 0 || u.seq >= num_records || seqs[u.seq]) {
      fail(absl::StrCat("record ", u.seq, " is unknown or duplicated"));
      continue;
    }
    seqs[u.seq] = true;
    Seen& s = seen[u.key];
    if (s.worker == -1) {
      s.worker = u.worker;
      s.last_seq_per_split.assign(splits, -1);
      const int owner = WorkerForKeyGroup(KeyGroupOf(u.key, options.max_parallelism),
                                          options.max_parallelism, options.parallelism);
      if (u.worker != owner)
        fail(absl::StrCat("key ", u.key, " on worker ", u.worker, ", owner ", owner));
    } else if (s.worker != u.worker) {
      fail(absl::StrCat("key ", u.key, " seen on workers ", s.worker, " and ", u.worker));
    }
    // Running count and sum advance by exactly this record.
    if (u.count != s.count + 1 || u.sum != s.sum + u.value) {
      fail(absl::StrCat("key ", u.key, ": (count, sum) went from (", s.count, ", ", s.sum, ") to (",
                        u.count, ", ", u.sum, ") with value ", u.value));
    }
    s.count = u.count;
    s.sum = u.sum;
    // Records of one key from one split keep their source order.
    int64_t& last = s.last_seq_per_split[u.seq % splits];
    if (u.seq <= last)
      fail(absl::StrCat("key ", u.key, ": record ", u.seq, " after record ", last));
    last = u.seq;
  }
  EXPECT_EQ(errors, 0);
  ASSERT_EQ(seen.size(), expected.size());
  for (const auto& [key, totals] : expected) {
    EXPECT_EQ(seen[key].count, totals.first) << "key " << key;
    EXPECT_EQ(seen[key].sum, totals.second) << "key " << key;
  }
}

class RandomizedKeyedTest : public ::testing::TestWithParam<RandomCase> {};

INSTANTIATE_TEST_SUITE_P(Seeds, RandomizedKeyedTest, ::testing::ValuesIn(AllCases()), CaseName);

TEST_P(RandomizedKeyedTest, RunningCountAndSumWithIntegerKeys) {
  CheckRunningCountAndSum<int64_t>(GetParam());
}

TEST_P(RandomizedKeyedTest, RunningCountAndSumWithStringKeys) {
  CheckRunningCountAndSum<std::string>(GetParam());
}

// ---------------------------------------------------------------------------
// Event-time timers.

class TimerTest : public ::testing::TestWithParam<int> {
 protected:
  int parallelism() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Parallelism, TimerTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return absl::StrCat("p", param_info.param);
                         });

struct Reading {
  int64_t key = 0;
  int64_t seq = 0;
};

struct Fired {
  int64_t key = 0;
  Timestamp timer = 0;      // the timestamp OnTimer was called with
  Timestamp ctx_time = 0;   // ctx.timestamp() in OnTimer
  Timestamp watermark = 0;  // ctx.current_watermark() in OnTimer
  TimeDomain domain = TimeDomain::kProcessingTime;
  int64_t count = 0;
  int worker = 0;
};

constexpr Timestamp kWindow = 1000;
constexpr Timestamp kFar = 1'000'000'000;

// A tumbling-window count by timers: each record counts towards its window
// and registers the window-end timer (many records, one timer per key and
// window); it also registers a far timer and deletes it again at once.
class WindowCount : public KeyedProcessFunction<int64_t, Reading, Fired> {
 public:
  absl::Status ProcessElement(const Reading& r, Context& ctx, Collector<Fired>&) override {
    const Timestamp end = (ctx.timestamp() / kWindow + 1) * kWindow - 1;
    ++counts_[{ctx.current_key(), end}];
    ctx.timer_service().RegisterEventTimeTimer(end);
    ctx.timer_service().RegisterEventTimeTimer(kFar + r.seq);
    ctx.timer_service().DeleteEventTimeTimer(kFar + r.seq);
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp ts, OnTimerContext& ctx, Collector<Fired>& out) override {
    auto it = counts_.find({ctx.current_key(), ts});
    if (it == counts_.end()) return absl::InternalError(absl::StrCat("unexpected timer ", ts));
    out.Collect(Fired{ctx.current_key(), ts, ctx.timestamp(), ctx.current_watermark(),
                      ctx.time_domain(), it->second, ctx.worker_index()});
    counts_.erase(it);
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_map<std::pair<int64_t, Timestamp>, int64_t> counts_;
};

TEST_P(TimerTest, EventTimeTimersFireOncePerKeyAndTimestamp) {
  constexpr int kRecords = 4000;
  constexpr absl::Duration kJitter = absl::Milliseconds(300);
  std::mt19937_64 rng(99);
  std::vector<testing::TimestampedValue<Reading>> input;
  for (int seq = 0; seq < kRecords; ++seq) {
    input.push_back(
        {Reading{static_cast<int64_t>(rng() % 23), seq}, static_cast<Timestamp>(rng() % 20'000)});
  }
  std::sort(input.begin(), input.end(),
            [](const auto& a, const auto& b) { return a.timestamp < b.timestamp; });
  std::map<std::pair<int64_t, Timestamp>, int64_t> expected;
  for (const auto& record : input)
    ++expected[{record.value.key, (record.timestamp / kWindow + 1) * kWindow - 1}];

  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 32});
  auto sink = testing::CollectingSink<Fired>::Create();
  // Out of order by up to the jitter, and the watermark allows for it: no
  // record is late, so no timer is registered again after it fired.
  pipeline
      .Source(testing::VectorSource<Reading>::Create(input,
                                                     {.records_per_poll = 20, .jitter = kJitter}),
              WatermarkStrategy<Reading>::BoundedOutOfOrderness(kJitter))
      .KeyBy([](const Reading& r) { return r.key; })
      .Process(WindowCount{})
      .Name("windows")
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::map<std::pair<int64_t, Timestamp>, int64_t> fired;
  int before_end = 0;
  for (const auto& [f, timestamp] : sink->Records()) {
    EXPECT_TRUE(fired.emplace(std::pair(f.key, f.timer), f.count).second)
        << "timer (" << f.key << ", " << f.timer << ") fired twice";
    EXPECT_EQ(timestamp, f.timer) << "OnTimer output carries the timer's timestamp";
    EXPECT_EQ(f.ctx_time, f.timer);
    EXPECT_EQ(f.domain, TimeDomain::kEventTime);
    EXPECT_GE(f.watermark, f.timer);
    EXPECT_EQ(f.worker, WorkerForKeyGroup(KeyGroupOf(f.key, 128), 128, parallelism()));
    if (f.watermark != kMaxTimestamp) ++before_end;
  }
  EXPECT_EQ(fired, expected);
  EXPECT_EQ(result.TimersFired("windows"), static_cast<int64_t>(expected.size()));
  // Watermarks advance while the input is read, not only at its end.
  EXPECT_GT(before_end, 0);
}

// A timer command: register or delete an event-time timer for a key.
struct TimerCommand {
  int64_t key = 0;
  bool del = false;
  Timestamp at = 0;
};

class TimerCommands : public KeyedProcessFunction<int64_t, TimerCommand, Fired> {
 public:
  absl::Status ProcessElement(const TimerCommand& c, Context& ctx, Collector<Fired>&) override {
    if (c.del) {
      ctx.timer_service().DeleteEventTimeTimer(c.at);
    } else {
      ctx.timer_service().RegisterEventTimeTimer(c.at);
    }
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp ts, OnTimerContext& ctx, Collector<Fired>& out) override {
    out.Collect(Fired{ctx.current_key(), ts, ctx.timestamp(), ctx.current_watermark(),
                      ctx.time_domain(), 0, ctx.worker_index()});
    return absl::OkStatus();
  }
};

TEST_P(TimerTest, RegisterDeduplicatesAndDeleteRemovesOnlyTheCurrentKeysTimer) {
  const std::vector<TimerCommand> commands = {
      {1, false, 100}, {1, true, 100},  {1, false, 200},  // deleted, then another
      {2, false, 100}, {2, false, 100},                   // registered twice: fires once
      {3, false, 300}, {3, true, 300},  {3, false, 300},  // deleted and registered again
      {4, false, 100}, {5, true, 100},                    // key 5 cannot delete key 4's
      {6, true, 500},                                     // deleting nothing is fine
      {7, false, 150}, {7, false, 160}, {7, true, 150},
      {7, true, 150},  // one of two deleted (twice)
  };
  Pipeline pipeline({.parallelism = parallelism()});
  auto sink = testing::CollectingSink<Fired>::Create();
  // One split: the commands of a key arrive in order. No watermarks: every
  // timer fires with the final watermark.
  pipeline.Source(testing::VectorSource<TimerCommand>::Create(commands, {.splits = 1}))
      .KeyBy([](const TimerCommand& c) { return c.key; })
      .Process(TimerCommands{})
      .Name("commands")
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::vector<std::pair<int64_t, Timestamp>> fired;
  std::map<int, Timestamp> last_per_worker;
  for (const auto& [f, timestamp] : sink->Records()) {
    fired.push_back({f.key, f.timer});
    EXPECT_EQ(timestamp, f.timer);
    EXPECT_EQ(f.watermark, kMaxTimestamp);
    // Timers fire in timestamp order.
    EXPECT_GE(f.timer, last_per_worker[f.worker]);
    last_per_worker[f.worker] = f.timer;
  }
  EXPECT_THAT(fired, ::testing::UnorderedElementsAre(std::pair<int64_t, Timestamp>{1, 200},
                                                     std::pair<int64_t, Timestamp>{2, 100},
                                                     std::pair<int64_t, Timestamp>{3, 300},
                                                     std::pair<int64_t, Timestamp>{4, 100},
                                                     std::pair<int64_t, Timestamp>{7, 160}));
  EXPECT_EQ(result.TimersFired("commands"), 5);
}

// Registers one timer per key; each firing below kChainEnd registers the next
// one 10000 later from inside OnTimer.
constexpr Timestamp kChainStep = 10'000;
constexpr Timestamp kChainEnd = 20'000;

class ChainedTimers : public KeyedProcessFunction<int64_t, Reading, Fired> {
 public:
  absl::Status ProcessElement(const Reading&, Context& ctx, Collector<Fired>&) override {
    // Once per key: registering 100 + key again after it fired would (as in
    // Flink) fire it again at the next watermark.
    if (registered_.insert(ctx.current_key()).second) {
      ctx.timer_service().RegisterEventTimeTimer(100 + ctx.current_key());
    }
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp ts, OnTimerContext& ctx, Collector<Fired>& out) override {
    out.Collect(Fired{ctx.current_key(), ts, ctx.timestamp(), ctx.current_watermark(),
                      ctx.time_domain(), 0, ctx.worker_index()});
    if (ts < kChainEnd) ctx.timer_service().RegisterEventTimeTimer(ts + kChainStep);
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_set<int64_t> registered_;
};

TEST_P(TimerTest, TimersRegisteredInOnTimerFire) {
  std::vector<testing::TimestampedValue<Reading>> input;
  for (int seq = 0; seq < 5000; ++seq) input.push_back({Reading{seq % 10, seq}, seq});
  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 50});
  auto sink = testing::CollectingSink<Fired>::Create();
  pipeline
      .Source(testing::VectorSource<Reading>::Create(input, {.records_per_poll = 50}),
              WatermarkStrategy<Reading>::ForMonotonousTimestamps())
      .KeyBy([](const Reading& r) { return r.key; })
      .Process(ChainedTimers{})
      .Name("chained")
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  // Per key: 100+k (while reading), then 10100+k and 20100+k, both registered
  // from OnTimer (the last one while the final watermark fires timers).
  std::set<std::pair<int64_t, Timestamp>> expected;
  for (int64_t key = 0; key < 10; ++key) {
    for (Timestamp base : {0, 10'000, 20'000}) expected.insert({key, base + 100 + key});
  }
  std::set<std::pair<int64_t, Timestamp>> fired;
  for (const auto& [f, timestamp] : sink->Records()) {
    EXPECT_TRUE(fired.insert({f.key, f.timer}).second);
    EXPECT_EQ(timestamp, f.timer);
    EXPECT_EQ(f.domain, TimeDomain::kEventTime);
  }
  EXPECT_EQ(fired, expected);
  EXPECT_EQ(result.TimersFired("chained"), 30);
}

// ---------------------------------------------------------------------------
// Processing-time timers.

struct ProcessingFired {
  int64_t key = 0;
  Timestamp timer = 0;
  Timestamp fired_at = 0;
  Timestamp registered_at = 0;  // processing time when the timer was registered
  TimeDomain domain = TimeDomain::kEventTime;
  bool chained = false;
};

constexpr Timestamp kDelayMs = 20;
constexpr Timestamp kChainDelayMs = 5;

// The first record of each key registers a processing-time timer 20ms later;
// that timer registers another one 5ms later from OnTimer.
class ProcessingTimers : public KeyedProcessFunction<int64_t, Reading, ProcessingFired> {
 public:
  absl::Status ProcessElement(const Reading&, Context& ctx, Collector<ProcessingFired>&) override {
    if (!registered_.insert(ctx.current_key()).second) return absl::OkStatus();
    const Timestamp now = ctx.timer_service().current_processing_time();
    registered_at_[{ctx.current_key(), now + kDelayMs}] = now;
    ctx.timer_service().RegisterProcessingTimeTimer(now + kDelayMs);
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp ts, OnTimerContext& ctx,
                       Collector<ProcessingFired>& out) override {
    auto it = registered_at_.find({ctx.current_key(), ts});
    if (it == registered_at_.end())
      return absl::InternalError(absl::StrCat("unexpected timer ", ts));
    const bool chained = chained_.contains(ctx.current_key());
    out.Collect(ProcessingFired{ctx.current_key(), ts, ctx.current_processing_time(), it->second,
                                ctx.time_domain(), chained});
    if (!chained) {
      chained_.insert(ctx.current_key());
      const Timestamp now = ctx.timer_service().current_processing_time();
      registered_at_[{ctx.current_key(), now + kChainDelayMs}] = now;
      ctx.timer_service().RegisterProcessingTimeTimer(now + kChainDelayMs);
    }
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_set<int64_t> registered_;
  absl::flat_hash_set<int64_t> chained_;
  absl::flat_hash_map<std::pair<int64_t, Timestamp>, Timestamp> registered_at_;
};

TEST_P(TimerTest, ProcessingTimeTimersFire) {
  std::vector<Reading> input;
  for (int seq = 0; seq < 200; ++seq) input.push_back({seq % 10, seq});
  Pipeline pipeline({.parallelism = parallelism()});
  auto sink = testing::CollectingSink<ProcessingFired>::Create();
  // Unbounded: the input never ends by itself, so timers must fire on the
  // wall clock while the job runs.
  pipeline.Source(testing::VectorSource<Reading>::Create(input, {.unbounded = true}))
      .KeyBy([](const Reading& r) { return r.key; })
      .Process(ProcessingTimers{})
      .Name("processing")
      .Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (sink->size() < 20 && absl::Now() < deadline && !job->done())
    absl::SleepFor(absl::Milliseconds(2));
  EXPECT_FALSE(job->done());
  job->Stop();
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;

  const auto records = sink->Records();
  ASSERT_EQ(records.size(), 20u) << "two processing-time timers per key should fire";
  std::set<std::pair<int64_t, bool>> fired;
  for (const auto& [f, timestamp] : records) {
    fired.insert({f.key, f.chained});
    EXPECT_EQ(f.domain, TimeDomain::kProcessingTime);
    EXPECT_EQ(f.timer, f.registered_at + (f.chained ? kChainDelayMs : kDelayMs));
    EXPECT_GE(f.fired_at, f.timer) << "a processing-time timer fired early";
  }
  EXPECT_EQ(fired.size(), 20u);
  int64_t timers_fired = 0;
  for (const auto& m : testing::OperatorMetricsOf(job->Metrics())) {
    if (m.name == "processing") timers_fired += m.timers_fired;
  }
  EXPECT_EQ(timers_fired, 20);
}

// ---------------------------------------------------------------------------
// Watermark holds: a function that keeps each element for a while of
// processing time (waiting for something) and emits it later. With a hold
// at the element's timestamp, the downstream operator never sees it late;
// without, the watermark runs ahead of it.

class DelayEach final : public KeyedProcessFunction<int64_t, int64_t, int64_t> {
 public:
  explicit DelayEach(bool hold) : hold_(hold) {}
  absl::Status ProcessElement(const int64_t& value, Context& ctx,
                              Collector<int64_t>& out) override {
    (void)out;
    ctx.GetState(kWaiting).Add(value);
    if (hold_) ctx.timer_service().RegisterWatermarkHold(ctx.timestamp());
    ctx.timer_service().RegisterProcessingTimeTimer(ctx.current_processing_time() + 30);
    // Processing-time timers stop at the end of input; this one flushes then.
    ctx.timer_service().RegisterEventTimeTimer(kMaxTimestamp);
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp, OnTimerContext& ctx, Collector<int64_t>& out) override {
    ListState<int64_t> waiting = ctx.GetState(kWaiting);
    for (int64_t value : waiting.Get()) {
      out.CollectWithTimestamp(value, value);  // the value is its own timestamp
      if (hold_) ctx.timer_service().DeleteWatermarkHold(value);
    }
    waiting.Clear();
    return absl::OkStatus();
  }

 private:
  static inline const ListStateDescriptor<int64_t> kWaiting{"waiting"};
  bool hold_;
};

// Counts the elements that arrive at or below the operator's watermark.
class CountLate final : public ProcessFunction<int64_t, int64_t> {
 public:
  explicit CountLate(std::shared_ptr<std::atomic<int64_t>> late) : late_(std::move(late)) {}
  absl::Status ProcessElement(const int64_t& value, Context& ctx,
                              Collector<int64_t>& out) override {
    if (ctx.timestamp() <= ctx.current_watermark()) late_->fetch_add(1);
    out.Collect(value);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<std::atomic<int64_t>> late_;
};

class WatermarkHoldTest : public ::testing::TestWithParam<bool> {};

TEST_P(WatermarkHoldTest, HeldElementsAreNotLateDownstream) {
  const bool hold = GetParam();
  constexpr int kRecords = 3000;
  std::vector<int64_t> values(kRecords);
  for (int i = 0; i < kRecords; ++i) values[i] = 1000 + i;
  testing::VectorSourceOptions source_options;
  source_options.splits = 2;
  source_options.records_per_poll = 50;
  source_options.records_per_second = 3000;  // the run spans ~0.5 s: many 30 ms waits
  std::vector<testing::TimestampedValue<int64_t>> records;
  for (int64_t v : values) records.push_back({v, v});
  auto late = std::make_shared<std::atomic<int64_t>>(0);
  auto sink = testing::CollectingSink<int64_t>::Create();
  Pipeline pipeline({.parallelism = 2});
  pipeline
      .Source(testing::VectorSource<int64_t>::Create(std::move(records), source_options),
              WatermarkStrategy<int64_t>::BoundedOutOfOrderness(absl::ZeroDuration()))
      .KeyBy([](const int64_t& v) { return v % 7; })
      .Process(DelayEach(hold))
      .Process(CountLate(late))
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int64_t> out = sink->Values();
  std::sort(out.begin(), out.end());
  EXPECT_EQ(out, values);
  if (hold) {
    EXPECT_EQ(late->load(), 0) << "a held element was late downstream";
  } else {
    // The control: without holds the watermark does run ahead of them.
    EXPECT_GT(late->load(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(HoldOrNot, WatermarkHoldTest, ::testing::Bool(),
                         [](const auto& param) { return param.param ? "Hold" : "NoHold"; });

}  // namespace
}  // namespace weir
