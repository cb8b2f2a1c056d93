#include "lib/checkpoint/storage_path.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace weir::internal {

namespace {

absl::Status BadPath(absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid checkpoint storage path \"", absl::CEscape(path), "\": ", why));
}

}  // namespace

absl::Status ValidateStoragePath(absl::string_view path) {
  if (path.empty()) return BadPath(path, "empty");
  if (path.find('\0') != absl::string_view::npos) return BadPath(path, "contains a NUL byte");
  if (path.front() == '/') return BadPath(path, "must be relative");
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty()) return BadPath(path, "has an empty segment");
    if (segment == "." || segment == "..") return BadPath(path, "has a '.' or '..' segment");
    if (absl::StartsWith(segment, kTempFilePrefix)) {
      return BadPath(path, absl::StrCat("segments may not start with ", kTempFilePrefix));
    }
  }
  return absl::OkStatus();
}

}  // namespace weir::internal
