#include "lib/runtime/job_monitor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "weir/formats/json.h"

namespace weir::internal {

namespace {

// The dashboard's charts: one sample a second, the last five minutes.
constexpr std::chrono::seconds kSampleInterval{1};
constexpr size_t kHistorySamples = 300;

constexpr char kLagMetric[] = "weir_sink_event_time_lag_seconds";
constexpr char kConsumerLagMetric[] = "weir_kafka_consumer_lag_records";

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t Load(const std::atomic<int64_t>& value) { return value.load(std::memory_order_relaxed); }

MetricLabels With(MetricLabels labels, std::string name, std::string value) {
  labels.emplace_back(std::move(name), std::move(value));
  return labels;
}

// `a - b` bucket by bucket (histograms with the same bounds).
HistogramSnapshot Delta(const HistogramSnapshot& a, const HistogramSnapshot& b) {
  HistogramSnapshot delta = a;
  if (b.counts.size() != a.counts.size()) return delta;
  delta.count = 0;
  for (size_t idx = 0; idx < a.counts.size(); ++idx) {
    delta.counts[idx] = std::max<int64_t>(0, a.counts[idx] - b.counts[idx]);
    delta.count += delta.counts[idx];
  }
  delta.sum = a.sum - b.sum;
  return delta;
}

void Merge(HistogramSnapshot& into, const HistogramSnapshot& other) {
  if (into.counts.empty()) {
    into = other;
    return;
  }
  if (into.bounds != other.bounds) return;  // only the default bounds are merged
  for (size_t idx = 0; idx < into.counts.size(); ++idx) into.counts[idx] += other.counts[idx];
  into.count += other.count;
  into.sum += other.sum;
}

void WriteLabels(json::Writer& json, const MetricLabels& labels) {
  json.BeginObject();
  for (const auto& [name, value] : labels) json.Member(name, value);
  json.EndObject();
}

std::string_view LabelValue(const MetricLabels& labels, std::string_view name) {
  for (const auto& [label, value] : labels) {
    if (label == name) return value;
  }
  return {};
}

}  // namespace

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kStarting:
      return "starting";
    case JobState::kRunning:
      return "running";
    case JobState::kStopping:
      return "stopping";
    case JobState::kFinished:
      return "finished";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

JobMonitor::JobMonitor(const PipelineOptions& options, const Graph& graph)
    : options_(options),
      started_ms_(absl::ToUnixMillis(absl::Now())),
      registry_({{"job", options.job_name}}) {
  const std::vector<std::string> labels = DisplayLabels(graph);
  for (const auto& logical : graph.nodes()) {
    Node node;
    node.id = logical->id;
    node.name = logical->name;
    node.kind = logical->kind;
    node.inputs = logical->inputs;
    node.is_sink = logical->is_sink;
    node.is_source = logical->kind == "Source";
    node.label = labels[node.id];
    node.uid = logical->uid;
    nodes_.push_back(std::move(node));
  }
  for (int worker = 0; worker < options.parallelism; ++worker) {
    workers_.push_back(std::make_unique<WorkerMetrics>());
  }
}

JobMonitor::~JobMonitor() { StopServer(); }

absl::Status JobMonitor::StartServer(const std::string& address, int port) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(address, port, *this);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  sampler_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "weir-sampler");
    SampleLoop();
  });
  return absl::OkStatus();
}

void JobMonitor::StopServer() {
  if (server_ != nullptr) server_->Stop();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    sampler_stop_ = true;
  }
  sampler_cv_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

void JobMonitor::AddWorker(const WorkerBuilder& built) {
  for (Node& node : nodes_) {
    OperatorBase* op = built.operators[node.id];
    if (op == nullptr) continue;
    // A side output is a view of its input's operator: not an operator of its own.
    bool view = false;
    for (int input : node.inputs) view |= built.operators[input] == op;
    if (!view) node.instances.push_back(op->shared_metrics());
  }
}

void JobMonitor::Publish(
    const std::vector<std::pair<int, std::shared_ptr<const ExchangeChannelsBase>>>& exchanges,
    const CheckpointCoordinator* coordinator) {
  for (const auto& [node_id, channels] : exchanges) nodes_[node_id].channels = channels;
  // A node feeds an exchange when a path through non-exchange nodes leads to one.
  std::vector<std::vector<int>> downstream(nodes_.size());
  for (const Node& node : nodes_) {
    for (int input : node.inputs) downstream[input].push_back(node.id);
  }
  std::function<bool(int)> feeds = [&](int id) {
    for (int next : downstream[id]) {
      if (nodes_[next].channels != nullptr || feeds(next)) return true;
    }
    return false;
  };
  for (Node& node : nodes_) node.feeds_exchange = feeds(node.id);
  coordinator_ = coordinator;
  registry_.AddCollector([this](MetricsBuilder& builder) { Collect(builder); });
  published_.store(true, std::memory_order_release);
}

void JobMonitor::SetState(JobState state, const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mutex_);
  const JobState current = state_.load();
  const bool terminal = current == JobState::kFinished || current == JobState::kFailed ||
                        current == JobState::kCancelled;
  // A failure outranks how the job ended otherwise (Wait() returns it too).
  if (terminal && !(state == JobState::kFailed && current != JobState::kFailed)) return;
  if (!status.ok() && failure_.ok()) failure_ = status;
  state_.store(state);
}

// ---------------------------------------------------------------------------
// Metrics.

void JobMonitor::Collect(MetricsBuilder& builder) const {
  const MetricLabels& job = registry_.labels();
  builder.AddGauge("weir_job_state", "1 for the job's current state",
                   With(job, "state", JobStateName(state())), 1);
  builder.AddGauge("weir_job_uptime_seconds", "Seconds since the job started", job,
                   static_cast<double>(absl::ToUnixMillis(absl::Now()) - started_ms_) / 1e3);
  builder.AddGauge("weir_job_parallelism", "Worker threads", job, options_.parallelism);
  if (!published()) return;

  for (const Node& node : nodes_) {
    for (const auto& instance : node.instances) {
      const MetricLabels labels =
          With(With(job, "operator", node.label), "worker", absl::StrCat(instance->worker));
      builder.AddCounter("weir_operator_records_in_total",
                         "Records an operator received (sources: read)", labels,
                         Load(instance->records_in));
      builder.AddCounter("weir_operator_records_out_total", "Records an operator emitted", labels,
                         Load(instance->records_out));
      builder.AddCounter("weir_operator_batches_in_total", "Batches an operator received", labels,
                         Load(instance->batches_in));
      builder.AddCounter("weir_operator_batches_out_total", "Batches an operator emitted", labels,
                         Load(instance->batches_out));
      builder.AddCounter("weir_operator_late_records_total",
                         "Records that arrived after their window's allowed lateness", labels,
                         Load(instance->late_records));
      builder.AddCounter("weir_operator_timers_fired_total", "Timers fired", labels,
                         Load(instance->timers_fired));
      builder.AddCounter("weir_operator_state_writes_total", "Writes of window state", labels,
                         Load(instance->state_writes));
      const int64_t watermark = Load(instance->watermark);
      if (watermark != kMinTimestamp) {
        builder.AddGauge("weir_operator_watermark_milliseconds",
                         "An operator's event-time watermark (ms since the epoch; +Inf at the end "
                         "of input)",
                         labels,
                         watermark == kMaxTimestamp ? std::numeric_limits<double>::infinity()
                                                    : static_cast<double>(watermark));
      }
    }
  }
  for (size_t worker = 0; worker < workers_.size(); ++worker) {
    const WorkerMetrics& metrics = *workers_[worker];
    const MetricLabels labels = With(job, "worker", absl::StrCat(worker));
    builder.AddCounter("weir_worker_busy_seconds_total", "Time a worker spent processing", labels,
                       static_cast<double>(Load(metrics.busy_ns)) / 1e9);
    builder.AddCounter("weir_worker_idle_seconds_total",
                       "Time a worker had nothing to do (waiting for input)", labels,
                       static_cast<double>(Load(metrics.idle_ns)) / 1e9);
    builder.AddCounter("weir_worker_backpressured_seconds_total",
                       "Time a worker waited for room in a full exchange ring (its sources "
                       "paused)",
                       labels, static_cast<double>(Load(metrics.backpressured_ns)) / 1e9);
    builder.AddGauge("weir_worker_backpressured", "1 while a worker is backpressured", labels,
                     metrics.backpressured.load(std::memory_order_relaxed) ? 1 : 0);
  }
  for (const Node& node : nodes_) {
    if (node.channels == nullptr) continue;
    const double capacity = static_cast<double>(node.channels->capacity());
    for (int from = 0; from < node.channels->parallelism(); ++from) {
      for (int to = 0; to < node.channels->parallelism(); ++to) {
        builder.AddGauge("weir_exchange_queue_fill_ratio",
                         "How full the ring from one worker to another of an exchange is (0 to 1)",
                         With(With(With(job, "exchange", node.label), "from", absl::StrCat(from)),
                              "to", absl::StrCat(to)),
                         static_cast<double>(node.channels->Fill(from, to)) / capacity);
      }
    }
  }
  if (coordinator_ != nullptr) {
    const std::vector<CheckpointRecord> history = coordinator_->History();
    builder.AddCounter("weir_checkpoints_completed_total", "Checkpoints completed", job,
                       coordinator_->completed_count());
    builder.AddCounter("weir_checkpoints_failed_total", "Checkpoints that failed or timed out", job,
                       coordinator_->failed_count());
    builder.AddGauge("weir_checkpoint_last_completed_id",
                     "The newest complete checkpoint (0: none)", job,
                     static_cast<double>(coordinator_->last_completed()));
    builder.AddHistogram("weir_checkpoint_duration_seconds",
                         "Duration of completed checkpoints, from request to manifest", job,
                         coordinator_->DurationHistogram());
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (!it->completed) continue;
      builder.AddGauge("weir_checkpoint_last_size_bytes",
                       "Bytes the newest complete checkpoint references (the full state)", job,
                       static_cast<double>(it->size_bytes));
      builder.AddGauge("weir_checkpoint_last_uploaded_bytes",
                       "Bytes the newest complete checkpoint added to storage (incremental)", job,
                       static_cast<double>(it->uploaded_bytes));
      builder.AddGauge("weir_checkpoint_last_duration_seconds",
                       "Duration of the newest complete checkpoint", job,
                       static_cast<double>(it->duration_ms) / 1e3);
      break;
    }
    const std::string backend = options_.state_backend.is_rocksdb() ? "rocksdb" : "memory";
    for (const OperatorStateSize& size : coordinator_->StateSizes()) {
      builder.AddGauge(
          "weir_state_size_bytes",
          "Bytes of an operator instance's keyed state in the newest complete checkpoint",
          With(With(With(job, "operator", size.operator_name), "worker", absl::StrCat(size.worker)),
               "backend", backend),
          static_cast<double>(size.bytes));
    }
  }
}

std::string JobMonitor::PrometheusText() const { return registry_.Collect().ToPrometheusText(); }

bool JobMonitor::Healthy(std::string* reason) const {
  if (state() != JobState::kFailed) {
    *reason = "ok";
    return true;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  *reason = absl::StrCat("failed: ", failure_.ToString());
  return false;
}

bool JobMonitor::Ready(std::string* reason) const {
  const JobState current = state();
  *reason = JobStateName(current);
  return current == JobState::kRunning;
}

// ---------------------------------------------------------------------------
// Sampling.

JobMonitor::Totals JobMonitor::ReadTotals(const MetricsSnapshot& snapshot) const {
  Totals totals;
  totals.t_ns = SteadyNanos();
  for (const Node& node : nodes_) {
    int64_t in = 0;
    int64_t out = 0;
    for (const auto& instance : node.instances) {
      in += Load(instance->records_in);
      out += Load(instance->records_out);
    }
    totals.in.push_back(in);
    totals.out.push_back(out);
  }
  for (const auto& worker : workers_) {
    totals.busy_ns.push_back(Load(worker->busy_ns));
    totals.backpressured_ns.push_back(Load(worker->backpressured_ns));
  }
  if (const MetricFamily* lag = snapshot.Find(kLagMetric)) {
    for (const MetricSeries& series : lag->series) Merge(totals.lag, series.histogram);
  }
  return totals;
}

void JobMonitor::SampleLoop() {
  std::optional<Totals> previous;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!sampler_cv_.wait_for(lock, kSampleInterval, [this] { return sampler_stop_; })) {
    if (!published()) continue;
    lock.unlock();
    const MetricsSnapshot snapshot = registry_.Collect();
    Totals totals = ReadTotals(snapshot);
    std::optional<Sample> sample;
    if (previous) {
      const double seconds = static_cast<double>(totals.t_ns - previous->t_ns) / 1e9;
      Sample s;
      s.t_ms = snapshot.timestamp_ms;
      for (size_t idx = 0; idx < nodes_.size(); ++idx) {
        s.in_rate.push_back(static_cast<double>(totals.in[idx] - previous->in[idx]) / seconds);
        s.out_rate.push_back(static_cast<double>(totals.out[idx] - previous->out[idx]) / seconds);
      }
      for (size_t idx = 0; idx < workers_.size(); ++idx) {
        auto share = [&](const std::vector<int64_t>& now, const std::vector<int64_t>& before) {
          return std::clamp(static_cast<double>(now[idx] - before[idx]) / (seconds * 1e9), 0.0,
                            1.0);
        };
        s.busy.push_back(share(totals.busy_ns, previous->busy_ns));
        s.backpressured.push_back(share(totals.backpressured_ns, previous->backpressured_ns));
      }
      const HistogramSnapshot lag = Delta(totals.lag, previous->lag);
      if (lag.count > 0) {
        s.lag_p50_ms = lag.Quantile(0.5) * 1e3;
        s.lag_p99_ms = lag.Quantile(0.99) * 1e3;
      }
      if (snapshot.Find(kConsumerLagMetric) != nullptr) {
        s.consumer_lag = snapshot.Sum(kConsumerLagMetric);
      }
      sample = std::move(s);
    }
    previous = std::move(totals);
    lock.lock();
    if (sample) {
      history_.push_back(*std::move(sample));
      while (history_.size() > kHistorySamples) history_.pop_front();
    }
  }
}

// ---------------------------------------------------------------------------
// /api/v1/job.

// The JSON of /api/v1/job: the job, its graph, workers, checkpoints, Kafka
// lag, the sampled history and every metric, each written by its own step.
std::string JobMonitor::JobJson() const {
  const MetricsSnapshot snapshot = registry_.Collect();
  std::optional<Sample> latest;
  std::deque<Sample> history;
  absl::Status failure;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    history = history_;
    failure = failure_;
  }
  if (!history.empty()) latest = history.back();
  const bool built = published();

  std::string out;
  json::Writer json(out);
  json.BeginObject();
  WriteJob(json, failure, built, snapshot.timestamp_ms);
  WriteGraph(json, latest, built);
  WriteWorkers(json, latest);
  WriteCheckpoints(json, built);
  WriteKafkaLag(json, snapshot);
  WriteHistory(json, history);
  WriteMetricFamilies(json, snapshot);
  json.EndObject();
  return out;
}

void JobMonitor::WriteJob(json::Writer& json, const absl::Status& failure, bool built,
                          int64_t now_ms) const {
  json.Key("job").BeginObject();
  json.Member("name", options_.job_name);
  json.Member("status", JobStateName(state()));
  json.Member("ready", state() == JobState::kRunning);
  json.Member("healthy", state() != JobState::kFailed);
  json.Member("error", failure.ok() ? std::string() : failure.ToString());
  json.Member("parallelism", options_.parallelism);
  json.Member("max_parallelism", options_.max_parallelism);
  json.Member("state_backend", options_.state_backend.is_rocksdb() ? "rocksdb" : "memory");
  json.Member("checkpointing", coordinator_ != nullptr && built);
  json.Member("started_ms", started_ms_);
  json.Member("now_ms", now_ms);
  json.EndObject();
}

// One node per logical operator, with totals over its workers and the
// newest sampled rates; then the edges.
void JobMonitor::WriteGraph(json::Writer& json, const std::optional<Sample>& latest,
                            bool built) const {
  json.Key("graph").BeginObject();
  json.Key("nodes").BeginArray();
  for (size_t idx = 0; idx < nodes_.size(); ++idx) WriteNode(json, idx, latest, built);
  json.EndArray();
  json.Key("edges").BeginArray();
  for (const Node& node : nodes_) {
    for (int input : node.inputs) {
      json.BeginObject().Member("from", input).Member("to", node.id).EndObject();
    }
  }
  json.EndArray();
  json.EndObject();
}

void JobMonitor::WriteNode(json::Writer& json, size_t idx, const std::optional<Sample>& latest,
                           bool built) const {
  const Node& node = nodes_[idx];
  json.BeginObject();
  json.Member("id", node.id);
  json.Member("name", node.name);
  if (!node.uid.empty()) json.Member("uid", node.uid);
  json.Member("kind", node.kind);
  json.Key("inputs").BeginArray();
  for (int input : node.inputs) json.Int(input);
  json.EndArray();
  json.Member("source", node.is_source);
  json.Member("sink", node.is_sink);
  json.Member("exchange", built && node.channels != nullptr);
  if (built) {
    int64_t in = 0, out_records = 0, batches_in = 0, batches_out = 0, late = 0;
    Timestamp watermark = kMaxTimestamp;
    for (const auto& instance : node.instances) {
      in += Load(instance->records_in);
      out_records += Load(instance->records_out);
      batches_in += Load(instance->batches_in);
      batches_out += Load(instance->batches_out);
      late += Load(instance->late_records);
      watermark = std::min(watermark, Load(instance->watermark));
    }
    json.Member("own_metrics", !node.instances.empty());
    json.Member("records_in", in);
    json.Member("records_out", out_records);
    json.Member("batches_in", batches_in);
    json.Member("batches_out", batches_out);
    json.Member("late_records", late);
    json.Key("watermark_ms");
    if (node.instances.empty() || watermark == kMinTimestamp || watermark == kMaxTimestamp) {
      json.Null();
    } else {
      json.Int(watermark);
    }
    json.Member("watermark_ended", !node.instances.empty() && watermark == kMaxTimestamp);
    json.Member("in_rate", latest ? latest->in_rate[idx] : 0.0);
    json.Member("out_rate", latest ? latest->out_rate[idx] : 0.0);
    double backpressure = 0;
    if (node.feeds_exchange && latest && !latest->backpressured.empty()) {
      for (double share : latest->backpressured) backpressure += share;
      backpressure /= static_cast<double>(latest->backpressured.size());
    }
    json.Member("backpressure", backpressure);
    if (node.channels != nullptr) {
      double sum = 0, max = 0;
      const int parallelism = node.channels->parallelism();
      for (int from = 0; from < parallelism; ++from) {
        for (int to = 0; to < parallelism; ++to) {
          const double fill = static_cast<double>(node.channels->Fill(from, to)) /
                              static_cast<double>(node.channels->capacity());
          sum += fill;
          max = std::max(max, fill);
        }
      }
      json.Member("queue_fill", sum / (parallelism * parallelism));
      json.Member("queue_fill_max", max);
    }
    json.Key("workers").BeginArray();
    for (const auto& instance : node.instances) {
      json.BeginObject();
      json.Member("worker", instance->worker);
      json.Member("records_in", Load(instance->records_in));
      json.Member("records_out", Load(instance->records_out));
      const int64_t wm = Load(instance->watermark);
      json.Key("watermark_ms");
      if (wm == kMinTimestamp || wm == kMaxTimestamp) {
        json.Null();
      } else {
        json.Int(wm);
      }
      json.EndObject();
    }
    json.EndArray();
  }
  json.EndObject();
}

void JobMonitor::WriteWorkers(json::Writer& json, const std::optional<Sample>& latest) const {
  json.Key("workers").BeginArray();
  for (size_t worker = 0; worker < workers_.size(); ++worker) {
    const WorkerMetrics& metrics = *workers_[worker];
    json.BeginObject();
    json.Member("worker", static_cast<int64_t>(worker));
    json.Member("busy_seconds", static_cast<double>(Load(metrics.busy_ns)) / 1e9);
    json.Member("idle_seconds", static_cast<double>(Load(metrics.idle_ns)) / 1e9);
    json.Member("backpressured_seconds", static_cast<double>(Load(metrics.backpressured_ns)) / 1e9);
    json.Member("backpressured", metrics.backpressured.load(std::memory_order_relaxed));
    json.Member("busy", latest && worker < latest->busy.size() ? latest->busy[worker] : 0.0);
    json.Member("backpressure", latest && worker < latest->backpressured.size()
                                    ? latest->backpressured[worker]
                                    : 0.0);
    json.EndObject();
  }
  json.EndArray();
}

void JobMonitor::WriteCheckpoints(json::Writer& json, bool built) const {
  json.Key("checkpoints").BeginObject();
  const CheckpointCoordinator* coordinator = built ? coordinator_ : nullptr;
  json.Member("enabled", coordinator != nullptr);
  json.Member("interval_ms", absl::ToInt64Milliseconds(options_.checkpoints.interval));
  if (coordinator != nullptr) {
    json.Member("completed", coordinator->completed_count());
    json.Member("failed", coordinator->failed_count());
    json.Member("last_completed_id", coordinator->last_completed());
    json.Key("history").BeginArray();
    for (const CheckpointRecord& record : coordinator->History()) {
      json.BeginObject();
      json.Member("id", record.id);
      json.Member("status", record.completed ? "completed" : "failed");
      json.Member("trigger_ms", record.trigger_ms);
      json.Member("duration_ms", record.duration_ms);
      json.Member("size_bytes", record.size_bytes);
      json.Member("uploaded_bytes", record.uploaded_bytes);
      json.Member("error", record.error);
      json.EndObject();
    }
    json.EndArray();
  }
  json.EndObject();
}

void JobMonitor::WriteKafkaLag(json::Writer& json, const MetricsSnapshot& snapshot) {
  json.Key("kafka_lag").BeginArray();
  if (const MetricFamily* lag = snapshot.Find(kConsumerLagMetric)) {
    for (const MetricSeries& series : lag->series) {
      json.BeginObject();
      json.Member("operator", LabelValue(series.labels, "operator"));
      json.Member("worker", LabelValue(series.labels, "worker"));
      json.Member("topic", LabelValue(series.labels, "topic"));
      json.Member("partition", LabelValue(series.labels, "partition"));
      json.Member("lag", series.value);
      json.EndObject();
    }
  }
  json.EndArray();
}

void JobMonitor::WriteHistory(json::Writer& json, const std::deque<Sample>& history) {
  json.Key("history").BeginArray();
  for (const Sample& sample : history) {
    json.BeginObject();
    json.Member("t_ms", sample.t_ms);
    json.Key("in_rate").BeginArray();
    for (double rate : sample.in_rate) json.Double(rate);
    json.EndArray();
    json.Key("out_rate").BeginArray();
    for (double rate : sample.out_rate) json.Double(rate);
    json.EndArray();
    json.Key("busy").BeginArray();
    for (double share : sample.busy) json.Double(share);
    json.EndArray();
    json.Key("backpressure").BeginArray();
    for (double share : sample.backpressured) json.Double(share);
    json.EndArray();
    json.Key("lag_p50_ms");
    sample.lag_p50_ms < 0 ? json.Null() : json.Double(sample.lag_p50_ms);
    json.Key("lag_p99_ms");
    sample.lag_p99_ms < 0 ? json.Null() : json.Double(sample.lag_p99_ms);
    json.Key("consumer_lag");
    sample.consumer_lag < 0 ? json.Null() : json.Double(sample.consumer_lag);
    json.EndObject();
  }
  json.EndArray();
}

void JobMonitor::WriteMetricFamilies(json::Writer& json, const MetricsSnapshot& snapshot) {
  json.Key("metrics").BeginArray();
  for (const MetricFamily& family : snapshot.families) {
    json.BeginObject();
    json.Member("name", family.name);
    json.Member("type", family.type == MetricType::kCounter ? "counter"
                        : family.type == MetricType::kGauge ? "gauge"
                                                            : "histogram");
    json.Member("help", family.help);
    json.Key("series").BeginArray();
    for (const MetricSeries& series : family.series) {
      json.BeginObject();
      json.Key("labels");
      WriteLabels(json, series.labels);
      if (family.type == MetricType::kHistogram) {
        const HistogramSnapshot& h = series.histogram;
        json.Member("count", h.count);
        json.Member("sum", h.sum);
        json.Key("p50");
        h.count == 0 ? json.Null() : json.Double(h.Quantile(0.5));
        json.Key("p99");
        h.count == 0 ? json.Null() : json.Double(h.Quantile(0.99));
      } else {
        json.Key("value");
        // JSON has no infinity: a watermark at the end of input is null.
        std::isfinite(series.value) ? json.Double(series.value) : json.Null();
      }
      json.EndObject();
    }
    json.EndArray();
    json.EndObject();
  }
  json.EndArray();
}

}  // namespace weir::internal
