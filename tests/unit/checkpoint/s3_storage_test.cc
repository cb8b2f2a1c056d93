// The S3 backend against a real S3-compatible server: the conformance suite
// (storage_test.cc) and S3's own failures, with s3rver started on loopback
// (s3rver_fixture.h). Signing, retries and error mapping in detail are
// tested against a scripted server in tests/unit/checkpoint/s3/.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/checkpoint/s3rver_fixture.h"
#include "tests/unit/checkpoint/storage_test.h"
#include "weir/checkpoint.h"

namespace weir::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kBucket[] = "weir-test";

// One s3rver for the whole test binary (ctest runs each test in its own
// process, so each gets a fresh server).
class S3rverEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<S3rver>> server = S3rver::Start({kBucket});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override { server_.reset(); }

  static S3rver* server() { return server_.get(); }

 private:
  static inline std::unique_ptr<S3rver> server_;
};

[[maybe_unused]] ::testing::Environment* const kS3rverEnvironment =
    ::testing::AddGlobalTestEnvironment(new S3rverEnvironment);

StorageBackend S3Backend() {
  return {
      .name = "S3",
      .make_root =
          [](const std::string& test_name) -> absl::StatusOr<std::pair<std::string, S3Options>> {
        if (S3rverEnvironment::server() == nullptr) {
          return absl::FailedPreconditionError("s3rver is not running");
        }
        // A prefix per test: a binary run by hand shares one server.
        return std::make_pair(absl::StrCat("s3://", kBucket, "/", test_name),
                              S3rverEnvironment::server()->Options());
      },
      // s3rver rewrites an object's file in place, so a GET racing a PUT of
      // the same key can read a mix of both (or hang until s3rver drops the
      // connection): the client reads again a body that does not match the
      // crc32 stored with it, and retries the hang (ReadersSeeWholeBlobs).
      // S3 itself replaces objects atomically.
      .cleanup = nullptr,
  };
}

INSTANTIATE_TEST_SUITE_P(S3, CheckpointStorageTest, ::testing::Values(S3Backend()), BackendName);

class S3StorageTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(S3rverEnvironment::server(), nullptr); }

  std::unique_ptr<CheckpointStorage> Open(const std::string& uri, const S3Options& options) {
    absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
        CheckpointStorage::Open(uri, options);
    EXPECT_TRUE(storage.ok()) << storage.status();
    return storage.ok() ? *std::move(storage) : nullptr;
  }
};

// s3rver rejects access keys it does not know (it does not check SigV4
// signatures, so a wrong secret with a known key would pass: signatures are
// checked against AWS's published test vectors in s3_client_test.cc).
TEST_F(S3StorageTest, AnUnknownAccessKeyIsPermissionDenied) {
  S3Options options = S3rverEnvironment::server()->Options();
  options.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  options.secret_access_key = "wrong";
  std::unique_ptr<CheckpointStorage> storage =
      Open(absl::StrCat("s3://", kBucket, "/denied"), options);
  ASSERT_NE(storage, nullptr);

  absl::Status put = storage->Put("chk-1/manifest", "m");
  EXPECT_EQ(put.code(), absl::StatusCode::kPermissionDenied) << put;
  EXPECT_THAT(put.message(), HasSubstr("PutObject"));
  EXPECT_THAT(put.message(), HasSubstr("s3://weir-test/denied/chk-1/manifest"));
  EXPECT_THAT(put.message(), HasSubstr("InvalidAccessKeyId"));
  EXPECT_THAT(put.message(), HasSubstr("does not exist in our records"));
  EXPECT_THAT(put.message(), ::testing::Not(HasSubstr("attempts")));  // not retried

  EXPECT_EQ(storage->Get("chk-1/manifest").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(storage->List("").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(storage->Delete("chk-1/manifest").code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(S3StorageTest, AMissingBucketIsNotFound) {
  std::unique_ptr<CheckpointStorage> storage =
      Open("s3://no-such-bucket/prefix", S3rverEnvironment::server()->Options());
  ASSERT_NE(storage, nullptr);
  absl::Status put = storage->Put("blob", "x");
  EXPECT_EQ(put.code(), absl::StatusCode::kNotFound) << put;
  EXPECT_THAT(put.message(), HasSubstr("NoSuchBucket"));
  EXPECT_THAT(put.message(), HasSubstr("s3://no-such-bucket/prefix/blob"));
  absl::StatusOr<std::vector<std::string>> list = storage->List("");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kNotFound) << list.status();
  // Unlike a missing key, a missing bucket is an error for Delete too.
  EXPECT_EQ(storage->Delete("blob").code(), absl::StatusCode::kNotFound);
}

TEST_F(S3StorageTest, TheServerHoldsObjectsUnderThePrefix) {
  std::unique_ptr<CheckpointStorage> scoped =
      Open(absl::StrCat("s3://", kBucket, "/jobs/one"), S3rverEnvironment::server()->Options());
  std::unique_ptr<CheckpointStorage> bucket =
      Open(absl::StrCat("s3://", kBucket), S3rverEnvironment::server()->Options());
  ASSERT_NE(scoped, nullptr);
  ASSERT_NE(bucket, nullptr);
  ASSERT_TRUE(scoped->Put("chk-1/manifest", "m").ok());
  EXPECT_EQ(bucket->Get("jobs/one/chk-1/manifest").value_or(""), "m");
  absl::StatusOr<std::vector<std::string>> paths = bucket->List("jobs/");
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_THAT(*paths, ::testing::Contains("jobs/one/chk-1/manifest"));
  EXPECT_EQ(scoped->Describe(), "s3://weir-test/jobs/one");
}

}  // namespace
}  // namespace weir::testing
