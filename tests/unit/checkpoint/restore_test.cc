// LoadCheckpointHistory (what Start() restores from) against storage that
// fails: a corrupt or missing checkpoint falls back to the one before it; a
// transient failure (S3 answering 503 after its retries, a timeout) fails
// the start instead, since the newest checkpoint may be the one whose
// transactions were committed: restoring an older one would produce its
// records again, and the new run's retention would delete the newer history.

#include "lib/checkpoint/restore.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/checkpoint/manifest_io.h"
#include "tests/support/wait_for.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::HasSubstr;

// A storage whose chosen reads fail once with kUnavailable, as S3Storage
// reports a 503 or a timeout once its retries are spent. Counts deletes.
class FlakyStorage final : public CheckpointStorage {
 public:
  explicit FlakyStorage(std::unique_ptr<CheckpointStorage> inner) : inner_(std::move(inner)) {}

  // The first Get / GetFile of `path` fails.
  void FailFirstRead(const std::string& path) { failing_[path] = true; }
  int deletes() const { return deletes_; }

  absl::Status Put(const std::string& path, std::string_view data) override {
    return inner_->Put(path, data);
  }
  absl::Status PutFile(const std::string& path, const std::string& local_path) override {
    return inner_->PutFile(path, local_path);
  }
  absl::StatusOr<std::string> Get(const std::string& path) override {
    if (absl::Status status = MaybeFail(path); !status.ok()) return status;
    return inner_->Get(path);
  }
  absl::Status GetFile(const std::string& path, const std::string& local_path) override {
    if (absl::Status status = MaybeFail(path); !status.ok()) return status;
    return inner_->GetFile(path, local_path);
  }
  absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) override {
    return inner_->List(prefix);
  }
  absl::Status Delete(const std::string& path) override {
    ++deletes_;
    return inner_->Delete(path);
  }
  std::string Describe() const override { return "flaky " + inner_->Describe(); }

 private:
  absl::Status MaybeFail(const std::string& path) {
    auto it = failing_.find(path);
    if (it == failing_.end() || !it->second) return absl::OkStatus();
    it->second = false;
    return absl::UnavailableError(absl::StrCat("GetObject s3://bucket/", path,
                                               ": HTTP 503 SlowDown (gave up after 5 attempts)"));
  }

  std::unique_ptr<CheckpointStorage> inner_;
  std::map<std::string, bool> failing_;
  int deletes_ = 0;
};

constexpr char kJob[] = "count";

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("weir-restore-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ / "local");
    // A keyed count checkpointed four times, each after more records, so
    // that the storage holds `retained` (3) checkpoints, each with state
    // files of its own. Checkpoints on demand, each once the sink has seen
    // more records: no race between the input's pace and a timer.
    PipelineOptions options;
    options.parallelism = 2;
    options.job_name = kJob;
    options.checkpoints.interval = absl::Hours(1);
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    options.checkpoints.retained = 3;
    Pipeline pipeline(options);
    testing::VectorSourceOptions source_options;
    source_options.records_per_poll = 16;
    source_options.records_per_second = 4000;
    source_options.unbounded = true;
    std::vector<int64_t> input(2000);
    for (size_t idx = 0; idx < input.size(); ++idx) input[idx] = static_cast<int64_t>(idx % 37);
    auto seen = std::make_shared<std::atomic<int64_t>>(0);
    pipeline.Source(testing::VectorSource<int64_t>::Create(input, source_options))
        .Uid("numbers")
        .KeyBy([](int64_t v) { return v; })
        .Process(CountPerKey{})
        .Uid("count")
        .Sink([seen](const int64_t&) { seen->fetch_add(1); })
        .Uid("out");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    for (int64_t step = 1; step <= 4; ++step) {
      ASSERT_TRUE(testing::WaitFor([&] { return seen->load() >= step * 400; }));
      absl::StatusOr<int64_t> id = job->TriggerCheckpoint();
      ASSERT_TRUE(id.ok()) << id.status();
    }
    job->Cancel();
    (void)job->Wait();

    absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
        CheckpointStorage::Open("file://" + (root_ / "checkpoints").string());
    ASSERT_TRUE(storage.ok()) << storage.status();
    storage_ = std::make_unique<FlakyStorage>(*std::move(storage));
    absl::StatusOr<std::vector<int64_t>> ids = internal::ListCheckpoints(*storage_, kJob);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_EQ(ids->size(), 3u);
    ids_ = *ids;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  absl::StatusOr<internal::CheckpointHistory> Load() {
    return internal::LoadCheckpointHistory(*storage_, kJob, 128, (root_ / "local").string());
  }
  int64_t newest() const { return ids_.back(); }
  // A state file only the newest checkpoint references.
  std::string NewestOwnFile() {
    std::map<std::string, int> uses;
    std::vector<std::string> newest_files;
    for (int64_t id : ids_) {
      absl::StatusOr<std::string> bytes = storage_->Get(internal::ManifestPath(kJob, id));
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      absl::StatusOr<checkpoint::Manifest> manifest = internal::DecodeManifest(*bytes);
      EXPECT_TRUE(manifest.ok()) << manifest.status();
      for (const auto& op : manifest->operators()) {
        for (const auto& file : op.files()) {
          ++uses[file.path()];
          if (id == newest()) newest_files.push_back(file.path());
        }
      }
    }
    for (const std::string& path : newest_files) {
      if (uses[path] == 1) return absl::StrCat(kJob, "/", path);
    }
    ADD_FAILURE() << "the newest checkpoint has no file of its own";
    return "";
  }
  // Every checkpoint still has its manifest and files.
  void ExpectNothingDeleted() {
    EXPECT_EQ(storage_->deletes(), 0);
    absl::StatusOr<std::vector<int64_t>> ids = internal::ListCheckpoints(*storage_, kJob);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, ids_);
  }
  // Whether a checkpoint was downloaded for a restore.
  bool Downloaded(int64_t id) const {
    return std::filesystem::exists(root_ / "local" / absl::StrCat("restore-", id));
  }

  class CountPerKey final : public KeyedProcessFunction<int64_t, int64_t, int64_t> {
   public:
    absl::Status ProcessElement(const int64_t&, Context& ctx, Collector<int64_t>& out) override {
      ValueState<int64_t> count = ctx.GetState(kCount);
      const int64_t n = (count.Get() != nullptr ? *count.Get() : 0) + 1;
      count.Update(n);
      out.Collect(n);
      return absl::OkStatus();
    }

   private:
    static inline const ValueStateDescriptor<int64_t> kCount{"count"};
  };

  std::filesystem::path root_;
  std::unique_ptr<FlakyStorage> storage_;
  std::vector<int64_t> ids_;
};

TEST_F(RestoreTest, UnavailableNewestManifestFailsTheStart) {
  storage_->FailFirstRead(internal::ManifestPath(kJob, newest()));
  absl::StatusOr<internal::CheckpointHistory> history = Load();
  ASSERT_FALSE(history.ok()) << "restored checkpoint " << history->restored->checkpoint_id()
                             << " of " << newest();
  EXPECT_EQ(history.status().code(), absl::StatusCode::kUnavailable) << history.status();
  EXPECT_THAT(history.status().message(), HasSubstr("503"));
  for (int64_t id : ids_) EXPECT_FALSE(Downloaded(id)) << id;
  ExpectNothingDeleted();

  // Once storage answers again, the newest checkpoint is restored.
  history = Load();
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->restored->checkpoint_id(), newest());
}

TEST_F(RestoreTest, UnavailableStateFileFailsTheStart) {
  storage_->FailFirstRead(NewestOwnFile());
  absl::StatusOr<internal::CheckpointHistory> history = Load();
  ASSERT_FALSE(history.ok()) << "restored checkpoint " << history->restored->checkpoint_id()
                             << " of " << newest();
  EXPECT_EQ(history.status().code(), absl::StatusCode::kUnavailable) << history.status();
  for (int64_t id : ids_) {
    if (id != newest()) {
      EXPECT_FALSE(Downloaded(id)) << id;
    }
  }
  ExpectNothingDeleted();

  history = Load();
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->restored->checkpoint_id(), newest());
}

// A file that is gone is corruption, not a transient failure: the checkpoint
// before is used.
TEST_F(RestoreTest, MissingStateFileFallsBackToTheCheckpointBefore) {
  const std::string file = NewestOwnFile();
  ASSERT_TRUE(storage_->Delete(file).ok());
  absl::StatusOr<internal::CheckpointHistory> history = Load();
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->restored->checkpoint_id(), ids_[ids_.size() - 2]);
  EXPECT_EQ(history->next_id, newest() + 1);
}

// The restored checkpoint and the older ones that retention kept are all
// handed on, so the new run's retention keeps them (`retained` in all).
TEST_F(RestoreTest, TheRetainedHistoryIsHandedOn) {
  absl::StatusOr<internal::CheckpointHistory> history = Load();
  ASSERT_TRUE(history.ok()) << history.status();
  std::vector<int64_t> retained;
  for (const checkpoint::Manifest& manifest : history->retained)
    retained.push_back(manifest.checkpoint_id());
  std::sort(retained.begin(), retained.end());
  EXPECT_EQ(retained, ids_);
}

}  // namespace
}  // namespace weir
