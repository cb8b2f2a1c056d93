// SinkOp: drives a SinkWriter (writes, flushes, and the two-phase commit of
// transactional sinks at checkpoints). Internal.

#ifndef WEIR_INTERNAL_SINK_OP_H_
#define WEIR_INTERNAL_SINK_OP_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "weir/internal/batch.h"
#include "weir/internal/checkpointing.h"
#include "weir/internal/operator.h"
#include "weir/internal/user_code.h"
#include "weir/metrics.h"
#include "weir/sink.h"
#include "weir/time.h"

namespace weir::internal {

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

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_SINK_OP_H_
