// The physical operators: one instance per logical operator per worker.
// Operators between two exchanges call each other directly (fused), one
// virtual call per batch; the user function is a member of concrete type, so
// calls into it are direct. Internal.

#ifndef WEIR_INTERNAL_OPERATORS_H_
#define WEIR_INTERNAL_OPERATORS_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <queue>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "weir/functions.h"
#include "weir/internal/batch.h"
#include "weir/internal/broadcast_state.h"
#include "weir/internal/checkpointing.h"
#include "weir/internal/operator.h"
#include "weir/internal/replay.h"
#include "weir/internal/spsc_ring.h"
#include "weir/internal/state_table.h"
#include "weir/key.h"
#include "weir/sink.h"
#include "weir/source.h"
#include "weir/time.h"

namespace weir::internal {

template <class T>
struct IsStatusOr : std::false_type {};
template <class T>
struct IsStatusOr<absl::StatusOr<T>> : std::true_type {};

// Runs `body` (which calls user code); converts anything it throws, except
// an OperatorFailure from further downstream, into `op`'s failure.
template <class Body>
void GuardUserCode(const OperatorBase& op, Body&& body) {
  try {
    body();
  } catch (const OperatorFailure&) {
    throw;
  } catch (...) {
    op.FailFromCurrentException();
  }
}

// Fails `op` if `status` is not OK.
inline void CheckUserStatus(const OperatorBase& op, const absl::Status& status) {
  if (!status.ok()) [[unlikely]]
    op.Fail(status);
}

inline RuntimeContext MakeRuntimeContext(const OperatorBase& op) {
  return RuntimeContext{op.name(), op.env().worker_index, op.env().parallelism,
                        op.env().max_parallelism, &op.metric_group()};
}

// ---------------------------------------------------------------------------
// Map / Filter / FlatMap.

template <class In, class Out, class F>
class MapOp final : public OperatorWithOutput<Out> {
 public:
  MapOp(const WorkerEnv& env, std::string name, F fn)
      : OperatorWithOutput<Out>(env, std::move(name), 1),
        fn_(std::move(fn)),
        port_(this, 0, [this](Batch<In>& batch) { Process(batch); }) {}
  Input<In>* port() { return &port_; }

 private:
  void Process(Batch<In>& in) {
    out_.values.reserve(in.size());
    GuardUserCode(*this, [&] {
      for (In& value : in.values) {
        if constexpr (IsStatusOr<std::invoke_result_t<F&, In&&>>::value) {
          auto result = fn_(std::move(value));
          CheckUserStatus(*this, result.status());
          out_.values.push_back(*std::move(result));
        } else {
          out_.values.push_back(fn_(std::move(value)));
        }
      }
    });
    out_.timestamps.swap(in.timestamps);
    this->output_.EmitBatch(out_);
    out_.clear();
  }

  F fn_;
  PortInput<In> port_;
  Batch<Out> out_;
};

template <class T, class F>
class FilterOp final : public OperatorWithOutput<T> {
 public:
  FilterOp(const WorkerEnv& env, std::string name, F fn)
      : OperatorWithOutput<T>(env, std::move(name), 1),
        fn_(std::move(fn)),
        port_(this, 0, [this](Batch<T>& batch) { Process(batch); }) {}
  Input<T>* port() { return &port_; }

 private:
  void Process(Batch<T>& batch) {
    size_t kept = 0;
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < batch.size(); ++idx) {
        bool keep;
        if constexpr (IsStatusOr<std::invoke_result_t<F&, const T&>>::value) {
          auto result = fn_(std::as_const(batch.values[idx]));
          CheckUserStatus(*this, result.status());
          keep = *result;
        } else {
          keep = fn_(std::as_const(batch.values[idx]));
        }
        if (keep) {
          if (kept != idx) {
            batch.values[kept] = std::move(batch.values[idx]);
            batch.timestamps[kept] = batch.timestamps[idx];
          }
          ++kept;
        }
      }
    });
    batch.values.erase(batch.values.begin() + static_cast<ptrdiff_t>(kept), batch.values.end());
    batch.timestamps.resize(kept);
    this->output_.EmitBatch(batch);
  }

  F fn_;
  PortInput<T> port_;
};

template <class In, class Out, class F>
class FlatMapOp final : public OperatorWithOutput<Out> {
 public:
  FlatMapOp(const WorkerEnv& env, std::string name, F fn)
      : OperatorWithOutput<Out>(env, std::move(name), 1),
        fn_(std::move(fn)),
        collector_(&this->output_, env.batch_size),
        port_(this, 0, [this](Batch<In>& batch) { Process(batch); }) {}
  Input<In>* port() { return &port_; }

 protected:
  void FlushBuffered() override { collector_.Flush(); }

 private:
  void Process(Batch<In>& in) {
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < in.size(); ++idx) {
        collector_.SetTimestamp(in.timestamps[idx]);
        if constexpr (std::is_same_v<std::invoke_result_t<F&, In&&, Collector<Out>&>,
                                     absl::Status>) {
          CheckUserStatus(*this, fn_(std::move(in.values[idx]), collector_));
        } else {
          fn_(std::move(in.values[idx]), collector_);
        }
      }
    });
    collector_.Flush();
  }

  F fn_;
  Collector<Out> collector_;
  PortInput<In> port_;
};

// ---------------------------------------------------------------------------
// Process functions.

// Whether Fn declares ProcessElement(In&&, ...) (see ProcessFunction).
template <class Fn, class In, class Out>
concept TakesElements = requires {
  static_cast<absl::Status (Fn::*)(In&&, typename ProcessFunction<In, Out>::Context&,
                                   Collector<Out>&)>(&Fn::ProcessElement);
};

template <class In, class Out, class Fn>
class ProcessOp final : public OperatorWithOutput<Out> {
 public:
  ProcessOp(const WorkerEnv& env, std::string name, Fn fn)
      : OperatorWithOutput<Out>(env, std::move(name), 1),
        fn_(std::move(fn)),
        collector_(&this->output_, env.batch_size),
        ctx_(this),
        port_(this, 0, [this](Batch<In>& batch) { Process(batch); }) {}
  Input<In>* port() { return &port_; }

  absl::Status Open() override { return fn_.Open(MakeRuntimeContext(*this)); }
  absl::Status Close() override { return fn_.Close(); }

 protected:
  void FlushBuffered() override { collector_.Flush(); }

 private:
  void Process(Batch<In>& in) {
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < in.size(); ++idx) {
        ContextAccess::SetTimestamp(ctx_, in.timestamps[idx]);
        collector_.SetTimestamp(in.timestamps[idx]);
        if constexpr (TakesElements<Fn, In, Out>) {
          CheckUserStatus(*this, fn_.ProcessElement(std::move(in.values[idx]), ctx_, collector_));
        } else {
          CheckUserStatus(*this, fn_.ProcessElement(in.values[idx], ctx_, collector_));
        }
      }
    });
    collector_.Flush();
    // Side outputs leave with each batch too, not at the next control element.
    this->side_outputs_.FlushAll();
  }

  Fn fn_;
  Collector<Out> collector_;
  typename ProcessFunction<In, Out>::Context ctx_;
  PortInput<In> port_;
};

// Timers of one domain for a keyed operator: deduplicated per (timestamp,
// key), fired in timestamp order, deletable.
template <class K>
class KeyedTimerQueue {
 public:
  void Register(Timestamp ts, const K& key) {
    if (registered_.emplace(ts, key).second) heap_.push(Entry{ts, next_seq_++, key});
  }
  void Delete(Timestamp ts, const K& key) { registered_.erase(std::pair<Timestamp, K>(ts, key)); }

  // The earliest live timer, or kMaxTimestamp.
  Timestamp Next() {
    SkipDeleted();
    return heap_.empty() ? kMaxTimestamp : heap_.top().ts;
  }

  // Pops the earliest live timer with timestamp <= limit into *ts / *key.
  bool PopUpTo(Timestamp limit, Timestamp* ts, K* key) {
    SkipDeleted();
    if (heap_.empty() || heap_.top().ts > limit) return false;
    Entry entry = heap_.top();
    heap_.pop();
    registered_.erase(std::pair<Timestamp, K>(entry.ts, entry.key));
    *ts = entry.ts;
    *key = std::move(entry.key);
    return true;
  }

  size_t size() const { return registered_.size(); }

  // Calls fn(ts, key) for every live timer.
  template <class F>
  void ForEach(F&& fn) const {
    for (const auto& [ts, key] : registered_) fn(ts, key);
  }

 private:
  struct Entry {
    Timestamp ts;
    uint64_t seq;
    K key;
    bool operator>(const Entry& other) const {
      return ts != other.ts ? ts > other.ts : seq > other.seq;
    }
  };
  void SkipDeleted() {
    while (!heap_.empty() &&
           !registered_.contains(std::pair<Timestamp, K>(heap_.top().ts, heap_.top().key))) {
      heap_.pop();
    }
  }

  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  absl::flat_hash_set<std::pair<Timestamp, K>> registered_;
  uint64_t next_seq_ = 0;
};

// The contexts a keyed operator hands its function: KeyedProcessFunction's,
// or, with a broadcast input of type B, KeyedBroadcastProcessFunction's.
template <class K, class In, class Out, class B>
struct KeyedFunctionTypes {
  using Function = KeyedProcessFunction<K, In, Out>;
  using MainContext = typename Function::Context;
  using TimerContext = typename Function::OnTimerContext;
  using BroadcastContext = int;  // unused
  using BroadcastValue = int;    // unused
};
template <class K, class In, class Out, class B>
requires(!std::is_void_v<B>) struct KeyedFunctionTypes<K, In, Out, B> {
  using Function = KeyedBroadcastProcessFunction<K, In, B, Out>;
  using MainContext = typename Function::ReadOnlyContext;
  using TimerContext = typename Function::OnTimerContext;
  using BroadcastContext = typename Function::Context;
  using BroadcastValue = B;
};

// Runs a KeyedProcessFunction (B = void) or a KeyedBroadcastProcessFunction
// (a second input of type B, broadcast to every worker).
template <class K, class In, class Out, class KeyFn, class Fn, class B = void>
class KeyedProcessOp final : public OperatorWithOutput<Out>,
                             public ProcessingTimeDriven,
                             public StateAccess,
                             public KeyedAccess<K, In, Out> {
  static constexpr bool kBroadcast = !std::is_void_v<B>;
  using Types = KeyedFunctionTypes<K, In, Out, B>;
  using BValue = typename Types::BroadcastValue;

 public:
  KeyedProcessOp(const WorkerEnv& env, std::string name, KeyFn key_fn, Fn fn)
      : OperatorWithOutput<Out>(env, std::move(name), kBroadcast ? 2 : 1),
        key_fn_(std::move(key_fn)),
        fn_(std::move(fn)),
        collector_(&this->output_, env.batch_size),
        timers_(this),
        state_(this->name(), nullptr, size_t{1} << 20),
        ctx_(MakeContext<typename Types::MainContext>()),
        timer_ctx_(MakeContext<typename Types::TimerContext>()),
        port_(this, 0, [this](Batch<In>& batch) { Process(batch); }) {
    state_.set_max_parallelism(env.max_parallelism);
    if constexpr (kBroadcast) {
      // Results are for the keyed input's records: see InputSet::HoldWhenIdle.
      this->inputs_.HoldWhenIdle(0);
      broadcast_ctx_.emplace(this, &broadcast_state_, this);
      broadcast_port_ = std::make_unique<PortInput<BValue>>(
          this, 1, [this](Batch<BValue>& batch) { ProcessBroadcast(batch); });
    }
  }
  Input<In>* port() { return &port_; }
  Input<BValue>* broadcast_port() { return broadcast_port_.get(); }

  // KeyedAccess: a broadcast element acting on one key's state.
  typename KeyedProcessFunction<K, In, Out>::Context* EnterKey(const K& key) override {
    const int group = KeyGroupOf(key, this->env_.max_parallelism);
    if (WorkerForKeyGroup(group, this->env_.max_parallelism, this->env_.parallelism) !=
        this->env_.worker_index) {
      return nullptr;
    }
    entered_key_ = key;
    current_key_ = &entered_key_;
    scope_valid_ = false;
    ContextAccess::SetKey<typename KeyedProcessFunction<K, In, Out>::Context>(ctx_, &entered_key_);
    ContextAccess::SetTimestamp(ctx_, broadcast_ctx_timestamp_);
    return &ctx_;
  }
  void LeaveKey() override {
    current_key_ = nullptr;
    scope_valid_ = false;
  }

  absl::Status Open() override {
    const RestoredState* restored = this->env_.restored();
    if (StateStoreFactory* stores = this->env_.state_stores()) {
      const auto [begin, end] = KeyGroupRange(this->env_.worker_index, this->env_.parallelism,
                                              this->env_.max_parallelism);
      std::vector<const OperatorSnapshot*> snapshots;
      if (restored != nullptr) snapshots = restored->Snapshots(this->uid());
      absl::StatusOr<std::unique_ptr<KvStore>> store =
          stores->Create(this->uid(), this->env_.worker_index, begin, end, snapshots, restored);
      if (!store.ok()) return store.status();
      store_ = *std::move(store);
      state_.set_store(store_.get(), stores->max_cached_entries_per_table());
    }
    if (restored != nullptr) {
      absl::Status status = Restore(*restored);
      if (!status.ok()) return status;
      for (const OperatorSnapshot* snapshot : restored->Snapshots(this->uid())) {
        broadcast_state_.RestoreFrom(snapshot->operator_state);
      }
      last_checkpoint_ = restored->checkpoint_id();
    }
    if constexpr (!kBroadcast) {
      replay_.state = fn_.ReplayState();
      if (!replay_.state.empty() && this->env_.replay() != nullptr) {
        if constexpr (!kHasCodec<K>) {
          return absl::FailedPreconditionError("operator '" + this->name() +
                                               "': replays need a weir::Codec for the key type");
        }
        replay_.coordinator = this->env_.replay();
        replay_.slot = replay_.coordinator->Join();
        replay_.keys_replayed = &this->metric_group().AddCounter(
            "weir_replayed_keys_total", "Keys whose current value a replay emitted again");
      }
    }
    return fn_.Open(MakeRuntimeContext(*this));
  }
  absl::Status Close() override { return fn_.Close(); }

  KeyedStateBackend& Backend() override { return state_; }
  // Encodes the current key into the state scope on first use per record.
  KeyScope& Scope() override {
    KeyScope& scope = state_.scope();
    if (!scope_valid_) {
      if constexpr (kHasCodec<K>) {
        key_bytes_.clear();
        Codec<K>::Encode(*current_key_, key_bytes_);
        scope.SetKey(KeyGroupOf(*current_key_, this->env_.max_parallelism), key_bytes_);
        scope.now = now_;
        scope_valid_ = true;
      } else {
        throw StateError("keyed state needs a weir::Codec for the key type of operator '" +
                         this->name() + "'");
      }
    }
    return scope;
  }

  // Processing-time timers, and the steps of a replay (which polls for a
  // new one on every pass: one atomic load).
  Timestamp NextProcessingTimer() const override {
    Timestamp next = processing_timers_.Next();
    if (replay_.coordinator != nullptr) {
      if (replay_.coordinator->latest() > replay_.number) return kMinTimestamp;
      if (replay_.active) next = std::min(next, replay_.next_step);
    }
    return next;
  }
  void FireProcessingTimers(Timestamp now) override {
    Timestamp ts;
    // Processing-time output is stamped just above the watermark, so it is never late.
    const Timestamp wm = this->current_watermark();
    const Timestamp out_ts = wm == kMinTimestamp || wm == kMaxTimestamp ? wm : wm + 1;
    now_ = now;
    while (processing_timers_.PopUpTo(now, &ts, &timer_key_)) {
      Fire(ts, TimeDomain::kProcessingTime, out_ts);
    }
    if (replay_.coordinator != nullptr) ReplayStep(now, out_ts);
    collector_.Flush();
    this->side_outputs_.FlushAll();
    if (holds_released_) ForwardWatermark();
  }

 protected:
  void FlushBuffered() override { collector_.Flush(); }

  // Keyed state and timers, one SST per state table, keys prefixed with
  // their key group so a restore at another parallelism takes its range.
  void SnapshotState(int64_t checkpoint_id, OperatorSnapshot& snapshot) override {
    last_checkpoint_ = checkpoint_id;
    const auto [begin, end] =
        KeyGroupRange(this->env_.worker_index, this->env_.parallelism, this->env_.max_parallelism);
    snapshot.key_group_begin = begin;
    snapshot.key_group_end = end;
    if (kBroadcast && this->env_.worker_index == 0) {
      broadcast_state_.SnapshotInto(snapshot.operator_state);
    }
    const std::string dir = this->env_.collector()->StagingDir(checkpoint_id);
    std::map<std::string, std::vector<KvPair>> tables;
    if (store_ != nullptr) {
      // RocksDB: write the cache back, then an incremental checkpoint of the instance.
      absl::Status status = state_.WriteBack();
      if (status.ok()) status = store_->Snapshot(dir, snapshot.files);
      if (!status.ok()) this->Fail(status);
    } else {
      tables = state_.Export(this->env_.Now());
    }
    std::vector<KvPair> timers = ExportTimers();
    if (!timers.empty()) tables[kTimersTable] = std::move(timers);
    for (auto& [table, pairs] : tables) {
      if (pairs.empty()) continue;
      SnapshotFile file{table, "", RandomFileName(".sst")};
      file.local_path = dir + "/" + file.shared_name;
      absl::Status status = WriteSstFile(file.local_path, pairs);
      if (!status.ok()) this->Fail(status);
      snapshot.files.push_back(std::move(file));
    }
  }

  void OnWatermarkAdvanced(Timestamp watermark) override {
    Timestamp ts;
    now_ = this->env_.Now();
    input_watermark_ = watermark;
    idle_withheld_ = false;
    while (event_timers_.PopUpTo(watermark, &ts, &timer_key_)) {
      Fire(ts, TimeDomain::kEventTime, ts);
    }
    ForwardWatermark();
  }
  // While a hold is registered the operator does not report idleness
  // (downstream would stop waiting for it, and the held elements would be
  // late); it does once the holds are gone.
  void OnInputsIdle() override {
    if (holds_.Next() != kMaxTimestamp) {
      idle_withheld_ = true;
      return;
    }
    OperatorWithOutput<Out>::OnInputsIdle();
  }

 private:
  using Function = typename Types::Function;
  using KeyedBase = KeyedProcessFunction<K, In, Out>;

  template <class C>
  C MakeContext() {
    if constexpr (kBroadcast) {
      return C(this, &timers_, this, &broadcast_state_);
    } else {
      return C(this, &timers_, this);
    }
  }

  void ProcessBroadcast(Batch<BValue>& in) {
    now_ = this->env_.Now();
    if constexpr (kBroadcast) {
      GuardUserCode(*this, [&] {
        for (size_t idx = 0; idx < in.size(); ++idx) {
          broadcast_ctx_timestamp_ = in.timestamps[idx];
          ContextAccess::SetTimestamp(*broadcast_ctx_, in.timestamps[idx]);
          collector_.SetTimestamp(in.timestamps[idx]);
          CheckUserStatus(*this,
                          fn_.ProcessBroadcastElement(in.values[idx], *broadcast_ctx_, collector_));
        }
      });
    }
    collector_.Flush();
    this->side_outputs_.FlushAll();
    if (holds_released_) ForwardWatermark();
  }

  // The TimerService handed to the function: scoped to the current key.
  class Timers final : public TimerService {
   public:
    explicit Timers(KeyedProcessOp* op) : op_(op) {}
    Timestamp current_processing_time() const override { return op_->env().Now(); }
    Timestamp current_watermark() const override { return op_->current_watermark(); }
    void RegisterEventTimeTimer(Timestamp time) override {
      op_->event_timers_.Register(time, *op_->current_key_);
    }
    void RegisterProcessingTimeTimer(Timestamp time) override {
      op_->processing_timers_.Register(time, *op_->current_key_);
    }
    void DeleteEventTimeTimer(Timestamp time) override {
      op_->event_timers_.Delete(time, *op_->current_key_);
    }
    void DeleteProcessingTimeTimer(Timestamp time) override {
      op_->processing_timers_.Delete(time, *op_->current_key_);
    }
    void RegisterWatermarkHold(Timestamp time) override {
      op_->holds_.Register(time, *op_->current_key_);
    }
    void DeleteWatermarkHold(Timestamp time) override {
      op_->holds_.Delete(time, *op_->current_key_);
      op_->holds_released_ = true;
    }

   private:
    KeyedProcessOp* op_;
  };

  void Process(Batch<In>& in) {
    now_ = this->env_.Now();
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < in.size(); ++idx) {
        if constexpr (kPrefetches) {
          // Starts loading the state of an element a few ahead, so that its
          // cache misses overlap this element's work instead of stalling on
          // each lookup in turn.
          if (const size_t ahead = idx + kPrefetchDistance; ahead < in.size()) {
            fn_.PrefetchState(in.values[ahead], key_fn_(in.values[ahead]), in.timestamps[ahead],
                              *this);
          }
        }
        const In& value = in.values[idx];
        const K key = key_fn_(value);
        current_key_ = &key;
        scope_valid_ = false;
        ContextAccess::SetKey<typename KeyedBase::Context>(ctx_, &key);
        ContextAccess::SetTimestamp(ctx_, in.timestamps[idx]);
        collector_.SetTimestamp(in.timestamps[idx]);
        CheckUserStatus(*this, fn_.ProcessElement(value, ctx_, collector_));
      }
    });
    current_key_ = nullptr;
    collector_.Flush();
    this->side_outputs_.FlushAll();
    if (holds_released_) ForwardWatermark();
  }

  // Functions that know where an element's state lives (windows) can have it
  // prefetched: PrefetchState(value, key, timestamp, StateAccess&).
  static constexpr bool kPrefetches =
      requires(Fn & fn, const In& value, const K& key, Timestamp ts, StateAccess& access) {
    fn.PrefetchState(value, key, ts, access);
  };
  static constexpr size_t kPrefetchDistance = 8;

  static constexpr const char* kTimersTable = "__timers";

  // Timer keys: [key group][varint len][key][domain: 'e' | 'p' | 'h' (a watermark hold)]
  // [timestamp, 8 bytes BE].
  std::vector<KvPair> ExportTimers() const {
    std::vector<KvPair> pairs;
    if (event_timers_.size() + processing_timers_.size() + holds_.size() == 0) return pairs;
    if constexpr (kHasCodec<K>) {
      auto add = [&](char domain, Timestamp ts, const K& key) {
        std::string bytes;
        Codec<K>::Encode(key, bytes);
        KeyScope scope;
        scope.SetKey(KeyGroupOf(key, this->env_.max_parallelism), bytes);
        std::string composite = scope.composite.substr(0, scope.key_end);
        composite.push_back(domain);
        AppendBigEndian<uint64_t>(composite, static_cast<uint64_t>(ts));
        pairs.emplace_back(std::move(composite), std::string());
      };
      event_timers_.ForEach([&](Timestamp ts, const K& key) { add('e', ts, key); });
      processing_timers_.ForEach([&](Timestamp ts, const K& key) { add('p', ts, key); });
      holds_.ForEach([&](Timestamp ts, const K& key) { add('h', ts, key); });
    } else {
      this->Fail(absl::FailedPreconditionError(
          "checkpointing timers needs a weir::Codec for the key type"));
    }
    return pairs;
  }

  absl::Status Restore(const RestoredState& restored) {
    const auto [begin, end] =
        KeyGroupRange(this->env_.worker_index, this->env_.parallelism, this->env_.max_parallelism);
    for (const OperatorSnapshot* snapshot : restored.Snapshots(this->uid())) {
      if (snapshot->key_group_end <= begin || snapshot->key_group_begin >= end) continue;
      for (const SnapshotFile& file : snapshot->files) {
        if (store_ != nullptr && file.table != kTimersTable) continue;
        if (store_ == nullptr && file.table.rfind("rocksdb:", 0) == 0) {
          return absl::FailedPreconditionError(
              "operator '" + this->name() +
              "': the checkpoint holds RocksDB state; restore it with "
              "StateBackend::RocksDb");
        }
        std::vector<KvPair> pairs;
        absl::Status status = ReadSstFile(restored.LocalPath(file), begin, end, pairs);
        if (!status.ok()) return status;
        if (file.table != kTimersTable) {
          // A store restored its own files in StateStoreFactory::Create.
          if (store_ == nullptr) {
            if (file.table.rfind("rocksdb:", 0) == 0) {
              return absl::FailedPreconditionError(
                  "operator '" + this->name() +
                  "': the checkpoint holds RocksDB state; restore it "
                  "with StateBackend::RocksDb");
            }
            state_.AddRestored(file.table, std::move(pairs));
          }
          continue;
        }
        if constexpr (kHasCodec<K>) {
          for (const KvPair& pair : pairs) {
            std::string_view in(pair.first);
            in.remove_prefix(2);
            uint64_t len = 0;
            K key{};
            if (!ReadVarint(in, len) || in.size() != len + 9) {
              return absl::DataLossError("operator '" + this->name() + "': undecodable timer");
            }
            std::string_view key_bytes = in.substr(0, len);
            in.remove_prefix(len);
            const char domain = in[0];
            in.remove_prefix(1);
            uint64_t ts = 0;
            if (!Codec<K>::Decode(key_bytes, key) || !ReadBigEndian<uint64_t>(in, ts) ||
                (domain != 'e' && domain != 'p' && domain != 'h')) {
              return absl::DataLossError("operator '" + this->name() + "': undecodable timer");
            }
            (domain == 'e'   ? event_timers_
             : domain == 'p' ? processing_timers_
                             : holds_)
                .Register(static_cast<Timestamp>(ts), key);
          }
        } else {
          return absl::FailedPreconditionError(
              "restoring timers needs a weir::Codec for the key type");
        }
      }
    }
    return absl::OkStatus();
  }

  // One step of a replay: begins the newest one if there is one, then emits
  // the keys due by now (replay_keys_per_second), one key group's keys
  // collected at a time (RocksDB; the memory backend collects all at once).
  void ReplayStep(Timestamp now, Timestamp out_ts) {
    if constexpr (!kBroadcast && kHasCodec<K>) {
      if (replay_.coordinator->latest() > replay_.number) {
        replay_.number = replay_.coordinator->Begin(replay_.slot);
        replay_.active = true;
        const auto [begin, end] = KeyGroupRange(this->env_.worker_index, this->env_.parallelism,
                                                this->env_.max_parallelism);
        replay_.next_group = begin;
        replay_.keys.clear();
        replay_.position = 0;
        replay_.next_step = now;
      }
      if (!replay_.active || now < replay_.next_step) return;
      const int64_t rate = this->env_.replay_keys_per_second;
      // Steps of about 10 ms' worth of keys.
      int64_t budget = std::max<int64_t>(1, rate / 100);
      const int64_t budgeted = budget;
      const int group_end =
          KeyGroupRange(this->env_.worker_index, this->env_.parallelism, this->env_.max_parallelism)
              .second;
      now_ = now;
      while (budget > 0) {
        if (replay_.position == replay_.keys.size()) {
          if (replay_.next_group >= group_end) {
            replay_.active = false;
            collector_.Flush();
            this->side_outputs_.FlushAll();
            replay_.coordinator->Complete(replay_.slot, replay_.number, last_checkpoint_);
            return;
          }
          replay_.keys.clear();
          replay_.position = 0;
          const int from = replay_.next_group;
          replay_.next_group = store_ != nullptr ? from + 1 : group_end;
          absl::Status status =
              state_.CollectKeys(replay_.state, from, replay_.next_group, now, replay_.keys);
          if (!status.ok()) this->Fail(status);
          continue;
        }
        std::string_view rest(replay_.keys[replay_.position++]);
        rest.remove_prefix(2);
        uint64_t len = 0;
        K key{};
        if (!ReadVarint(rest, len) || !Codec<K>::Decode(rest, key)) {
          this->Fail(absl::DataLossError("operator '" + this->name() + "': a key of state '" +
                                         replay_.state + "' does not decode"));
        }
        timer_key_ = std::move(key);
        current_key_ = &timer_key_;
        scope_valid_ = false;
        ContextAccess::SetKey<typename KeyedBase::Context>(ctx_, &timer_key_);
        ContextAccess::SetTimestamp(ctx_, out_ts);
        collector_.SetTimestamp(out_ts);
        GuardUserCode(*this, [&] { CheckUserStatus(*this, fn_.OnReplay(ctx_, collector_)); });
        current_key_ = nullptr;
        replay_.keys_replayed->Increment();
        --budget;
      }
      replay_.next_step = now + std::max<int64_t>(1, budgeted * 1000 / rate);
    } else {
      (void)now;
      (void)out_ts;
    }
  }

  // Emits the input watermark, held below the earliest watermark hold, if
  // it advanced; and the idleness withheld while holds were registered.
  void ForwardWatermark() {
    holds_released_ = false;
    Timestamp watermark = input_watermark_;
    const Timestamp hold = holds_.Next();
    if (hold != kMaxTimestamp) watermark = std::min(watermark, hold - 1);
    if (watermark > emitted_watermark_) {
      emitted_watermark_ = watermark;
      OperatorWithOutput<Out>::OnWatermarkAdvanced(watermark);
    }
    if (idle_withheld_ && hold == kMaxTimestamp) {
      idle_withheld_ = false;
      OperatorWithOutput<Out>::OnInputsIdle();
    }
  }

  void Fire(Timestamp ts, TimeDomain domain, Timestamp out_ts) {
    current_key_ = &timer_key_;
    scope_valid_ = false;
    ContextAccess::SetKey<typename KeyedBase::Context>(timer_ctx_, &timer_key_);
    ContextAccess::SetDomain<typename KeyedBase::OnTimerContext>(timer_ctx_, domain);
    ContextAccess::SetTimestamp(timer_ctx_, out_ts);
    collector_.SetTimestamp(out_ts);
    OperatorMetrics::Add(this->metrics_->timers_fired, 1);
    GuardUserCode(*this, [&] { CheckUserStatus(*this, fn_.OnTimer(ts, timer_ctx_, collector_)); });
    current_key_ = nullptr;
  }

  KeyFn key_fn_;
  Fn fn_;
  Collector<Out> collector_;
  Timers timers_;
  std::unique_ptr<KvStore> store_;  // RocksDB; null for the memory backend
  KeyedStateBackend state_;
  std::string key_bytes_;
  bool scope_valid_ = false;
  Timestamp now_ = 0;  // processing time of the current batch (state TTL)
  BroadcastStateStore broadcast_state_;
  typename Types::MainContext ctx_;
  typename Types::TimerContext timer_ctx_;
  std::optional<typename Types::BroadcastContext> broadcast_ctx_;
  Timestamp broadcast_ctx_timestamp_ = kMinTimestamp;
  PortInput<In> port_;
  std::unique_ptr<PortInput<BValue>> broadcast_port_;
  const K* current_key_ = nullptr;
  K timer_key_{};
  K entered_key_{};
  mutable KeyedTimerQueue<K> event_timers_;
  mutable KeyedTimerQueue<K> processing_timers_;
  // Watermark holds (TimerService::RegisterWatermarkHold), and the
  // watermarks in and out.
  mutable KeyedTimerQueue<K> holds_;
  bool holds_released_ = false;
  Timestamp input_watermark_ = kMinTimestamp;
  Timestamp emitted_watermark_ = kMinTimestamp;
  bool idle_withheld_ = false;
  // The newest checkpoint whose barrier passed (or that was restored).
  int64_t last_checkpoint_ = 0;
  // A function with a ReplayState() takes part in replays.
  struct Replay {
    std::string state;
    ReplayCoordinator* coordinator = nullptr;  // null: this operator does not replay
    int slot = -1;
    int64_t number = 0;  // the replay begun last
    bool active = false;
    int next_group = 0;             // key groups below it are collected
    std::vector<std::string> keys;  // collected, not yet emitted from `position` on
    size_t position = 0;
    Timestamp next_step = kMaxTimestamp;
    Counter* keys_replayed = nullptr;
  } replay_;
};

template <class In, class B, class Out, class Fn>
class BroadcastProcessOp final : public OperatorWithOutput<Out> {
 public:
  BroadcastProcessOp(const WorkerEnv& env, std::string name, Fn fn)
      : OperatorWithOutput<Out>(env, std::move(name), 2),
        fn_(std::move(fn)),
        collector_(&this->output_, env.batch_size),
        ctx_(this, &broadcast_state_),
        broadcast_ctx_(this, &broadcast_state_),
        main_port_(this, 0, [this](Batch<In>& batch) { ProcessMain(batch); }),
        broadcast_port_(this, 1, [this](Batch<B>& batch) { ProcessBroadcast(batch); }) {
    // Results are for the main input's records: see InputSet::HoldWhenIdle.
    this->inputs_.HoldWhenIdle(0);
  }
  Input<In>* port() { return &main_port_; }
  Input<B>* broadcast_port() { return &broadcast_port_; }

  // Broadcast state is the same on every worker: restored from any worker's
  // snapshot (worker 0 writes it).
  absl::Status Open() override {
    if (const RestoredState* restored = this->env_.restored()) {
      for (const OperatorSnapshot* snapshot : restored->Snapshots(this->uid())) {
        broadcast_state_.RestoreFrom(snapshot->operator_state);
      }
    }
    return fn_.Open(MakeRuntimeContext(*this));
  }
  absl::Status Close() override { return fn_.Close(); }

 protected:
  void FlushBuffered() override { collector_.Flush(); }
  void SnapshotState(int64_t, OperatorSnapshot& snapshot) override {
    if (this->env_.worker_index != 0) return;
    broadcast_state_.SnapshotInto(snapshot.operator_state);
  }

 private:
  using Function = BroadcastProcessFunction<In, B, Out>;

  void ProcessMain(Batch<In>& in) {
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < in.size(); ++idx) {
        ContextAccess::SetTimestamp(ctx_, in.timestamps[idx]);
        collector_.SetTimestamp(in.timestamps[idx]);
        CheckUserStatus(*this, fn_.ProcessElement(in.values[idx], ctx_, collector_));
      }
    });
    collector_.Flush();
    // Side outputs leave with each batch too, not at the next control element.
    this->side_outputs_.FlushAll();
  }
  void ProcessBroadcast(Batch<B>& in) {
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < in.size(); ++idx) {
        ContextAccess::SetTimestamp(broadcast_ctx_, in.timestamps[idx]);
        collector_.SetTimestamp(in.timestamps[idx]);
        CheckUserStatus(*this,
                        fn_.ProcessBroadcastElement(in.values[idx], broadcast_ctx_, collector_));
      }
    });
    collector_.Flush();
    this->side_outputs_.FlushAll();
  }

  Fn fn_;
  Collector<Out> collector_;
  BroadcastStateStore broadcast_state_;
  typename Function::ReadOnlyContext ctx_;
  typename Function::Context broadcast_ctx_;
  PortInput<In> main_port_;
  PortInput<B> broadcast_port_;
};

// ---------------------------------------------------------------------------
// Union and sink.

template <class T>
class UnionOp final : public OperatorWithOutput<T> {
 public:
  UnionOp(const WorkerEnv& env, std::string name, int num_inputs)
      : OperatorWithOutput<T>(env, std::move(name), num_inputs) {
    for (int port = 0; port < num_inputs; ++port) {
      ports_.push_back(std::make_unique<PortInput<T>>(
          this, port, [this](Batch<T>& batch) { this->output_.EmitBatch(batch); }));
    }
  }
  Input<T>* port(int index) { return ports_[index].get(); }

 private:
  std::vector<std::unique_ptr<PortInput<T>>> ports_;
};

template <class T>
class SinkOp final : public OperatorBase {
 public:
  // `sink` is the writer's factory, kept alive as long as the writer: writers
  // may point into it, and the job may outlive the Pipeline that built it.
  SinkOp(const WorkerEnv& env, std::string name, std::unique_ptr<SinkWriter<T>> writer,
         std::shared_ptr<Sink<T>> sink = nullptr)
      : OperatorBase(env, std::move(name), 1),
        sink_(std::move(sink)),
        writer_(std::move(writer)),
        port_(
            this, 0, [this](Batch<T>& batch) { Write(batch); }, writer_->ReadsOnly()),
        flush_seconds_(&metric_group().AddHistogram("weir_sink_flush_duration_seconds",
                                                    "Time a sink took to flush at a checkpoint "
                                                    "barrier (PreCommit) or at the end of input")),
        event_time_lag_(&metric_group().AddHistogram(
            "weir_sink_event_time_lag_seconds",
            "Processing time minus the event time of the newest record of each batch a sink "
            "writes")),
        errors_(&metric_group().AddCounter(
            "weir_sink_errors_total", "Errors a sink's writer returned (each fails the job)")) {}
  Input<T>* port() { return &port_; }

  // Re-commits what the restored checkpoint had pre-committed, and the
  // earlier committables it carries, in checkpoint order (Commit must be
  // idempotent); the old worker w's committables go to worker w % parallelism.
  absl::Status Open() override {
    const RestoredState* restored = env_.restored();
    if (restored == nullptr) return absl::OkStatus();
    for (const OperatorSnapshot* snapshot : restored->Snapshots(uid())) {
      if (snapshot->worker % env_.parallelism != env_.worker_index) continue;
      std::map<int64_t, std::string> committables;
      for (const auto& [key, value] : snapshot->operator_state) {
        int64_t id = restored->checkpoint_id();
        if (key == "committable" || (key.starts_with(kEarlier) &&
                                     absl::SimpleAtoi(key.substr(sizeof(kEarlier) - 1), &id))) {
          committables[id] = value;
        }
      }
      for (const auto& [id, committable] : committables) {
        absl::Status status = writer_->Commit(id, committable);
        if (!status.ok()) {
          errors_->Increment();
          return status;
        }
      }
    }
    return absl::OkStatus();
  }
  absl::Status Close() override { return writer_->Close(); }

  void NotifyCheckpointComplete(int64_t checkpoint_id) override {
    for (auto it = pending_.begin(); it != pending_.end() && it->first <= checkpoint_id;) {
      GuardUserCode(*this, [&] { CheckSinkStatus(writer_->Commit(it->first, it->second)); });
      it = pending_.erase(it);
    }
  }

 protected:
  void OnWatermarkAdvanced(Timestamp) override {}
  void OnInputsIdle() override {}
  void OnInputsEnded() override {
    const auto start = std::chrono::steady_clock::now();
    GuardUserCode(*this, [&] { CheckSinkStatus(writer_->Flush()); });
    ObserveFlush(start);
  }
  void OnBarrierAligned(int64_t checkpoint_id) override { AcknowledgeCheckpoint(checkpoint_id); }
  void SnapshotState(int64_t checkpoint_id, OperatorSnapshot& snapshot) override {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::string> committable = writer_->PreCommit(checkpoint_id);
    if (!committable.ok()) {
      errors_->Increment();
      Fail(committable.status());
    }
    ObserveFlush(start);
    // Earlier committables not committed yet (their checkpoint failed, or its
    // completion has not reached this worker): this checkpoint covers their
    // records, so a restore from it must commit them too.
    for (const auto& [id, earlier] : pending_) {
      if (id < checkpoint_id && !earlier.empty())
        snapshot.operator_state[absl::StrCat(kEarlier, id)] = earlier;
    }
    pending_[checkpoint_id] = *committable;
    snapshot.operator_state["committable"] = *std::move(committable);
  }

 private:
  void Write(Batch<T>& batch) {
    // Once per batch: how far behind processing time the newest record is.
    if (!batch.empty() && batch.timestamps.back() != kMinTimestamp) {
      event_time_lag_->Observe(
          (static_cast<double>(env_.Now()) - static_cast<double>(batch.timestamps.back())) / 1e3);
    }
    GuardUserCode(*this, [&] {
      CheckSinkStatus(
          writer_->Write(std::span<T>(batch.values), std::span<const Timestamp>(batch.timestamps)));
    });
  }
  void CheckSinkStatus(const absl::Status& status) {
    if (!status.ok()) [[unlikely]] {
      errors_->Increment();
      Fail(status);
    }
  }
  void ObserveFlush(std::chrono::steady_clock::time_point start) {
    flush_seconds_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  // Operator state key of an earlier checkpoint's committable: + its id.
  static constexpr char kEarlier[] = "committable/";

  std::shared_ptr<Sink<T>> sink_;  // destroyed after writer_
  std::unique_ptr<SinkWriter<T>> writer_;
  PortInput<T> port_;
  std::map<int64_t, std::string> pending_;  // pre-committed, awaiting completion
  Histogram* flush_seconds_;
  Histogram* event_time_lag_;
  Counter* errors_;
};

// ---------------------------------------------------------------------------
// Sources.

template <class T>
class SourceTask final : public OperatorWithOutput<T>, public SourceTaskBase {
 public:
  // `source` is the reader's factory, kept alive as long as the reader:
  // readers may point into it, and the job may outlive the Pipeline.
  SourceTask(const WorkerEnv& env, std::string name, std::unique_ptr<SourceReader<T>> reader,
             const WatermarkStrategy<T>& strategy, std::vector<std::string> split_ids,
             std::shared_ptr<Source<T>> source = nullptr)
      : OperatorWithOutput<T>(env, std::move(name), 0),
        source_(std::move(source)),
        reader_(std::move(reader)),
        split_ids_(std::move(split_ids)),
        emits_watermarks_(strategy.emits_watermarks()),
        max_delay_ms_(strategy.max_delay_ms()),
        idle_timeout_ms_(strategy.idle_timeout_ms().value_or(-1)),
        out_(&this->output_, env.batch_size, strategy.assigner(),
             static_cast<int>(split_ids_.size())) {
    const Timestamp now = env.Now();
    for (auto& split : out_.splits_) split.last_active_ms = now;
  }

  absl::Status Close() override { return reader_->Close(); }

  bool finished() const override { return finished_; }
  bool ended() const override { return finished_; }

  void NotifyCheckpointComplete(int64_t checkpoint_id) override {
    absl::Status status = reader_->NotifyCheckpointComplete(checkpoint_id);
    if (!status.ok()) this->Fail(status);
  }

  bool Poll() override {
    if (finished_) return false;
    const int64_t requested = this->env_.requested_checkpoint();
    if (requested > this->last_acknowledged()) {
      // A barrier goes in between two polls: everything emitted so far is
      // before it, and the reader's positions are exactly after it.
      if (!out_.batch_.empty()) out_.FlushBatch();
      this->AcknowledgeCheckpoint(requested);
      this->output_.EmitBarrier(requested);
      this->side_outputs_.BarrierAll(requested);
    }
    if (this->env_.stop_requested()) {
      Finish();
      return true;
    }
    absl::StatusOr<PollResult> result = PollResult::kNothingAvailable;
    GuardUserCode(*this, [&] { result = reader_->Poll(out_); });
    if (!result.ok()) this->Fail(result.status());
    int64_t emitted = 0;
    for (auto& split : out_.splits_) emitted += split.records;
    OperatorMetrics::Add(this->metrics_->records_in, emitted);
    if (!out_.batch_.empty()) out_.FlushBatch();
    if (*result == PollResult::kEndOfInput) {
      Finish();
      return true;
    }
    return UpdateWatermark() || emitted > 0;
  }

 private:
  // Recomputes the watermark over non-idle splits; returns true if it emitted control.
  bool UpdateWatermark() {
    const bool check_timeout = idle_timeout_ms_ >= 0;
    const Timestamp now = check_timeout ? this->env_.Now() : 0;
    Timestamp combined = kMaxTimestamp;
    int active = 0;
    int unfinished = 0;
    for (auto& split : out_.splits_) {
      // A split that delivered in this poll advances the watermark with those
      // records even if it then reported idle (e.g. caught up with its end).
      const bool delivered = split.records > 0;
      if (delivered) {
        split.last_active_ms = now;
        split.records = 0;
      }
      if (split.finished) continue;
      ++unfinished;
      if (!delivered &&
          (split.idle || (check_timeout && now - split.last_active_ms >= idle_timeout_ms_))) {
        continue;
      }
      ++active;
      const Timestamp wm = emits_watermarks_ && split.max_timestamp != kMinTimestamp
                               ? split.max_timestamp - max_delay_ms_ - 1
                               : kMinTimestamp;
      combined = std::min(combined, wm);
    }
    if (!out_.splits_.empty() && unfinished == 0) {
      Finish();
      return true;
    }
    if (active == 0) {
      if (idle_) return false;
      idle_ = true;
      this->output_.EmitIdle();
      return true;
    }
    if (idle_) idle_ = false;
    if (combined > emitted_watermark_) {
      emitted_watermark_ = combined;
      this->metrics_->watermark.store(combined, std::memory_order_relaxed);
      this->output_.EmitWatermark(combined);
      return true;
    }
    return false;
  }

  void SnapshotState(int64_t checkpoint_id, OperatorSnapshot& snapshot) override {
    absl::StatusOr<std::vector<std::string>> states = reader_->SnapshotState(checkpoint_id);
    if (!states.ok()) this->Fail(states.status());
    if (states->size() != split_ids_.size()) {
      this->Fail(absl::InternalError("SourceReader::SnapshotState returned " +
                                     std::to_string(states->size()) + " split states for " +
                                     std::to_string(split_ids_.size()) + " splits"));
    }
    for (size_t idx = 0; idx < split_ids_.size(); ++idx) {
      snapshot.operator_state[SplitStateKey(split_ids_[idx])] = std::move((*states)[idx]);
    }
  }

  void Finish() {
    if (!out_.batch_.empty()) out_.FlushBatch();
    finished_ = true;
    this->metrics_->watermark.store(kMaxTimestamp, std::memory_order_relaxed);
    this->output_.EmitWatermark(kMaxTimestamp);
    this->output_.EmitEnd();
  }

  std::shared_ptr<Source<T>> source_;  // destroyed after reader_
  std::unique_ptr<SourceReader<T>> reader_;
  std::vector<std::string> split_ids_;
  bool emits_watermarks_;
  int64_t max_delay_ms_;
  int64_t idle_timeout_ms_;
  SourceOutput<T> out_;
  Timestamp emitted_watermark_ = kMinTimestamp;
  bool idle_ = false;
  bool finished_ = false;
};

// ---------------------------------------------------------------------------
// Exchanges.

// The rings of one exchange: one per (from, to) worker pair, plus a return
// ring per pair through which the receiver hands emptied batches back to the
// sender. Recycling keeps allocation off the hot path and memory owned by the
// thread that allocated it.
template <class T>
class ExchangeChannels final : public ExchangeChannelsBase {
 public:
  ExchangeChannels(int parallelism, size_t capacity) : parallelism_(parallelism) {
    for (int idx = 0; idx < parallelism * parallelism; ++idx) {
      rings_.push_back(std::make_unique<SpscRing<Envelope<T>>>(capacity));
      returns_.push_back(std::make_unique<SpscRing<Batch<T>>>(capacity));
    }
  }
  int parallelism() const override { return parallelism_; }
  size_t capacity() const override { return rings_.front()->capacity(); }
  size_t Fill(int from, int to) const override {
    return rings_[from * parallelism_ + to]->SizeApprox();
  }
  // Data from worker `from` to worker `to`.
  SpscRing<Envelope<T>>& ring(int from, int to) { return *rings_[from * parallelism_ + to]; }
  // Emptied batches going back from worker `to` to worker `from`.
  SpscRing<Batch<T>>& returns(int from, int to) { return *returns_[from * parallelism_ + to]; }

 private:
  int parallelism_;
  std::vector<std::unique_ptr<SpscRing<Envelope<T>>>> rings_;
  std::vector<std::unique_ptr<SpscRing<Batch<T>>>> returns_;
};

// The sending end on one worker. `Route` maps a record to a destination
// worker, or is nullptr for broadcast. A batch that does not fit its ring
// waits in an outbox; while any does, the worker stops polling sources
// (backpressure) but keeps draining its inputs (no deadlock).
template <class T, class Route>
class ExchangeSender final : public Input<T>, public SenderBase {
 public:
  ExchangeSender(const WorkerEnv& env, std::string name,
                 std::shared_ptr<ExchangeChannels<T>> channels, Route route, bool broadcast)
      : env_(env),
        name_(std::move(name)),
        channels_(std::move(channels)),
        route_(std::move(route)),
        broadcast_(broadcast),
        staging_(env.parallelism),
        outbox_(env.parallelism) {}

  void OnBatch(Batch<T>& batch) override {
    const int parallelism = env_.parallelism;
    if (broadcast_) {
      for (int dest = 0; dest < parallelism; ++dest) {
        Envelope<T> envelope;
        envelope.batch = Recycled(dest);
        if (dest + 1 < parallelism) {
          envelope.batch.values.assign(batch.values.begin(), batch.values.end());
          envelope.batch.timestamps.assign(batch.timestamps.begin(), batch.timestamps.end());
        } else {
          std::swap(envelope.batch, batch);
        }
        Send(dest, std::move(envelope));
      }
      return;
    }
    if (parallelism == 1) {
      // The upstream keeps a recycled batch in exchange for the full one.
      Envelope<T> envelope;
      envelope.batch = Recycled(0);
      std::swap(envelope.batch, batch);
      Send(0, std::move(envelope));
      return;
    }
    try {
      for (size_t idx = 0; idx < batch.size(); ++idx) {
        const int dest = route_(batch.values[idx]);
        staging_[dest].Push(std::move(batch.values[idx]), batch.timestamps[idx]);
      }
    } catch (...) {
      // The key function is user code: blame this exchange, not the upstream
      // operator whose emit called it.
      throw OperatorFailure(StatusFromCurrentException(name_, env_.worker_index));
    }
    for (int dest = 0; dest < parallelism; ++dest) {
      if (staging_[dest].empty()) continue;
      Envelope<T> envelope;
      envelope.batch = std::move(staging_[dest]);
      staging_[dest] = Recycled(dest);
      Send(dest, std::move(envelope));
    }
  }
  void OnWatermark(Timestamp watermark) override {
    SendControl(EnvelopeKind::kWatermark, watermark);
  }
  void OnIdle() override { SendControl(EnvelopeKind::kIdle, kMinTimestamp); }
  void OnEnd() override { SendControl(EnvelopeKind::kEnd, kMaxTimestamp); }
  void OnBarrier(int64_t checkpoint_id) override {
    SendControl(EnvelopeKind::kBarrier, kMinTimestamp, checkpoint_id);
  }

  bool TryFlush() override {
    if (pending_ == 0) return false;
    bool moved_any = false;
    for (int dest = 0; dest < env_.parallelism; ++dest) {
      auto& box = outbox_[dest];
      bool moved = false;
      while (!box.empty() && Ring(dest).TryPush(box.front())) {
        box.pop_front();
        --pending_;
        moved = true;
      }
      if (moved) {
        env_.Notify(dest);
        moved_any = true;
      }
    }
    return moved_any;
  }
  bool HasPending() const override { return pending_ > 0; }

 private:
  SpscRing<Envelope<T>>& Ring(int dest) { return channels_->ring(env_.worker_index, dest); }

  // An empty batch with capacity: one `dest` handed back, or a new one.
  Batch<T> Recycled(int dest) {
    Batch<T> batch;
    if (!channels_->returns(env_.worker_index, dest).TryPop(batch)) batch.reserve(env_.batch_size);
    return batch;
  }

  void Send(int dest, Envelope<T>&& envelope) {
    auto& box = outbox_[dest];
    if (box.empty() && Ring(dest).TryPush(envelope)) {
      env_.Notify(dest);
      return;
    }
    box.push_back(std::move(envelope));
    ++pending_;
  }
  void SendControl(EnvelopeKind kind, Timestamp watermark, int64_t checkpoint_id = 0) {
    for (int dest = 0; dest < env_.parallelism; ++dest) {
      Envelope<T> envelope;
      envelope.kind = kind;
      envelope.watermark = watermark;
      envelope.checkpoint_id = checkpoint_id;
      Send(dest, std::move(envelope));
    }
  }

  const WorkerEnv& env_;
  std::string name_;
  std::shared_ptr<ExchangeChannels<T>> channels_;
  Route route_;
  bool broadcast_;
  std::vector<Batch<T>> staging_;
  std::vector<std::deque<Envelope<T>>> outbox_;
  size_t pending_ = 0;
};

// The receiving end on one worker: one input port per sending worker.
template <class T>
class ExchangeReceiver final : public OperatorWithOutput<T>, public ReceiverBase {
 public:
  ExchangeReceiver(const WorkerEnv& env, std::string name,
                   std::shared_ptr<ExchangeChannels<T>> channels)
      : OperatorWithOutput<T>(env, std::move(name), env.parallelism),
        channels_(std::move(channels)) {}

  bool finished() const override { return this->inputs_.ended(); }

  bool Drain() override {
    // A bounded number per ring per call keeps the worker loop fair.
    constexpr int kMaxPerRing = 8;
    bool progressed = false;
    for (int from = 0; from < this->env_.parallelism; ++from) {
      auto& ring = channels_->ring(from, this->env_.worker_index);
      int popped = 0;
      // A channel blocked for barrier alignment stays in its ring.
      while (popped < kMaxPerRing && !this->blocked(from) && ring.TryPop(envelope_)) {
        ++popped;
        Dispatch(from);
      }
      if (popped > 0) {
        this->env_.Notify(from);
        progressed = true;
      }
    }
    return progressed;
  }

 private:
  void Dispatch(int from) {
    switch (envelope_.kind) {
      case EnvelopeKind::kBatch:
        this->HandleActivate(from);
        OperatorMetrics::Add(this->metrics_->records_in,
                             static_cast<int64_t>(envelope_.batch.size()));
        OperatorMetrics::Add(this->metrics_->batches_in, 1);
        this->output_.EmitBatch(envelope_.batch);
        envelope_.batch.clear();
        // Hand the buffers back to the sender (dropped if its return ring is full).
        if (envelope_.batch.values.capacity() > 0) {
          channels_->returns(from, this->env_.worker_index).TryPush(envelope_.batch);
        }
        break;
      case EnvelopeKind::kWatermark:
        this->HandleWatermark(from, envelope_.watermark);
        break;
      case EnvelopeKind::kIdle:
        this->HandleIdle(from);
        break;
      case EnvelopeKind::kEnd:
        this->HandleEnd(from);
        break;
      case EnvelopeKind::kBarrier:
        this->HandleBarrier(from, envelope_.checkpoint_id);
        break;
    }
  }

  std::shared_ptr<ExchangeChannels<T>> channels_;
  Envelope<T> envelope_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_OPERATORS_H_
