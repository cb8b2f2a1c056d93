// What operators and the checkpoint coordinator exchange: snapshots taken at
// a barrier, and the state handed back on restore. Internal.

#ifndef WEIR_INTERNAL_CHECKPOINTING_H_
#define WEIR_INTERNAL_CHECKPOINTING_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "weir/internal/state_table.h"

namespace weir::internal {

// The snapshot of one operator instance at one checkpoint.
// The operator-state key of a source split's position in a snapshot.
inline std::string SplitStateKey(const std::string& split_id) { return "split/" + split_id; }

struct OperatorSnapshot {
  // The operator's identity (OperatorBase::uid()): what a restore matches by.
  std::string uid;
  // Its display label when the snapshot was taken (metrics, logs).
  std::string operator_name;
  int worker = 0;
  // The key groups [begin, end) this instance owned (keyed operators).
  int key_group_begin = 0;
  int key_group_end = 0;
  std::vector<SnapshotFile> files;
  // Small operator state: per-split source positions, sink committables,
  // broadcast state. Keyed by a name the operator chooses.
  std::map<std::string, std::string> operator_state;
};

// Where operators deliver snapshots (the coordinator). Thread-safe.
class SnapshotCollector {
 public:
  virtual ~SnapshotCollector() = default;
  // `status` not OK: the operator could not snapshot; the checkpoint fails.
  virtual void Acknowledge(int64_t checkpoint_id, absl::Status status,
                           OperatorSnapshot snapshot) = 0;
  // A scratch directory for this checkpoint's local files.
  virtual std::string StagingDir(int64_t checkpoint_id) = 0;
};

// What a restored job hands each operator instance.
class RestoredState {
 public:
  virtual ~RestoredState() = default;
  virtual int64_t checkpoint_id() const = 0;
  // Every snapshot of the operator with uid `uid` (all old workers).
  virtual std::vector<const OperatorSnapshot*> Snapshots(const std::string& uid) const = 0;
  // The downloaded local copy of a snapshot file.
  virtual std::string LocalPath(const SnapshotFile& file) const = 0;
};

// Creates the byte stores of keyed operators (the RocksDB backend).
class StateStoreFactory {
 public:
  virtual ~StateStoreFactory() = default;
  // A fresh store for one keyed operator instance owning key groups
  // [begin, end), filled from `restore_from` (snapshots of the same operator,
  // possibly taken at another parallelism).
  virtual absl::StatusOr<std::unique_ptr<KvStore>> Create(
      const std::string& operator_uid, int worker, int key_group_begin, int key_group_end,
      const std::vector<const OperatorSnapshot*>& restore_from, const RestoredState* restored) = 0;
  // How many entries each state table may cache in memory.
  virtual size_t max_cached_entries_per_table() const = 0;
};

// Writes `pairs` (any order, unique keys) as an SST file at `path`.
absl::Status WriteSstFile(const std::string& path, std::vector<KvPair>& pairs);
// Reads the pairs of an SST file whose key group is in [begin, end).
absl::Status ReadSstFile(const std::string& path, int key_group_begin, int key_group_end,
                         std::vector<KvPair>& out);

// The key groups worker `worker` owns: [begin, end).
inline std::pair<int, int> KeyGroupRange(int worker, int parallelism, int max_parallelism) {
  // Inverse of WorkerForKeyGroup (kg * parallelism / max_parallelism).
  auto first = [&](int w) {
    return static_cast<int>((static_cast<int64_t>(w) * max_parallelism + parallelism - 1) /
                            parallelism);
  };
  return {first(worker), first(worker + 1)};
}

// A fresh random name for a shared file.
std::string RandomFileName(const std::string& suffix);

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_CHECKPOINTING_H_
