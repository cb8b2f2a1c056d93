// The CheckpointStorage conformance suite (see storage_test.h): what every
// backend must do, run against each by its own test file.

#include "tests/unit/checkpoint/storage_test.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/checkpoint.h"

namespace weir::testing {

std::string BackendName(const ::testing::TestParamInfo<StorageBackend>& info) {
  return info.param.name;
}

void PrintTo(const StorageBackend& backend, std::ostream* out) { *out << backend.name; }

void CheckpointStorageTest::SetUp() {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  // "PutThenGet/Local" -> "PutThenGet-Local": unique per test and backend.
  std::string test_name = test->name();
  std::replace(test_name.begin(), test_name.end(), '/', '-');
  absl::StatusOr<std::pair<std::string, S3Options>> root = GetParam().make_root(test_name);
  ASSERT_TRUE(root.ok()) << root.status();
  uri_ = root->first;
  options_ = root->second;
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open(uri_, options_);
  ASSERT_TRUE(storage.ok()) << storage.status();
  storage_ = *std::move(storage);

  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/weir-scratch-XXXXXX");
  ASSERT_NE(::mkdtemp(dir_template.data()), nullptr);
  scratch_dir_ = dir_template;
}

void CheckpointStorageTest::TearDown() {
  storage_.reset();
  if (GetParam().cleanup && !uri_.empty()) GetParam().cleanup(uri_);
  if (!scratch_dir_.empty()) std::filesystem::remove_all(scratch_dir_);
}

std::unique_ptr<CheckpointStorage> CheckpointStorageTest::Reopen(
    const std::function<void(S3Options&)>& change) {
  S3Options options = options_;
  change(options);
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open(uri_, options);
  EXPECT_TRUE(storage.ok()) << storage.status();
  return storage.ok() ? *std::move(storage) : nullptr;
}

std::string CheckpointStorageTest::LocalPath(const std::string& name) const {
  return absl::StrCat(scratch_dir_, "/", name);
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(random() & 0xff);
  return bytes;
}

void WriteLocalFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadLocalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

TEST_P(CheckpointStorageTest, PutThenGet) {
  ASSERT_TRUE(storage_->Put("manifest", "checkpoint 1").ok());
  absl::StatusOr<std::string> data = storage_->Get("manifest");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "checkpoint 1");
}

TEST_P(CheckpointStorageTest, BinaryAndEmptyBlobsRoundTrip) {
  std::string all_bytes;
  for (int byte = 0; byte < 256; ++byte) all_bytes.push_back(static_cast<char>(byte));
  all_bytes += std::string("\0\0\r\n\xff", 5) + RandomBytes(100'000, 1);
  ASSERT_TRUE(storage_->Put("binary", all_bytes).ok());
  ASSERT_TRUE(storage_->Put("empty", "").ok());

  absl::StatusOr<std::string> binary = storage_->Get("binary");
  ASSERT_TRUE(binary.ok()) << binary.status();
  EXPECT_TRUE(*binary == all_bytes) << "binary blob changed in the round trip";
  absl::StatusOr<std::string> empty = storage_->Get("empty");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "");

  ASSERT_TRUE(storage_->GetFile("empty", LocalPath("empty.out")).ok());
  EXPECT_TRUE(std::filesystem::exists(LocalPath("empty.out")));
  EXPECT_EQ(ReadLocalFile(LocalPath("empty.out")), "");
}

TEST_P(CheckpointStorageTest, PutReplacesTheBlob) {
  ASSERT_TRUE(storage_->Put("state", "a longer first version").ok());
  ASSERT_TRUE(storage_->Put("state", "v2").ok());
  absl::StatusOr<std::string> data = storage_->Get("state");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "v2");
  absl::StatusOr<std::vector<std::string>> paths = storage_->List("");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, ElementsAre("state"));
}

TEST_P(CheckpointStorageTest, NestedPaths) {
  ASSERT_TRUE(storage_->Put("job/chk-7/worker-0/state/000012.sst", "sst").ok());
  ASSERT_TRUE(storage_->Put("job/chk-7/_manifest", "manifest").ok());
  absl::StatusOr<std::string> sst = storage_->Get("job/chk-7/worker-0/state/000012.sst");
  ASSERT_TRUE(sst.ok()) << sst.status();
  EXPECT_EQ(*sst, "sst");
  absl::StatusOr<std::string> manifest = storage_->Get("job/chk-7/_manifest");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(*manifest, "manifest");
}

TEST_P(CheckpointStorageTest, ListIsSortedAndFilteredByPrefix) {
  for (const char* path : {"chk-2/manifest", "chk-10/manifest", "chk-1/b/state", "chk-1/a",
                           "chk-1x", "shared/000001.sst", "a file with spaces & symbols+=.txt"}) {
    ASSERT_TRUE(storage_->Put(path, path).ok()) << path;
  }
  absl::StatusOr<std::vector<std::string>> all = storage_->List("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all,
              ElementsAre("a file with spaces & symbols+=.txt", "chk-1/a", "chk-1/b/state",
                          "chk-10/manifest", "chk-1x", "chk-2/manifest", "shared/000001.sst"));

  absl::StatusOr<std::vector<std::string>> chk1 = storage_->List("chk-1");
  ASSERT_TRUE(chk1.ok()) << chk1.status();
  EXPECT_THAT(*chk1, ElementsAre("chk-1/a", "chk-1/b/state", "chk-10/manifest", "chk-1x"));

  absl::StatusOr<std::vector<std::string>> chk1_dir = storage_->List("chk-1/");
  ASSERT_TRUE(chk1_dir.ok()) << chk1_dir.status();
  EXPECT_THAT(*chk1_dir, ElementsAre("chk-1/a", "chk-1/b/state"));

  absl::StatusOr<std::vector<std::string>> partial = storage_->List("chk-1/b/st");
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_THAT(*partial, ElementsAre("chk-1/b/state"));

  for (const char* prefix : {"nothing", "chk-3/", "../", "chk-1//"}) {
    absl::StatusOr<std::vector<std::string>> none = storage_->List(prefix);
    ASSERT_TRUE(none.ok()) << prefix << ": " << none.status();
    EXPECT_THAT(*none, IsEmpty()) << prefix;
  }
}

// More than S3 returns in one ListObjectsV2 page (1000), written by a few
// threads at once.
TEST_P(CheckpointStorageTest, ListReturnsMoreThanAThousandPaths) {
  constexpr int kPaths = 1100;
  constexpr int kThreads = 4;
  std::vector<std::string> expected;
  for (int idx = 0; idx < kPaths; ++idx) {
    expected.push_back(absl::StrFormat("shared/%05d.sst", idx));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int thread_idx = 0; thread_idx < kThreads; ++thread_idx) {
    writers.emplace_back([&, thread_idx] {
      for (int idx = thread_idx; idx < kPaths; idx += kThreads) {
        if (!storage_->Put(expected[idx], "x").ok()) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_TRUE(storage_->Put("other", "y").ok());

  absl::StatusOr<std::vector<std::string>> paths = storage_->List("shared/");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_EQ(*paths, expected);
  absl::StatusOr<std::vector<std::string>> all = storage_->List("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), kPaths + 1);
  EXPECT_EQ(all->front(), "other");
}

TEST_P(CheckpointStorageTest, DeleteRemovesTheBlob) {
  ASSERT_TRUE(storage_->Put("chk-1/a", "a").ok());
  ASSERT_TRUE(storage_->Put("chk-1/b", "b").ok());
  ASSERT_TRUE(storage_->Delete("chk-1/a").ok());

  EXPECT_EQ(storage_->Get("chk-1/a").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<std::string>> paths = storage_->List("");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, ElementsAre("chk-1/b"));

  ASSERT_TRUE(storage_->Delete("chk-1/b").ok());
  paths = storage_->List("");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, IsEmpty());
  // The blob can be written again where its directory was pruned.
  ASSERT_TRUE(storage_->Put("chk-1/b", "again").ok());
  EXPECT_EQ(storage_->Get("chk-1/b").value_or(""), "again");
}

TEST_P(CheckpointStorageTest, DeleteOfAMissingPathIsOk) {
  EXPECT_TRUE(storage_->Delete("never-written").ok());
  EXPECT_TRUE(storage_->Delete("no/such/dir/blob").ok());
  ASSERT_TRUE(storage_->Put("once", "x").ok());
  EXPECT_TRUE(storage_->Delete("once").ok());
  EXPECT_TRUE(storage_->Delete("once").ok());
}

TEST_P(CheckpointStorageTest, MissingPathsAreNotFound) {
  absl::StatusOr<std::string> data = storage_->Get("chk-9/manifest");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kNotFound) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("chk-9/manifest"));

  absl::Status status = storage_->GetFile("chk-9/manifest", LocalPath("out"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_FALSE(std::filesystem::exists(LocalPath("out")));
  // Nothing half-written is left beside the target either.
  EXPECT_TRUE(std::filesystem::is_empty(scratch_dir_));
}

TEST_P(CheckpointStorageTest, PutFileAndGetFileOfALargeFileInParts) {
  // 20 MiB in 3 MiB parts: 7 parts, the last one short.
  std::unique_ptr<CheckpointStorage> storage =
      Reopen([](S3Options& options) { options.multipart_part_size = 3 << 20; });
  ASSERT_NE(storage, nullptr);
  const std::string data = RandomBytes(20 << 20, 2);
  WriteLocalFile(LocalPath("big.sst"), data);

  absl::Status put = storage->PutFile("shared/big.sst", LocalPath("big.sst"));
  ASSERT_TRUE(put.ok()) << put;
  absl::Status get = storage->GetFile("shared/big.sst", LocalPath("restored/big.sst"));
  ASSERT_TRUE(get.ok()) << get;
  std::string restored = ReadLocalFile(LocalPath("restored/big.sst"));
  EXPECT_EQ(restored.size(), data.size());
  EXPECT_TRUE(restored == data) << "the file changed in the round trip";

  absl::StatusOr<std::string> blob = storage->Get("shared/big.sst");
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_TRUE(*blob == data);
  absl::StatusOr<std::vector<std::string>> paths = storage->List("");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, ElementsAre("shared/big.sst"));
}

TEST_P(CheckpointStorageTest, PutOfALargeBlobInParts) {
  std::unique_ptr<CheckpointStorage> storage =
      Reopen([](S3Options& options) { options.multipart_part_size = 1 << 20; });
  ASSERT_NE(storage, nullptr);
  const std::string data = RandomBytes((5 << 20) + 123, 3);
  ASSERT_TRUE(storage->Put("blob", data).ok());
  absl::StatusOr<std::string> blob = storage->Get("blob");
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_TRUE(*blob == data);
  // Exactly one part's worth is a single upload.
  const std::string one_part = RandomBytes(1 << 20, 4);
  ASSERT_TRUE(storage->Put("one-part", one_part).ok());
  EXPECT_TRUE(storage->Get("one-part").value_or("") == one_part);
}

TEST_P(CheckpointStorageTest, GetFileReplacesTheLocalFileAndMakesDirectories) {
  ASSERT_TRUE(storage_->Put("blob", "new contents").ok());
  std::filesystem::create_directories(LocalPath("restore"));
  WriteLocalFile(LocalPath("restore/blob"), "old contents, longer than the new ones");
  ASSERT_TRUE(storage_->GetFile("blob", LocalPath("restore/blob")).ok());
  EXPECT_EQ(ReadLocalFile(LocalPath("restore/blob")), "new contents");
  ASSERT_TRUE(storage_->GetFile("blob", LocalPath("deep/er/blob")).ok());
  EXPECT_EQ(ReadLocalFile(LocalPath("deep/er/blob")), "new contents");
}

TEST_P(CheckpointStorageTest, PutFileOfAMissingLocalFileIsNotFound) {
  absl::Status status = storage_->PutFile("blob", LocalPath("no-such-file"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr("no-such-file"));
}

TEST_P(CheckpointStorageTest, InvalidPathsAreRejected) {
  for (const std::string& path :
       {std::string(""), std::string("/absolute"), std::string("a//b"), std::string("../up"),
        std::string("a/./b"), std::string("a/.."), std::string("trailing/"),
        std::string("nul\0byte", 8), std::string(".weir-tmp.x")}) {
    EXPECT_EQ(storage_->Put(path, "x").code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_EQ(storage_->Get(path).status().code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_EQ(storage_->Delete(path).code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_EQ(storage_->GetFile(path, LocalPath("x")).code(), absl::StatusCode::kInvalidArgument)
        << path;
  }
  absl::StatusOr<std::vector<std::string>> paths = storage_->List("");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, IsEmpty());
}

// Put is atomic: concurrent readers see one whole version or another.
TEST_P(CheckpointStorageTest, ReadersSeeWholeBlobs) {
  constexpr int kVersions = 20;
  std::vector<std::string> versions;
  for (int idx = 0; idx < kVersions; ++idx) versions.push_back(RandomBytes(64 << 10, 100 + idx));
  const std::set<std::string> valid(versions.begin(), versions.end());
  ASSERT_TRUE(storage_->Put("manifest", versions[0]).ok());

  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<int> failed_reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      absl::StatusOr<std::string> data = storage_->Get("manifest");
      if (!data.ok()) {
        failed_reads.fetch_add(1);
      } else if (valid.count(*data) == 0) {
        torn.fetch_add(1);
      }
    }
  });
  for (int idx = 1; idx < kVersions; ++idx) {
    EXPECT_TRUE(storage_->Put("manifest", versions[idx]).ok());
  }
  done.store(true);
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(failed_reads.load(), 0);
  EXPECT_TRUE(storage_->Get("manifest").value_or("") == versions.back());
}

TEST_P(CheckpointStorageTest, DescribeNamesTheRoot) {
  std::string description = storage_->Describe();
  EXPECT_FALSE(description.empty());
  EXPECT_EQ(description.substr(0, description.find("://")), uri_.substr(0, uri_.find("://")));
}

}  // namespace
}  // namespace weir::testing
