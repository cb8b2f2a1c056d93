// Restores match state to operators by uid: what was inserted, removed or
// renamed (display names) around an operator does not move its state; state
// that no operator claims fails the restore, unless the pipeline allows it
// (then each dropped uid is logged); manifests written before uids restore by
// the names that identified operators then.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/checkpoint/manifest_io.h"
#include "tests/unit/checkpoint/count_job.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using count_job::Backend;
using count_job::Expected;
using count_job::Shape;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kRecords = 8000;

class OperatorUidTest : public count_job::CountJobTest {
 protected:
  static std::string ReadFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  static void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  static checkpoint::Manifest Decode(const std::filesystem::path& path) {
    absl::StatusOr<checkpoint::Manifest> manifest = internal::DecodeManifest(ReadFile(path));
    EXPECT_TRUE(manifest.ok()) << manifest.status();
    return manifest.ok() ? *manifest : checkpoint::Manifest();
  }
  // The uids whose snapshots in `manifest` hold state.
  static std::set<std::string> UidsWithState(const checkpoint::Manifest& manifest) {
    std::set<std::string> uids;
    for (const auto& op : manifest.operators()) {
      bool holds_state = op.files_size() > 0;
      for (const auto& [key, value] : op.operator_state()) holds_state |= !value.empty();
      if (holds_state) uids.insert(op.uid());
    }
    return uids;
  }
};

class OperatorUidBackendTest : public OperatorUidTest,
                               public ::testing::WithParamInterface<Backend> {
 protected:
  Backend backend() const override { return GetParam(); }
};

// The restored run has a stateless Map inserted before the keyed count
// (whose place in the graph, "KeyedProcess#2", becomes "#3") and new display
// names everywhere: source positions, keyed counts and the sink's
// committables all come back, so every (key, n) is committed exactly once.
TEST_P(OperatorUidBackendTest, AMapInsertedBeforeARestoreKeepsTheState) {
  RunAndCrash(2, kRecords, 2);
  const std::vector<count_job::Count> partial = Committed();
  ASSERT_FALSE(partial.empty());
  ASSERT_LT(partial.size(), Expected(kRecords).size());

  Shape changed;
  changed.map_before_key_by = true;
  changed.source_name = "numbers, renamed";
  changed.count_name = "count, renamed";
  changed.sink_name = "out, renamed";
  auto pipeline = Build(2, kRecords, 0, absl::Milliseconds(30), changed);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Committed(), Expected(kRecords));
}

INSTANTIATE_TEST_SUITE_P(Backends, OperatorUidBackendTest,
                         ::testing::Values(Backend::kMemory, Backend::kRocksDb),
                         [](const auto& param_info) {
                           return param_info.param == Backend::kMemory ? "Memory" : "RocksDb";
                         });

// A new uid is a new operator: the keyed counts filed under "count" would be
// dropped, so Start refuses, naming the uid.
TEST_F(OperatorUidTest, ARestoreThatLeavesStateUnclaimedFailsNamingTheUid) {
  RunAndCrash(2, kRecords, 2);
  Shape renamed;
  renamed.count_uid = "count-v2";
  auto pipeline = Build(2, kRecords, 0, absl::Milliseconds(30), renamed);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr("uid(s) 'count'"));
  EXPECT_THAT(job.status().message(), HasSubstr("allow_non_restored_state"));
  // The source and the sink kept their uids: only the count is unclaimed.
  EXPECT_THAT(job.status().message(), Not(HasSubstr("'numbers'")));
  EXPECT_THAT(job.status().message(), Not(HasSubstr("'out'")));
}

// With allow_non_restored_state the job starts without that state and says
// so; its next checkpoint no longer holds it.
TEST_F(OperatorUidTest, AllowNonRestoredStateStartsAndLogsWhatItDropped) {
  RunAndCrash(2, kRecords, 2);
  Shape renamed;
  renamed.count_uid = "count-v2";
  renamed.allow_non_restored_state = true;
  auto pipeline = Build(2, kRecords, 0, absl::Milliseconds(30), renamed);
  ::testing::internal::CaptureStderr();
  absl::StatusOr<JobHandle> job = pipeline->Start();
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(log, HasSubstr("dropping the state of operator uid 'count'"));
  EXPECT_THAT(log, Not(HasSubstr("uid 'numbers'")));
  EXPECT_THAT(log, Not(HasSubstr("uid 'out'")));
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;
  const std::set<std::string> uids = UidsWithState(Decode(Manifests().back()));
  EXPECT_TRUE(uids.contains("count-v2"));
  EXPECT_TRUE(uids.contains("numbers"));
  EXPECT_FALSE(uids.contains("count"));
}

// With checkpoints on, an operator that keeps state and has no uid would be
// identified by its place in the graph, which the next change moves: Start
// refuses and names it. Stateless operators need none.
TEST_F(OperatorUidTest, CheckpointsNeedAUidOnEveryStatefulOperator) {
  Shape no_uid;
  no_uid.count_uid.clear();
  no_uid.map_before_key_by = true;  // stateless: no uid, no complaint
  auto pipeline = Build(1, 10, 0, absl::Milliseconds(30), no_uid);
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr("KeyedProcess#3"));
  EXPECT_THAT(job.status().message(), HasSubstr(".Uid("));
  EXPECT_THAT(job.status().message(), Not(HasSubstr("Map#1")));

  Shape no_sink_uid;
  no_sink_uid.sink_uid.clear();
  no_sink_uid.sink_name = "committer";
  job = Build(1, 10, 0, absl::Milliseconds(30), no_sink_uid)->Start();
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(job.status().message(), HasSubstr("Sink#3 'committer'"));
}

// A manifest of format 0 (before uids) filed state under operator names:
// it restores into the operators whose uids are those names, and a name no
// uid takes fails the restore as any unclaimed state does.
TEST_F(OperatorUidTest, ManifestsWrittenBeforeUidsRestoreByOperatorName) {
  RunAndCrash(2, kRecords, 2);
  for (const std::filesystem::path& path : Manifests()) {
    checkpoint::Manifest manifest = Decode(path);
    manifest.set_format_version(0);
    for (checkpoint::OperatorSnapshot& op : *manifest.mutable_operators()) {
      op.set_operator_name(op.uid());
      op.clear_uid();
    }
    WriteFile(path, internal::EncodeManifest(manifest));
  }

  Shape renamed;
  renamed.count_uid = "count-v2";
  absl::StatusOr<JobHandle> job = Build(2, kRecords, 0, absl::Milliseconds(30), renamed)->Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr("'count'"));

  absl::Status status = Build(2, kRecords, 0)->Run();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Committed(), Expected(kRecords));
}

// A manifest format this build does not know is not guessed at.
TEST_F(OperatorUidTest, AManifestOfANewerFormatFailsTheStart) {
  RunAndCrash(1, kRecords, 1);
  const std::filesystem::path newest = Manifests().back();
  checkpoint::Manifest manifest = Decode(newest);
  manifest.set_format_version(internal::kManifestFormat + 1);
  WriteFile(newest, internal::EncodeManifest(manifest));
  absl::StatusOr<JobHandle> job = Build(1, kRecords, 0)->Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr("newer than this weir reads"));
}

}  // namespace
}  // namespace weir
