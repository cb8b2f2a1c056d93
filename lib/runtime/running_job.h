// RunningJob: what a JobHandle controls, a local job (Job) or a cluster-mode
// job (lib/cluster); and where the cluster component registers itself, so
// that the core links no Kafka client.

#ifndef WEIR_LIB_RUNTIME_RUNNING_JOB_H_
#define WEIR_LIB_RUNTIME_RUNNING_JOB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/metrics.h"

namespace weir {
struct PipelineOptions;
}  // namespace weir

namespace weir::internal {

class Graph;

class RunningJob {
 public:
  virtual ~RunningJob() = default;
  virtual void Stop() = 0;
  virtual void Cancel() = 0;
  virtual absl::Status Wait() = 0;
  virtual bool done() const = 0;
  virtual MetricsSnapshot Metrics() const = 0;
  virtual int http_port() const = 0;
  virtual int64_t last_completed_checkpoint() const = 0;
  virtual int64_t restored_checkpoint() const = 0;
  virtual absl::StatusOr<int64_t> TriggerCheckpoint() = 0;
};

// Starts a cluster-mode job (PipelineOptions::cluster). The graph stays
// alive as long as the job: tasks are instantiated from it as they move.
using ClusterStarter = absl::StatusOr<std::shared_ptr<RunningJob>> (*)(
    const PipelineOptions& options, std::shared_ptr<const Graph> graph);

// The topics of cluster-mode job `job_id`: the task leases (one partition
// per task), the checkpoint records (one, compacted), and a repartition
// topic per exchange (one partition per task).
std::string ClusterLeaseTopic(const std::string& job_id);
std::string ClusterCheckpointTopic(const std::string& job_id);
std::string ClusterRepartitionTopic(const std::string& job_id, const std::string& exchange);
// Every topic of `options.cluster`'s job running `graph`, with its partition
// count (Pipeline::ClusterTopics).
std::vector<std::pair<std::string, int>> ClusterTopics(const PipelineOptions& options,
                                                       const Graph& graph);

// Called from the cluster component's static initializer (weir::kafka).
void RegisterClusterStarter(ClusterStarter starter);
ClusterStarter FindClusterStarter();

}  // namespace weir::internal

#endif  // WEIR_LIB_RUNTIME_RUNNING_JOB_H_
