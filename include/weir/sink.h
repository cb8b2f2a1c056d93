// The interface connectors implement to write a pipeline's results out.
//
// A Sink creates one SinkWriter per worker. The writer receives batches of
// records and flushes at the end of input (with checkpoints: at the job's
// final checkpoint); it is shaped for two-phase commit:
// at each checkpoint barrier the runtime calls PreCommit(n), and once
// checkpoint n is complete, Commit(n) with what PreCommit returned.
//
// A writer whose phase one waits on I/O (a flush to a server) can take it
// off the worker's thread: PreCommitAsync(n, done) hands what was written
// before the barrier to the writer's own thread and returns at once; the
// worker goes on with the records after the barrier, and the checkpoint
// completes only once `done` has delivered the committable (Flink's
// asynchronous snapshot).
//
// Example:
//
//   pipeline.Source(...)
//       .Sink([](const Event& e) { std::cout << e.id << "\n"; })
//       .Name("print")     // the sink's display name
//       .Uid("print-v1");  // the sink's identity in checkpoints

#ifndef WEIR_SINK_H_
#define WEIR_SINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "weir/metrics.h"
#include "weir/time.h"

namespace weir {

// Replays: the job emits every key's current value again.
//
// A sink whose target lost what it had written (a Redis restarted without
// persistence) cannot get it back from its input: records it wrote long ago
// will not come again. It asks for a replay instead. Every keyed operator
// whose function names a KeyedProcessFunction::ReplayState() then calls
// OnReplay once for each key holding that state, a few keys at a time
// beside its normal work (PipelineOptions::replay_keys_per_second), and what
// OnReplay emits flows to the sinks like any other record. Sinks reach the
// service through SinkContext::replay.
class ReplayService {
 public:
  virtual ~ReplayService() = default;
  // Asks for a replay; logs `reason`. Returns the replay's number (1, 2,
  // ...). A request made before the operators began the newest replay joins
  // it; a later one starts a new replay, which begins again at the first
  // key. Thread-safe.
  virtual int64_t Request(std::string_view reason) = 0;
  // The newest replay's number (0: none was asked for).
  virtual int64_t latest() const = 0;
  // True once replay `number`, or a newer one, was emitted in full by every
  // replaying operator before the barrier of checkpoint `checkpoint_id`
  // reached it: a sink's Commit(checkpoint_id) then knows that it received
  // all of it.
  virtual bool CompleteBefore(int64_t number, int64_t checkpoint_id) const = 0;
};

// What a writer is created with.
struct SinkContext {
  // The sink's display name (SinkHandle::Name()), for logs and errors.
  std::string operator_name;
  // The sink's uid (SinkHandle::Uid()): its identity across runs. Derive from
  // it, never from the display name, whatever must survive a restart and
  // tell two sinks apart (Kafka transactional ids, the Redis fence key).
  // Without a Uid() it is "Sink#<n>", its place in the graph, which moves
  // when the pipeline's shape changes; a job with checkpoints requires one.
  std::string operator_uid;
  int worker_index = 0;
  int parallelism = 1;
  // PipelineOptions::job_name (e.g. to derive Kafka transactional ids).
  std::string job_name;
  // Whether the job takes checkpoints (checkpoint storage is set), and their
  // interval (zero: only the final and triggered ones) and timeout, so that
  // two-phase sinks can check their own timeouts against them.
  bool checkpointing = false;
  absl::Duration checkpoint_interval = absl::ZeroDuration();
  absl::Duration checkpoint_timeout = absl::ZeroDuration();
  // The checkpoint this run restored the sink from, when that checkpoint
  // holds it (the sink ran, under this uid, in the run that took it); 0
  // otherwise.
  int64_t restored_checkpoint = 0;
  // Replays of keyed state (see ReplayService). Null when the writer is
  // created outside a job.
  ReplayService* replay = nullptr;
  // Where the writer registers its metrics; labelled with the job, the
  // operator and the worker. Set by the runtime; may be null when a writer
  // is created outside a job.
  MetricGroup* metrics = nullptr;
};

// Writes the records of one worker. Called only from that worker's thread.
template <class T>
class SinkWriter {
 public:
  virtual ~SinkWriter() = default;
  // Writes a batch; may move out of `values`. A non-OK status fails the job.
  virtual absl::Status Write(std::span<T> values, std::span<const Timestamp> timestamps) = 0;
  // True when Write only reads `values`: never moves out of or changes them.
  // A stream consumed by several operators is then handed to this writer
  // as is, where otherwise each consumer but one gets a copy of each batch.
  virtual bool ReadsOnly() const { return false; }
  // Makes everything written so far durable/visible. Called at the end of
  // input of a job without checkpoints; with checkpoints, the final
  // checkpoint's PreCommit does it (so PreCommit must leave nothing behind).
  virtual absl::Status Flush() { return absl::OkStatus(); }
  // The input has ended: nothing more is written. Then comes Flush() (no
  // checkpoints) or the job's final checkpoint (PreCommit, and Commit once
  // it completes). Default: nothing.
  virtual void EndOfInput() {}
  // Phase one of a checkpoint: flush and return what Commit needs later
  // (e.g. a transaction id). Default: Flush() and nothing to commit.
  virtual absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) {
    (void)checkpoint_id;
    absl::Status status = Flush();
    if (!status.ok()) return status;
    return std::string();
  }
  // Phase one without stopping the worker (optional). Returns false to have
  // the runtime call PreCommit instead (the default). Returning true, the
  // writer has taken every record written so far as checkpoint
  // `checkpoint_id`'s, and calls `done` exactly once, from any thread, when
  // they are durable (with what Commit needs later, as PreCommit returns
  // it) or cannot be made so (an error fails the job). Records written after
  // the call belong to later checkpoints. Calls of `done` come in checkpoint
  // order. Close() cancels what is outstanding: after it returns, `done` is
  // not called any more.
  using PreCommitDone = std::function<void(absl::StatusOr<std::string>)>;
  virtual bool PreCommitAsync(int64_t checkpoint_id, PreCommitDone& done) {
    (void)checkpoint_id;
    (void)done;
    return false;
  }
  // Phase two: checkpoint `checkpoint_id` is complete.
  virtual absl::Status Commit(int64_t checkpoint_id, const std::string& committable) {
    (void)checkpoint_id;
    (void)committable;
    return absl::OkStatus();
  }
  virtual absl::Status Close() { return absl::OkStatus(); }
};

// A data sink: a factory of writers. Thread-safety: CreateWriter is called
// from the thread that starts the job.
template <class T>
class Sink {
 public:
  using Record = T;
  virtual ~Sink() = default;
  virtual absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(
      const SinkContext& context) = 0;
};

// A sink that calls `fn(value)` for every record, on the worker's thread (so
// `fn` must be thread-safe when parallelism > 1). `fn` returns void or
// absl::Status.
template <class T, class F>
class FunctionSink final : public Sink<T> {
 public:
  explicit FunctionSink(F fn) : fn_(std::move(fn)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(const SinkContext&) override {
    return std::make_unique<Writer>(&fn_);
  }

 private:
  class Writer final : public SinkWriter<T> {
   public:
    explicit Writer(F* fn) : fn_(fn) {}
    absl::Status Write(std::span<T> values, std::span<const Timestamp>) override {
      for (T& value : values) {
        if constexpr (std::is_same_v<std::invoke_result_t<F&, T&>, absl::Status>) {
          absl::Status status = (*fn_)(value);
          if (!status.ok()) return status;
        } else {
          (*fn_)(value);
        }
      }
      return absl::OkStatus();
    }

   private:
    F* fn_;
  };
  F fn_;
};

}  // namespace weir

#endif  // WEIR_SINK_H_
