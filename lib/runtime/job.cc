#include "lib/runtime/job.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/state/rocksdb_store.h"

namespace weir::internal {

// An env that belongs to no job (tests drive operators directly) has no
// workers to wake, no checkpoints and no restore.
void WorkerEnv::Notify(int worker) const {
  if (job != nullptr) job->signal(worker).Notify();
}
bool WorkerEnv::stop_requested() const {
  return job->stop_requested.load(std::memory_order_relaxed);
}
bool WorkerEnv::quiesced() const {
  return job != nullptr && job->quiesced.load(std::memory_order_acquire);
}
Timestamp WorkerEnv::Now() const { return absl::ToUnixMillis(absl::Now()); }
int64_t WorkerEnv::requested_checkpoint() const {
  return job->requested_checkpoint.load(std::memory_order_acquire);
}
int64_t WorkerEnv::resolved_checkpoint() const {
  if (job == nullptr) return INT64_MAX;
  return std::max(job->completed_checkpoint.load(std::memory_order_acquire),
                  job->failed_checkpoint.load(std::memory_order_acquire));
}
SnapshotCollector* WorkerEnv::collector() const {
  return job == nullptr ? nullptr : job->collector;
}
const RestoredState* WorkerEnv::restored() const {
  return job == nullptr ? nullptr : job->restored;
}
StateStoreFactory* WorkerEnv::state_stores() const {
  return job == nullptr ? nullptr : job->state_stores;
}
ReplayCoordinator* WorkerEnv::replay() const { return job == nullptr ? nullptr : &job->replays; }
MetricGroup& WorkerEnv::metric_group(const std::string& op) const {
  if (job == nullptr || job->metrics == nullptr) return DetachedMetricGroup();
  return job->metrics->Group(op, worker_index);
}

namespace {

absl::Status ValidateOptions(const PipelineOptions& options) {
  if (options.parallelism < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("PipelineOptions.parallelism must be >= 1, got ", options.parallelism));
  }
  if (options.max_parallelism < options.parallelism || options.max_parallelism > 32768) {
    return absl::InvalidArgumentError(
        absl::StrCat("PipelineOptions.max_parallelism must be in [parallelism, 32768], got ",
                     options.max_parallelism, " with parallelism ", options.parallelism));
  }
  if (options.replay_keys_per_second < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("PipelineOptions.replay_keys_per_second must be >= 1, got ",
                     options.replay_keys_per_second));
  }
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError("PipelineOptions.batch_size must be >= 1");
  }
  if (options.queue_capacity < 1) {
    return absl::InvalidArgumentError("PipelineOptions.queue_capacity must be >= 1");
  }
  if (options.http_port < -1 || options.http_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PipelineOptions.http_port must be -1 (off), 0 (any) or a port, got ", options.http_port));
  }
  return absl::OkStatus();
}

// How a node is named in messages about identities: "Sink#3 'out'".
std::string Describe(const LogicalNode& node) {
  const std::string place = absl::StrCat(node.kind, "#", node.id);
  return node.name == place ? place : absl::StrCat(place, " '", node.name, "'");
}

// Every operator instance files its checkpoint snapshot under its
// operator's identity (LogicalNode::identity(): the uid), and a restore
// hands each operator the snapshots filed under its identity; connectors
// derive Kafka transactional ids and Redis fences from it. So:
// - identities are unique: two operators with one uid would each get both
//   snapshots (keyed state merged, a source taking either's split
//   positions, a sink committing the other's transactions). Display names
//   are free to repeat (DisplayLabels keeps metric series apart);
// - with checkpoints on, every operator that keeps state has a uid the user
//   chose: a default ("<kind>#<id>") moves when an operator is inserted
//   before it, and its state would then go to another operator or nowhere;
// - a uid names an operator: a side output runs none.
// The one place that decides what identifies an operator in a checkpoint.
absl::Status ValidateOperatorIdentities(const Graph& graph, bool checkpointing) {
  std::vector<std::string> without_uid;
  for (const auto& node : graph.nodes()) {
    if (!node->runs_operator && !node->uid.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "uid '", node->uid, "' is set on side output ", Describe(*node),
          ", which runs no operator and keeps no state: set it on the operator that produces "
          "the side output"));
    }
    if (checkpointing && node->stateful && node->uid.empty())
      without_uid.push_back(Describe(*node));
  }
  if (!without_uid.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoints are on, and these operators keep state but have no uid: ",
        absl::StrJoin(without_uid, ", "),
        ". A restore finds an operator's state by its uid; give each one a stable uid with "
        ".Uid(\"...\") (on the stream a source or Process returns, or on the handle Sink "
        "returns), and keep it when the pipeline changes"));
  }
  absl::flat_hash_map<std::string, std::vector<const LogicalNode*>> by_identity;
  for (const auto& node : graph.nodes()) {
    if (node->runs_operator) by_identity[node->identity()].push_back(node.get());
  }
  for (const auto& node : graph.nodes()) {
    if (!node->runs_operator) continue;
    auto it = by_identity.find(node->identity());
    if (it->second.size() < 2) continue;
    std::vector<std::string> nodes;
    for (const LogicalNode* same : it->second) nodes.push_back(Describe(*same));
    return absl::InvalidArgumentError(absl::StrCat(
        "operator uid '", node->identity(), "' is used by ", nodes.size(), " operators (",
        absl::StrJoin(nodes, ", "),
        "): checkpoints file each operator's state under its uid, so uids must be unique; "
        "give all but one another .Uid()"));
  }
  return absl::OkStatus();
}

// State in the restored checkpoint that no operator of `graph` takes would
// be dropped: fail (kFailedPrecondition, naming each uid), or with
// allow_non_restored_state log each uid and go on. Only stateful operators
// take state: a stateless one restores nothing, whatever its uid.
absl::Status ClaimRestoredState(const RestoredCheckpoint& restored, const Graph& graph,
                                const PipelineOptions& options, bool remote_exchanges) {
  absl::flat_hash_set<std::string> claimed;
  for (const auto& node : graph.nodes()) {
    if (node->runs_operator && (node->stateful || (remote_exchanges && node->exchange))) {
      claimed.insert(node->identity());
    }
  }
  const std::vector<std::string> unclaimed = restored.UnclaimedUids(claimed);
  if (unclaimed.empty()) return absl::OkStatus();
  const std::string checkpoint =
      absl::StrCat("checkpoint ", restored.checkpoint_id(), " of job '", options.job_name, "'");
  if (!options.allow_non_restored_state) {
    return absl::FailedPreconditionError(absl::StrCat(
        checkpoint, " holds state of operator uid(s) '", absl::StrJoin(unclaimed, "', '"),
        "' that no stateful operator of this pipeline has: starting would drop it. Give the "
        "operator that should take it that uid (.Uid(\"",
        unclaimed.front(),
        "\")), or set PipelineOptions::allow_non_restored_state to start without it"));
  }
  for (const std::string& uid : unclaimed) {
    Log(checkpoint, ": dropping the state of operator uid '", uid,
        "': no stateful operator of this pipeline has that uid "
        "(PipelineOptions::allow_non_restored_state)");
  }
  return absl::OkStatus();
}

absl::Status ValidateJob(const PipelineOptions& options, const Graph& graph) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  if (!graph.error().ok()) return graph.error();
  if (absl::Status status =
          ValidateOperatorIdentities(graph, !options.checkpoints.storage_uri.empty());
      !status.ok()) {
    return status;
  }
  bool has_sink = false;
  for (const auto& node : graph.nodes()) has_sink |= node->is_sink;
  if (!has_sink) {
    return absl::InvalidArgumentError("the pipeline has no sink: nothing would be written");
  }
  const CheckpointOptions& checkpoints = options.checkpoints;
  if (checkpoints.interval > absl::ZeroDuration() && checkpoints.storage_uri.empty()) {
    return absl::InvalidArgumentError(
        "CheckpointOptions.interval is set but CheckpointOptions.storage_uri is empty");
  }
  if (!checkpoints.storage_uri.empty() && checkpoints.retained < 1) {
    return absl::InvalidArgumentError("CheckpointOptions.retained must be >= 1");
  }
  return absl::OkStatus();
}

absl::Status OperatorError(const absl::Status& status, const std::string& label) {
  return Annotate(status, absl::StrCat("operator '", label, "'"));
}

}  // namespace

// Start, step by step: validate; monitoring (and the HTTP server, up before
// the restore so /healthz answers while it runs); checkpoint storage and the
// restore; state stores; the operators' shared preparation; the checkpoint
// coordinator; every worker's operators; open them; then the threads.
absl::StatusOr<std::shared_ptr<Job>> Job::Start(const PipelineOptions& options, const Graph& graph,
                                                const TaskRun* task) {
  if (absl::Status status = ValidateJob(options, graph); !status.ok()) return status;
  std::shared_ptr<Job> job(new Job());
  if (task != nullptr) job->task_ = std::make_unique<TaskRun>(*task);
  job->shared_owner_ = std::make_unique<JobShared>(options.parallelism, options.job_name);
  job->shared_ = job->shared_owner_.get();
  job->monitor_ = std::make_unique<JobMonitor>(options, graph);
  job->shared_->metrics = &job->monitor_->registry();
  if (options.http_port >= 0) {
    absl::Status status = job->monitor_->StartServer(options.http_address, options.http_port);
    if (!status.ok()) return status;
  }
  CheckpointHistory history;
  if (absl::Status status = job->OpenCheckpoints(options, graph, history); !status.ok()) {
    return status;
  }
  if (absl::Status status = job->OpenStateStores(options); !status.ok()) return status;

  const std::vector<std::string> labels = DisplayLabels(graph);
  JobBuilder job_builder(options.parallelism, options.max_parallelism, options.batch_size,
                         options.queue_capacity, static_cast<int>(graph.nodes().size()));
  job_builder.set_remote_exchanges(task != nullptr);
  for (const auto& node : graph.nodes()) {
    if (!node->prepare) continue;
    if (absl::Status status = node->prepare(*node, job_builder); !status.ok()) {
      return OperatorError(status, labels[node->id]);
    }
  }
  // The collector must exist before operators are built (they see it through their env).
  job->CreateCoordinator(options, history);
  if (absl::Status status = job->BuildWorkers(options, graph, labels, job_builder); !status.ok()) {
    return status;
  }
  for (auto& worker : job->workers_) {
    if (absl::Status status = worker->Open(); !status.ok()) {
      for (auto& opened : job->workers_) (void)opened->Close();
      return status;
    }
  }
  job->Launch(options, job_builder);
  return job;
}

absl::Status Job::OpenCheckpoints(const PipelineOptions& options, const Graph& graph,
                                  CheckpointHistory& history) {
  const CheckpointOptions& checkpoints = options.checkpoints;
  if (checkpoints.storage_uri.empty()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
      CheckpointStorage::Open(checkpoints.storage_uri, checkpoints.s3);
  if (!storage.ok()) return storage.status();
  storage_ = *std::move(storage);
  local_dir_ = checkpoints.local_dir;
  if (local_dir_.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    local_dir_ =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/weir-", options.job_name, "-",
                     getpid(), "-", reinterpret_cast<uintptr_t>(this));
    owns_local_dir_ = true;
  }
  std::error_code ec;
  std::filesystem::create_directories(local_dir_, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create ", local_dir_, ": ", ec.message()));
  }
  absl::StatusOr<CheckpointHistory> loaded =
      LoadCheckpointHistory(*storage_, options.job_name, options.max_parallelism, local_dir_,
                            task_ != nullptr ? task_->restore_checkpoint : kAnyCheckpoint);
  if (!loaded.ok()) return loaded.status();
  history = *std::move(loaded);
  if (history.restored != nullptr) {
    absl::Status status = ClaimRestoredState(*history.restored, graph, options, task_ != nullptr);
    if (!status.ok()) return status;
  }
  restored_ = std::move(history.restored);
  shared_->restored = restored_.get();
  return absl::OkStatus();
}

absl::Status Job::OpenStateStores(const PipelineOptions& options) {
  if (!options.state_backend.is_rocksdb()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<StateStoreFactory>> stores =
      NewRocksDbStoreFactory(options.state_backend.dir(), options.job_name, options.parallelism,
                             options.state_backend.rocksdb_options());
  if (!stores.ok()) return stores.status();
  state_stores_ = *std::move(stores);
  shared_->state_stores = state_stores_.get();
  return absl::OkStatus();
}

void Job::CreateCoordinator(const PipelineOptions& options, CheckpointHistory& history) {
  if (storage_ == nullptr) return;
  CheckpointCoordinator::Config config;
  config.options = options.checkpoints;
  config.job_name = options.job_name;
  config.parallelism = options.parallelism;
  config.max_parallelism = options.max_parallelism;
  config.first_id = history.next_id;
  config.local_dir = local_dir_;
  JobShared* shared = shared_;
  config.request = [shared](int64_t id) {
    shared->requested_checkpoint.store(id, std::memory_order_release);
    shared->NotifyAll();
  };
  config.complete = [shared](int64_t id) {
    shared->completed_checkpoint.store(id, std::memory_order_release);
    shared->NotifyAll();
  };
  // Senders holding what followed the barrier of a failed checkpoint let it
  // go: it joins the records of the next one.
  config.failed = [shared](int64_t id, const absl::Status&) {
    if (id > shared->failed_checkpoint.load()) shared->failed_checkpoint.store(id);
    shared->NotifyAll();
  };
  if (task_ != nullptr) {
    config.commit = [this, shared](int64_t id) {
      absl::Status status = task_->commit(id, shared->unfinished_workers.load() == 0);
      if (!status.ok()) Fail(Annotate(status, absl::StrCat("committing checkpoint ", id)));
      return status;
    };
  }
  coordinator_ = std::make_unique<CheckpointCoordinator>(std::move(config), storage_,
                                                         std::move(history.retained));
  shared_->collector = coordinator_.get();
}

absl::Status Job::BuildWorkers(const PipelineOptions& options, const Graph& graph,
                               const std::vector<std::string>& labels, JobBuilder& job_builder) {
  std::vector<int> indices;
  if (task_ != nullptr) {
    indices.push_back(task_->task);
  } else {
    for (int worker = 0; worker < options.parallelism; ++worker) indices.push_back(worker);
  }
  for (int worker : indices) {
    auto env = std::make_unique<WorkerEnv>();
    env->worker_index = worker;
    env->parallelism = options.parallelism;
    env->max_parallelism = options.max_parallelism;
    env->batch_size = options.batch_size;
    env->queue_capacity = options.queue_capacity;
    env->job = shared_;
    env->job_name = options.job_name;
    env->checkpointing = storage_ != nullptr;
    env->checkpoint_interval = options.checkpoints.interval;
    env->checkpoint_timeout = options.checkpoints.timeout;
    env->asynchronous_sink_flush = options.checkpoints.asynchronous_sink_flush;
    env->checkpoints_retained = options.checkpoints.retained;
    env->replay_keys_per_second = options.replay_keys_per_second;
    env->remote = task_ != nullptr ? task_->remote : nullptr;

    WorkerBuilder builder(*env, job_builder.shared(), labels);
    for (const auto& node : graph.nodes()) {
      absl::Status status;
      try {
        status = node->instantiate(*node, builder);
      } catch (...) {
        status = StatusFromCurrentException(labels[node->id], worker);
      }
      if (!status.ok()) return OperatorError(status, labels[node->id]);
    }
    for (const auto& op : builder.owned_operators) metrics_.push_back(op->shared_metrics());
    monitor_->AddWorker(builder);
    workers_.push_back(std::make_unique<Worker>(std::move(builder), shared_->signal(worker),
                                                monitor_->worker_metrics(worker)));
    envs_.push_back(std::move(env));
  }
  return absl::OkStatus();
}

void Job::Launch(const PipelineOptions& options, const JobBuilder& job_builder) {
  if (coordinator_ != nullptr) coordinator_->set_expected_acks(static_cast<int>(metrics_.size()));
  monitor_->Publish(job_builder.exchanges(), coordinator_.get());
  (void)options;
  const int workers = static_cast<int>(workers_.size());
  running_workers_.store(workers);
  shared_->unfinished_workers.store(workers);
  for (size_t position = 0; position < workers_.size(); ++position) {
    threads_.emplace_back([this, position] { RunWorker(position); });
  }
  if (coordinator_ != nullptr) {
    coordinator_->Start();
    finalizer_ = std::thread([this] { Finalize(); });
  }
  monitor_->SetState(JobState::kRunning);
}

Job::~Job() {
  // The server reads what the rest of the job owns: it goes first.
  if (monitor_ != nullptr) monitor_->StopServer();
  Cancel();
  (void)Wait();
}

void Job::RunWorker(size_t position) {
  // Visible in top, perf and gdb.
  const std::string thread_name = absl::StrCat("weir-w", envs_[position]->worker_index);
  pthread_setname_np(pthread_self(), thread_name.c_str());
  Worker& worker = *workers_[position];
  absl::Status status = worker.Run(*shared_);
  if (!status.ok()) Fail(status);
  absl::Status closed = worker.Close();
  if (!closed.ok()) Fail(closed);
  if (running_workers_.fetch_sub(1) == 1) {
    std::lock_guard<std::mutex> lock(mutex_);
    monitor_->SetState(!failure_.ok() ? JobState::kFailed
                       : cancelled_   ? JobState::kCancelled
                                      : JobState::kFinished,
                       failure_);
  }
}

void Job::Fail(const absl::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.ok()) failure_ = status;
  }
  monitor_->SetState(JobState::kFailed, status);
  shared_->abort.store(true);
  if (coordinator_ != nullptr) coordinator_->Abandon();
  shared_->NotifyAll();
}

void Job::Stop() {
  monitor_->SetState(JobState::kStopping);
  shared_->stop_requested.store(true);
  shared_->NotifyAll();
}

bool Job::input_ended() const { return shared_->unfinished_workers.load() == 0; }

void Job::Quiesce() {
  shared_->quiesced.store(true, std::memory_order_release);
  shared_->NotifyAll();
}

void Job::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (joined_ || done()) return;
    cancelled_ = true;
  }
  monitor_->SetState(JobState::kCancelled);
  shared_->abort.store(true);
  if (coordinator_ != nullptr) coordinator_->Abandon();
  shared_->NotifyAll();
}

void Job::Finalize() {
  while (!shared_->abort.load() && shared_->unfinished_workers.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  coordinator_->StopPeriodic();
  if (!shared_->abort.load()) {
    absl::Status status = coordinator_->CheckpointNow();
    if (!status.ok()) Fail(Annotate(status, "final checkpoint"));
  }
  shared_->release_workers.store(true);
  shared_->NotifyAll();
}

absl::StatusOr<int64_t> Job::TriggerCheckpoint() {
  if (coordinator_ == nullptr) {
    return absl::FailedPreconditionError(
        "checkpoints need PipelineOptions.checkpoints.storage_uri");
  }
  if (shared_->unfinished_workers.load() == 0 || shared_->abort.load()) {
    return absl::FailedPreconditionError("the job has finished");
  }
  absl::Status status = coordinator_->CheckpointNow();
  if (!status.ok()) return status;
  return coordinator_->last_completed();
}

int64_t Job::restored_checkpoint() const {
  return restored_ == nullptr ? 0 : restored_->checkpoint_id();
}

int64_t Job::last_completed_checkpoint() const {
  return coordinator_ == nullptr ? 0 : coordinator_->last_completed();
}

absl::Status Job::Wait() {
  std::lock_guard<std::mutex> wait_lock(wait_mutex_);
  if (!joined_) {
    for (std::thread& thread : threads_) thread.join();
    if (finalizer_.joinable()) finalizer_.join();
    if (coordinator_ != nullptr) coordinator_->Shutdown();
    if (owns_local_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(local_dir_, ec);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    joined_ = true;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_.ok()) return failure_;
  if (cancelled_) return absl::CancelledError("the job was cancelled");
  return absl::OkStatus();
}

}  // namespace weir::internal
