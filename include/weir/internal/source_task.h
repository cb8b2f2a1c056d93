// SourceTask: drives a SourceReader on one worker (polling, watermarks,
// idleness, split snapshots). Internal.

#ifndef WEIR_INTERNAL_SOURCE_TASK_H_
#define WEIR_INTERNAL_SOURCE_TASK_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/internal/checkpointing.h"
#include "weir/internal/operator.h"
#include "weir/internal/user_code.h"
#include "weir/source.h"
#include "weir/time.h"

namespace weir::internal {

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

  bool PollBarrier() override {
    if (finished_) return false;
    const int64_t requested = this->env_.requested_checkpoint();
    if (requested <= this->last_acknowledged()) return false;
    if (!reader_->ReadyForCheckpoint()) return false;
    // A barrier goes in between two polls: everything emitted so far is
    // before it, and the reader's positions are exactly after it.
    if (!out_.batch_.empty()) out_.FlushBatch();
    this->AcknowledgeCheckpoint(requested);
    this->output_.EmitBarrier(requested);
    this->side_outputs_.BarrierAll(requested);
    return true;
  }

  bool Poll() override {
    if (finished_) return false;
    PollBarrier();
    if (this->env_.quiesced()) return false;
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

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_SOURCE_TASK_H_
