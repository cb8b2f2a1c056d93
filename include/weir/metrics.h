// Metrics: counters, gauges and histograms with labels, cheap enough to
// update for every record.
//
// Every metric belongs to one writer thread: a function's metrics are
// registered per worker (each worker has its own MetricGroup, labelled with
// the job, the operator and the worker), and only that worker updates them,
// with a plain load and a relaxed store: no lock and no atomic
// read-modify-write on the hot path. Readers (JobHandle::Metrics(),
// the HTTP endpoint) load the values from any thread and aggregate.
//
// The runtime registers its own metrics (records and batches per operator,
// busy/idle/backpressured time per worker, exchange queue fill, watermarks,
// late records, dead letters, checkpoints, Kafka consumer lag, sink flush
// latency, state size); docs/architecture.md ("Metrics") lists them.
//
// Example (a function counting the records it drops):
//
//   class DropEmpty : public weir::ProcessFunction<Event, Event> {
//    public:
//     absl::Status Open(const weir::RuntimeContext& runtime) override {
//       dropped_ = &runtime.metrics->AddCounter("app_dropped_total", "Events without a user");
//       return absl::OkStatus();
//     }
//     absl::Status ProcessElement(const Event& e, Context&, weir::Collector<Event>& out) override {
//       if (e.user_id == 0) {
//         dropped_->Increment();
//       } else {
//         out.Collect(e);
//       }
//       return absl::OkStatus();
//     }
//    private:
//     weir::Counter* dropped_ = nullptr;
//   };
//
//   // Later, from any thread:
//   weir::MetricsSnapshot snapshot = job.Metrics();
//   double dropped = snapshot.Sum("app_dropped_total");
//   std::string text = snapshot.ToPrometheusText();

#ifndef WEIR_METRICS_H_
#define WEIR_METRICS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir {

// The labels of one series, in order: e.g. {{"topic", "events"}, {"partition", "3"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

// Metrics are cache-line aligned, so that two workers' metrics never share a
// line (no false sharing between their writers).
inline constexpr size_t kMetricAlignment = 64;

// A count that only grows. Single writer: only the thread that owns it (the
// worker whose MetricGroup registered it) may call Increment(); any thread
// may read value().
class alignas(kMetricAlignment) Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `n` (>= 0): a relaxed load and store, no read-modify-write.
  void Increment(int64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// A value that goes up and down. Set() may be called from any thread (the
// last store wins); Add() is single-writer, like Counter::Increment().
class alignas(kMetricAlignment) Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { Set(value() + delta); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A histogram's counts at one moment.
struct HistogramSnapshot {
  // Upper bounds of the buckets, ascending; a last bucket (+Inf) is implied.
  std::vector<double> bounds;
  // Observations per bucket (not cumulative): bounds.size() + 1 entries.
  std::vector<int64_t> counts;
  // Number and sum of all observations.
  int64_t count = 0;
  double sum = 0;

  // The q-quantile (q in [0, 1]) estimated by linear interpolation inside
  // its bucket, as Prometheus' histogram_quantile(); NaN without observations.
  double Quantile(double q) const;
};

// Counts observations (e.g. latencies in seconds) into fixed buckets.
// Single writer for Observe(); Snapshot() from any thread.
class alignas(kMetricAlignment) Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending (sorted if they are not).
  explicit Histogram(std::vector<double> bounds = LatencyBounds());
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double value);
  HistogramSnapshot Snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

  // 100 µs to 60 s in steps of about 2.5x: for latencies in seconds.
  static std::vector<double> LatencyBounds();
  // `count` bounds: start, start * factor, start * factor^2, ...
  static std::vector<double> ExponentialBounds(double start, double factor, int count);

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<int64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Where a function or connector registers its metrics. Each worker's
// operator instance has its own group, whose labels (job, operator, worker)
// every series it registers carries, followed by the metric's own `labels`.
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]* (other characters become '_').
// Registering the same name and labels again returns the same metric, so a
// function may look metrics up lazily (but should keep the reference: the
// lookup takes a lock). A name already registered with another type is
// logged and the new metric is not exported. Metrics live as long as the job.
//
// Thread-safety: the Add* calls are thread-safe; the returned metric is
// updated by the worker that owns the group (see Counter).
class MetricGroup {
 public:
  virtual ~MetricGroup() = default;

  // The labels every metric of this group carries.
  virtual const MetricLabels& labels() const = 0;

  virtual Counter& AddCounter(std::string_view name, std::string_view help,
                              const MetricLabels& labels = {}) = 0;
  virtual Gauge& AddGauge(std::string_view name, std::string_view help,
                          const MetricLabels& labels = {}) = 0;
  virtual Histogram& AddHistogram(std::string_view name, std::string_view help,
                                  std::vector<double> bounds = Histogram::LatencyBounds(),
                                  const MetricLabels& labels = {}) = 0;
};

// One series of a metric family: its labels and value.
struct MetricSeries {
  MetricLabels labels;
  // Counters and gauges.
  double value = 0;
  // Histograms.
  HistogramSnapshot histogram;
};

// Every series of one metric name.
struct MetricFamily {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<MetricSeries> series;
};

// All metrics of a job read at one moment (JobHandle::Metrics()).
struct MetricsSnapshot {
  std::vector<MetricFamily> families;
  // Milliseconds since the epoch when it was taken.
  int64_t timestamp_ms = 0;

  // The family `name`, or null.
  const MetricFamily* Find(std::string_view name) const;
  // The sum of the values (histograms: the counts) of `name`'s series that
  // carry every label in `match`; 0 when there are none.
  double Sum(std::string_view name, const MetricLabels& match = {}) const;
  // The Prometheus text exposition format (version 0.0.4), as /metrics serves it.
  std::string ToPrometheusText() const;
};

}  // namespace weir

#endif  // WEIR_METRICS_H_
