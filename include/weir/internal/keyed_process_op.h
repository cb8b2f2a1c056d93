// KeyedProcessOp: runs a KeyedProcessFunction or a KeyedBroadcastProcessFunction
// over keyed state, with its timers (KeyedTimerQueue). Internal.

#ifndef WEIR_INTERNAL_KEYED_PROCESS_OP_H_
#define WEIR_INTERNAL_KEYED_PROCESS_OP_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/codec.h"
#include "weir/functions.h"
#include "weir/internal/batch.h"
#include "weir/internal/broadcast_state.h"
#include "weir/internal/checkpointing.h"
#include "weir/internal/key_encoding.h"
#include "weir/internal/keyed_state_backend.h"
#include "weir/internal/kv_store.h"
#include "weir/internal/operator.h"
#include "weir/internal/replay.h"
#include "weir/internal/user_code.h"
#include "weir/key.h"
#include "weir/metrics.h"
#include "weir/state.h"
#include "weir/time.h"

namespace weir::internal {

// Timers of one domain for a keyed operator: deduplicated per (timestamp,
// key), fired in timestamp order, deletable. Lookups take the key by
// reference (no copy of it); a fired timer's key is moved out of the heap.
template <class K>
class KeyedTimerQueue {
 public:
  void Register(Timestamp ts, const K& key) {
    // Looked up by reference first: a function registering the same timer
    // for each of a key's elements copies the key only the first time.
    if (registered_.contains(Ref{ts, &key})) return;
    if (registered_.emplace(ts, key).second) {
      heap_.push_back(Entry{ts, next_seq_++, key});
      std::push_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
    }
  }
  void Delete(Timestamp ts, const K& key) {
    auto it = registered_.find(Ref{ts, &key});
    if (it != registered_.end()) registered_.erase(it);
  }

  // The earliest live timer, or kMaxTimestamp.
  Timestamp Next() {
    SkipDeleted();
    return heap_.empty() ? kMaxTimestamp : heap_.front().ts;
  }

  // Pops the earliest live timer with timestamp <= limit into *ts / *key.
  bool PopUpTo(Timestamp limit, Timestamp* ts, K* key) {
    SkipDeleted();
    if (heap_.empty() || heap_.front().ts > limit) return false;
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
    Entry& entry = heap_.back();
    registered_.erase(registered_.find(Ref{entry.ts, &entry.key}));
    *ts = entry.ts;
    *key = std::move(entry.key);
    heap_.pop_back();
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
  // A (timestamp, key) to look up without copying the key.
  struct Ref {
    Timestamp ts;
    const K* key;
  };
  struct RefHash {
    using is_transparent = void;
    size_t operator()(const std::pair<Timestamp, K>& timer) const {
      return absl::HashOf(timer.first, timer.second);
    }
    size_t operator()(const Ref& timer) const { return absl::HashOf(timer.ts, *timer.key); }
  };
  struct RefEq {
    using is_transparent = void;
    static Ref AsRef(const std::pair<Timestamp, K>& timer) {
      return Ref{timer.first, &timer.second};
    }
    static Ref AsRef(const Ref& timer) { return timer; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      const Ref left = AsRef(a);
      const Ref right = AsRef(b);
      return left.ts == right.ts && *left.key == *right.key;
    }
  };
  void SkipDeleted() {
    while (!heap_.empty() && !registered_.contains(Ref{heap_.front().ts, &heap_.front().key})) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
      heap_.pop_back();
    }
  }

  std::vector<Entry> heap_;  // a min-heap by (ts, seq)
  absl::flat_hash_set<std::pair<Timestamp, K>, RefHash, RefEq> registered_;
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
        In& value = in.values[idx];
        ContextAccess::SetTimestamp(ctx_, in.timestamps[idx]);
        collector_.SetTimestamp(in.timestamps[idx]);
        if constexpr (kTakesElements) {
          // The function may move the element's members, the key's among
          // them: the key is copied into a member of the operator, which
          // keeps its capacity from one element to the next.
          held_key_ = key_fn_(std::as_const(value));
          EnterElementKey(held_key_);
          CheckUserStatus(*this, fn_.ProcessElement(std::move(value), ctx_, collector_));
        } else {
          // A key function returning a reference to a member (`-> const
          // std::string&`) gives the key without a copy; one returning a
          // value gives a temporary whose life this reference extends.
          const K& key = key_fn_(std::as_const(value));
          EnterElementKey(key);
          CheckUserStatus(*this, fn_.ProcessElement(std::as_const(value), ctx_, collector_));
        }
      }
    });
    current_key_ = nullptr;
    collector_.Flush();
    this->side_outputs_.FlushAll();
    if (holds_released_) ForwardWatermark();
  }

  void EnterElementKey(const K& key) {
    current_key_ = &key;
    scope_valid_ = false;
    ContextAccess::SetKey<typename KeyedBase::Context>(ctx_, &key);
  }

  // Whether the function declares ProcessElement(In&&, ...) (see
  // KeyedProcessFunction).
  static constexpr bool kTakesElements = requires {
    static_cast<absl::Status (Fn::*)(In&&, typename Types::MainContext&, Collector<Out>&)>(
        &Fn::ProcessElement);
  };

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
  K held_key_{};  // the element's key, for functions that take elements
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

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_KEYED_PROCESS_OP_H_
