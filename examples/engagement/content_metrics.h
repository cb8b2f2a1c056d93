// The engagement pipeline's per-content aggregates, kept in keyed state
// (key: content id) and emitted as absolute values, so that a replay after
// a restore converges instead of counting twice:
//
// - ContentUpdate, at most every `refresh` of processing time per content
//   that changed: running totals (plays, pauses, finishes, clicks,
//   engagement seconds and percentages, last event time) and the engagement
//   seconds of the sliding 10-minute window (the last ten 1-minute buckets
//   of event time up to the watermark; buckets leave as the watermark
//   passes them, which also updates the content's score). These feed the
//   Redis leaderboards and the content:<id>:metrics hashes.
// - HourlyRollup (side output `rollups`), at most every `rollup_refresh`
//   per content and hour that changed: the hour's totals, versioned by its
//   event count, for ClickHouse's ReplacingMergeTree.
//
// At the end of input everything pending is emitted once more, without
// ageing the window (the last leaderboard stays as it was). A replay emits
// every content's current update again.

#ifndef WEIR_EXAMPLES_ENGAGEMENT_CONTENT_METRICS_H_
#define WEIR_EXAMPLES_ENGAGEMENT_CONTENT_METRICS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "examples/engagement/model.h"
#include "weir/functions.h"

namespace engagement {

// Counts and sums of a set of enriched events.
struct Totals {
  int64_t events = 0;
  int64_t plays = 0;
  int64_t pauses = 0;
  int64_t finishes = 0;
  int64_t clicks = 0;
  // Sums are of integers, so they do not depend on the order events arrive
  // in: two runs of one input, and a run with restores, agree to the bit.
  int64_t duration_ms = 0;            // sum over events with a duration
  int64_t timed_events = 0;           // events with a duration
  int64_t engagement_pct_micros = 0;  // sum of each engagement_pct in 1e-6 %, rounded
  int64_t pct_events = 0;             // events with an engagement_pct

  double engagement_seconds() const { return static_cast<double>(duration_ms) / 1000.0; }
  double engagement_pct_sum() const { return static_cast<double>(engagement_pct_micros) / 1e6; }
  void Add(const Enriched& e);
  friend bool operator==(const Totals&, const Totals&) = default;
};

struct ContentUpdate {
  std::string content_id;
  std::string slug;
  std::string title;
  std::string content_type;
  // The content type the content was listed under before, when it changed
  // (its entry in that type's leaderboard goes); empty otherwise.
  std::string previous_content_type;
  Totals totals;
  int64_t last_event_ts_ms = 0;
  // Engagement seconds in the sliding 10-minute window (0: not listed),
  // from the integer sum of its events' duration_ms.
  double window_seconds = 0;
};

struct HourlyRollup {
  std::string content_id;
  int64_t hour_ms = 0;  // start of the hour, epoch ms
  std::string slug;
  std::string content_type;
  Totals totals;
};

struct ContentMetricsOptions {
  // Every content that changed costs one ContentUpdate per `refresh`, and
  // an event waits for the next one (on average half of it) before it
  // leaves. Default: 50 ms
  absl::Duration refresh = absl::Milliseconds(50);
  // While the input is behind (the event that changes a content is more
  // than `catch_up_lag` older than the processing time: a backfill, a
  // restart reading its backlog), that content's next update comes after
  // `catch_up_refresh` instead: its effect is late anyway, and the updates
  // (and Redis' work) stay as few as they were before `refresh` was short.
  // Default: 10 s and 250 ms
  absl::Duration catch_up_lag = absl::Seconds(10);
  absl::Duration catch_up_refresh = absl::Milliseconds(250);
  // Default: 5 s
  absl::Duration rollup_refresh = absl::Seconds(5);
  // Hours are kept (and late events counted into them) until the watermark
  // is this far past their end. Default: 1 h
  absl::Duration rollup_lateness = absl::Hours(1);
  weir::OutputTag<HourlyRollup> rollups{"hourly-rollups"};
};

inline constexpr int64_t kWindowMs = 10 * 60'000;
inline constexpr int64_t kBucketMs = 60'000;
inline constexpr int64_t kHourMs = 3'600'000;

class ContentMetrics final
    : public weir::KeyedProcessFunction<std::string, Enriched, ContentUpdate> {
 public:
  explicit ContentMetrics(ContentMetricsOptions options) : options_(std::move(options)) {}

  absl::Status ProcessElement(const Enriched& event, Context& ctx,
                              weir::Collector<ContentUpdate>& out) override;
  absl::Status OnTimer(weir::Timestamp timestamp, OnTimerContext& ctx,
                       weir::Collector<ContentUpdate>& out) override;
  // A replay (a Redis sink found Redis emptied) emits every content's
  // current update again: its hash and leaderboard entries come back.
  std::string ReplayState() const override;
  absl::Status OnReplay(Context& ctx, weir::Collector<ContentUpdate>& out) override;

 private:
  void Emit(Context& ctx, weir::Collector<ContentUpdate>& out);
  void EmitRollups(Context& ctx, bool all_done);

  ContentMetricsOptions options_;
};

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_CONTENT_METRICS_H_
