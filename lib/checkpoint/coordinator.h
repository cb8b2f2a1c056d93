// CheckpointCoordinator: triggers checkpoints, collects every operator's
// snapshot, uploads their files, writes the manifest last, applies retention
// and tells the workers that the checkpoint is complete.

#ifndef WEIR_LIB_CHECKPOINT_COORDINATOR_H_
#define WEIR_LIB_CHECKPOINT_COORDINATOR_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/checkpoint/manifest.pb.h"
#include "weir/checkpoint.h"
#include "weir/internal/checkpointing.h"
#include "weir/metrics.h"

namespace weir::internal {

// One checkpoint attempt, for the metrics and the dashboard.
struct CheckpointRecord {
  int64_t id = 0;
  // When it was requested (ms since the epoch) and how long it took.
  int64_t trigger_ms = 0;
  int64_t duration_ms = 0;
  // Bytes of every file it references (the full state) and the bytes it
  // added to storage (new files and the manifest: the incremental part).
  int64_t size_bytes = 0;
  int64_t uploaded_bytes = 0;
  bool completed = false;
  // Why it failed.
  std::string error;
};

// The bytes of one operator instance's state files in a checkpoint.
struct OperatorStateSize {
  std::string operator_name;
  int worker = 0;
  int64_t bytes = 0;
};

class CheckpointCoordinator final : public SnapshotCollector {
 public:
  struct Config {
    CheckpointOptions options;
    std::string job_name;
    int parallelism = 1;
    int max_parallelism = 128;
    // Snapshots expected per checkpoint: one per operator instance.
    int expected_acks = 0;
    // The first id to use (above every id in storage).
    int64_t first_id = 1;
    // A local scratch directory.
    std::string local_dir;
    // Publishes a request for checkpoint n to the workers.
    std::function<void(int64_t)> request;
    // Publishes the completion of checkpoint n to the workers.
    std::function<void(int64_t)> complete;
    // Optional: makes stored checkpoint n count (cluster mode: the task's
    // Kafka transaction with the checkpoint record). Checkpoint n is complete
    // only when it returns OK.
    std::function<absl::Status(int64_t)> commit;
    // Optional: checkpoint n failed (after it was requested).
    std::function<void(int64_t, const absl::Status&)> failed;
  };

  CheckpointCoordinator(Config config, std::shared_ptr<CheckpointStorage> storage,
                        std::vector<checkpoint::Manifest> retained);
  ~CheckpointCoordinator() override;

  // Starts periodic checkpoints (when options.interval > 0).
  void Start();
  // Stops periodic checkpoints (one in flight completes first).
  void StopPeriodic();
  // Abandons a checkpoint in flight and refuses new ones (the job aborts).
  // Does not wait; safe from any thread.
  void Abandon();
  // Abandon() and wait for the periodic thread.
  void Shutdown();
  // Takes one checkpoint now and waits for it (e.g. the final one at end of input).
  absl::Status CheckpointNow();

  void Acknowledge(int64_t checkpoint_id, absl::Status status, OperatorSnapshot snapshot) override;
  std::string StagingDir(int64_t checkpoint_id) override;

  int64_t last_completed() const;
  void set_expected_acks(int count) { config_.expected_acks = count; }
  int completed_count() const;
  int failed_count() const;
  // The newest attempts (at most kHistorySize), oldest first.
  std::vector<CheckpointRecord> History() const;
  // Per operator instance with state files: their size in the newest
  // complete checkpoint of this run.
  std::vector<OperatorStateSize> StateSizes() const;
  // Durations of the completed checkpoints, in seconds.
  HistogramSnapshot DurationHistogram() const { return duration_seconds_.Snapshot(); }

  static constexpr size_t kHistorySize = 50;

 private:
  void Loop();
  // Takes the next id (into `id`; 0 if shut down) and runs that checkpoint,
  // one at a time (run_mutex_).
  absl::Status RunNext(int64_t& id);
  // Called under run_mutex_.
  absl::Status Run(int64_t checkpoint_id);
  absl::StatusOr<checkpoint::Manifest> Persist(int64_t checkpoint_id,
                                               std::vector<OperatorSnapshot>& acks,
                                               CheckpointRecord& record,
                                               std::vector<OperatorStateSize>& sizes);
  void Record(CheckpointRecord record);
  void ApplyRetention();

  Config config_;
  std::shared_ptr<CheckpointStorage> storage_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool shutdown_ = false;       // abandon everything
  bool stop_periodic_ = false;  // no more periodic checkpoints
  int64_t next_id_;
  int64_t current_ = 0;  // the checkpoint collecting acks (0: none)
  std::vector<OperatorSnapshot> acks_;
  absl::Status ack_failure_;
  int64_t last_completed_ = 0;
  int completed_ = 0;
  int failed_ = 0;
  std::deque<CheckpointRecord> history_;
  std::vector<OperatorStateSize> state_sizes_;
  // Observed under run_mutex_ (one writer at a time).
  Histogram duration_seconds_{Histogram::ExponentialBounds(0.01, 2, 14)};

  std::mutex run_mutex_;  // one checkpoint at a time
  // Only touched under run_mutex_.
  std::deque<checkpoint::Manifest> retained_;
  std::map<std::string, checkpoint::FileRef> uploaded_;  // shared name -> stored file

  std::thread thread_;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_COORDINATOR_H_
