#include "lib/cluster/cluster_job.h"

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "weir/formats/json.h"

namespace weir::cluster {

namespace kinternal = ::weir::kafka::internal;
using weir::internal::Log;

namespace {

int Millis(absl::Duration duration) {
  return static_cast<int>(absl::ToInt64Milliseconds(duration));
}

absl::Status ValidateClusterOptions(const PipelineOptions& options) {
  const ClusterOptions& cluster = options.cluster;
  if (cluster.job_id.empty() || cluster.job_id.size() > 200) {
    return absl::InvalidArgumentError(
        "ClusterOptions.job_id must be 1 to 200 characters of [A-Za-z0-9._-]");
  }
  for (char c : cluster.job_id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("ClusterOptions.job_id '", cluster.job_id, "' has '", std::string(1, c),
                       "': it names Kafka topics, so only [A-Za-z0-9._-] are allowed"));
    }
  }
  if (cluster.tasks < 1 || cluster.tasks > options.max_parallelism) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClusterOptions.tasks must be in [1, max_parallelism = ", options.max_parallelism,
        "], got ", cluster.tasks));
  }
  if (options.checkpoints.storage_uri.empty()) {
    return absl::InvalidArgumentError(
        "cluster mode needs CheckpointOptions.storage_uri: a task restarts in another process "
        "from its last checkpoint, so every process must reach the storage (S3 or a shared "
        "directory)");
  }
  if (cluster.session_timeout < absl::Seconds(1) || cluster.broker_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "ClusterOptions.session_timeout and broker_timeout must be at least 1 s");
  }
  return absl::OkStatus();
}

// Creates the missing topics of `wanted` (name -> partitions) and checks
// the partition count of those that exist.
absl::Status EnsureTopics(const ClusterOptions& options, const std::map<std::string, int>& wanted) {
  const std::string what = absl::StrCat("cluster job '", options.job_id, "'");
  absl::StatusOr<kinternal::ConfPtr> conf = ClusterConf(options, {}, what);
  if (!conf.ok()) return conf.status();
  absl::StatusOr<kinternal::HandlePtr> admin =
      kinternal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), what);
  if (!admin.ok()) return admin.status();
  // Listing every topic never auto-creates one.
  const rd_kafka_metadata_t* raw = nullptr;
  if (rd_kafka_resp_err_t err =
          rd_kafka_metadata(admin->get(), 1, nullptr, &raw, Millis(options.broker_timeout))) {
    return absl::UnavailableError(
        absl::StrCat(what, ": no topic metadata from ", options.brokers, " within ",
                     absl::FormatDuration(options.broker_timeout), ": ", rd_kafka_err2str(err)));
  }
  kinternal::MetadataPtr metadata(raw);
  std::vector<std::pair<std::string, int>> missing;
  for (const auto& [topic, partitions] : wanted) {
    const rd_kafka_metadata_topic_t* found = nullptr;
    for (int idx = 0; idx < metadata->topic_cnt; ++idx) {
      if (topic == metadata->topics[idx].topic && metadata->topics[idx].err == 0) {
        found = &metadata->topics[idx];
      }
    }
    if (found == nullptr) {
      missing.emplace_back(topic, partitions);
    } else if (found->partition_cnt != partitions) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, ": topic ", topic, " has ", found->partition_cnt, " partitions, this job needs ",
          partitions, " (one per task; ClusterOptions.tasks cannot change for a job id)"));
    }
  }
  if (missing.empty()) return absl::OkStatus();
  std::vector<rd_kafka_NewTopic_t*> topics;
  char errstr[256];
  for (const auto& [topic, partitions] : missing) {
    topics.push_back(rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, errstr, sizeof(errstr)));
  }
  std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> queue(
      rd_kafka_queue_new(admin->get()), rd_kafka_queue_destroy);
  rd_kafka_CreateTopics(admin->get(), topics.data(), topics.size(), nullptr, queue.get());
  rd_kafka_NewTopic_destroy_array(topics.data(), topics.size());
  std::unique_ptr<rd_kafka_event_t, void (*)(rd_kafka_event_t*)> event(
      rd_kafka_queue_poll(queue.get(), Millis(options.broker_timeout)), rd_kafka_event_destroy);
  std::vector<std::string> names;
  for (const auto& entry : missing) names.push_back(entry.first);
  if (event == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        what, ": creating topic(s) ", absl::StrJoin(names, ", "), " got no answer within ",
        absl::FormatDuration(options.broker_timeout),
        " (a broker without the CreateTopics API, such as librdkafka's mock cluster, needs them "
        "created beforehand, one partition per task; ",
        internal::ClusterCheckpointTopic(options.job_id), ": 1 partition)"));
  }
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
  for (size_t idx = 0; idx < count; ++idx) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[idx]);
    if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      return kinternal::ToStatus(
          err, absl::StrCat(what, ": creating topic ", rd_kafka_topic_result_name(results[idx]),
                            ": ", rd_kafka_topic_result_error_string(results[idx])));
    }
  }
  Log(what, ": created topic(s) ", absl::StrJoin(names, ", "));
  return absl::OkStatus();
}

}  // namespace

ClusterJob::ClusterJob(const PipelineOptions& options, std::shared_ptr<const internal::Graph> graph,
                       std::string fingerprint)
    : options_(options), graph_(std::move(graph)), fingerprint_(std::move(fingerprint)) {}

absl::StatusOr<std::shared_ptr<internal::RunningJob>> ClusterJob::Start(
    const PipelineOptions& options, std::shared_ptr<const internal::Graph> graph) {
  if (absl::Status status = ValidateClusterOptions(options); !status.ok()) return status;
  if (!graph->error().ok()) return graph->error();
  const ClusterOptions& cluster = options.cluster;
  // The lease and checkpoint topics first: the graph record decides whether
  // this process may run here at all, before it creates anything else.
  if (absl::Status status =
          EnsureTopics(cluster, {{internal::ClusterLeaseTopic(cluster.job_id), cluster.tasks},
                                 {internal::ClusterCheckpointTopic(cluster.job_id), 1}});
      !status.ok()) {
    return status;
  }
  std::string fingerprint = GraphFingerprint(*graph, cluster.tasks, options.max_parallelism);
  std::map<std::string, int> repartition;
  for (const auto& [topic, partitions] : internal::ClusterTopics(options, *graph)) {
    repartition[topic] = partitions;  // the lease and checkpoint topics exist by now
  }
  std::shared_ptr<ClusterJob> job(new ClusterJob(options, std::move(graph), fingerprint));
  absl::StatusOr<std::unique_ptr<CheckpointRecordReader>> records =
      CheckpointRecordReader::Create(cluster);
  if (!records.ok()) return records.status();
  job->records_ = *std::move(records);
  if (absl::Status status = job->records_->CatchUp(cluster.broker_timeout); !status.ok()) {
    return status;
  }
  if (!job->records_->graph().empty() && job->records_->graph() != fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster job '", cluster.job_id, "' runs another graph (fingerprint ",
        job->records_->graph(), ", this process has ", fingerprint,
        "): every process of a job must run the same pipeline with the same tasks; start a "
        "changed pipeline under a new job id"));
  }
  if (absl::Status status = EnsureTopics(cluster, repartition); !status.ok()) return status;
  if (job->records_->graph().empty()) {
    if (absl::Status status = WriteGraphRecord(cluster, fingerprint); !status.ok()) return status;
  }
  if (options.http_port >= 0) {
    absl::StatusOr<std::unique_ptr<internal::HttpServer>> server =
        internal::HttpServer::Start(options.http_address, options.http_port, *job);
    if (!server.ok()) return server.status();
    job->server_ = *std::move(server);
  }
  if (absl::Status status = job->Join(); !status.ok()) return status;
  job->thread_ = std::thread([raw = job.get()] { raw->Loop(); });
  return std::shared_ptr<internal::RunningJob>(std::move(job));
}

absl::Status ClusterJob::Join() {
  const ClusterOptions& cluster = options_.cluster;
  const std::string what = absl::StrCat("cluster job '", cluster.job_id, "' task lease");
  std::map<std::string, std::string> defaults = {
      {"group.id", cluster.job_id},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"session.timeout.ms", absl::StrCat(absl::ToInt64Milliseconds(cluster.session_timeout))},
      {"heartbeat.interval.ms", absl::StrCat(std::max<int64_t>(
                                    100, absl::ToInt64Milliseconds(cluster.session_timeout) / 5))},
      {"enable.auto.commit", "false"},
      {"auto.offset.reset", "earliest"}};
  if (!cluster.instance_id.empty()) defaults["group.instance.id"] = cluster.instance_id;
  absl::StatusOr<kinternal::ConfPtr> conf = ClusterConf(cluster, defaults, what);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_rebalance_cb(conf->get(), &ClusterJob::RebalanceCallback);
  rd_kafka_conf_set_opaque(conf->get(), this);
  absl::StatusOr<kinternal::HandlePtr> consumer =
      kinternal::MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), what);
  if (!consumer.ok()) return consumer.status();
  lease_ = *std::move(consumer);
  kinternal::TopicPartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(
      topics.get(), internal::ClusterLeaseTopic(cluster.job_id).c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(lease_.get(), topics.get())) {
    return kinternal::ToStatus(err, what);
  }
  return absl::OkStatus();
}

void ClusterJob::RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  (void)rk;
  static_cast<ClusterJob*>(opaque)->OnRebalance(err, partitions);
}

void ClusterJob::OnRebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<int> changed;
  for (int idx = 0; idx < partitions->cnt; ++idx)
    changed.push_back(partitions->elems[idx].partition);
  const std::string job = absl::StrCat("cluster job '", options_.cluster.job_id, "'");
  auto record_rebalance = [&] {
    std::lock_guard<std::mutex> lock(mutex_);
    ++rebalances_;
    last_rebalance_ms_ = absl::ToUnixMillis(absl::Now());
    last_rebalance_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    kinternal::ErrorPtr error(rd_kafka_incremental_assign(lease_.get(), partitions));
    if (error != nullptr) {
      Fail(kinternal::ToStatus(error.get(), job + ": taking tasks"));
      return;
    }
    for (int task : changed) {
      if (stop_.load() || cancel_.load()) break;
      absl::Status status = StartTask(task);
      if (!status.ok()) {
        Fail(internal::Annotate(status, absl::StrCat(job, ": starting task ", task)));
        return;
      }
    }
    if (changed.empty()) return;  // a cooperative round that moved nothing here
    record_rebalance();
    Log(job, ": took task(s) ", absl::StrJoin(changed, ", "), " in ",
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                              started)
            .count(),
        " ms; owns ", absl::StrJoin(OwnedTasks(), ", "));
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    const bool lost = rd_kafka_assignment_lost(lease_.get()) != 0;
    for (int task : changed) StopTask(task, /*commit=*/!lost && !cancel_.load());
    kinternal::ErrorPtr error(rd_kafka_incremental_unassign(lease_.get(), partitions));
    if (changed.empty()) return;
    record_rebalance();
    Log(job, lost ? ": lost task(s) " : ": gave up task(s) ", absl::StrJoin(changed, ", "),
        lost ? " (dropped without committing)" : " (committed and stopped)", " in ",
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                              started)
            .count(),
        " ms");
    return;
  }
  Log(job, ": rebalance error: ", rd_kafka_err2str(err));
  rd_kafka_assign(lease_.get(), nullptr);
}

absl::Status ClusterJob::StartTask(int index) {
  auto task = std::make_unique<Task>();
  task->index = index;
  absl::StatusOr<std::unique_ptr<TaskTransport>> transport =
      TaskTransport::Create(options_.cluster, index, fingerprint_);
  if (!transport.ok()) return transport.status();
  task->transport = *std::move(transport);
  // After the fence: the previous owner can commit nothing more.
  if (absl::Status status = CatchUpRecords(); !status.ok()) {
    return status;
  }
  const auto& records = records_->tasks();
  auto record = records.find(index);
  if (record != records.end() && record->second.graph != fingerprint_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", index, "'s last checkpoint record was committed by another graph (fingerprint ",
        record->second.graph, ", this process has ", fingerprint_, ")"));
  }
  if (record != records.end() && record->second.final) {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_[index] = std::move(task);  // its input ended: nothing to run
    return absl::OkStatus();
  }
  task->run.task = index;
  task->run.remote = task->transport.get();
  task->run.restore_checkpoint = record != records.end() ? record->second.checkpoint_id : 0;
  TaskTransport* raw = task->transport.get();
  task->run.commit = [raw](int64_t id, bool final) { return raw->Commit(id, final); };
  PipelineOptions task_options = options_;
  task_options.cluster = ClusterOptions{};
  task_options.parallelism = options_.cluster.tasks;
  task_options.job_name = absl::StrCat(options_.cluster.job_id, "-task-", index);
  task_options.http_port = -1;
  absl::StatusOr<std::shared_ptr<internal::Job>> job =
      internal::Job::Start(task_options, *graph_, &task->run);
  if (!job.ok()) return job.status();
  task->job = *std::move(job);
  std::lock_guard<std::mutex> lock(mutex_);
  tasks_[index] = std::move(task);
  return absl::OkStatus();
}

void ClusterJob::StopTask(int index, bool commit) {
  std::unique_ptr<Task> task;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = tasks_.find(index);
    if (it == tasks_.end()) return;
    task = std::move(it->second);
    tasks_.erase(it);
  }
  if (task->job != nullptr && !task->job->done()) {
    bool finishing = false;
    if (commit) {
      task->job->Quiesce();
      absl::StatusOr<int64_t> checkpoint = task->job->TriggerCheckpoint();
      // A task whose input ended is taking its final checkpoint: let it end
      // by itself. Cancelled between that checkpoint's commit and its sinks'
      // commits, it would lose their output: a final task is not run again.
      finishing = task->job->input_ended();
      if (!checkpoint.ok() && !finishing) {
        Log("cluster job '", options_.cluster.job_id, "' task ", index,
            ": the checkpoint before giving it up failed (its next owner resumes from the one "
            "before): ",
            checkpoint.status().ToString());
      }
    }
    if (!finishing) task->job->Cancel();
  }
  if (task->job != nullptr) {
    if (commit) {
      EndTask(*task);
    } else {
      absl::Status status = task->job->Wait();
      if (!status.ok() && !absl::IsCancelled(status)) Fail(status);
    }
  }
}

void ClusterJob::EndTask(Task& task) {
  absl::Status status = task.job->Wait();
  if (!status.ok()) {
    if (!absl::IsCancelled(status)) Fail(status);
    return;
  }
  if (!task.transport->final_pending()) return;
  // The task's job ended after its final checkpoint's sinks committed: only
  // now may nobody run it again.
  status = task.transport->MarkFinal();
  if (!status.ok()) Fail(status);
}

void ClusterJob::Fail(const absl::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.ok()) failure_ = status;
  }
  cancel_.store(true);
}

std::vector<int> ClusterJob::OwnedTasks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<int> owned;
  for (const auto& [index, task] : tasks_) owned.push_back(index);
  return owned;
}

absl::Status ClusterJob::CatchUpRecords() {
  absl::Status status = records_->CatchUp(options_.cluster.broker_timeout);
  std::lock_guard<std::mutex> lock(mutex_);
  records_seen_ = records_->tasks();
  return status;
}

bool ClusterJob::JobFinished() {
  absl::Status status = CatchUpRecords();
  if (!status.ok()) {
    Log("cluster job '", options_.cluster.job_id,
        "': reading the checkpoint records: ", status.ToString());
    return false;
  }
  const auto& records = records_->tasks();
  for (int task = 0; task < options_.cluster.tasks; ++task) {
    auto it = records.find(task);
    if (it == records.end() || !it->second.final) return false;
  }
  return true;
}

void ClusterJob::Loop() {
  auto last_check = std::chrono::steady_clock::now();
  while (!stop_.load() && !cancel_.load()) {
    // Short: a task's end and then the job's are seen within 20-50 ms.
    kinternal::MessagePtr message(rd_kafka_consumer_poll(lease_.get(), 20));
    if (message != nullptr && message->err && message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      Log("cluster job '", options_.cluster.job_id,
          "': task lease: ", rd_kafka_message_errstr(message.get()));
    }
    // A task that failed fails this process's share of the job; one that
    // ended gets its final record. (Only this thread removes tasks.)
    std::vector<Task*> finished;
    bool any_running = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [index, task] : tasks_) {
        if (task->job == nullptr) continue;
        if (task->job->done()) {
          finished.push_back(task.get());
        } else {
          any_running = true;
        }
      }
    }
    for (Task* task : finished) EndTask(*task);
    const auto now = std::chrono::steady_clock::now();
    if (!any_running && now - last_check > std::chrono::milliseconds(50)) {
      last_check = now;
      if (JobFinished()) break;
    }
  }
  // Leaving: a graceful stop commits each task (in the revoke callback); a
  // cancel or a failure does not.
  if (cancel_.load()) {
    std::vector<int> owned = OwnedTasks();
    for (int task : owned) StopTask(task, /*commit=*/false);
  }
  LeaveGroup();
  rd_kafka_consumer_close(lease_.get());
  for (int task : OwnedTasks()) StopTask(task, /*commit=*/!cancel_.load());
  done_.store(true);
}

void ClusterJob::LeaveGroup() {
  // librdkafka 2.0's consumer_close can hang when an incremental assignment
  // arrives while it closes (confluentinc/librdkafka#4527), as when other
  // processes join just as this one stops. So unsubscribe first and serve
  // the consumer until the revocation (and with it each task's commit in
  // the rebalance callback) has run; then close has nothing left to revoke.
  if (rd_kafka_resp_err_t err = rd_kafka_unsubscribe(lease_.get())) {
    Log("cluster job '", options_.cluster.job_id,
        "': leaving the group: unsubscribe: ", rd_kafka_err2str(err));
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        absl::ToChronoMilliseconds(options_.cluster.session_timeout +
                                                   options_.cluster.broker_timeout);
  while (std::chrono::steady_clock::now() < deadline) {
    kinternal::MessagePtr message(rd_kafka_consumer_poll(lease_.get(), 20));
    rd_kafka_topic_partition_list_t* assignment = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_assignment(lease_.get(), &assignment);
    const bool empty =
        err == RD_KAFKA_RESP_ERR_NO_ERROR && (assignment == nullptr || assignment->cnt == 0);
    if (assignment != nullptr) rd_kafka_topic_partition_list_destroy(assignment);
    if (empty) return;
  }
  Log("cluster job '", options_.cluster.job_id,
      "': leaving the group: tasks still assigned after the session timeout; closing anyway");
}

ClusterJob::~ClusterJob() {
  if (server_ != nullptr) server_->Stop();
  Cancel();
  (void)Wait();
}

void ClusterJob::Stop() { stop_.store(true); }

void ClusterJob::Cancel() {
  if (!done_.load()) cancel_.store(true);
}

absl::Status ClusterJob::Wait() {
  std::lock_guard<std::mutex> wait_lock(wait_mutex_);
  if (!joined_) {
    if (thread_.joinable()) thread_.join();
    joined_ = true;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_.ok()) return failure_;
  if (cancel_.load() && !stop_.load()) return absl::CancelledError("the job was cancelled");
  return absl::OkStatus();
}

MetricsSnapshot ClusterJob::Metrics() const {
  MetricsSnapshot merged;
  merged.timestamp_ms = absl::ToUnixMillis(absl::Now());
  std::lock_guard<std::mutex> lock(mutex_);
  const MetricLabels job = {{"job", options_.cluster.job_id}};
  auto gauge = [&](std::string name, std::string help, MetricType type) -> MetricFamily& {
    merged.families.push_back(
        MetricFamily{.name = std::move(name), .help = std::move(help), .type = type});
    return merged.families.back();
  };
  auto with_task = [&](int task) {
    MetricLabels labels = job;
    labels.emplace_back("task", absl::StrCat(task));
    return labels;
  };
  gauge("weir_cluster_owned_tasks", "Tasks this process runs", MetricType::kGauge)
      .series.push_back({.labels = job, .value = static_cast<double>(tasks_.size())});
  MetricFamily& owned =
      gauge("weir_cluster_task_owned", "1 for each task this process runs", MetricType::kGauge);
  for (const auto& [index, task] : tasks_)
    owned.series.push_back({.labels = with_task(index), .value = 1});
  gauge("weir_cluster_rebalances_total", "Task assignments and revocations seen",
        MetricType::kCounter)
      .series.push_back({.labels = job, .value = static_cast<double>(rebalances_)});
  gauge("weir_cluster_last_rebalance_seconds", "How long the last rebalance took here",
        MetricType::kGauge)
      .series.push_back({.labels = job, .value = last_rebalance_seconds_});
  gauge("weir_cluster_last_rebalance_timestamp_ms", "When the last rebalance happened",
        MetricType::kGauge)
      .series.push_back({.labels = job, .value = static_cast<double>(last_rebalance_ms_)});
  MetricFamily& last =
      gauge("weir_cluster_task_last_checkpoint",
            "The checkpoint each task's newest record committed", MetricType::kGauge);
  for (const auto& [index, record] : records_seen_) {
    last.series.push_back(
        {.labels = with_task(index), .value = static_cast<double>(record.checkpoint_id)});
  }
  MetricFamily& lag = gauge("weir_cluster_repartition_lag",
                            "Messages of a repartition topic a task has not read yet (-1: unknown)",
                            MetricType::kGauge);
  for (const auto& [index, task] : tasks_) {
    if (task->job == nullptr) continue;
    for (const RepartitionLag& topic : task->transport->Lags()) {
      MetricLabels labels = with_task(index);
      labels.emplace_back("topic", topic.topic);
      lag.series.push_back({.labels = std::move(labels), .value = static_cast<double>(topic.lag)});
    }
  }
  for (const auto& [index, task] : tasks_) {
    if (task->job == nullptr) continue;
    MetricsSnapshot snapshot = task->job->Metrics();
    for (MetricFamily& family : snapshot.families) {
      MetricFamily* into = nullptr;
      for (MetricFamily& existing : merged.families) {
        if (existing.name == family.name) into = &existing;
      }
      if (into == nullptr) {
        merged.families.push_back(std::move(family));
      } else {
        for (auto& series : family.series) into->series.push_back(std::move(series));
      }
    }
  }
  return merged;
}

int64_t ClusterJob::last_completed_checkpoint() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t newest = 0;
  for (const auto& [index, task] : tasks_) {
    if (task->job != nullptr) newest = std::max(newest, task->job->last_completed_checkpoint());
  }
  return newest;
}

int64_t ClusterJob::restored_checkpoint() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t newest = 0;
  for (const auto& [index, task] : tasks_) {
    if (task->job != nullptr) newest = std::max(newest, task->job->restored_checkpoint());
  }
  return newest;
}

absl::StatusOr<int64_t> ClusterJob::TriggerCheckpoint() {
  std::vector<std::shared_ptr<internal::Job>> jobs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [index, task] : tasks_) {
      if (task->job != nullptr && !task->job->done()) jobs.push_back(task->job);
    }
  }
  int64_t newest = 0;
  for (const auto& job : jobs) {
    absl::StatusOr<int64_t> id = job->TriggerCheckpoint();
    if (!id.ok()) return id.status();
    newest = std::max(newest, *id);
  }
  return newest;
}

std::string ClusterJob::PrometheusText() const { return Metrics().ToPrometheusText(); }

bool ClusterJob::Healthy(std::string* reason) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failure_.ok()) {
    *reason = "ok";
    return true;
  }
  *reason = absl::StrCat("failed: ", failure_.ToString());
  return false;
}

bool ClusterJob::Ready(std::string* reason) const {
  std::string health;
  if (!Healthy(&health)) {
    *reason = health;
    return false;
  }
  if (done_.load()) {
    *reason = "finished";
    return false;
  }
  const std::vector<int> owned = OwnedTasks();
  *reason = owned.empty() ? "running no task (every task runs elsewhere)"
                          : absl::StrCat("running task(s) ", absl::StrJoin(owned, ", "));
  return true;
}

std::string ClusterJob::JobJson() const {
  std::string base;
  std::vector<int> owned;
  std::map<int, TaskCheckpoint> records;
  std::vector<std::pair<int, RepartitionLag>> lags;
  int64_t rebalances = 0;
  int64_t last_rebalance_ms = 0;
  double last_rebalance_seconds = 0;
  std::string failure;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [index, task] : tasks_) {
      owned.push_back(index);
      if (task->job == nullptr) continue;
      if (base.empty()) base = task->job->JobJson();
      for (RepartitionLag& lag : task->transport->Lags()) lags.emplace_back(index, std::move(lag));
    }
    records = records_seen_;
    rebalances = rebalances_;
    last_rebalance_ms = last_rebalance_ms_;
    last_rebalance_seconds = last_rebalance_seconds_;
    if (!failure_.ok()) failure = failure_.ToString();
  }
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  if (base.empty()) {
    // No task runs here: the job's facts, and no graph to draw.
    json::Writer json(base);
    json.BeginObject();
    json.Key("job").BeginObject();
    json.Member("name", options_.cluster.job_id);
    json.Member("status", !failure.empty() ? "failed" : done_.load() ? "finished" : "running");
    json.Member("ready", failure.empty() && !done_.load());
    json.Member("healthy", failure.empty());
    json.Member("error", failure);
    json.Member("parallelism", 0);
    json.Member("max_parallelism", options_.max_parallelism);
    json.Member("state_backend", options_.state_backend.is_rocksdb() ? "rocksdb" : "memory");
    json.Member("checkpointing", true);
    json.Member("started_ms", now_ms);
    json.Member("now_ms", now_ms);
    json.EndObject();
    json.Key("graph").BeginObject();
    json.Key("nodes").BeginArray().EndArray();
    json.Key("edges").BeginArray().EndArray();
    json.EndObject();
    json.Key("workers").BeginArray().EndArray();
    json.Key("checkpoints").BeginObject().Member("enabled", false).EndObject();
    json.Key("history").BeginArray().EndArray();
    json.EndObject();
  }
  std::string cluster;
  json::Writer json(cluster);
  json.BeginObject();
  json.Member("job_id", options_.cluster.job_id);
  json.Member("instance_id", options_.cluster.instance_id);
  json.Member("tasks", options_.cluster.tasks);
  json.Key("owned").BeginArray();
  for (int task : owned) json.Int(task);
  json.EndArray();
  json.Member("rebalances", rebalances);
  json.Member("last_rebalance_ms", last_rebalance_ms);
  json.Member("last_rebalance_seconds", last_rebalance_seconds);
  json.Key("task_checkpoints").BeginArray();
  for (const auto& [task, record] : records) {
    json.BeginObject()
        .Member("task", task)
        .Member("checkpoint", record.checkpoint_id)
        .Member("final", record.final)
        .Member("committed_ms", record.committed_ms)
        .EndObject();
  }
  json.EndArray();
  json.Key("repartition_lag").BeginArray();
  for (const auto& [task, lag] : lags) {
    json.BeginObject().Member("task", task).Member("topic", lag.topic).Member("lag", lag.lag);
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  // Splice the cluster member into the task's object.
  base.pop_back();
  base += ",\"cluster\":";
  base += cluster;
  base += "}";
  return base;
}

namespace {
const bool kRegistered = (internal::RegisterClusterStarter(&ClusterJob::Start), true);
}  // namespace

}  // namespace weir::cluster

// The symbol weir::kafka's INTERFACE link option keeps (see cluster_job.h).
extern "C" bool weir_link_kafka_cluster();
extern "C" bool weir_link_kafka_cluster() { return weir::cluster::kRegistered; }
