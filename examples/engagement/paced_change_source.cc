#include "examples/engagement/paced_change_source.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace engagement {
namespace {

using weir::debezium::Op;

class Reader final : public weir::SourceReader<GeneratedRecord> {
 public:
  Reader(const PacedSourceOptions& options, std::shared_ptr<GeneratorProgress> progress)
      : options_(options),
        progress_(std::move(progress)),
        generator_(options.generator),
        pacer_(options.pacer) {}

  absl::StatusOr<weir::PollResult> Poll(weir::SourceOutput<GeneratedRecord>& out) override {
    const absl::Duration now = Now();
    if (!started_) {
      // The schedule starts with the first poll, not when the job was built
      // (connecting to the brokers and PostgreSQL takes a while).
      start_ = now;
      started_ = true;
    }
    const absl::Duration elapsed = now - start_;
    if ((options_.total > 0 && generator_.records() >= options_.total) ||
        elapsed >= options_.duration) {
      return weir::PollResult::kEndOfInput;
    }
    int64_t count = std::min(pacer_.Available(elapsed), options_.max_per_poll);
    if (options_.total > 0) count = std::min(count, options_.total - generator_.records());
    progress_->bursts.store(pacer_.bursts(), std::memory_order_relaxed);
    progress_->behind.store(pacer_.skipped(), std::memory_order_relaxed);
    if (count <= 0) return weir::PollResult::kNothingAvailable;
    for (int64_t idx = 0; idx < count; ++idx) {
      GeneratedRecord record = generator_.Next();
      Count(record);
      const weir::Timestamp timestamp = record.ts_ms;
      out.Collect(0, std::move(record), timestamp);
    }
    pacer_.Consume(count);
    Publish();
    return weir::PollResult::kMoreAvailable;
  }

 private:
  absl::Duration Now() const {
    if (options_.clock) return options_.clock();
    return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  }

  void Count(const GeneratedRecord& record) {
    if (!record.is_content()) {
      ++events_;
      return;
    }
    switch (record.op) {
      case Op::kRead:
        ++snapshot_rows_;
        break;
      case Op::kCreate:
        ++creates_;
        break;
      case Op::kUpdate:
        ++updates_;
        break;
      case Op::kDelete:
        ++deletes_;
        break;
      case Op::kTombstone:
        ++tombstones_;
        break;
      case Op::kTruncate:
      case Op::kMessage:
      case Op::kHeartbeat:
      case Op::kTransaction:
        break;  // the generator writes none
    }
  }

  // Per poll rather than per record: the counters are for status lines.
  void Publish() {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    progress_->records.store(generator_.records(), kRelaxed);
    progress_->snapshot_rows.store(snapshot_rows_, kRelaxed);
    progress_->creates.store(creates_, kRelaxed);
    progress_->updates.store(updates_, kRelaxed);
    progress_->deletes.store(deletes_, kRelaxed);
    progress_->tombstones.store(tombstones_, kRelaxed);
    progress_->events.store(events_, kRelaxed);
    progress_->live_content.store(static_cast<int64_t>(generator_.live_content().size()), kRelaxed);
  }

  const PacedSourceOptions& options_;  // owned by the source, which outlives its readers
  std::shared_ptr<GeneratorProgress> progress_;
  ChangeGenerator generator_;
  Pacer pacer_;
  bool started_ = false;
  absl::Duration start_;
  int64_t snapshot_rows_ = 0;
  int64_t creates_ = 0;
  int64_t updates_ = 0;
  int64_t deletes_ = 0;
  int64_t tombstones_ = 0;
  int64_t events_ = 0;
};

// The reader of a worker without the split.
class EmptyReader final : public weir::SourceReader<GeneratedRecord> {
 public:
  absl::StatusOr<weir::PollResult> Poll(weir::SourceOutput<GeneratedRecord>&) override {
    return weir::PollResult::kEndOfInput;
  }
};

}  // namespace

absl::StatusOr<std::vector<weir::SourceSplit>> PacedChangeSource::DiscoverSplits() {
  return std::vector<weir::SourceSplit>{{.id = "change-generator"}};
}

absl::StatusOr<std::unique_ptr<weir::SourceReader<GeneratedRecord>>>
PacedChangeSource::CreateReader(const weir::SourceReaderContext& context) {
  if (context.splits.empty()) return std::make_unique<EmptyReader>();
  return std::make_unique<Reader>(options_, progress_);
}

}  // namespace engagement
