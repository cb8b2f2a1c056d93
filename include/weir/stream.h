// Streams: the typed handles a pipeline is built from.
//
// A Stream<T> is a cheap handle to one operator's output in a Pipeline's
// graph; its methods add operators and return new handles. Nothing runs until
// Pipeline::Run() / Start().
//
// Example:
//
//   weir::Pipeline pipeline({.parallelism = 2});
//   auto events = pipeline.Source(source, weir::WatermarkStrategy<Event>::BoundedOutOfOrderness(
//                                             absl::Seconds(2)))
//                     .Uid("events");
//   events.Filter([](const Event& e) { return e.duration_ms > 0; }).Name("non-empty")
//       .Map([](const Event& e) { return Seconds{e.content_id, e.duration_ms / 1000.0}; })
//       .KeyBy([](const Seconds& s) { return s.content_id; })
//       .Process(RunningTotal{}).Uid("running-total")
//       .Sink([](const Total& t) { std::cout << t.content_id << " " << t.seconds << "\n"; })
//       .Uid("print");
//
// Name() is for display (logs, errors, metrics, the dashboard); Uid() is the
// operator's identity in checkpoints. Operators that keep state (sources,
// sinks, keyed and broadcast operators) need a uid when checkpoints are on;
// stateless ones (Map, Filter, FlatMap, Process, Union) never do, so adding
// or removing them moves no state.

#ifndef WEIR_STREAM_H_
#define WEIR_STREAM_H_

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/functions.h"
#include "weir/internal/function_traits.h"
#include "weir/internal/graph.h"
#include "weir/internal/graph_nodes.h"
#include "weir/internal/operators.h"
#include "weir/internal/window_operator.h"
#include "weir/key.h"
#include "weir/sink.h"
#include "weir/sink_handle.h"
#include "weir/source.h"
#include "weir/time.h"
#include "weir/window.h"

namespace weir {

template <class T>
class Stream;
template <class K, class T, class KeyFn = std::function<K(const T&)>>
class KeyedStream;
template <class T>
class BroadcastStream;
template <class T, class B>
class BroadcastConnectedStream;
template <class K, class T, class KeyFn>
class WindowedStream;
template <class K, class T, class KeyFn, class B>
class KeyedBroadcastConnectedStream;

// A handle to a stream of T records. Copyable; valid while its Pipeline lives.
template <class T>
class Stream {
 public:
  using Record = T;

  // Internal: made by Pipeline and by other streams.
  Stream(internal::Graph* graph, int node) : graph_(graph), node_(node) {}

  // Names the operator that produces this stream, for display: logs,
  // errors, metrics, the dashboard. Free to change between runs and to
  // repeat. Default: its uid, or "<kind>#<n>" without one.
  Stream& Name(std::string name) {
    graph_->SetName(node_, std::move(name));
    return *this;
  }
  // The stable identity of the operator that produces this stream:
  // checkpoints file its state under it, and a restore hands it the state
  // filed under it, whatever was inserted, removed or renamed around it.
  // Unique in the pipeline (Start() fails with kInvalidArgument otherwise).
  // Required, with checkpoints on, for operators that keep state: sources,
  // keyed and broadcast Process, windows (and sinks: SinkHandle::Uid);
  // Start() names each one that lacks it. Change it and the restore finds
  // state nothing claims: kFailedPrecondition, unless
  // PipelineOptions::allow_non_restored_state drops it.
  Stream& Uid(std::string uid) {
    graph_->SetUid(node_, std::move(uid));
    return *this;
  }

  // One output per input: `U fn(T)` (or `fn(const T&)`), or
  // `absl::StatusOr<U> fn(T)` where an error fails the job.
  template <class F>
  auto Map(F fn) const {
    static_assert(std::is_invocable_v<F&, T&&>,
                  "weir: Map expects a function callable as `U fn(T)` or `U fn(const T&)` "
                  "or `absl::StatusOr<U> fn(const T&)`");
    using Result = std::invoke_result_t<F&, T&&>;
    static_assert(!std::is_void_v<Result>,
                  "weir: a Map function must return a value (use Sink or FlatMap)");
    using U = typename internal::StatusOrValue<std::decay_t<Result>>::type;
    return Stream<U>(graph_, internal::AddOneInputNode<T, U, internal::MapOp<T, U, F>>(
                                 graph_, node_, "Map", fn));
  }

  // Keeps the records for which `fn` returns true: `bool fn(const T&)` or
  // `absl::StatusOr<bool> fn(const T&)`.
  template <class F>
  Stream Filter(F fn) const {
    static_assert(
        std::is_invocable_v<F&, const T&>,
        "weir: Filter expects `bool fn(const T&)` or `absl::StatusOr<bool> fn(const T&)`");
    using Result = std::decay_t<std::invoke_result_t<F&, const T&>>;
    static_assert(
        std::is_convertible_v<Result, bool> || std::is_same_v<Result, absl::StatusOr<bool>>,
        "weir: a Filter function must return bool or absl::StatusOr<bool>");
    return Stream(graph_, internal::AddOneInputNode<T, T, internal::FilterOp<T, F>>(graph_, node_,
                                                                                    "Filter", fn));
  }

  // Zero or more outputs per input:
  // `void fn(T, weir::Collector<U>&)` or `absl::Status fn(const T&, weir::Collector<U>&)`.
  template <class U, class F>
  Stream<U> FlatMap(F fn) const {
    static_assert(std::is_invocable_v<F&, T&&, Collector<U>&>,
                  "weir: FlatMap<U> expects `void fn(T, weir::Collector<U>&)` or "
                  "`absl::Status fn(const T&, weir::Collector<U>&)`");
    return Stream<U>(graph_, internal::AddOneInputNode<T, U, internal::FlatMapOp<T, U, F>>(
                                 graph_, node_, "FlatMap", fn));
  }

  // Applies a ProcessFunction<T, OUT> (copied once per worker).
  template <class Fn>
  auto Process(Fn fn) const {
    using Traits = internal::ProcessFnTraits<T, Fn>;
    static_assert(
        Traits::kValid,
        "weir: Stream<T>::Process expects a class derived from weir::ProcessFunction<T, OUT>");
    static_assert(
        std::is_copy_constructible_v<Fn>,
        "weir: process functions are copied once per worker and must be copy-constructible");
    using Out = typename Traits::Out;
    return Stream<Out>(graph_, internal::AddOneInputNode<T, Out, internal::ProcessOp<T, Out, Fn>>(
                                   graph_, node_, "Process", fn));
  }

  // Partitions by key: records with equal keys go to the same worker, in
  // order. `K key_fn(const T&)`, where K is integral, std::string,
  // std::array<uint8_t, N>, a pair/tuple of those, or has weir::KeyTraits.
  // A function that returns a reference to a member of the record
  // (`[](const Event& e) -> const std::string& { return e.id; }`) saves a
  // copy of the key per record in the exchange and the keyed operator.
  template <class KeyFn>
  auto KeyBy(KeyFn key_fn) const {
    static_assert(std::is_invocable_v<KeyFn&, const T&>,
                  "weir: KeyBy expects `K key_fn(const T&)`");
    using K = std::decay_t<std::invoke_result_t<KeyFn&, const T&>>;
    static_assert(kHasKeyTraits<K>,
                  "weir: KeyBy key type has no stable hash: use an integral type, std::string, "
                  "std::array<uint8_t, N>, a pair/tuple of those, or specialize weir::KeyTraits<K> "
                  "with `static uint64_t Hash(const K&)`");
    auto make_route = [key_fn](const internal::WorkerEnv& env) {
      return
          [key_fn, router = internal::KeyGroupRouter(env.max_parallelism, env.parallelism)](
              const T& value) { return router.WorkerForHash(KeyTraits<K>::Hash(key_fn(value))); };
    };
    const int exchange = internal::AddExchangeNode<T>(graph_, node_, "KeyBy", make_route, false);
    return KeyedStream<K, T, KeyFn>(graph_, exchange, key_fn);
  }

  // Merges this stream with others of the same type.
  template <class... Others>
  Stream Union(const Others&... others) const {
    static_assert((std::is_same_v<Others, Stream<T>> && ...),
                  "weir: Union takes streams of the same type");
    std::vector<int> inputs = {node_, others.node_...};
    if (((others.graph_ != graph_) || ...)) {
      graph_->RecordError(absl::InvalidArgumentError("Union of streams from different pipelines"));
    }
    const int node = internal::AddUnionNode<T>(graph_, std::move(inputs));
    return Stream(graph_, node);
  }

  // Sends every record to every worker (the dimension side of a broadcast join).
  BroadcastStream<T> Broadcast() const {
    auto make_route = [](const internal::WorkerEnv&) { return [](const T&) { return 0; }; };
    return BroadcastStream<T>(
        graph_, internal::AddExchangeNode<T>(graph_, node_, "Broadcast", make_route, true));
  }

  // Connects this stream with a broadcast stream; follow with Process().
  template <class B>
  BroadcastConnectedStream<T, B> Connect(const BroadcastStream<B>& broadcast) const {
    if (broadcast.graph() != graph_) {
      graph_->RecordError(
          absl::InvalidArgumentError("Connect of streams from different pipelines"));
    }
    return BroadcastConnectedStream<T, B>(graph_, node_, broadcast.node());
  }

  // The records a Process operator sent to `tag` with ctx.Output(tag, ...).
  template <class U>
  Stream<U> SideOutput(const OutputTag<U>& tag) const {
    internal::LogicalNode& node = graph_->Add("SideOutput[" + tag.id() + "]", {node_});
    node.runs_operator = false;
    node.instantiate = [id = tag.id()](const internal::LogicalNode& self,
                                       internal::WorkerBuilder& worker) -> absl::Status {
      internal::OperatorBase* op = worker.operators[self.inputs[0]];
      if (op == nullptr)
        return absl::InvalidArgumentError("side output '" + id +
                                          "' of an operator without outputs");
      absl::StatusOr<internal::SideChannel<U>*> channel =
          op->side_outputs().template GetOrCreate<U>(id, &op->metrics(), worker.env.batch_size);
      if (!channel.ok()) return channel.status();
      worker.SetOutput(self.id, (*channel)->emitter(), op);
      return absl::OkStatus();
    };
    return Stream<U>(graph_, node.id);
  }

  // Writes every record to `sink` (one writer per worker). Returns the
  // sink's handle: name it and give it its uid there.
  SinkHandle Sink(std::shared_ptr<weir::Sink<T>> sink) const {
    return SinkHandle(graph_, internal::AddSinkNode<T>(graph_, node_, std::move(sink)));
  }
  SinkHandle Sink(std::unique_ptr<weir::Sink<T>> sink) const {
    return Sink(std::shared_ptr<weir::Sink<T>>(std::move(sink)));
  }
  // Calls `fn(T&)` for every record on the worker's thread: `void fn(const T&)`
  // or `absl::Status fn(const T&)`. `fn` is shared by all workers.
  template <class F,
            class = std::enable_if_t<!std::is_convertible_v<F, std::shared_ptr<weir::Sink<T>>>>>
  SinkHandle Sink(F fn) const {
    static_assert(
        std::is_invocable_v<F&, T&>,
        "weir: Sink expects a weir::Sink<T>, or `void fn(const T&)` / `absl::Status fn(const T&)`");
    return Sink(
        std::shared_ptr<weir::Sink<T>>(std::make_shared<FunctionSink<T, F>>(std::move(fn))));
  }

  internal::Graph* graph() const { return graph_; }
  int node() const { return node_; }

 private:
  template <class U>
  friend class Stream;
  internal::Graph* graph_;
  int node_;
};

// A stream partitioned by key (from Stream::KeyBy).
template <class K, class T, class KeyFn>
class KeyedStream {
 public:
  KeyedStream(internal::Graph* graph, int node, KeyFn key_fn)
      : graph_(graph), node_(node), key_fn_(std::move(key_fn)) {}
  // Converts to the type-erased form KeyedStream<K, T>.
  template <class OtherFn, class = std::enable_if_t<!std::is_same_v<OtherFn, KeyFn> &&
                                                    std::is_constructible_v<KeyFn, OtherFn>>>
  KeyedStream(const KeyedStream<K, T, OtherFn>& other)  // NOLINT(google-explicit-constructor)
      : graph_(other.graph()), node_(other.node()), key_fn_(other.key_fn()) {}

  // Names the KeyBy exchange, for display (see Stream::Name).
  KeyedStream& Name(std::string name) {
    graph_->SetName(node_, std::move(name));
    return *this;
  }

  // Applies a KeyedProcessFunction<K, T, OUT> (copied once per worker).
  template <class Fn>
  auto Process(Fn fn) const {
    using Traits = internal::KeyedProcessFnTraits<K, T, Fn>;
    static_assert(Traits::kValid,
                  "weir: KeyedStream<K, T>::Process expects a class derived from "
                  "weir::KeyedProcessFunction<K, T, OUT> (K = the type KeyBy's function returns)");
    static_assert(
        std::is_copy_constructible_v<Fn>,
        "weir: process functions are copied once per worker and must be copy-constructible");
    using Out = typename Traits::Out;
    const int id =
        internal::AddOneInputNode<T, Out, internal::KeyedProcessOp<K, T, Out, KeyFn, Fn>>(
            graph_, node_, "KeyedProcess", key_fn_, fn);
    graph_->node(id).stateful = true;
    return Stream<Out>(graph_, id);
  }

  // The partitioned records as a plain stream.
  Stream<T> AsStream() const { return Stream<T>(graph_, node_); }

  // Connects with a broadcast stream; follow with
  // Process(KeyedBroadcastProcessFunction<K, T, B, OUT>).
  template <class B>
  auto Connect(const BroadcastStream<B>& broadcast) const {
    if (broadcast.graph() != graph_) {
      graph_->RecordError(
          absl::InvalidArgumentError("Connect of streams from different pipelines"));
    }
    return KeyedBroadcastConnectedStream<K, T, KeyFn, B>(*this, broadcast.node());
  }

  // Groups each key's records into windows (see weir/window.h).
  WindowedStream<K, T, KeyFn> Window(WindowAssigner assigner) const {
    return WindowedStream<K, T, KeyFn>(*this, assigner);
  }

  internal::Graph* graph() const { return graph_; }
  int node() const { return node_; }
  const KeyFn& key_fn() const { return key_fn_; }

 private:
  internal::Graph* graph_;
  int node_;
  KeyFn key_fn_;
};

// A keyed stream cut into windows (from KeyedStream::Window). Configure the
// trigger and lateness, then compute each window's result.
template <class K, class T, class KeyFn>
class WindowedStream {
 public:
  WindowedStream(KeyedStream<K, T, KeyFn> keyed, WindowAssigner assigner)
      : keyed_(std::move(keyed)), assigner_(assigner) {}

  // Also fires every `count` elements of a window, besides its firing at the
  // end (unlike Flink's CountTrigger, which replaces the end-of-window
  // firing). Sessions, as Flink's CountTrigger with merging windows, count
  // elements since the session last fired on count (a merge adds the
  // sessions' counts) and fire at `count`.
  WindowedStream& EarlyFiringOnCount(int64_t count) {
    trigger_.count = count;
    return *this;
  }
  // Also emits partial results every `interval` of processing time while a
  // window (or session) is open. Event-time windows only: with processing-time
  // windows the pipeline fails to build with kInvalidArgument.
  WindowedStream& EarlyFiring(absl::Duration interval) {
    trigger_.early_ms = absl::ToInt64Milliseconds(interval);
    return *this;
  }
  // Elements up to `lateness` behind the watermark still update (and re-emit)
  // their windows; later ones go to the late-data side output (and are counted).
  WindowedStream& AllowedLateness(absl::Duration lateness) {
    lateness_ms_ = absl::ToInt64Milliseconds(lateness);
    return *this;
  }
  // Where elements beyond the allowed lateness go (read with SideOutput(tag)).
  WindowedStream& SideOutputLateData(const OutputTag<T>& tag) {
    late_tag_ = tag;
    return *this;
  }

  // The result of `agg` (an AggregateFunction<T, ACC, OUT>) per window.
  template <class Agg>
  auto Aggregate(Agg agg) const {
    using Out = typename Agg::Output;
    using Acc = typename Agg::Accumulator;
    auto emit = [agg](const K&, const TimeWindow& w, const Acc& acc, Collector<Out>& out) {
      out.CollectWithTimestamp(agg.GetResult(acc), w.max_timestamp());
      return absl::OkStatus();
    };
    return Build<Out, Acc>(std::move(agg), std::move(emit), "WindowAggregate");
  }

  // The result of `agg` per window, passed with the key and window to
  // `window_fn(const K&, const TimeWindow&, OUT) -> R`.
  template <class Agg, class F>
  auto Aggregate(Agg agg, F window_fn) const {
    using AggOut = typename Agg::Output;
    using Acc = typename Agg::Accumulator;
    static_assert(
        std::is_invocable_v<F&, const K&, const TimeWindow&, AggOut>,
        "weir: Aggregate(agg, fn) expects `R fn(const K& key, const weir::TimeWindow& window, "
        "OUT result)`");
    using R = std::decay_t<std::invoke_result_t<F&, const K&, const TimeWindow&, AggOut>>;
    auto emit = [agg, window_fn](const K& key, const TimeWindow& w, const Acc& acc,
                                 Collector<R>& out) mutable {
      out.CollectWithTimestamp(window_fn(key, w, agg.GetResult(acc)), w.max_timestamp());
      return absl::OkStatus();
    };
    return Build<R, Acc>(std::move(agg), std::move(emit), "WindowAggregate");
  }

  // Folds elements with `reduce(const T&, const T&) -> T`.
  template <class F>
  Stream<T> Reduce(F reduce) const {
    static_assert(std::is_invocable_r_v<T, F&, const T&, const T&>,
                  "weir: Reduce expects `T fn(const T&, const T&)`");
    return Aggregate(ReduceAggregate<F>(std::move(reduce)));
  }

  // Hands every window's elements to a ProcessWindowFunction<T, OUT, K>.
  template <class Fn>
  auto Process(Fn fn) const {
    using Out = typename decltype(ProcessWindowOutputOf(std::declval<Fn*>()))::type;
    using Acc = std::vector<T>;
    auto emit = [fn](const K& key, const TimeWindow& w, const Acc& elements,
                     Collector<Out>& out) mutable {
      out.SetTimestamp(w.max_timestamp());
      return fn.Process(key, w, elements, out);
    };
    return Build<Out, Acc>(internal::ElementsAggregate<T>(), std::move(emit), "WindowProcess");
  }

 private:
  template <class Out>
  struct Tag {
    using type = Out;
  };
  template <class Out>
  static Tag<Out> ProcessWindowOutputOf(const ProcessWindowFunction<T, Out, K>*);

  template <class F>
  class ReduceAggregate final : public AggregateFunction<T, std::optional<T>, T> {
   public:
    explicit ReduceAggregate(F fn) : fn_(std::move(fn)) {}
    std::optional<T> CreateAccumulator() const override { return std::nullopt; }
    void Add(const T& value, std::optional<T>& acc) const override {
      acc = acc ? fn_(*acc, value) : value;
    }
    void Merge(const std::optional<T>& other, std::optional<T>& acc) const override {
      if (other) Add(*other, acc);
    }
    T GetResult(const std::optional<T>& acc) const override { return *acc; }

   private:
    F fn_;
  };

  template <class Out, class Acc, class Agg, class Emit>
  Stream<Out> Build(Agg agg, Emit emit, const char* kind) const {
    static_assert(kHasCodec<Acc>,
                  "weir: window accumulators live in keyed state and need a weir::Codec<ACC> "
                  "(see weir/codec.h)");
    Stream<Out> out = [&] {
      if (assigner_.kind == WindowAssigner::Kind::kSession) {
        return keyed_.Process(internal::SessionWindowFunction<K, T, Acc, Out, Agg, Emit>(
            assigner_, trigger_, lateness_ms_, late_tag_, std::move(agg), std::move(emit)));
      }
      return keyed_.Process(internal::PaneWindowFunction<K, T, Acc, Out, Agg, Emit>(
          assigner_, trigger_, lateness_ms_, late_tag_, std::move(agg), std::move(emit)));
    }();
    // The default display name (Uid() replaces it; Name() too).
    const std::string name = std::string(kind) + "#" + std::to_string(out.node());
    keyed_.graph()->node(out.node()).name = name;
    // Processing-time windows fire on the clock already, and their early
    // timers could not be told from their window timers: refuse rather than
    // ignore the setting.
    if (trigger_.early_ms > 0 && !assigner_.event_time) {
      keyed_.graph()->RecordError(absl::InvalidArgumentError(
          "window operator '" + name +
          "': EarlyFiring needs event-time windows (processing-time windows fire on the clock)"));
    }
    return out;
  }

  KeyedStream<K, T, KeyFn> keyed_;
  WindowAssigner assigner_;
  WindowTrigger trigger_;
  int64_t lateness_ms_ = 0;
  std::optional<OutputTag<T>> late_tag_;
};

// A keyed stream connected with a broadcast stream (from KeyedStream::Connect).
template <class K, class T, class KeyFn, class B>
class KeyedBroadcastConnectedStream {
 public:
  KeyedBroadcastConnectedStream(KeyedStream<K, T, KeyFn> keyed, int broadcast_node)
      : keyed_(std::move(keyed)), broadcast_node_(broadcast_node) {}

  // Applies a KeyedBroadcastProcessFunction<K, T, B, OUT> (copied once per worker).
  template <class Fn>
  auto Process(Fn fn) const {
    using Out = typename decltype(OutputOf(std::declval<Fn*>()))::type;
    static_assert(
        std::is_copy_constructible_v<Fn>,
        "weir: process functions are copied once per worker and must be copy-constructible");
    internal::Graph* graph = keyed_.graph();
    return Stream<Out>(
        graph,
        internal::AddTwoInputNode<T, B, internal::KeyedProcessOp<K, T, Out, KeyFn, Fn, B>>(
            graph, keyed_.node(), broadcast_node_, "KeyedBroadcastProcess", keyed_.key_fn(), fn));
  }

 private:
  template <class Out>
  struct Tag {
    using type = Out;
  };
  template <class Out>
  static Tag<Out> OutputOf(const KeyedBroadcastProcessFunction<K, T, B, Out>*);

  KeyedStream<K, T, KeyFn> keyed_;
  int broadcast_node_;
};

// A stream whose every record reaches every worker (from Stream::Broadcast).
template <class T>
class BroadcastStream {
 public:
  BroadcastStream(internal::Graph* graph, int node) : graph_(graph), node_(node) {}
  internal::Graph* graph() const { return graph_; }
  int node() const { return node_; }

 private:
  internal::Graph* graph_;
  int node_;
};

// A stream connected with a broadcast stream (from Stream::Connect).
template <class T, class B>
class BroadcastConnectedStream {
 public:
  BroadcastConnectedStream(internal::Graph* graph, int main_node, int broadcast_node)
      : graph_(graph), main_node_(main_node), broadcast_node_(broadcast_node) {}

  // Applies a BroadcastProcessFunction<T, B, OUT> (copied once per worker).
  template <class Fn>
  auto Process(Fn fn) const {
    using Traits = internal::BroadcastProcessFnTraits<T, B, Fn>;
    static_assert(Traits::kValid,
                  "weir: BroadcastConnectedStream<T, B>::Process expects a class derived from "
                  "weir::BroadcastProcessFunction<T, B, OUT>");
    static_assert(
        std::is_copy_constructible_v<Fn>,
        "weir: process functions are copied once per worker and must be copy-constructible");
    using Out = typename Traits::Out;
    return Stream<Out>(graph_,
                       internal::AddTwoInputNode<T, B, internal::BroadcastProcessOp<T, B, Out, Fn>>(
                           graph_, main_node_, broadcast_node_, "BroadcastProcess", fn));
  }

 private:
  internal::Graph* graph_;
  int main_node_;
  int broadcast_node_;
};

}  // namespace weir

#endif  // WEIR_STREAM_H_
