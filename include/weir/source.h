// The interface connectors implement to bring data into a pipeline.
//
// A Source describes the input and is split into splits (Kafka partitions,
// files, ranges of a vector). When the job starts, the runtime calls
// DiscoverSplits() once, assigns split i to worker i % parallelism and asks
// the Source for one SourceReader per worker. Each worker polls its reader
// without blocking; the reader emits records into a SourceOutput, naming the
// split each came from, so watermarks are tracked per split.
//
// Example (a reader emitting numbers 0..n-1 from one split):
//
//   class CountingReader : public weir::SourceReader<int64_t> {
//    public:
//     absl::StatusOr<weir::PollResult> Poll(weir::SourceOutput<int64_t>& out) override {
//       for (int i = 0; i < 1000 && next_ < n_; ++i, ++next_) out.Collect(0, next_, next_);
//       return next_ < n_ ? weir::PollResult::kMoreAvailable : weir::PollResult::kEndOfInput;
//     }
//   };

#ifndef WEIR_SOURCE_H_
#define WEIR_SOURCE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "weir/internal/batch.h"
#include "weir/internal/operator.h"
#include "weir/metrics.h"
#include "weir/time.h"

namespace weir {

// One independently readable part of a source (e.g. a Kafka partition).
struct SourceSplit {
  // A stable, unique id (used in errors, metrics and checkpoints).
  std::string id;
  // The split's position from the checkpoint being restored (what the
  // reader's SnapshotState returned for it), or nullopt: start afresh.
  std::optional<std::string> state;
};

// What a reader is created with.
struct SourceReaderContext {
  // The source's display name (Stream::Name()), for logs and errors.
  std::string operator_name;
  // The source's uid (Stream::Uid()): its identity across runs, under which
  // checkpoints keep its split positions. Without a Uid() it is
  // "Source#<n>", its place in the graph; a job with checkpoints requires one.
  std::string operator_uid;
  int worker_index = 0;
  int parallelism = 1;
  // The splits this worker reads; SourceOutput's `split` arguments index this vector.
  std::vector<SourceSplit> splits;
  // Where the reader registers its metrics (e.g. consumer lag); labelled with
  // the job, the operator and the worker. Set by the runtime; may be null
  // when a reader is created outside a job.
  MetricGroup* metrics = nullptr;
  // Whether the job takes checkpoints, and how many complete ones its
  // storage keeps (CheckpointOptions::retained): a source that lets its
  // upstream discard data once a checkpoint covers it (a PostgreSQL slot's
  // confirmed LSN) waits until the oldest checkpoint a restore may still
  // pick covers it, not just the newest.
  bool checkpointing = false;
  int checkpoints_retained = 0;
};

// What one Poll() call found.
enum class PollResult {
  // More records are ready; poll again soon.
  kMoreAvailable,
  // Nothing right now (the worker may sleep briefly before polling again).
  kNothingAvailable,
  // Every split of this reader is exhausted; Poll is not called again.
  kEndOfInput,
};

namespace internal {
template <class T>
class SourceTask;
}  // namespace internal

// Where a reader emits records. Applies the WatermarkStrategy's timestamp
// assigner and tracks the watermark of each split. Not thread-safe; owned by
// the runtime.
template <class T>
class SourceOutput {
 public:
  // Emits `value` read from `split` with the timestamp the source knows
  // (e.g. the broker timestamp); a timestamp assigner may replace it.
  void Collect(int split, const T& value, Timestamp source_timestamp) {
    batch_.values.push_back(value);
    Stamp(split, source_timestamp);
  }
  void Collect(int split, T&& value, Timestamp source_timestamp) {
    batch_.values.push_back(std::move(value));
    Stamp(split, source_timestamp);
  }
  // Builds the next value in place, with no copy or move of it: `build`
  // gets a default-constructed T in the batch to fill and returns whether to
  // emit it (false: it is dropped, nothing is emitted). Returns what `build`
  // returned.
  template <class Build>
  bool CollectInPlace(int split, Timestamp source_timestamp, Build&& build) {
    T& value = batch_.values.emplace_back();
    if (!std::forward<Build>(build)(value)) {
      batch_.values.pop_back();
      return false;
    }
    Stamp(split, source_timestamp);
    return true;
  }

  // Declares that `split` has nothing more to read for now (e.g. caught up
  // with the end of a Kafka partition): it stops holding back the watermark
  // until it emits again.
  void MarkIdle(int split) { splits_[split].idle = true; }

  // Declares that `split` will never emit again.
  void FinishSplit(int split) { splits_[split].finished = true; }

  int num_splits() const { return static_cast<int>(splits_.size()); }

 private:
  friend class internal::SourceTask<T>;
  struct SplitState {
    Timestamp max_timestamp = kMinTimestamp;
    int64_t records = 0;           // emitted since the last poll ended
    Timestamp last_active_ms = 0;  // processing time of the last poll with records
    bool idle = false;
    bool finished = false;
  };

  SourceOutput(internal::Emitter<T>* emitter, size_t batch_size,
               std::function<Timestamp(const T&, Timestamp)> assigner, int num_splits)
      : emitter_(emitter),
        batch_size_(batch_size),
        assigner_(std::move(assigner)),
        splits_(num_splits) {
    batch_.reserve(batch_size);
  }
  // Completes the record just appended to batch_.values.
  void Stamp(int split, Timestamp source_timestamp) {
    SplitState& s = splits_[split];
    Timestamp ts = assigner_ ? assigner_(batch_.values.back(), source_timestamp) : source_timestamp;
    // No event time: the split's own time so far, which moves nothing.
    if (ts == kNoTimestamp) ts = s.max_timestamp;
    if (ts > s.max_timestamp) s.max_timestamp = ts;
    ++s.records;
    s.idle = false;
    batch_.timestamps.push_back(ts);
    if (batch_.values.size() >= batch_size_) FlushBatch();
  }
  void FlushBatch() {
    emitter_->EmitBatch(batch_);
    batch_.clear();
  }

  internal::Emitter<T>* emitter_;
  size_t batch_size_;
  std::function<Timestamp(const T&, Timestamp)> assigner_;
  std::vector<SplitState> splits_;
  internal::Batch<T> batch_;
};

// Reads the splits assigned to one worker. Called only from that worker's
// thread. Poll must not block for long: return kNothingAvailable instead.
template <class T>
class SourceReader {
 public:
  virtual ~SourceReader() = default;
  virtual absl::StatusOr<PollResult> Poll(SourceOutput<T>& output) = 0;
  // The position of each of this reader's splits (in SourceReaderContext
  // order) right after the records it has emitted; called at a checkpoint
  // barrier. A source that cannot be checkpointed keeps the default, and a
  // job with checkpoints enabled fails with a clear error.
  virtual absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t checkpoint_id) {
    (void)checkpoint_id;
    return absl::UnimplementedError("this source does not support checkpoints");
  }
  // false while the reader is in a phase no checkpoint can cover, one a
  // restore could not resume (e.g. a database snapshot that lives only as
  // long as its connection): the checkpoint barrier then waits at this
  // source, which goes on emitting records, until it is true again. Other
  // sources and operators wait for the barrier as for a slow one, and a
  // checkpoint waiting longer than CheckpointOptions::timeout fails.
  virtual bool ReadyForCheckpoint() const { return true; }
  // Checkpoint `checkpoint_id` is complete (e.g. commit offsets to Kafka).
  virtual absl::Status NotifyCheckpointComplete(int64_t checkpoint_id) {
    (void)checkpoint_id;
    return absl::OkStatus();
  }
  virtual absl::Status Close() { return absl::OkStatus(); }
};

// A data source. Thread-safety: DiscoverSplits and CreateReader are called
// from the thread that starts the job.
template <class T>
class Source {
 public:
  using Record = T;
  virtual ~Source() = default;
  // Lists the splits to read. Errors (e.g. a topic that does not exist) fail Start().
  virtual absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() = 0;
  virtual absl::StatusOr<std::unique_ptr<SourceReader<T>>> CreateReader(
      const SourceReaderContext& context) = 0;
};

}  // namespace weir

#endif  // WEIR_SOURCE_H_
