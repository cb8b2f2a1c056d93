// What the metrics tests run: an endless source, a keyed count, and a
// wait for a condition.

#ifndef WEIR_TESTS_UNIT_METRICS_TEST_PIPELINE_H_
#define WEIR_TESTS_UNIT_METRICS_TEST_PIPELINE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/wait_for.h"  // WaitFor, which the metrics tests use
#include "weir/functions.h"
#include "weir/source.h"
#include "weir/state.h"

namespace weir::testing {

// Counts records per key in keyed state and passes every record on.
class CountPerKey final : public KeyedProcessFunction<int64_t, int64_t, int64_t> {
 public:
  absl::Status ProcessElement(const int64_t& value, Context& ctx,
                              Collector<int64_t>& out) override {
    ValueState<int64_t> count = ctx.GetState(ValueStateDescriptor<int64_t>{"count"});
    count.Update((count.Get() != nullptr ? *count.Get() : 0) + 1);
    out.Collect(value);
    return absl::OkStatus();
  }
};

// A source that never ends by itself (JobHandle::Stop() ends it): one split
// per worker emitting consecutive numbers stamped with processing time, as
// fast as the pipeline takes them or at most `records_per_second` per split.
class EndlessSource final : public Source<int64_t> {
 public:
  EndlessSource(int splits, double records_per_second)
      : splits_(splits), records_per_second_(records_per_second) {}

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    std::vector<SourceSplit> splits;
    for (int split = 0; split < splits_; ++split)
      splits.push_back({absl::StrCat("endless-", split)});
    return splits;
  }

  absl::StatusOr<std::unique_ptr<SourceReader<int64_t>>> CreateReader(
      const SourceReaderContext& context) override {
    return std::unique_ptr<SourceReader<int64_t>>(
        new Reader(static_cast<int>(context.splits.size()), records_per_second_));
  }

 private:
  class Reader final : public SourceReader<int64_t> {
   public:
    Reader(int splits, double records_per_second)
        : next_(splits, 0), records_per_second_(records_per_second), started_(absl::Now()) {}

    absl::StatusOr<PollResult> Poll(SourceOutput<int64_t>& out) override {
      const Timestamp now = absl::ToUnixMillis(absl::Now());
      const double allowed =
          records_per_second_ > 0
              ? absl::ToDoubleSeconds(absl::Now() - started_) * records_per_second_
              : 0;
      bool any = false;
      for (size_t split = 0; split < next_.size(); ++split) {
        int64_t end = next_[split] + 1024;
        if (records_per_second_ > 0) end = std::min(end, static_cast<int64_t>(allowed));
        for (; next_[split] < end; ++next_[split]) {
          out.Collect(static_cast<int>(split), next_[split], now);
          any = true;
        }
      }
      return any ? PollResult::kMoreAvailable : PollResult::kNothingAvailable;
    }

    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t) override {
      std::vector<std::string> states;
      for (int64_t next : next_) states.push_back(absl::StrCat(next));
      return states;
    }

   private:
    std::vector<int64_t> next_;
    double records_per_second_;
    absl::Time started_;
  };

  int splits_;
  double records_per_second_;
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_METRICS_TEST_PIPELINE_H_
