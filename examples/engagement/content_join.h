// The engagement pipeline's join: each engagement event with the version of
// its content row that was current at the event's time (an event-time
// temporal join over broadcast state).
//
// Content changes (Debezium creates, updates, deletes of public.content)
// are broadcast to every worker, which keeps the last few versions of each
// row, stamped with their commit time. An event waits in keyed state until
// the content side's watermark (ReadOnlyContext::broadcast_watermark())
// passes its event time -- then every content change committed before it has
// arrived; the events' own out-of-orderness does not delay it -- and is
// joined with the newest version committed at or before it;
// an event older than every version of its row (the row was created after
// its first events) takes the first version. So the result does not depend
// on how the two topics' reads interleave, and a replay after a restore
// gives the same rows.
//
// One exception, the price of a live join: a content partition that has
// caught up with its end is idle and no longer holds the watermark back
// (otherwise a quiet content table would stop every event). A change that
// reaches the pipeline after events that happened after it, while the
// content topic was idle, applies only to the events that reach the join
// after it; the earlier ones keep the version they were joined with.
//
// Enriched events carry their event time as their timestamp. Per content,
// they leave in the order their content versions became known, which is not
// always the order they arrived in.
//
// Waiting events hold the operator's output watermark below their time
// (TimerService::RegisterWatermarkHold), so none is late downstream when it
// leaves, however long it waited.
//
// An event whose content row has not arrived waits for it up to `max_wait`
// of processing time, then goes to the dead letters; so does an event whose
// content was deleted before it happened. At the end of input, events still
// without a row go to the dead letters too. Nothing is dropped.
//
// Example:
//
//   events.KeyBy([](const EngagementEvent& e) { return e.content_id; })
//       .Connect(content_versions.Broadcast())
//       .Process(ContentJoin({.max_wait = absl::Seconds(30), .rejected = kRejected}));

#ifndef WEIR_EXAMPLES_ENGAGEMENT_CONTENT_JOIN_H_
#define WEIR_EXAMPLES_ENGAGEMENT_CONTENT_JOIN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "examples/engagement/model.h"
#include "weir/dead_letter.h"
#include "weir/functions.h"
#include "weir/state.h"

namespace engagement {

// One change of a content row at its commit time; `row` nullopt: deleted.
struct ContentVersion {
  std::string content_id;
  int64_t ts_ms = 0;
  std::optional<Content> row;
};

// The versions of one row, oldest first: (commit time, row or deleted).
using ContentHistory = std::vector<std::pair<int64_t, std::optional<Content>>>;

struct ContentJoinOptions {
  // How long an event waits for a content row that has not arrived
  // (processing time). Default: 30 s
  absl::Duration max_wait = absl::Seconds(30);
  // Versions kept per content row (the oldest go first).
  // Default: 8
  size_t max_versions = 8;
  // Where rejected events go.
  weir::OutputTag<weir::DeadLetter> rejected{"rejected"};
};

class ContentJoin final : public weir::KeyedBroadcastProcessFunction<std::string, EngagementEvent,
                                                                     ContentVersion, Enriched> {
 public:
  explicit ContentJoin(ContentJoinOptions options) : options_(std::move(options)) {}

  absl::Status ProcessElement(const EngagementEvent& event, ReadOnlyContext& ctx,
                              weir::Collector<Enriched>& out) override;
  // The operator hands each event over: a waiting event moves into the
  // pending list, a joined one into its enriched event.
  absl::Status ProcessElement(EngagementEvent&& event, ReadOnlyContext& ctx,
                              weir::Collector<Enriched>& out);
  absl::Status ProcessBroadcastElement(const ContentVersion& version, Context& ctx,
                                       weir::Collector<Enriched>& out) override;
  absl::Status OnTimer(weir::Timestamp timestamp, OnTimerContext& ctx,
                       weir::Collector<Enriched>& out) override;

  // The version of `history` an event at `event_ts_ms` joins with: the
  // newest committed at or before it, else the oldest; nullptr when the
  // history is empty. A deletion is returned as a disengaged optional.
  static const std::optional<Content>* VersionAt(const ContentHistory& history,
                                                 int64_t event_ts_ms);

 private:
  enum class Why { kWatermark, kDeadline, kEnd };
  // Joins `event` (the content side's watermark has passed it) with its
  // version, rejects it, or (no row yet, time not up) keeps it with the
  // rowless ones and returns true. Takes the event: its strings move into
  // the enriched event.
  bool Join(KeyedContext& ctx, const ContentHistory* history, EngagementEvent&& event, Why why,
            weir::Collector<Enriched>& out);
  // Tries again the current key's events that had no row.
  void ReleaseRowless(KeyedContext& ctx, const ContentHistory* history, Why why,
                      weir::Collector<Enriched>& out);
  // A processing-time deadline while rowless events wait, none otherwise;
  // and the watermark hold (UpdateHold).
  void UpdateDeadline(KeyedContext& ctx);
  // Holds the operator's output watermark below the earliest event of the
  // current key that waits (pending or rowless), so that it is not late
  // downstream when it leaves; HoldAtMost lowers the hold to `ts_ms`.
  void UpdateHold(KeyedContext& ctx);
  void HoldAtMost(KeyedContext& ctx, int64_t ts_ms);
  // Timers that look at the current key's waiting events again: soon
  // (processing time) and when the job's watermark passes the first one.
  void ScheduleRecheck(KeyedContext& ctx, int64_t front_ts_ms);
  void Reject(weir::ProcessContext& ctx, const EngagementEvent& event, std::string reason);

  ContentJoinOptions options_;
};

}  // namespace engagement

template <>
struct weir::Codec<engagement::Content>
    : weir::MemberCodec<engagement::Content, &engagement::Content::id, &engagement::Content::slug,
                        &engagement::Content::title, &engagement::Content::content_type,
                        &engagement::Content::length_seconds, &engagement::Content::publish_ts_ms> {
};

template <>
struct weir::Codec<engagement::EngagementEvent>
    : weir::MemberCodec<
          engagement::EngagementEvent, &engagement::EngagementEvent::id,
          &engagement::EngagementEvent::content_id, &engagement::EngagementEvent::user_id,
          &engagement::EngagementEvent::event_type, &engagement::EngagementEvent::event_ts_ms,
          &engagement::EngagementEvent::duration_ms, &engagement::EngagementEvent::device,
          &engagement::EngagementEvent::raw_payload> {};

// Content versions cross tasks (Broadcast) in cluster mode, and so do the
// join's enriched events (KeyBy to the metrics): both need a Codec.
template <>
struct weir::Codec<engagement::ContentVersion>
    : weir::MemberCodec<engagement::ContentVersion, &engagement::ContentVersion::content_id,
                        &engagement::ContentVersion::ts_ms, &engagement::ContentVersion::row> {};

template <>
struct weir::Codec<engagement::Enriched>
    : weir::MemberCodec<
          engagement::Enriched, &engagement::Enriched::event_id, &engagement::Enriched::content_id,
          &engagement::Enriched::user_id, &engagement::Enriched::event_type,
          &engagement::Enriched::event_ts_ms, &engagement::Enriched::duration_ms,
          &engagement::Enriched::device, &engagement::Enriched::engagement_seconds,
          &engagement::Enriched::engagement_pct, &engagement::Enriched::slug,
          &engagement::Enriched::title, &engagement::Enriched::content_type,
          &engagement::Enriched::length_seconds, &engagement::Enriched::publish_ts_ms> {};

#endif  // WEIR_EXAMPLES_ENGAGEMENT_CONTENT_JOIN_H_
