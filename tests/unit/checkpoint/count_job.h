// The job the checkpoint tests crash and restore: a keyed count over
// numbers read by a throttled VectorSource and committed by the
// TransactionalFileSink, so exactly-once is checked by comparing what was
// committed with Expected(n). Its Shape varies what changes between runs
// (uids, display names, a stateless operator inserted).

#ifndef WEIR_TESTS_UNIT_CHECKPOINT_COUNT_JOB_H_
#define WEIR_TESTS_UNIT_CHECKPOINT_COUNT_JOB_H_

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::count_job {

using Count = std::pair<int64_t, int64_t>;  // (key, running count)

class CountPerKey final : public KeyedProcessFunction<int64_t, int64_t, Count> {
 public:
  absl::Status ProcessElement(const int64_t&, Context& ctx, Collector<Count>& out) override {
    ValueState<int64_t> count = ctx.GetState(kCount);
    const int64_t n = (count.Get() != nullptr ? *count.Get() : 0) + 1;
    count.Update(n);
    out.Collect({ctx.current_key(), n});
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kCount{"count"};
};

inline constexpr int kKeys = 97;

inline std::vector<int64_t> Input(int n) {
  std::vector<int64_t> values(n);
  for (int i = 0; i < n; ++i) values[i] = i % kKeys;
  return values;
}

// Every (key, 1..count of key) exactly once.
inline std::vector<Count> Expected(int n) {
  std::map<int64_t, int64_t> totals;
  for (int64_t v : Input(n)) ++totals[v];
  std::vector<Count> out;
  for (auto [key, total] : totals) {
    for (int64_t i = 1; i <= total; ++i) out.push_back({key, i});
  }
  return out;
}

enum class Backend { kMemory, kRocksDb };
inline void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kMemory ? "memory" : "RocksDB");
}

// What the job looks like in one run. The defaults are the job every test
// starts with.
struct Shape {
  // The uids of the source, the keyed count and the sink (empty: none).
  std::string source_uid = "numbers";
  std::string count_uid = "count";
  std::string sink_uid = "out";
  // Display names (empty: the default).
  std::string source_name;
  std::string count_name;
  std::string sink_name;
  // A stateless Map between the source and KeyBy.
  bool map_before_key_by = false;
  bool allow_non_restored_state = false;
  // CheckpointOptions::retained and min_pause.
  int retained = 3;
  absl::Duration min_pause = absl::ZeroDuration();
  // CheckpointOptions::timeout.
  absl::Duration timeout = absl::Minutes(10);
  // The TransactionalFileSink's; `wrap_sink` wraps it (a test's own sink
  // around it), when set.
  testing::TransactionalFileSinkOptions sink_options;
  std::function<std::shared_ptr<Sink<Count>>(std::shared_ptr<Sink<Count>>)> wrap_sink;
};

class CountJobTest : public ::testing::Test {
 protected:
  // The suite runs against both state backends.
  virtual Backend backend() const { return Backend::kMemory; }

  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("weir-ckpt-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // A keyed count over `n` records, throttled to `rate` records/s per split.
  std::unique_ptr<Pipeline> Build(int parallelism, int n, double rate,
                                  absl::Duration interval = absl::Milliseconds(30),
                                  const Shape& shape = {}) {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.job_name = "count";
    options.checkpoints.interval = interval;
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    options.allow_non_restored_state = shape.allow_non_restored_state;
    options.checkpoints.retained = shape.retained;
    options.checkpoints.min_pause = shape.min_pause;
    options.checkpoints.timeout = shape.timeout;
    if (backend() == Backend::kRocksDb) {
      options.state_backend = StateBackend::RocksDb((root_ / "rocksdb").string());
    }
    auto pipeline = std::make_unique<Pipeline>(options);
    testing::VectorSourceOptions source_options;
    source_options.splits = 4;
    source_options.records_per_poll = 64;
    source_options.records_per_second = rate;
    Stream<int64_t> numbers =
        pipeline->Source(testing::VectorSource<int64_t>::Create(Input(n), source_options));
    if (!shape.source_uid.empty()) numbers.Uid(shape.source_uid);
    if (!shape.source_name.empty()) numbers.Name(shape.source_name);
    if (shape.map_before_key_by) numbers = numbers.Map([](int64_t v) { return v; });
    Stream<Count> counts = numbers.KeyBy([](int64_t v) { return v; }).Process(CountPerKey{});
    if (!shape.count_uid.empty()) counts.Uid(shape.count_uid);
    if (!shape.count_name.empty()) counts.Name(shape.count_name);
    std::shared_ptr<Sink<Count>> file_sink =
        std::make_shared<testing::TransactionalFileSink<Count>>((root_ / "out").string(),
                                                                shape.sink_options);
    SinkHandle sink = counts.Sink(shape.wrap_sink ? shape.wrap_sink(file_sink) : file_sink);
    if (!shape.sink_uid.empty()) sink.Uid(shape.sink_uid);
    if (!shape.sink_name.empty()) sink.Name(shape.sink_name);
    return pipeline;
  }

  std::vector<Count> Committed() {
    auto committed = testing::TransactionalFileSink<Count>::ReadCommitted((root_ / "out").string());
    EXPECT_TRUE(committed.ok()) << committed.status();
    std::vector<Count> out = committed.ok() ? *committed : std::vector<Count>();
    std::sort(out.begin(), out.end());
    return out;
  }

  // The paths of the checkpoints' manifests in storage, oldest first.
  std::vector<std::filesystem::path> Manifests() {
    std::vector<std::filesystem::path> manifests;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root_ / "checkpoints")) {
      if (entry.path().filename() == "_manifest") manifests.push_back(entry.path());
    }
    std::sort(manifests.begin(), manifests.end());  // chk-<id, 20 digits>
    return manifests;
  }

  // The ids of the checkpoints in storage, oldest first.
  std::vector<int64_t> ManifestIds() {
    std::vector<int64_t> ids;
    for (const std::filesystem::path& manifest : Manifests()) {
      const std::string dir = manifest.parent_path().filename().string();  // chk-<id>
      ids.push_back(std::stoll(dir.substr(4)));
    }
    return ids;
  }

  // Starts a run and cancels it (like a crash: no final checkpoint) once
  // `checkpoints` checkpoints completed.
  void RunAndCrash(int parallelism, int n, int checkpoints, const Shape& shape = {}) {
    auto pipeline = Build(parallelism, n, 1000, absl::Milliseconds(30), shape);
    absl::StatusOr<JobHandle> job = pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (job->last_completed_checkpoint() < checkpoints && !job->done() &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    ASSERT_FALSE(job->done()) << "the job ended before it could be interrupted";
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }

  std::filesystem::path root_;
};

}  // namespace weir::count_job

#endif  // WEIR_TESTS_UNIT_CHECKPOINT_COUNT_JOB_H_
