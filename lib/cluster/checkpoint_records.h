// The records of the topic `<job>-checkpoints`: per task, the newest
// checkpoint its Kafka transaction committed (the record *is* the
// checkpoint: state in storage newer than it was never committed), and the
// job graph's fingerprint, so that processes running another graph under
// the same job id are refused.
//
// Key "task-<i>", value "weir-checkpoint v1 task=<i> checkpoint=<id>
// final=<0|1> graph=<fingerprint> committed_ms=<ms>".
// Key "graph", value "weir-graph v1 graph=<fingerprint> tasks=<T>".

#ifndef WEIR_LIB_CLUSTER_CHECKPOINT_RECORDS_H_
#define WEIR_LIB_CLUSTER_CHECKPOINT_RECORDS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/connectors/kafka/client.h"
#include "weir/cluster.h"

namespace weir::internal {
class Graph;
}  // namespace weir::internal

namespace weir::cluster {

struct TaskCheckpoint {
  int task = 0;
  int64_t checkpoint_id = 0;
  // The task's job ended after this checkpoint and its sinks committed it:
  // the task is never run again. Written in a record of its own, after the
  // checkpoint's (not final) record.
  bool final = false;
  std::string graph;
  int64_t committed_ms = 0;
};

std::string TaskKey(int task);
std::string EncodeTaskCheckpoint(const TaskCheckpoint& record);
absl::StatusOr<TaskCheckpoint> DecodeTaskCheckpoint(absl::string_view value);

// A stable fingerprint of what the job runs: every node's kind, identity and
// inputs, the task count and max_parallelism.
std::string GraphFingerprint(const internal::Graph& graph, int tasks, int max_parallelism);

// Reads `<job>-checkpoints` (read_committed) up to its end as of now.
class CheckpointRecordReader {
 public:
  static absl::StatusOr<std::unique_ptr<CheckpointRecordReader>> Create(
      const ClusterOptions& options);
  ~CheckpointRecordReader();
  // Reads what was committed since the last call, up to the topic's current end.
  absl::Status CatchUp(absl::Duration timeout);
  const std::map<int, TaskCheckpoint>& tasks() const { return tasks_; }
  // The fingerprint of the graph record ("" when none).
  const std::string& graph() const { return graph_; }
  int graph_tasks() const { return graph_tasks_; }

 private:
  explicit CheckpointRecordReader(kafka::internal::HandlePtr consumer, std::string topic);
  kafka::internal::HandlePtr consumer_;
  std::string topic_;
  std::map<int, TaskCheckpoint> tasks_;
  std::string graph_;
  int graph_tasks_ = 0;
};

// Writes the graph record (once, by the first process of a job).
absl::Status WriteGraphRecord(const ClusterOptions& options, const std::string& fingerprint);

// The librdkafka configuration of a cluster client.
absl::StatusOr<kafka::internal::ConfPtr> ClusterConf(
    const ClusterOptions& options, const std::map<std::string, std::string>& defaults,
    absl::string_view what);

}  // namespace weir::cluster

#endif  // WEIR_LIB_CLUSTER_CHECKPOINT_RECORDS_H_
