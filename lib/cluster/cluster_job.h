// ClusterJob: this process's share of a cluster-mode job. It joins the job's
// consumer group on the lease topic (cooperative-sticky), runs one local Job
// per task it owns (lib/runtime/job.h, TaskRun), commits a task's checkpoint
// in the task's Kafka transaction, and follows the checkpoint records to see
// the whole job end.
//
// Ownership changes: an assigned task creates its producer (fencing the
// previous owner), reads its last committed checkpoint record and restores
// that checkpoint; a revoked task takes a checkpoint (committed) and stops; a
// lost task (this process was thrown out of the group) stops without
// committing.

#ifndef WEIR_LIB_CLUSTER_CLUSTER_JOB_H_
#define WEIR_LIB_CLUSTER_CLUSTER_JOB_H_

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/cluster/checkpoint_records.h"
#include "lib/cluster/task_transport.h"
#include "lib/connectors/kafka/client.h"
#include "lib/metrics/http_server.h"
#include "lib/runtime/job.h"
#include "lib/runtime/running_job.h"
#include "weir/internal/graph.h"
#include "weir/pipeline.h"

namespace weir::cluster {

class ClusterJob final : public internal::RunningJob, public internal::JobEndpoint {
 public:
  static absl::StatusOr<std::shared_ptr<internal::RunningJob>> Start(
      const PipelineOptions& options, std::shared_ptr<const internal::Graph> graph);
  ~ClusterJob() override;

  // Leaves the group: every task takes a committed checkpoint and stops.
  void Stop() override;
  // Stops every task without committing, and leaves the group.
  void Cancel() override;
  absl::Status Wait() override;
  bool done() const override { return done_.load(); }
  MetricsSnapshot Metrics() const override;
  // PipelineOptions::http_port: this process's share, served as a local job
  // serves itself (see JobJson).
  int http_port() const override { return server_ == nullptr ? -1 : server_->port(); }
  int64_t last_completed_checkpoint() const override;
  int64_t restored_checkpoint() const override;
  absl::StatusOr<int64_t> TriggerCheckpoint() override;

  // Besides every task's own metrics: weir_cluster_owned_tasks,
  // weir_cluster_task_owned{task}, weir_cluster_rebalances_total,
  // weir_cluster_last_rebalance_seconds, weir_cluster_last_rebalance_timestamp_ms and
  // weir_cluster_task_last_checkpoint{task} (the id each task's newest record committed)
  // and weir_cluster_repartition_lag{task, topic} (messages a task has not read yet).
  // The tasks this process runs now.
  std::vector<int> OwnedTasks() const;

  // JobEndpoint. /api/v1/job is the JSON of the lowest task this process
  // runs (a local job's, so the dashboard draws it) with a "cluster" member:
  // the job id, this instance, its tasks, the rebalances, every task's last
  // committed checkpoint and the repartition lag of the tasks it runs.
  std::string PrometheusText() const override;
  std::string JobJson() const override;
  bool Healthy(std::string* reason) const override;
  bool Ready(std::string* reason) const override;

 private:
  struct Task {
    int index = 0;
    std::unique_ptr<TaskTransport> transport;
    std::shared_ptr<internal::Job> job;
    internal::TaskRun run;
  };

  ClusterJob(const PipelineOptions& options, std::shared_ptr<const internal::Graph> graph,
             std::string fingerprint);
  absl::Status Join();
  void Loop();
  static void RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void OnRebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
  absl::Status StartTask(int index);
  // Takes a committed checkpoint (if `commit`) and stops task `index`.
  void StopTask(int index, bool commit);
  // Waits for `task`'s job; a failure fails the process. A job that ended
  // after its final checkpoint gets the task's final record, once its
  // two-phase sinks have committed that checkpoint.
  void EndTask(Task& task);
  // Unsubscribes and serves the lease consumer until nothing is assigned
  // (each revoked task committed or dropped), before it is closed.
  void LeaveGroup();
  void Fail(const absl::Status& status);
  // True once every task's newest record is final.
  bool JobFinished();
  // records_->CatchUp, then a copy of what it read for Metrics().
  absl::Status CatchUpRecords();

  PipelineOptions options_;
  std::shared_ptr<const internal::Graph> graph_;
  std::string fingerprint_;
  kafka::internal::HandlePtr lease_;
  std::unique_ptr<CheckpointRecordReader> records_;
  std::thread thread_;

  mutable std::mutex mutex_;  // guards tasks_, failure_, records_seen_ and the rebalance figures
  std::map<int, std::unique_ptr<Task>> tasks_;
  // The newest checkpoint record of every task, as last read (for Metrics).
  std::map<int, TaskCheckpoint> records_seen_;
  int64_t rebalances_ = 0;
  int64_t last_rebalance_ms_ = 0;
  double last_rebalance_seconds_ = 0;
  absl::Status failure_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cancel_{false};
  std::atomic<bool> done_{false};
  std::mutex wait_mutex_;
  bool joined_ = false;
  std::unique_ptr<internal::HttpServer> server_;  // stopped first in the destructor
};

}  // namespace weir::cluster

#endif  // WEIR_LIB_CLUSTER_CLUSTER_JOB_H_
