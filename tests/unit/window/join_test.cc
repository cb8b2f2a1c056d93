// EnrichmentJoin through the public API, with both inputs scripted so the
// order in which rows and events reach the join is known: events after,
// before and without their row; updates (later events see the new row) and
// deletes (later events wait, then go to the unmatched side output with the
// reason); events still waiting at the end of input; and a crash after a
// checkpoint with events waiting in keyed state and rows in broadcast state,
// restored at the same and at another parallelism, exactly once.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "tests/unit/window/scripted_source.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using Event = std::pair<int64_t, std::string>;       // (id, content key)
using Change = RowChange<std::string, std::string>;  // content key -> title
using Joined = std::pair<int64_t, std::string>;      // (event id, title)
using Join = EnrichmentJoin<std::string, Event, std::string, Joined>;

enum class Backend { kMemory, kRocksDb };

void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kMemory ? "Memory" : "RocksDb");
}

const auto kJoinFn = [](const Event& e, const std::string& title) {
  return Joined{e.first, title};
};

// Events with ids first, first + 1, ... for `content`.
void AddEvents(std::vector<testing::TimestampedValue<Event>>& events, int count,
               const std::string& content) {
  for (int idx = 0; idx < count; ++idx) {
    const int64_t id = static_cast<int64_t>(events.size());
    events.push_back({Event{id, content}, id});
  }
}

std::vector<testing::TimestampedValue<Change>> Changes(std::vector<Change> changes) {
  std::vector<testing::TimestampedValue<Change>> out;
  for (Change& change : changes) out.push_back({std::move(change), 0});
  return out;
}

int64_t JoinInput(const JobHandle& job) {
  int64_t total = 0;
  for (const auto& m : testing::OperatorMetricsOf(job.Metrics())) {
    if (m.name == "join") total += m.records_in;
  }
  return total;
}

using testing::WaitFor;

// Waits until the join has received `events` events and `rows` rows (every
// worker receives every row). Whatever reaches a worker after that is
// processed after them.
#define WAIT_FOR_JOIN_INPUT(job, events, rows, parallelism)                         \
  ASSERT_TRUE(WaitFor([&] {                                                         \
    return JoinInput(job) == (events) + static_cast<int64_t>(rows) * (parallelism); \
  })) << "join input "                                                              \
      << JoinInput(job)

template <class T>
std::vector<T> Sorted(std::vector<T> values) {
  std::sort(values.begin(), values.end());
  return values;
}

class JoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    root_ = std::filesystem::temp_directory_path() /
            ("weir-join-test-" + std::to_string(getpid()) + "-" + name);
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::filesystem::path root_;
};

class JoinParallelismTest : public JoinTest, public ::testing::WithParamInterface<int> {};

// Which events join which row, with a max_wait no test run reaches (however
// long the machine takes between two steps, no event times out here;
// EventsWithoutARowGoToUnmatchedAfterMaxWait covers the timeout).
TEST_P(JoinParallelismTest, EventsBeforeAfterRowsUpdatesAndDeletes) {
  const int parallelism = GetParam();
  auto rows = testing::ScriptedSource<Change>::Create(
      Changes({{"a", "A1"}, {"b", "B1"}, {"a", "A2"}, {"a", std::nullopt}, {"a", "A3"}}),
      {.records_per_poll = 64, .bounded = false}, 0);
  std::vector<testing::TimestampedValue<Event>> script;
  AddEvents(script, 10, "a");  //  0..9:  after row a      -> A1
  AddEvents(script, 10, "b");  // 10..19: before row b     -> B1 once it arrives
  AddEvents(script, 10, "a");  // 20..29: after the update -> A2
  AddEvents(script, 10, "a");  // 30..39: after the delete -> wait, A3 once it arrives
  auto events =
      testing::ScriptedSource<Event>::Create(script, {.records_per_poll = 64, .bounded = false}, 0);

  const OutputTag<Unmatched<Event>> kUnmatched("unmatched");
  Pipeline pipeline({.parallelism = parallelism});
  auto joined = pipeline.Source(events)
                    .KeyBy([](const Event& e) { return e.second; })
                    .Connect(pipeline.Source(rows).Broadcast())
                    .Process(Join(kJoinFn, {.max_wait = absl::Hours(1), .unmatched = kUnmatched}))
                    .Name("join");
  auto sink = testing::CollectingSink<Joined>::Create();
  auto unmatched = testing::CollectingSink<Unmatched<Event>>::Create();
  joined.Sink(sink);
  joined.SideOutput(kUnmatched).Sink(unmatched);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  // After its row: joined at once.
  rows->Release(1);
  WAIT_FOR_JOIN_INPUT(*job, 0, 1, parallelism);
  events->Release(10);
  ASSERT_TRUE(WaitFor([&] { return sink->size() == 10; })) << sink->size();
  // Before its row: waits, and is joined when the row arrives. (The join
  // emitting them early would show here; a check that can only miss such a
  // bug on a slow machine, never fail a correct join.)
  events->Release(20);
  WAIT_FOR_JOIN_INPUT(*job, 20, 1, parallelism);
  EXPECT_EQ(sink->size(), 10u);
  rows->Release(2);
  ASSERT_TRUE(WaitFor([&] { return sink->size() == 20; })) << sink->size();
  // An update: later events see the new row.
  rows->Release(3);
  WAIT_FOR_JOIN_INPUT(*job, 20, 3, parallelism);
  events->Release(30);
  ASSERT_TRUE(WaitFor([&] { return sink->size() == 30; })) << sink->size();
  // A delete: later events wait, and join the row inserted again.
  rows->Release(4);
  WAIT_FOR_JOIN_INPUT(*job, 30, 4, parallelism);
  events->Release(40);
  WAIT_FOR_JOIN_INPUT(*job, 40, 4, parallelism);
  EXPECT_EQ(sink->size(), 30u);
  rows->Release(5);
  ASSERT_TRUE(WaitFor([&] { return sink->size() == 40; })) << sink->size();

  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  std::vector<Joined> expected;
  for (int64_t id = 0; id < 10; ++id) expected.push_back({id, "A1"});
  for (int64_t id = 10; id < 20; ++id) expected.push_back({id, "B1"});
  for (int64_t id = 20; id < 30; ++id) expected.push_back({id, "A2"});
  for (int64_t id = 30; id < 40; ++id) expected.push_back({id, "A3"});
  EXPECT_EQ(Sorted(sink->Values()), expected);
  EXPECT_EQ(unmatched->size(), 0u);
  int64_t late = 0;
  for (const auto& m : testing::OperatorMetricsOf(job->Metrics())) {
    if (m.name == "join") late += m.late_records;
  }
  EXPECT_EQ(late, 0);
}

// Events that wait longer than max_wait of processing time go to the
// unmatched side output: after a delete, and for a key that never has a
// row. Only the order of things is asserted, never a latency: the timeout
// fires no earlier than max_wait after the events arrived (a lower bound
// on the wall time, which no delay can break), and then every one of them
// is unmatched with the reason, none joined.
TEST_P(JoinParallelismTest, EventsWithoutARowGoToUnmatchedAfterMaxWait) {
  const int parallelism = GetParam();
  constexpr absl::Duration kMaxWait = absl::Milliseconds(300);
  auto rows = testing::ScriptedSource<Change>::Create(
      Changes({{"a", "A1"}, {"a", std::nullopt}}), {.records_per_poll = 64, .bounded = false}, 0);
  std::vector<testing::TimestampedValue<Event>> script;
  AddEvents(script, 10, "a");  //  0..9:  after row a      -> A1
  AddEvents(script, 10, "a");  // 10..19: after the delete -> unmatched
  AddEvents(script, 5, "z");   // 20..24: never a row      -> unmatched
  auto events =
      testing::ScriptedSource<Event>::Create(script, {.records_per_poll = 64, .bounded = false}, 0);

  const OutputTag<Unmatched<Event>> kUnmatched("unmatched");
  Pipeline pipeline({.parallelism = parallelism});
  auto joined = pipeline.Source(events)
                    .KeyBy([](const Event& e) { return e.second; })
                    .Connect(pipeline.Source(rows).Broadcast())
                    .Process(Join(kJoinFn, {.max_wait = kMaxWait, .unmatched = kUnmatched}))
                    .Name("join");
  auto sink = testing::CollectingSink<Joined>::Create();
  auto unmatched = testing::CollectingSink<Unmatched<Event>>::Create();
  joined.Sink(sink);
  joined.SideOutput(kUnmatched).Sink(unmatched);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  rows->Release(1);
  WAIT_FOR_JOIN_INPUT(*job, 0, 1, parallelism);
  events->Release(10);
  ASSERT_TRUE(WaitFor([&] { return sink->size() == 10; })) << sink->size();
  rows->Release(2);
  WAIT_FOR_JOIN_INPUT(*job, 10, 2, parallelism);
  const absl::Time released = absl::Now();
  events->Release(25);
  ASSERT_TRUE(WaitFor([&] { return unmatched->size() == 15; })) << unmatched->size();
  // Processing time counts in whole milliseconds: the deadline may start
  // up to 1 ms before the release.
  EXPECT_GE(absl::Now() - released, kMaxWait - absl::Milliseconds(1));

  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  std::vector<Joined> expected;
  for (int64_t id = 0; id < 10; ++id) expected.push_back({id, "A1"});
  EXPECT_EQ(Sorted(sink->Values()), expected);
  std::vector<int64_t> unmatched_ids;
  for (const Unmatched<Event>& u : unmatched->Values()) {
    unmatched_ids.push_back(u.event.first);
    EXPECT_EQ(u.reason, "no row for the key arrived within 300ms");
  }
  std::vector<int64_t> expected_unmatched;
  for (int64_t id = 10; id < 25; ++id) expected_unmatched.push_back(id);
  EXPECT_EQ(Sorted(unmatched_ids), expected_unmatched);
  int64_t late = 0;
  for (const auto& m : testing::OperatorMetricsOf(job->Metrics())) {
    if (m.name == "join") late += m.late_records;
  }
  EXPECT_EQ(late, 15);
}

INSTANTIATE_TEST_SUITE_P(Join, JoinParallelismTest, ::testing::Values(1, 2, 4),
                         [](const auto& param_info) {
                           return "P" + std::to_string(param_info.param);
                         });

TEST_F(JoinTest, EventsStillWaitingAtTheEndOfInputGoToUnmatched) {
  std::vector<testing::TimestampedValue<Event>> script;
  AddEvents(script, 6, "a");
  AddEvents(script, 4, "q");  // no row
  const OutputTag<Unmatched<Event>> kUnmatched("unmatched");
  Pipeline pipeline({.parallelism = 2});
  auto joined =
      pipeline.Source(testing::ScriptedSource<Event>::Create(script, {.records_per_poll = 64}))
          .KeyBy([](const Event& e) { return e.second; })
          .Connect(pipeline
                       .Source(testing::ScriptedSource<Change>::Create(Changes({{"a", "A"}}),
                                                                       {.records_per_poll = 64}))
                       .Broadcast())
          .Process(Join(kJoinFn, {.max_wait = absl::Minutes(5), .unmatched = kUnmatched}))
          .Name("join");
  auto sink = testing::CollectingSink<Joined>::Create();
  auto unmatched = testing::CollectingSink<Unmatched<Event>>::Create();
  joined.Sink(sink);
  joined.SideOutput(kUnmatched).Sink(unmatched);
  testing::JobResult result = testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<Joined> expected;
  for (int64_t id = 0; id < 6; ++id) expected.push_back({id, "A"});
  EXPECT_EQ(Sorted(sink->Values()), expected);
  std::vector<int64_t> unmatched_ids;
  for (const Unmatched<Event>& u : unmatched->Values()) {
    unmatched_ids.push_back(u.event.first);
    EXPECT_EQ(u.reason, "the input ended before a row for the key arrived");
  }
  EXPECT_EQ(Sorted(unmatched_ids), (std::vector<int64_t>{6, 7, 8, 9}));
  EXPECT_EQ(result.LateRecords("join"), 4);
}

// Crash after a checkpoint taken while events wait for their row (keyed
// state) and rows were received (broadcast state); restart at `after`.
class JoinRestoreTest : public JoinTest,
                        public ::testing::WithParamInterface<std::tuple<int, int, Backend>> {
 protected:
  std::vector<testing::TimestampedValue<Change>> RowScript() const {
    return Changes({{"a", "A"}, {"b", "B"}, {"c", "C"}, {"a", "A2"}});
  }
  std::vector<testing::TimestampedValue<Event>> EventScript() const {
    std::vector<testing::TimestampedValue<Event>> script;
    for (int idx = 0; idx < 5; ++idx) {
      AddEvents(script, 1, "a");  // 0..9: a and b, joined before the crash
      AddEvents(script, 1, "b");
    }
    AddEvents(script, 10, "c");  // 10..19: waiting for c at the checkpoint
    AddEvents(script, 10, "a");  // 20..29: 20..24 read after the checkpoint, then again
    AddEvents(script, 5, "a");   // 30..34: after the update of a
    return script;
  }

  struct Job {
    std::unique_ptr<Pipeline> pipeline;
    std::shared_ptr<testing::ScriptedSource<Change>> rows;
    std::shared_ptr<testing::ScriptedSource<Event>> events;
    std::shared_ptr<testing::CollectingSink<Unmatched<Event>>> unmatched;
  };

  Job Build(int parallelism) {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.job_name = "join";
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    if (std::get<2>(GetParam()) == Backend::kRocksDb) {
      options.state_backend = StateBackend::RocksDb((root_ / "rocksdb").string());
    }
    Job job;
    job.pipeline = std::make_unique<Pipeline>(options);
    job.rows = testing::ScriptedSource<Change>::Create(
        RowScript(), {.records_per_poll = 64, .bounded = false}, 0);
    job.events = testing::ScriptedSource<Event>::Create(
        EventScript(), {.records_per_poll = 64, .bounded = false}, 0);
    job.unmatched = testing::CollectingSink<Unmatched<Event>>::Create();
    const OutputTag<Unmatched<Event>> kUnmatched("unmatched");
    auto joined =
        job.pipeline->Source(job.events)
            .Uid("events")
            .KeyBy([](const Event& e) { return e.second; })
            .Connect(job.pipeline->Source(job.rows).Uid("rows").Broadcast())
            .Process(Join(kJoinFn, {.max_wait = absl::Minutes(5), .unmatched = kUnmatched}))
            .Uid("join");
    joined.Sink(std::make_shared<testing::TransactionalFileSink<Joined>>((root_ / "out").string()))
        .Uid("out");
    joined.SideOutput(kUnmatched).Sink(job.unmatched).Uid("unmatched");
    return job;
  }

  std::vector<Joined> Committed() const {
    auto committed =
        testing::TransactionalFileSink<Joined>::ReadCommitted((root_ / "out").string());
    EXPECT_TRUE(committed.ok()) << committed.status();
    return committed.ok() ? Sorted(*committed) : std::vector<Joined>();
  }
};

TEST_P(JoinRestoreTest, WaitingEventsAndRowsSurviveARestart) {
  const auto [before, after, backend] = GetParam();
  (void)backend;
  std::vector<Joined> expected;
  for (int64_t id = 0; id < 10; ++id) expected.push_back({id, id % 2 == 0 ? "A" : "B"});
  for (int64_t id = 10; id < 20; ++id) expected.push_back({id, "C"});
  for (int64_t id = 20; id < 30; ++id) expected.push_back({id, "A"});
  for (int64_t id = 30; id < 35; ++id) expected.push_back({id, "A2"});
  int64_t taken = 0;
  {
    Job run = Build(before);
    absl::StatusOr<JobHandle> job = run.pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    run.rows->Release(2);
    WAIT_FOR_JOIN_INPUT(*job, 0, 2, before);
    run.events->Release(20);
    WAIT_FOR_JOIN_INPUT(*job, 20, 2, before);
    absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    taken = *checkpoint;
    // Joined after the checkpoint: never committed by this run.
    run.events->Release(25);
    WAIT_FOR_JOIN_INPUT(*job, 25, 2, before);
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
    EXPECT_TRUE(run.unmatched->Values().empty());
  }
  std::vector<Joined> partial = Committed();
  EXPECT_TRUE(std::includes(expected.begin(), expected.end(), partial.begin(), partial.end()));
  EXPECT_LE(partial.size(), 10u);

  Job run = Build(after);
  absl::StatusOr<JobHandle> job = run.pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // The run says which checkpoint it restored; it has none of its own yet.
  EXPECT_GE(job->restored_checkpoint(), taken);
  EXPECT_GE(taken, 1);
  EXPECT_EQ(job->last_completed_checkpoint(), 0);
  // The sources resume after row 2 and event 20: events 20..29 join with the
  // restored row of a.
  run.rows->Release(2);
  run.events->Release(30);
  WAIT_FOR_JOIN_INPUT(*job, 10, 0, after);
  // The row of c releases the events that waited for it across the restart.
  run.rows->Release(3);
  WAIT_FOR_JOIN_INPUT(*job, 10, 1, after);
  run.rows->Release(4);
  WAIT_FOR_JOIN_INPUT(*job, 10, 2, after);
  run.events->Release(35);
  WAIT_FOR_JOIN_INPUT(*job, 15, 2, after);
  job->Stop();  // the final checkpoint commits the rest
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(Committed(), expected);
  EXPECT_TRUE(run.unmatched->Values().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Join, JoinRestoreTest,
    ::testing::Values(std::tuple{2, 2, Backend::kMemory}, std::tuple{2, 4, Backend::kMemory},
                      std::tuple{4, 1, Backend::kMemory}, std::tuple{2, 2, Backend::kRocksDb},
                      std::tuple{1, 3, Backend::kRocksDb}),
    [](const auto& param_info) {
      return "From" + std::to_string(std::get<0>(param_info.param)) + "To" +
             std::to_string(std::get<1>(param_info.param)) +
             (std::get<2>(param_info.param) == Backend::kMemory ? "Memory" : "RocksDb");
    });

}  // namespace
}  // namespace weir
