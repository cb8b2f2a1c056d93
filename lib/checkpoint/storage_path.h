// The rules for paths inside a CheckpointStorage, shared by every backend so
// that a path valid on one is valid on all.

#ifndef WEIR_LIB_CHECKPOINT_STORAGE_PATH_H_
#define WEIR_LIB_CHECKPOINT_STORAGE_PATH_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace weir::internal {

// Names of in-progress local files start with this (see local_file.h);
// List never shows them, so no path segment may start with it.
inline constexpr absl::string_view kTempFilePrefix = ".weir-tmp.";

// OK when `path` is relative, '/'-separated, has no empty, "." or ".."
// segment, no NUL byte and no segment starting with kTempFilePrefix;
// kInvalidArgument naming `path` otherwise.
absl::Status ValidateStoragePath(absl::string_view path);

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_STORAGE_PATH_H_
