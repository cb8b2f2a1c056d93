// The URI schemes CheckpointStorage::Open knows beyond file://: each storage
// component (weir::s3) registers its scheme here, so the core names none of
// them and links none of their dependencies.
//
// Example (a component's registration file):
//
//   namespace {
//   const bool kRegistered =
//       (weir::internal::RegisterCheckpointStorageScheme("s3", &OpenS3Uri), true);
//   }
//   // The component's INTERFACE link option -u names this symbol, so the
//   // linker takes this object (and its static initializer) from the archive.
//   extern "C" bool weir_link_s3_checkpoint_storage() { return kRegistered; }

#ifndef WEIR_LIB_CHECKPOINT_STORAGE_REGISTRY_H_
#define WEIR_LIB_CHECKPOINT_STORAGE_REGISTRY_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weir/checkpoint.h"

namespace weir::internal {

// Opens the storage of `uri`; `rest` is what follows "<scheme>://". Reports a
// malformed URI with InvalidStorageUri.
using CheckpointStorageFactory = absl::StatusOr<std::unique_ptr<CheckpointStorage>> (*)(
    absl::string_view uri, absl::string_view rest, const S3Options& s3);

// Makes CheckpointStorage::Open hand URIs of `scheme` (lower case) to
// `factory`, replacing an earlier registration. Safe to call from static
// initializers and from any thread.
void RegisterCheckpointStorageScheme(std::string scheme, CheckpointStorageFactory factory);

// The factory registered for `scheme`, or nullptr.
CheckpointStorageFactory FindCheckpointStorageScheme(absl::string_view scheme);

// kInvalidArgument: `uri` is not a storage URI, because of `why`.
absl::Status InvalidStorageUri(absl::string_view uri, absl::string_view why);

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_STORAGE_REGISTRY_H_
