// The window operators behind WindowedStream: tumbling and sliding windows by
// panes (PaneWindowFunction, PaneStore) and session windows
// (SessionWindowFunction), both keyed process functions. Internal.

#ifndef WEIR_INTERNAL_WINDOW_OPERATOR_H_
#define WEIR_INTERNAL_WINDOW_OPERATOR_H_

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "weir/codec.h"
#include "weir/functions.h"
#include "weir/internal/key_encoding.h"
#include "weir/internal/keyed_state_backend.h"
#include "weir/internal/state_tables.h"
#include "weir/key.h"
#include "weir/state.h"
#include "weir/time.h"
#include "weir/window.h"

namespace weir::internal {

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

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_WINDOW_OPERATOR_H_
