// The engagement data generator's core: a deterministic stream of Debezium
// change events for public.content and public.engagement_events, as an
// application's database would produce them. Content is snapshotted first
// (op r), then created, updated and occasionally deleted (op d followed by a
// tombstone) while engagement events (op c) arrive with skewed popularity
// (Zipf over the live content). Some new content gets its first events
// before its own row (to exercise the join's buffering), some events have no
// duration, some content no length or a length of 0 (null engagement_pct).
// Durations are a share of the content's length, by event type (a finish
// near the end, a click early, plays and pauses mostly early): average
// engagement is about 45%, and above 100% only for the rare replay.
// The engagement-generator program paces this stream and produces it to
// Kafka and optionally PostgreSQL.
//
// Example:
//
//   ChangeGenerator generator({.seed = 7});
//   for (int i = 0; i < 1000; ++i) {
//     GeneratedRecord record = generator.Next();
//     Produce(record.topic, record.key, record.value);  // value nullopt: tombstone
//   }

#ifndef WEIR_EXAMPLES_ENGAGEMENT_GENERATOR_H_
#define WEIR_EXAMPLES_ENGAGEMENT_GENERATOR_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "examples/engagement/envelope.h"
#include "examples/engagement/model.h"
#include "weir/formats/debezium.h"

namespace engagement {

struct GeneratorOptions {
  // Default: 1
  uint64_t seed = 1;
  // Content rows in the initial snapshot.
  // Default: 1000
  int initial_contents = 1000;
  // Popularity skew: content of popularity rank r gets events with weight
  // 1 / r^zipf_exponent (0 = uniform).
  // Default: 1.1
  double zipf_exponent = 1.1;
  // Event time of the first record, epoch ms. Default: 2026-11-25T00:00:00Z
  int64_t start_ms = 1'795'564'800'000;
  // Event-time spacing: records per second of event time.
  // Default: 3333 (GENERATION_RATE's default of 200,000 per minute)
  double records_per_second = 3333;
  // Share of records (after the snapshot) that change content rather than
  // add an engagement event; of those, shares that create and delete (the
  // rest update).
  // Default: 0.002, 0.4, 0.1
  double content_change_share = 0.002;
  double create_share = 0.4;
  double delete_share = 0.1;
  // Share of created content whose first few events precede its row.
  // Default: 0.25
  double early_events_share = 0.25;
  // Shares of events without duration_ms, and content without/with zero length_seconds.
  // Default: 0.03, 0.03, 0.01
  double null_duration_share = 0.03;
  double null_length_share = 0.03;
  double zero_length_share = 0.01;
  EnvelopeOptions envelope;
};

struct GeneratedRecord {
  std::string topic;
  std::string key;
  // The Debezium envelope; nullopt for the tombstone after a delete.
  std::optional<std::string> value;
  int64_t ts_ms = 0;  // commit time (event_ts for engagement events)
  // What the record says, for checks and for writing the same rows to
  // PostgreSQL: the op and the row (after; before for deletes).
  weir::debezium::Op op = weir::debezium::Op::kCreate;
  std::variant<Content, EngagementEvent> row;
  bool is_content() const { return std::holds_alternative<Content>(row); }
};

class ChangeGenerator {
 public:
  // Share of play and pause events that are replays, longer than the
  // content (up to 1.5 times its length).
  static constexpr double kReplayShare = 0.03;

  explicit ChangeGenerator(GeneratorOptions options);

  GeneratedRecord Next();

  int64_t records() const { return records_; }
  int64_t events() const { return next_event_id_ - 1; }
  const std::vector<Content>& live_content() const { return live_; }

 private:
  std::string NewUuid();
  Content NewContent();
  GeneratedRecord Event(const Content& content);
  int32_t DurationMs(const Content& content, std::string_view event_type);
  GeneratedRecord ContentRecord(weir::debezium::Op op, const Content* before, const Content& row);
  // Index into live_ by Zipf popularity.
  size_t PickContent();
  void RebuildWeights();
  int64_t NowMs() const;

  GeneratorOptions options_;
  std::mt19937_64 rng_;
  std::vector<Content> live_;
  std::vector<double> cumulative_;  // Zipf CDF over live_ (index = popularity rank)
  std::vector<std::string> users_;
  std::vector<std::string> pending_tombstones_;  // content ids just deleted
  // Content created but not yet published: its early events come first.
  std::optional<Content> unpublished_;
  int unpublished_events_left_ = 0;
  size_t snapshot_next_ = 0;
  int64_t records_ = 0;
  int64_t next_event_id_ = 1;
  int64_t lsn_ = 100'000;
  int64_t tx_id_ = 500;
};

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_GENERATOR_H_
