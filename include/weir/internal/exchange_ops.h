// Exchanges between workers: the rings of one exchange (ExchangeChannels) and
// its two ends, ExchangeSender and ExchangeReceiver. Internal.

#ifndef WEIR_INTERNAL_EXCHANGE_OPS_H_
#define WEIR_INTERNAL_EXCHANGE_OPS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weir/internal/batch.h"
#include "weir/internal/operator.h"
#include "weir/internal/spsc_ring.h"
#include "weir/time.h"

namespace weir::internal {

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
        outbox_(env.parallelism) {
    // Routing stages records per worker: full capacity from the first batch
    // on, as the recycled ones have, so no growth moves the records staged.
    if (!broadcast_ && env.parallelism > 1) {
      for (Batch<T>& staged : staging_) staged.reserve(env.batch_size);
    }
  }

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
      Batch<T>* const staging = staging_.data();
      for (size_t idx = 0; idx < batch.size(); ++idx) {
        staging[route_(batch.values[idx])].Push(std::move(batch.values[idx]),
                                                batch.timestamps[idx]);
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

#endif  // WEIR_INTERNAL_EXCHANGE_OPS_H_
