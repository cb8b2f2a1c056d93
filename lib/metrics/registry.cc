#include "lib/metrics/registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"

namespace weir::internal {

namespace {

bool IsNameChar(char c, bool first, bool label) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (alpha) return true;
  if (c == ':') return !label;
  return !first && c >= '0' && c <= '9';
}

// name{labels} with separators that cannot occur in a sanitized name.
std::string SeriesKey(std::string_view name, const MetricLabels& labels) {
  std::string key(name);
  for (const auto& [label, value] : labels) absl::StrAppend(&key, "\x1f", label, "\x1e", value);
  return key;
}

}  // namespace

std::string SanitizeMetricName(std::string_view name, bool label) {
  std::string out;
  out.reserve(name.size() + 1);
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) out.push_back('_');
  for (char c : name) out.push_back(IsNameChar(c, out.empty(), label) ? c : '_');
  return out;
}

MetricFamily* MetricsBuilder::Family(std::string_view name, std::string_view help,
                                     MetricType type) {
  auto [it, inserted] = index_.try_emplace(std::string(name), families_.size());
  if (inserted) {
    MetricFamily family;
    family.name = std::string(name);
    family.help = std::string(help);
    family.type = type;
    families_.push_back(std::move(family));
  }
  MetricFamily& family = families_[it->second];
  return family.type == type ? &family : nullptr;
}

void MetricsBuilder::AddCounter(std::string_view name, std::string_view help, MetricLabels labels,
                                double value) {
  if (MetricFamily* family = Family(name, help, MetricType::kCounter)) {
    family->series.push_back({std::move(labels), value, {}});
  }
}

void MetricsBuilder::AddGauge(std::string_view name, std::string_view help, MetricLabels labels,
                              double value) {
  if (MetricFamily* family = Family(name, help, MetricType::kGauge)) {
    family->series.push_back({std::move(labels), value, {}});
  }
}

void MetricsBuilder::AddHistogram(std::string_view name, std::string_view help, MetricLabels labels,
                                  HistogramSnapshot histogram) {
  if (MetricFamily* family = Family(name, help, MetricType::kHistogram)) {
    family->series.push_back({std::move(labels), 0, std::move(histogram)});
  }
}

MetricsSnapshot MetricsBuilder::Finish(int64_t timestamp_ms) && {
  MetricsSnapshot snapshot;
  snapshot.families = std::move(families_);
  snapshot.timestamp_ms = timestamp_ms;
  return snapshot;
}

class MetricRegistry::GroupImpl final : public MetricGroup {
 public:
  GroupImpl(MetricRegistry* registry, MetricLabels labels)
      : registry_(registry), labels_(std::move(labels)) {}

  const MetricLabels& labels() const override { return labels_; }

  Counter& AddCounter(std::string_view name, std::string_view help,
                      const MetricLabels& labels) override {
    return *registry_->Register(labels_, name, help, MetricType::kCounter, labels, {}).counter;
  }
  Gauge& AddGauge(std::string_view name, std::string_view help,
                  const MetricLabels& labels) override {
    return *registry_->Register(labels_, name, help, MetricType::kGauge, labels, {}).gauge;
  }
  Histogram& AddHistogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                          const MetricLabels& labels) override {
    return *registry_
                ->Register(labels_, name, help, MetricType::kHistogram, labels, std::move(bounds))
                .histogram;
  }

 private:
  MetricRegistry* registry_;
  MetricLabels labels_;
};

MetricRegistry::MetricRegistry(MetricLabels labels) : labels_(std::move(labels)) {
  job_group_ = std::make_unique<GroupImpl>(this, labels_);
}

MetricRegistry::~MetricRegistry() = default;

MetricGroup& MetricRegistry::Group(const std::string& op, int worker) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::unique_ptr<GroupImpl>& group = groups_[{op, worker}];
  if (group == nullptr) {
    MetricLabels labels = labels_;
    labels.emplace_back("operator", op);
    labels.emplace_back("worker", absl::StrCat(worker));
    group = std::make_unique<GroupImpl>(this, std::move(labels));
  }
  return *group;
}

MetricGroup& MetricRegistry::JobGroup() { return *job_group_; }

MetricRegistry::Entry& MetricRegistry::Register(const MetricLabels& group_labels,
                                                std::string_view name, std::string_view help,
                                                MetricType type, const MetricLabels& labels,
                                                std::vector<double> bounds) {
  const std::string clean = SanitizeMetricName(name);
  MetricLabels all = group_labels;
  for (const auto& [label, value] : labels)
    all.emplace_back(SanitizeMetricName(label, true), value);
  const std::string key = SeriesKey(clean, all);

  std::lock_guard<std::mutex> lock(mutex_);
  auto found = by_key_.find(key);
  if (found != by_key_.end() && found->second->type == type) return *found->second;

  auto entry = std::make_unique<Entry>();
  entry->name = clean;
  entry->help = std::string(help);
  entry->type = type;
  entry->labels = std::move(all);
  switch (type) {
    case MetricType::kCounter:
      entry->counter = std::make_unique<Counter>();
      break;
    case MetricType::kGauge:
      entry->gauge = std::make_unique<Gauge>();
      break;
    case MetricType::kHistogram:
      entry->histogram = bounds.empty() ? std::make_unique<Histogram>()
                                        : std::make_unique<Histogram>(std::move(bounds));
      break;
  }
  auto [type_it, first] = types_.try_emplace(clean, type);
  if (!first && type_it->second != type) {
    Log("metric '", clean, "' is already registered with another type; this one is not exported");
    entry->exported = false;
  } else {
    by_key_[key] = entry.get();
  }
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

void MetricRegistry::AddCollector(Collector collector) {
  std::lock_guard<std::mutex> lock(mutex_);
  collectors_.push_back(std::move(collector));
}

MetricsSnapshot MetricRegistry::Collect() const {
  MetricsBuilder builder;
  std::vector<Collector> collectors;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    collectors = collectors_;
  }
  // Collectors may take the locks of what they read; not under ours.
  for (const Collector& collector : collectors) collector(builder);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& entry : entries_) {
    if (!entry->exported) continue;
    switch (entry->type) {
      case MetricType::kCounter:
        builder.AddCounter(entry->name, entry->help, entry->labels,
                           static_cast<double>(entry->counter->value()));
        break;
      case MetricType::kGauge:
        builder.AddGauge(entry->name, entry->help, entry->labels, entry->gauge->value());
        break;
      case MetricType::kHistogram:
        builder.AddHistogram(entry->name, entry->help, entry->labels, entry->histogram->Snapshot());
        break;
    }
  }
  return std::move(builder).Finish(absl::ToUnixMillis(absl::Now()));
}

MetricGroup& DetachedMetricGroup() {
  static MetricRegistry* registry = new MetricRegistry(MetricLabels{{"job", "detached"}});
  return registry->JobGroup();
}

}  // namespace weir::internal
