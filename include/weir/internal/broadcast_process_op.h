// BroadcastProcessOp: runs a BroadcastProcessFunction over a stream and a
// broadcast stream, with the broadcast state. Internal.

#ifndef WEIR_INTERNAL_BROADCAST_PROCESS_OP_H_
#define WEIR_INTERNAL_BROADCAST_PROCESS_OP_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "weir/functions.h"
#include "weir/internal/batch.h"
#include "weir/internal/broadcast_state.h"
#include "weir/internal/checkpointing.h"
#include "weir/internal/operator.h"
#include "weir/internal/user_code.h"
#include "weir/time.h"

namespace weir::internal {

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

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_BROADCAST_PROCESS_OP_H_
