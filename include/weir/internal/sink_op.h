// SinkOp: drives a SinkWriter (writes, flushes, and the two-phase commit of
// transactional sinks at checkpoints). Internal.

#ifndef WEIR_INTERNAL_SINK_OP_H_
#define WEIR_INTERNAL_SINK_OP_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

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
                                                    "barrier (PreCommit), or at the end of input "
                                                    "of a job without checkpoints")),
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
    std::map<int64_t, std::string> due;
    std::vector<double> flushes;
    {
      std::lock_guard<std::mutex> lock(pending_->mu);
      auto end = pending_->committables.upper_bound(checkpoint_id);
      due.insert(std::make_move_iterator(pending_->committables.begin()),
                 std::make_move_iterator(end));
      pending_->committables.erase(pending_->committables.begin(), end);
      flushes.swap(pending_->flush_seconds);
    }
    for (double seconds : flushes) flush_seconds_->Observe(seconds);
    CheckAsyncError();
    for (const auto& [id, committable] : due) {
      GuardUserCode(*this, [&] { CheckSinkStatus(writer_->Commit(id, committable)); });
    }
  }

 protected:
  void OnWatermarkAdvanced(Timestamp) override {}
  void OnInputsIdle() override {}
  void OnInputsEnded() override {
    CheckAsyncError();
    GuardUserCode(*this, [&] { writer_->EndOfInput(); });
    // With checkpoints the job ends with a final checkpoint once every
    // worker's input has ended, and its PreCommit makes the rest durable:
    // the sinks of each worker then flush at once (PreCommitAsync), where a
    // flush here would have each worker wait for its sinks one by one.
    if (env_.collector() != nullptr) return;
    const auto start = std::chrono::steady_clock::now();
    GuardUserCode(*this, [&] { CheckSinkStatus(writer_->Flush()); });
    ObserveFlush(start);
  }
  void OnBarrierAligned(int64_t checkpoint_id) override { AcknowledgeCheckpoint(checkpoint_id); }
  void SnapshotState(int64_t checkpoint_id, OperatorSnapshot& snapshot) override {
    CheckAsyncError();
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::string> committable = writer_->PreCommit(checkpoint_id);
    if (!committable.ok()) {
      errors_->Increment();
      Fail(committable.status());
    }
    ObserveFlush(start);
    // After the asynchronous pre-commits still out (of checkpoints that
    // failed meanwhile), so that this snapshot carries their committables.
    std::unique_lock<std::mutex> lock(pending_->mu);
    pending_->cv.wait(lock, [&] { return pending_->outstanding == 0; });
    pending_->Add(checkpoint_id, *std::move(committable), snapshot);
  }
  // The writer's PreCommitAsync: the snapshot is acknowledged from the
  // writer's thread once its flush is done; the worker goes on.
  bool SnapshotStateAsync(int64_t checkpoint_id, OperatorSnapshot& snapshot,
                          SnapshotDone& done) override {
    if (!env_.asynchronous_sink_flush) return false;
    CheckAsyncError();
    auto held = std::make_shared<HeldSnapshot>(std::move(snapshot), std::move(done));
    typename SinkWriter<T>::PreCommitDone writer_done =
        [pending = pending_, held, checkpoint_id,
         start = std::chrono::steady_clock::now()](absl::StatusOr<std::string> committable) {
          absl::Status status = committable.status();
          {
            std::lock_guard<std::mutex> lock(pending->mu);
            --pending->outstanding;
            pending->cv.notify_all();
            if (status.ok()) {
              pending->Add(checkpoint_id, *std::move(committable), held->snapshot);
              pending->flush_seconds.push_back(
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
            } else if (pending->error.ok()) {
              pending->error = status;
            }
          }
          held->done(std::move(status), std::move(held->snapshot));
        };
    {
      std::lock_guard<std::mutex> lock(pending_->mu);
      ++pending_->outstanding;
    }
    bool taken = false;
    GuardUserCode(*this, [&] { taken = writer_->PreCommitAsync(checkpoint_id, writer_done); });
    if (!taken) {
      std::lock_guard<std::mutex> lock(pending_->mu);
      --pending_->outstanding;
      snapshot = std::move(held->snapshot);
      done = std::move(held->done);
    }
    return taken;
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
  // An asynchronous pre-commit that failed fails the job on the worker.
  void CheckAsyncError() {
    absl::Status error;
    {
      std::lock_guard<std::mutex> lock(pending_->mu);
      error = pending_->error;
    }
    if (!error.ok()) [[unlikely]] {
      errors_->Increment();
      Fail(error);
    }
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
  // What PreCommit or PreCommitAsync's completions (the writer's thread)
  // pre-committed, awaiting the checkpoint's completion.
  struct Pending {
    // Records `committable` as checkpoint `id`'s in `snapshot`, with the
    // earlier ones not committed yet (their checkpoint failed, or its
    // completion has not reached this worker): this checkpoint covers their
    // records, so a restore from it must commit them too.
    void Add(int64_t id, std::string committable, OperatorSnapshot& snapshot) {
      for (const auto& [earlier_id, earlier] : committables) {
        if (earlier_id < id && !earlier.empty())
          snapshot.operator_state[absl::StrCat(kEarlier, earlier_id)] = earlier;
      }
      snapshot.operator_state["committable"] = committable;
      committables[id] = std::move(committable);
    }
    std::mutex mu;
    std::condition_variable cv;  // signals `outstanding` going down
    int outstanding = 0;         // asynchronous pre-commits handed off, not done
    std::map<int64_t, std::string> committables;
    std::vector<double> flush_seconds;  // asynchronous flushes, observed by the worker
    absl::Status error;                 // the first asynchronous failure
  };
  struct HeldSnapshot {
    HeldSnapshot(OperatorSnapshot s, SnapshotDone d) : snapshot(std::move(s)), done(std::move(d)) {}
    OperatorSnapshot snapshot;
    SnapshotDone done;
  };
  std::shared_ptr<Pending> pending_ = std::make_shared<Pending>();
  Histogram* flush_seconds_;
  Histogram* event_time_lag_;
  Counter* errors_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_SINK_OP_H_
