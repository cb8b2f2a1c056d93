// Event time in weir: timestamps, watermarks and the strategy that derives
// watermarks from the timestamps a source sees.
//
// Every record carries an int64 timestamp in milliseconds since the Unix
// epoch. A watermark `w` promises that no more records with timestamp <= w are
// expected; event-time timers and windows fire when the watermark passes them.
//
// Example:
//
//   auto strategy = weir::WatermarkStrategy<Event>::BoundedOutOfOrderness(absl::Seconds(2))
//                       .WithIdleness(absl::Seconds(30))
//                       .WithTimestampAssigner([](const Event& e, weir::Timestamp) {
//                         return e.event_ts_ms;
//                       });
//   auto events = pipeline.Source(source, strategy);

#ifndef WEIR_TIME_H_
#define WEIR_TIME_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <utility>

#include "absl/time/time.h"

namespace weir {

// Milliseconds since the Unix epoch.
using Timestamp = int64_t;

// The smallest timestamp: "no watermark yet".
inline constexpr Timestamp kMinTimestamp = std::numeric_limits<Timestamp>::min();
// The largest timestamp: the final watermark emitted at end of input, which
// fires every pending event-time timer.
inline constexpr Timestamp kMaxTimestamp = std::numeric_limits<Timestamp>::max();

// What a timestamp assigner returns for a record that has no event time of
// its own (a Kafka tombstone, a heartbeat): the record does not move its
// split's watermark, and it carries the highest timestamp its split has
// delivered so far (kMinTimestamp before the first). Never fall back to
// another clock (e.g. the broker's timestamp) instead: mixing the data's
// clock with the wall clock moves the watermark to the wall clock, and every
// record of older data becomes late.
inline constexpr Timestamp kNoTimestamp = kMinTimestamp;

// Converts an absl::Time to a weir Timestamp (milliseconds, rounded down).
inline Timestamp ToTimestamp(absl::Time t) { return absl::ToUnixMillis(t); }

// How a source assigns event timestamps and derives watermarks from them.
// Watermarks are generated per split (e.g. per Kafka partition); a source's
// watermark is the minimum over its non-idle splits.
//
// Thread-safety: immutable after construction; copied into every source
// subtask.
template <class T>
class WatermarkStrategy {
 public:
  // Maps a record and the timestamp its source attached (e.g. the Kafka
  // broker timestamp, or the timestamp given to an in-memory source) to the
  // record's event timestamp.
  using TimestampAssigner = std::function<Timestamp(const T& value, Timestamp source_timestamp)>;

  // Watermark = highest timestamp seen - max_delay - 1ms: records up to
  // `max_delay` out of order are not late.
  static WatermarkStrategy BoundedOutOfOrderness(absl::Duration max_delay) {
    WatermarkStrategy s;
    s.emits_watermarks_ = true;
    s.max_delay_ms_ = absl::ToInt64Milliseconds(max_delay);
    return s;
  }

  // Timestamps never decrease: watermark = highest timestamp seen - 1ms.
  static WatermarkStrategy ForMonotonousTimestamps() {
    return BoundedOutOfOrderness(absl::ZeroDuration());
  }

  // No watermarks while running; only the final watermark at end of input.
  static WatermarkStrategy NoWatermarks() { return WatermarkStrategy(); }

  // A split that delivers no record for `timeout` of processing time is
  // marked idle and stops holding back the watermark, until it delivers again.
  // Default: no idleness timeout (sources may still report idle splits
  // themselves, e.g. a Kafka partition that has caught up).
  WatermarkStrategy WithIdleness(absl::Duration timeout) const {
    WatermarkStrategy s = *this;
    s.idle_timeout_ms_ = absl::ToInt64Milliseconds(timeout);
    return s;
  }

  // Replaces the source's timestamps with `assigner(value, source_timestamp)`.
  // The assigner returns kNoTimestamp for a record without event time.
  WatermarkStrategy WithTimestampAssigner(TimestampAssigner assigner) const {
    WatermarkStrategy s = *this;
    s.assigner_ = std::move(assigner);
    return s;
  }

  bool emits_watermarks() const { return emits_watermarks_; }
  int64_t max_delay_ms() const { return max_delay_ms_; }
  std::optional<int64_t> idle_timeout_ms() const { return idle_timeout_ms_; }
  const TimestampAssigner& assigner() const { return assigner_; }

 private:
  WatermarkStrategy() = default;

  bool emits_watermarks_ = false;
  int64_t max_delay_ms_ = 0;
  std::optional<int64_t> idle_timeout_ms_;
  TimestampAssigner assigner_;
};

}  // namespace weir

#endif  // WEIR_TIME_H_
