// Cluster mode: one job run by many processes, with Kafka as the distributed
// engine (the way Kafka Streams scales out). Every process starts the same
// program with the same ClusterOptions::job_id; together they run the job's
// `tasks` tasks. Needs the weir::kafka component.
//
// A task is subtask i of every operator (what a worker is in local mode).
// Processes share the tasks through a Kafka consumer group on the topic
// `<job_id>-tasks` (one partition per task): owning partition i is running
// task i. KeyBy and Broadcast become topics `<job_id>-<exchange>-repartition`
// with one partition per task. Each task checkpoints on its own: its state to
// the shared checkpoint storage (CheckpointOptions::storage_uri, which every
// process must reach: S3 or a shared directory), then one Kafka transaction
// commits its output to the repartition topics and a checkpoint record in
// `<job_id>-checkpoints`. When a process leaves or dies, its tasks restart
// elsewhere from their last committed checkpoint.
//
// Example:
//
//   weir::PipelineOptions options;
//   options.cluster = {.brokers = "kafka-1:9092,kafka-2:9092", .job_id = "engagement",
//                      .tasks = 8};
//   options.checkpoints = {.storage_uri = "s3://bucket/weir", .interval = absl::Seconds(10)};
//   weir::Pipeline pipeline(options);
//   ...                                    // the same graph in every process
//   absl::Status status = pipeline.Run();  // until every task's input ended

#ifndef WEIR_CLUSTER_H_
#define WEIR_CLUSTER_H_

#include <map>
#include <string>

#include "absl/time/time.h"

namespace weir {

struct ClusterOptions {
  // Kafka's bootstrap servers. Empty: local mode (the default).
  std::string brokers;
  // Names the job in every process: its consumer group, its topics' prefix,
  // its checkpoints. Required in cluster mode: [A-Za-z0-9._-], at most 200
  // characters.
  std::string job_id;
  // Optional: a stable id of this process (group.instance.id, static
  // membership): a restart within the session timeout keeps its tasks.
  std::string instance_id;
  // The number of tasks, fixed for the job's life like a topic's partition
  // count (PipelineOptions::parallelism is ignored in cluster mode).
  int tasks = 0;
  // How long a process may be silent before its tasks move elsewhere.
  // Default: 10 s
  absl::Duration session_timeout = absl::Seconds(10);
  // How long Start() waits for the brokers (topic metadata, the checkpoint
  // records) before it fails with kUnavailable.
  // Default: 30 s
  absl::Duration broker_timeout = absl::Seconds(30);
  // librdkafka properties for every client the cluster creates (security,
  // timeouts), passed through unchanged.
  std::map<std::string, std::string> properties;

  bool enabled() const { return !brokers.empty(); }
};

}  // namespace weir

#endif  // WEIR_CLUSTER_H_
