// Reading and writing manifests and the layout of a job's checkpoint storage:
//   <job>/shared/<file>            state files, referenced by manifests
//   <job>/chk-<id, 20 digits>/_manifest

#ifndef WEIR_LIB_CHECKPOINT_MANIFEST_IO_H_
#define WEIR_LIB_CHECKPOINT_MANIFEST_IO_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/checkpoint/manifest.pb.h"
#include "weir/checkpoint.h"

namespace weir::internal {

std::string ManifestPath(const std::string& job, int64_t checkpoint_id);
std::string SharedPath(const std::string& job, const std::string& name);

// The manifest format this build writes (Manifest.format_version).
inline constexpr int kManifestFormat = 1;

// "WEIRMAN1" + crc32 (LE) + serialized manifest.
std::string EncodeManifest(const checkpoint::Manifest& manifest);
// kDataLoss on a bad magic, checksum or message. A manifest of format 0
// (before uids) comes back in the current format, each operator's uid being
// the name that identified it then; a format newer than kManifestFormat is
// kFailedPrecondition.
absl::StatusOr<checkpoint::Manifest> DecodeManifest(std::string_view bytes);

// Ids of the job's manifests in storage, ascending.
absl::StatusOr<std::vector<int64_t>> ListCheckpoints(CheckpointStorage& storage,
                                                     const std::string& job);

uint32_t Crc32(std::string_view bytes, uint32_t crc = 0);
// Size and crc32 of a local file.
absl::Status FileChecksum(const std::string& path, uint64_t* size, uint32_t* crc);

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_MANIFEST_IO_H_
