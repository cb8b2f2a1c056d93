// User functions and their contexts: ProcessFunction, KeyedProcessFunction
// (with event-time and processing-time timers), BroadcastProcessFunction, the
// Collector they emit through and typed side outputs (OutputTag).
//
// One instance of a function runs per worker (each worker gets its own copy of
// the object you pass), so a function may keep per-worker members without
// locking; members are not checkpointed, so what must survive a restore goes
// in keyed state (GetState). Functions report failure by returning a non-OK absl::Status (or by
// throwing); the job then fails with a status naming the operator.
//
// Example: a count per user, kept in keyed state (so checkpoints save it and
// a restore brings it back; a member map would be lost), emitted a minute of
// event time after the user's first event.
//
//   class CountPerUser : public weir::KeyedProcessFunction<uint64_t, Event, Count> {
//    public:
//     absl::Status ProcessElement(const Event& e, Context& ctx, weir::Collector<Count>& out)
//     override {
//       weir::ValueState<int64_t> count = ctx.GetState(kCount);
//       const int64_t* before = count.Get();
//       if (before == nullptr) {
//         ctx.timer_service().RegisterEventTimeTimer(ctx.timestamp() + 60'000);
//       }
//       count.Update((before != nullptr ? *before : 0) + 1);
//       return absl::OkStatus();
//     }
//     absl::Status OnTimer(weir::Timestamp ts, OnTimerContext& ctx,
//                          weir::Collector<Count>& out) override {
//       weir::ValueState<int64_t> count = ctx.GetState(kCount);
//       out.Collect(Count{ctx.current_key(), *count.Get()});
//       count.Clear();
//       return absl::OkStatus();
//     }
//    private:
//     static inline const weir::ValueStateDescriptor<int64_t> kCount{"count"};
//   };

#ifndef WEIR_FUNCTIONS_H_
#define WEIR_FUNCTIONS_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "weir/internal/operator.h"
#include "weir/metrics.h"
#include "weir/state.h"
#include "weir/time.h"

namespace weir {

// Where a function emits its results. Records get the timestamp of the
// element being processed (or of the timer firing) unless given one.
// Not thread-safe; valid only during the call it is passed to.
template <class T>
class Collector {
 public:
  // Internal: created by the runtime.
  Collector(internal::Emitter<T>* emitter, size_t batch_size)
      : emitter_(emitter), batch_size_(batch_size) {
    batch_.reserve(batch_size);
  }
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // A record passed as an rvalue (`out.Collect(std::move(r))`, or a
  // temporary) is moved into the output batch once; an lvalue is copied.
  void Collect(const T& value) { CollectWithTimestamp(value, timestamp_); }
  void Collect(T&& value) { CollectWithTimestamp(std::move(value), timestamp_); }
  void CollectWithTimestamp(const T& value, Timestamp timestamp) {
    batch_.Push(value, timestamp);
    if (batch_.size() >= batch_size_) Flush();
  }
  void CollectWithTimestamp(T&& value, Timestamp timestamp) {
    batch_.Push(std::move(value), timestamp);
    if (batch_.size() >= batch_size_) Flush();
  }

  // Internal: the default timestamp for Collect().
  void SetTimestamp(Timestamp timestamp) { timestamp_ = timestamp; }
  // Internal: hands buffered records downstream.
  void Flush() {
    if (batch_.empty()) return;
    emitter_->EmitBatch(batch_);
    batch_.clear();
  }

 private:
  internal::Emitter<T>* emitter_;
  size_t batch_size_;
  Timestamp timestamp_ = kMinTimestamp;
  internal::Batch<T> batch_;
};

// Names a typed side output of a Process operator. Declare it once and use
// the same tag in the function (ctx.Output) and when wiring
// (stream.SideOutput(tag)). Records sent to a side output that nothing
// consumes are discarded.
//
//   const weir::OutputTag<std::string> kRejected("rejected");
template <class U>
class OutputTag {
 public:
  explicit OutputTag(std::string id) : id_(std::move(id)) {}
  const std::string& id() const { return id_; }

 private:
  std::string id_;
};

// What a function learns about where it runs; passed to Open().
struct RuntimeContext {
  std::string operator_name;
  int worker_index = 0;
  int parallelism = 1;
  int max_parallelism = 128;
  // Where the function registers its own metrics (weir/metrics.h); labelled
  // with the job, the operator and the worker. Never null in Open().
  MetricGroup* metrics = nullptr;
};

// Which clock a timer belongs to.
enum class TimeDomain { kEventTime, kProcessingTime };

namespace internal {
struct ContextAccess;
}  // namespace internal

// The context every process function gets: the current element's timestamp,
// the operator's watermark, processing time and side outputs.
class ProcessContext {
 public:
  // Event timestamp of the element being processed (or of the timer firing).
  Timestamp timestamp() const { return timestamp_; }
  // The operator's current watermark.
  Timestamp current_watermark() const { return op_->current_watermark(); }
  // Processing time now, milliseconds since the epoch.
  Timestamp current_processing_time() const { return op_->env().Now(); }
  int worker_index() const { return op_->env().worker_index; }
  // This operator instance's metric group (the same as RuntimeContext::metrics);
  // keep what Add* returns rather than looking it up per element.
  MetricGroup& metrics() const { return op_->metric_group(); }

  // Emits `value` to the side output `tag`, with the current timestamp.
  template <class U>
  void Output(const OutputTag<U>& tag, U value) {
    if (auto* channel = op_->side_outputs().template Find<U>(tag.id())) {
      channel->Push(std::move(value), timestamp_);
    }
  }

 protected:
  explicit ProcessContext(internal::OperatorBase* op) : op_(op) {}
  ~ProcessContext() = default;
  // The watermark of input `port` alone (for two-input functions).
  Timestamp input_watermark(int port) const { return op_->input_watermark(port); }

 private:
  friend struct internal::ContextAccess;
  internal::OperatorBase* op_;
  Timestamp timestamp_ = kMinTimestamp;
};

// Registers and deletes timers for the current key. Timers are deduplicated
// per (key, timestamp). Event-time timers fire when the watermark reaches
// their timestamp (all fire at end of input); processing-time timers fire
// when the wall clock does.
//
// Watermark holds: a function that keeps an element to emit later (waiting
// for a row, a deadline) registers a hold at the element's timestamp. The
// operator's output watermark then stays below the earliest hold, so the
// element is not late downstream when it goes out; deleting the hold lets
// the watermark advance (and an idle operator report idleness) again. Holds
// are deduplicated per (key, timestamp) like timers and checkpointed with
// them.
class TimerService {
 public:
  virtual ~TimerService() = default;
  virtual Timestamp current_processing_time() const = 0;
  virtual Timestamp current_watermark() const = 0;
  virtual void RegisterEventTimeTimer(Timestamp time) = 0;
  virtual void RegisterProcessingTimeTimer(Timestamp time) = 0;
  virtual void DeleteEventTimeTimer(Timestamp time) = 0;
  virtual void DeleteProcessingTimeTimer(Timestamp time) = 0;
  virtual void RegisterWatermarkHold(Timestamp time) = 0;
  virtual void DeleteWatermarkHold(Timestamp time) = 0;
};

// A function applied to each element of a (non-keyed) stream.
//
// A subclass may also declare
//   absl::Status ProcessElement(IN&& value, Context& ctx, Collector<OUT>& out);
// next to the const& one: the operator owns the elements it receives and
// then hands each over as an rvalue, so the function can move out of it
// (e.g. collect a member without copying it).
template <class IN, class OUT>
class ProcessFunction {
 public:
  class Context : public ProcessContext {
   public:
    explicit Context(internal::OperatorBase* op) : ProcessContext(op) {}
  };

  virtual ~ProcessFunction() = default;
  virtual absl::Status Open(const RuntimeContext& runtime) {
    (void)runtime;
    return absl::OkStatus();
  }
  virtual absl::Status ProcessElement(const IN& value, Context& ctx, Collector<OUT>& out) = 0;
  virtual absl::Status Close() { return absl::OkStatus(); }
};

// A function applied to each element of a KeyedStream, with the current key
// and timers. (Keyed state is reached through this context too.)
//
// As with ProcessFunction, a subclass may also declare
//   absl::Status ProcessElement(IN&& value, Context& ctx, Collector<OUT>& out);
// (for a KeyedBroadcastProcessFunction, with its ReadOnlyContext) and move
// out of the element, e.g. into a ListState or an output. The operator then
// keeps its own copy of the key, so ctx.current_key(), the element's state
// and its timers stay those of the element's key after its members moved.
template <class K, class IN, class OUT>
class KeyedProcessFunction {
 public:
  class Context : public ProcessContext {
   public:
    Context(internal::OperatorBase* op, TimerService* timers, internal::StateAccess* state)
        : ProcessContext(op), timers_(timers), state_(state) {}
    // The key of the element being processed (or of the timer firing).
    const K& current_key() const { return *key_; }
    TimerService& timer_service() { return *timers_; }

    // The state named by `descriptor` (a ValueStateDescriptor<T>,
    // ListStateDescriptor<T> or MapStateDescriptor<UK, UV>), scoped to the
    // current key: ValueState<T>, ListState<T> or MapState<UK, UV>.
    template <class Descriptor>
    auto GetState(const Descriptor& descriptor) {
      return internal::GetState(*state_, descriptor);
    }

   private:
    friend struct internal::ContextAccess;
    TimerService* timers_;
    internal::StateAccess* state_;
    const K* key_ = nullptr;
  };
  class OnTimerContext : public Context {
   public:
    using Context::Context;
    TimeDomain time_domain() const { return domain_; }

   private:
    friend struct internal::ContextAccess;
    TimeDomain domain_ = TimeDomain::kEventTime;
  };

  virtual ~KeyedProcessFunction() = default;
  virtual absl::Status Open(const RuntimeContext& runtime) {
    (void)runtime;
    return absl::OkStatus();
  }
  virtual absl::Status ProcessElement(const IN& value, Context& ctx, Collector<OUT>& out) = 0;
  // Called when a timer registered for `ctx.current_key()` fires.
  virtual absl::Status OnTimer(Timestamp timestamp, OnTimerContext& ctx, Collector<OUT>& out) {
    (void)timestamp;
    (void)ctx;
    (void)out;
    return absl::OkStatus();
  }
  // Replays (see ReplayService in weir/sink.h): the name of the state (its
  // descriptor's name) whose keys a replay visits. Empty: the function does
  // not replay.
  virtual std::string ReplayState() const { return std::string(); }
  // Called during a replay once for each key that holds ReplayState(), with
  // that key current: emit the key's current result, as absolute values, as
  // if it had just changed. The output is stamped like that of
  // processing-time timers (just above the watermark).
  virtual absl::Status OnReplay(Context& ctx, Collector<OUT>& out) {
    (void)ctx;
    (void)out;
    return absl::OkStatus();
  }
  virtual absl::Status Close() { return absl::OkStatus(); }
};

// Joins a stream with a broadcast stream: every worker sees every broadcast
// element (ProcessBroadcastElement) and its share of the main stream
// (ProcessElement). Broadcast elements should update state identically on
// every worker.
template <class IN, class B, class OUT>
class BroadcastProcessFunction {
 public:
  // Context for main-stream elements (broadcast state is read-only here).
  class ReadOnlyContext : public ProcessContext {
   public:
    ReadOnlyContext(internal::OperatorBase* op, internal::BroadcastStateStore* store)
        : ProcessContext(op), store_(store) {}
    // The broadcast state named by `descriptor`, read-only.
    template <class K, class V>
    ReadOnlyBroadcastState<K, V> GetBroadcastState(const MapStateDescriptor<K, V>& descriptor) {
      return ReadOnlyBroadcastState<K, V>(internal::GetBroadcastTable(*store_, descriptor));
    }
    // The broadcast input's own watermark (see
    // KeyedBroadcastProcessFunction::ReadOnlyContext::broadcast_watermark()).
    Timestamp broadcast_watermark() const { return this->input_watermark(1); }

   private:
    internal::BroadcastStateStore* store_;
  };
  // Context for broadcast elements.
  class Context : public ProcessContext {
   public:
    Context(internal::OperatorBase* op, internal::BroadcastStateStore* store)
        : ProcessContext(op), store_(store) {}
    // The broadcast state named by `descriptor`, writable: checkpointed with
    // the job and restored on every worker.
    template <class K, class V>
    BroadcastState<K, V> GetBroadcastState(const MapStateDescriptor<K, V>& descriptor) {
      return BroadcastState<K, V>(internal::GetBroadcastTable(*store_, descriptor));
    }

   private:
    internal::BroadcastStateStore* store_;
  };

  virtual ~BroadcastProcessFunction() = default;
  virtual absl::Status Open(const RuntimeContext& runtime) {
    (void)runtime;
    return absl::OkStatus();
  }
  virtual absl::Status ProcessElement(const IN& value, ReadOnlyContext& ctx,
                                      Collector<OUT>& out) = 0;
  virtual absl::Status ProcessBroadcastElement(const B& value, Context& ctx,
                                               Collector<OUT>& out) = 0;
  virtual absl::Status Close() { return absl::OkStatus(); }
};

namespace internal {
// Lets a broadcast-side context act on one key's state (KeyedBroadcastProcessFunction).
template <class K, class IN, class OUT>
class KeyedAccess {
 public:
  virtual ~KeyedAccess() = default;
  // Makes `key` current for state, timers and output if this worker owns it;
  // returns the keyed context, or null on other workers.
  virtual typename KeyedProcessFunction<K, IN, OUT>::Context* EnterKey(const K& key) = 0;
  virtual void LeaveKey() = 0;
};
}  // namespace internal

// Joins a keyed stream with a broadcast stream: ProcessElement sees the
// current key's state and timers plus the broadcast state (read-only);
// ProcessBroadcastElement writes the broadcast state and may act on one
// key's state with ApplyToKey.
template <class K, class IN, class B, class OUT>
class KeyedBroadcastProcessFunction {
 public:
  using KeyedContext = typename KeyedProcessFunction<K, IN, OUT>::Context;

  // Context of main-stream elements: the keyed context + read-only broadcast state.
  class ReadOnlyContext : public KeyedProcessFunction<K, IN, OUT>::Context {
   public:
    ReadOnlyContext(internal::OperatorBase* op, TimerService* timers, internal::StateAccess* state,
                    internal::BroadcastStateStore* store)
        : KeyedProcessFunction<K, IN, OUT>::Context(op, timers, state), store_(store) {}
    template <class BK, class BV>
    ReadOnlyBroadcastState<BK, BV> GetBroadcastState(const MapStateDescriptor<BK, BV>& descriptor) {
      return ReadOnlyBroadcastState<BK, BV>(internal::GetBroadcastTable(*store_, descriptor));
    }
    // The broadcast input's own watermark: every broadcast element with an
    // earlier timestamp has arrived (as far as its source can tell).
    // kMaxTimestamp while the broadcast input is idle (its source caught
    // up: nothing is pending) or after it ended. Unlike current_watermark(),
    // the main input's event time does not hold it back: e.g. a temporal
    // join can join an element as soon as the broadcast side has passed its
    // timestamp, without waiting for the main stream's out-of-orderness.
    Timestamp broadcast_watermark() const { return this->input_watermark(1); }

   private:
    internal::BroadcastStateStore* store_;
  };
  class OnTimerContext : public KeyedProcessFunction<K, IN, OUT>::OnTimerContext {
   public:
    OnTimerContext(internal::OperatorBase* op, TimerService* timers, internal::StateAccess* state,
                   internal::BroadcastStateStore* store)
        : KeyedProcessFunction<K, IN, OUT>::OnTimerContext(op, timers, state), store_(store) {}
    template <class BK, class BV>
    ReadOnlyBroadcastState<BK, BV> GetBroadcastState(const MapStateDescriptor<BK, BV>& descriptor) {
      return ReadOnlyBroadcastState<BK, BV>(internal::GetBroadcastTable(*store_, descriptor));
    }
    // See ReadOnlyContext::broadcast_watermark().
    Timestamp broadcast_watermark() const { return this->input_watermark(1); }

   private:
    internal::BroadcastStateStore* store_;
  };
  // Context of broadcast elements.
  class Context : public ProcessContext {
   public:
    Context(internal::OperatorBase* op, internal::BroadcastStateStore* store,
            internal::KeyedAccess<K, IN, OUT>* keyed)
        : ProcessContext(op), store_(store), keyed_(keyed) {}
    template <class BK, class BV>
    BroadcastState<BK, BV> GetBroadcastState(const MapStateDescriptor<BK, BV>& descriptor) {
      return BroadcastState<BK, BV>(internal::GetBroadcastTable(*store_, descriptor));
    }
    // Runs fn(KeyedContext&) with `key` as the current key, on the worker
    // that owns it (on the others nothing happens): e.g. to release elements
    // of that key that waited for this broadcast element.
    template <class F>
    void ApplyToKey(const K& key, F&& fn) {
      if (KeyedContext* keyed = keyed_->EnterKey(key)) {
        fn(*keyed);
        keyed_->LeaveKey();
      }
    }

   private:
    internal::BroadcastStateStore* store_;
    internal::KeyedAccess<K, IN, OUT>* keyed_;
  };

  virtual ~KeyedBroadcastProcessFunction() = default;
  virtual absl::Status Open(const RuntimeContext& runtime) {
    (void)runtime;
    return absl::OkStatus();
  }
  virtual absl::Status ProcessElement(const IN& value, ReadOnlyContext& ctx,
                                      Collector<OUT>& out) = 0;
  virtual absl::Status ProcessBroadcastElement(const B& value, Context& ctx,
                                               Collector<OUT>& out) = 0;
  virtual absl::Status OnTimer(Timestamp timestamp, OnTimerContext& ctx, Collector<OUT>& out) {
    (void)timestamp;
    (void)ctx;
    (void)out;
    return absl::OkStatus();
  }
  virtual absl::Status Close() { return absl::OkStatus(); }
};

namespace internal {
// Lets the runtime set what contexts expose.
struct ContextAccess {
  static void SetTimestamp(ProcessContext& ctx, Timestamp ts) { ctx.timestamp_ = ts; }
  static OperatorMetrics& Metrics(ProcessContext& ctx) { return ctx.op_->metrics(); }
  // The keyed state behind a keyed context, for library code that keeps its
  // own tables (windows scope state to a namespace, which GetState does not).
  template <class Ctx>
  static StateAccess& State(Ctx& ctx) {
    return *ctx.state_;
  }
  template <class Ctx, class K>
  static void SetKey(Ctx& ctx, const K* key) {
    ctx.key_ = key;
  }
  template <class Ctx>
  static void SetDomain(Ctx& ctx, TimeDomain domain) {
    ctx.domain_ = domain;
  }
};
}  // namespace internal

}  // namespace weir

#endif  // WEIR_FUNCTIONS_H_
