// A single-split source a test drives record by record, so it knows the
// watermark each record meets downstream (window lateness) and the order in
// which records of two sources reach an operator (the enrichment join).
//
// Every record is emitted in vector order, `records_per_poll` per poll; with
// 1, the source emits a watermark after each record. Only records below
// Release(n) are emitted, so a test can hold input back and release it step
// by step. The reader that owns the split emits its first record only after
// every other worker's reader (they own no split) has ended and a short
// grace period has passed: their end-of-input (+inf watermark) has then
// reached the keyed operators, and the watermark downstream is exactly the
// split's. Checkpointable: the position is the number of records emitted.

#ifndef WEIR_TESTS_UNIT_WINDOW_SCRIPTED_SOURCE_H_
#define WEIR_TESTS_UNIT_WINDOW_SCRIPTED_SOURCE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "weir/source.h"
#include "weir/testing.h"

namespace weir::testing {

struct ScriptedSourceOptions {
  // Records emitted per poll (the source emits a watermark after each poll).
  // Default: 1
  size_t records_per_poll = 1;
  // True: the source ends once every record was emitted. False: it waits for
  // more releases until JobHandle::Stop().
  // Default: true
  bool bounded = true;
  // How long the split's reader waits after the other readers ended.
  // Default: 50 ms
  absl::Duration grace = absl::Milliseconds(50);
};

template <class T>
class ScriptedSource final : public Source<T> {
 public:
  // `released`: how many records may be emitted at first (default: all).
  static std::shared_ptr<ScriptedSource> Create(
      std::vector<TimestampedValue<T>> records, ScriptedSourceOptions options = {},
      size_t released = std::numeric_limits<size_t>::max()) {
    return std::shared_ptr<ScriptedSource>(
        new ScriptedSource(std::move(records), options, released));
  }

  // Lets the records [0, n) be emitted (a limit only grows).
  void Release(size_t n) {
    n = std::min(n, records_.size());
    size_t current = released_.load();
    while (n > current && !released_.compare_exchange_weak(current, n)) {
    }
  }
  size_t size() const { return records_.size(); }

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return std::vector<SourceSplit>{{"scripted-0", std::nullopt}};
  }

  absl::StatusOr<std::unique_ptr<SourceReader<T>>> CreateReader(
      const SourceReaderContext& context) override {
    if (context.splits.empty()) return std::unique_ptr<SourceReader<T>>(new EmptyReader(this));
    size_t position = 0;
    if (context.splits[0].state && !absl::SimpleAtoi(*context.splits[0].state, &position)) {
      return absl::DataLossError("ScriptedSource: bad position " + *context.splits[0].state);
    }
    return std::unique_ptr<SourceReader<T>>(new Reader(this, context.parallelism, position));
  }

 private:
  ScriptedSource(std::vector<TimestampedValue<T>> records, ScriptedSourceOptions options,
                 size_t released)
      : records_(std::move(records)),
        options_(options),
        released_(std::min(released, records_.size())) {}

  // A worker without the split: ends at once.
  class EmptyReader final : public SourceReader<T> {
   public:
    explicit EmptyReader(ScriptedSource* source) : source_(source) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<T>&) override {
      if (!counted_) {
        counted_ = true;
        source_->ended_readers_.fetch_add(1);
      }
      return PollResult::kEndOfInput;
    }
    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t) override {
      return std::vector<std::string>();
    }

   private:
    ScriptedSource* source_;
    bool counted_ = false;
  };

  class Reader final : public SourceReader<T> {
   public:
    Reader(ScriptedSource* source, int parallelism, size_t position)
        : source_(source), parallelism_(parallelism), cursor_(position) {}

    absl::StatusOr<PollResult> Poll(SourceOutput<T>& out) override {
      if (!started_) {
        if (source_->ended_readers_.load() < parallelism_ - 1) return PollResult::kNothingAvailable;
        if (start_at_ == absl::InfinitePast()) start_at_ = absl::Now() + source_->options_.grace;
        if (absl::Now() < start_at_) return PollResult::kNothingAvailable;
        started_ = true;
      }
      const std::vector<TimestampedValue<T>>& records = source_->records_;
      const size_t limit = std::min(source_->released_.load(), records.size());
      const size_t end = std::min(limit, cursor_ + source_->options_.records_per_poll);
      for (; cursor_ < end; ++cursor_) {
        out.Collect(0, records[cursor_].value, records[cursor_].timestamp);
      }
      if (cursor_ < limit) return PollResult::kMoreAvailable;
      if (cursor_ == records.size() && source_->options_.bounded) {
        out.FinishSplit(0);
        return PollResult::kEndOfInput;
      }
      return PollResult::kNothingAvailable;
    }

    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t) override {
      return std::vector<std::string>{std::to_string(cursor_)};
    }

   private:
    ScriptedSource* source_;
    int parallelism_;
    size_t cursor_;
    bool started_ = false;
    absl::Time start_at_ = absl::InfinitePast();
  };

  std::vector<TimestampedValue<T>> records_;
  ScriptedSourceOptions options_;
  std::atomic<size_t> released_;
  std::atomic<int> ended_readers_{0};
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_WINDOW_SCRIPTED_SOURCE_H_
