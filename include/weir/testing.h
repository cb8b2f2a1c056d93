// Test helpers: an in-memory source over a vector (with timestamps, splits and
// optional out-of-order jitter), a collecting sink, and a runner that drives
// a pipeline to completion with a deadline and reports its counters.
//
// Example:
//
//   weir::Pipeline pipeline({.parallelism = 4});
//   auto sink = weir::testing::CollectingSink<int>::Create();
//   pipeline.Source(weir::testing::VectorSource<int>::Create({1, 2, 3}))
//       .Map([](int x) { return x + 1; })
//       .Sink(sink);
//   weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
//   ASSERT_TRUE(result.status.ok());
//   EXPECT_THAT(sink->Values(), UnorderedElementsAre(2, 3, 4));

#ifndef WEIR_TESTING_H_
#define WEIR_TESTING_H_

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "weir/codec.h"
#include "weir/dead_letter.h"
#include "weir/pipeline.h"
#include "weir/sink.h"
#include "weir/source.h"
#include "weir/time.h"

namespace weir::testing {

template <class T>
struct TimestampedValue {
  T value;
  Timestamp timestamp = 0;
};

struct VectorSourceOptions {
  // Number of splits; record i belongs to split i % splits, and each split
  // emits its records in order (or jittered, below).
  // Default: 4
  int splits = 4;
  // Records emitted per split per poll.
  // Default: 1024
  size_t records_per_poll = 1024;
  // Emits each split's records ordered by timestamp + a random delay in
  // [0, jitter]: records arrive out of order by up to `jitter`.
  // Default: no jitter
  absl::Duration jitter = absl::ZeroDuration();
  // Seed of the jitter.
  // Default: 42
  uint64_t seed = 42;
  // When true, exhausted splits report idle and the source never ends by
  // itself (JobHandle::Stop() ends it), like a caught-up Kafka partition.
  // Default: false
  bool unbounded = false;
  // Emits at most this many records per second per split (0: as fast as
  // possible), so a test can interrupt a job mid-stream.
  // Default: 0
  double records_per_second = 0;
};

// A source over an in-memory vector.
template <class T>
class VectorSource final : public Source<T> {
 public:
  // Records with explicit timestamps.
  static std::shared_ptr<VectorSource> Create(std::vector<TimestampedValue<T>> records,
                                              VectorSourceOptions options = {}) {
    return std::shared_ptr<VectorSource>(new VectorSource(std::move(records), options));
  }
  // Values stamped with their index (0, 1, 2, ...).
  static std::shared_ptr<VectorSource> Create(std::vector<T> values,
                                              VectorSourceOptions options = {}) {
    std::vector<TimestampedValue<T>> records;
    records.reserve(values.size());
    for (size_t idx = 0; idx < values.size(); ++idx) {
      records.push_back({std::move(values[idx]), static_cast<Timestamp>(idx)});
    }
    return Create(std::move(records), options);
  }

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    if (options_.splits < 1)
      return absl::InvalidArgumentError("VectorSourceOptions.splits must be >= 1");
    std::vector<SourceSplit> splits;
    for (int split = 0; split < options_.splits; ++split)
      splits.push_back({absl::StrCat("vector-", split)});
    return splits;
  }

  absl::StatusOr<std::unique_ptr<SourceReader<T>>> CreateReader(
      const SourceReaderContext& context) override {
    std::vector<const std::vector<TimestampedValue<T>>*> splits;
    for (const SourceSplit& split : context.splits) {
      splits.push_back(&splits_[std::stoul(split.id.substr(split.id.find('-') + 1))]);
    }
    auto reader = std::make_unique<Reader>(options_, std::move(splits));
    // Restored positions: the number of records of the split already emitted.
    for (size_t idx = 0; idx < context.splits.size(); ++idx) {
      if (!context.splits[idx].state) continue;
      size_t position = 0;
      if (!absl::SimpleAtoi(*context.splits[idx].state, &position)) {
        return absl::DataLossError("VectorSource: bad position for split " +
                                   context.splits[idx].id);
      }
      reader->Seek(idx, position);
    }
    return std::unique_ptr<SourceReader<T>>(std::move(reader));
  }

 private:
  // Cuts the records into splits once: record i goes to split i % splits, each
  // split in emission order (jittered if asked), stored contiguously so a
  // reader streams through memory.
  VectorSource(std::vector<TimestampedValue<T>> records, VectorSourceOptions options)
      : options_(options) {
    const size_t num_splits = static_cast<size_t>(std::max(options_.splits, 1));
    splits_.resize(num_splits);
    for (size_t split = 0; split < num_splits; ++split)
      splits_[split].reserve(records.size() / num_splits + 1);
    for (size_t idx = 0; idx < records.size(); ++idx)
      splits_[idx % num_splits].push_back(std::move(records[idx]));
    const int64_t jitter = absl::ToInt64Milliseconds(options_.jitter);
    if (jitter <= 0) return;
    for (size_t split = 0; split < num_splits; ++split) {
      std::mt19937_64 rng(options_.seed + split);
      std::uniform_int_distribution<int64_t> delay(0, jitter);
      std::vector<std::pair<Timestamp, size_t>> order;
      order.reserve(splits_[split].size());
      for (size_t idx = 0; idx < splits_[split].size(); ++idx) {
        order.push_back({splits_[split][idx].timestamp + delay(rng), idx});
      }
      std::stable_sort(order.begin(), order.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<TimestampedValue<T>> reordered;
      reordered.reserve(order.size());
      for (const auto& [key, idx] : order) reordered.push_back(std::move(splits_[split][idx]));
      splits_[split] = std::move(reordered);
    }
  }

  class Reader final : public SourceReader<T> {
   public:
    Reader(const VectorSourceOptions& options,
           std::vector<const std::vector<TimestampedValue<T>>*> splits)
        : options_(options),
          splits_(std::move(splits)),
          cursors_(splits_.size(), 0),
          started_(absl::Now()),
          start_cursors_(splits_.size(), 0) {}

    void Seek(size_t split, size_t position) {
      cursors_[split] = std::min(position, splits_[split]->size());
      start_cursors_[split] = cursors_[split];
    }

    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t) override {
      std::vector<std::string> states;
      for (size_t cursor : cursors_) states.push_back(std::to_string(cursor));
      return states;
    }

    absl::StatusOr<PollResult> Poll(SourceOutput<T>& out) override {
      bool any_left = false;
      // With a rate limit: how many records each split may have emitted by now.
      const double allowed =
          options_.records_per_second > 0
              ? absl::ToDoubleSeconds(absl::Now() - started_) * options_.records_per_second
              : 0;
      for (size_t split = 0; split < splits_.size(); ++split) {
        const std::vector<TimestampedValue<T>>& records = *splits_[split];
        size_t& cursor = cursors_[split];
        size_t end = std::min(records.size(), cursor + options_.records_per_poll);
        if (options_.records_per_second > 0) {
          end = std::min(end, start_cursors_[split] + static_cast<size_t>(allowed));
        }
        for (; cursor < end; ++cursor) {
          out.Collect(static_cast<int>(split), records[cursor].value, records[cursor].timestamp);
        }
        if (cursor < records.size()) {
          any_left = true;
        } else if (options_.unbounded) {
          out.MarkIdle(static_cast<int>(split));
        } else {
          out.FinishSplit(static_cast<int>(split));
        }
      }
      if (any_left) return PollResult::kMoreAvailable;
      return options_.unbounded ? PollResult::kNothingAvailable : PollResult::kEndOfInput;
    }

   private:
    VectorSourceOptions options_;
    std::vector<const std::vector<TimestampedValue<T>>*> splits_;
    std::vector<size_t> cursors_;
    absl::Time started_;
    std::vector<size_t> start_cursors_;
  };

  VectorSourceOptions options_;
  std::vector<std::vector<TimestampedValue<T>>> splits_;
};

// A sink that keeps every record it receives (thread-safe).
template <class T>
class CollectingSink final : public Sink<T> {
 public:
  static std::shared_ptr<CollectingSink> Create() {
    return std::shared_ptr<CollectingSink>(new CollectingSink());
  }

  absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<T>>(new Writer(this));
  }

  // Every value received so far (workers' outputs interleaved in arrival order).
  std::vector<T> Values() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<T> values;
    values.reserve(records_.size());
    for (const auto& record : records_) values.push_back(record.value);
    return values;
  }
  std::vector<TimestampedValue<T>> Records() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return records_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return records_.size();
  }
  // How many writers flushed at end of input.
  int flushes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return flushes_;
  }

 private:
  CollectingSink() = default;

  class Writer final : public SinkWriter<T> {
   public:
    explicit Writer(CollectingSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<T> values, std::span<const Timestamp> timestamps) override {
      std::lock_guard<std::mutex> lock(sink_->mutex_);
      for (size_t idx = 0; idx < values.size(); ++idx) {
        sink_->records_.push_back({std::move(values[idx]), timestamps[idx]});
      }
      return absl::OkStatus();
    }
    absl::Status Flush() override {
      std::lock_guard<std::mutex> lock(sink_->mutex_);
      ++sink_->flushes_;
      return absl::OkStatus();
    }

   private:
    CollectingSink* sink_;
  };

  mutable std::mutex mutex_;
  std::vector<TimestampedValue<T>> records_;
  int flushes_ = 0;
};

// A two-phase sink that proves the checkpoint protocol, also across
// processes: PreCommit(n) writes the worker's records since the last
// checkpoint to <dir>/pending/<n>-<worker> (fsync'ed) and returns that name;
// Commit(n) moves it to <dir>/committed/ (idempotent, so a restarted job may
// re-commit). Records written after the last checkpoint are never committed
// unless a later checkpoint covers them. Records are encoded with
// weir::Codec<T>.
//
// By default the pending file is written on the writer's own thread
// (PreCommitAsync): the worker goes on with the records after the barrier
// while it is written, and the checkpoint completes once it is.
struct TransactionalFileSinkOptions {
  // false: PreCommit writes the file on the worker's thread.
  bool async_pre_commit = true;
  // Each pre-commit takes at least this long (a slow flush, for tests).
  absl::Duration pre_commit_delay = absl::ZeroDuration();
};

template <class T>
class TransactionalFileSink final : public Sink<T> {
 public:
  explicit TransactionalFileSink(std::string dir, TransactionalFileSinkOptions options = {})
      : dir_(std::move(dir)), options_(options) {
    std::filesystem::create_directories(dir_ + "/pending");
    std::filesystem::create_directories(dir_ + "/committed");
  }

  absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(const SinkContext& context) override {
    return std::unique_ptr<SinkWriter<T>>(new Writer(dir_, context.worker_index, options_));
  }

  // Every committed record, in (checkpoint, worker) order; none before a
  // sink was made on `dir`.
  static absl::StatusOr<std::vector<T>> ReadCommitted(const std::string& dir) {
    std::vector<std::string> files;
    std::error_code error;
    for (std::filesystem::directory_iterator entry(dir + "/committed", error), end;
         !error && entry != end; entry.increment(error)) {
      files.push_back(entry->path().string());
    }
    if (error && error != std::errc::no_such_file_or_directory) {
      return absl::InternalError("reading " + dir + "/committed: " + error.message());
    }
    std::sort(files.begin(), files.end());
    std::vector<T> out;
    for (const std::string& file : files) {
      std::ifstream in(file, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::string_view view(bytes);
      while (!view.empty()) {
        T value{};
        if (!Codec<T>::Decode(view, value))
          return absl::DataLossError("corrupt committed file " + file);
        out.push_back(std::move(value));
      }
    }
    return out;
  }

 private:
  class Writer final : public SinkWriter<T> {
   public:
    Writer(std::string dir, int worker, TransactionalFileSinkOptions options)
        : dir_(std::move(dir)), worker_(worker), options_(options) {}
    ~Writer() override { (void)Close(); }
    absl::Status Write(std::span<T> values, std::span<const Timestamp>) override {
      for (const T& value : values) Codec<T>::Encode(value, buffer_);
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
      std::string bytes = std::move(buffer_);
      buffer_.clear();
      return WritePending(checkpoint_id, bytes);
    }
    bool PreCommitAsync(int64_t checkpoint_id,
                        typename SinkWriter<T>::PreCommitDone& done) override {
      if (!options_.async_pre_commit) return false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (closed_) return false;
        queue_.push_back({checkpoint_id, std::move(buffer_), std::move(done)});
        buffer_.clear();
        if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
      }
      cv_.notify_all();
      return true;
    }
    absl::Status Commit(int64_t, const std::string& name) override {
      if (name.empty()) return absl::OkStatus();
      const std::string committed = dir_ + "/committed/" + name;
      std::error_code ec;
      if (std::filesystem::exists(committed, ec))
        return absl::OkStatus();  // committed before a crash
      std::filesystem::rename(dir_ + "/pending/" + name, committed, ec);
      if (ec) return absl::InternalError("cannot commit " + name + ": " + ec.message());
      return absl::OkStatus();
    }
    absl::Status Close() override {
      {
        std::lock_guard<std::mutex> lock(mu_);
        closed_ = true;
        queue_.clear();  // their checkpoints never complete
      }
      cv_.notify_all();
      if (thread_.joinable()) thread_.join();
      return absl::OkStatus();
    }

   private:
    struct Job {
      int64_t checkpoint_id;
      std::string bytes;
      typename SinkWriter<T>::PreCommitDone done;
    };
    // Writes and fsyncs <dir>/pending/<checkpoint>-<worker>; its name.
    absl::StatusOr<std::string> WritePending(int64_t checkpoint_id, const std::string& bytes) {
      if (options_.pre_commit_delay > absl::ZeroDuration()) {
        absl::SleepFor(options_.pre_commit_delay);
      }
      const std::string name = absl::StrFormat("%020d-%04d", checkpoint_id, worker_);
      const std::string path = dir_ + "/pending/" + name;
      FILE* file = std::fopen(path.c_str(), "wb");
      if (file == nullptr) return absl::InternalError("cannot write " + path);
      const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size() &&
                      std::fflush(file) == 0 && fsync(fileno(file)) == 0;
      std::fclose(file);
      if (!ok) return absl::InternalError("cannot write " + path);
      return name;
    }
    // The writer's thread: the queued pre-commits, in order.
    void Run() {
      std::unique_lock<std::mutex> lock(mu_);
      while (true) {
        cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
        if (closed_) return;
        Job job = std::move(queue_.front());
        queue_.erase(queue_.begin());
        lock.unlock();
        absl::StatusOr<std::string> name = WritePending(job.checkpoint_id, job.bytes);
        lock.lock();
        if (closed_) return;  // Close() returned or is waiting: no more calls
        lock.unlock();
        job.done(std::move(name));
        lock.lock();
      }
    }

    std::string dir_;
    int worker_;
    TransactionalFileSinkOptions options_;
    std::string buffer_;  // encoded records since the last pre-commit
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Job> queue_;
    bool closed_ = false;
    std::thread thread_;
  };

  std::string dir_;
  TransactionalFileSinkOptions options_;
};

// A dead-letter queue that keeps every letter in memory (thread-safe).
class CollectingDeadLetterQueue final : public DeadLetterQueue {
 public:
  static std::shared_ptr<CollectingDeadLetterQueue> Create() {
    return std::shared_ptr<CollectingDeadLetterQueue>(new CollectingDeadLetterQueue());
  }

  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> CreateWriter(const std::string&, int) override {
    return std::unique_ptr<DeadLetterWriter>(new Writer(this));
  }
  std::string Describe() const override { return "in-memory dead letters"; }

  std::vector<DeadLetter> Letters() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return letters_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return letters_.size();
  }

 private:
  CollectingDeadLetterQueue() = default;

  class Writer final : public DeadLetterWriter {
   public:
    explicit Writer(CollectingDeadLetterQueue* queue) : queue_(queue) {}
    absl::Status Write(DeadLetter letter) override {
      std::lock_guard<std::mutex> lock(queue_->mutex_);
      queue_->letters_.push_back(std::move(letter));
      return absl::OkStatus();
    }
    absl::Status Flush() override { return absl::OkStatus(); }

   private:
    CollectingDeadLetterQueue* queue_;
  };

  mutable std::mutex mutex_;
  std::vector<DeadLetter> letters_;
};

// The outcome of RunToCompletion.
// Counters of one operator on one worker, from a MetricsSnapshot.
struct OperatorMetricsSnapshot {
  std::string name;  // the operator's label (its display name)
  int worker = 0;
  int64_t records_in = 0;
  int64_t records_out = 0;
  int64_t timers_fired = 0;
  // Window operators: elements beyond allowed lateness, and state writes.
  int64_t late_records = 0;
  int64_t state_writes = 0;
};

// The weir_operator_* counters of `snapshot` (JobHandle::Metrics()), one
// entry per operator and worker.
inline std::vector<OperatorMetricsSnapshot> OperatorMetricsOf(const MetricsSnapshot& snapshot) {
  std::map<std::pair<std::string, int>, OperatorMetricsSnapshot> by_instance;
  const std::pair<const char*, int64_t OperatorMetricsSnapshot::*> counters[] = {
      {"weir_operator_records_in_total", &OperatorMetricsSnapshot::records_in},
      {"weir_operator_records_out_total", &OperatorMetricsSnapshot::records_out},
      {"weir_operator_timers_fired_total", &OperatorMetricsSnapshot::timers_fired},
      {"weir_operator_late_records_total", &OperatorMetricsSnapshot::late_records},
      {"weir_operator_state_writes_total", &OperatorMetricsSnapshot::state_writes}};
  for (const auto& [family_name, field] : counters) {
    const MetricFamily* family = snapshot.Find(family_name);
    if (family == nullptr) continue;
    for (const MetricSeries& series : family->series) {
      std::string op;
      int worker = 0;
      for (const auto& [label, value] : series.labels) {
        if (label == "operator") op = value;
        if (label == "worker") worker = std::atoi(value.c_str());
      }
      OperatorMetricsSnapshot& entry = by_instance[{op, worker}];
      entry.name = op;
      entry.worker = worker;
      entry.*field = static_cast<int64_t>(series.value);
    }
  }
  std::vector<OperatorMetricsSnapshot> out;
  for (auto& [instance, entry] : by_instance) out.push_back(std::move(entry));
  return out;
}

struct JobResult {
  absl::Status status;
  std::vector<OperatorMetricsSnapshot> metrics;

  // Sums of a counter over the workers of the operator named `name`.
  int64_t RecordsIn(const std::string& name) const {
    return Sum(name, &OperatorMetricsSnapshot::records_in);
  }
  int64_t RecordsOut(const std::string& name) const {
    return Sum(name, &OperatorMetricsSnapshot::records_out);
  }
  int64_t TimersFired(const std::string& name) const {
    return Sum(name, &OperatorMetricsSnapshot::timers_fired);
  }
  int64_t LateRecords(const std::string& name) const {
    return Sum(name, &OperatorMetricsSnapshot::late_records);
  }
  int64_t StateWrites(const std::string& name) const {
    return Sum(name, &OperatorMetricsSnapshot::state_writes);
  }

 private:
  int64_t Sum(const std::string& name, int64_t OperatorMetricsSnapshot::*field) const {
    int64_t total = 0;
    for (const auto& m : metrics) {
      if (m.name == name) total += m.*field;
    }
    return total;
  }
};

// Runs `pipeline` until its input ends. If it has not finished after
// `timeout`, cancels it and reports kDeadlineExceeded (so a hanging test
// fails instead of blocking the suite).
inline JobResult RunToCompletion(Pipeline& pipeline, absl::Duration timeout = absl::Seconds(60)) {
  JobResult result;
  absl::StatusOr<JobHandle> job = pipeline.Start();
  if (!job.ok()) {
    result.status = job.status();
    return result;
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (!job->done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  if (!job->done()) {
    job->Cancel();
    (void)job->Wait();
    result.metrics = OperatorMetricsOf(job->Metrics());
    result.status = absl::DeadlineExceededError(
        absl::StrCat("the pipeline did not finish within ", absl::FormatDuration(timeout)));
    return result;
  }
  result.status = job->Wait();
  result.metrics = OperatorMetricsOf(job->Metrics());
  return result;
}

}  // namespace weir::testing

#endif  // WEIR_TESTING_H_
