#include "weir/pipeline.h"

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "lib/runtime/job.h"
#include "lib/runtime/running_job.h"
#include "weir/internal/remote_exchange.h"

namespace weir {

namespace internal {

namespace {
std::atomic<ClusterStarter> cluster_starter{nullptr};
}  // namespace

void RegisterClusterStarter(ClusterStarter starter) { cluster_starter.store(starter); }
ClusterStarter FindClusterStarter() { return cluster_starter.load(); }

std::string ClusterLeaseTopic(const std::string& job_id) { return job_id + "-tasks"; }
std::string ClusterCheckpointTopic(const std::string& job_id) { return job_id + "-checkpoints"; }
std::string ClusterRepartitionTopic(const std::string& job_id, const std::string& exchange) {
  return job_id + "-" + exchange + "-repartition";
}

std::vector<std::pair<std::string, int>> ClusterTopics(const PipelineOptions& options,
                                                       const Graph& graph) {
  const ClusterOptions& cluster = options.cluster;
  std::vector<std::pair<std::string, int>> topics = {
      {ClusterLeaseTopic(cluster.job_id), cluster.tasks},
      {ClusterCheckpointTopic(cluster.job_id), 1}};
  for (const auto& node : graph.nodes()) {
    if (!node->exchange) continue;
    topics.emplace_back(ClusterRepartitionTopic(
                            cluster.job_id, RemoteExchanges::ExchangeName(node->kind, node->id)),
                        cluster.tasks);
  }
  return topics;
}

}  // namespace internal

Pipeline::Pipeline(PipelineOptions options)
    : options_(std::move(options)), graph_(std::make_shared<internal::Graph>()) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

absl::StatusOr<JobHandle> Pipeline::Start() {
  if (options_.cluster.enabled()) {
    internal::ClusterStarter starter = internal::FindClusterStarter();
    if (starter == nullptr) {
      return absl::FailedPreconditionError(
          "PipelineOptions::cluster is set, but cluster mode lives in the weir::kafka component, "
          "which this program does not link: link weir::kafka (or weir::weir)");
    }
    absl::StatusOr<std::shared_ptr<internal::RunningJob>> job = starter(options_, graph_);
    if (!job.ok()) return job.status();
    return JobHandle(*std::move(job));
  }
  absl::StatusOr<std::shared_ptr<internal::Job>> job = internal::Job::Start(options_, *graph_);
  if (!job.ok()) return job.status();
  return JobHandle(*std::move(job));
}

absl::StatusOr<std::vector<std::pair<std::string, int>>> Pipeline::ClusterTopics() const {
  if (!options_.cluster.enabled()) {
    return absl::FailedPreconditionError(
        "ClusterTopics: PipelineOptions::cluster is not set (a local job uses no topics of its "
        "own)");
  }
  if (!graph_->error().ok()) return graph_->error();
  return internal::ClusterTopics(options_, *graph_);
}

absl::Status Pipeline::Run() {
  absl::StatusOr<JobHandle> job = Start();
  if (!job.ok()) return job.status();
  return job->Wait();
}

JobHandle::JobHandle(std::shared_ptr<internal::RunningJob> job) : job_(std::move(job)) {}
JobHandle::JobHandle(JobHandle&&) noexcept = default;
JobHandle& JobHandle::operator=(JobHandle&&) noexcept = default;
JobHandle::~JobHandle() = default;

void JobHandle::Stop() { job_->Stop(); }
void JobHandle::Cancel() { job_->Cancel(); }
absl::Status JobHandle::Wait() { return job_->Wait(); }
bool JobHandle::done() const { return job_->done(); }
MetricsSnapshot JobHandle::Metrics() const { return job_->Metrics(); }
int JobHandle::http_port() const { return job_->http_port(); }
int64_t JobHandle::last_completed_checkpoint() const { return job_->last_completed_checkpoint(); }
int64_t JobHandle::restored_checkpoint() const { return job_->restored_checkpoint(); }
absl::StatusOr<int64_t> JobHandle::TriggerCheckpoint() { return job_->TriggerCheckpoint(); }

}  // namespace weir
