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
#include <concepts>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "weir/codec.h"
#include "weir/functions.h"
#include "weir/key.h"
#include "weir/state.h"
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

namespace internal {

// A window function's error, carried out of the firing code.
class WindowError {
 public:
  explicit WindowError(absl::Status status) : status(std::move(status)) {}
  absl::Status status;
};

// Runs body; turns a WindowError into the returned status.
template <class Body>
absl::Status CatchWindowError(Body&& body) {
  try {
    body();
  } catch (const WindowError& error) {
    return error.status;
  }
  return absl::OkStatus();
}

inline int64_t FloorMod(int64_t a, int64_t b) {
  const int64_t m = a % b;
  return m < 0 ? m + b : m;
}

// One table of keyed state that a window operator reaches directly: looked up
// by name once per worker (GetState looks it up per call), and accessed in the
// current key's scope with a namespace (a pane, window or session start).
template <class Table>
class WindowTable {
 public:
  explicit WindowTable(const char* name) : name_(name) {}
  Table& Get(StateAccess& access) {
    KeyedStateBackend* backend = &access.Backend();
    if (backend != backend_) {
      table_ = backend->template GetOrCreate<Table>(name_, 0);
      backend_ = backend;
    }
    return *table_;
  }

 private:
  const char* name_;
  KeyedStateBackend* backend_ = nullptr;
  Table* table_ = nullptr;
};

// Scopes the current key's state to namespace `ns` while it lives, then goes
// back to the key's empty namespace, which the rest of the record expects.
class ScopedNamespace {
 public:
  ScopedNamespace(KeyScope& scope, int64_t ns) : scope_(scope) { scope_.SetNamespaceTo(ns); }
  ~ScopedNamespace() { scope_.ClearNamespace(); }
  ScopedNamespace(const ScopedNamespace&) = delete;
  ScopedNamespace& operator=(const ScopedNamespace&) = delete;

 private:
  KeyScope& scope_;
};

// The panes' accumulators, (key, pane start) -> ACC. For keys with a stable
// hash and a codec, a typed table on both backends: an element costs one
// lookup of a baseline-sized slot, with no key encoding or byte hashing; with
// RocksDB the table is its bounded write-back cache (slots carry flags), in
// memory the state itself (no flags). Other keys use the byte-keyed
// ValueTable. All keep the same bytes under one name, so a checkpoint of one
// restores into the others.
template <class K, class ACC>
class PaneStore {
  static constexpr bool kTyped = kHasKeyTraits<K> && kHasCodec<K> && std::equality_comparable<K> &&
                                 std::default_initializable<ACC>;

 public:
  ACC* Mutable(const K& key, int64_t pane, StateAccess& access) {
    if constexpr (kTyped) {
      return Typed(access, [&](auto& table) { return table.Mutable(key, pane); });
    } else {
      ScopedNamespace in_pane(access.Scope(), pane);
      return bytes_.Get(access).Mutable(access.Scope());
    }
  }
  const ACC* Get(const K& key, int64_t pane, StateAccess& access) {
    if constexpr (kTyped) {
      return Typed(access, [&](auto& table) { return table.Get(key, pane); });
    } else {
      ScopedNamespace in_pane(access.Scope(), pane);
      return bytes_.Get(access).Get(access.Scope());
    }
  }
  void Put(const K& key, int64_t pane, ACC acc, StateAccess& access) {
    if constexpr (kTyped) {
      Typed(access, [&](auto& table) { table.Put(key, pane, std::move(acc)); });
    } else {
      ScopedNamespace in_pane(access.Scope(), pane);
      bytes_.Get(access).Put(access.Scope(), std::move(acc));
    }
  }
  void Prefetch(const K& key, int64_t pane, StateAccess& access) {
    if constexpr (kTyped) Typed(access, [&](auto& table) { table.Prefetch(key, pane); });
  }
  void Remove(const K& key, int64_t pane, StateAccess& access) {
    if constexpr (kTyped) {
      Typed(access, [&](auto& table) { table.Remove(key, pane); });
    } else {
      ScopedNamespace in_pane(access.Scope(), pane);
      bytes_.Get(access).Remove(access.Scope());
    }
  }

 private:
  static constexpr const char* kName = "window-pane";
  using InMemory = NamespacedValueTable<K, ACC, /*kWriteBack=*/false>;
  using Cached = NamespacedValueTable<K, ACC, /*kWriteBack=*/true>;

  // Calls fn with the typed table of the access's backend.
  template <class Fn>
  decltype(auto) Typed(StateAccess& access, Fn&& fn) {
    KeyedStateBackend* backend = &access.Backend();
    if (backend != backend_) {
      backend_ = backend;
      in_memory_ = nullptr;
      cached_ = nullptr;
      if (backend->store() == nullptr) {
        in_memory_ = backend->template GetOrCreate<InMemory>(kName, 0);
      } else {
        cached_ = backend->template GetOrCreate<Cached>(kName, 0);
      }
    }
    return in_memory_ != nullptr ? fn(*in_memory_) : fn(*cached_);
  }

  KeyedStateBackend* backend_ = nullptr;
  InMemory* in_memory_ = nullptr;
  Cached* cached_ = nullptr;
  WindowTable<ValueTable<ACC>> bytes_{kName};
};

// Tumbling and sliding windows as a keyed process function, used by
// WindowedStream. As in Flink's WindowOperator, a pane's accumulator is a
// value scoped to (key, namespace = pane start), so an element costs one hash
// lookup of (key, pane). Timers (window ends, cleanup) are registered only
// when a pane is created; a small per-key index of pane starts, touched only
// when a pane comes or goes, lets cleanup and early firing find a key's panes.
// `Emit(key, window, const ACC&, collector)` produces output.
template <class K, class IN, class ACC, class OUT, class Agg, class Emit>
class PaneWindowFunction final : public KeyedProcessFunction<K, IN, OUT> {
  using Base = KeyedProcessFunction<K, IN, OUT>;

 public:
  PaneWindowFunction(WindowAssigner assigner, WindowTrigger trigger, int64_t lateness_ms,
                     std::optional<OutputTag<IN>> late_tag, Agg agg, Emit emit)
      : a_(assigner),
        trigger_(trigger),
        lateness_(lateness_ms),
        late_tag_(std::move(late_tag)),
        agg_(std::move(agg)),
        emit_(std::move(emit)),
        pane_(a_.kind == WindowAssigner::Kind::kTumbling ? a_.size_ms
                                                         : std::gcd(a_.size_ms, a_.slide_ms)) {}

  absl::Status ProcessElement(const IN& value, typename Base::Context& ctx,
                              Collector<OUT>& out) override {
    return CatchWindowError([&] { Element(value, ctx, out); });
  }
  absl::Status OnTimer(Timestamp ts, typename Base::OnTimerContext& ctx,
                       Collector<OUT>& out) override {
    return CatchWindowError([&] { Timer(ts, ctx, out); });
  }
  // Called by the keyed operator for an element a few ahead of the one it
  // processes: starts loading its pane's slot (event time only; a
  // processing-time pane depends on the clock when the element is processed).
  void PrefetchState(const IN&, const K& key, Timestamp ts, StateAccess& access) {
    if (a_.event_time) panes_.Prefetch(key, ts - FloorMod(ts - a_.offset_ms, pane_), access);
  }

 private:
  void Element(const IN& value, typename Base::Context& ctx, Collector<OUT>& out) {
    const Timestamp ts = a_.event_time ? ctx.timestamp() : ctx.current_processing_time();
    const Timestamp now = Now(ctx);
    // Windows containing ts start on the slide grid in (ts - size, ts]. The
    // last one ends last: if it is late (or, when slide > size, does not
    // contain ts), every one is.
    const Timestamp last_start = ts - FloorMod(ts - a_.offset_ms, a_.slide_ms);
    if (last_start <= ts - a_.size_ms || IsLate(last_start, now)) {
      OperatorMetrics::Add(ContextAccess::Metrics(ctx).late_records, 1);
      if (late_tag_) ctx.Output(*late_tag_, value);
      return;
    }
    const Timestamp pane = ts - FloorMod(ts - a_.offset_ms, pane_);
    StateAccess& access = ContextAccess::State(ctx);
    const K& key = ctx.current_key();
    // The key's scope (its bytes) is set up only when needed: the typed pane
    // table does without it.
    if (ACC* acc = panes_.Mutable(key, pane, access)) {
      agg_.Add(value, *acc);
    } else {
      ACC fresh = agg_.CreateAccumulator();
      agg_.Add(value, fresh);
      panes_.Put(key, pane, std::move(fresh), access);
      AddToIndex(pane, access, access.Scope());
      RegisterTimers(pane, now, ctx);
    }
    OperatorMetrics::Add(ContextAccess::Metrics(ctx).state_writes, 1);
    // Only an element behind the watermark can belong to a window that has
    // ended (late, within the allowed lateness), which then fires again.
    if (trigger_.count == 0 && ts > now) return;
    KeyScope& scope = access.Scope();
    for (Timestamp start = last_start; start > ts - a_.size_ms; start -= a_.slide_ms) {
      if (IsLate(start, now)) continue;
      bool fire = start + a_.size_ms - 1 <= now;
      if (trigger_.count > 0 && CountElement(start, access, scope) % trigger_.count == 0) {
        fire = true;
      }
      if (fire) FireWindow(ctx.current_key(), start, access, out);
    }
  }

  void Timer(Timestamp ts, typename Base::OnTimerContext& ctx, Collector<OUT>& out) {
    StateAccess& access = ContextAccess::State(ctx);
    KeyScope& scope = access.Scope();
    const bool window_domain = (ctx.time_domain() == TimeDomain::kEventTime) == a_.event_time;
    if (!window_domain) {
      // Early firing: partial results of every open window of this key.
      const std::vector<Timestamp> starts = OpenWindows(Now(ctx), access, scope);
      for (Timestamp start : starts) FireWindow(ctx.current_key(), start, access, out);
      if (!starts.empty()) ctx.timer_service().RegisterProcessingTimeTimer(NextEarly(ctx));
      return;
    }
    // The window ending at ts + 1 fires (if ts is a window end on the grid).
    const Timestamp start = ts + 1 - a_.size_ms;
    if (FloorMod(start - a_.offset_ms, a_.slide_ms) == 0) {
      FireWindow(ctx.current_key(), start, access, out);
    }
    RemoveExpiredPanes(ctx.current_key(), ts, access, scope);
  }

  template <class Ctx>
  Timestamp Now(Ctx& ctx) const {
    return a_.event_time ? ctx.current_watermark() : ctx.current_processing_time();
  }
  // A window is late once its end + lateness has passed.
  bool IsLate(Timestamp start, Timestamp now) const {
    return start + a_.size_ms - 1 + lateness_ <= now;
  }
  // The start of the last window containing `pane`.
  Timestamp LastStart(Timestamp pane) const {
    return pane - FloorMod(pane - a_.offset_ms, a_.slide_ms);
  }
  // When the pane's last window is past the allowed lateness.
  Timestamp CleanupTime(Timestamp pane) const {
    return LastStart(pane) + a_.size_ms - 1 + lateness_;
  }
  template <class Ctx>
  Timestamp NextEarly(Ctx& ctx) const {
    const Timestamp now = ctx.current_processing_time();
    return (now / trigger_.early_ms + 1) * trigger_.early_ms;
  }

  template <class Ctx>
  void RegisterTimers(Timestamp pane, Timestamp now, Ctx& ctx) {
    TimerService& timers = ctx.timer_service();
    auto reg = [&](Timestamp t) {
      a_.event_time ? timers.RegisterEventTimeTimer(t) : timers.RegisterProcessingTimeTimer(t);
    };
    // The end of every window the pane belongs to, and its cleanup. A window
    // whose end already passed (a late element within the allowed lateness)
    // fired in Element: a timer in the past would fire it a second time.
    for (Timestamp start = LastStart(pane); start > pane - a_.size_ms; start -= a_.slide_ms) {
      if (start + a_.size_ms - 1 > now) reg(start + a_.size_ms - 1);
    }
    reg(CleanupTime(pane));
    if (trigger_.early_ms > 0 && a_.event_time) timers.RegisterProcessingTimeTimer(NextEarly(ctx));
  }

  // The key's pane starts, in order, in its empty namespace.
  void AddToIndex(Timestamp pane, StateAccess& access, KeyScope& scope) {
    ValueTable<std::vector<int64_t>>& index = index_.Get(access);
    std::vector<int64_t>* starts = index.Mutable(scope);
    if (starts == nullptr) {
      index.Put(scope, {pane});
      return;
    }
    auto it = std::lower_bound(starts->begin(), starts->end(), pane);
    if (it == starts->end() || *it != pane) starts->insert(it, pane);
  }

  // Drops the panes whose last window is past the allowed lateness at `time`,
  // with the element counts of their windows (all past it too).
  void RemoveExpiredPanes(const K& key, Timestamp time, StateAccess& access, KeyScope& scope) {
    ValueTable<std::vector<int64_t>>& index = index_.Get(access);
    const std::vector<int64_t>* starts = index.Get(scope);
    if (starts == nullptr) return;
    std::vector<int64_t> expired;
    std::vector<int64_t> kept;
    for (int64_t pane : *starts) (CleanupTime(pane) <= time ? expired : kept).push_back(pane);
    if (expired.empty()) return;
    if (kept.empty()) {
      index.Remove(scope);
    } else {
      index.Put(scope, std::move(kept));
    }
    for (int64_t pane : expired) panes_.Remove(key, pane, access);
    if (trigger_.count == 0) return;
    ValueTable<int64_t>& counts = counts_.Get(access);
    for (int64_t pane : expired) {
      for (Timestamp start = LastStart(pane); start > pane - a_.size_ms; start -= a_.slide_ms) {
        ScopedNamespace in_window(scope, start);
        counts.Remove(scope);
      }
    }
  }

  // EarlyFiringOnCount: the window's element count, including this element.
  int64_t CountElement(Timestamp start, StateAccess& access, KeyScope& scope) {
    ScopedNamespace in_window(scope, start);
    ValueTable<int64_t>& counts = counts_.Get(access);
    if (int64_t* n = counts.Mutable(scope)) return ++*n;
    counts.Put(scope, 1);
    return 1;
  }

  // Starts of windows that have panes and have not reached their end.
  std::vector<Timestamp> OpenWindows(Timestamp now, StateAccess& access, KeyScope& scope) {
    std::vector<Timestamp> starts;
    const std::vector<int64_t>* panes = index_.Get(access).Get(scope);
    if (panes == nullptr) return starts;
    for (int64_t pane : *panes) {
      for (Timestamp start = LastStart(pane); start > pane - a_.size_ms; start -= a_.slide_ms) {
        if (start + a_.size_ms - 1 > now) starts.push_back(start);
      }
    }
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    return starts;
  }

  void FireWindow(const K& key, Timestamp start, StateAccess& access, Collector<OUT>& out) {
    const TimeWindow window{start, start + a_.size_ms};
    if (pane_ == a_.size_ms) {
      // The window is one pane: emit straight from state, without a copy.
      if (const ACC* acc = panes_.Get(key, start, access)) EmitResult(key, window, *acc, out);
      return;
    }
    // The window's panes that exist, from the key's index: probing each
    // pane slot of the window would read RocksDB for every absent one.
    const std::vector<int64_t>* panes = index_.Get(access).Get(access.Scope());
    if (panes == nullptr) return;
    std::optional<ACC> merged;
    for (auto it = std::lower_bound(panes->begin(), panes->end(), start);
         it != panes->end() && *it < start + a_.size_ms; ++it) {
      const ACC* acc = panes_.Get(key, *it, access);
      if (acc == nullptr) continue;
      if (!merged) {
        merged = *acc;
      } else {
        agg_.Merge(*acc, *merged);
      }
    }
    if (merged) EmitResult(key, window, *merged, out);
  }

  void EmitResult(const K& key, const TimeWindow& window, const ACC& acc, Collector<OUT>& out) {
    absl::Status status = emit_(key, window, acc, out);
    if (!status.ok()) throw WindowError(status);
  }

  WindowAssigner a_;
  WindowTrigger trigger_;
  int64_t lateness_;
  std::optional<OutputTag<IN>> late_tag_;
  Agg agg_;
  Emit emit_;
  int64_t pane_;
  // (key, pane start) -> the pane's accumulator.
  PaneStore<K, ACC> panes_;
  // key -> its pane starts, sorted.
  WindowTable<ValueTable<std::vector<int64_t>>> index_{"window-pane-index"};
  // (key, window start) -> elements so far (EarlyFiringOnCount only).
  WindowTable<ValueTable<int64_t>> counts_{"window-count"};
};

// Session windows: per key, a map from session start to (end, accumulator);
// a new element opens [ts, ts + gap) and merges every session it overlaps
// (so a late element can bridge two sessions). Triggers as Flink's with
// merging windows: EarlyFiringOnCount counts a session's elements since it last
// fired on count (merged sessions add their counts) and fires at N;
// EarlyFiring emits every open session of a key every N ms of processing time.
template <class K, class IN, class ACC, class OUT, class Agg, class Emit>
class SessionWindowFunction final : public KeyedProcessFunction<K, IN, OUT> {
  using Base = KeyedProcessFunction<K, IN, OUT>;
  using Session = std::pair<int64_t, ACC>;  // (end, accumulator)

 public:
  SessionWindowFunction(WindowAssigner assigner, WindowTrigger trigger, int64_t lateness_ms,
                        std::optional<OutputTag<IN>> late_tag, Agg agg, Emit emit)
      : a_(assigner),
        trigger_(trigger),
        lateness_(lateness_ms),
        late_tag_(std::move(late_tag)),
        agg_(std::move(agg)),
        emit_(std::move(emit)) {}

  absl::Status ProcessElement(const IN& value, typename Base::Context& ctx,
                              Collector<OUT>& out) override {
    return CatchWindowError([&] { Element(value, ctx, out); });
  }
  absl::Status OnTimer(Timestamp ts, typename Base::OnTimerContext& ctx,
                       Collector<OUT>& out) override {
    return CatchWindowError([&] { Timer(ts, ctx, out); });
  }

 private:
  template <class Ctx>
  Timestamp Now(Ctx& ctx) const {
    return a_.event_time ? ctx.current_watermark() : ctx.current_processing_time();
  }
  template <class Ctx>
  void Register(Ctx& ctx, Timestamp t, bool remove) {
    TimerService& timers = ctx.timer_service();
    if (a_.event_time) {
      remove ? timers.DeleteEventTimeTimer(t) : timers.RegisterEventTimeTimer(t);
    } else {
      remove ? timers.DeleteProcessingTimeTimer(t) : timers.RegisterProcessingTimeTimer(t);
    }
  }
  template <class Ctx>
  Timestamp NextEarly(Ctx& ctx) const {
    const Timestamp now = ctx.current_processing_time();
    return (now / trigger_.early_ms + 1) * trigger_.early_ms;
  }

  void Element(const IN& value, typename Base::Context& ctx, Collector<OUT>& out) {
    const Timestamp ts = a_.event_time ? ctx.timestamp() : ctx.current_processing_time();
    const Timestamp now = Now(ctx);
    StateAccess& access = ContextAccess::State(ctx);
    MapState<int64_t, Session> sessions(&sessions_.Get(access), &access);
    Timestamp start = ts;
    Timestamp end = ts + a_.gap_ms;
    std::vector<std::pair<int64_t, Session>> overlapping;
    // Timers the other sessions still need: one's end can be another's cleanup.
    std::vector<Timestamp> needed;
    sessions.ForEach([&](const int64_t& s, const Session& session) {
      if (s <= end && start <= session.first) {
        overlapping.push_back({s, session});
      } else {
        needed.push_back(session.first - 1);
        needed.push_back(session.first - 1 + lateness_);
      }
    });
    for (const auto& [s, session] : overlapping) {
      start = std::min<Timestamp>(start, s);
      end = std::max<Timestamp>(end, session.first);
    }
    if (end - 1 + lateness_ <= now) {
      OperatorMetrics::Add(ContextAccess::Metrics(ctx).late_records, 1);
      if (late_tag_) ctx.Output(*late_tag_, value);
      return;
    }
    std::optional<MapState<int64_t, int64_t>> counts;
    if (trigger_.count > 0) counts.emplace(&counts_.Get(access), &access);
    int64_t pending = 1;  // elements since the session last fired on count
    ACC acc = agg_.CreateAccumulator();
    for (const auto& [s, session] : overlapping) {
      agg_.Merge(session.second, acc);
      sessions.Remove(s);
      if (counts) {
        pending += counts->Get(s).value_or(0);
        counts->Remove(s);
      }
      for (Timestamp t : {session.first - 1, session.first - 1 + lateness_}) {
        if (std::find(needed.begin(), needed.end(), t) == needed.end()) Register(ctx, t, true);
      }
    }
    agg_.Add(value, acc);
    OperatorMetrics::Add(ContextAccess::Metrics(ctx).state_writes, 1);
    // Already past its end (a late element within lateness): fire again now.
    bool fire = end - 1 <= now;
    if (counts) {
      if (pending >= trigger_.count) {
        fire = true;
        pending = 0;
      }
      if (pending > 0) counts->Put(start, pending);
    }
    sessions.Put(start, Session{end, acc});
    // An end already passed fires below, not again from a timer in the past.
    if (end - 1 > now) Register(ctx, end - 1, false);
    Register(ctx, end - 1 + lateness_, false);
    if (trigger_.early_ms > 0 && a_.event_time) {
      ctx.timer_service().RegisterProcessingTimeTimer(NextEarly(ctx));
    }
    if (fire) Fire(ctx.current_key(), start, end, acc, out);
  }

  void Timer(Timestamp ts, typename Base::OnTimerContext& ctx, Collector<OUT>& out) {
    StateAccess& access = ContextAccess::State(ctx);
    MapState<int64_t, Session> sessions(&sessions_.Get(access), &access);
    if ((ctx.time_domain() == TimeDomain::kEventTime) != a_.event_time) {
      // Early firing: partial results of this key's open sessions.
      const Timestamp now = Now(ctx);
      bool open = false;
      sessions.ForEach([&](const int64_t& s, const Session& session) {
        if (session.first - 1 <= now) return;
        open = true;
        Fire(ctx.current_key(), s, session.first, session.second, out);
      });
      if (open) ctx.timer_service().RegisterProcessingTimeTimer(NextEarly(ctx));
      return;
    }
    std::vector<int64_t> expired;
    sessions.ForEach([&](const int64_t& s, const Session& session) {
      if (session.first - 1 == ts) Fire(ctx.current_key(), s, session.first, session.second, out);
      if (session.first - 1 + lateness_ <= ts) expired.push_back(s);
    });
    for (int64_t s : expired) sessions.Remove(s);
    if (trigger_.count > 0 && !expired.empty()) {
      MapState<int64_t, int64_t> counts(&counts_.Get(access), &access);
      for (int64_t s : expired) counts.Remove(s);
    }
  }

  void Fire(const K& key, Timestamp start, Timestamp end, const ACC& acc, Collector<OUT>& out) {
    absl::Status status = emit_(key, TimeWindow{start, end}, acc, out);
    if (!status.ok()) throw WindowError(status);
  }

  WindowAssigner a_;
  WindowTrigger trigger_;
  int64_t lateness_;
  std::optional<OutputTag<IN>> late_tag_;
  Agg agg_;
  Emit emit_;
  // key -> session start -> (end, accumulator).
  WindowTable<MapTable<int64_t, Session>> sessions_{"window-sessions"};
  // key -> session start -> elements since it last fired on count (EarlyFiringOnCount only).
  WindowTable<MapTable<int64_t, int64_t>> counts_{"window-session-counts"};
};

// The "aggregate" of a ProcessWindowFunction: every element.
template <class T>
class ElementsAggregate final : public AggregateFunction<T, std::vector<T>, std::vector<T>> {
 public:
  std::vector<T> CreateAccumulator() const override { return {}; }
  void Add(const T& value, std::vector<T>& acc) const override { acc.push_back(value); }
  void Merge(const std::vector<T>& other, std::vector<T>& acc) const override {
    acc.insert(acc.end(), other.begin(), other.end());
  }
  std::vector<T> GetResult(const std::vector<T>& acc) const override { return acc; }
};

}  // namespace internal

}  // namespace weir

#endif  // WEIR_WINDOW_H_
