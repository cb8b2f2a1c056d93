// Non-template parts of the operator model: watermark combination, failure
// reporting.

#include "weir/internal/operator.h"

#include <algorithm>
#include <exception>
#include <string>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "lib/common/status.h"
#include "weir/internal/checkpointing.h"

namespace weir::internal {

absl::Status AnnotateStatus(const absl::Status& status, const std::string& op_name, int worker) {
  return Annotate(status, absl::StrCat("operator '", op_name, "' (worker ", worker, ")"));
}

absl::Status StatusFromCurrentException(const std::string& op_name, int worker) {
  std::string what;
  try {
    throw;
  } catch (const std::exception& e) {
    what = absl::StrCat("threw ", typeid(e).name(), ": ", e.what());
  } catch (...) {
    what = "threw an exception of unknown type";
  }
  return absl::InternalError(absl::StrCat("operator '", op_name, "' (worker ", worker, ") ", what));
}

InputSet::InputSet(int num_inputs) : inputs_(num_inputs) {}

void InputSet::Activate(int input) {
  inputs_[input].idle = false;
  idle_ = false;
}

std::optional<Timestamp> InputSet::Recompute() {
  Timestamp combined = kMaxTimestamp;
  Timestamp held = kMaxTimestamp;
  // The newest watermark any idle input sent.
  Timestamp idle_max = kMinTimestamp;
  bool any_active = false;
  for (const State& state : inputs_) {
    // Ended inputs count as +inf; idle ones do not hold the watermark back,
    // unless they were marked to (HoldWhenIdle).
    if (state.ended) continue;
    if (state.idle) {
      if (state.holds_when_idle) held = std::min(held, state.watermark);
      idle_max = std::max(idle_max, state.watermark);
      continue;
    }
    any_active = true;
    combined = std::min(combined, state.watermark);
  }
  // Every running input is idle: the watermark goes to the newest one any of
  // them sent (as Flink's valve does). Otherwise inputs that went idle one
  // after another, each before the others' watermarks arrived, would hold
  // back what all of them had passed.
  if (!any_active && !ended()) combined = idle_max;
  combined = std::min(combined, held);
  if (combined > emitted_) {
    emitted_ = combined;
    return combined;
  }
  return std::nullopt;
}

std::optional<Timestamp> InputSet::Watermark(int input, Timestamp watermark) {
  State& state = inputs_[input];
  // A watermark activates its input; an ended input (HandleEnd passes +inf
  // after End) stays out of the idleness bookkeeping.
  if (!state.ended) {
    state.idle = false;
    idle_ = false;
  }
  if (watermark > state.watermark) state.watermark = watermark;
  return Recompute();
}

bool InputSet::AllRunningIdle() const {
  for (const State& state : inputs_) {
    if (!state.idle && !state.ended) return false;
  }
  return true;
}

std::optional<Timestamp> InputSet::Idle(int input, bool* became_idle) {
  inputs_[input].idle = true;
  const bool all_idle = AllRunningIdle();
  *became_idle = all_idle && !idle_;
  if (all_idle) idle_ = true;
  return Recompute();
}

bool InputSet::End(int input) {
  State& state = inputs_[input];
  if (!state.ended) {
    state.ended = true;
    state.watermark = kMaxTimestamp;
    ++ended_count_;
  }
  // The inputs still running may all be idle now.
  if (!ended() && AllRunningIdle()) idle_ = true;
  return ended();
}

OperatorBase::OperatorBase(const WorkerEnv& env, std::string name, int num_inputs)
    : env_(env),
      metrics_(std::make_shared<OperatorMetrics>()),
      metric_group_(&env.metric_group(name)),
      inputs_(num_inputs) {
  metrics_->name = std::move(name);
  metrics_->worker = env.worker_index;
}

void OperatorBase::AdvanceWatermark(Timestamp watermark) {
  metrics_->watermark.store(watermark, std::memory_order_relaxed);
  OnWatermarkAdvanced(watermark);
}

void OperatorBase::HandleWatermark(int port, Timestamp watermark) {
  if (std::optional<Timestamp> advanced = inputs_.Watermark(port, watermark)) {
    AdvanceWatermark(*advanced);
  }
}

void OperatorBase::HandleIdle(int port) {
  bool became_idle = false;
  std::optional<Timestamp> advanced = inputs_.Idle(port, &became_idle);
  if (advanced) AdvanceWatermark(*advanced);
  if (became_idle) OnInputsIdle();
}

void OperatorBase::HandleEnd(int port) {
  const bool was_idle = inputs_.idle();
  const bool all_ended = inputs_.End(port);
  if (std::optional<Timestamp> advanced = inputs_.Watermark(port, kMaxTimestamp)) {
    AdvanceWatermark(*advanced);
  }
  MaybeCompleteAlignment();
  if (all_ended) {
    OnInputsEnded();
  } else if (inputs_.idle() && !was_idle) {
    OnInputsIdle();  // the last active input ended; the others are idle
  }
}

void OperatorBase::HandleBarrier(int port, int64_t checkpoint_id) {
  if (checkpoint_id <= aligned_) return;
  // A barrier older than the one being aligned belongs to a checkpoint that
  // was abandoned (it timed out, and the sources moved on to a newer one).
  // It must not count for the newer barrier: the input that sent it still
  // has to deliver what precedes its own newer barrier. Its port stays open.
  if (checkpoint_id < aligning_) return;
  if (checkpoint_id > aligning_) {
    const bool abandoning = aligning_ > aligned_;
    aligning_ = checkpoint_id;
    blocked_.assign(static_cast<size_t>(inputs_.size()), false);
    blocked_[port] = true;
    arrived_ = 1;
    // What the other ports held for the abandoned barrier precedes this
    // barrier on their inputs: it goes first, before their newer input, and
    // a newer barrier among it counts now.
    if (abandoning) ReplayHeldInput();
    MaybeCompleteAlignment();
    return;
  }
  if (!blocked_[port]) {
    blocked_[port] = true;
    ++arrived_;
  }
  MaybeCompleteAlignment();
}

void OperatorBase::ReplayHeldInput() {
  for (Replayable* port : replayables_) port->Replay();
}

void OperatorBase::MaybeCompleteAlignment() {
  if (aligning_ <= aligned_) return;
  // Inputs that ended will never deliver the barrier: they count as aligned.
  int ready = arrived_;
  for (int port = 0; port < inputs_.size(); ++port) {
    if (!blocked_[port] && inputs_.input_ended(port)) ++ready;
  }
  if (ready < inputs_.size()) return;
  aligned_ = aligning_;
  OnBarrierAligned(aligned_);
  ReplayHeldInput();
}

void OperatorBase::AcknowledgeCheckpoint(int64_t checkpoint_id) {
  if (checkpoint_id <= last_acknowledged_) return;
  last_acknowledged_ = checkpoint_id;
  SnapshotCollector* collector = env_.collector();
  if (collector == nullptr) return;
  OperatorSnapshot snapshot;
  snapshot.uid = uid_;
  snapshot.operator_name = name();
  snapshot.worker = env_.worker_index;
  absl::Status status;
  try {
    SnapshotDone done = [collector, checkpoint_id](absl::Status async_status,
                                                   OperatorSnapshot async_snapshot) {
      collector->Acknowledge(checkpoint_id, std::move(async_status), std::move(async_snapshot));
    };
    if (SnapshotStateAsync(checkpoint_id, snapshot, done)) return;
    SnapshotState(checkpoint_id, snapshot);
  } catch (const OperatorFailure& failure) {
    status = failure.status();
  } catch (...) {
    status = StatusFromCurrentException(name(), env_.worker_index);
  }
  // An operator that cannot be checkpointed at all (a source reader without
  // SnapshotState) fails the job: every later checkpoint would fail too.
  if (absl::IsUnimplemented(status)) throw OperatorFailure(status);
  collector->Acknowledge(checkpoint_id, status, std::move(snapshot));
}

void OperatorBase::Fail(const absl::Status& status) const {
  throw OperatorFailure(AnnotateStatus(status, name(), env_.worker_index));
}

void OperatorBase::FailFromCurrentException() const {
  throw OperatorFailure(StatusFromCurrentException(name(), env_.worker_index));
}

}  // namespace weir::internal
