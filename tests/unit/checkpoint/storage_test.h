// The conformance suite for CheckpointStorage backends: storage_test.cc holds
// the tests, and each backend's test file instantiates them with a
// StorageBackend (local_storage_test.cc for file://, s3_storage_test.cc for
// s3:// against s3rver), so every backend passes the same tests.
//
// Example:
//   INSTANTIATE_TEST_SUITE_P(Local, CheckpointStorageTest,
//                            ::testing::Values(LocalBackend()), BackendName);

#ifndef WEIR_TESTS_UNIT_CHECKPOINT_STORAGE_TEST_H_
#define WEIR_TESTS_UNIT_CHECKPOINT_STORAGE_TEST_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "weir/checkpoint.h"

namespace weir::testing {

struct StorageBackend {
  std::string name;
  // The URI of a fresh, empty root for the test `test_name`, and the options
  // to open it with.
  std::function<absl::StatusOr<std::pair<std::string, S3Options>>(const std::string& test_name)>
      make_root;
  // Removes what make_root made; may be empty.
  std::function<void(const std::string& uri)> cleanup;
};

std::string BackendName(const ::testing::TestParamInfo<StorageBackend>& info);
// Prints the backend's name in test failure messages.
void PrintTo(const StorageBackend& backend, std::ostream* out);

class CheckpointStorageTest : public ::testing::TestWithParam<StorageBackend> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Opens the test's root again, with `change` applied to its options.
  std::unique_ptr<CheckpointStorage> Reopen(const std::function<void(S3Options&)>& change);
  // A path in a scratch local directory (for PutFile and GetFile).
  std::string LocalPath(const std::string& name) const;

  std::string uri_;
  S3Options options_;
  std::unique_ptr<CheckpointStorage> storage_;
  std::string scratch_dir_;
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_CHECKPOINT_STORAGE_TEST_H_
