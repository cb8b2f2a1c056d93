// CheckpointStorage::Open's URI and option checks, and the local directory
// backend: the conformance suite (storage_test.cc) plus what only a local
// directory has (temp files, directories, fsync'd renames).

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/checkpoint/storage_test.h"
#include "weir/checkpoint.h"

namespace weir::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string MakeTempDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/weir-", name, "-XXXXXX");
  if (::mkdtemp(dir_template.data()) == nullptr) return "";
  return dir_template;
}

// A root below a fresh temp directory; the root itself does not exist yet,
// so every test also checks that Open creates it.
StorageBackend LocalBackend() {
  return {
      .name = "Local",
      .make_root =
          [](const std::string& test_name) -> absl::StatusOr<std::pair<std::string, S3Options>> {
        std::string dir = MakeTempDir("local-storage");
        if (dir.empty()) return absl::InternalError("mkdtemp failed");
        return std::make_pair(absl::StrCat("file://", dir, "/", test_name, "/root"), S3Options{});
      },
      .cleanup =
          [](const std::string& uri) {
            // file:///tmp/weir-local-storage-XXXXXX/<test>/root -> the temp dir.
            std::filesystem::path root(uri.substr(std::string("file://").size()));
            std::filesystem::remove_all(root.parent_path().parent_path());
          },
  };
}

INSTANTIATE_TEST_SUITE_P(Local, CheckpointStorageTest, ::testing::Values(LocalBackend()),
                         BackendName);

class LocalStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("local-storage");
    ASSERT_FALSE(dir_.empty());
    root_ = dir_ + "/checkpoints";
    absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
        CheckpointStorage::Open("file://" + root_);
    ASSERT_TRUE(storage.ok()) << storage.status();
    storage_ = *std::move(storage);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> FilesUnderRoot() const {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root_)) {
      files.push_back(std::filesystem::relative(entry.path(), root_).generic_string());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  std::string dir_;
  std::string root_;
  std::unique_ptr<CheckpointStorage> storage_;
};

TEST_F(LocalStorageTest, PutLeavesOnlyTheBlob) {
  ASSERT_TRUE(storage_->Put("chk-1/manifest", "m").ok());
  ASSERT_TRUE(storage_->PutFile("chk-1/manifest", root_ + "/chk-1/manifest").ok());
  EXPECT_THAT(FilesUnderRoot(), ElementsAre("chk-1", "chk-1/manifest"));
  EXPECT_EQ(storage_->Describe(), "file://" + root_);
}

TEST_F(LocalStorageTest, TempFilesOfInterruptedWritesAreNotListed) {
  ASSERT_TRUE(storage_->Put("chk-1/manifest", "m").ok());
  // What a crash between creating and renaming the temp file leaves behind.
  std::ofstream(root_ + "/chk-1/.weir-tmp.manifest.0123456789abcdef") << "partial";
  std::ofstream(root_ + "/.weir-tmp.other.0123456789abcdef") << "partial";
  absl::StatusOr<std::vector<std::string>> paths = storage_->List("");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, ElementsAre("chk-1/manifest"));
}

TEST_F(LocalStorageTest, DeletePrunesEmptyDirectoriesButNotTheRoot) {
  ASSERT_TRUE(storage_->Put("job/chk-1/worker-0/000001.sst", "a").ok());
  ASSERT_TRUE(storage_->Put("job/chk-2/manifest", "b").ok());
  ASSERT_TRUE(storage_->Delete("job/chk-1/worker-0/000001.sst").ok());
  EXPECT_THAT(FilesUnderRoot(), ElementsAre("job", "job/chk-2", "job/chk-2/manifest"));
  ASSERT_TRUE(storage_->Delete("job/chk-2/manifest").ok());
  EXPECT_THAT(FilesUnderRoot(), IsEmpty());
  EXPECT_TRUE(std::filesystem::is_directory(root_));
}

TEST_F(LocalStorageTest, AFileInThePlaceOfADirectoryIsAnError) {
  ASSERT_TRUE(storage_->Put("chk-1", "a blob where a directory would go").ok());
  absl::Status status = storage_->Put("chk-1/manifest", "m");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("chk-1"));
  EXPECT_EQ(storage_->Get("chk-1/manifest").status().code(), absl::StatusCode::kNotFound);
  // A directory is not a blob.
  ASSERT_TRUE(storage_->Put("dir/blob", "x").ok());
  EXPECT_EQ(storage_->Get("dir").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(storage_->Delete("dir").ok());
  EXPECT_EQ(storage_->Get("dir/blob").value_or(""), "x");
}

TEST_F(LocalStorageTest, ListMatchesPrefixesAcrossDirectories) {
  ASSERT_TRUE(storage_->Put("a/b/c", "x").ok());
  ASSERT_TRUE(storage_->Put("a/bc", "x").ok());
  ASSERT_TRUE(storage_->Put("ab", "x").ok());
  ASSERT_TRUE(storage_->Put("a/c/d", "x").ok());
  absl::StatusOr<std::vector<std::string>> paths = storage_->List("a/b");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, ElementsAre("a/b/c", "a/bc"));
  // A prefix whose directory does not exist, or is a file, matches nothing.
  for (const char* prefix : {"x/y", "ab/", "a/bc/d"}) {
    paths = storage_->List(prefix);
    ASSERT_TRUE(paths.ok()) << prefix << ": " << paths.status();
    EXPECT_THAT(*paths, IsEmpty()) << prefix;
  }
}

TEST(CheckpointStorageOpenTest, FileUrisAreDecodedAndTheDirectoryIsCreated) {
  std::string dir = MakeTempDir("open");
  ASSERT_FALSE(dir.empty());
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open("file://" + dir + "/with%20space/nested/");
  ASSERT_TRUE(storage.ok()) << storage.status();
  EXPECT_EQ((*storage)->Describe(), "file://" + dir + "/with space/nested");
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/with space/nested"));
  std::filesystem::remove_all(dir);
}

TEST(CheckpointStorageOpenTest, MalformedUrisAreInvalidArguments) {
  for (const char* uri : {"",
                          "checkpoints",
                          "/var/lib/checkpoints",
                          "file:relative",
                          "file://relative/path",
                          "file://host/var/lib",
                          "file://",
                          "file:///tmp/%zz",
                          "file:///tmp/%00",
                          "file:///tmp/%4",
                          "http://example.invalid/x",
                          "hdfs://namenode/x",
                          "s3://",
                          "s3:///prefix",
                          "s3://ab/x",
                          "s3://bad bucket/x",
                          "s3://bucket!/x",
                          "s3://bucket/../x",
                          "s3://bucket/a//b",
                          "s3://bucket/p?versionId=1",
                          "s3://bucket/p#frag"}) {
    absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage = CheckpointStorage::Open(uri);
    EXPECT_EQ(storage.status().code(), absl::StatusCode::kInvalidArgument) << uri;
  }
}

TEST(CheckpointStorageOpenTest, BadS3OptionsAreInvalidArguments) {
  auto open = [](const std::function<void(S3Options&)>& change) {
    S3Options options;
    options.endpoint = "http://127.0.0.1:9";
    options.access_key_id = "key";
    options.secret_access_key = "secret";
    change(options);
    return CheckpointStorage::Open("s3://bucket/prefix", options).status();
  };
  EXPECT_TRUE(open([](S3Options&) {}).ok());
  EXPECT_EQ(open([](S3Options& o) { o.max_attempts = 0; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(open([](S3Options& o) { o.multipart_part_size = 0; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(open([](S3Options& o) { o.request_timeout = absl::ZeroDuration(); }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(open([](S3Options& o) { o.endpoint = "ftp://127.0.0.1"; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(open([](S3Options& o) { o.endpoint = "127.0.0.1:9000"; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(open([](S3Options& o) { o.endpoint = "http://"; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(open([](S3Options& o) { o.region = "us:east-1"; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(open([](S3Options& o) { o.secret_access_key = ""; }).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status status = open([](S3Options& o) { o.access_key_id = ""; });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("s3://bucket/prefix"));
}

TEST(CheckpointStorageOpenTest, S3UrisNameBucketAndPrefix) {
  S3Options options;
  options.endpoint = "http://127.0.0.1:9";
  options.access_key_id = "key";
  options.secret_access_key = "secret";
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open("s3://my-bucket/jobs/engagement/", options);
  ASSERT_TRUE(storage.ok()) << storage.status();
  EXPECT_EQ((*storage)->Describe(), "s3://my-bucket/jobs/engagement");
  storage = CheckpointStorage::Open("S3://my.bucket", options);
  ASSERT_TRUE(storage.ok()) << storage.status();
  EXPECT_EQ((*storage)->Describe(), "s3://my.bucket");
}

}  // namespace
}  // namespace weir::testing
