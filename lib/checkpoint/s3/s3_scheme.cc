// Registers "s3://bucket/prefix" with CheckpointStorage::Open. The weir::s3
// target's INTERFACE link option -u weir_link_s3_checkpoint_storage keeps this
// object, and so its static initializer, in every program that links weir::s3.

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "lib/checkpoint/s3/s3_storage.h"
#include "lib/checkpoint/storage_path.h"
#include "lib/checkpoint/storage_registry.h"

namespace weir::internal {

namespace {

// Bucket names as S3 accepts them, including the legacy us-east-1 ones
// (upper case and '_'); the server has the last word.
bool ValidBucketName(absl::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 255) return false;
  for (char c : bucket) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::unique_ptr<CheckpointStorage>> OpenS3Uri(absl::string_view uri,
                                                             absl::string_view rest,
                                                             const S3Options& s3) {
  if (rest.find_first_of("?#") != absl::string_view::npos) {
    return InvalidStorageUri(uri, "an s3 URI has no query or fragment");
  }
  size_t slash = rest.find('/');
  std::string bucket(rest.substr(0, slash));
  if (bucket.empty()) return InvalidStorageUri(uri, "no bucket");
  if (!ValidBucketName(bucket)) return InvalidStorageUri(uri, "invalid bucket name");
  std::string prefix(slash == absl::string_view::npos ? "" : rest.substr(slash + 1));
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (!prefix.empty()) {
    if (absl::Status status = ValidateStoragePath(prefix); !status.ok()) {
      return InvalidStorageUri(uri, status.message());
    }
  }
  return S3Storage::Open(std::move(bucket), std::move(prefix), s3);
}

const bool kRegistered = (RegisterCheckpointStorageScheme("s3", &OpenS3Uri), true);

}  // namespace

}  // namespace weir::internal

// The symbol the linker is told to keep (see the top of this file).
extern "C" bool weir_link_s3_checkpoint_storage();
extern "C" bool weir_link_s3_checkpoint_storage() { return weir::internal::kRegistered; }
