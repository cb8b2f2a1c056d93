// The non-inline parts of include/weir/metrics.h: histograms and snapshot
// queries. The Prometheus text format is in prometheus.cc.

#include "weir/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace weir {

namespace {
// The buckets sit between a cache line of padding on each side, which nothing
// else can be allocated in: no false sharing with another worker's data.
constexpr size_t kPad = kMetricAlignment / sizeof(std::atomic<int64_t>);
}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  // +Inf is the implied last bucket, never an explicit bound.
  while (!bounds_.empty() && std::isinf(bounds_.back())) bounds_.pop_back();
  counts_ = std::make_unique<std::atomic<int64_t>[]>(bounds_.size() + 1 + 2 * kPad);
  for (size_t idx = 0; idx < bounds_.size() + 1 + 2 * kPad; ++idx) counts_[idx].store(0);
}

void Histogram::Observe(double value) {
  // Buckets are "less or equal" (Prometheus' `le`): the first bound >= value.
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  std::atomic<int64_t>& count = counts_[kPad + bucket];
  count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sum_.store(sum_.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot snapshot;
  snapshot.bounds = bounds_;
  snapshot.counts.resize(bounds_.size() + 1);
  for (size_t idx = 0; idx <= bounds_.size(); ++idx) {
    snapshot.counts[idx] = counts_[kPad + idx].load(std::memory_order_relaxed);
    // The count is the buckets' sum, so that it always equals the +Inf bucket.
    snapshot.count += snapshot.counts[idx];
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> Histogram::LatencyBounds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

std::vector<double> Histogram::ExponentialBounds(double start, double factor, int count) {
  std::vector<double> bounds;
  double bound = start;
  for (int idx = 0; idx < count; ++idx, bound *= factor) bounds.push_back(bound);
  return bounds;
}

double HistogramSnapshot::Quantile(double q) const {
  if (count == 0 || counts.size() != bounds.size() + 1) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(count);
  double below = 0;
  for (size_t idx = 0; idx < counts.size(); ++idx) {
    const double in_bucket = static_cast<double>(counts[idx]);
    if (below + in_bucket >= rank && in_bucket > 0) {
      // The +Inf bucket has no upper bound: answer the highest finite one.
      if (idx == bounds.size()) return bounds.empty() ? 0 : bounds.back();
      const double lower = idx == 0 ? std::min(0.0, bounds[0]) : bounds[idx - 1];
      const double upper = bounds[idx];
      return lower + (upper - lower) * (rank - below) / in_bucket;
    }
    below += in_bucket;
  }
  return bounds.empty() ? 0 : bounds.back();
}

namespace {

bool Matches(const MetricLabels& labels, const MetricLabels& match) {
  for (const auto& wanted : match) {
    if (std::find(labels.begin(), labels.end(), wanted) == labels.end()) return false;
  }
  return true;
}

}  // namespace

const MetricFamily* MetricsSnapshot::Find(std::string_view name) const {
  for (const MetricFamily& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

double MetricsSnapshot::Sum(std::string_view name, const MetricLabels& match) const {
  const MetricFamily* family = Find(name);
  if (family == nullptr) return 0;
  double sum = 0;
  for (const MetricSeries& series : family->series) {
    if (!Matches(series.labels, match)) continue;
    sum += family->type == MetricType::kHistogram ? static_cast<double>(series.histogram.count)
                                                  : series.value;
  }
  return sum;
}

}  // namespace weir
