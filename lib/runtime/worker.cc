#include "lib/runtime/worker.h"

#include <algorithm>
#include <chrono>

#include "lib/runtime/job.h"
#include "lib/runtime/worker_signal.h"

namespace weir::internal {

namespace {
// The longest a worker sleeps without being woken: sources that are polled
// (e.g. Kafka) and idleness timeouts are checked at least this often.
constexpr std::chrono::microseconds kMaxSleep{1000};
}  // namespace

Worker::Worker(WorkerBuilder&& built, WorkerSignal& signal, WorkerMetrics& metrics)
    : signal_(signal),
      metrics_(metrics),
      operators_(std::move(built.owned_operators)),
      senders_(std::move(built.senders)),
      sources_(std::move(built.sources)),
      receivers_(std::move(built.receivers)),
      processing_timers_(std::move(built.processing_timers)),
      env_(built.env) {}

absl::Status Worker::Open() {
  for (auto& op : operators_) {
    absl::Status status;
    try {
      status = op->Open();
    } catch (...) {
      return StatusFromCurrentException(op->name(), env_.worker_index);
    }
    if (!status.ok()) return AnnotateStatus(status, op->name(), env_.worker_index);
  }
  return absl::OkStatus();
}

bool Worker::Finished() const {
  for (SourceTaskBase* source : sources_) {
    if (!source->finished()) return false;
  }
  for (ReceiverBase* receiver : receivers_) {
    if (!receiver->finished()) return false;
  }
  for (const auto& sender : senders_) {
    if (sender->HasPending()) return false;
  }
  return true;
}

void Worker::ServeCheckpoints(JobShared& job) {
  const int64_t requested = job.requested_checkpoint.load(std::memory_order_acquire);
  if (requested > all_acknowledged_) {
    bool all = true;
    for (auto& op : operators_) {
      if (op->last_acknowledged() >= requested) continue;
      if (op->ended()) {
        op->AcknowledgeCheckpoint(requested);
      } else {
        all = false;
      }
    }
    if (all) all_acknowledged_ = requested;
  }
  const int64_t completed = job.completed_checkpoint.load(std::memory_order_acquire);
  if (completed > notified_) {
    notified_ = completed;
    for (auto& op : operators_) op->NotifyCheckpointComplete(completed);
  }
}

namespace {

void AddNanos(std::atomic<int64_t>& counter, std::chrono::steady_clock::duration elapsed) {
  counter.store(counter.load(std::memory_order_relaxed) +
                    std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count(),
                std::memory_order_relaxed);
}

}  // namespace

absl::Status Worker::Run(JobShared& job) {
  const bool checkpointing = job.collector != nullptr;
  bool finished = false;
  // Time accounting: one clock read per pass, one more around a sleep.
  auto pass_start = std::chrono::steady_clock::now();
  bool was_backpressured = false;
  try {
    while (!job.abort.load(std::memory_order_relaxed)) {
      bool progressed = false;
      for (auto& sender : senders_) progressed |= sender->TryFlush();
      for (ReceiverBase* receiver : receivers_) progressed |= receiver->Drain();

      bool backpressured = false;
      for (const auto& sender : senders_) backpressured |= sender->HasPending();
      if (!backpressured) {
        for (SourceTaskBase* source : sources_) {
          if (!source->finished()) progressed |= source->Poll();
        }
      } else if (checkpointing) {
        for (SourceTaskBase* source : sources_) {
          if (!source->finished()) progressed |= source->PollBarrier();
        }
      }

      Timestamp next_timer = kMaxTimestamp;
      if (!processing_timers_.empty()) {
        const Timestamp now = env_.Now();
        for (ProcessingTimeDriven* timers : processing_timers_) {
          if (timers->NextProcessingTimer() <= now) {
            timers->FireProcessingTimers(now);
            progressed = true;
          }
          next_timer = std::min(next_timer, timers->NextProcessingTimer());
        }
        if (next_timer != kMaxTimestamp) next_timer -= now;
      }
      if (checkpointing) ServeCheckpoints(job);

      if (!finished && Finished()) {
        finished = true;
        job.unfinished_workers.fetch_sub(1);
      }
      if (finished) {
        // Without checkpoints a finished worker leaves; with them it answers
        // checkpoint requests until the final checkpoint released it.
        if (!checkpointing || job.release_workers.load()) break;
        next_timer = kMaxTimestamp;
        progressed = false;
      }
      auto now = std::chrono::steady_clock::now();
      if (backpressured != was_backpressured) {
        was_backpressured = backpressured;
        metrics_.backpressured.store(backpressured, std::memory_order_relaxed);
      }
      std::atomic<int64_t>& waiting = backpressured ? metrics_.backpressured_ns : metrics_.idle_ns;
      AddNanos(progressed ? metrics_.busy_ns : waiting, now - pass_start);
      pass_start = now;
      if (!progressed) {
        auto sleep = kMaxSleep;
        if (next_timer < 1) {
          sleep = std::chrono::microseconds(0);
        } else if (next_timer < 1000) {
          sleep = std::min(sleep, std::chrono::microseconds(next_timer * 1000));
        }
        if (sleep.count() > 0) {
          signal_.Sleep(sleep);
          now = std::chrono::steady_clock::now();
          AddNanos(waiting, now - pass_start);
          pass_start = now;
        }
      }
    }
    metrics_.backpressured.store(false, std::memory_order_relaxed);
    if (checkpointing && !job.abort.load()) ServeCheckpoints(job);
  } catch (const OperatorFailure& failure) {
    return failure.status();
  } catch (...) {
    return StatusFromCurrentException("<runtime>", env_.worker_index);
  }
  return absl::OkStatus();
}

absl::Status Worker::Close() {
  absl::Status first;
  for (auto& op : operators_) {
    absl::Status status;
    try {
      status = op->Close();
    } catch (...) {
      status = StatusFromCurrentException(op->name(), env_.worker_index);
    }
    if (!status.ok() && first.ok()) first = AnnotateStatus(status, op->name(), env_.worker_index);
  }
  return first;
}

}  // namespace weir::internal
