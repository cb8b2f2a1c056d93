#include "weir/pipeline.h"

#include <utility>

#include "lib/runtime/job.h"

namespace weir {

Pipeline::Pipeline(PipelineOptions options)
    : options_(std::move(options)), graph_(std::make_unique<internal::Graph>()) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

absl::StatusOr<JobHandle> Pipeline::Start() {
  absl::StatusOr<std::shared_ptr<internal::Job>> job = internal::Job::Start(options_, *graph_);
  if (!job.ok()) return job.status();
  return JobHandle(*std::move(job));
}

absl::Status Pipeline::Run() {
  absl::StatusOr<JobHandle> job = Start();
  if (!job.ok()) return job.status();
  return job->Wait();
}

JobHandle::JobHandle(std::shared_ptr<internal::Job> job) : job_(std::move(job)) {}
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
