// Windows through the public API, checked against brute-force references
// computed here:
//
// - randomized out-of-order input (jittered splits, bounded out-of-orderness)
//   at parallelism 1, 2 and 4 with memory and RocksDB state: every window of
//   every assigner and function fires once with the reference result, and an
//   element costs one state write however many sliding windows contain it;
// - lateness: a single-split source with one record per poll makes the
//   watermark each record meets known, so a simulation of the documented
//   semantics predicts every emission (on time, re-emitted within the allowed
//   lateness, or sent to the late-data side output and counted);
// - EarlyFiringOnCount and EarlyFiring (windows and sessions), processing-time
//   windows;
// - a crash (cancel) after a checkpoint in the middle of windows and a restart,
//   at the same and at another parallelism: nothing lost, nothing doubled;
// - window state larger than RocksDB's write-back cache (panes evicted and
//   read back): results equal the memory backend's and the brute force, also
//   through a crash and a restore at the same or another parallelism, and
//   from a memory checkpoint into RocksDB.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/state/test_backends.h"
#include "tests/unit/window/scripted_source.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using Ev = std::pair<int64_t, int64_t>;                  // (key, value); values are unique
using WindowId = std::tuple<int64_t, int64_t, int64_t>;  // (key, start, end)
using Input = std::vector<testing::TimestampedValue<Ev>>;
template <class V>
using Row = std::tuple<int64_t, int64_t, int64_t, V>;  // (key, start, end, result)
using Emissions = std::map<WindowId, std::vector<int64_t>>;

struct KeyOf {
  int64_t operator()(const Ev& e) const { return e.first; }
};
using Windowed = WindowedStream<int64_t, Ev, KeyOf>;

// Attaches the key and window to a result (one closure type for every test).
const auto kWithWindow = [](const int64_t& key, const TimeWindow& w, auto result) {
  return Row<decltype(result)>{key, w.start, w.end, std::move(result)};
};

Stream<Row<int64_t>> CountWindows(const Windowed& windowed, const std::string& name) {
  return windowed.Aggregate(aggregations::Count<Ev>(), kWithWindow).Name(name);
}

enum class Kind { kTumbling, kSliding, kSession };
using test::Backend;
using test::BackendName;

std::string KindName(Kind kind) {
  switch (kind) {
    case Kind::kTumbling:
      return "Tumbling";
    case Kind::kSliding:
      return "Sliding";
    case Kind::kSession:
      return "Session";
  }
  return "";
}

// Readable test parameters.
void PrintTo(Kind kind, std::ostream* os) { *os << KindName(kind); }

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// The (start, end) of every tumbling/sliding window that contains ts: starts
// offset + k * slide with start <= ts < start + size.
std::vector<std::pair<int64_t, int64_t>> WindowsContaining(const WindowAssigner& a, Timestamp ts) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t k = FloorDiv(ts - a.size_ms - a.offset_ms, a.slide_ms);
       k <= FloorDiv(ts - a.offset_ms, a.slide_ms); ++k) {
    const int64_t start = a.offset_ms + k * a.slide_ms;
    if (start <= ts && ts < start + a.size_ms) out.push_back({start, start + a.size_ms});
  }
  return out;
}

// Every window's elements when no element is late: pane windows by
// definition; sessions by sorting each key's timestamps and cutting where two
// neighbours are more than the gap apart.
std::map<WindowId, std::vector<Ev>> ReferenceWindows(const Input& input, const WindowAssigner& a) {
  std::map<WindowId, std::vector<Ev>> windows;
  if (a.kind != WindowAssigner::Kind::kSession) {
    for (const auto& record : input) {
      for (const auto& [start, end] : WindowsContaining(a, record.timestamp)) {
        windows[{record.value.first, start, end}].push_back(record.value);
      }
    }
    return windows;
  }
  std::map<int64_t, std::vector<std::pair<Timestamp, Ev>>> by_key;
  for (const auto& record : input)
    by_key[record.value.first].push_back({record.timestamp, record.value});
  for (auto& [key, records] : by_key) {
    std::sort(records.begin(), records.end());
    size_t first = 0;
    for (size_t idx = 1; idx <= records.size(); ++idx) {
      if (idx < records.size() && records[idx].first <= records[idx - 1].first + a.gap_ms) continue;
      std::vector<Ev>& elements =
          windows[{key, records[first].first, records[idx - 1].first + a.gap_ms}];
      for (size_t j = first; j < idx; ++j) elements.push_back(records[j].second);
      first = idx;
    }
  }
  return windows;
}

// Random (key, unique value) records with timestamps in [0, span).
Input RandomInput(int n, int keys, int64_t span, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Input input;
  for (int idx = 0; idx < n; ++idx) {
    input.push_back({Ev{static_cast<int64_t>(rng() % keys), idx},
                     static_cast<Timestamp>(rng() % static_cast<uint64_t>(span))});
  }
  return input;
}

template <class T>
std::shared_ptr<testing::CollectingSink<T>> Collect(const Stream<T>& stream) {
  auto sink = testing::CollectingSink<T>::Create();
  stream.Sink(sink);
  return sink;
}

// One result per window; a window that fired twice is reported.
template <class V>
std::map<WindowId, V> ByWindow(const testing::CollectingSink<Row<V>>& sink) {
  std::map<WindowId, V> out;
  for (const auto& [key, start, end, value] : sink.Values()) {
    EXPECT_TRUE(out.emplace(WindowId{key, start, end}, value).second)
        << "window (" << key << ", " << start << ", " << end << ") fired twice";
  }
  return out;
}

// Every emission of every window, in emission order.
Emissions EmissionsOf(const testing::CollectingSink<Row<int64_t>>& sink) {
  Emissions out;
  for (const auto& [key, start, end, n] : sink.Values()) out[{key, start, end}].push_back(n);
  return out;
}

int64_t SumMetric(const std::vector<testing::OperatorMetricsSnapshot>& metrics,
                  const std::string& name, int64_t testing::OperatorMetricsSnapshot::*field) {
  int64_t total = 0;
  for (const auto& m : metrics) {
    if (m.name == name) total += m.*field;
  }
  return total;
}

class WindowTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    root_ = std::filesystem::temp_directory_path() /
            ("weir-window-test-" + std::to_string(getpid()) + "-" + name);
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  PipelineOptions Options(int parallelism, Backend backend) const {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.state_backend = test::MakeBackend(backend, root_ / "rocksdb");
    return options;
  }

  std::filesystem::path root_;
};

// ---------------------------------------------------------------------------
// Randomized out-of-order input: every window, every function.

WindowAssigner RandomAssigner(Kind kind) {
  switch (kind) {
    case Kind::kTumbling:
      return TumblingEventTimeWindows::Of(absl::Milliseconds(250), absl::Milliseconds(70));
    case Kind::kSliding:  // size not a multiple of the slide: panes of gcd = 100 ms
      return SlidingEventTimeWindows::Of(absl::Milliseconds(500), absl::Milliseconds(200),
                                         absl::Milliseconds(30));
    case Kind::kSession:
      return EventTimeSessionWindows::WithGap(absl::Milliseconds(40));
  }
  return {};
}

// The elements of a window, one per window (ProcessWindowFunction).
class SortedValues final : public ProcessWindowFunction<Ev, Row<std::vector<int64_t>>, int64_t> {
 public:
  absl::Status Process(const int64_t& key, const TimeWindow& window,
                       const std::vector<Ev>& elements,
                       Collector<Row<std::vector<int64_t>>>& out) override {
    std::vector<int64_t> values;
    for (const Ev& e : elements) {
      if (e.first != key) return absl::InternalError("element of another key in the window");
      values.push_back(e.second);
    }
    std::sort(values.begin(), values.end());
    out.Collect({key, window.start, window.end, std::move(values)});
    return absl::OkStatus();
  }
};

class RandomWindowTest : public WindowTestBase,
                         public ::testing::WithParamInterface<std::tuple<Kind, int, Backend>> {};

TEST_P(RandomWindowTest, EveryWindowEqualsTheBruteForce) {
  const auto [kind, parallelism, backend] = GetParam();
  const WindowAssigner assigner = RandomAssigner(kind);
  const Input input = RandomInput(2400, 11, 6000, 17 + parallelism);
  constexpr size_t kTop = 3;
  const auto value = [](const Ev& e) { return static_cast<double>(e.second); };

  Pipeline pipeline(Options(parallelism, backend));
  testing::VectorSourceOptions source_options;
  source_options.splits = 4;
  source_options.records_per_poll = 16;  // many watermarks while windows fill
  source_options.jitter = absl::Milliseconds(40);
  source_options.seed = 5 + parallelism;
  // Out of order by up to 40 ms, watermark 50 ms behind: nothing is late.
  auto keyed = pipeline
                   .Source(testing::VectorSource<Ev>::Create(input, source_options),
                           WatermarkStrategy<Ev>::BoundedOutOfOrderness(absl::Milliseconds(50)))
                   .KeyBy(KeyOf{});
  auto window = [&] { return keyed.Window(assigner); };
  auto counts = Collect(CountWindows(window(), "count"));
  // Opening a RocksDB instance per operator and worker is slow in Debug: with
  // RocksDB, one function per kind of accumulator (int64, pair, vector,
  // optional, the elements).
  const bool every_function = backend == Backend::kMemory;
  std::shared_ptr<testing::CollectingSink<Row<double>>> sums;
  std::shared_ptr<testing::CollectingSink<Row<std::optional<double>>>> mins, maxes;
  std::shared_ptr<testing::CollectingSink<double>> plain_sums;
  if (every_function) {
    sums = Collect(window().Aggregate(aggregations::Sum<Ev>(value), kWithWindow));
    mins = Collect(window().Aggregate(aggregations::Min<Ev>(value), kWithWindow));
    maxes = Collect(window().Aggregate(aggregations::Max<Ev>(value), kWithWindow));
    plain_sums = Collect(window().Aggregate(aggregations::Sum<Ev>(value)));
  }
  auto averages = Collect(window().Aggregate(aggregations::Average<Ev>(value), kWithWindow));
  auto tops =
      Collect(window().Aggregate(aggregations::TopN<Ev>(kTop, value), kWithWindow).Name("top"));
  auto reduced = Collect(window().Reduce([](const Ev& a, const Ev& b) {
    return Ev{a.first, a.second + b.second};
  }));
  auto elements = Collect(window().Process(SortedValues{}));

  testing::JobResult result = testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  const std::map<WindowId, std::vector<Ev>> reference = ReferenceWindows(input, assigner);
  ASSERT_GT(reference.size(), 50u);
  std::map<WindowId, int64_t> expected_counts;
  std::map<WindowId, double> expected_sums;
  std::map<WindowId, std::optional<double>> expected_mins, expected_maxes, expected_averages;
  std::map<WindowId, std::vector<Ev>> expected_tops;
  std::map<WindowId, std::vector<int64_t>> expected_elements;
  std::map<std::pair<int64_t, Timestamp>, Ev> expected_reduced;  // (key, end - 1)
  std::multiset<std::pair<Timestamp, double>> expected_plain_sums;
  for (const auto& [id, window_elements] : reference) {
    const auto& [key, start, end] = id;
    std::vector<int64_t> values;
    for (const Ev& e : window_elements) values.push_back(e.second);
    std::sort(values.begin(), values.end());
    int64_t sum = 0;
    for (int64_t v : values) sum += v;
    expected_counts[id] = static_cast<int64_t>(values.size());
    expected_sums[id] = static_cast<double>(sum);
    expected_mins[id] = static_cast<double>(values.front());
    expected_maxes[id] = static_cast<double>(values.back());
    expected_averages[id] = static_cast<double>(sum) / static_cast<double>(values.size());
    std::vector<Ev>& top = expected_tops[id];
    for (auto it = values.rbegin(); it != values.rend() && top.size() < kTop; ++it) {
      top.push_back({key, *it});
    }
    expected_elements[id] = values;
    expected_reduced[{key, end - 1}] = Ev{key, sum};
    expected_plain_sums.insert({end - 1, static_cast<double>(sum)});
  }

  EXPECT_EQ(ByWindow(*counts), expected_counts);
  EXPECT_EQ(ByWindow(*averages), expected_averages);
  EXPECT_EQ(ByWindow(*tops), expected_tops);
  EXPECT_EQ(ByWindow(*elements), expected_elements);
  // Reduce and a plain Aggregate carry the window in their timestamps only.
  std::map<std::pair<int64_t, Timestamp>, Ev> actual_reduced;
  for (const auto& record : reduced->Records()) {
    EXPECT_TRUE(
        actual_reduced.emplace(std::pair{record.value.first, record.timestamp}, record.value)
            .second)
        << "reduce fired twice for window ending at " << record.timestamp + 1;
  }
  EXPECT_EQ(actual_reduced, expected_reduced);
  if (every_function) {
    EXPECT_EQ(ByWindow(*sums), expected_sums);
    EXPECT_EQ(ByWindow(*mins), expected_mins);
    EXPECT_EQ(ByWindow(*maxes), expected_maxes);
    std::multiset<std::pair<Timestamp, double>> actual_plain_sums;
    for (const auto& record : plain_sums->Records())
      actual_plain_sums.insert({record.timestamp, record.value});
    EXPECT_EQ(actual_plain_sums, expected_plain_sums);
  }
  // Results are stamped with the window's max timestamp.
  for (const auto& record : counts->Records()) {
    EXPECT_EQ(record.timestamp, std::get<2>(record.value) - 1);
  }
  for (const auto& record : elements->Records()) {
    EXPECT_EQ(record.timestamp, std::get<2>(record.value) - 1);
  }
  // One state write per element, whatever the number of windows containing it.
  EXPECT_EQ(result.StateWrites("count"), static_cast<int64_t>(input.size()));
  EXPECT_EQ(result.StateWrites("top"), static_cast<int64_t>(input.size()));
  EXPECT_EQ(result.LateRecords("count"), 0);
}

INSTANTIATE_TEST_SUITE_P(Windows, RandomWindowTest,
                         ::testing::Combine(::testing::Values(Kind::kTumbling, Kind::kSliding,
                                                              Kind::kSession),
                                            ::testing::Values(1, 2, 4),
                                            ::testing::Values(Backend::kMemory, Backend::kRocksDb)),
                         [](const auto& param_info) {
                           return KindName(std::get<0>(param_info.param)) + "P" +
                                  std::to_string(std::get<1>(param_info.param)) +
                                  BackendName(std::get<2>(param_info.param));
                         });

// Sliding windows: the brute force, and one state write per element for
// size / slide = 2, 4 and 10.
TEST_F(WindowTestBase, SlidingStateWritesDoNotGrowWithSizeOverSlide) {
  const Input input = RandomInput(1500, 7, 3000, 3);
  for (int64_t ratio : {2, 4, 10}) {
    SCOPED_TRACE("size / slide = " + std::to_string(ratio));
    const WindowAssigner assigner =
        SlidingEventTimeWindows::Of(absl::Milliseconds(40 * ratio), absl::Milliseconds(40));
    Pipeline pipeline(Options(2, Backend::kMemory));
    testing::VectorSourceOptions source_options;
    source_options.records_per_poll = 32;
    source_options.jitter = absl::Milliseconds(10);
    auto counts = Collect(CountWindows(
        pipeline
            .Source(testing::VectorSource<Ev>::Create(input, source_options),
                    WatermarkStrategy<Ev>::BoundedOutOfOrderness(absl::Milliseconds(20)))
            .KeyBy(KeyOf{})
            .Window(assigner),
        "count"));
    testing::JobResult result = testing::RunToCompletion(pipeline);
    ASSERT_TRUE(result.status.ok()) << result.status;
    std::map<WindowId, int64_t> expected;
    for (const auto& [id, elements] : ReferenceWindows(input, assigner))
      expected[id] = static_cast<int64_t>(elements.size());
    EXPECT_EQ(ByWindow(*counts), expected);
    EXPECT_EQ(result.StateWrites("count"), static_cast<int64_t>(input.size()));
  }
}

// ---------------------------------------------------------------------------
// Lateness.

// What the documented semantics predict for a single split read one record
// per poll with a watermark of (highest timestamp so far - delay - 1) after
// each record: a record meets the watermark left by the records before it.
struct Prediction {
  Emissions emissions;
  std::vector<int64_t> late;  // values sent to the late-data side output
  int re_emitted = 0;         // elements taken by windows that had fired already
  int bridged = 0;            // late elements that merged two or more sessions
};

// Tumbling/sliding: a window takes an element until end - 1 + lateness <= the
// watermark; it fires when the watermark passes end - 1 and again for every
// element it takes after that. An element no window takes is late.
Prediction PredictPaneWindows(const Input& input, const WindowAssigner& a, int64_t delay,
                              int64_t lateness) {
  Prediction prediction;
  std::map<WindowId, int64_t> counts;
  Timestamp watermark = kMinTimestamp;
  Timestamp max_ts = kMinTimestamp;
  for (const auto& record : input) {
    const int64_t key = record.value.first;
    bool taken = false;
    for (const auto& [start, end] : WindowsContaining(a, record.timestamp)) {
      if (end - 1 + lateness <= watermark) continue;
      taken = true;
      const int64_t n = ++counts[{key, start, end}];
      if (end - 1 > watermark) continue;
      prediction.emissions[{key, start, end}].push_back(n);
      ++prediction.re_emitted;
    }
    if (!taken) prediction.late.push_back(record.value.second);
    max_ts = std::max(max_ts, record.timestamp);
    const Timestamp next = max_ts - delay - 1;
    if (next <= watermark) continue;
    for (const auto& [id, n] : counts) {
      const Timestamp last = std::get<2>(id) - 1;
      if (watermark < last && last <= next) prediction.emissions[id].push_back(n);
    }
    watermark = next;
  }
  for (const auto& [id, n] : counts) {
    if (std::get<2>(id) - 1 > watermark) prediction.emissions[id].push_back(n);
  }
  return prediction;
}

// Sessions: an element opens [ts, ts + gap) and merges every session of its
// key that it overlaps or touches; unless the merged session's end - 1 +
// lateness <= the watermark (then the element is late), the merged session
// replaces them and fires at once if its end already passed. Sessions fire
// when the watermark passes end - 1 and go when it passes end - 1 + lateness.
Prediction PredictSessions(const Input& input, int64_t gap, int64_t delay, int64_t lateness) {
  struct Session {
    int64_t start, end, count;
  };
  Prediction prediction;
  std::map<int64_t, std::vector<Session>> sessions;
  Timestamp watermark = kMinTimestamp;
  Timestamp max_ts = kMinTimestamp;
  for (const auto& record : input) {
    const int64_t key = record.value.first;
    const Timestamp ts = record.timestamp;
    std::vector<Session>& mine = sessions[key];
    Session merged{ts, ts + gap, 1};
    std::vector<Session> rest;
    int merges = 0;
    for (const Session& s : mine) {
      if (s.start <= ts + gap && ts <= s.end) {
        merged.start = std::min(merged.start, s.start);
        merged.end = std::max(merged.end, s.end);
        merged.count += s.count;
        ++merges;
      } else {
        rest.push_back(s);
      }
    }
    if (merged.end - 1 + lateness <= watermark) {
      prediction.late.push_back(record.value.second);
    } else {
      rest.push_back(merged);
      mine = rest;
      if (merged.end - 1 <= watermark) {
        prediction.emissions[{key, merged.start, merged.end}].push_back(merged.count);
        ++prediction.re_emitted;
        prediction.bridged += merges >= 2;
      }
    }
    max_ts = std::max(max_ts, ts);
    const Timestamp next = max_ts - delay - 1;
    if (next <= watermark) continue;
    for (auto& [k, list] : sessions) {
      std::vector<Session> kept;
      for (const Session& s : list) {
        if (watermark < s.end - 1 && s.end - 1 <= next)
          prediction.emissions[{k, s.start, s.end}].push_back(s.count);
        if (s.end - 1 + lateness > next) kept.push_back(s);
      }
      list = kept;
    }
    watermark = next;
  }
  for (const auto& [k, list] : sessions) {
    for (const Session& s : list) {
      if (s.end - 1 > watermark) prediction.emissions[{k, s.start, s.end}].push_back(s.count);
    }
  }
  return prediction;
}

struct LateRun {
  Emissions emissions;
  std::vector<int64_t> late;
  testing::JobResult result;
};

// Counts per window over `input` read one record per poll, with the given
// watermark delay and allowed lateness; late elements go to a side output.
LateRun RunWithLateness(const Input& input, const WindowAssigner& assigner, int64_t delay,
                        int64_t lateness, const PipelineOptions& options, int64_t count = 0) {
  const OutputTag<Ev> kLate("late");
  Pipeline pipeline(options);
  Windowed windowed =
      pipeline
          .Source(testing::ScriptedSource<Ev>::Create(input),
                  WatermarkStrategy<Ev>::BoundedOutOfOrderness(absl::Milliseconds(delay)))
          .KeyBy(KeyOf{})
          .Window(assigner);
  windowed.AllowedLateness(absl::Milliseconds(lateness)).SideOutputLateData(kLate);
  if (count > 0) windowed.EarlyFiringOnCount(count);
  auto counts = CountWindows(windowed, "count");
  auto sink = Collect(counts);
  auto late = Collect(counts.SideOutput(kLate));
  LateRun run;
  run.result = testing::RunToCompletion(pipeline);
  run.emissions = EmissionsOf(*sink);
  for (const Ev& e : late->Values()) run.late.push_back(e.second);
  std::sort(run.late.begin(), run.late.end());
  return run;
}

// Each key's records with ts = its index * 10, but a third of them delayed
// by up to 300 ms: some are merely out of order, some late within the
// allowed lateness, some beyond it.
Input LateInput(int n, int keys, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Input input;
  for (int idx = 0; idx < n; ++idx) {
    Timestamp ts = 1000 + idx * 10;
    if (rng() % 3 == 0) ts -= static_cast<Timestamp>(rng() % 300);
    input.push_back({Ev{static_cast<int64_t>(rng() % keys), idx}, ts});
  }
  return input;
}

class LatenessTest : public WindowTestBase,
                     public ::testing::WithParamInterface<std::tuple<Kind, int, Backend>> {};

TEST_P(LatenessTest, EveryEmissionAndLateElementIsPredicted) {
  const auto [kind, parallelism, backend] = GetParam();
  constexpr int64_t kDelay = 5;
  constexpr int64_t kLateness = 80;
  const Input input = LateInput(400, 3, 11 + parallelism);
  WindowAssigner assigner;
  Prediction prediction;
  switch (kind) {
    case Kind::kTumbling:
      assigner = TumblingEventTimeWindows::Of(absl::Milliseconds(100));
      prediction = PredictPaneWindows(input, assigner, kDelay, kLateness);
      break;
    case Kind::kSliding:
      assigner = SlidingEventTimeWindows::Of(absl::Milliseconds(150), absl::Milliseconds(50));
      prediction = PredictPaneWindows(input, assigner, kDelay, kLateness);
      break;
    case Kind::kSession:
      assigner = EventTimeSessionWindows::WithGap(absl::Milliseconds(25));
      prediction = PredictSessions(input, 25, kDelay, kLateness);
      break;
  }
  std::sort(prediction.late.begin(), prediction.late.end());
  // The input exercises every case.
  ASSERT_GT(prediction.re_emitted, 5);
  ASSERT_GT(prediction.late.size(), 5u);
  if (kind == Kind::kSession) {
    ASSERT_GT(prediction.bridged, 0);
  }

  LateRun run = RunWithLateness(input, assigner, kDelay, kLateness, Options(parallelism, backend));
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  EXPECT_EQ(run.emissions, prediction.emissions);
  EXPECT_EQ(run.late, prediction.late);
  EXPECT_EQ(run.result.LateRecords("count"), static_cast<int64_t>(prediction.late.size()));
  EXPECT_EQ(run.result.StateWrites("count"),
            static_cast<int64_t>(input.size() - prediction.late.size()));
}

INSTANTIATE_TEST_SUITE_P(Windows, LatenessTest,
                         ::testing::Combine(::testing::Values(Kind::kTumbling, Kind::kSliding,
                                                              Kind::kSession),
                                            ::testing::Values(1, 2, 4),
                                            ::testing::Values(Backend::kMemory, Backend::kRocksDb)),
                         [](const auto& param_info) {
                           return KindName(std::get<0>(param_info.param)) + "P" +
                                  std::to_string(std::get<1>(param_info.param)) +
                                  BackendName(std::get<2>(param_info.param));
                         });

// The same semantics spelled out (watermark = highest timestamp - 1).
TEST_F(WindowTestBase, TumblingLateElementsReEmitOnceEachAndBeyondLatenessGoAside) {
  // (timestamp, watermark the record meets)
  const std::vector<Timestamp> timestamps = {
      10,   // -inf
      20,   // 9
      130,  // 19 -> then 129: [0, 100) fires with 2
      30,   // 129: late within lateness 50 (99 + 50 > 129): [0, 100) again with 3
      260,  // 129 -> then 259: [100, 200) fires with 1; [0, 100) is cleaned up at 149
      40,   // 259: beyond the lateness of [0, 100): side output
      210,  // 259: on time for [200, 300)
      150,  // 259: beyond the lateness of [100, 200) (199 + 50 <= 259): side output
      320,  // 259 -> then 319: [200, 300) fires with 2
      520,  // 319 -> then 519: [300, 400) fires with 1
      450,  // 519: [400, 500) never had an element; it fires at once with 1, and only once
      530,  // 519 -> then 529
  };
  Input input;
  int64_t value = 0;
  for (Timestamp ts : timestamps) {
    for (int64_t key = 1; key <= 3; ++key) input.push_back({Ev{key, value++}, ts});
  }
  LateRun run = RunWithLateness(input, TumblingEventTimeWindows::Of(absl::Milliseconds(100)), 0, 50,
                                Options(2, Backend::kMemory));
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  Emissions expected;
  std::vector<int64_t> expected_late;
  for (int64_t key = 1; key <= 3; ++key) {
    expected[{key, 0, 100}] = {2, 3};
    expected[{key, 100, 200}] = {1};
    expected[{key, 200, 300}] = {2};
    expected[{key, 300, 400}] = {1};
    expected[{key, 400, 500}] = {1};
    expected[{key, 500, 600}] = {2};
    expected_late.push_back(5 * 3 + key - 1);  // ts 40
    expected_late.push_back(7 * 3 + key - 1);  // ts 150
  }
  std::sort(expected_late.begin(), expected_late.end());
  EXPECT_EQ(run.emissions, expected);
  EXPECT_EQ(run.late, expected_late);
  EXPECT_EQ(run.result.LateRecords("count"), 6);
}

TEST_F(WindowTestBase, LateElementBridgingTwoSessionsReEmitsTheMergedSession) {
  // Gap 10, lateness 100, watermark = highest timestamp - 1.
  const std::vector<Timestamp> timestamps = {
      0,    // [0, 10)
      15,   // [15, 25); watermark 14: [0, 10) fires with 1
      60,   // watermark 59: [15, 25) fires with 1
      8,    // late but within lateness: [8, 18) bridges both -> [0, 25) fires with 3
      200,  // watermark 199: [60, 70) fires with 1; [0, 25) is cleaned up at 124
      5,    // [5, 15): beyond the lateness -> side output
  };
  Input input;
  for (size_t idx = 0; idx < timestamps.size(); ++idx)
    input.push_back({Ev{7, static_cast<int64_t>(idx)}, timestamps[idx]});
  LateRun run = RunWithLateness(input, EventTimeSessionWindows::WithGap(absl::Milliseconds(10)), 0,
                                100, Options(2, Backend::kMemory));
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  const Emissions expected = {{{7, 0, 10}, {1}},
                              {{7, 15, 25}, {1}},
                              {{7, 0, 25}, {3}},
                              {{7, 60, 70}, {1}},
                              {{7, 200, 210}, {1}}};
  EXPECT_EQ(run.emissions, expected);
  EXPECT_EQ(run.late, std::vector<int64_t>{5});
  EXPECT_EQ(run.result.LateRecords("count"), 1);
}

// A merge must not delete a timer another session of the key still needs:
// with gap 10 and lateness 25, [0, 10) is cleaned up at 34, which is when
// [25, 35) fires.
TEST_F(WindowTestBase, SessionMergeKeepsTheTimersOfOtherSessions) {
  const Input input = {{Ev{1, 0}, 0}, {Ev{1, 1}, 25}, {Ev{1, 2}, 5}};  // 5 extends [0, 10)
  LateRun run = RunWithLateness(input, EventTimeSessionWindows::WithGap(absl::Milliseconds(10)), 30,
                                25, Options(1, Backend::kMemory));
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  const Emissions expected = {{{1, 0, 15}, {2}}, {{1, 25, 35}, {1}}};
  EXPECT_EQ(run.emissions, expected);
  EXPECT_TRUE(run.late.empty());
}

// ---------------------------------------------------------------------------
// Triggers and processing time.

TEST_F(WindowTestBase, EarlyFiringOnCountFiresEveryNElementsAndAtTheEnd) {
  constexpr int64_t kEvery = 5;
  const Input input = RandomInput(1200, 5, 2000, 23);
  for (const WindowAssigner& assigner :
       {TumblingEventTimeWindows::Of(absl::Milliseconds(200)),
        SlidingEventTimeWindows::Of(absl::Milliseconds(300), absl::Milliseconds(100))}) {
    SCOPED_TRACE(assigner.kind == WindowAssigner::Kind::kTumbling ? "tumbling" : "sliding");
    Pipeline pipeline(Options(2, Backend::kMemory));
    testing::VectorSourceOptions source_options;
    source_options.records_per_poll = 16;
    source_options.jitter = absl::Milliseconds(20);
    auto sink = Collect(CountWindows(
        pipeline
            .Source(testing::VectorSource<Ev>::Create(input, source_options),
                    WatermarkStrategy<Ev>::BoundedOutOfOrderness(absl::Milliseconds(30)))
            .KeyBy(KeyOf{})
            .Window(assigner)
            .EarlyFiringOnCount(kEvery),
        "count"));
    testing::JobResult result = testing::RunToCompletion(pipeline);
    ASSERT_TRUE(result.status.ok()) << result.status;
    // Every 5 elements, then once more when the window ends.
    Emissions expected;
    for (const auto& [id, elements] : ReferenceWindows(input, assigner)) {
      const int64_t n = static_cast<int64_t>(elements.size());
      for (int64_t fired = kEvery; fired <= n; fired += kEvery) expected[id].push_back(fired);
      expected[id].push_back(n);
    }
    EXPECT_EQ(EmissionsOf(*sink), expected);
  }
}

// Sessions as Flink's CountTrigger with merging windows: a session fires when
// the elements since it last fired on count (summed over merged sessions)
// reach N, and once more at its end.
TEST_F(WindowTestBase, SessionEarlyFiringOnCountFiresEveryNElementsAndAtTheEndAcrossMerges) {
  // Gap 10, count 3, watermark delay 1000: nothing ends before ts 2000.
  const std::vector<Timestamp> timestamps = {
      0,     // [0, 10): 1 since the last count firing
      5,     // [0, 15): 2
      40,    // [40, 50): 1
      45,    // [40, 55): 2
      25,    // [25, 35): 1
      15,    // bridges [0, 15) and [25, 35): [0, 35) has 2 + 1 + 1 = 4 -> fires with 4
      35,    // bridges [0, 35) and [40, 55): [0, 55) has 0 + 2 + 1 = 3 -> fires with 7
      2000,  // watermark 999: [0, 55) fires at its end with 7
      2001,  // [2000, 2011): 2, fires at the end of input
  };
  Input input;
  for (size_t idx = 0; idx < timestamps.size(); ++idx)
    input.push_back({Ev{4, static_cast<int64_t>(idx)}, timestamps[idx]});
  for (Backend backend : {Backend::kMemory, Backend::kRocksDb}) {
    SCOPED_TRACE(backend == Backend::kMemory ? "memory" : "rocksdb");
    LateRun run = RunWithLateness(input, EventTimeSessionWindows::WithGap(absl::Milliseconds(10)),
                                  1000, 0, Options(1, backend), 3);
    ASSERT_TRUE(run.result.status.ok()) << run.result.status;
    const Emissions expected = {{{4, 0, 35}, {4}}, {{4, 0, 55}, {7, 7}}, {{4, 2000, 2011}, {2}}};
    EXPECT_EQ(run.emissions, expected);
    EXPECT_TRUE(run.late.empty());
  }
}

TEST_F(WindowTestBase, EarlyFiringEmitsPartialResultsWhileTheWindowIsOpen) {
  // 3 keys, timestamps in [0, 600): one 10 s window (or session) per key that
  // stays open until Stop(); the source takes about half a second.
  constexpr int kRecords = 600;
  const Input input = RandomInput(kRecords, 3, 600, 29);
  std::map<int64_t, int64_t> totals;
  for (const auto& record : input) ++totals[record.value.first];
  for (const WindowAssigner& assigner : {TumblingEventTimeWindows::Of(absl::Seconds(10)),
                                         EventTimeSessionWindows::WithGap(absl::Seconds(10))}) {
    const bool session = assigner.kind == WindowAssigner::Kind::kSession;
    SCOPED_TRACE(session ? "session" : "tumbling");
    Pipeline pipeline(Options(2, Backend::kMemory));
    testing::VectorSourceOptions source_options;
    source_options.splits = 2;
    source_options.records_per_poll = 8;
    source_options.unbounded = true;
    source_options.records_per_second = 600;
    auto sink = Collect(CountWindows(
        pipeline
            .Source(testing::VectorSource<Ev>::Create(input, source_options),
                    WatermarkStrategy<Ev>::BoundedOutOfOrderness(absl::Milliseconds(10)))
            .Name("src")
            .KeyBy(KeyOf{})
            .Window(assigner)
            .EarlyFiring(absl::Milliseconds(50)),
        "count"));
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    // Wait until every record was read and an early firing saw all of them.
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    auto complete = [&] {
      std::map<int64_t, int64_t> latest;
      for (const auto& [key, start, end, n] : sink->Values()) latest[key] = n;
      return latest == totals;
    };
    while (!complete() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    const std::vector<Row<int64_t>> early = sink->Values();
    job->Stop();
    ASSERT_TRUE(job->Wait().ok());
    ASSERT_TRUE(complete()) << "no early firing with every record";
    // Before the window closed: partial results, growing.
    int partial = 0;
    std::map<int64_t, int64_t> previous;
    for (const auto& [key, start, end, n] : early) {
      if (session) {
        // A session grows (both ways: input is out of order) as elements arrive.
        EXPECT_GE(start, 0);
        EXPECT_GE(end - start, 10'000);
        EXPECT_LT(end, 10'600);
      } else {
        EXPECT_EQ(start, 0);
        EXPECT_EQ(end, 10'000);
      }
      EXPECT_GE(n, previous[key]);
      previous[key] = n;
      partial += n < totals[key];
    }
    EXPECT_GT(partial, 0);
    // The final firing at the end of the window: the whole window.
    const std::vector<Row<int64_t>> all = sink->Values();
    ASSERT_GT(all.size(), early.size());
    std::map<int64_t, int64_t> final_counts;
    for (size_t idx = early.size(); idx < all.size(); ++idx)
      final_counts[std::get<0>(all[idx])] = std::get<3>(all[idx]);
    EXPECT_EQ(final_counts, totals);
  }
}

// Processing-time windows fire on the clock; early firing is refused when
// the pipeline is built, naming the operator, rather than ignored.
TEST_F(WindowTestBase, EarlyFiringOnProcessingTimeWindowsIsRejected) {
  for (const WindowAssigner& assigner : {TumblingProcessingTimeWindows::Of(absl::Seconds(1)),
                                         ProcessingTimeSessionWindows::WithGap(absl::Seconds(1))}) {
    Pipeline pipeline(Options(1, Backend::kMemory));
    Collect(pipeline.Source(testing::VectorSource<Ev>::Create(RandomInput(10, 2, 100, 3)))
                .KeyBy(KeyOf{})
                .Window(assigner)
                .EarlyFiring(absl::Milliseconds(100))
                .Aggregate(aggregations::Count<Ev>()));
    const absl::Status status = pipeline.Run();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find("WindowAggregate#"), std::string::npos) << status;
    EXPECT_NE(status.message().find("EarlyFiring"), std::string::npos) << status;
  }
}

TEST_F(WindowTestBase, ProcessingTimeWindowsProduceResults) {
  constexpr int kRecords = 1000;
  const Input input = RandomInput(kRecords, 3, 1000, 31);
  Pipeline pipeline(Options(2, Backend::kMemory));
  testing::VectorSourceOptions source_options;
  source_options.splits = 2;
  source_options.records_per_poll = 8;
  source_options.unbounded = true;
  source_options.records_per_second = 1000;
  auto keyed = pipeline.Source(testing::VectorSource<Ev>::Create(input, source_options))
                   .Name("src")
                   .KeyBy(KeyOf{});
  auto tumbling = Collect(CountWindows(
      keyed.Window(TumblingProcessingTimeWindows::Of(absl::Milliseconds(100))), "tumbling"));
  auto sliding = Collect(CountWindows(keyed.Window(SlidingProcessingTimeWindows::Of(
                                          absl::Milliseconds(200), absl::Milliseconds(100))),
                                      "sliding"));
  const Timestamp started = ToTimestamp(absl::Now());
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while ((tumbling->size() < 6 || sliding->size() < 6) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  const Timestamp stopped = ToTimestamp(absl::Now());
  const int64_t read = SumMetric(testing::OperatorMetricsOf(job->Metrics()), "src",
                                 &testing::OperatorMetricsSnapshot::records_in);
  for (const auto& [sink, size, slide] :
       {std::tuple{tumbling.get(), 100, 100}, std::tuple{sliding.get(), 200, 100}}) {
    ASSERT_GE(sink->size(), 6u);
    int64_t total = 0;
    std::set<int64_t> starts;
    for (const auto& [key, start, end, n] : sink->Values()) {
      EXPECT_EQ(end - start, size);
      EXPECT_EQ(start % slide, 0);
      EXPECT_GE(end, started);
      EXPECT_LE(start, stopped);
      EXPECT_GT(n, 0);
      total += n;
      starts.insert(start);
    }
    EXPECT_GE(starts.size(), 2u);
    // Windows still open at Stop() never fire.
    EXPECT_LE(total, read * (size / slide));
  }
}

// ---------------------------------------------------------------------------
// Checkpoint and restore in the middle of windows.

using CheckpointRow = std::pair<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>>;
// ((branch * kBranchKeys + key, start), (end, count))
constexpr int64_t kBranchKeys = 1'000'000;

// Jobs that count windows of several assigners over one input into a
// TransactionalFileSink (exactly once), checkpointing every 30 ms; a first
// run is cancelled in the middle of windows and a second one restores.
class CheckpointedWindowTest : public WindowTestBase {
 protected:
  std::unique_ptr<Pipeline> Build(const Input& input, const std::vector<WindowAssigner>& assigners,
                                  int parallelism, Backend backend, double rate) {
    PipelineOptions options = Options(parallelism, backend);
    options.job_name = "windows";
    options.checkpoints.interval = absl::Milliseconds(30);
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    auto pipeline = std::make_unique<Pipeline>(options);
    testing::VectorSourceOptions source_options;
    source_options.splits = 4;
    source_options.records_per_poll = 32;
    source_options.jitter = absl::Milliseconds(20);
    source_options.records_per_second = rate;
    auto keyed = pipeline
                     ->Source(testing::VectorSource<Ev>::Create(input, source_options),
                              WatermarkStrategy<Ev>::BoundedOutOfOrderness(absl::Milliseconds(30)))
                     .Uid("events")
                     .KeyBy(KeyOf{});
    std::vector<Stream<CheckpointRow>> branches;
    for (size_t branch = 0; branch < assigners.size(); ++branch) {
      const std::string window = "window-" + std::to_string(branch);
      branches.push_back(CountWindows(keyed.Window(assigners[branch]), window)
                             .Uid(window)
                             .Map([branch](const Row<int64_t>& row) {
                               const auto& [key, start, end, n] = row;
                               return CheckpointRow{
                                   {static_cast<int64_t>(branch) * kBranchKeys + key, start},
                                   {end, n}};
                             }));
    }
    Stream<CheckpointRow> all = branches[0];
    for (size_t branch = 1; branch < branches.size(); ++branch) all = all.Union(branches[branch]);
    all.Sink(std::make_shared<testing::TransactionalFileSink<CheckpointRow>>(
                 (root_ / "out").string()))
        .Uid("out");
    return pipeline;
  }

  static std::vector<CheckpointRow> Expected(const Input& input,
                                             const std::vector<WindowAssigner>& assigners) {
    std::vector<CheckpointRow> out;
    for (size_t branch = 0; branch < assigners.size(); ++branch) {
      for (const auto& [id, elements] : ReferenceWindows(input, assigners[branch])) {
        const auto& [key, start, end] = id;
        out.push_back({{static_cast<int64_t>(branch) * kBranchKeys + key, start},
                       {end, static_cast<int64_t>(elements.size())}});
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::vector<CheckpointRow> Committed() const {
    auto committed =
        testing::TransactionalFileSink<CheckpointRow>::ReadCommitted((root_ / "out").string());
    EXPECT_TRUE(committed.ok()) << committed.status();
    std::vector<CheckpointRow> out = committed.ok() ? *committed : std::vector<CheckpointRow>();
    std::sort(out.begin(), out.end());
    return out;
  }

  // Starts `pipeline` and cancels it (a crash: no final checkpoint) once
  // `checkpoints` checkpoints completed and at least `min_committed` window
  // results were committed.
  void RunAndCrash(Pipeline& pipeline, int64_t checkpoints, size_t min_committed) {
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while ((job->last_completed_checkpoint() < checkpoints ||
            Committed().size() < std::max<size_t>(min_committed, 1)) &&
           !job->done() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_FALSE(job->done()) << "the job ended before it could be interrupted";
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }
};

class WindowCheckpointTest : public CheckpointedWindowTest,
                             public ::testing::WithParamInterface<std::tuple<int, int, Backend>> {
 protected:
  static constexpr int kRecords = 6000;

  static const std::vector<WindowAssigner>& Assigners() {
    static const std::vector<WindowAssigner> assigners = {
        TumblingEventTimeWindows::Of(absl::Milliseconds(100)),
        SlidingEventTimeWindows::Of(absl::Milliseconds(200), absl::Milliseconds(50)),
        EventTimeSessionWindows::WithGap(absl::Milliseconds(40))};
    return assigners;
  }

  static Input CheckpointInput() {
    std::mt19937_64 rng(99);
    Input input;
    for (int idx = 0; idx < kRecords; ++idx)
      input.push_back({Ev{static_cast<int64_t>(rng() % 13), idx}, idx});
    return input;
  }
};

TEST_P(WindowCheckpointTest, CrashAfterACheckpointThenRestoreLosesAndDoublesNothing) {
  const auto [before, after, backend] = GetParam();
  const Input input = CheckpointInput();
  {
    auto pipeline = Build(input, Assigners(), before, backend, 800);
    ASSERT_NO_FATAL_FAILURE(RunAndCrash(*pipeline, 2, 1));
  }
  const std::vector<CheckpointRow> expected = Expected(input, Assigners());
  const std::vector<CheckpointRow> partial = Committed();
  EXPECT_FALSE(partial.empty());
  EXPECT_LT(partial.size(), expected.size());

  auto pipeline = Build(input, Assigners(), after, backend, 0);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Committed(), expected);
}

INSTANTIATE_TEST_SUITE_P(Windows, WindowCheckpointTest,
                         ::testing::Values(std::tuple{2, 2, Backend::kMemory},
                                           std::tuple{4, 1, Backend::kMemory},
                                           std::tuple{2, 2, Backend::kRocksDb},
                                           std::tuple{1, 3, Backend::kRocksDb}),
                         [](const auto& param_info) {
                           return "From" + std::to_string(std::get<0>(param_info.param)) + "To" +
                                  std::to_string(std::get<1>(param_info.param)) +
                                  BackendName(std::get<2>(param_info.param));
                         });

// ---------------------------------------------------------------------------
// Window state larger than RocksDB's write-back cache.
//
// Panes live in a typed (key, pane start) table on both backends; with
// RocksDB it is a bounded write-back cache. With the tiny cache (1024 entries
// per state table and worker) the input below keeps several thousand panes
// alive per worker: 2000 keys, 40 records per ms, so a tumbling 100 ms pane
// holds about 1730 of the keys and a sliding 50 ms pane about 1260, each
// kept for the 200 ms of its last window (about 5000 alive). The cache evicts
// (writes back, drops a quarter) over and over, and elements and firing
// windows read evicted panes (and pane indexes) back from RocksDB.

constexpr int kBigKeys = 2000;
constexpr int kBigRecordsPerMs = 40;

// (random key of kBigKeys, unique value) records, kBigRecordsPerMs per ms.
Input BigInput(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Input input;
  for (int idx = 0; idx < n; ++idx) {
    input.push_back({Ev{static_cast<int64_t>(rng() % kBigKeys), idx}, idx / kBigRecordsPerMs});
  }
  return input;
}

const std::vector<WindowAssigner>& BigAssigners() {
  static const std::vector<WindowAssigner> assigners = {
      TumblingEventTimeWindows::Of(absl::Milliseconds(100)),
      SlidingEventTimeWindows::Of(absl::Milliseconds(200), absl::Milliseconds(50))};
  return assigners;
}

class WindowsBeyondTheCacheTest : public WindowTestBase,
                                  public ::testing::WithParamInterface<int> {};

// Counts and sums of tumbling and sliding windows, with the memory backend
// and with RocksDB behind the tiny cache: both equal the brute force (so
// each other).
TEST_P(WindowsBeyondTheCacheTest, RocksDbWithATinyCacheEqualsMemoryAndTheBruteForce) {
  const int parallelism = GetParam();
  const Input input = BigInput(40'000, 7);
  const auto value = [](const Ev& e) { return static_cast<double>(e.second); };
  std::map<Backend, std::vector<std::map<WindowId, int64_t>>> counts;
  std::map<Backend, std::vector<std::map<WindowId, double>>> sums;
  for (Backend backend : {Backend::kMemory, Backend::kRocksDbTinyCache}) {
    SCOPED_TRACE(BackendName(backend));
    std::filesystem::remove_all(root_ / "rocksdb");
    Pipeline pipeline(Options(parallelism, backend));
    testing::VectorSourceOptions source_options;
    source_options.splits = 4;
    source_options.records_per_poll = 256;
    source_options.jitter = absl::Milliseconds(20);
    auto keyed = pipeline
                     .Source(testing::VectorSource<Ev>::Create(input, source_options),
                             WatermarkStrategy<Ev>::BoundedOutOfOrderness(absl::Milliseconds(30)))
                     .KeyBy(KeyOf{});
    std::vector<std::shared_ptr<testing::CollectingSink<Row<int64_t>>>> count_sinks;
    std::vector<std::shared_ptr<testing::CollectingSink<Row<double>>>> sum_sinks;
    for (size_t branch = 0; branch < BigAssigners().size(); ++branch) {
      const WindowAssigner& assigner = BigAssigners()[branch];
      count_sinks.push_back(
          Collect(CountWindows(keyed.Window(assigner), "count-" + std::to_string(branch))));
      sum_sinks.push_back(
          Collect(keyed.Window(assigner).Aggregate(aggregations::Sum<Ev>(value), kWithWindow)));
    }
    testing::JobResult result = testing::RunToCompletion(pipeline);
    ASSERT_TRUE(result.status.ok()) << result.status;
    for (size_t branch = 0; branch < BigAssigners().size(); ++branch) {
      EXPECT_EQ(result.LateRecords("count-" + std::to_string(branch)), 0);
      counts[backend].push_back(ByWindow(*count_sinks[branch]));
      sums[backend].push_back(ByWindow(*sum_sinks[branch]));
    }
  }
  for (size_t branch = 0; branch < BigAssigners().size(); ++branch) {
    SCOPED_TRACE(branch == 0 ? "tumbling" : "sliding");
    std::map<WindowId, int64_t> expected_counts;
    std::map<WindowId, double> expected_sums;
    for (const auto& [id, elements] : ReferenceWindows(input, BigAssigners()[branch])) {
      expected_counts[id] = static_cast<int64_t>(elements.size());
      double sum = 0;
      for (const Ev& e : elements) sum += value(e);
      expected_sums[id] = sum;
    }
    ASSERT_GT(expected_counts.size(), 10'000u);
    EXPECT_EQ(counts[Backend::kMemory][branch], expected_counts);
    EXPECT_EQ(sums[Backend::kMemory][branch], expected_sums);
    EXPECT_EQ(counts[Backend::kRocksDbTinyCache][branch], expected_counts);
    EXPECT_EQ(sums[Backend::kRocksDbTinyCache][branch], expected_sums);
  }
}

INSTANTIATE_TEST_SUITE_P(Windows, WindowsBeyondTheCacheTest, ::testing::Values(1, 2),
                         [](const auto& param_info) {
                           return "P" + std::to_string(param_info.param);
                         });

struct BigRestoreCase {
  int before = 1;
  int after = 1;
  Backend before_backend = Backend::kRocksDbTinyCache;
  Backend after_backend = Backend::kRocksDbTinyCache;
};

class WindowRestoreBeyondTheCacheTest : public CheckpointedWindowTest,
                                        public ::testing::WithParamInterface<BigRestoreCase> {};

// A crash in the middle of windows whose panes do not fit the cache (the
// checkpoints write back dirty panes next to evicted ones), then a restore,
// at the same parallelism (RocksDB reopens its files), at another one (key
// groups copied out of the old instances), and from the memory backend into
// RocksDB: every window's count is committed once.
TEST_P(WindowRestoreBeyondTheCacheTest, CrashMidWindowThenRestoreLosesAndDoublesNothing) {
  const BigRestoreCase c = GetParam();
  const Input input = BigInput(40'000, 11);
  const std::vector<CheckpointRow> expected = Expected(input, BigAssigners());
  {
    // 4 splits x 3000 records/s: the input takes over 3 s, the crash comes after
    // some windows (not all) were committed.
    auto pipeline = Build(input, BigAssigners(), c.before, c.before_backend, 3000);
    ASSERT_NO_FATAL_FAILURE(RunAndCrash(*pipeline, 3, expected.size() / 5));
  }
  const std::vector<CheckpointRow> partial = Committed();
  EXPECT_GE(partial.size(), expected.size() / 5);
  EXPECT_LT(partial.size(), expected.size());

  std::filesystem::remove_all(root_ / "rocksdb");
  auto pipeline = Build(input, BigAssigners(), c.after, c.after_backend, 0);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Committed(), expected);
}

INSTANTIATE_TEST_SUITE_P(
    Windows, WindowRestoreBeyondTheCacheTest,
    ::testing::Values(BigRestoreCase{2, 2}, BigRestoreCase{1, 2}, BigRestoreCase{2, 1},
                      BigRestoreCase{2, 3, Backend::kMemory, Backend::kRocksDbTinyCache}),
    [](const auto& param_info) {
      const BigRestoreCase& c = param_info.param;
      return "From" + std::to_string(c.before) + BackendName(c.before_backend) + "To" +
             std::to_string(c.after) + BackendName(c.after_backend);
    });

}  // namespace
}  // namespace weir
