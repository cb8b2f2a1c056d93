// Replays through the public API: a sink asks (SinkContext::replay), and
// every keyed operator whose function names a ReplayState() emits each key's
// current value again, throttled, on every state backend, from state it
// built itself or restored; ReplayService::CompleteBefore tells a sink from
// which checkpoint on it has received all of it.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "tests/unit/state/test_backends.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

struct Count {
  int64_t key = 0;
  int64_t count = 0;
  bool replayed = false;
};

constexpr int kKeys = 500;
constexpr int kEvents = 10'000;

// Event i has key i % kKeys.
std::vector<int64_t> Events() {
  std::vector<int64_t> events(kEvents);
  for (int i = 0; i < kEvents; ++i) events[i] = i % kKeys;
  return events;
}

class CountPerKey final : public KeyedProcessFunction<int64_t, int64_t, Count> {
 public:
  absl::Status ProcessElement(const int64_t& key, Context& ctx, Collector<Count>& out) override {
    ValueState<int64_t> count = ctx.GetState(kCount);
    const int64_t now = (count.Get() != nullptr ? *count.Get() : 0) + 1;
    count.Update(now);
    out.Collect({key, now, false});
    return absl::OkStatus();
  }
  std::string ReplayState() const override { return kCount.name; }
  absl::Status OnReplay(Context& ctx, Collector<Count>& out) override {
    if (const int64_t* count = ctx.GetState(kCount).Get()) {
      out.Collect({ctx.current_key(), *count, true});
    }
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kCount{"count"};
};

// The same counts, without taking part in replays.
class SilentCountPerKey final : public KeyedProcessFunction<int64_t, int64_t, Count> {
 public:
  absl::Status ProcessElement(const int64_t& key, Context& ctx, Collector<Count>& out) override {
    ValueState<int64_t> count = ctx.GetState(kCount);
    const int64_t now = (count.Get() != nullptr ? *count.Get() : 0) + 1;
    count.Update(now);
    out.Collect({key, now, false});
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kCount{"count"};
};

// What the sink saw, and the replay service its writers were given.
struct Recorder {
  std::mutex mu;
  int64_t normal = 0;
  std::map<int64_t, std::vector<int64_t>> replayed;  // key -> counts replayed
  size_t largest_replayed_batch = 0;
  std::atomic<ReplayService*> replay{nullptr};
  std::atomic<int64_t> restored_checkpoint{-1};

  int64_t replayed_records() {
    std::lock_guard<std::mutex> lock(mu);
    int64_t n = 0;
    for (const auto& [key, counts] : replayed) n += static_cast<int64_t>(counts.size());
    return n;
  }
  int64_t normal_records() {
    std::lock_guard<std::mutex> lock(mu);
    return normal;
  }
};

class RecordingSink final : public Sink<Count> {
 public:
  explicit RecordingSink(std::shared_ptr<Recorder> recorder) : recorder_(std::move(recorder)) {}
  absl::StatusOr<std::unique_ptr<SinkWriter<Count>>> CreateWriter(
      const SinkContext& context) override {
    recorder_->replay.store(context.replay);
    recorder_->restored_checkpoint.store(context.restored_checkpoint);
    return std::unique_ptr<SinkWriter<Count>>(new Writer(recorder_));
  }

 private:
  class Writer final : public SinkWriter<Count> {
   public:
    explicit Writer(std::shared_ptr<Recorder> recorder) : recorder_(std::move(recorder)) {}
    absl::Status Write(std::span<Count> values, std::span<const Timestamp>) override {
      std::lock_guard<std::mutex> lock(recorder_->mu);
      size_t replayed = 0;
      for (const Count& c : values) {
        if (c.replayed) {
          recorder_->replayed[c.key].push_back(c.count);
          ++replayed;
        } else {
          ++recorder_->normal;
        }
      }
      recorder_->largest_replayed_batch = std::max(recorder_->largest_replayed_batch, replayed);
      return absl::OkStatus();
    }

   private:
    std::shared_ptr<Recorder> recorder_;
  };
  std::shared_ptr<Recorder> recorder_;
};

// Every key was replayed once, with the count of the whole input.
void ExpectEveryKeyReplayedOnceWithItsCount(Recorder& recorder) {
  std::lock_guard<std::mutex> lock(recorder.mu);
  ASSERT_EQ(recorder.replayed.size(), static_cast<size_t>(kKeys));
  for (const auto& [key, counts] : recorder.replayed) {
    EXPECT_EQ(counts, std::vector<int64_t>{kEvents / kKeys}) << "key " << key;
  }
}

class ReplayTest : public ::testing::TestWithParam<test::Backend> {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            absl::StrCat("weir-replay-test-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  PipelineOptions Options(bool checkpoints) const {
    PipelineOptions options;
    options.parallelism = 2;
    options.state_backend = test::MakeBackend(GetParam(), root_ / "rocksdb");
    // 1000 keys/s per instance: steps of 10 keys every 10 ms.
    options.replay_keys_per_second = 1000;
    if (checkpoints) options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    return options;
  }

  // events -> KeyBy -> count per key (replays) -> recorder, and a second
  // count that does not replay into the same recorder.
  static void Build(Pipeline& pipeline, std::vector<int64_t> events,
                    std::shared_ptr<Recorder> recorder, bool with_silent) {
    testing::VectorSourceOptions source;
    source.unbounded = true;
    auto keyed = pipeline.Source(testing::VectorSource<int64_t>::Create(std::move(events), source))
                     .Uid("events")
                     .KeyBy([](const int64_t& key) { return key; });
    auto counts = keyed.Process(CountPerKey{}).Uid("counts");
    if (with_silent) {
      counts = counts.Union(keyed.Process(SilentCountPerKey{}).Uid("silent-counts"));
    }
    counts.Sink(std::make_shared<RecordingSink>(recorder)).Uid("recorder");
  }

  std::filesystem::path root_;
};

// Every key with state is emitted once with its current count, a few keys
// per step; the operator that names no ReplayState() emits nothing.
TEST_P(ReplayTest, EmitsEveryKeysCurrentValueOnceInSmallSteps) {
  auto recorder = std::make_shared<Recorder>();
  Pipeline pipeline(Options(false));
  Build(pipeline, Events(), recorder, /*with_silent=*/true);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(testing::WaitFor([&] { return recorder->normal_records() == 2 * kEvents; }));
  EXPECT_EQ(recorder->replayed_records(), 0) << "nothing replays before it is asked";
  ReplayService* replay = recorder->replay.load();
  ASSERT_NE(replay, nullptr);
  EXPECT_EQ(replay->latest(), 0);

  EXPECT_EQ(replay->Request("the test asks"), 1);
  ASSERT_TRUE(testing::WaitFor([&] { return recorder->replayed_records() >= kKeys; }))
      << recorder->replayed_records() << " of " << kKeys;
  ASSERT_TRUE(testing::WaitFor([&] { return replay->CompleteBefore(1, 1'000'000); }));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());

  ExpectEveryKeyReplayedOnceWithItsCount(*recorder);
  // 1000 keys/s: each step emits (and flushes) at most 10.
  EXPECT_LE(recorder->largest_replayed_batch, 10u);
  EXPECT_GE(recorder->largest_replayed_batch, 1u);
  EXPECT_EQ(job->Metrics().Sum("weir_replayed_keys_total"), kKeys);
}

// A request made before the operators began the newest replay joins it;
// one made later starts a new replay over every key again.
TEST_P(ReplayTest, ALaterRequestStartsOverAndAnEarlyOneJoins) {
  auto recorder = std::make_shared<Recorder>();
  Pipeline pipeline(Options(false));
  Build(pipeline, Events(), recorder, /*with_silent=*/false);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(testing::WaitFor([&] { return recorder->normal_records() == kEvents; }));
  ReplayService* replay = recorder->replay.load();
  ASSERT_NE(replay, nullptr);
  const int64_t first = replay->Request("one");
  const int64_t joined = replay->Request("two");  // the workers have not begun yet (or have)
  EXPECT_TRUE(joined == first || joined == first + 1);
  ASSERT_TRUE(testing::WaitFor([&] { return replay->CompleteBefore(joined, 1'000'000); }));
  const int64_t after_first = recorder->replayed_records();
  EXPECT_GE(after_first, kKeys);
  EXPECT_EQ(replay->Request("three"), joined + 1);
  ASSERT_TRUE(testing::WaitFor([&] { return replay->CompleteBefore(joined + 1, 1'000'000); }));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_GE(recorder->replayed_records(), after_first + kKeys);
  std::lock_guard<std::mutex> lock(recorder->mu);
  EXPECT_EQ(recorder->replayed.size(), static_cast<size_t>(kKeys));
}

// CompleteBefore(n, c) holds only for checkpoints whose barrier reached the
// operators after they emitted all of replay n.
TEST_P(ReplayTest, CompleteBeforeOnlyForCheckpointsAfterTheReplay) {
  auto recorder = std::make_shared<Recorder>();
  Pipeline pipeline(Options(true));
  Build(pipeline, Events(), recorder, /*with_silent=*/false);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(testing::WaitFor([&] { return recorder->normal_records() == kEvents; }));
  ReplayService* replay = recorder->replay.load();
  ASSERT_NE(replay, nullptr);
  absl::StatusOr<int64_t> before = job->TriggerCheckpoint();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_FALSE(replay->CompleteBefore(1, *before + 1)) << "no replay was asked for";

  const int64_t number = replay->Request("checkpoints");
  ASSERT_TRUE(testing::WaitFor([&] { return recorder->replayed_records() == kKeys; }));
  EXPECT_FALSE(replay->CompleteBefore(number, *before));
  absl::StatusOr<int64_t> after = job->TriggerCheckpoint();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(replay->CompleteBefore(number, *after));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
}

// A run that restored its state replays the restored keys, including those
// it never touched since (their tables were not opened by any record).
TEST_P(ReplayTest, ReplaysStateTheRunRestoredWithoutTouchingIt) {
  {
    auto recorder = std::make_shared<Recorder>();
    Pipeline pipeline(Options(true));
    Build(pipeline, Events(), recorder, /*with_silent=*/false);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(testing::WaitFor([&] { return recorder->normal_records() == kEvents; }));
    EXPECT_EQ(recorder->restored_checkpoint.load(), 0);
    job->Stop();  // takes a final checkpoint
    ASSERT_TRUE(job->Wait().ok());
  }
  auto recorder = std::make_shared<Recorder>();
  Pipeline pipeline(Options(true));
  Build(pipeline, Events(), recorder, /*with_silent=*/false);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_GT(job->restored_checkpoint(), 0);
  EXPECT_EQ(recorder->restored_checkpoint.load(), job->restored_checkpoint());
  ReplayService* replay = recorder->replay.load();
  ASSERT_NE(replay, nullptr);
  replay->Request("after a restore");
  ASSERT_TRUE(testing::WaitFor([&] { return recorder->replayed_records() == kKeys; }));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(recorder->normal_records(), 0) << "the source resumed after its input";
  ExpectEveryKeyReplayedOnceWithItsCount(*recorder);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReplayTest,
                         ::testing::Values(test::Backend::kMemory, test::Backend::kRocksDb,
                                           test::Backend::kRocksDbTinyCache),
                         [](const auto& param) { return test::BackendName(param.param); });

TEST(ReplayOptionsTest, TheRateMustBePositive) {
  Pipeline pipeline({.replay_keys_per_second = 0});
  pipeline.Source(testing::VectorSource<int64_t>::Create(std::vector<int64_t>{1}))
      .Sink([](const int64_t&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("replay_keys_per_second"), std::string::npos);
}

}  // namespace
}  // namespace weir
