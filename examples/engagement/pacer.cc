#include "examples/engagement/pacer.h"

#include <algorithm>
#include <cmath>

namespace engagement {

Pacer::Pacer(PacerOptions options) : options_(options), next_burst_(options.burst_interval) {}

int64_t Pacer::Available(absl::Duration elapsed) {
  if (options_.burst_count > 0 && options_.burst_interval > absl::ZeroDuration()) {
    while (elapsed >= next_burst_) {
      burst_left_ += options_.burst_count;
      ++bursts_;
      next_burst_ += options_.burst_interval;
    }
  }
  if (unlimited()) return kUnlimited;
  // The schedule is absolute (records due since the start), so rounding and
  // the caller's polling interval never accumulate into a drift.
  const auto due_total = static_cast<int64_t>(
      std::floor(options_.records_per_second * absl::ToDoubleSeconds(elapsed)));
  int64_t due = due_total - paced_consumed_;
  const int64_t max_due = std::max<int64_t>(
      1,
      static_cast<int64_t>(options_.records_per_second * absl::ToDoubleSeconds(options_.max_lag)));
  if (due > max_due) {
    skipped_ += due - max_due;
    paced_consumed_ += due - max_due;
    due = max_due;
  }
  return burst_left_ + std::max<int64_t>(0, due);
}

void Pacer::Consume(int64_t records) {
  const int64_t from_burst = std::min(records, burst_left_);
  burst_left_ -= from_burst;
  paced_consumed_ += records - from_burst;
}

}  // namespace engagement
