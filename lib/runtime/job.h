// Job: one run of a pipeline's graph on `parallelism` worker threads.

#ifndef WEIR_LIB_RUNTIME_JOB_H_
#define WEIR_LIB_RUNTIME_JOB_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/checkpoint/coordinator.h"
#include "lib/checkpoint/restore.h"
#include "lib/metrics/registry.h"
#include "lib/runtime/job_monitor.h"
#include "lib/runtime/replay.h"
#include "lib/runtime/running_job.h"
#include "lib/runtime/worker.h"
#include "lib/runtime/worker_signal.h"
#include "weir/internal/graph.h"
#include "weir/internal/operator.h"
#include "weir/pipeline.h"

namespace weir::internal {

// State every worker of a job shares: wake-up signals and the stop/cancel flags.
class JobShared {
 public:
  JobShared(int parallelism, std::string job_name) : replays(std::move(job_name)) {
    for (int idx = 0; idx < parallelism; ++idx)
      signals_.push_back(std::make_unique<WorkerSignal>());
  }
  WorkerSignal& signal(int worker) { return *signals_[worker]; }
  void NotifyAll() {
    for (auto& signal : signals_) signal->Notify();
  }

  std::atomic<bool> stop_requested{false};
  // Set by Job::Quiesce(): sources emit nothing more (barriers excepted).
  std::atomic<bool> quiesced{false};
  // The newest checkpoint requested / completed (0: none).
  std::atomic<int64_t> requested_checkpoint{0};
  std::atomic<int64_t> completed_checkpoint{0};
  // The newest checkpoint that failed after it was requested (0: none).
  std::atomic<int64_t> failed_checkpoint{0};
  // Set when checkpointing is on / the run restored a checkpoint.
  SnapshotCollector* collector = nullptr;
  const RestoredState* restored = nullptr;
  StateStoreFactory* state_stores = nullptr;
  JobReplays replays;
  // The job's metrics (operators register their groups here).
  MetricRegistry* metrics = nullptr;
  // Set on Cancel() and on the first failure: workers leave their loops.
  std::atomic<bool> abort{false};
  // With checkpointing, a worker whose input ended keeps serving checkpoint
  // requests until every worker has ended and the final checkpoint is done.
  std::atomic<int> unfinished_workers{0};
  std::atomic<bool> release_workers{false};

 private:
  std::vector<std::unique_ptr<WorkerSignal>> signals_;
};

// One task of a cluster-mode job (lib/cluster): worker `task` of
// options.parallelism (the job's task count) alone, its exchanges through
// `remote`, its checkpoints made to count by `commit` and restored from the
// one the cluster committed.
struct TaskRun {
  int task = 0;
  RemoteExchanges* remote = nullptr;
  // Called once checkpoint `id` is stored; it is complete when this returns
  // OK. `final`: the task's input has ended and this is its last one. An
  // error fails the task.
  std::function<absl::Status(int64_t id, bool final)> commit;
  // The newest checkpoint the task restores: the one its last commit named
  // (0: none, start fresh).
  int64_t restore_checkpoint = 0;
};

class Job final : public RunningJob {
 public:
  // Validates the options and graph, prepares and instantiates every
  // operator on every worker, opens them and starts the threads. With
  // `task`, only that task's worker (cluster mode).
  static absl::StatusOr<std::shared_ptr<Job>> Start(const PipelineOptions& options,
                                                    const Graph& graph,
                                                    const TaskRun* task = nullptr);

  ~Job() override;

  void Stop() override;
  void Cancel() override;
  absl::Status Wait() override;
  bool done() const override { return running_workers_.load() == 0; }
  MetricsSnapshot Metrics() const override { return monitor_->registry().Collect(); }
  int http_port() const override { return monitor_->http_port(); }
  int64_t last_completed_checkpoint() const override;
  // The id of the checkpoint this run restored (0: it started fresh).
  int64_t restored_checkpoint() const override;
  absl::StatusOr<int64_t> TriggerCheckpoint() override;
  // Cluster mode, before a task is given up: sources and exchange receivers
  // stop emitting (barriers still pass), so the checkpoint taken next holds
  // everything the task processed and its next owner replays nothing.
  void Quiesce();
  // Whether every worker's input has ended: the job is taking (or took) its
  // final checkpoint and then ends by itself.
  bool input_ended() const;
  // The job as /api/v1/job shows it (also without an HTTP server).
  std::string JobJson() const { return monitor_->JobJson(); }

  // Records the first failure and aborts every worker.
  void Fail(const absl::Status& status);

 private:
  Job() = default;
  // The steps of Start.
  absl::Status OpenCheckpoints(const PipelineOptions& options, const Graph& graph,
                               CheckpointHistory& history);
  absl::Status OpenStateStores(const PipelineOptions& options);
  void CreateCoordinator(const PipelineOptions& options, CheckpointHistory& history);
  absl::Status BuildWorkers(const PipelineOptions& options, const Graph& graph,
                            const std::vector<std::string>& labels, JobBuilder& job_builder);
  void Launch(const PipelineOptions& options, const JobBuilder& job_builder);

  void RunWorker(size_t position);
  // With checkpointing: once every worker's input ended, takes the final
  // checkpoint (so two-phase sinks commit their tail) and releases the workers.
  void Finalize();

  // Declared first: destroyed last, after everything its collectors read
  // (the server is stopped explicitly in ~Job before anything else goes).
  std::unique_ptr<JobMonitor> monitor_;
  // Cluster mode: the task this job runs (copied from Start's argument).
  std::unique_ptr<TaskRun> task_;
  JobShared* shared_ = nullptr;
  std::unique_ptr<JobShared> shared_owner_;
  std::vector<std::unique_ptr<WorkerEnv>> envs_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::shared_ptr<OperatorMetrics>> metrics_;
  std::vector<std::thread> threads_;
  std::shared_ptr<CheckpointStorage> storage_;
  std::unique_ptr<RestoredCheckpoint> restored_;
  std::unique_ptr<CheckpointCoordinator> coordinator_;
  std::unique_ptr<StateStoreFactory> state_stores_;
  std::string local_dir_;
  bool owns_local_dir_ = false;
  std::thread finalizer_;
  std::atomic<int> running_workers_{0};

  std::mutex wait_mutex_;  // serializes joining the threads
  std::mutex mutex_;       // guards the fields below
  absl::Status failure_;
  bool cancelled_ = false;
  bool joined_ = false;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_RUNTIME_JOB_H_
