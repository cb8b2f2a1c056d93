// Every Stream operation through the public API, at parallelism 1, 2 and 4:
// Map, Filter, FlatMap, Process (Open/Close), Union, fan-out, Broadcast +
// Connect, side outputs, operator names in metrics, record counters, and
// which thread runs which operator (fusion vs. KeyBy).

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

constexpr absl::Duration kDeadline = absl::Seconds(20);
constexpr int kMaxWorkers = 8;

// Sorted copies: comparing sorted vectors is much faster than gMock's
// UnorderedElementsAreArray on thousands of elements.
template <class T>
std::vector<T> Sorted(std::vector<T> values) {
  std::sort(values.begin(), values.end());
  return values;
}

std::vector<int> Iota(int n, int first = 0) {
  std::vector<int> values(n);
  for (int i = 0; i < n; ++i) values[i] = first + i;
  return values;
}

class StreamTest : public ::testing::TestWithParam<int> {
 protected:
  int parallelism() const { return GetParam(); }
  // Small batches so that every test moves many batches (and exercises the
  // batch boundaries) while staying fast.
  PipelineOptions Options() const {
    return PipelineOptions{.parallelism = parallelism(), .batch_size = 64};
  }
};

INSTANTIATE_TEST_SUITE_P(Parallelism, StreamTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return absl::StrCat("p", param_info.param);
                         });

// ---------------------------------------------------------------------------
// Map, Filter, FlatMap.

TEST_P(StreamTest, MapPlain) {
  Pipeline pipeline(Options());
  auto sink = testing::CollectingSink<std::string>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(Iota(1000)))
      .Map([](int x) { return absl::StrCat("v", x * 2); })
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<std::string> expected;
  for (int i = 0; i < 1000; ++i) expected.push_back(absl::StrCat("v", i * 2));
  EXPECT_EQ(Sorted(sink->Values()), Sorted(expected));
  // Map keeps the record's timestamp (VectorSource stamps value i with i).
  for (const auto& record : sink->Records()) {
    EXPECT_EQ(record.value, absl::StrCat("v", record.timestamp * 2));
  }
}

TEST_P(StreamTest, MapReturningStatusOr) {
  Pipeline pipeline(Options());
  auto sink = testing::CollectingSink<int64_t>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(Iota(1000)))
      .Map([](const int& x) -> absl::StatusOr<int64_t> { return int64_t{x} * 1'000'000'000; })
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int64_t> expected;
  for (int i = 0; i < 1000; ++i) expected.push_back(int64_t{i} * 1'000'000'000);
  EXPECT_EQ(Sorted(sink->Values()), Sorted(expected));
}

TEST_P(StreamTest, MapReturningErrorFailsTheJobNamingTheOperator) {
  Pipeline pipeline(Options());
  auto sink = testing::CollectingSink<int>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(Iota(1000)))
      .Map([](int x) -> absl::StatusOr<int> {
        if (x == 567) return absl::OutOfRangeError("567 is not allowed");
        return x;
      })
      .Name("picky")
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kOutOfRange) << result.status;
  EXPECT_THAT(result.status.message(), HasSubstr("picky"));
  EXPECT_THAT(result.status.message(), HasSubstr("567 is not allowed"));
}

TEST_P(StreamTest, Filter) {
  Pipeline pipeline(Options());
  auto plain = testing::CollectingSink<int>::Create();
  auto with_status = testing::CollectingSink<int>::Create();
  auto numbers = pipeline.Source(testing::VectorSource<int>::Create(Iota(1000)));
  numbers.Filter([](const int& x) { return x % 3 == 0; }).Sink(plain);
  numbers.Filter([](const int& x) -> absl::StatusOr<bool> { return x % 7 == 1; }).Sink(with_status);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int> threes;
  std::vector<int> sevens;
  for (int i = 0; i < 1000; ++i) {
    if (i % 3 == 0) threes.push_back(i);
    if (i % 7 == 1) sevens.push_back(i);
  }
  EXPECT_EQ(Sorted(plain->Values()), Sorted(threes));
  EXPECT_EQ(Sorted(with_status->Values()), Sorted(sevens));
  // Filter keeps each survivor's own timestamp.
  for (const auto& record : plain->Records()) EXPECT_EQ(record.timestamp, record.value);
}

TEST_P(StreamTest, FlatMap) {
  Pipeline pipeline(Options());
  auto sink = testing::CollectingSink<std::pair<int, int>>::Create();
  auto checked = testing::CollectingSink<int>::Create();
  auto numbers = pipeline.Source(testing::VectorSource<int>::Create(Iota(300)));
  // x emits (x, 0), ..., (x, x % 5 - 1): zero to four outputs per input.
  numbers
      .FlatMap<std::pair<int, int>>([](int x, Collector<std::pair<int, int>>& out) {
        for (int k = 0; k < x % 5; ++k) out.Collect({x, k});
      })
      .Sink(sink);
  // The Status-returning form, with an explicit output timestamp.
  numbers
      .FlatMap<int>([](const int& x, Collector<int>& out) -> absl::Status {
        out.CollectWithTimestamp(x + 1, 10'000 + x);
        out.Collect(-x - 1);
        return absl::OkStatus();
      })
      .Sink(checked);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::vector<std::pair<int, int>> expected;
  for (int x = 0; x < 300; ++x) {
    for (int k = 0; k < x % 5; ++k) expected.push_back({x, k});
  }
  EXPECT_EQ(Sorted(sink->Values()), Sorted(expected));
  for (const auto& record : sink->Records()) EXPECT_EQ(record.timestamp, record.value.first);

  ASSERT_EQ(checked->size(), 600u);
  for (const auto& record : checked->Records()) {
    if (record.value > 0) {
      EXPECT_EQ(record.timestamp, 10'000 + record.value - 1);
    } else {
      EXPECT_EQ(record.timestamp, -record.value - 1);  // Collect uses the input's timestamp
    }
  }
}

// ---------------------------------------------------------------------------
// ProcessFunction.

struct OpenCloseCounts {
  std::array<std::atomic<int>, kMaxWorkers> opened{};
  std::array<std::atomic<int>, kMaxWorkers> closed{};
  std::array<std::atomic<int>, kMaxWorkers> processed{};
  std::atomic<int> bad_runtime_context{0};
  std::atomic<int> processed_before_open{0};
};

class Labeler : public ProcessFunction<int, std::string> {
 public:
  explicit Labeler(std::shared_ptr<OpenCloseCounts> counts, int parallelism)
      : counts_(std::move(counts)), parallelism_(parallelism) {}

  absl::Status Open(const RuntimeContext& runtime) override {
    if (runtime.parallelism != parallelism_ || runtime.worker_index < 0 ||
        runtime.worker_index >= parallelism_ || runtime.operator_name != "labeler" ||
        runtime.max_parallelism != 128) {
      ++counts_->bad_runtime_context;
    }
    worker_ = runtime.worker_index;
    ++counts_->opened[worker_];
    return absl::OkStatus();
  }
  absl::Status ProcessElement(const int& value, Context& ctx,
                              Collector<std::string>& out) override {
    if (worker_ < 0) {
      ++counts_->processed_before_open;
      return absl::OkStatus();
    }
    if (ctx.worker_index() != worker_) ++counts_->bad_runtime_context;
    ++counts_->processed[worker_];
    // Per-worker member state: each worker has its own copy of the function.
    ++seen_;
    out.Collect(absl::StrCat(value, "@", ctx.timestamp()));
    if (value % 100 == 0) out.CollectWithTimestamp(absl::StrCat("marker", value), 5);
    return absl::OkStatus();
  }
  absl::Status Close() override {
    if (worker_ >= 0) {
      ++counts_->closed[worker_];
      if (seen_ != counts_->processed[worker_].load()) ++counts_->bad_runtime_context;
    }
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<OpenCloseCounts> counts_;
  int parallelism_;
  int worker_ = -1;
  int seen_ = 0;
};

TEST_P(StreamTest, ProcessFunctionOpenAndCloseOncePerWorker) {
  Pipeline pipeline(Options());
  auto counts = std::make_shared<OpenCloseCounts>();
  auto sink = testing::CollectingSink<std::string>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(Iota(1000)))
      .Process(Labeler(counts, parallelism()))
      .Name("labeler")
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  for (int worker = 0; worker < kMaxWorkers; ++worker) {
    const int expected = worker < parallelism() ? 1 : 0;
    EXPECT_EQ(counts->opened[worker].load(), expected) << "worker " << worker;
    EXPECT_EQ(counts->closed[worker].load(), expected) << "worker " << worker;
  }
  EXPECT_EQ(counts->bad_runtime_context.load(), 0);
  EXPECT_EQ(counts->processed_before_open.load(), 0);
  int processed = 0;
  for (const auto& n : counts->processed) processed += n.load();
  EXPECT_EQ(processed, 1000);

  std::vector<std::string> expected;
  for (int i = 0; i < 1000; ++i) {
    expected.push_back(absl::StrCat(i, "@", i));
    if (i % 100 == 0) expected.push_back(absl::StrCat("marker", i));
  }
  EXPECT_EQ(Sorted(sink->Values()), Sorted(expected));
  for (const auto& record : sink->Records()) {
    if (record.value.starts_with("marker")) {
      EXPECT_EQ(record.timestamp, 5);
    }
  }
}

// ---------------------------------------------------------------------------
// Union and fan-out.

TEST_P(StreamTest, UnionOfThreeStreams) {
  Pipeline pipeline(Options());
  auto sink = testing::CollectingSink<int>::Create();
  auto a = pipeline.Source(testing::VectorSource<int>::Create(Iota(500, 0)));
  auto b = pipeline.Source(
      testing::VectorSource<int>::Create(Iota(300, 10'000), {.splits = 3, .records_per_poll = 7}));
  auto c = pipeline.Source(testing::VectorSource<int>::Create(Iota(1, 20'000), {.splits = 1}))
               .Map([](int x) { return x + 1; });
  a.Union(b, c).Name("all").Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::vector<int> expected = Iota(500, 0);
  for (int x : Iota(300, 10'000)) expected.push_back(x);
  expected.push_back(20'001);
  EXPECT_EQ(Sorted(sink->Values()), Sorted(expected));
  EXPECT_EQ(result.RecordsIn("all"), 801);
  EXPECT_EQ(result.RecordsOut("all"), 801);
}

TEST_P(StreamTest, StreamConsumedTwiceIsCopiedToEachConsumer) {
  Pipeline pipeline(Options());
  auto first = testing::CollectingSink<std::string>::Create();
  auto second = testing::CollectingSink<std::string>::Create();
  auto mapped = testing::CollectingSink<std::string>::Create();
  std::vector<std::string> words;
  // Longer than the small-string buffer, so a moved-from string is visibly empty.
  for (int i = 0; i < 700; ++i) words.push_back(absl::StrCat("a-rather-long-word-number-", i));
  auto stream = pipeline.Source(testing::VectorSource<std::string>::Create(words)).Name("words");
  // CollectingSink moves out of the batch it gets; so does this Map.
  stream.Sink(first);
  stream.Map([](std::string s) { return std::move(s) + "!"; }).Sink(mapped);
  stream.Sink(second);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  EXPECT_EQ(Sorted(first->Values()), Sorted(words));
  EXPECT_EQ(Sorted(second->Values()), Sorted(words));
  std::vector<std::string> exclaimed;
  for (const auto& w : words) exclaimed.push_back(w + "!");
  EXPECT_EQ(Sorted(mapped->Values()), Sorted(exclaimed));
  // The source's records_out counts records emitted once, not per consumer.
  EXPECT_EQ(result.RecordsOut("words"), 700);
}

// A sink whose writer only reads (SinkWriter::ReadsOnly): it copies the
// values and notes where each batch's values were.
class ReadingSink final : public Sink<std::string> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<std::string>>> CreateWriter(
      const SinkContext&) override {
    return std::unique_ptr<SinkWriter<std::string>>(new Writer(this));
  }
  std::vector<std::string> Values() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return values_;
  }
  std::set<const std::string*> Batches() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return batches_;
  }

 private:
  class Writer final : public SinkWriter<std::string> {
   public:
    explicit Writer(ReadingSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<std::string> values, std::span<const Timestamp>) override {
      std::lock_guard<std::mutex> lock(sink_->mutex_);
      sink_->values_.insert(sink_->values_.end(), values.begin(), values.end());
      sink_->batches_.insert(values.data());
      return absl::OkStatus();
    }
    bool ReadsOnly() const override { return true; }

   private:
    ReadingSink* sink_;
  };
  mutable std::mutex mutex_;
  std::vector<std::string> values_;
  std::set<const std::string*> batches_;
};

TEST_P(StreamTest, SinksThatOnlyReadShareOneBatchAndComeBeforeTheOthers) {
  Pipeline pipeline(Options());
  auto taking = testing::CollectingSink<std::string>::Create();
  auto first = std::make_shared<ReadingSink>();
  auto second = std::make_shared<ReadingSink>();
  auto mapped = testing::CollectingSink<std::string>::Create();
  std::vector<std::string> words;
  for (int i = 0; i < 700; ++i) words.push_back(absl::StrCat("a-rather-long-word-number-", i));
  auto stream = pipeline.Source(testing::VectorSource<std::string>::Create(words)).Name("words");
  // Added first, but the sinks that only read still see every value intact:
  // they get each batch before the consumers that move out of it.
  stream.Sink(taking);
  stream.Sink(first);
  stream.Map([](std::string s) { return std::move(s) + "!"; }).Sink(mapped);
  stream.Sink(second);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  EXPECT_EQ(Sorted(taking->Values()), Sorted(words));
  EXPECT_EQ(Sorted(first->Values()), Sorted(words));
  EXPECT_EQ(Sorted(second->Values()), Sorted(words));
  std::vector<std::string> exclaimed;
  for (const auto& w : words) exclaimed.push_back(w + "!");
  EXPECT_EQ(Sorted(mapped->Values()), Sorted(exclaimed));
  // Both readers were handed the same batches, not copies of them.
  EXPECT_FALSE(first->Batches().empty());
  EXPECT_EQ(first->Batches(), second->Batches());
}

// Takes its elements when the operator offers them (the rvalue overload)
// and moves the string on; counts which overload ran.
class Taker final : public ProcessFunction<std::string, std::string> {
 public:
  explicit Taker(std::shared_ptr<std::atomic<int>[]> calls) : calls_(std::move(calls)) {}
  absl::Status ProcessElement(const std::string& value, Context&,
                              Collector<std::string>& out) override {
    calls_[0].fetch_add(1);
    out.Collect(value);
    return absl::OkStatus();
  }
  absl::Status ProcessElement(std::string&& value, Context&, Collector<std::string>& out) {
    calls_[1].fetch_add(1);
    out.Collect(std::move(value));
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<std::atomic<int>[]> calls_;
};

TEST_P(StreamTest, ProcessFunctionWithAnRvalueOverloadTakesEveryElement) {
  Pipeline pipeline(Options());
  auto calls = std::shared_ptr<std::atomic<int>[]>(new std::atomic<int>[2] { 0, 0 });
  auto taken = testing::CollectingSink<std::string>::Create();
  auto other = std::make_shared<ReadingSink>();
  std::vector<std::string> words;
  for (int i = 0; i < 700; ++i) words.push_back(absl::StrCat("a-rather-long-word-number-", i));
  auto stream = pipeline.Source(testing::VectorSource<std::string>::Create(words));
  // A sink that only reads sees the same batches first, intact.
  stream.Sink(other);
  stream.Process(Taker(calls)).Sink(taken);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  EXPECT_EQ(calls[0].load(), 0);
  EXPECT_EQ(calls[1].load(), 700);
  EXPECT_EQ(Sorted(taken->Values()), Sorted(words));
  EXPECT_EQ(Sorted(other->Values()), Sorted(words));
}

// ---------------------------------------------------------------------------
// Broadcast + Connect.

struct Event {
  int id = 0;
  int dim = 0;
};
struct Dim {
  int dim = 0;
  std::string name;
};
struct Enriched {
  int id = 0;
  std::string name;
  int worker = 0;
  bool operator==(const Enriched&) const = default;
};

struct BroadcastCounts {
  std::mutex mutex;
  std::array<std::multiset<int>, kMaxWorkers> broadcast_seen;
  std::array<int, kMaxWorkers> main_seen{};
  std::array<int, kMaxWorkers> pending_at_close{};
  std::array<int, kMaxWorkers> closed{};
};

// Enriches each event with its dimension's name. Events whose dimension has
// not arrived yet wait (there is no order between the two inputs), and are
// emitted when it does: at the end every event must have been emitted.
class Enrich : public BroadcastProcessFunction<Event, Dim, Enriched> {
 public:
  explicit Enrich(std::shared_ptr<BroadcastCounts> counts) : counts_(std::move(counts)) {}

  absl::Status Open(const RuntimeContext& runtime) override {
    worker_ = runtime.worker_index;
    return absl::OkStatus();
  }
  absl::Status ProcessElement(const Event& e, ReadOnlyContext& ctx,
                              Collector<Enriched>& out) override {
    if (ctx.worker_index() != worker_) return absl::InternalError("wrong worker index");
    {
      std::lock_guard<std::mutex> lock(counts_->mutex);
      ++counts_->main_seen[worker_];
    }
    auto it = names_.find(e.dim);
    if (it == names_.end()) {
      pending_[e.dim].push_back(e);
    } else {
      out.Collect(Enriched{e.id, it->second, worker_});
    }
    return absl::OkStatus();
  }
  absl::Status ProcessBroadcastElement(const Dim& d, Context& ctx,
                                       Collector<Enriched>& out) override {
    if (ctx.worker_index() != worker_) return absl::InternalError("wrong worker index");
    {
      std::lock_guard<std::mutex> lock(counts_->mutex);
      counts_->broadcast_seen[worker_].insert(d.dim);
    }
    names_[d.dim] = d.name;
    auto it = pending_.find(d.dim);
    if (it != pending_.end()) {
      for (const Event& e : it->second) out.Collect(Enriched{e.id, d.name, worker_});
      pending_.erase(it);
    }
    return absl::OkStatus();
  }
  absl::Status Close() override {
    std::lock_guard<std::mutex> lock(counts_->mutex);
    int pending = 0;
    for (const auto& [dim, events] : pending_) pending += static_cast<int>(events.size());
    counts_->pending_at_close[worker_] = pending;
    ++counts_->closed[worker_];
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<BroadcastCounts> counts_;
  int worker_ = -1;
  absl::flat_hash_map<int, std::string> names_;
  absl::flat_hash_map<int, std::vector<Event>> pending_;
};

TEST_P(StreamTest, BroadcastReachesEveryWorker) {
  constexpr int kDims = 50;
  constexpr int kEvents = 2000;
  Pipeline pipeline(Options());
  std::vector<Dim> dims;
  for (int d = 0; d < kDims; ++d) dims.push_back({d, absl::StrCat("dim-", d)});
  std::vector<Event> events;
  for (int i = 0; i < kEvents; ++i) events.push_back({i, (i * 7) % kDims});

  auto counts = std::make_shared<BroadcastCounts>();
  auto sink = testing::CollectingSink<Enriched>::Create();
  auto dimensions =
      pipeline
          .Source(testing::VectorSource<Dim>::Create(dims, {.splits = 3, .records_per_poll = 4}))
          .Broadcast();
  pipeline.Source(testing::VectorSource<Event>::Create(events, {.records_per_poll = 50}))
      .Connect(dimensions)
      .Process(Enrich(counts))
      .Name("enrich")
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::set<int> all_dims;
  for (int d = 0; d < kDims; ++d) all_dims.insert(d);
  int main_total = 0;
  for (int worker = 0; worker < parallelism(); ++worker) {
    // Every worker sees every broadcast element exactly once.
    EXPECT_EQ(counts->broadcast_seen[worker].size(), static_cast<size_t>(kDims))
        << "worker " << worker;
    EXPECT_EQ(
        std::set<int>(counts->broadcast_seen[worker].begin(), counts->broadcast_seen[worker].end()),
        all_dims)
        << "worker " << worker;
    EXPECT_EQ(counts->pending_at_close[worker], 0) << "worker " << worker;
    EXPECT_EQ(counts->closed[worker], 1) << "worker " << worker;
    main_total += counts->main_seen[worker];
  }
  // Main elements are not broadcast: each is processed once, on some worker.
  EXPECT_EQ(main_total, kEvents);

  std::vector<Enriched> values = sink->Values();
  ASSERT_EQ(values.size(), static_cast<size_t>(kEvents));
  std::vector<int> ids;
  for (const Enriched& e : values) {
    EXPECT_EQ(e.name, absl::StrCat("dim-", (e.id * 7) % kDims)) << "event " << e.id;
    ids.push_back(e.id);
  }
  EXPECT_EQ(Sorted(ids), Sorted(Iota(kEvents)));
  // The broadcast exchange delivers kDims records to each worker.
  EXPECT_EQ(result.RecordsIn("enrich"), kEvents + int64_t{kDims} * parallelism());
}

// ---------------------------------------------------------------------------
// Side outputs.

const OutputTag<std::string> kOnes("ones");
const OutputTag<int> kUnconsumed("nobody-reads-this");

// Multiples of 3 go to the main output, x % 3 == 1 to the side output "ones"
// (as strings), x % 3 == 2 to a side output nothing consumes.
class Splitter : public ProcessFunction<int, int> {
 public:
  absl::Status ProcessElement(const int& x, Context& ctx, Collector<int>& out) override {
    switch (x % 3) {
      case 0:
        out.Collect(x);
        break;
      case 1:
        ctx.Output(kOnes, absl::StrCat("one:", x));
        break;
      default:
        ctx.Output(kUnconsumed, x);
        break;
    }
    return absl::OkStatus();
  }
};

TEST_P(StreamTest, SideOutputsOfProcessFunction) {
  Pipeline pipeline(Options());
  auto main = testing::CollectingSink<int>::Create();
  auto ones = testing::CollectingSink<std::string>::Create();
  auto split = pipeline.Source(testing::VectorSource<int>::Create(Iota(900))).Process(Splitter{});
  split.Sink(main);
  split.SideOutput(kOnes).Sink(ones);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::vector<int> expected_main;
  std::vector<std::string> expected_ones;
  for (int x = 0; x < 900; ++x) {
    if (x % 3 == 0) expected_main.push_back(x);
    if (x % 3 == 1) expected_ones.push_back(absl::StrCat("one:", x));
  }
  EXPECT_EQ(Sorted(main->Values()), Sorted(expected_main));
  EXPECT_EQ(Sorted(ones->Values()), Sorted(expected_ones));
  // Side-output records carry the timestamp of the element that produced them.
  for (const auto& record : ones->Records()) {
    EXPECT_EQ(record.value, absl::StrCat("one:", record.timestamp));
  }
  // Both sinks flushed once per worker.
  EXPECT_EQ(main->flushes(), parallelism());
  EXPECT_EQ(ones->flushes(), parallelism());
}

TEST_P(StreamTest, SideOutputOnlyProcessWithoutMainConsumer) {
  Pipeline pipeline(Options());
  auto ones = testing::CollectingSink<std::string>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(Iota(300)))
      .Process(Splitter{})
      .SideOutput(kOnes)
      .Sink(ones);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(ones->size(), 100u);
}

TEST_P(StreamTest, UnconsumedSideOutputsAreDiscarded) {
  Pipeline pipeline(Options());
  auto main = testing::CollectingSink<int>::Create();
  // Neither side output is consumed.
  pipeline.Source(testing::VectorSource<int>::Create(Iota(900))).Process(Splitter{}).Sink(main);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(main->size(), 300u);
}

const OutputTag<int64_t> kNewKeys("new-keys");
const OutputTag<std::string> kKeyedUnconsumed("keyed-unconsumed");

// Running count per key; the first element of each key also goes to the
// side output "new-keys", and each timer to a side output nobody reads.
class CountWithNewKeys : public KeyedProcessFunction<int64_t, int, int64_t> {
 public:
  absl::Status ProcessElement(const int& x, Context& ctx, Collector<int64_t>& out) override {
    int64_t& count = counts_[ctx.current_key()];
    if (count++ == 0) {
      ctx.Output(kNewKeys, ctx.current_key());
      ctx.timer_service().RegisterEventTimeTimer(1'000'000);
    }
    ctx.Output(kKeyedUnconsumed, absl::StrCat(x));
    out.Collect(count);
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp, OnTimerContext& ctx, Collector<int64_t>&) override {
    ctx.Output(kNewKeys, -1 - ctx.current_key());
    ctx.Output(kKeyedUnconsumed, std::string("timer"));
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_map<int64_t, int64_t> counts_;
};

TEST_P(StreamTest, SideOutputsOfKeyedProcessFunction) {
  Pipeline pipeline(Options());
  auto main = testing::CollectingSink<int64_t>::Create();
  auto new_keys = testing::CollectingSink<int64_t>::Create();
  auto counted = pipeline.Source(testing::VectorSource<int>::Create(Iota(1000)))
                     .KeyBy([](const int& x) { return int64_t{x % 10}; })
                     .Process(CountWithNewKeys{})
                     .Name("count");
  counted.Sink(main);
  counted.SideOutput(kNewKeys).Sink(new_keys);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  EXPECT_EQ(main->size(), 1000u);
  // Keys 0..9 once from ProcessElement, and -1..-10 once from their timers.
  std::vector<int64_t> expected;
  for (int64_t key = 0; key < 10; ++key) {
    expected.push_back(key);
    expected.push_back(-1 - key);
  }
  EXPECT_THAT(new_keys->Values(), UnorderedElementsAreArray(expected));
  for (const auto& record : new_keys->Records()) {
    if (record.value < 0) {
      EXPECT_EQ(record.timestamp, 1'000'000);  // the timer's timestamp
    }
  }
  EXPECT_EQ(result.TimersFired("count"), 10);
}

// A KeyedStream can be held in its type-erased form KeyedStream<K, T> (e.g.
// as a member or a function's return type).
TEST_P(StreamTest, TypeErasedKeyedStream) {
  Pipeline pipeline(Options());
  auto main = testing::CollectingSink<int64_t>::Create();
  KeyedStream<int64_t, int> keyed =
      pipeline.Source(testing::VectorSource<int>::Create(Iota(100))).KeyBy([](const int& x) {
        return int64_t{x % 10};
      });
  keyed.Process(CountWithNewKeys{}).Sink(main);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int64_t> expected;
  for (int64_t count = 1; count <= 10; ++count) expected.insert(expected.end(), 10, count);
  EXPECT_EQ(Sorted(main->Values()), expected);
}

// ---------------------------------------------------------------------------
// Names and counters.

TEST_P(StreamTest, NamesAndCountersInMetrics) {
  const int p = parallelism();
  Pipeline pipeline(Options());
  auto sink = testing::CollectingSink<int>::Create();
  auto unkept = testing::CollectingSink<std::string>::Create();
  auto evens = pipeline.Source(testing::VectorSource<int>::Create(Iota(1000)))
                   .Name("numbers")
                   .Filter([](const int& x) { return x % 2 == 0; })
                   .Name("evens");
  evens.Map([](int x) { return x * 3; })
      .Name("triple")
      .KeyBy([](const int& x) { return x % 17; })
      .Name("by-mod")
      .AsStream()
      .Sink(sink)
      .Name("out");
  evens
      .FlatMap<std::string>([](int x, Collector<std::string>& out) {
        if (x % 10 == 0) {
          out.Collect("a");
          out.Collect("b");
        }
      })
      .Name("fan")
      .Sink(unkept)
      .Name("strings");

  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;
  std::vector<testing::OperatorMetricsSnapshot> metrics =
      testing::OperatorMetricsOf(job->Metrics());

  // Every named operator appears once per worker.
  std::map<std::string, std::set<int>> workers_by_name;
  for (const auto& m : metrics) workers_by_name[m.name].insert(m.worker);
  std::set<int> all_workers;
  for (int w = 0; w < p; ++w) all_workers.insert(w);
  for (const char* name : {"numbers", "evens", "triple", "by-mod", "out", "fan", "strings"}) {
    EXPECT_EQ(workers_by_name[name], all_workers) << name;
  }

  testing::JobResult result{status, metrics};
  EXPECT_EQ(result.RecordsIn("numbers"), 1000);
  EXPECT_EQ(result.RecordsOut("numbers"), 1000);
  EXPECT_EQ(result.RecordsIn("evens"), 1000);
  EXPECT_EQ(result.RecordsOut("evens"), 500);
  EXPECT_EQ(result.RecordsIn("triple"), 500);
  EXPECT_EQ(result.RecordsOut("triple"), 500);
  EXPECT_EQ(result.RecordsIn("by-mod"), 500);
  EXPECT_EQ(result.RecordsOut("by-mod"), 500);
  EXPECT_EQ(result.RecordsIn("out"), 500);
  EXPECT_EQ(result.RecordsIn("fan"), 500);
  EXPECT_EQ(result.RecordsOut("fan"), 200);
  EXPECT_EQ(result.RecordsIn("strings"), 200);
  EXPECT_EQ(result.RecordsIn("no-such-operator"), 0);
  EXPECT_EQ(sink->size(), 500u);
  EXPECT_EQ(unkept->size(), 200u);

  // The same through RunToCompletion on a fresh pipeline.
  Pipeline again(Options());
  again.Source(testing::VectorSource<int>::Create(Iota(10)))
      .Name("ten")
      .Sink([](const int&) {})
      .Name("drop");
  testing::JobResult ten = testing::RunToCompletion(again, kDeadline);
  ASSERT_TRUE(ten.status.ok()) << ten.status;
  EXPECT_EQ(ten.RecordsOut("ten"), 10);
  EXPECT_EQ(ten.RecordsIn("drop"), 10);
}

// Operators get default names "<Kind>#<node id>" when not named.
TEST_P(StreamTest, DefaultNames) {
  Pipeline pipeline(Options());
  pipeline.Source(testing::VectorSource<int>::Create(Iota(10)))
      .Map([](int x) { return x; })
      .Sink([](const int&) {});
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.RecordsOut("Source#0"), 10);
  EXPECT_EQ(result.RecordsIn("Map#1"), 10);
  EXPECT_EQ(result.RecordsIn("Sink#2"), 10);
}

// ---------------------------------------------------------------------------
// Operator fusion and KeyBy routing.

// A record that remembers which worker and thread read it from the source.
struct Tagged {
  int value = 0;
  int source_worker = -1;
  std::thread::id source_thread;
};

struct ThreadLog {
  std::mutex mutex;
  // worker -> the threads that polled its source / ran its keyed operator.
  std::map<int, std::set<std::thread::id>> source_threads;
  std::map<int, std::set<std::thread::id>> keyed_threads;
  std::map<int, std::set<std::thread::id>> after_keyed_threads;
  std::atomic<int> fused_mismatches{0};
  std::atomic<int> fused_checks{0};
  std::atomic<int> routing_mismatches{0};
  std::atomic<int> moved{0};
  std::atomic<int> keyed_records{0};
};

// Emits 0..n-1 over `splits` splits, tagging each record with the reading
// worker and thread.
class TaggingSource final : public Source<Tagged> {
 public:
  TaggingSource(int n, int splits, std::shared_ptr<ThreadLog> log)
      : n_(n), splits_(splits), log_(std::move(log)) {}

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    std::vector<SourceSplit> splits;
    for (int s = 0; s < splits_; ++s) splits.push_back({absl::StrCat(s)});
    return splits;
  }
  absl::StatusOr<std::unique_ptr<SourceReader<Tagged>>> CreateReader(
      const SourceReaderContext& context) override {
    std::vector<int> splits;
    for (const auto& split : context.splits) splits.push_back(std::stoi(split.id));
    return std::unique_ptr<SourceReader<Tagged>>(
        new Reader(this, context.worker_index, std::move(splits)));
  }

 private:
  class Reader final : public SourceReader<Tagged> {
   public:
    Reader(TaggingSource* source, int worker, std::vector<int> splits)
        : source_(source), worker_(worker), splits_(std::move(splits)), next_(splits_) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<Tagged>& out) override {
      const std::thread::id self = std::this_thread::get_id();
      {
        std::lock_guard<std::mutex> lock(source_->log_->mutex);
        source_->log_->source_threads[worker_].insert(self);
      }
      bool more = false;
      for (size_t idx = 0; idx < splits_.size(); ++idx) {
        for (int k = 0; k < 16 && next_[idx] < source_->n_; ++k, next_[idx] += source_->splits_) {
          out.Collect(static_cast<int>(idx), Tagged{next_[idx], worker_, self}, next_[idx]);
        }
        if (next_[idx] < source_->n_) {
          more = true;
        } else {
          out.FinishSplit(static_cast<int>(idx));
        }
      }
      return more ? PollResult::kMoreAvailable : PollResult::kEndOfInput;
    }

   private:
    TaggingSource* source_;
    int worker_;
    std::vector<int> splits_;
    std::vector<int> next_;  // the next value per split
  };

  int n_;
  int splits_;
  std::shared_ptr<ThreadLog> log_;
};

// Checks a record runs on the thread that read it from the source.
struct CheckFused {
  std::shared_ptr<ThreadLog> log;
  void operator()(const Tagged& t) const {
    ++log->fused_checks;
    if (std::this_thread::get_id() != t.source_thread) ++log->fused_mismatches;
  }
};

class RecordKeyedThread : public KeyedProcessFunction<int, Tagged, Tagged> {
 public:
  explicit RecordKeyedThread(std::shared_ptr<ThreadLog> log) : log_(std::move(log)) {}
  absl::Status Open(const RuntimeContext& runtime) override {
    parallelism_ = runtime.parallelism;
    max_parallelism_ = runtime.max_parallelism;
    return absl::OkStatus();
  }
  absl::Status ProcessElement(const Tagged& t, Context& ctx, Collector<Tagged>& out) override {
    ++log_->keyed_records;
    const int owner = WorkerForKeyGroup(KeyGroupOf(ctx.current_key(), max_parallelism_),
                                        max_parallelism_, parallelism_);
    if (owner != ctx.worker_index() || ctx.current_key() != t.value % 97)
      ++log_->routing_mismatches;
    if (ctx.worker_index() != t.source_worker) ++log_->moved;
    {
      std::lock_guard<std::mutex> lock(log_->mutex);
      log_->keyed_threads[ctx.worker_index()].insert(std::this_thread::get_id());
    }
    out.Collect(t);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<ThreadLog> log_;
  int parallelism_ = 0;
  int max_parallelism_ = 0;
};

// Records the worker that runs it (after the KeyBy, for the fused-after-keyed check).
class AfterKeyed : public ProcessFunction<Tagged, int> {
 public:
  explicit AfterKeyed(std::shared_ptr<ThreadLog> log) : log_(std::move(log)) {}
  absl::Status ProcessElement(const Tagged& t, Context& ctx, Collector<int>& out) override {
    std::lock_guard<std::mutex> lock(log_->mutex);
    log_->after_keyed_threads[ctx.worker_index()].insert(std::this_thread::get_id());
    out.Collect(t.value);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<ThreadLog> log_;
};

TEST_P(StreamTest, FusedOperatorsRunOnTheSourceThreadAndKeyByMovesToTheKeyOwner) {
  const int p = parallelism();
  constexpr int kRecords = 5000;
  Pipeline pipeline(Options());
  auto log = std::make_shared<ThreadLog>();
  auto keyed_sink = testing::CollectingSink<int>::Create();
  auto fused_sink = testing::CollectingSink<int>::Create();
  CheckFused check{log};

  auto fused = pipeline.Source(std::make_shared<TaggingSource>(kRecords, 5, log))
                   .Map([check](Tagged t) {
                     check(t);
                     return t;
                   })
                   .Filter([check](const Tagged& t) {
                     check(t);
                     return t.value % 2 == 0;
                   });
  fused.Sink([check](const Tagged& t) { check(t); });
  fused.Map([](const Tagged& t) { return t.value; }).Sink(fused_sink);
  fused.KeyBy([](const Tagged& t) { return t.value % 97; })
      .Process(RecordKeyedThread(log))
      .Process(AfterKeyed(log))
      .Sink(keyed_sink);
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::vector<int> evens;
  for (int x = 0; x < kRecords; x += 2) evens.push_back(x);
  EXPECT_EQ(Sorted(fused_sink->Values()), Sorted(evens));
  EXPECT_EQ(Sorted(keyed_sink->Values()), Sorted(evens));

  // Map, Filter and the sink ran on the thread that read each record.
  EXPECT_EQ(log->fused_checks.load(), kRecords * 2 + kRecords / 2);
  EXPECT_EQ(log->fused_mismatches.load(), 0);
  // Each keyed record was processed by the owner of its key group.
  EXPECT_EQ(log->keyed_records.load(), kRecords / 2);
  EXPECT_EQ(log->routing_mismatches.load(), 0);
  if (p > 1) {
    EXPECT_GT(log->moved.load(), 0) << "KeyBy should move some records to another worker";
  } else {
    EXPECT_EQ(log->moved.load(), 0);
  }
  // One thread per worker, distinct across workers; the keyed operator (and
  // what is fused after it) of worker w runs on worker w's thread.
  std::lock_guard<std::mutex> lock(log->mutex);
  std::set<std::thread::id> distinct;
  for (int w = 0; w < p; ++w) {
    ASSERT_EQ(log->source_threads[w].size(), 1u) << "worker " << w;
    const std::thread::id thread = *log->source_threads[w].begin();
    distinct.insert(thread);
    EXPECT_NE(thread, std::this_thread::get_id());
    if (log->keyed_threads.contains(w)) {
      EXPECT_THAT(log->keyed_threads[w], ElementsAre(thread)) << "worker " << w;
    }
    if (log->after_keyed_threads.contains(w)) {
      EXPECT_THAT(log->after_keyed_threads[w], ElementsAre(thread)) << "worker " << w;
    }
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(p));
  EXPECT_EQ(log->keyed_threads.size(), static_cast<size_t>(p))
      << "97 keys should reach every worker";
}

// A source may build each record in place in its batch
// (SourceOutput::CollectInPlace): what the builder keeps is emitted with its
// timestamp, what it declines is dropped without a trace.
class InPlaceSource final : public Source<std::string> {
 public:
  explicit InPlaceSource(int n) : n_(n) {}
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return std::vector<SourceSplit>{{"0"}};
  }
  absl::StatusOr<std::unique_ptr<SourceReader<std::string>>> CreateReader(
      const SourceReaderContext&) override {
    return std::unique_ptr<SourceReader<std::string>>(new Reader(n_));
  }

 private:
  class Reader final : public SourceReader<std::string> {
   public:
    explicit Reader(int n) : n_(n) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<std::string>& out) override {
      for (int k = 0; k < 7 && next_ < n_; ++k, ++next_) {
        const int value = next_;
        const bool kept = out.CollectInPlace(0, Timestamp{1000} + value, [&](std::string& slot) {
          EXPECT_TRUE(slot.empty()) << "a slot starts default-constructed";
          slot = absl::StrCat("record-", value, "-with-a-name-longer-than-sso");
          return value % 3 != 0;
        });
        EXPECT_EQ(kept, value % 3 != 0);
      }
      if (next_ < n_) return PollResult::kMoreAvailable;
      out.FinishSplit(0);
      return PollResult::kEndOfInput;
    }

   private:
    int n_;
    int next_ = 0;
  };
  int n_;
};

TEST(SourceOutputTest, CollectInPlaceEmitsWhatTheBuilderKeepsWithItsTimestamp) {
  Pipeline pipeline;
  auto sink = testing::CollectingSink<std::string>::Create();
  pipeline.Source(std::make_shared<InPlaceSource>(100)).Sink(sink);
  ASSERT_TRUE(testing::RunToCompletion(pipeline, absl::Seconds(20)).status.ok());
  std::vector<testing::TimestampedValue<std::string>> records = sink->Records();
  std::vector<std::string> expected;
  std::vector<Timestamp> expected_ts;
  for (int value = 0; value < 100; ++value) {
    if (value % 3 == 0) continue;
    expected.push_back(absl::StrCat("record-", value, "-with-a-name-longer-than-sso"));
    expected_ts.push_back(Timestamp{1000} + value);
  }
  std::vector<std::string> values;
  std::vector<Timestamp> timestamps;
  for (const auto& record : records) {
    values.push_back(record.value);
    timestamps.push_back(record.timestamp);
  }
  EXPECT_EQ(values, expected);
  EXPECT_EQ(timestamps, expected_ts);
}

// ---------------------------------------------------------------------------
// How often a record is moved or copied on its way.

// Counts its copies and moves (one test at a time uses it).
struct Counted {
  static inline std::atomic<int> copies{0};
  static inline std::atomic<int> moves{0};
  static void Reset() {
    copies = 0;
    moves = 0;
  }

  int value = 0;
  std::string payload;

  Counted() = default;
  explicit Counted(int v) : value(v), payload("a payload longer than sixteen bytes") {}
  Counted(const Counted& other) : value(other.value), payload(other.payload) { ++copies; }
  Counted(Counted&& other) noexcept : value(other.value), payload(std::move(other.payload)) {
    ++moves;
  }
  Counted& operator=(const Counted& other) {
    value = other.value;
    payload = other.payload;
    ++copies;
    return *this;
  }
  Counted& operator=(Counted&& other) noexcept {
    value = other.value;
    payload = std::move(other.payload);
    ++moves;
    return *this;
  }
};

// A record given to a Collector as an rvalue is moved into its batch once;
// one given as an lvalue is copied once and not moved.
TEST(CollectorTest, AnRvalueIsMovedOnceAndAnLvalueCopiedOnce) {
  internal::Emitter<Counted> emitter;
  Collector<Counted> out(&emitter, 8);
  Counted::Reset();
  out.Collect(Counted(1));
  EXPECT_EQ(Counted::moves, 1);
  EXPECT_EQ(Counted::copies, 0);
  Counted::Reset();
  Counted kept(2);
  out.Collect(kept);
  EXPECT_EQ(Counted::moves, 0);
  EXPECT_EQ(Counted::copies, 1);
  EXPECT_EQ(kept.payload, "a payload longer than sixteen bytes");
  Counted::Reset();
  out.CollectWithTimestamp(std::move(kept), 7);
  EXPECT_EQ(Counted::moves, 1);
  EXPECT_EQ(Counted::copies, 0);
  Counted::Reset();
  const Counted constant(3);
  out.CollectWithTimestamp(constant, 8);
  EXPECT_EQ(Counted::moves, 0);
  EXPECT_EQ(Counted::copies, 1);
  out.Flush();
}

// Emits Counted(x) for each x.
class MakeCounted final : public ProcessFunction<int, Counted> {
 public:
  absl::Status ProcessElement(const int& value, Context&, Collector<Counted>& out) override {
    out.Collect(Counted(value));
    return absl::OkStatus();
  }
};

// Emits each record's value and whether its payload arrived whole.
class ReadCounted final : public KeyedProcessFunction<int, Counted, int> {
 public:
  absl::Status ProcessElement(const Counted& record, Context&, Collector<int>& out) override {
    out.Collect(record.payload == "a payload longer than sixteen bytes" ? record.value : -1);
    return absl::OkStatus();
  }
};

// Through a Process function and a KeyBy between two workers, a record is
// moved twice (into the function's output batch, and into the batch of the
// worker that owns its key) and never copied.
TEST(CollectorTest, ARecordCrossingAnExchangeIsMovedTwiceAndNeverCopied) {
  constexpr int kRecords = 3000;
  Pipeline pipeline({.parallelism = 2, .batch_size = 64});
  std::vector<int> input(kRecords);
  for (int idx = 0; idx < kRecords; ++idx) input[idx] = idx;
  auto sink = testing::CollectingSink<int>::Create();
  pipeline.Source(testing::VectorSource<int>::Create(input))
      .Process(MakeCounted{})
      .KeyBy([](const Counted& c) { return c.value % 7; })
      .Process(ReadCounted{})
      .Sink(sink);
  Counted::Reset();
  testing::JobResult result = testing::RunToCompletion(pipeline, kDeadline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(Sorted(sink->Values()), input);
  EXPECT_EQ(Counted::copies, 0);
  EXPECT_EQ(Counted::moves, 2 * kRecords);
}

}  // namespace
}  // namespace weir
