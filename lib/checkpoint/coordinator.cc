#include "lib/checkpoint/coordinator.h"

#include <chrono>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/checkpoint/manifest_io.h"
#include "lib/common/log.h"

namespace weir::internal {

namespace fs = std::filesystem;

CheckpointCoordinator::CheckpointCoordinator(Config config,
                                             std::shared_ptr<CheckpointStorage> storage,
                                             std::vector<checkpoint::Manifest> retained)
    : config_(std::move(config)), storage_(std::move(storage)), next_id_(config_.first_id) {
  for (auto& manifest : retained) {
    for (const auto& op : manifest.operators()) {
      for (const auto& file : op.files()) {
        const std::string prefix = "shared/";
        if (file.path().rfind(prefix, 0) == 0) uploaded_[file.path().substr(prefix.size())] = file;
      }
    }
    retained_.push_back(std::move(manifest));
  }
}

CheckpointCoordinator::~CheckpointCoordinator() { Shutdown(); }

void CheckpointCoordinator::Start() {
  if (config_.options.interval <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] { Loop(); });
}

void CheckpointCoordinator::StopPeriodic() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_periodic_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointCoordinator::Abandon() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    shutdown_ = true;
    stop_periodic_ = true;
  }
  cv_.notify_all();
}

void CheckpointCoordinator::Shutdown() {
  Abandon();
  if (thread_.joinable()) thread_.join();
}

int64_t CheckpointCoordinator::last_completed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_completed_;
}
int CheckpointCoordinator::completed_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return completed_;
}
int CheckpointCoordinator::failed_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failed_;
}
std::vector<CheckpointRecord> CheckpointCoordinator::History() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::vector<CheckpointRecord>(history_.begin(), history_.end());
}
std::vector<OperatorStateSize> CheckpointCoordinator::StateSizes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_sizes_;
}

void CheckpointCoordinator::Record(CheckpointRecord record) {
  // Called under mutex_.
  history_.push_back(std::move(record));
  while (history_.size() > kHistorySize) history_.pop_front();
}

void CheckpointCoordinator::Loop() {
  const auto interval = absl::ToChronoMilliseconds(config_.options.interval);
  const auto min_pause = absl::ToChronoMilliseconds(config_.options.min_pause);
  auto last_start = std::chrono::steady_clock::now();
  auto last_end = last_start;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto due = std::max(last_start + interval, last_end + min_pause);
      if (cv_.wait_until(lock, due, [this] { return stop_periodic_; })) return;
    }
    last_start = std::chrono::steady_clock::now();
    int64_t id = 0;
    absl::Status status = RunNext(id);
    if (id == 0) return;  // shut down
    if (!status.ok())
      Log("checkpoint ", id, " of job '", config_.job_name, "' failed: ", status.ToString());
    last_end = std::chrono::steady_clock::now();
  }
}

absl::Status CheckpointCoordinator::CheckpointNow() {
  int64_t id = 0;
  return RunNext(id);
}

absl::Status CheckpointCoordinator::RunNext(int64_t& id) {
  // The id is taken once this checkpoint's turn has come: ids then start in
  // order. (Taken before, a periodic checkpoint could take id n+1, run
  // first, and leave checkpoint n waiting for barriers the operators, past
  // n+1 already, never acknowledge.)
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutdown_) return absl::CancelledError("the job is stopping");
    id = next_id_++;
  }
  return Run(id);
}

std::string CheckpointCoordinator::StagingDir(int64_t checkpoint_id) {
  return absl::StrFormat("%s/chk-%d", config_.local_dir, checkpoint_id);
}

void CheckpointCoordinator::Acknowledge(int64_t checkpoint_id, absl::Status status,
                                        OperatorSnapshot snapshot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (checkpoint_id != current_) return;  // abandoned or unknown
    if (!status.ok()) {
      if (ack_failure_.ok()) ack_failure_ = status;
    } else {
      acks_.push_back(std::move(snapshot));
    }
  }
  cv_.notify_all();
}

absl::Status CheckpointCoordinator::Run(int64_t checkpoint_id) {
  const auto started = std::chrono::steady_clock::now();
  CheckpointRecord record;
  record.id = checkpoint_id;
  record.trigger_ms = absl::ToUnixMillis(absl::Now());
  std::vector<OperatorStateSize> sizes;
  const std::string staging = StagingDir(checkpoint_id);
  std::error_code ec;
  fs::create_directories(staging, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message()));
  std::vector<OperatorSnapshot> acks;
  absl::Status failure;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    current_ = checkpoint_id;
    acks_.clear();
    ack_failure_ = absl::OkStatus();
  }
  config_.request(checkpoint_id);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool done = cv_.wait_for(lock, absl::ToChronoMilliseconds(config_.options.timeout), [&] {
      return shutdown_ || !ack_failure_.ok() ||
             static_cast<int>(acks_.size()) >= config_.expected_acks;
    });
    if (!ack_failure_.ok()) {
      failure = ack_failure_;
    } else if (shutdown_) {
      failure = absl::CancelledError("the job stopped during the checkpoint");
    } else if (!done) {
      failure = absl::DeadlineExceededError(
          absl::StrCat("timed out after ", absl::FormatDuration(config_.options.timeout), " with ",
                       acks_.size(), " of ", config_.expected_acks, " operator snapshots"));
    }
    acks = std::move(acks_);
    acks_.clear();
    current_ = 0;
  }
  absl::StatusOr<checkpoint::Manifest> manifest =
      failure.ok() ? Persist(checkpoint_id, acks, record, sizes)
                   : absl::StatusOr<checkpoint::Manifest>(failure);
  if (manifest.ok() && config_.commit) {
    absl::Status committed = config_.commit(checkpoint_id);
    if (!committed.ok()) manifest = committed;
  }
  fs::remove_all(staging, ec);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  record.duration_ms = static_cast<int64_t>(seconds * 1e3);
  if (!manifest.ok()) {
    record.error = manifest.status().ToString();
    std::lock_guard<std::mutex> lock(mutex_);
    ++failed_;
    Record(std::move(record));
    if (config_.failed) config_.failed(checkpoint_id, manifest.status());
    return manifest.status();
  }
  retained_.push_back(*std::move(manifest));
  ApplyRetention();
  duration_seconds_.Observe(seconds);
  record.completed = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last_completed_ = checkpoint_id;
    ++completed_;
    Record(std::move(record));
    state_sizes_ = std::move(sizes);
  }
  config_.complete(checkpoint_id);
  return absl::OkStatus();
}

absl::StatusOr<checkpoint::Manifest> CheckpointCoordinator::Persist(
    int64_t checkpoint_id, std::vector<OperatorSnapshot>& acks, CheckpointRecord& record,
    std::vector<OperatorStateSize>& sizes) {
  checkpoint::Manifest manifest;
  manifest.set_job_name(config_.job_name);
  manifest.set_checkpoint_id(checkpoint_id);
  manifest.set_parallelism(config_.parallelism);
  manifest.set_max_parallelism(config_.max_parallelism);
  manifest.set_created_ms(absl::ToUnixMillis(absl::Now()));
  manifest.set_format_version(kManifestFormat);
  for (OperatorSnapshot& ack : acks) {
    int64_t state_bytes = 0;
    checkpoint::OperatorSnapshot* op = manifest.add_operators();
    op->set_uid(ack.uid);
    op->set_operator_name(ack.operator_name);
    op->set_worker(ack.worker);
    op->set_key_group_begin(ack.key_group_begin);
    op->set_key_group_end(ack.key_group_end);
    for (auto& [key, value] : ack.operator_state) (*op->mutable_operator_state())[key] = value;
    for (const SnapshotFile& file : ack.files) {
      checkpoint::FileRef* ref = op->add_files();
      auto known = uploaded_.find(file.shared_name);
      if (known != uploaded_.end()) {
        *ref = known->second;  // incremental: already in storage
      } else {
        uint64_t size;
        uint32_t crc;
        absl::Status status = FileChecksum(file.local_path, &size, &crc);
        if (status.ok())
          status =
              storage_->PutFile(SharedPath(config_.job_name, file.shared_name), file.local_path);
        if (!status.ok()) return status;
        ref->set_path("shared/" + file.shared_name);
        ref->set_size(size);
        ref->set_crc32(crc);
        uploaded_[file.shared_name] = *ref;
        record.uploaded_bytes += static_cast<int64_t>(size);
      }
      ref->set_table(file.table);
      state_bytes += static_cast<int64_t>(ref->size());
    }
    record.size_bytes += state_bytes;
    if (!ack.files.empty()) sizes.push_back({ack.operator_name, ack.worker, state_bytes});
  }
  const std::string encoded = EncodeManifest(manifest);
  absl::Status status = storage_->Put(ManifestPath(config_.job_name, checkpoint_id), encoded);
  if (!status.ok()) return status;
  record.size_bytes += static_cast<int64_t>(encoded.size());
  record.uploaded_bytes += static_cast<int64_t>(encoded.size());
  return manifest;
}

void CheckpointCoordinator::ApplyRetention() {
  const size_t keep = static_cast<size_t>(std::max(config_.options.retained, 1));
  while (retained_.size() > keep) {
    const int64_t id = retained_.front().checkpoint_id();
    absl::Status status = storage_->Delete(ManifestPath(config_.job_name, id));
    if (!status.ok()) Log("retention: cannot delete checkpoint ", id, ": ", status.ToString());
    retained_.pop_front();
  }
  // Older manifests left by earlier runs (or failed deletes) go too.
  absl::StatusOr<std::vector<int64_t>> ids = ListCheckpoints(*storage_, config_.job_name);
  if (ids.ok()) {
    for (int64_t id : *ids) {
      if (id < retained_.front().checkpoint_id())
        (void)storage_->Delete(ManifestPath(config_.job_name, id));
    }
  }
  std::set<std::string> referenced;
  for (const auto& manifest : retained_) {
    for (const auto& op : manifest.operators()) {
      for (const auto& file : op.files()) referenced.insert(file.path());
    }
  }
  absl::StatusOr<std::vector<std::string>> shared = storage_->List(config_.job_name + "/shared/");
  if (!shared.ok()) {
    Log("retention: cannot list shared files: ", shared.status().ToString());
    return;
  }
  for (const std::string& path : *shared) {
    const std::string relative = path.substr(config_.job_name.size() + 1);
    if (referenced.contains(relative)) continue;
    absl::Status status = storage_->Delete(path);
    if (!status.ok()) Log("retention: cannot delete ", path, ": ", status.ToString());
    uploaded_.erase(relative.substr(std::string("shared/").size()));
  }
}

}  // namespace weir::internal
