// MetricRegistry: every metric of one job. Functions and connectors register
// metrics in per-(operator, worker) groups; the runtime adds collectors that
// read its own counters (operators, workers, rings, checkpoints) when a
// snapshot is taken, so the hot path never touches the registry.

#ifndef WEIR_LIB_METRICS_REGISTRY_H_
#define WEIR_LIB_METRICS_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "weir/metrics.h"

namespace weir::internal {

// Assembles a MetricsSnapshot: series are grouped into families by name; a
// name seen first with one type keeps it (series of another type are dropped).
class MetricsBuilder {
 public:
  void AddCounter(std::string_view name, std::string_view help, MetricLabels labels, double value);
  void AddGauge(std::string_view name, std::string_view help, MetricLabels labels, double value);
  void AddHistogram(std::string_view name, std::string_view help, MetricLabels labels,
                    HistogramSnapshot histogram);
  MetricsSnapshot Finish(int64_t timestamp_ms) &&;

 private:
  // The family `name` of `type`, created if needed; null on a type clash.
  MetricFamily* Family(std::string_view name, std::string_view help, MetricType type);

  std::vector<MetricFamily> families_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// Replaces what Prometheus does not allow in a metric (or, with
// `label` set, a label) name with '_'.
std::string SanitizeMetricName(std::string_view name, bool label = false);

// Thread-safe.
class MetricRegistry {
 public:
  // `labels`: what every series carries first (e.g. {{"job", name}}).
  explicit MetricRegistry(MetricLabels labels);
  ~MetricRegistry();
  MetricRegistry(const MetricRegistry&) = delete;
  MetricRegistry& operator=(const MetricRegistry&) = delete;

  // The group of operator `op` on worker `worker` (labels + operator, worker),
  // created on first use; it lives as long as the registry.
  MetricGroup& Group(const std::string& op, int worker);
  // Job-wide metrics (the registry's labels only).
  MetricGroup& JobGroup();
  const MetricLabels& labels() const { return labels_; }

  // Adds series computed when a snapshot is taken. Collectors run on the
  // reading thread, before the registered metrics (so built-in names win).
  using Collector = std::function<void(MetricsBuilder&)>;
  void AddCollector(Collector collector);

  MetricsSnapshot Collect() const;

 private:
  class GroupImpl;
  struct Entry {
    std::string name;
    std::string help;
    MetricType type;
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    bool exported = true;
  };

  // Registration on behalf of a group; returns the entry (new or existing).
  Entry& Register(const MetricLabels& group_labels, std::string_view name, std::string_view help,
                  MetricType type, const MetricLabels& labels, std::vector<double> bounds);

  const MetricLabels labels_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
  absl::flat_hash_map<std::string, Entry*> by_key_;     // name + labels -> entry
  absl::flat_hash_map<std::string, MetricType> types_;  // name -> its type
  std::map<std::pair<std::string, int>, std::unique_ptr<GroupImpl>> groups_;
  std::unique_ptr<GroupImpl> job_group_;
  std::vector<Collector> collectors_;
};

// A group for operators built outside a job (unit tests of single
// operators): its metrics work but are never exported.
MetricGroup& DetachedMetricGroup();

}  // namespace weir::internal

#endif  // WEIR_LIB_METRICS_REGISTRY_H_
