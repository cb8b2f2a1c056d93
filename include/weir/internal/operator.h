// The physical operator model shared by every operator template: typed data
// inputs and outputs, in-band control (watermarks, idleness, end of input),
// failures, per-operator counters and the interfaces the worker loop drives.
// Internal: users never name these types.

#ifndef WEIR_INTERNAL_OPERATOR_H_
#define WEIR_INTERNAL_OPERATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeindex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/internal/batch.h"
#include "weir/metrics.h"
#include "weir/time.h"

namespace weir::internal {

// ---------------------------------------------------------------------------
// Failures.

// Thrown inside a worker to unwind from a failing operator to the worker
// loop, which records the status and stops the job. Never escapes the runtime.
class OperatorFailure {
 public:
  explicit OperatorFailure(absl::Status status) : status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// Returns `status` with the operator and worker named in its message.
absl::Status AnnotateStatus(const absl::Status& status, const std::string& op_name, int worker);

// Converts the exception being handled (inside a catch block) into a status
// naming the operator.
absl::Status StatusFromCurrentException(const std::string& op_name, int worker);

// ---------------------------------------------------------------------------
// Per-worker environment.

class JobShared;
class RemoteExchanges;
class Replayable;
class ReplayCoordinator;
class SnapshotCollector;
class RestoredState;
class StateStoreFactory;
struct OperatorSnapshot;

// What every operator instance of one worker can see. Owned by the job.
struct WorkerEnv {
  int worker_index = 0;
  int parallelism = 1;
  int max_parallelism = 128;
  size_t batch_size = 1024;
  size_t queue_capacity = 64;
  // CheckpointOptions::asynchronous_sink_flush.
  bool asynchronous_sink_flush = true;
  JobShared* job = nullptr;
  // PipelineOptions::job_name, and the checkpoint settings sinks see in SinkContext.
  std::string job_name;
  bool checkpointing = false;
  absl::Duration checkpoint_interval = absl::ZeroDuration();
  absl::Duration checkpoint_timeout = absl::ZeroDuration();
  int checkpoints_retained = 0;

  // Wakes worker `worker` if it sleeps (data arrived or ring space freed).
  void Notify(int worker) const;
  // True once JobHandle::Stop() was called: sources finish their input.
  bool stop_requested() const;
  // True once the job was quiesced (a cluster task about to be given up):
  // sources and exchange receivers still pass checkpoint barriers on, but
  // emit no records, watermarks or end of input, so the next checkpoint
  // covers everything the task processed.
  bool quiesced() const;
  // Processing time, milliseconds since the epoch.
  Timestamp Now() const;
  // The newest checkpoint the coordinator asked for (0: none yet).
  int64_t requested_checkpoint() const;
  // The newest checkpoint that completed or failed (0: none yet).
  int64_t resolved_checkpoint() const;
  // Cluster mode: the transport of exchanges between tasks; null in local mode.
  RemoteExchanges* remote = nullptr;
  // Where snapshots go; null when checkpointing is off.
  SnapshotCollector* collector() const;
  // The checkpoint this run restored from; null if none.
  const RestoredState* restored() const;
  // Stores for keyed state (RocksDB); null for the memory backend.
  StateStoreFactory* state_stores() const;
  // The job's replays (ReplayService); null when the env belongs to no job.
  ReplayCoordinator* replay() const;
  // PipelineOptions::replay_keys_per_second.
  int64_t replay_keys_per_second = 20000;
  // The metric group of operator `op` on this worker (labels: job, operator,
  // worker); a detached group when the env belongs to no job.
  MetricGroup& metric_group(const std::string& op) const;
};

// Counters of one operator instance. Written by one worker thread only
// (plain load + store, no read-modify-write), read by anyone (the metrics
// registry reads them when a snapshot is taken). Cache-line aligned: the
// instances of different workers never share a line.
struct alignas(kMetricAlignment) OperatorMetrics {
  std::string name;
  int worker = 0;
  std::atomic<int64_t> records_in{0};
  std::atomic<int64_t> records_out{0};
  std::atomic<int64_t> batches_in{0};
  std::atomic<int64_t> batches_out{0};
  // The operator's current watermark (kMinTimestamp: none yet).
  std::atomic<int64_t> watermark{kMinTimestamp};
  std::atomic<int64_t> timers_fired{0};
  // Elements that arrived after their windows' allowed lateness.
  std::atomic<int64_t> late_records{0};
  // Writes of window state (one per element with pane aggregation).
  std::atomic<int64_t> state_writes{0};

  static void Add(std::atomic<int64_t>& counter, int64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// ---------------------------------------------------------------------------
// Data plumbing.

// One input edge of an operator, as seen by its upstream.
template <class T>
class Input {
 public:
  virtual ~Input() = default;
  // Delivers records; the receiver may move values out of `batch` unless
  // it ReadsOnly().
  virtual void OnBatch(Batch<T>& batch) = 0;
  // True when OnBatch leaves `batch` as it was: the upstream then hands it
  // the batch it passes on instead of a copy.
  virtual bool ReadsOnly() const { return false; }
  virtual void OnWatermark(Timestamp watermark) = 0;
  virtual void OnIdle() = 0;
  virtual void OnEnd() = 0;
  virtual void OnBarrier(int64_t checkpoint_id) = 0;
};

// The output side of an operator: fans batches and control out to every
// downstream input. A stream consumed several times is handed as is to the
// inputs that only read it, then copied for all but the last of the others.
template <class T>
class Emitter {
 public:
  void AddDownstream(Input<T>* input) {
    downstream_.push_back(input);
    readers_.clear();
    takers_.clear();
    for (Input<T>* d : downstream_) (d->ReadsOnly() ? readers_ : takers_).push_back(d);
  }
  bool has_downstream() const { return !downstream_.empty(); }
  void set_metrics(OperatorMetrics* metrics) { metrics_ = metrics; }

  void EmitBatch(Batch<T>& batch) {
    if (batch.empty()) return;
    if (metrics_ != nullptr) {
      OperatorMetrics::Add(metrics_->records_out, static_cast<int64_t>(batch.size()));
      OperatorMetrics::Add(metrics_->batches_out, 1);
    }
    for (Input<T>* d : readers_) d->OnBatch(batch);
    const size_t n = takers_.size();
    for (size_t i = 0; i + 1 < n; ++i) {
      copy_.values = batch.values;
      copy_.timestamps = batch.timestamps;
      takers_[i]->OnBatch(copy_);
    }
    if (n > 0) takers_[n - 1]->OnBatch(batch);
  }
  void EmitWatermark(Timestamp watermark) {
    for (Input<T>* d : downstream_) d->OnWatermark(watermark);
  }
  void EmitIdle() {
    for (Input<T>* d : downstream_) d->OnIdle();
  }
  void EmitEnd() {
    for (Input<T>* d : downstream_) d->OnEnd();
  }
  void EmitBarrier(int64_t checkpoint_id) {
    for (Input<T>* d : downstream_) d->OnBarrier(checkpoint_id);
  }

 private:
  std::vector<Input<T>*> downstream_;
  // downstream_ split by ReadsOnly(), each in the order added.
  std::vector<Input<T>*> readers_;
  std::vector<Input<T>*> takers_;
  OperatorMetrics* metrics_ = nullptr;
  Batch<T> copy_;
};

// Combines the watermark, idleness and end of input of several inputs into
// an operator's own: the watermark is the minimum over non-idle inputs, an
// ended input counts as watermark +inf, the operator is idle when every
// input that has not ended is idle, and then its watermark is the newest
// any of those idle inputs sent.
class InputSet {
 public:
  explicit InputSet(int num_inputs);

  int size() const { return static_cast<int>(inputs_.size()); }
  Timestamp watermark() const { return emitted_; }
  bool idle() const { return idle_; }
  bool ended() const { return ended_count_ == size(); }
  bool input_ended(int input) const { return inputs_[input].ended; }
  bool input_idle(int input) const { return inputs_[input].idle; }
  // The newest watermark `input` sent, idle or not.
  Timestamp last_watermark(int input) const { return inputs_[input].watermark; }
  // The watermark of `input` alone: kMaxTimestamp once it ended or while it
  // is idle (it holds nothing back), else the newest watermark it sent.
  Timestamp input_watermark(int input) const {
    const State& state = inputs_[input];
    return state.ended || state.idle ? kMaxTimestamp : state.watermark;
  }

  // While `input` is idle it still holds the combined watermark at the last
  // watermark it sent, instead of dropping out of the minimum (it does drop
  // out once every input is idle). For the main input of an operator joined
  // with a broadcast input: the operator emits results for the main input's
  // records only, so the broadcast side's watermark (say, a content table
  // changing now) must not carry the output past records of the main input
  // (say, a replay of last week's events) that are still to come.
  void HoldWhenIdle(int input) { inputs_[input].holds_when_idle = true; }
  // A batch arrived on `input`: it is active again.
  void Activate(int input);
  // Returns the combined watermark if it advanced.
  std::optional<Timestamp> Watermark(int input, Timestamp watermark);
  // Marks `input` idle. Returns the combined watermark if it advanced;
  // sets *became_idle when the operator as a whole just turned idle.
  std::optional<Timestamp> Idle(int input, bool* became_idle);
  // Marks `input` ended. Returns true when every input has ended.
  bool End(int input);

 private:
  struct State {
    Timestamp watermark = kMinTimestamp;
    bool idle = false;
    bool ended = false;
    bool holds_when_idle = false;
  };
  std::optional<Timestamp> Recompute();
  // True when every input that has not ended is idle.
  bool AllRunningIdle() const;

  std::vector<State> inputs_;
  Timestamp emitted_ = kMinTimestamp;
  bool idle_ = false;
  int ended_count_ = 0;
};

// ---------------------------------------------------------------------------
// Side outputs.

class SideChannelBase {
 public:
  virtual ~SideChannelBase() = default;
  virtual void Flush() = 0;
  virtual void Watermark(Timestamp watermark) = 0;
  virtual void Idle() = 0;
  virtual void End() = 0;
  virtual void Barrier(int64_t checkpoint_id) = 0;
};

template <class U>
class SideChannel final : public SideChannelBase {
 public:
  SideChannel(OperatorMetrics* metrics, size_t batch_size) : batch_size_(batch_size) {
    emitter_.set_metrics(metrics);
  }
  Emitter<U>& emitter() { return emitter_; }
  void Push(U&& value, Timestamp ts) {
    batch_.Push(std::move(value), ts);
    if (batch_.size() >= batch_size_) Flush();
  }
  void Flush() override {
    emitter_.EmitBatch(batch_);
    batch_.clear();
  }
  void Watermark(Timestamp watermark) override { emitter_.EmitWatermark(watermark); }
  void Idle() override { emitter_.EmitIdle(); }
  void End() override { emitter_.EmitEnd(); }
  void Barrier(int64_t checkpoint_id) override { emitter_.EmitBarrier(checkpoint_id); }

 private:
  Emitter<U> emitter_;
  Batch<U> batch_;
  size_t batch_size_;
};

// The side outputs of one operator instance, by OutputTag id. A side output
// nobody consumes has no channel, and records sent to it are discarded (as in
// Flink).
class SideOutputs {
 public:
  template <class U>
  SideChannel<U>* Find(const std::string& tag_id) {
    if (channels_.empty()) return nullptr;
    auto it = channels_.find(tag_id);
    if (it == channels_.end() || it->second.type != std::type_index(typeid(U))) return nullptr;
    return static_cast<SideChannel<U>*>(it->second.channel.get());
  }

  template <class U>
  absl::StatusOr<SideChannel<U>*> GetOrCreate(const std::string& tag_id, OperatorMetrics* metrics,
                                              size_t batch_size) {
    auto it = channels_.find(tag_id);
    if (it != channels_.end()) {
      if (it->second.type != std::type_index(typeid(U))) {
        return absl::InvalidArgumentError("side output '" + tag_id +
                                          "' is used with two different record types");
      }
      return static_cast<SideChannel<U>*>(it->second.channel.get());
    }
    auto channel = std::make_unique<SideChannel<U>>(metrics, batch_size);
    SideChannel<U>* raw = channel.get();
    channels_.emplace(tag_id, Entry{std::type_index(typeid(U)), std::move(channel)});
    return raw;
  }

  void FlushAll() {
    for (auto& [id, entry] : channels_) entry.channel->Flush();
  }
  void WatermarkAll(Timestamp watermark) {
    for (auto& [id, entry] : channels_) entry.channel->Watermark(watermark);
  }
  void IdleAll() {
    for (auto& [id, entry] : channels_) entry.channel->Idle();
  }
  void EndAll() {
    for (auto& [id, entry] : channels_) entry.channel->End();
  }
  void BarrierAll(int64_t checkpoint_id) {
    for (auto& [id, entry] : channels_) entry.channel->Barrier(checkpoint_id);
  }

 private:
  struct Entry {
    std::type_index type;
    std::unique_ptr<SideChannelBase> channel;
  };
  absl::flat_hash_map<std::string, Entry> channels_;
};

// ---------------------------------------------------------------------------
// Operators.

// Base of every physical operator instance (one per operator per worker).
// Receives control per input port and combines it with an InputSet; derived
// classes decide what an advanced watermark, idleness and end of input mean.
class OperatorBase {
 public:
  OperatorBase(const WorkerEnv& env, std::string name, int num_inputs);
  virtual ~OperatorBase() = default;
  OperatorBase(const OperatorBase&) = delete;
  OperatorBase& operator=(const OperatorBase&) = delete;

  // Called before the first record / after the last, on the thread that
  // starts the job / the worker's thread.
  virtual absl::Status Open() { return absl::OkStatus(); }
  virtual absl::Status Close() { return absl::OkStatus(); }

  // The display label: errors, logs, metrics.
  const std::string& name() const { return metrics_->name; }
  // The identity checkpoints file this operator's state under and a restore
  // looks it up by (LogicalNode::identity(): its uid). Set by
  // WorkerBuilder::Add before Open.
  const std::string& uid() const { return uid_; }
  void set_uid(std::string uid) { uid_ = std::move(uid); }
  const WorkerEnv& env() const { return env_; }
  OperatorMetrics& metrics() { return *metrics_; }
  std::shared_ptr<OperatorMetrics> shared_metrics() const { return metrics_; }
  // Where this instance's function or connector registers its own metrics.
  MetricGroup& metric_group() const { return *metric_group_; }
  SideOutputs& side_outputs() { return side_outputs_; }
  Timestamp current_watermark() const { return inputs_.watermark(); }
  // One input's own watermark (InputSet::input_watermark).
  Timestamp input_watermark(int port) const { return inputs_.input_watermark(port); }

  // Control arriving on input port `port`.
  void HandleActivate(int port) { inputs_.Activate(port); }
  void HandleWatermark(int port, Timestamp watermark);
  void HandleIdle(int port);
  void HandleEnd(int port);
  // Barrier alignment: a port that delivered barrier n is blocked (its
  // further input waits) until every input has delivered n; then the
  // operator snapshots, forwards n and unblocks. A newer barrier m on any
  // port abandons n (its checkpoint failed: sources emit only the newest
  // requested barrier, so some inputs skip n): held input is replayed first,
  // then m is aligned. A barrier older than the one being aligned is ignored.
  void HandleBarrier(int port, int64_t checkpoint_id);
  bool blocked(int port) const { return aligning_ > aligned_ && blocked_[port]; }
  // Ports that buffer input while blocked register to be replayed.
  void AddReplayable(Replayable* port) { replayables_.push_back(port); }

  // True once the operator will process nothing more.
  virtual bool ended() const { return inputs_.ended(); }
  // Takes this operator's snapshot for `checkpoint_id` and delivers it to the
  // collector (once per checkpoint). Called at the aligned barrier, or by the
  // worker for an operator that has ended.
  void AcknowledgeCheckpoint(int64_t checkpoint_id);
  int64_t last_acknowledged() const { return last_acknowledged_; }
  // Checkpoint `checkpoint_id` is complete (its manifest is written).
  virtual void NotifyCheckpointComplete(int64_t checkpoint_id) { (void)checkpoint_id; }

  // Raises a failure for this operator (unwinds to the worker loop).
  [[noreturn]] void Fail(const absl::Status& status) const;
  // Inside a catch block: raises the current exception as this operator's failure.
  [[noreturn]] void FailFromCurrentException() const;

 protected:
  // The combined watermark advanced to `watermark`.
  virtual void OnWatermarkAdvanced(Timestamp watermark) = 0;
  // Every input is idle.
  virtual void OnInputsIdle() = 0;
  // Every input ended (the watermark has already advanced to +inf).
  virtual void OnInputsEnded() = 0;
  // Every input delivered barrier `checkpoint_id`: snapshot and forward it.
  virtual void OnBarrierAligned(int64_t checkpoint_id) = 0;
  // Adds this operator's state to `snapshot` (default: stateless).
  virtual void SnapshotState(int64_t checkpoint_id, OperatorSnapshot& snapshot) {
    (void)checkpoint_id;
    (void)snapshot;
  }
  // Delivers a snapshot finished off the worker's thread (any thread).
  using SnapshotDone = std::function<void(absl::Status, OperatorSnapshot)>;
  // Called instead of SnapshotState first: returning true, the operator has
  // taken `snapshot` (and `done`) over and calls `done` exactly once, from
  // any thread, with its state added; the worker goes on meanwhile. Default:
  // false (SnapshotState, on the worker's thread).
  virtual bool SnapshotStateAsync(int64_t checkpoint_id, OperatorSnapshot& snapshot,
                                  SnapshotDone& done) {
    (void)checkpoint_id;
    (void)snapshot;
    (void)done;
    return false;
  }
  void MaybeCompleteAlignment();
  // Hands what blocked ports buffered to the operator, in arrival order,
  // port by port, until a port blocks again.
  void ReplayHeldInput();
  // Publishes the advanced watermark, then OnWatermarkAdvanced.
  void AdvanceWatermark(Timestamp watermark);

  const WorkerEnv& env_;
  std::string uid_;
  std::shared_ptr<OperatorMetrics> metrics_;
  MetricGroup* metric_group_;
  InputSet inputs_;
  SideOutputs side_outputs_;
  // Barrier alignment.
  int64_t aligning_ = 0;  // the barrier being aligned (or the last one)
  int64_t aligned_ = 0;   // the last barrier fully aligned
  std::vector<bool> blocked_;
  int arrived_ = 0;
  std::vector<Replayable*> replayables_;
  int64_t last_acknowledged_ = 0;
};

// A port that buffers input while its operator has it blocked.
class Replayable {
 public:
  virtual ~Replayable() = default;
  virtual void Replay() = 0;
};

// An operator with one typed main output (and any side outputs). Forwards
// control to all of them after flushing what it holds.
template <class Out>
class OperatorWithOutput : public OperatorBase {
 public:
  OperatorWithOutput(const WorkerEnv& env, std::string name, int num_inputs)
      : OperatorBase(env, std::move(name), num_inputs) {
    output_.set_metrics(metrics_.get());
  }
  Emitter<Out>& output() { return output_; }

 protected:
  // Emits whatever the operator buffered (collectors); called before any
  // control element leaves, so records never overtake their watermark.
  virtual void FlushBuffered() {}

  void OnWatermarkAdvanced(Timestamp watermark) override {
    FlushBuffered();
    side_outputs_.FlushAll();
    output_.EmitWatermark(watermark);
    side_outputs_.WatermarkAll(watermark);
  }
  void OnInputsIdle() override {
    FlushBuffered();
    side_outputs_.FlushAll();
    output_.EmitIdle();
    side_outputs_.IdleAll();
  }
  void OnInputsEnded() override {
    FlushBuffered();
    side_outputs_.FlushAll();
    output_.EmitEnd();
    side_outputs_.EndAll();
  }
  void OnBarrierAligned(int64_t checkpoint_id) override {
    FlushBuffered();
    side_outputs_.FlushAll();
    AcknowledgeCheckpoint(checkpoint_id);
    output_.EmitBarrier(checkpoint_id);
    side_outputs_.BarrierAll(checkpoint_id);
  }

  Emitter<Out> output_;
};

// Adapts one input port of an operator to the Input<T> its upstream sees:
// control goes to the operator's InputSet, batches to `on_batch` (one
// std::function call per batch, not per record). While the operator has the
// port blocked for barrier alignment, input is buffered in arrival order and
// replayed once the barrier is aligned.
template <class T>
class PortInput final : public Input<T>, public Replayable {
 public:
  // `reads_only`: on_batch leaves the batch as it was (see Input::ReadsOnly).
  PortInput(OperatorBase* op, int port, std::function<void(Batch<T>&)> on_batch,
            bool reads_only = false)
      : op_(op), port_(port), reads_only_(reads_only), on_batch_(std::move(on_batch)) {
    op_->AddReplayable(this);
  }
  void OnBatch(Batch<T>& batch) override {
    if (op_->blocked(port_)) {
      Envelope<T>& held = Hold(EnvelopeKind::kBatch);
      if (reads_only_) {
        held.batch.values = batch.values;
        held.batch.timestamps = batch.timestamps;
        return;
      }
      held.batch.values = std::move(batch.values);
      held.batch.timestamps = std::move(batch.timestamps);
      batch.clear();
      return;
    }
    Deliver(batch);
  }
  bool ReadsOnly() const override { return reads_only_; }
  void OnWatermark(Timestamp watermark) override {
    if (op_->blocked(port_)) {
      Hold(EnvelopeKind::kWatermark).watermark = watermark;
      return;
    }
    op_->HandleWatermark(port_, watermark);
  }
  void OnIdle() override {
    if (op_->blocked(port_)) {
      Hold(EnvelopeKind::kIdle);
      return;
    }
    op_->HandleIdle(port_);
  }
  void OnEnd() override {
    if (op_->blocked(port_)) {
      Hold(EnvelopeKind::kEnd);
      return;
    }
    op_->HandleEnd(port_);
  }
  void OnBarrier(int64_t checkpoint_id) override {
    if (op_->blocked(port_)) {
      Hold(EnvelopeKind::kBarrier).checkpoint_id = checkpoint_id;
      return;
    }
    op_->HandleBarrier(port_, checkpoint_id);
  }

  void Replay() override {
    while (!held_.empty() && !op_->blocked(port_)) {
      Envelope<T> envelope = std::move(held_.front());
      held_.pop_front();
      switch (envelope.kind) {
        case EnvelopeKind::kBatch:
          Deliver(envelope.batch);
          break;
        case EnvelopeKind::kWatermark:
          op_->HandleWatermark(port_, envelope.watermark);
          break;
        case EnvelopeKind::kIdle:
          op_->HandleIdle(port_);
          break;
        case EnvelopeKind::kEnd:
          op_->HandleEnd(port_);
          break;
        case EnvelopeKind::kBarrier:
          op_->HandleBarrier(port_, envelope.checkpoint_id);
          break;
      }
    }
  }

 private:
  void Deliver(Batch<T>& batch) {
    op_->HandleActivate(port_);
    OperatorMetrics& metrics = op_->metrics();
    OperatorMetrics::Add(metrics.records_in, static_cast<int64_t>(batch.size()));
    OperatorMetrics::Add(metrics.batches_in, 1);
    on_batch_(batch);
  }
  Envelope<T>& Hold(EnvelopeKind kind) {
    held_.emplace_back();
    held_.back().kind = kind;
    return held_.back();
  }

  OperatorBase* op_;
  int port_;
  bool reads_only_;
  std::function<void(Batch<T>&)> on_batch_;
  std::deque<Envelope<T>> held_;
};

// ---------------------------------------------------------------------------
// What the worker loop drives.

// A source subtask: polled without blocking while the worker is not
// backpressured.
class SourceTaskBase {
 public:
  virtual ~SourceTaskBase() = default;
  // Returns true if it emitted anything.
  virtual bool Poll() = 0;
  // Emits the barrier of a newly requested checkpoint, and nothing else;
  // true if it did. The worker calls it while its senders hold output back:
  // a cluster-mode sender holds what follows a barrier until that
  // checkpoint completes, which needs every source's barrier.
  virtual bool PollBarrier() = 0;
  virtual bool finished() const = 0;
};

// The receiving end of an exchange on one worker.
class ReceiverBase {
 public:
  virtual ~ReceiverBase() = default;
  // Processes what arrived; returns true if it did anything.
  virtual bool Drain() = 0;
  virtual bool finished() const = 0;
};

// The sending end of an exchange on one worker.
class SenderBase {
 public:
  virtual ~SenderBase() = default;
  // Moves held-back batches into rings with free space; returns true if any moved.
  virtual bool TryFlush() = 0;
  // True while batches wait for ring space (the worker is backpressured).
  virtual bool HasPending() const = 0;
};

// The rings of one exchange as the metrics see them (any thread).
class ExchangeChannelsBase {
 public:
  virtual ~ExchangeChannelsBase() = default;
  virtual int parallelism() const = 0;
  // Capacity of each ring, in envelopes.
  virtual size_t capacity() const = 0;
  // Envelopes waiting in the ring from worker `from` to worker `to` (approximate).
  virtual size_t Fill(int from, int to) const = 0;
};

// An operator with processing-time timers.
class ProcessingTimeDriven {
 public:
  virtual ~ProcessingTimeDriven() = default;
  // The earliest pending processing-time timer, or kMaxTimestamp.
  virtual Timestamp NextProcessingTimer() const = 0;
  virtual void FireProcessingTimers(Timestamp now) = 0;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_OPERATOR_H_
