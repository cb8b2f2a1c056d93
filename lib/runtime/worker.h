// Worker: the cooperative loop one thread runs over its share of every
// operator.

#ifndef WEIR_LIB_RUNTIME_WORKER_H_
#define WEIR_LIB_RUNTIME_WORKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "weir/internal/graph.h"
#include "weir/internal/operator.h"
#include "weir/metrics.h"

namespace weir::internal {

class JobShared;
class WorkerSignal;

// Where one worker's time goes, in nanoseconds. Written by the worker only
// (relaxed load + store), read by the metrics.
//   busy:          a pass of the loop that moved data, fired timers or polled
//                  sources that emitted;
//   backpressured: a pass (or sleep) with nothing done while a batch waits
//                  for ring space, so the sources are not polled;
//   idle:          a pass (or sleep) with nothing to do.
struct alignas(kMetricAlignment) WorkerMetrics {
  std::atomic<int64_t> busy_ns{0};
  std::atomic<int64_t> idle_ns{0};
  std::atomic<int64_t> backpressured_ns{0};
  // Whether the worker is backpressured right now.
  std::atomic<bool> backpressured{false};
};

// Owns the physical operators of one worker and drives them:
//   1. move held-back batches into exchange rings that have room;
//   2. drain incoming rings (bounded per ring, for fairness);
//   3. poll sources, unless a batch is still held back (backpressure);
//   4. fire due processing-time timers;
//   5. sleep briefly when nothing moved.
// It never blocks on a full ring, so it cannot deadlock.
class Worker {
 public:
  Worker(WorkerBuilder&& built, WorkerSignal& signal, WorkerMetrics& metrics);

  // Opens every operator (on the starting thread).
  absl::Status Open();
  // Runs until all input ended (and, with checkpointing, the job released
  // its workers), or the job aborts. Returns the first failure.
  absl::Status Run(JobShared& job);
  // Closes every operator; returns the first error.
  absl::Status Close();

 private:
  bool Finished() const;
  // Snapshots operators that ended (their barrier will never come) and
  // delivers checkpoint completions.
  void ServeCheckpoints(JobShared& job);

  WorkerSignal& signal_;
  WorkerMetrics& metrics_;
  std::vector<std::unique_ptr<OperatorBase>> operators_;
  std::vector<std::unique_ptr<SenderBase>> senders_;
  std::vector<SourceTaskBase*> sources_;
  std::vector<ReceiverBase*> receivers_;
  std::vector<ProcessingTimeDriven*> processing_timers_;
  const WorkerEnv& env_;
  int64_t all_acknowledged_ = 0;
  int64_t notified_ = 0;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_RUNTIME_WORKER_H_
