#include "examples/engagement/content_join.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "weir/formats/json.h"

namespace engagement {
namespace {

const weir::MapStateDescriptor<std::string, ContentHistory> kRows{"content-rows"};
// Events waiting for the content side's watermark, in arrival order.
const weir::ListStateDescriptor<EngagementEvent> kPending{"events-pending"};
// Events the content side's watermark has passed whose row has not arrived.
const weir::ListStateDescriptor<EngagementEvent> kRowless{"events-rowless"};
const weir::ValueStateDescriptor<weir::Timestamp> kDeadline{"row-deadline"};
// The key's watermark hold: the earliest event it still has to emit.
const weir::ValueStateDescriptor<weir::Timestamp> kHold{"watermark-hold"};

// Event-time timers are rounded up to this step, so a busy key has at most
// a few timers a second.
constexpr int64_t kTimerStepMs = 50;
// While events wait, their key re-checks the content side's watermark this
// often (processing time).
constexpr int64_t kRecheckMs = 20;

int64_t CeilTo(int64_t ts, int64_t step) {
  const int64_t rem = ((ts % step) + step) % step;
  return rem == 0 ? ts : ts + (step - rem);
}

// The event as JSON, the payload of its dead letter.
std::string EventJson(const EngagementEvent& e) {
  std::string out;
  weir::json::Writer json(out);
  json.BeginObject()
      .Member("id", e.id)
      .Member("content_id", e.content_id)
      .Member("user_id", e.user_id)
      .Member("event_type", e.event_type)
      .Member("event_ts_ms", e.event_ts_ms)
      .Member("duration_ms", e.duration_ms)
      .Member("device", e.device)
      .EndObject();
  return out;
}

}  // namespace

const std::optional<Content>* ContentJoin::VersionAt(const ContentHistory& history,
                                                     int64_t event_ts_ms) {
  if (history.empty()) return nullptr;
  // The first version committed after the event; the one before it applies.
  auto after = std::upper_bound(
      history.begin(), history.end(), event_ts_ms,
      [](int64_t ts, const std::pair<int64_t, std::optional<Content>>& v) { return ts < v.first; });
  if (after == history.begin()) return &history.front().second;
  return &std::prev(after)->second;
}

absl::Status ContentJoin::ProcessElement(const EngagementEvent& event, ReadOnlyContext& ctx,
                                         weir::Collector<Enriched>& out) {
  return ProcessElement(EngagementEvent(event), ctx, out);
}

absl::Status ContentJoin::ProcessElement(EngagementEvent&& event, ReadOnlyContext& ctx,
                                         weir::Collector<Enriched>& out) {
  const int64_t event_ts_ms = event.event_ts_ms;
  if (event_ts_ms <= ctx.broadcast_watermark()) {
    // Every content change committed at or before the event is here.
    if (Join(ctx, ctx.GetBroadcastState(kRows).Get(ctx.current_key()), std::move(event),
             Why::kWatermark, out)) {
      UpdateDeadline(ctx);
    }
    return absl::OkStatus();
  }
  std::vector<EngagementEvent>& pending = *ctx.GetState(kPending).Mutable();
  if (pending.empty()) ScheduleRecheck(ctx, event_ts_ms);
  pending.push_back(std::move(event));
  HoldAtMost(ctx, event_ts_ms);
  return absl::OkStatus();
}

void ContentJoin::HoldAtMost(KeyedContext& ctx, int64_t ts_ms) {
  weir::ValueState<weir::Timestamp> hold = ctx.GetState(kHold);
  const weir::Timestamp* held = hold.Get();
  if (held != nullptr && *held <= ts_ms) return;
  if (held != nullptr) ctx.timer_service().DeleteWatermarkHold(*held);
  ctx.timer_service().RegisterWatermarkHold(ts_ms);
  hold.Update(ts_ms);
}

void ContentJoin::UpdateHold(KeyedContext& ctx) {
  weir::Timestamp earliest = weir::kMaxTimestamp;
  for (const EngagementEvent& event : ctx.GetState(kPending).Get()) {
    earliest = std::min(earliest, event.event_ts_ms);
  }
  for (const EngagementEvent& event : ctx.GetState(kRowless).Get()) {
    earliest = std::min(earliest, event.event_ts_ms);
  }
  weir::ValueState<weir::Timestamp> hold = ctx.GetState(kHold);
  const weir::Timestamp* held = hold.Get();
  if (held != nullptr && *held == earliest) return;
  if (held != nullptr) ctx.timer_service().DeleteWatermarkHold(*held);
  if (earliest == weir::kMaxTimestamp) {
    hold.Clear();
    return;
  }
  ctx.timer_service().RegisterWatermarkHold(earliest);
  hold.Update(earliest);
}

void ContentJoin::ScheduleRecheck(KeyedContext& ctx, int64_t front_ts_ms) {
  weir::TimerService& timers = ctx.timer_service();
  timers.RegisterProcessingTimeTimer(CeilTo(ctx.current_processing_time() + 1, kRecheckMs));
  // The job's own watermark passing the event releases it too (it cannot
  // pass before the content side's), in particular at the end of input,
  // when processing-time timers no longer fire.
  timers.RegisterEventTimeTimer(CeilTo(front_ts_ms, kTimerStepMs));
}

absl::Status ContentJoin::ProcessBroadcastElement(const ContentVersion& version, Context& ctx,
                                                  weir::Collector<Enriched>& out) {
  weir::BroadcastState<std::string, ContentHistory> rows = ctx.GetBroadcastState(kRows);
  ContentHistory history;
  if (const ContentHistory* known = rows.Get(version.content_id)) history = *known;
  auto at = std::lower_bound(
      history.begin(), history.end(), version.ts_ms,
      [](const std::pair<int64_t, std::optional<Content>>& v, int64_t ts) { return v.first < ts; });
  if (at != history.end() && at->first == version.ts_ms) {
    at->second = version.row;  // the same commit again (a replay): the newer wins
  } else {
    history.insert(at, {version.ts_ms, version.row});
  }
  if (history.size() > options_.max_versions) {
    history.erase(history.begin(),
                  history.begin() + static_cast<ptrdiff_t>(history.size() - options_.max_versions));
  }
  rows.Put(version.content_id, std::move(history));
  const ContentHistory* stored = rows.Get(version.content_id);
  // Events of this content that waited for its first row.
  ctx.ApplyToKey(version.content_id,
                 [&](KeyedContext& keyed) { ReleaseRowless(keyed, stored, Why::kWatermark, out); });
  return absl::OkStatus();
}

absl::Status ContentJoin::OnTimer(weir::Timestamp timestamp, OnTimerContext& ctx,
                                  weir::Collector<Enriched>& out) {
  const ContentHistory* history = ctx.GetBroadcastState(kRows).Get(ctx.current_key());
  // The events the content side's watermark has passed (the same test as
  // in ProcessElement), in arrival order; the others keep waiting.
  const weir::Timestamp content_watermark = ctx.broadcast_watermark();
  std::vector<EngagementEvent>& pending = *ctx.GetState(kPending).Mutable();
  if (!pending.empty()) {
    size_t kept = 0;
    for (size_t i = 0; i < pending.size(); ++i) {
      if (pending[i].event_ts_ms <= content_watermark) {
        Join(ctx, history, std::move(pending[i]), Why::kWatermark, out);
      } else {
        if (kept != i) pending[kept] = std::move(pending[i]);
        ++kept;
      }
    }
    pending.resize(kept);
    if (!pending.empty()) ScheduleRecheck(ctx, pending.front().event_ts_ms);
  }
  if (ctx.time_domain() == weir::TimeDomain::kProcessingTime) {
    const weir::Timestamp* deadline = ctx.GetState(kDeadline).Get();
    if (deadline != nullptr && timestamp >= *deadline) {
      ReleaseRowless(ctx, history, Why::kDeadline, out);
    }
  } else if (timestamp == weir::kMaxTimestamp) {
    ReleaseRowless(ctx, history, Why::kEnd, out);
  }
  UpdateDeadline(ctx);
  return absl::OkStatus();
}

bool ContentJoin::Join(KeyedContext& ctx, const ContentHistory* history, EngagementEvent&& event,
                       Why why, weir::Collector<Enriched>& out) {
  const std::optional<Content>* version =
      history == nullptr ? nullptr : VersionAt(*history, event.event_ts_ms);
  if (version != nullptr && version->has_value()) {
    const int64_t event_ts_ms = event.event_ts_ms;
    out.CollectWithTimestamp(Enrich(std::move(event), **version), event_ts_ms);
  } else if (version != nullptr) {
    Reject(ctx, event,
           absl::StrCat("content ", event.content_id, " was deleted before the event (event_ts_ms ",
                        event.event_ts_ms, ")"));
  } else if (why == Why::kEnd) {
    Reject(ctx, event,
           absl::StrCat("no row of content ", event.content_id, " arrived before the input ended"));
  } else if (why == Why::kDeadline) {
    Reject(ctx, event,
           absl::StrCat("no row of content ", event.content_id, " arrived within ",
                        absl::FormatDuration(options_.max_wait)));
  } else {
    ctx.GetState(kRowless).Add(std::move(event));
    return true;
  }
  return false;
}

void ContentJoin::ReleaseRowless(KeyedContext& ctx, const ContentHistory* history, Why why,
                                 weir::Collector<Enriched>& out) {
  weir::ListState<EngagementEvent> rowless = ctx.GetState(kRowless);
  if (rowless.Get().empty()) return;
  std::vector<EngagementEvent> events = rowless.Get();
  rowless.Clear();
  for (EngagementEvent& event : events) Join(ctx, history, std::move(event), why, out);
  UpdateDeadline(ctx);
}

void ContentJoin::UpdateDeadline(KeyedContext& ctx) {
  UpdateHold(ctx);
  const bool rowless = !ctx.GetState(kRowless).Get().empty();
  weir::ValueState<weir::Timestamp> deadline = ctx.GetState(kDeadline);
  if (rowless && deadline.Get() == nullptr) {
    const weir::Timestamp at =
        ctx.current_processing_time() + absl::ToInt64Milliseconds(options_.max_wait);
    deadline.Update(at);
    ctx.timer_service().RegisterProcessingTimeTimer(at);
    ctx.timer_service().RegisterEventTimeTimer(weir::kMaxTimestamp);
  } else if (!rowless && deadline.Get() != nullptr) {
    ctx.timer_service().DeleteProcessingTimeTimer(*deadline.Get());
    ctx.timer_service().DeleteEventTimeTimer(weir::kMaxTimestamp);
    deadline.Clear();
  }
}

void ContentJoin::Reject(weir::ProcessContext& ctx, const EngagementEvent& event,
                         std::string reason) {
  weir::DeadLetter letter;
  letter.payload = EventJson(event);
  letter.key = event.content_id;
  letter.code = absl::StatusCode::kNotFound;
  letter.error = std::move(reason);
  letter.stage = "content-join";
  letter.timestamp_ms = event.event_ts_ms;
  ctx.Output(options_.rejected, std::move(letter));
}

}  // namespace engagement
