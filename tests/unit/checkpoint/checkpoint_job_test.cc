// Exactly-once through checkpoints, in one process: keyed state, source
// positions and a two-phase sink survive a cancelled run (a crash without a
// final checkpoint), a restart at another parallelism, and corrupt storage.

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "tests/unit/checkpoint/count_job.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using count_job::Backend;
using count_job::Count;
using count_job::CountPerKey;
using count_job::Expected;
using count_job::Input;
using CheckpointJobTest = count_job::CountJobTest;

TEST_F(CheckpointJobTest, RunToEndCommitsEverythingOnce) {
  auto pipeline = Build(2, 4000, 4000);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_GE(job->last_completed_checkpoint(), 3);  // periodic ones and the final one
  EXPECT_EQ(Committed(), Expected(4000));

  // Starting again restores the final checkpoint: sources are at their end,
  // so nothing new is read and nothing is committed twice.
  auto again = Build(2, 4000, 0);
  ASSERT_TRUE(again->Run().ok());
  EXPECT_EQ(Committed(), Expected(4000));
}

class CheckpointRescaleTest : public CheckpointJobTest,
                              public ::testing::WithParamInterface<std::tuple<int, int, Backend>> {
 protected:
  Backend backend() const override { return std::get<2>(GetParam()); }
};

TEST_P(CheckpointRescaleTest, CrashThenRestoreLosesNothingAndDuplicatesNothing) {
  const auto [before, after, unused] = GetParam();
  constexpr int kRecords = 12000;
  RunAndCrash(before, kRecords, 2);
  const std::vector<Count> partial = Committed();
  EXPECT_FALSE(partial.empty());
  EXPECT_LT(partial.size(), Expected(kRecords).size());

  auto pipeline = Build(after, kRecords, 0);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Committed(), Expected(kRecords));
}

INSTANTIATE_TEST_SUITE_P(Parallelism, CheckpointRescaleTest,
                         ::testing::Combine(::testing::Values(1, 2, 4), ::testing::Values(1, 2, 4),
                                            ::testing::Values(Backend::kMemory, Backend::kRocksDb)),
                         [](const auto& param_info) {
                           return "From" + std::to_string(std::get<0>(param_info.param)) + "To" +
                                  std::to_string(std::get<1>(param_info.param)) +
                                  (std::get<2>(param_info.param) == Backend::kMemory ? "Memory"
                                                                                     : "RocksDb");
                         });

class RocksDbCheckpointJobTest : public CheckpointJobTest {
 protected:
  Backend backend() const override { return Backend::kRocksDb; }
};

TEST_F(RocksDbCheckpointJobTest, RunToEndCommitsEverythingOnce) {
  auto pipeline = Build(2, 4000, 4000);
  ASSERT_TRUE(pipeline->Run().ok());
  EXPECT_EQ(Committed(), Expected(4000));
}

// Incremental: a later checkpoint references SST files an earlier one uploaded.
TEST_F(RocksDbCheckpointJobTest, CheckpointsShareUnchangedFiles) {
  auto pipeline = Build(1, 8000, 4000);
  ASSERT_TRUE(pipeline->Run().ok());
  std::map<std::string, int> uses;
  int manifests = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root_ / "checkpoints")) {
    if (entry.path().filename() != "_manifest") continue;
    ++manifests;
  }
  EXPECT_GE(manifests, 2);
  // Shared files are named <instance identity>-<file number>.sst for RocksDB.
  int rocksdb_files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(root_ / "checkpoints" / "count" / "shared")) {
    if (entry.path().string().find("-0") != std::string::npos) ++rocksdb_files;
  }
  EXPECT_GT(rocksdb_files, 0);
}

TEST_F(CheckpointJobTest, CorruptNewestManifestFallsBackToTheOneBefore) {
  RunAndCrash(2, 6000, 3);
  // Break the newest manifest.
  std::vector<std::filesystem::path> manifests;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root_ / "checkpoints")) {
    if (entry.path().filename() == "_manifest") manifests.push_back(entry.path());
  }
  ASSERT_GE(manifests.size(), 2u);
  std::sort(manifests.begin(), manifests.end());
  std::filesystem::resize_file(manifests.back(), 10);

  auto pipeline = Build(2, 6000, 0);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;
  // Nothing is lost. (What the lost checkpoint had committed is replayed from
  // the older one: losing a complete checkpoint in storage costs exactly-once
  // for that stretch, as in any checkpointing engine.)
  std::vector<Count> committed = Committed();
  committed.erase(std::unique(committed.begin(), committed.end()), committed.end());
  EXPECT_EQ(committed, Expected(6000));
}

TEST_F(CheckpointJobTest, MissingStateFilesFailWithDataLossInsteadOfStartingEmpty) {
  RunAndCrash(2, 6000, 2);
  for (const auto& entry :
       std::filesystem::directory_iterator(root_ / "checkpoints" / "count" / "shared")) {
    std::filesystem::remove(entry.path());
  }
  auto pipeline = Build(2, 6000, 0);
  absl::Status status = pipeline->Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
}

TEST_F(CheckpointJobTest, TruncatedStateFileFallsBackToAnOlderCheckpoint) {
  RunAndCrash(2, 6000, 3);
  // Truncate the newest state file: the checkpoints referencing it fail their
  // checksum, an older one (which does not reference it) is used.
  std::filesystem::path newest;
  std::filesystem::file_time_type newest_time;
  for (const auto& entry :
       std::filesystem::directory_iterator(root_ / "checkpoints" / "count" / "shared")) {
    if (newest.empty() || entry.last_write_time() > newest_time) {
      newest = entry.path();
      newest_time = entry.last_write_time();
    }
  }
  ASSERT_FALSE(newest.empty());
  std::filesystem::resize_file(newest, std::filesystem::file_size(newest) / 2);

  auto pipeline = Build(2, 6000, 0);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;
  std::vector<Count> committed = Committed();
  committed.erase(std::unique(committed.begin(), committed.end()), committed.end());
  EXPECT_EQ(committed, Expected(6000));
}

// A restarted job's retention counts the checkpoints it found: the first
// new checkpoint deletes only the oldest, `retained` stay.
TEST_F(CheckpointJobTest, RetentionAfterARestoreKeepsTheHistoryItFound) {
  RunAndCrash(2, 12000, 4);
  const std::vector<int64_t> before = ManifestIds();
  ASSERT_EQ(before.size(), 3u);  // CheckpointOptions::retained

  auto pipeline = Build(2, 12000, 1000, absl::Hours(1));
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<int64_t> id = job->TriggerCheckpoint();
  ASSERT_TRUE(id.ok()) << id.status();
  job->Cancel();
  EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ManifestIds(), (std::vector<int64_t>{before[1], before[2], *id}));
}

// The exactly-once file sink, whose writer on worker 1 stalls once, for
// `stall`, in its first Write after a checkpoint completed: that worker's
// thread stops (it polls no source, forwards no barrier) as under a slow
// downstream system.
class StallingSink final : public Sink<Count> {
 public:
  StallingSink(const std::string& dir, absl::Duration stall)
      : inner_(std::make_shared<testing::TransactionalFileSink<Count>>(dir)), stall_(stall) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<Count>>> CreateWriter(
      const SinkContext& context) override {
    absl::StatusOr<std::unique_ptr<SinkWriter<Count>>> inner = inner_->CreateWriter(context);
    if (!inner.ok()) return inner.status();
    return std::unique_ptr<SinkWriter<Count>>(
        new Writer(*std::move(inner), context.worker_index == 1 ? this : nullptr));
  }

  // Set once the stall is over.
  std::atomic<bool> stalled{false};

 private:
  class Writer final : public SinkWriter<Count> {
   public:
    Writer(std::unique_ptr<SinkWriter<Count>> inner, StallingSink* stalls)
        : inner_(std::move(inner)), stalls_(stalls) {}
    absl::Status Write(std::span<Count> values, std::span<const Timestamp> timestamps) override {
      if (stalls_ != nullptr && committed_ && !stalls_->stalled.load()) {
        absl::SleepFor(stalls_->stall_);
        stalls_->stalled.store(true);
      }
      return inner_->Write(values, timestamps);
    }
    absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
      return inner_->PreCommit(checkpoint_id);
    }
    absl::Status Commit(int64_t checkpoint_id, const std::string& committable) override {
      committed_ = true;
      return inner_->Commit(checkpoint_id, committable);
    }

   private:
    std::unique_ptr<SinkWriter<Count>> inner_;
    StallingSink* stalls_;
    bool committed_ = false;
  };

  std::shared_ptr<testing::TransactionalFileSink<Count>> inner_;
  absl::Duration stall_;
};

// Passes the numbers on; the broadcast side only makes this a two-input
// operator whose main input is fused to its source, as the engagement
// pipeline's enrichment join is.
class PassThrough final : public BroadcastProcessFunction<int64_t, int64_t, int64_t> {
 public:
  absl::Status ProcessElement(const int64_t& value, ReadOnlyContext&,
                              Collector<int64_t>& out) override {
    out.Collect(value);
    return absl::OkStatus();
  }
  absl::Status ProcessBroadcastElement(const int64_t&, Context&, Collector<int64_t>&) override {
    return absl::OkStatus();
  }
};

// Worker 1 stalls for 3 s, longer than the 1 s checkpoint timeout: the
// checkpoints requested meanwhile time out, and worker 0's sources emit their
// barriers while worker 1's sources skip them (a source emits only the newest
// request). Inputs then carry barriers n and n+1 from one worker, only n+1
// from the other: exchange channels, and (with the join) a fused input next
// to a broadcast one. The first checkpoint that completes after the stall
// must still cover exactly what its sources had read: a crash right after it,
// and a restart from it, lose and duplicate nothing.
class AbandonedCheckpointTest : public CheckpointJobTest,
                                public ::testing::WithParamInterface<bool> {
 protected:
  bool with_join() const { return GetParam(); }
};

TEST_P(AbandonedCheckpointTest, CheckpointsAbandonedWhileAWorkerStallsLoseNothingOnRestore) {
  constexpr int kRecords = 24000;  // 6 s at 1000 records/s per split
  // The job, at `rate` records/s per split (0: flat out); worker 1's sink
  // stalls for `stall`. The restart runs the same operators (every one
  // whose state the checkpoint holds), flat out and without the stall.
  const auto build = [&](double rate, absl::Duration stall) {
    PipelineOptions options;
    options.parallelism = 2;
    options.job_name = "count";
    options.checkpoints.interval = absl::Milliseconds(200);
    options.checkpoints.timeout = absl::Seconds(1);
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    // Room for the 3 s of batches worker 0 sends worker 1 during the stall: it
    // is not backpressured, so its sources keep emitting barriers.
    options.queue_capacity = 8192;
    auto pipeline = std::make_unique<Pipeline>(options);
    testing::VectorSourceOptions source_options;
    source_options.splits = 4;
    source_options.records_per_poll = 64;
    source_options.records_per_second = rate;
    auto sink = std::make_shared<StallingSink>((root_ / "out").string(), stall);
    Stream<int64_t> numbers =
        pipeline->Source(testing::VectorSource<int64_t>::Create(Input(kRecords), source_options))
            .Uid("numbers");
    if (with_join()) {
      numbers = numbers
                    .Connect(pipeline
                                 ->Source(testing::VectorSource<int64_t>::Create(
                                     std::vector<int64_t>(kRecords, 0), source_options))
                                 .Uid("other")
                                 .Broadcast())
                    .Process(PassThrough{})
                    .Uid("join");
    }
    numbers.KeyBy([](int64_t v) { return v; })
        .Process(CountPerKey{})
        .Uid("count")
        .Sink(sink)
        .Uid("out");
    return std::make_pair(std::move(pipeline), sink);
  };
  auto [pipeline, sink] = build(1000, absl::Seconds(3));
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!sink->stalled.load() && !job->done() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  const int64_t before = job->last_completed_checkpoint();
  while (job->last_completed_checkpoint() == before && !job->done() && absl::Now() < deadline) {
    absl::SleepFor(absl::Microseconds(200));
  }
  ASSERT_FALSE(job->done()) << "the job ended before it could be interrupted";
  job->Cancel();  // a crash: what was written after that checkpoint is never committed
  EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  ASSERT_GT(job->last_completed_checkpoint(), before);

  absl::Status status = build(0, absl::ZeroDuration()).first->Run();
  ASSERT_TRUE(status.ok()) << status;
  const std::vector<Count> committed = Committed();
  const std::vector<Count> expected = Expected(kRecords);
  EXPECT_EQ(committed.size(), expected.size()) << "records lost or duplicated";
  EXPECT_EQ(committed, expected);
}

INSTANTIATE_TEST_SUITE_P(Topology, AbandonedCheckpointTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "ThroughABroadcastJoin" : "ThroughAnExchange";
                         });

TEST_F(CheckpointJobTest, IntervalWithoutStorageIsAConfigurationError) {
  PipelineOptions options;
  options.checkpoints.interval = absl::Seconds(1);
  Pipeline pipeline(options);
  pipeline.Source(testing::VectorSource<int64_t>::Create(Input(10))).Sink([](const int64_t&) {});
  EXPECT_EQ(pipeline.Run().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// CheckpointOptions::retained other than the default: only that many
// complete checkpoints stay in storage, the newest ones.
TEST_F(CheckpointJobTest, RetainedKeepsThatManyNewestCheckpoints) {
  count_job::Shape shape;
  shape.retained = 1;
  auto pipeline = Build(2, 6000, 1500, absl::Hours(1), shape);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  int64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<int64_t> id = job->TriggerCheckpoint();
    ASSERT_TRUE(id.ok()) << id.status();
    last = *id;
  }
  job->Cancel();
  (void)job->Wait();
  EXPECT_EQ(ManifestIds(), std::vector<int64_t>{last});
}

// CheckpointOptions::min_pause: periodic checkpoints start no sooner than
// min_pause after the previous one ended, even with a 10 ms interval. Over
// 1.5 s after the first one, at most 1.5 s / 500 ms + 1 more complete (a
// loaded machine only takes fewer); without the pause it would be dozens.
TEST_F(CheckpointJobTest, MinPauseSpacesPeriodicCheckpoints) {
  count_job::Shape shape;
  shape.min_pause = absl::Milliseconds(500);
  auto pipeline = Build(2, 100000, 10, absl::Milliseconds(10), shape);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(testing::WaitFor([&] { return job->last_completed_checkpoint() >= 1; }));
  const int64_t first = job->last_completed_checkpoint();
  absl::SleepFor(absl::Milliseconds(1500));  // the window counted, not a synchronization
  const int64_t taken = job->last_completed_checkpoint() - first;
  job->Cancel();
  (void)job->Wait();
  EXPECT_LE(taken, 4) << "checkpoints closer than min_pause";
}

TEST_F(CheckpointJobTest, TriggerCheckpointTakesOneNow) {
  auto pipeline = Build(2, 6000, 1500);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<int64_t> id = job->TriggerCheckpoint();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_GT(*id, 0);
  EXPECT_GE(job->last_completed_checkpoint(), *id);
  job->Cancel();
  (void)job->Wait();
}

// A source whose reader keeps SourceReader::SnapshotState's default: it
// cannot be checkpointed. Its records never end.
class UncheckpointableSource final : public Source<int64_t> {
 public:
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return std::vector<SourceSplit>{{"only"}};
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int64_t>>> CreateReader(
      const SourceReaderContext&) override {
    return std::unique_ptr<SourceReader<int64_t>>(new Reader());
  }

 private:
  class Reader final : public SourceReader<int64_t> {
   public:
    absl::StatusOr<PollResult> Poll(SourceOutput<int64_t>& out) override {
      out.Collect(0, next_, next_);
      ++next_;
      return PollResult::kMoreAvailable;
    }

   private:
    int64_t next_ = 0;
  };
};

// In a job with checkpoints, a source that cannot be checkpointed fails the
// job at its first checkpoint, naming the source, instead of running on
// with checkpoints that never complete.
TEST_F(CheckpointJobTest, ASourceThatCannotBeCheckpointedFailsACheckpointedJob) {
  PipelineOptions options;
  options.job_name = "uncheckpointable";
  options.checkpoints.interval = absl::Milliseconds(20);
  options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
  Pipeline pipeline(options);
  pipeline.Source(std::make_shared<UncheckpointableSource>())
      .Uid("plain-source")
      .Name("plain source")
      .Sink([](const int64_t&) {})
      .Uid("discard");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(testing::WaitFor([&] { return job->done(); }, absl::Seconds(60)))
      << "the job ran on for 60 s";
  const absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_THAT(status.message(), ::testing::HasSubstr("this source does not support checkpoints"));
  EXPECT_THAT(status.message(), ::testing::HasSubstr("plain source"));
  EXPECT_EQ(job->last_completed_checkpoint(), 0);
}

// Checkpoints on demand from two threads while periodic ones run every
// millisecond: each completes. (When ids were taken before a checkpoint's
// turn, another checkpoint could take the next id and run first; the one
// with the lower id then waited its whole timeout for barriers the
// operators, already past it, never acknowledged.)
TEST_F(CheckpointJobTest, ConcurrentOnDemandAndPeriodicCheckpointsAllComplete) {
  count_job::Shape shape;
  shape.timeout = absl::Seconds(20);
  auto pipeline = Build(2, 10'000'000, 20000, absl::Milliseconds(1), shape);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  std::atomic<int> completed{0};
  auto trigger = [&] {
    for (int round = 0; round < 100; ++round) {
      absl::StatusOr<int64_t> id = job->TriggerCheckpoint();
      if (!id.ok() && absl::IsFailedPrecondition(id.status())) return;  // the input ended
      ASSERT_TRUE(id.ok()) << "round " << round << ": " << id.status();
      completed.fetch_add(1);
    }
  };
  std::thread first(trigger);
  std::thread second(trigger);
  first.join();
  second.join();
  EXPECT_GT(completed.load(), 20);
  job->Cancel();
  (void)job->Wait();
}

// Wraps a sink and watches its asynchronous pre-commits: how many are
// outstanding, and how many records the worker wrote while one was.
class WatchedSink final : public Sink<Count> {
 public:
  explicit WatchedSink(std::shared_ptr<Sink<Count>> inner) : inner_(std::move(inner)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<Count>>> CreateWriter(
      const SinkContext& context) override {
    absl::StatusOr<std::unique_ptr<SinkWriter<Count>>> inner = inner_->CreateWriter(context);
    if (!inner.ok()) return inner.status();
    return std::unique_ptr<SinkWriter<Count>>(new Writer(*std::move(inner), this));
  }

  std::atomic<int> outstanding{0};
  std::atomic<int64_t> async_pre_commits{0};
  std::atomic<int64_t> written_while_outstanding{0};

 private:
  class Writer final : public SinkWriter<Count> {
   public:
    Writer(std::unique_ptr<SinkWriter<Count>> inner, WatchedSink* sink)
        : inner_(std::move(inner)), sink_(sink) {}
    absl::Status Write(std::span<Count> values, std::span<const Timestamp> timestamps) override {
      if (sink_->outstanding.load() > 0) {
        sink_->written_while_outstanding.fetch_add(static_cast<int64_t>(values.size()));
      }
      return inner_->Write(values, timestamps);
    }
    absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
      return inner_->PreCommit(checkpoint_id);
    }
    bool PreCommitAsync(int64_t checkpoint_id, PreCommitDone& done) override {
      PreCommitDone watched = [sink = sink_, done](absl::StatusOr<std::string> committable) {
        sink->outstanding.fetch_sub(1);
        done(std::move(committable));
      };
      sink_->outstanding.fetch_add(1);
      if (!inner_->PreCommitAsync(checkpoint_id, watched)) {
        sink_->outstanding.fetch_sub(1);
        return false;
      }
      sink_->async_pre_commits.fetch_add(1);
      return true;
    }
    absl::Status Commit(int64_t checkpoint_id, const std::string& committable) override {
      return inner_->Commit(checkpoint_id, committable);
    }
    absl::Status Close() override { return inner_->Close(); }

   private:
    std::unique_ptr<SinkWriter<Count>> inner_;
    WatchedSink* sink_;
  };

  std::shared_ptr<Sink<Count>> inner_;
};

// A sink whose pre-commit takes 150 ms, done on its own thread
// (PreCommitAsync): the worker writes the records after each barrier while
// the flush of those before it is still going, and every record is still
// committed exactly once.
TEST_F(CheckpointJobTest, ASlowAsynchronousPreCommitDoesNotHoldBackTheRecordsBehindIt) {
  std::shared_ptr<WatchedSink> watched;
  count_job::Shape shape;
  shape.sink_options.pre_commit_delay = absl::Milliseconds(150);
  shape.wrap_sink = [&](std::shared_ptr<Sink<Count>> inner) {
    watched = std::make_shared<WatchedSink>(std::move(inner));
    return watched;
  };
  auto pipeline = Build(2, 8000, 4000, absl::Milliseconds(30), shape);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_GE(watched->async_pre_commits.load(), 4);
  EXPECT_GT(watched->written_while_outstanding.load(), 0)
      << "no record was written while a pre-commit was in flight";
  EXPECT_EQ(Committed(), Expected(8000));
}

// A run stopped like a crash while asynchronous pre-commits are in flight
// (their checkpoints never complete), then restored: nothing lost, nothing
// committed twice.
TEST_F(CheckpointJobTest, ACrashDuringAnAsynchronousPreCommitRestoresExactlyOnce) {
  constexpr int kRecords = 12000;
  std::shared_ptr<WatchedSink> watched;
  count_job::Shape shape;
  shape.sink_options.pre_commit_delay = absl::Milliseconds(100);
  shape.wrap_sink = [&](std::shared_ptr<Sink<Count>> inner) {
    watched = std::make_shared<WatchedSink>(std::move(inner));
    return watched;
  };
  auto pipeline = Build(2, kRecords, 1000, absl::Milliseconds(30), shape);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // Two checkpoints complete, then one is in flight: cancel then.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return job->last_completed_checkpoint() >= 2 && watched->outstanding.load() > 0; },
      absl::Seconds(30)));
  job->Cancel();
  EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  const std::vector<Count> partial = Committed();
  EXPECT_FALSE(partial.empty());
  EXPECT_NE(partial, Expected(kRecords));

  auto again = Build(2, kRecords, 0);
  ASSERT_TRUE(again->Run().ok());
  EXPECT_EQ(Committed(), Expected(kRecords));
}

// Counts, over all its writers, what the runtime asks of a sink, and how
// many written records the last Flush() or PreCommit() of each writer
// covered (made durable).
class DurabilityCountingSink final : public Sink<int64_t> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<int64_t>>(new Writer(this));
  }

  std::atomic<int64_t> written{0};
  std::atomic<int64_t> durable{0};
  std::atomic<int> ends{0};
  std::atomic<int> flushes{0};
  std::atomic<int> pre_commits{0};
  // Calls out of order: a Write after EndOfInput, EndOfInput twice, or a
  // Flush before EndOfInput.
  std::atomic<int> out_of_order{0};

 private:
  class Writer final : public SinkWriter<int64_t> {
   public:
    explicit Writer(DurabilityCountingSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<int64_t> values, std::span<const Timestamp>) override {
      if (ended_) sink_->out_of_order.fetch_add(1);
      written_ += static_cast<int64_t>(values.size());
      return absl::OkStatus();
    }
    void EndOfInput() override {
      if (ended_) sink_->out_of_order.fetch_add(1);
      ended_ = true;
      sink_->ends.fetch_add(1);
    }
    absl::Status Flush() override {
      if (!ended_) sink_->out_of_order.fetch_add(1);
      sink_->flushes.fetch_add(1);
      durable_ = written_;
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> PreCommit(int64_t) override {
      sink_->pre_commits.fetch_add(1);
      durable_ = written_;
      return std::string();
    }
    absl::Status Close() override {
      sink_->written.fetch_add(written_);
      sink_->durable.fetch_add(durable_);
      return absl::OkStatus();
    }

   private:
    DurabilityCountingSink* sink_;
    bool ended_ = false;
    int64_t written_ = 0;
    int64_t durable_ = 0;
  };
};

// A job with checkpoints ends with a final checkpoint whose pre-commit makes
// each sink's last records durable, so a sink does not also flush when its
// input ends (each worker would wait for its sinks one by one); a job without
// checkpoints flushes there. Either way the writer hears of the end first
// (EndOfInput), and every record is covered.
TEST_F(CheckpointJobTest, SinksFlushAtTheEndOfInputOnlyWithoutCheckpoints) {
  constexpr int kRecords = 10000;
  std::vector<int64_t> numbers(kRecords);
  for (int i = 0; i < kRecords; ++i) numbers[static_cast<size_t>(i)] = i;
  for (const bool checkpoints : {true, false}) {
    SCOPED_TRACE(checkpoints ? "with checkpoints" : "without checkpoints");
    PipelineOptions options;
    options.parallelism = 2;
    if (checkpoints) {
      options.checkpoints.storage_uri = "file://" + (root_ / "flush-at-end").string();
      options.checkpoints.interval = absl::Hours(1);  // only the final one
    }
    Pipeline pipeline(options);
    testing::VectorSourceOptions source_options;
    source_options.splits = 4;
    auto sink = std::make_shared<DurabilityCountingSink>();
    pipeline.Source(testing::VectorSource<int64_t>::Create(numbers, source_options))
        .Uid("numbers")
        .Sink(sink)
        .Uid("counting-sink");
    ASSERT_TRUE(pipeline.Run().ok());
    EXPECT_EQ(sink->written.load(), kRecords);
    EXPECT_EQ(sink->durable.load(), kRecords);
    EXPECT_EQ(sink->ends.load(), 2);  // each worker's writer, once
    EXPECT_EQ(sink->out_of_order.load(), 0);
    if (checkpoints) {
      EXPECT_EQ(sink->flushes.load(), 0);
      EXPECT_EQ(sink->pre_commits.load(), 2);  // the final checkpoint, on each worker
    } else {
      EXPECT_EQ(sink->flushes.load(), 2);
      EXPECT_EQ(sink->pre_commits.load(), 0);
    }
  }
}

TEST(TriggerCheckpointTest, NeedsStorage) {
  Pipeline pipeline;
  testing::VectorSourceOptions options;
  options.unbounded = true;
  pipeline.Source(testing::VectorSource<int64_t>::Create(std::vector<int64_t>{1, 2, 3}, options))
      .Sink([](const int64_t&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->TriggerCheckpoint().status().code(), absl::StatusCode::kFailedPrecondition);
  job->Stop();
  EXPECT_TRUE(job->Wait().ok());
}

}  // namespace
}  // namespace weir
