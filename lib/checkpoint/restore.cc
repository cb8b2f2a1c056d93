#include "lib/checkpoint/restore.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/checkpoint/manifest_io.h"
#include "lib/runtime/log.h"

namespace weir::internal {

namespace fs = std::filesystem;

RestoredCheckpoint::RestoredCheckpoint(checkpoint::Manifest manifest, std::string local_dir)
    : manifest_(std::move(manifest)) {
  for (const auto& op : manifest_.operators()) {
    OperatorSnapshot snapshot;
    snapshot.operator_name = op.operator_name();
    snapshot.worker = op.worker();
    snapshot.key_group_begin = op.key_group_begin();
    snapshot.key_group_end = op.key_group_end();
    for (const auto& [key, value] : op.operator_state()) snapshot.operator_state[key] = value;
    for (const auto& file : op.files()) {
      snapshot.files.push_back(
          SnapshotFile{file.table(), absl::StrCat(local_dir, "/", file.path()), file.path()});
    }
    snapshots_.emplace(snapshot.operator_name, std::move(snapshot));
  }
}

std::vector<const OperatorSnapshot*> RestoredCheckpoint::Snapshots(const std::string& name) const {
  std::vector<const OperatorSnapshot*> out;
  auto [begin, end] = snapshots_.equal_range(name);
  for (auto it = begin; it != end; ++it) out.push_back(&it->second);
  return out;
}

namespace {

// Downloads and verifies every file of `manifest` into `local_dir`.
absl::Status Download(CheckpointStorage& storage, const std::string& job,
                      const checkpoint::Manifest& manifest, const std::string& local_dir) {
  for (const auto& op : manifest.operators()) {
    for (const auto& file : op.files()) {
      const std::string local = absl::StrCat(local_dir, "/", file.path());
      std::error_code ec;
      fs::create_directories(fs::path(local).parent_path(), ec);
      if (fs::exists(local, ec)) continue;  // shared by two operators' snapshots
      absl::Status status = storage.GetFile(absl::StrCat(job, "/", file.path()), local);
      if (!status.ok())
        return absl::DataLossError(absl::StrCat(file.path(), ": ", status.message()));
      uint64_t size;
      uint32_t crc;
      status = FileChecksum(local, &size, &crc);
      if (!status.ok()) return status;
      if (size != file.size() || crc != file.crc32()) {
        fs::remove(local, ec);
        return absl::DataLossError(absl::StrCat(file.path(), ": size/checksum mismatch (", size,
                                                " bytes, expected ", file.size(), ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CheckpointHistory> LoadCheckpointHistory(CheckpointStorage& storage,
                                                        const std::string& job, int max_parallelism,
                                                        const std::string& local_dir) {
  CheckpointHistory history;
  absl::StatusOr<std::vector<int64_t>> ids = ListCheckpoints(storage, job);
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return history;
  history.next_id = ids->back() + 1;
  absl::Status last_error;
  for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
    const int64_t id = *it;
    absl::StatusOr<std::string> bytes = storage.Get(ManifestPath(job, id));
    absl::StatusOr<checkpoint::Manifest> manifest =
        bytes.ok() ? DecodeManifest(*bytes) : absl::StatusOr<checkpoint::Manifest>(bytes.status());
    absl::Status status = manifest.status();
    if (status.ok() && manifest->max_parallelism() != max_parallelism) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", id, " of job '", job, "' was taken with max_parallelism ",
                       manifest->max_parallelism(), "; this job has ", max_parallelism,
                       " (key groups cannot change)"));
    }
    const std::string dir = absl::StrCat(local_dir, "/restore-", id);
    if (status.ok()) status = Download(storage, job, *manifest, dir);
    if (!status.ok()) {
      Log("checkpoint ", id, " of job '", job, "' in ", storage.Describe(),
          " is unusable, trying an older one: ", status.ToString());
      last_error = status;
      continue;
    }
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
