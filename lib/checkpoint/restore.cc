#include "lib/checkpoint/restore.h"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/checkpoint/manifest_io.h"
#include "lib/common/log.h"
#include "lib/common/status.h"

namespace weir::internal {

namespace fs = std::filesystem;

RestoredCheckpoint::RestoredCheckpoint(checkpoint::Manifest manifest, std::string local_dir)
    : manifest_(std::move(manifest)) {
  for (const auto& op : manifest_.operators()) {
    OperatorSnapshot snapshot;
    snapshot.uid = op.uid();
    snapshot.operator_name = op.operator_name();
    snapshot.worker = op.worker();
    snapshot.key_group_begin = op.key_group_begin();
    snapshot.key_group_end = op.key_group_end();
    for (const auto& [key, value] : op.operator_state()) snapshot.operator_state[key] = value;
    for (const auto& file : op.files()) {
      snapshot.files.push_back(
          SnapshotFile{file.table(), absl::StrCat(local_dir, "/", file.path()), file.path()});
    }
    snapshots_.emplace(snapshot.uid, std::move(snapshot));
  }
}

std::vector<const OperatorSnapshot*> RestoredCheckpoint::Snapshots(const std::string& uid) const {
  std::vector<const OperatorSnapshot*> out;
  auto [begin, end] = snapshots_.equal_range(uid);
  for (auto it = begin; it != end; ++it) out.push_back(&it->second);
  return out;
}

std::vector<std::string> RestoredCheckpoint::UnclaimedUids(
    const absl::flat_hash_set<std::string>& claimed) const {
  std::vector<std::string> out;
  for (const auto& [uid, snapshot] : snapshots_) {
    if (claimed.contains(uid) || (!out.empty() && out.back() == uid)) continue;
    // As Flink: an empty snapshot (a stateless operator's, a sink's empty
    // committable) loses nothing when no operator takes it.
    bool holds_state = !snapshot.files.empty();
    for (const auto& [key, value] : snapshot.operator_state) holds_state |= !value.empty();
    if (holds_state) out.push_back(uid);
  }
  return out;
}

namespace {

// Whether `status`, from reading a checkpoint, says that checkpoint is
// corrupt or gone (an older one is the best there is). Anything else (a 503
// or a timeout after the storage's retries, a permission error) says nothing
// about the checkpoint: it is probably fine, and its sinks' transactions may
// be committed, so restoring an older one would produce their records again.
bool IsUnusable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDataLoss ||
         status.code() == absl::StatusCode::kNotFound;
}

// Downloads and verifies every file of `manifest` into `local_dir`. A file
// that is gone or does not match its size and crc32: kDataLoss. A failure to
// read the storage keeps its code.
absl::Status Download(CheckpointStorage& storage, const std::string& job,
                      const checkpoint::Manifest& manifest, const std::string& local_dir) {
  for (const auto& op : manifest.operators()) {
    for (const auto& file : op.files()) {
      const std::string local = absl::StrCat(local_dir, "/", file.path());
      std::error_code ec;
      fs::create_directories(fs::path(local).parent_path(), ec);
      if (fs::exists(local, ec)) continue;  // shared by two operators' snapshots
      absl::Status status = storage.GetFile(absl::StrCat(job, "/", file.path()), local);
      if (absl::IsNotFound(status)) {
        return absl::DataLossError(absl::StrCat(file.path(), " is gone: ", status.message()));
      }
      if (!status.ok()) {
        return Annotate(status, file.path());
      }
      uint64_t size;
      uint32_t crc;
      status = FileChecksum(local, &size, &crc);
      if (!status.ok()) {
        // The download, not the checkpoint, is what cannot be read.
        return absl::InternalError(
            absl::StrCat("reading the download of ", file.path(), ": ", status.message()));
      }
      if (size != file.size() || crc != file.crc32()) {
        fs::remove(local, ec);
        return absl::DataLossError(absl::StrCat(file.path(), ": size/checksum mismatch (", size,
                                                " bytes, expected ", file.size(), ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<checkpoint::Manifest> ReadManifest(CheckpointStorage& storage,
                                                  const std::string& job, int64_t id) {
  absl::StatusOr<std::string> bytes = storage.Get(ManifestPath(job, id));
  if (!bytes.ok()) return bytes.status();
  return DecodeManifest(*bytes);
}

// `status` of checkpoint `id`, which is neither usable nor known to be
// unusable, as Start() returns it.
absl::Status CannotRead(const absl::Status& status, CheckpointStorage& storage,
                        const std::string& job, int64_t id) {
  return absl::Status(
      status.code(),
      absl::StrCat("cannot read checkpoint ", id, " of job '", job, "' in ", storage.Describe(),
                   " (an older one is not used instead: this one may be the one whose "
                   "transactions were committed): ",
                   status.message()));
}

}  // namespace

absl::StatusOr<CheckpointHistory> LoadCheckpointHistory(CheckpointStorage& storage,
                                                        const std::string& job, int max_parallelism,
                                                        const std::string& local_dir,
                                                        int64_t newest_allowed) {
  CheckpointHistory history;
  absl::StatusOr<std::vector<int64_t>> ids = ListCheckpoints(storage, job);
  if (!ids.ok()) return ids.status();
  if (!ids->empty()) history.next_id = ids->back() + 1;
  if (newest_allowed != kAnyCheckpoint) {
    // Newer ones were stored but never committed: their output was aborted.
    const bool stored = std::find(ids->begin(), ids->end(), newest_allowed) != ids->end();
    ids->erase(std::upper_bound(ids->begin(), ids->end(), newest_allowed), ids->end());
    if (newest_allowed == 0) ids->clear();
    if (newest_allowed > 0 && !stored) {
      return absl::DataLossError(absl::StrCat("checkpoint ", newest_allowed, " of job '", job,
                                              "' was committed, but its manifest is not in ",
                                              storage.Describe(), " (",
                                              ManifestPath(job, newest_allowed), ")"));
    }
  }
  if (ids->empty()) return history;
  absl::Status last_error;
  for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
    const int64_t id = *it;
    absl::StatusOr<checkpoint::Manifest> manifest = ReadManifest(storage, job, id);
    absl::Status status = manifest.status();
    if (status.ok() && manifest->max_parallelism() != max_parallelism) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", id, " of job '", job, "' was taken with max_parallelism ",
                       manifest->max_parallelism(), "; this job has ", max_parallelism,
                       " (key groups cannot change)"));
    }
    const std::string dir = absl::StrCat(local_dir, "/restore-", id);
    if (status.ok()) status = Download(storage, job, *manifest, dir);
    if (!status.ok() && !IsUnusable(status)) return CannotRead(status, storage, job, id);
    if (!status.ok()) {
      Log("checkpoint ", id, " of job '", job, "' in ", storage.Describe(),
          " is unusable, trying an older one: ", status.ToString());
      last_error = status;
      continue;
    }
    // The older checkpoints retention kept stay tracked, so the new run's
    // retention keeps them (and their files) until newer ones replace them.
    for (auto older = std::next(it); older != ids->rend(); ++older) {
      absl::StatusOr<checkpoint::Manifest> kept = ReadManifest(storage, job, *older);
      if (kept.ok()) {
        history.retained.push_back(*std::move(kept));
      } else if (!IsUnusable(kept.status())) {
        return CannotRead(kept.status(), storage, job, *older);
      }
    }
    std::reverse(history.retained.begin(), history.retained.end());
    history.retained.push_back(*manifest);
    history.restored = std::make_unique<RestoredCheckpoint>(*std::move(manifest), dir);
    Log("restoring job '", job, "' from checkpoint ", id, " in ", storage.Describe());
    return history;
  }
  return absl::DataLossError(
      absl::StrCat("job '", job, "' has ", ids->size(), " checkpoint(s) in ", storage.Describe(),
                   " but none is usable; last error: ", last_error.message()));
}

}  // namespace weir::internal
