// CheckpointStorage::Open in a program linked to weir::core alone: s3:// names the component
// to link, and a registered scheme gets its URIs.

#include "lib/checkpoint/storage_registry.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/checkpoint.h"

namespace weir::internal {
namespace {

using ::testing::HasSubstr;

TEST(CheckpointStorageRegistryTest, S3WithoutItsComponentNamesTheTargetToLink) {
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open("s3://bucket/prefix");
  EXPECT_EQ(storage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(storage.status().message(), HasSubstr("link weir::s3"));
}

TEST(CheckpointStorageRegistryTest, RegisteredSchemeGetsItsUris) {
  RegisterCheckpointStorageScheme(
      "test",
      [](absl::string_view uri, absl::string_view rest,
         const S3Options&) -> absl::StatusOr<std::unique_ptr<CheckpointStorage>> {
        return absl::UnimplementedError(absl::StrCat(uri, " | ", rest));
      });
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open("TEST://root/dir");
  EXPECT_EQ(storage.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(storage.status().message(), "TEST://root/dir | root/dir");
  EXPECT_EQ(CheckpointStorage::Open("other://x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weir::internal
