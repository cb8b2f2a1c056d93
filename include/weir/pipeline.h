// Pipeline: builds a dataflow graph and runs it on worker threads.
//
// Every worker runs subtask i of every operator. Operators between two
// exchanges (KeyBy, Broadcast) run fused on the same thread; exchanges move
// batches between workers through bounded rings.
//
// Example:
//
//   weir::Pipeline pipeline({.parallelism = 2});
//   pipeline.Source(weir::testing::VectorSource<int>({1, 2, 3}))
//       .Map([](int x) { return x * 2; })
//       .Sink([](const int& x) { std::printf("%d\n", x); });
//   absl::Status status = pipeline.Run();       // blocks until the input ends
//
//   // or, for unbounded input:
//   absl::StatusOr<weir::JobHandle> job = pipeline.Start();
//   ...
//   job->Stop();                                // drain and finish
//   absl::Status status = job->Wait();

#ifndef WEIR_PIPELINE_H_
#define WEIR_PIPELINE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/checkpoint.h"
#include "weir/cluster.h"
#include "weir/internal/graph.h"
#include "weir/metrics.h"
#include "weir/source.h"
#include "weir/state.h"
#include "weir/stream.h"
#include "weir/time.h"

namespace weir {

struct PipelineOptions {
  // Number of worker threads; every operator runs once per worker.
  // Default: 1
  int parallelism = 1;
  // Where keyed state lives: StateBackend::Memory() or StateBackend::RocksDb(dir).
  // Default: memory
  StateBackend state_backend = StateBackend::Memory();
  // Periodic checkpoints and the storage they go to. With a storage set, the
  // job restores from its newest complete checkpoint when it starts, and
  // takes a final checkpoint when its input ends (or on Stop()), so
  // two-phase sinks commit everything.
  // Default: off
  CheckpointOptions checkpoints;
  // A restore matches checkpointed state to operators by uid (Stream::Uid,
  // SinkHandle::Uid). State that no operator of this pipeline claims (its
  // operator was removed, or its uid changed) fails Start() with
  // kFailedPrecondition naming each such uid, since starting would drop it.
  // True starts anyway, drops that state and logs each uid dropped.
  // Default: false
  bool allow_non_restored_state = false;
  // Number of key groups: the unit in which keys (and later keyed state) are
  // distributed over workers, and the largest parallelism a job can use.
  // Must be in [parallelism, 32768].
  // Default: 128
  int max_parallelism = 128;
  // Records per batch handed between operators and workers.
  // Default: 1024
  size_t batch_size = 1024;
  // Capacity, in batches, of the ring between each pair of workers in an
  // exchange. Full rings backpressure the sources.
  // Default: 64
  size_t queue_capacity = 64;
  // How fast each keyed operator instance visits its keys during a replay
  // (ReplayService in weir/sink.h): the replay runs beside normal records
  // and never takes a worker for long.
  // Default: 20000 keys per second
  int64_t replay_keys_per_second = 20000;
  // The job's name, used in errors and metrics.
  // Default: "weir"
  std::string job_name = "weir";
  // Cluster mode (weir/cluster.h): with brokers set, this process runs a
  // share of the job's tasks, together with every process started with the
  // same job id. Needs checkpoint storage every process reaches and the
  // weir::kafka component. Default: off (local mode).
  ClusterOptions cluster;
  // Serves the job over HTTP while it runs (an embedded server: an accept
  // thread, 3 request threads, a sampler thread): /metrics (Prometheus text
  // format), /api/v1/job (JSON: graph, status, metrics, checkpoint history),
  // /healthz, /readyz (200 once restored and running) and a live dashboard
  // at /. 0 picks a free port (see JobHandle::http_port()); -1 serves
  // nothing. A port that cannot be bound fails Start() with kUnavailable.
  // Default: -1 (off)
  int http_port = -1;
  // The address the HTTP server binds to. There is no authentication:
  // anything but loopback shows the job's metrics and graph to the network.
  // Default: "127.0.0.1"
  std::string http_address = "127.0.0.1";
};

namespace internal {
class RunningJob;
}  // namespace internal

// A running job. Thread-safe: Stop, Cancel and Metrics may be called from
// any thread while another waits. Destroying a handle of a running job
// cancels it and waits for its threads. The job keeps what it runs (sources,
// sinks, functions) alive: the Pipeline may be destroyed while it runs.
class JobHandle {
 public:
  explicit JobHandle(std::shared_ptr<internal::RunningJob> job);
  JobHandle(JobHandle&&) noexcept;
  JobHandle& operator=(JobHandle&&) noexcept;
  ~JobHandle();

  // Asks sources to finish: each emits the final watermark and end of input,
  // everything in flight is processed, event-time timers fire, sinks flush.
  // Wait() then returns OK (unless something failed).
  void Stop();
  // Abandons the job as soon as possible; Wait() returns kCancelled.
  void Cancel();
  // Blocks until every worker has finished; returns the job's status: OK,
  // the first failure (naming the operator), or kCancelled.
  absl::Status Wait();
  // True once every worker has finished.
  bool done() const;
  // Every metric of the job, built-in (per operator and worker: records in
  // and out, timers, late records, watermarks, ...) and registered by
  // functions and connectors (weir/metrics.h), read now; what /metrics
  // serves. Live while the job runs, final once it is done.
  MetricsSnapshot Metrics() const;
  // The port the HTTP server listens on (PipelineOptions::http_port), or -1
  // when there is none.
  int http_port() const;
  // The id of the newest complete checkpoint of this run (0: none yet).
  int64_t last_completed_checkpoint() const;
  // The id of the checkpoint this run restored at Start (0: it started
  // fresh); what a status line shows until the run completes one of its own.
  int64_t restored_checkpoint() const;
  // Takes a checkpoint now (besides the periodic ones) and waits until it is
  // complete; returns its id. kFailedPrecondition without checkpoint storage.
  absl::StatusOr<int64_t> TriggerCheckpoint();

 private:
  std::shared_ptr<internal::RunningJob> job_;
};

// A dataflow job under construction. Not thread-safe while building.
// Streams made from a pipeline refer to it: keep it alive while using them.
class Pipeline {
 public:
  explicit Pipeline(PipelineOptions options = {});
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

  // Adds a source. Its records get timestamps and watermarks from `strategy`
  // (default: the source's own timestamps, no watermarks until end of input).
  template <class T>
  Stream<T> Source(std::shared_ptr<weir::Source<T>> source,
                   WatermarkStrategy<T> strategy = WatermarkStrategy<T>::NoWatermarks()) {
    return Stream<T>(graph_.get(), internal::AddSourceNode<T>(graph_.get(), std::move(source),
                                                              std::move(strategy)));
  }
  template <class S,
            class = std::enable_if_t<std::is_base_of_v<weir::Source<typename S::Record>, S>>>
  Stream<typename S::Record> Source(std::shared_ptr<S> source,
                                    WatermarkStrategy<typename S::Record> strategy =
                                        WatermarkStrategy<typename S::Record>::NoWatermarks()) {
    using T = typename S::Record;
    return Source<T>(std::shared_ptr<weir::Source<T>>(std::move(source)), std::move(strategy));
  }
  template <class S,
            class = std::enable_if_t<std::is_base_of_v<weir::Source<typename S::Record>, S>>>
  Stream<typename S::Record> Source(std::unique_ptr<S> source,
                                    WatermarkStrategy<typename S::Record> strategy =
                                        WatermarkStrategy<typename S::Record>::NoWatermarks()) {
    return Source(std::shared_ptr<S>(std::move(source)), std::move(strategy));
  }

  // Runs the job to completion (until every source ends) on `parallelism`
  // threads. Returns OK, or the first failure naming the operator.
  absl::Status Run();
  // Starts the job and returns at once. Configuration errors (bad options,
  // no sink, a source that cannot list its splits) are returned here.
  absl::StatusOr<JobHandle> Start();

  // Cluster mode (options().cluster): the Kafka topics the job uses, each
  // with its partition count: `<job_id>-tasks` (task leases),
  // `<job_id>-checkpoints` (checkpoint records) and one
  // `<job_id>-<Kind>-<node>-repartition` per KeyBy or Broadcast.
  // Start() creates missing ones; a broker that cannot (topic creation
  // restricted, or librdkafka's mock cluster) needs them made beforehand.
  // kFailedPrecondition in local mode.
  absl::StatusOr<std::vector<std::pair<std::string, int>>> ClusterTopics() const;

  const PipelineOptions& options() const { return options_; }

 private:
  PipelineOptions options_;
  // Shared with a cluster-mode job, which instantiates tasks as they move.
  std::shared_ptr<internal::Graph> graph_;
};

}  // namespace weir

#endif  // WEIR_PIPELINE_H_
