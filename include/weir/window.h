// Windows: assigners (tumbling, sliding, session; event or processing time),
// triggers (at the window's end, every N elements, early every N ms of
// processing time), allowed lateness with a late-data side output, and the
// functions that compute a window's result.
//
// Window contents live in keyed state, so they are checkpointed and restored.
// Sliding windows keep one accumulator per slice (pane) of gcd(size, slide):
// each element is one state update however many windows contain it; a window's
// result merges its panes when it fires.
//
// Example (top engagement per content over 10 minutes, refreshed every second):
//
//   events.KeyBy([](const Enriched& e) { return e.content_id; })
//       .Window(weir::SlidingEventTimeWindows::Of(absl::Minutes(10), absl::Minutes(1)))
//       .EarlyFiring(absl::Seconds(1))
//       .AllowedLateness(absl::Seconds(30))
//       .SideOutputLateData(kLate)
//       .Aggregate(weir::aggregations::Sum<Enriched>([](const Enriched& e) { return e.seconds; }),
//                  [](const std::string& id, const weir::TimeWindow& w, double total) {
//                    return Score{id, w.end, total};
//                  });

#ifndef WEIR_WINDOW_H_
#define WEIR_WINDOW_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "weir/functions.h"
#include "weir/time.h"

namespace weir {

// A window [start, end) of event (or processing) time.
struct TimeWindow {
  Timestamp start = 0;
  Timestamp end = 0;
  // The largest timestamp inside the window; results carry it.
  Timestamp max_timestamp() const { return end - 1; }
  bool operator==(const TimeWindow&) const = default;
};

// Which windows an element belongs to. Make one with the classes below.
struct WindowAssigner {
  enum class Kind { kTumbling, kSliding, kSession };
  Kind kind = Kind::kTumbling;
  bool event_time = true;
  int64_t size_ms = 0;
  int64_t slide_ms = 0;
  int64_t offset_ms = 0;
  int64_t gap_ms = 0;
};

struct TumblingEventTimeWindows {
  static WindowAssigner Of(absl::Duration size, absl::Duration offset = absl::ZeroDuration()) {
    const int64_t ms = absl::ToInt64Milliseconds(size);
    return {WindowAssigner::Kind::kTumbling, true, ms, ms, absl::ToInt64Milliseconds(offset), 0};
  }
};
struct SlidingEventTimeWindows {
  static WindowAssigner Of(absl::Duration size, absl::Duration slide,
                           absl::Duration offset = absl::ZeroDuration()) {
    return {WindowAssigner::Kind::kSliding,    true,
            absl::ToInt64Milliseconds(size),   absl::ToInt64Milliseconds(slide),
            absl::ToInt64Milliseconds(offset), 0};
  }
};
struct EventTimeSessionWindows {
  static WindowAssigner WithGap(absl::Duration gap) {
    return {WindowAssigner::Kind::kSession, true, 0, 0, 0, absl::ToInt64Milliseconds(gap)};
  }
};
struct TumblingProcessingTimeWindows {
  static WindowAssigner Of(absl::Duration size) {
    WindowAssigner a = TumblingEventTimeWindows::Of(size);
    a.event_time = false;
    return a;
  }
};
struct SlidingProcessingTimeWindows {
  static WindowAssigner Of(absl::Duration size, absl::Duration slide) {
    WindowAssigner a = SlidingEventTimeWindows::Of(size, slide);
    a.event_time = false;
    return a;
  }
};
struct ProcessingTimeSessionWindows {
  static WindowAssigner WithGap(absl::Duration gap) {
    WindowAssigner a = EventTimeSessionWindows::WithGap(gap);
    a.event_time = false;
    return a;
  }
};

// When a window emits. Default: once, when the watermark (or, for processing
// time windows, the clock) passes its end, and again for each late element
// within the allowed lateness.
struct WindowTrigger {
  // Additionally every `count` elements of a window (EarlyFiringOnCount). 0: off.
  int64_t count = 0;
  // Additionally every `early_ms` of processing time while the window is
  // open (partial results, e.g. a leaderboard refreshed every second). 0: off.
  int64_t early_ms = 0;
};

// An incremental aggregation: Add folds an element into the accumulator,
// Merge combines two accumulators (panes, sessions), GetResult produces the
// output. ACC needs a weir::Codec (it lives in keyed state).
template <class IN, class ACC, class OUT>
class AggregateFunction {
 public:
  using Input = IN;
  using Accumulator = ACC;
  using Output = OUT;
  virtual ~AggregateFunction() = default;
  virtual ACC CreateAccumulator() const = 0;
  virtual void Add(const IN& value, ACC& accumulator) const = 0;
  virtual void Merge(const ACC& other, ACC& accumulator) const = 0;
  virtual OUT GetResult(const ACC& accumulator) const = 0;
};

// Sees a whole window: its key, bounds and elements (Window().Process) or its
// aggregate (Window().Aggregate(agg, window_function)).
template <class IN, class OUT, class K>
class ProcessWindowFunction {
 public:
  virtual ~ProcessWindowFunction() = default;
  virtual absl::Status Process(const K& key, const TimeWindow& window,
                               const std::vector<IN>& elements, Collector<OUT>& out) = 0;
};

// Built-in aggregations.
namespace aggregations {

// Number of elements.
template <class IN>
class Count final : public AggregateFunction<IN, int64_t, int64_t> {
 public:
  int64_t CreateAccumulator() const override { return 0; }
  void Add(const IN&, int64_t& acc) const override { ++acc; }
  void Merge(const int64_t& other, int64_t& acc) const override { acc += other; }
  int64_t GetResult(const int64_t& acc) const override { return acc; }
};

// Sum of field(element).
template <class IN, class F = std::function<double(const IN&)>>
class Sum final : public AggregateFunction<IN, double, double> {
 public:
  explicit Sum(F field) : field_(std::move(field)) {}
  double CreateAccumulator() const override { return 0; }
  void Add(const IN& v, double& acc) const override { acc += static_cast<double>(field_(v)); }
  void Merge(const double& other, double& acc) const override { acc += other; }
  double GetResult(const double& acc) const override { return acc; }

 private:
  F field_;
};

// Minimum / maximum of field(element) (nullopt for an empty window).
template <class IN, bool kMax, class F = std::function<double(const IN&)>>
class Extreme final : public AggregateFunction<IN, std::optional<double>, std::optional<double>> {
 public:
  explicit Extreme(F field) : field_(std::move(field)) {}
  std::optional<double> CreateAccumulator() const override { return std::nullopt; }
  void Add(const IN& v, std::optional<double>& acc) const override {
    Fold(static_cast<double>(field_(v)), acc);
  }
  void Merge(const std::optional<double>& other, std::optional<double>& acc) const override {
    if (other) Fold(*other, acc);
  }
  std::optional<double> GetResult(const std::optional<double>& acc) const override { return acc; }

 private:
  static void Fold(double v, std::optional<double>& acc) {
    if (!acc || (kMax ? v > *acc : v < *acc)) acc = v;
  }
  F field_;
};
template <class IN, class F = std::function<double(const IN&)>>
using Min = Extreme<IN, false, F>;
template <class IN, class F = std::function<double(const IN&)>>
using Max = Extreme<IN, true, F>;

// Average of field(element) (nullopt for an empty window).
template <class IN, class F = std::function<double(const IN&)>>
class Average final
    : public AggregateFunction<IN, std::pair<double, int64_t>, std::optional<double>> {
 public:
  explicit Average(F field) : field_(std::move(field)) {}
  std::pair<double, int64_t> CreateAccumulator() const override { return {0, 0}; }
  void Add(const IN& v, std::pair<double, int64_t>& acc) const override {
    acc.first += static_cast<double>(field_(v));
    ++acc.second;
  }
  void Merge(const std::pair<double, int64_t>& other,
             std::pair<double, int64_t>& acc) const override {
    acc.first += other.first;
    acc.second += other.second;
  }
  std::optional<double> GetResult(const std::pair<double, int64_t>& acc) const override {
    if (acc.second == 0) return std::nullopt;
    return acc.first / static_cast<double>(acc.second);
  }

 private:
  F field_;
};

// The `n` elements with the highest score(element), highest first (ties:
// the earlier element first). Each pane keeps at most n, so merging is exact.
template <class IN, class F = std::function<double(const IN&)>>
class TopN final
    : public AggregateFunction<IN, std::vector<std::pair<double, IN>>, std::vector<IN>> {
 public:
  using Acc = std::vector<std::pair<double, IN>>;
  TopN(size_t n, F score) : n_(n), score_(std::move(score)) {}
  Acc CreateAccumulator() const override { return {}; }
  void Add(const IN& v, Acc& acc) const override {
    Insert({static_cast<double>(score_(v)), v}, acc);
  }
  void Merge(const Acc& other, Acc& acc) const override {
    for (const auto& entry : other) Insert(entry, acc);
  }
  std::vector<IN> GetResult(const Acc& acc) const override {
    std::vector<IN> out;
    for (const auto& entry : acc) out.push_back(entry.second);
    return out;
  }

 private:
  void Insert(const std::pair<double, IN>& entry, Acc& acc) const {
    auto it = std::upper_bound(acc.begin(), acc.end(), entry.first,
                               [](double score, const auto& e) { return score > e.first; });
    if (static_cast<size_t>(it - acc.begin()) >= n_) return;
    acc.insert(it, entry);
    if (acc.size() > n_) acc.pop_back();
  }
  size_t n_;
  F score_;
};

}  // namespace aggregations

}  // namespace weir

#endif  // WEIR_WINDOW_H_
