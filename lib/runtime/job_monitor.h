// JobMonitor: what a job shows of itself. It owns the job's metric registry
// (built-in collectors over the operators' counters, the workers' time, the
// exchange rings and the checkpoint coordinator), samples rates once a
// second for the dashboard's charts, renders /api/v1/job and runs the
// optional HTTP server (PipelineOptions::http_port).

#ifndef WEIR_LIB_RUNTIME_JOB_MONITOR_H_
#define WEIR_LIB_RUNTIME_JOB_MONITOR_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "lib/checkpoint/coordinator.h"
#include "lib/metrics/http_server.h"
#include "lib/metrics/registry.h"
#include "lib/runtime/worker.h"
#include "weir/formats/json.h"
#include "weir/internal/graph.h"
#include "weir/internal/operator.h"
#include "weir/pipeline.h"

namespace weir::internal {

enum class JobState { kStarting, kRunning, kStopping, kFinished, kFailed, kCancelled };
const char* JobStateName(JobState state);

class JobMonitor final : public JobEndpoint {
 public:
  JobMonitor(const PipelineOptions& options, const Graph& graph);
  ~JobMonitor() override;

  MetricRegistry& registry() { return registry_; }
  WorkerMetrics& worker_metrics(int worker) { return *workers_[worker]; }

  // Starts the HTTP server (before the job restores, so /healthz and /readyz
  // answer meanwhile) and the sampler behind the dashboard's charts.
  absl::Status StartServer(const std::string& address, int port);
  // Stops both; idempotent. Called first when the job is destroyed.
  void StopServer();
  // The server's port, or -1.
  int http_port() const { return server_ == nullptr ? -1 : server_->port(); }

  // While the job is built: the operators `built` instantiated for one worker.
  void AddWorker(const WorkerBuilder& built);
  // Everything is built: the built-in metrics become visible.
  void Publish(
      const std::vector<std::pair<int, std::shared_ptr<const ExchangeChannelsBase>>>& exchanges,
      const CheckpointCoordinator* coordinator);

  // Status transitions; a terminal state (finished, failed, cancelled) stays.
  void SetState(JobState state, const absl::Status& status = absl::OkStatus());
  JobState state() const { return state_.load(); }

  // JobEndpoint.
  std::string PrometheusText() const override;
  std::string JobJson() const override;
  bool Healthy(std::string* reason) const override;
  bool Ready(std::string* reason) const override;

 private:
  struct Node {
    int id = 0;
    std::string name;
    // The operator label of its metrics (DisplayLabels: the name, made
    // unique if two nodes share it).
    std::string label;
    // The uid given with Uid(), if any.
    std::string uid;
    std::string kind;
    std::vector<int> inputs;
    bool is_sink = false;
    bool is_source = false;
    // One per worker; empty for a node that is a view of its input's
    // operator (a side output).
    std::vector<std::shared_ptr<OperatorMetrics>> instances;
    std::shared_ptr<const ExchangeChannelsBase> channels;  // exchanges only
    // Runs in a chain that ends in an exchange: its workers' backpressure is its own.
    bool feeds_exchange = false;
  };
  // Rates over one sampling interval, for the charts.
  struct Sample {
    int64_t t_ms = 0;
    std::vector<double> in_rate;   // per node, records/s
    std::vector<double> out_rate;  // per node, records/s
    std::vector<double> busy;      // per worker, share of the interval
    std::vector<double> backpressured;
    double lag_p50_ms = -1;  // sinks' event-time lag; -1: no batch in the interval
    double lag_p99_ms = -1;
    double consumer_lag = -1;  // total Kafka lag; -1: no Kafka source
  };
  // Cumulative values the next sample is computed from.
  struct Totals {
    int64_t t_ns = 0;
    std::vector<int64_t> in;
    std::vector<int64_t> out;
    std::vector<int64_t> busy_ns;
    std::vector<int64_t> backpressured_ns;
    HistogramSnapshot lag;
  };

  void Collect(MetricsBuilder& builder) const;
  // The parts of JobJson.
  void WriteJob(json::Writer& json, const absl::Status& failure, bool built, int64_t now_ms) const;
  void WriteGraph(json::Writer& json, const std::optional<Sample>& latest, bool built) const;
  void WriteNode(json::Writer& json, size_t idx, const std::optional<Sample>& latest,
                 bool built) const;
  void WriteWorkers(json::Writer& json, const std::optional<Sample>& latest) const;
  void WriteCheckpoints(json::Writer& json, bool built) const;
  static void WriteKafkaLag(json::Writer& json, const MetricsSnapshot& snapshot);
  static void WriteHistory(json::Writer& json, const std::deque<Sample>& history);
  static void WriteMetricFamilies(json::Writer& json, const MetricsSnapshot& snapshot);
  void SampleLoop();
  Totals ReadTotals(const MetricsSnapshot& snapshot) const;
  // Nodes whose metrics are their own.
  bool published() const { return published_.load(std::memory_order_acquire); }

  const PipelineOptions options_;
  const int64_t started_ms_;
  MetricRegistry registry_;
  std::vector<Node> nodes_;
  std::vector<std::unique_ptr<WorkerMetrics>> workers_;
  const CheckpointCoordinator* coordinator_ = nullptr;
  std::atomic<bool> published_{false};

  std::atomic<JobState> state_{JobState::kStarting};
  mutable std::mutex mutex_;  // guards failure_, history_, sampler_stop_
  absl::Status failure_;
  std::deque<Sample> history_;
  std::condition_variable sampler_cv_;
  bool sampler_stop_ = false;
  std::thread sampler_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_RUNTIME_JOB_MONITOR_H_
