// The Kafka side of one cluster-mode task: its transactional producer (the
// transactional id is the job's and the task's, so a new owner fences the
// old one), the repartition topics its exchanges write and read, and the
// checkpoint record it commits with each checkpoint.

#ifndef WEIR_LIB_CLUSTER_TASK_TRANSPORT_H_
#define WEIR_LIB_CLUSTER_TASK_TRANSPORT_H_

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/cluster/checkpoint_records.h"
#include "lib/connectors/kafka/client.h"
#include "weir/cluster.h"
#include "weir/internal/remote_exchange.h"

namespace weir::cluster {

// How far a task's receiver is behind in its partition of a repartition topic.
struct RepartitionLag {
  std::string topic;
  int64_t lag = -1;  // messages; -1: not known yet
};

class TaskTransport final : public internal::RemoteExchanges {
 public:
  // Creates the task's producer and initializes its transactions, which
  // fences (and aborts the open transaction of) any earlier owner of the
  // task. Then begins the first transaction.
  static absl::StatusOr<std::unique_ptr<TaskTransport>> Create(const ClusterOptions& options,
                                                               int task,
                                                               std::string graph_fingerprint);
  ~TaskTransport() override;

  absl::StatusOr<std::unique_ptr<internal::RemoteEndpoint>> Open(
      const std::string& exchange, const std::string& position) override;

  // Commits the open transaction with the checkpoint record of checkpoint
  // `id` (its records before the barrier are in it) and the offsets its
  // receivers consumed before the barrier (group `<job_id>-offsets`), then
  // begins the next. The record is never final: with `final` (the task's
  // input ended), MarkFinal() writes the final record once the task's job
  // has ended, after its sinks committed this checkpoint. Until then a next
  // owner runs the task again from this checkpoint, and its two-phase sinks
  // commit it again on restore.
  absl::Status Commit(int64_t id, bool final);
  // Whether the newest Commit was a final one that MarkFinal has not marked.
  bool final_pending() const { return final_pending_ > 0; }
  // Commits the final record of the checkpoint the last Commit(id, true)
  // named, in a transaction of its own. Only once the task's job has ended.
  absl::Status MarkFinal();
  // Aborts the open transaction (a task that stops without committing).
  void Abort();
  // Each exchange this task receives: its lag. Thread-safe while the task's
  // Job lives (its endpoints belong to it).
  std::vector<RepartitionLag> Lags() const;

 private:
  TaskTransport(const ClusterOptions& options, int task, std::string fingerprint,
                kafka::internal::HandlePtr producer);

  ClusterOptions options_;
  int task_;
  std::string fingerprint_;
  // Adds the offsets the receivers snapshotted to the open transaction, in
  // the group `<job_id>-offsets` (for lag tools; restores use the snapshot).
  absl::Status SendOffsets(const std::string& what);
  // Produces task's checkpoint record into the open transaction (with the
  // receivers' offsets if `send_offsets`), commits it and begins the next.
  absl::Status CommitRecord(int64_t id, bool final, bool send_offsets, const std::string& what);
  // Fetches `topic`'s metadata into the producer now and keeps the topic's
  // handle: a first produce to a topic the producer does not know yet waits
  // for its next metadata refresh (hundreds of ms), and a commit waits for
  // every produce.
  absl::Status KnowTopic(const std::string& topic, const std::string& what);

  kafka::internal::HandlePtr producer_;
  // The topics KnowTopic fetched, released before the producer.
  std::vector<rd_kafka_topic_t*> topics_;
  bool in_transaction_ = false;
  // The checkpoint a final Commit named, until MarkFinal (0: none).
  int64_t final_pending_ = 0;
  // The receiving ends of this task's exchanges (owned by its Job, which
  // ends before this transport).
  std::vector<const internal::RemoteEndpoint*> endpoints_;
};

}  // namespace weir::cluster

#endif  // WEIR_LIB_CLUSTER_TASK_TRANSPORT_H_
