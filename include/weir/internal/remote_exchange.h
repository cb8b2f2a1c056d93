// Exchanges between the tasks of a cluster-mode job (PipelineOptions::cluster):
// a KeyBy or Broadcast whose two ends may run in different processes. Records
// cross as batches encoded with Codec<T>; watermarks, idleness and end of
// input cross as control messages that name the task that sent them, so a
// receiver combines them per producer (the minimum over producers that are
// neither idle nor finished). The transport (Kafka topics, lib/cluster)
// implements RemoteEndpoint. Internal.
//
// Exactly once: what a task sends between two of its checkpoints is one
// transaction of the transport, committed with the checkpoint. A sender that
// has seen barrier n holds what follows it until checkpoint n is committed
// (or failed), so the records of one transaction are exactly those before
// the barrier. The receiver's position is part of its snapshot.

#ifndef WEIR_INTERNAL_REMOTE_EXCHANGE_H_
#define WEIR_INTERNAL_REMOTE_EXCHANGE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/codec.h"
#include "weir/internal/batch.h"
#include "weir/internal/checkpointing.h"
#include "weir/internal/operator.h"
#include "weir/time.h"

namespace weir::internal {

enum class RemoteKind : uint8_t { kBatch = 0, kWatermark = 1, kIdle = 2, kEnd = 3 };

// One message as a receiver reads it. `payload` (kBatch: the encoded
// records) stays valid until the next Poll.
struct RemoteMessage {
  RemoteKind kind = RemoteKind::kBatch;
  int producer = 0;
  Timestamp watermark = kMinTimestamp;
  std::string_view payload;
};

// One exchange as one task sees it: the sending side writes to every task's
// partition, the receiving side reads this task's. Used by the task's worker
// thread only.
class RemoteEndpoint {
 public:
  virtual ~RemoteEndpoint() = default;
  // Appends a message for task `dest` to the task's open transaction.
  virtual absl::Status Send(int dest, RemoteKind kind, Timestamp watermark,
                            std::string_view payload) = 0;
  // Replaces `out` with the messages that arrived for this task, in order
  // (at most `max`; none when nothing arrived).
  virtual absl::Status Poll(std::vector<RemoteMessage>& out, size_t max) = 0;
  // Where the receiving side resumes after what Poll returned: what its
  // snapshot keeps.
  virtual std::string Position() const = 0;
};

// The transport's side of a task: opens each exchange's endpoint, resuming
// the receiving side at `position` (empty: from the beginning).
class RemoteExchanges {
 public:
  virtual ~RemoteExchanges() = default;
  virtual absl::StatusOr<std::unique_ptr<RemoteEndpoint>> Open(const std::string& exchange,
                                                               const std::string& position) = 0;
  // The name of exchange node `kind`#`id` in the transport (say, a topic).
  static std::string ExchangeName(const std::string& kind, int id) {
    return kind + "-" + std::to_string(id);
  }
};

// The sending end on one task. `Route` maps a record to a destination task,
// or is unused for broadcast.
template <class T, class Route>
class RemoteExchangeSender final : public Input<T>, public SenderBase {
 public:
  RemoteExchangeSender(const WorkerEnv& env, std::string name,
                       std::shared_ptr<RemoteEndpoint> endpoint, Route route, bool broadcast)
      : env_(env),
        name_(std::move(name)),
        endpoint_(std::move(endpoint)),
        route_(std::move(route)),
        broadcast_(broadcast),
        staging_(static_cast<size_t>(env.parallelism)) {}

  void OnBatch(Batch<T>& batch) override {
    if (broadcast_) {
      std::string payload = Encode(batch.values.data(), batch.timestamps.data(), batch.size());
      for (int dest = 0; dest < env_.parallelism; ++dest) {
        Queue(dest, RemoteKind::kBatch, kMinTimestamp, payload);
      }
      return;
    }
    try {
      for (size_t idx = 0; idx < batch.size(); ++idx) {
        const int dest = env_.parallelism == 1 ? 0 : route_(batch.values[idx]);
        staging_[dest].Push(std::move(batch.values[idx]), batch.timestamps[idx]);
      }
    } catch (...) {
      throw OperatorFailure(StatusFromCurrentException(name_, env_.worker_index));
    }
    for (int dest = 0; dest < env_.parallelism; ++dest) {
      Batch<T>& staged = staging_[dest];
      if (staged.empty()) continue;
      Queue(dest, RemoteKind::kBatch, kMinTimestamp,
            Encode(staged.values.data(), staged.timestamps.data(), staged.size()));
      staged.clear();
    }
  }
  void OnWatermark(Timestamp watermark) override { QueueAll(RemoteKind::kWatermark, watermark); }
  void OnIdle() override { QueueAll(RemoteKind::kIdle, kMinTimestamp); }
  void OnEnd() override { QueueAll(RemoteKind::kEnd, kMaxTimestamp); }
  // What follows barrier n waits until checkpoint n is committed or failed:
  // it belongs to the task's next transaction.
  void OnBarrier(int64_t checkpoint_id) override {
    if (checkpoint_id > hold_until_) hold_until_ = checkpoint_id;
  }

  bool TryFlush() override {
    if (pending_.empty() || Holding()) return false;
    while (!pending_.empty()) {
      Pending& next = pending_.front();
      SendNow(next.dest, next.kind, next.watermark, next.payload);
      pending_.pop_front();
    }
    return true;
  }
  bool HasPending() const override { return !pending_.empty(); }

 private:
  struct Pending {
    int dest;
    RemoteKind kind;
    Timestamp watermark;
    std::string payload;
  };

  bool Holding() const { return hold_until_ > env_.resolved_checkpoint(); }

  static std::string Encode(const T* values, const Timestamp* timestamps, size_t count) {
    std::string out;
    Codec<uint32_t>::Encode(static_cast<uint32_t>(count), out);
    for (size_t idx = 0; idx < count; ++idx) {
      Codec<int64_t>::Encode(timestamps[idx], out);
      Codec<T>::Encode(values[idx], out);
    }
    return out;
  }

  void Queue(int dest, RemoteKind kind, Timestamp watermark, std::string payload) {
    if (pending_.empty() && !Holding()) {
      SendNow(dest, kind, watermark, payload);
      return;
    }
    pending_.push_back(Pending{dest, kind, watermark, std::move(payload)});
  }
  void QueueAll(RemoteKind kind, Timestamp watermark) {
    for (int dest = 0; dest < env_.parallelism; ++dest) Queue(dest, kind, watermark, {});
  }
  void SendNow(int dest, RemoteKind kind, Timestamp watermark, std::string_view payload) {
    absl::Status status = endpoint_->Send(dest, kind, watermark, payload);
    if (!status.ok()) throw OperatorFailure(AnnotateStatus(status, name_, env_.worker_index));
  }

  const WorkerEnv& env_;
  std::string name_;
  std::shared_ptr<RemoteEndpoint> endpoint_;
  Route route_;
  bool broadcast_;
  std::vector<Batch<T>> staging_;
  std::deque<Pending> pending_;
  int64_t hold_until_ = 0;
};

// The receiving end on one task: polled like a source (so backpressure stops
// it), one input port per producing task. Its snapshot keeps the transport
// position and every producer's watermark, idleness and end, so a restore
// resumes exactly there and event time never goes back.
template <class T>
class RemoteExchangeReceiver final : public OperatorWithOutput<T>, public SourceTaskBase {
 public:
  RemoteExchangeReceiver(const WorkerEnv& env, std::string name,
                         std::shared_ptr<RemoteEndpoint> endpoint, std::string restored_inputs)
      : OperatorWithOutput<T>(env, std::move(name), env.parallelism),
        endpoint_(std::move(endpoint)),
        restored_inputs_(std::move(restored_inputs)) {}

  bool finished() const override { return this->inputs_.ended(); }

  bool PollBarrier() override {
    const int64_t requested = this->env_.requested_checkpoint();
    if (requested <= this->last_acknowledged() || this->inputs_.ended()) return false;
    // Everything read so far is before the barrier; the position is exactly
    // after it.
    this->AcknowledgeCheckpoint(requested);
    this->output_.EmitBarrier(requested);
    this->side_outputs_.BarrierAll(requested);
    return true;
  }

  bool Poll() override {
    bool progressed = false;
    if (!restored_inputs_.empty()) {
      ApplyRestoredInputs();
      progressed = true;
    }
    progressed |= PollBarrier();
    if (this->inputs_.ended() || this->env_.quiesced()) return progressed;
    // A few batches per poll: a barrier (or a stop) waits for no more than
    // what this poll emitted.
    absl::Status status = endpoint_->Poll(messages_, 4);
    if (!status.ok()) this->Fail(status);
    for (const RemoteMessage& message : messages_) {
      if (message.producer < 0 || message.producer >= this->env_.parallelism) {
        this->Fail(absl::DataLossError("a message from task " + std::to_string(message.producer) +
                                       " of a job with " + std::to_string(this->env_.parallelism) +
                                       " tasks"));
      }
      Dispatch(message);
    }
    return progressed || !messages_.empty();
  }

 private:
  void Dispatch(const RemoteMessage& message) {
    switch (message.kind) {
      case RemoteKind::kBatch: {
        batch_.clear();
        std::string_view in = message.payload;
        uint32_t count = 0;
        bool ok = Codec<uint32_t>::Decode(in, count);
        for (uint32_t idx = 0; ok && idx < count; ++idx) {
          Timestamp timestamp = 0;
          T value{};
          ok = Codec<int64_t>::Decode(in, timestamp) && Codec<T>::Decode(in, value);
          if (ok) batch_.Push(std::move(value), timestamp);
        }
        if (!ok || !in.empty()) {
          this->Fail(absl::DataLossError("a batch from task " + std::to_string(message.producer) +
                                         " does not decode with this record type's Codec"));
        }
        this->HandleActivate(message.producer);
        OperatorMetrics::Add(this->metrics_->records_in, static_cast<int64_t>(batch_.size()));
        OperatorMetrics::Add(this->metrics_->batches_in, 1);
        this->output_.EmitBatch(batch_);
        break;
      }
      case RemoteKind::kWatermark:
        this->HandleWatermark(message.producer, message.watermark);
        break;
      case RemoteKind::kIdle:
        this->HandleIdle(message.producer);
        break;
      case RemoteKind::kEnd:
        this->HandleEnd(message.producer);
        break;
    }
  }

  void SnapshotState(int64_t checkpoint_id, OperatorSnapshot& snapshot) override {
    (void)checkpoint_id;
    snapshot.operator_state[std::string(kPositionKey)] = endpoint_->Position();
    std::string inputs;
    for (int port = 0; port < this->inputs_.size(); ++port) {
      Codec<int64_t>::Encode(this->inputs_.last_watermark(port), inputs);
      Codec<bool>::Encode(this->inputs_.input_idle(port), inputs);
      Codec<bool>::Encode(this->inputs_.input_ended(port), inputs);
    }
    snapshot.operator_state[std::string(kInputsKey)] = std::move(inputs);
  }

  // Replays the restored per-producer state into the InputSet (on the
  // worker's thread, on the first poll).
  void ApplyRestoredInputs() {
    std::string_view in = restored_inputs_;
    for (int port = 0; port < this->inputs_.size() && !in.empty(); ++port) {
      Timestamp watermark = kMinTimestamp;
      bool idle = false;
      bool ended = false;
      if (!Codec<int64_t>::Decode(in, watermark) || !Codec<bool>::Decode(in, idle) ||
          !Codec<bool>::Decode(in, ended)) {
        this->Fail(absl::DataLossError("the restored producer state does not decode"));
      }
      if (watermark != kMinTimestamp) this->HandleWatermark(port, watermark);
      if (ended) {
        this->HandleEnd(port);
      } else if (idle) {
        this->HandleIdle(port);
      }
    }
    restored_inputs_.clear();
  }

 public:
  static constexpr std::string_view kPositionKey = "remote/position";
  static constexpr std::string_view kInputsKey = "remote/inputs";

 private:
  std::shared_ptr<RemoteEndpoint> endpoint_;
  std::string restored_inputs_;
  std::vector<RemoteMessage> messages_;
  Batch<T> batch_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_REMOTE_EXCHANGE_H_
