// Finding and loading the checkpoint a starting job restores from.

#ifndef WEIR_LIB_CHECKPOINT_RESTORE_H_
#define WEIR_LIB_CHECKPOINT_RESTORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "lib/checkpoint/manifest.pb.h"
#include "weir/checkpoint.h"
#include "weir/internal/checkpointing.h"

namespace weir::internal {

// A checkpoint whose manifest and files are verified and downloaded.
class RestoredCheckpoint final : public RestoredState {
 public:
  RestoredCheckpoint(checkpoint::Manifest manifest, std::string local_dir);

  int64_t checkpoint_id() const override { return manifest_.checkpoint_id(); }
  std::vector<const OperatorSnapshot*> Snapshots(const std::string& uid) const override;
  std::string LocalPath(const SnapshotFile& file) const override { return file.local_path; }
  const checkpoint::Manifest& manifest() const { return manifest_; }
  // The uids, in order, whose snapshots hold state (a file, or operator state
  // that is not empty) and are not in `claimed`: what a restore by the
  // operators of `claimed` would drop.
  std::vector<std::string> UnclaimedUids(const absl::flat_hash_set<std::string>& claimed) const;

 private:
  checkpoint::Manifest manifest_;
  std::multimap<std::string, OperatorSnapshot> snapshots_;
};

// What Start() found in storage.
struct CheckpointHistory {
  // The newest usable checkpoint, or null when the storage holds none.
  std::unique_ptr<RestoredCheckpoint> restored;
  // The manifests retention should keep tracking, oldest first: the
  // restored one and the older ones still in storage.
  std::vector<checkpoint::Manifest> retained;
  // The next checkpoint id (above every id in storage).
  int64_t next_id = 1;
};

// Loads the newest checkpoint of `job` whose manifest and files verify
// (size and crc32), downloading its files into `local_dir`. A corrupt or
// partial checkpoint (bad magic or crc, a size mismatch, a manifest or file
// that is gone) is logged and skipped for the one before it. Any other
// failure to read it (kUnavailable after the storage's retries, a timeout,
// kPermissionDenied, ...) is returned with its code: the checkpoint is
// probably fine and its transactions may be committed, so an older one
// would replay them. If checkpoints exist but none is usable: kDataLoss
// (never a silent empty start). A different max_parallelism:
// kInvalidArgument.
//
// `newest_allowed` bounds the checkpoint restored (cluster mode: the one its
// Kafka transaction committed; newer ones were stored but never committed);
// 0 restores none, and a committed checkpoint that is not in storage is
// kDataLoss naming its manifest.
inline constexpr int64_t kAnyCheckpoint = INT64_MAX;
absl::StatusOr<CheckpointHistory> LoadCheckpointHistory(CheckpointStorage& storage,
                                                        const std::string& job, int max_parallelism,
                                                        const std::string& local_dir,
                                                        int64_t newest_allowed = kAnyCheckpoint);

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_RESTORE_H_
