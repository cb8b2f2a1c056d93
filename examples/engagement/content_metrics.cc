#include "examples/engagement/content_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "weir/state.h"

namespace engagement {

// What ContentMetrics keeps per content and hour.
struct HourState {
  Totals totals;
  bool dirty = false;  // changed since its last rollup
  // The hour's newest event (event time, then id) and its content fields.
  int64_t last_event_ts_ms = 0;
  int64_t last_event_id = 0;
  std::string slug;
  std::string content_type;
};

// What ContentMetrics keeps per content.
struct ContentState {
  std::string slug;
  std::string title;
  std::string content_type;
  std::string listed_type;  // the type its leaderboard entry is under
  Totals totals;
  // The newest event (by event time, then id): the content fields come from
  // it, so they do not depend on the order events of one content arrive in.
  int64_t last_event_ts_ms = 0;
  int64_t last_event_id = 0;
  // 1-minute buckets of the sliding window: (bucket start, sum of duration_ms).
  std::vector<std::pair<int64_t, int64_t>> minutes;
  // The hours still open for late events: (hour start, totals), oldest first.
  std::vector<std::pair<int64_t, HourState>> hours;
  bool dirty = false;         // changed since the last ContentUpdate
  int64_t rollup_due_ms = 0;  // processing time of the next rollup flush (0: none)
  int64_t ageing_at = 0;      // the registered ageing timer (0: none)
  bool end_timer = false;
};

// Whether `e` is newer than the event (ts_ms, id).
bool Newer(const Enriched& e, int64_t ts_ms, int64_t id) {
  return std::pair(e.event_ts_ms, e.event_id) >= std::pair(ts_ms, id);
}

}  // namespace engagement

template <>
struct weir::Codec<engagement::Totals>
    : weir::MemberCodec<
          engagement::Totals, &engagement::Totals::events, &engagement::Totals::plays,
          &engagement::Totals::pauses, &engagement::Totals::finishes, &engagement::Totals::clicks,
          &engagement::Totals::duration_ms, &engagement::Totals::timed_events,
          &engagement::Totals::engagement_pct_micros, &engagement::Totals::pct_events> {};

template <>
struct weir::Codec<engagement::HourState>
    : weir::MemberCodec<engagement::HourState, &engagement::HourState::totals,
                        &engagement::HourState::dirty, &engagement::HourState::last_event_ts_ms,
                        &engagement::HourState::last_event_id, &engagement::HourState::slug,
                        &engagement::HourState::content_type> {};

template <>
struct weir::Codec<engagement::ContentState>
    : weir::MemberCodec<
          engagement::ContentState, &engagement::ContentState::slug,
          &engagement::ContentState::title, &engagement::ContentState::content_type,
          &engagement::ContentState::listed_type, &engagement::ContentState::totals,
          &engagement::ContentState::last_event_ts_ms, &engagement::ContentState::last_event_id,
          &engagement::ContentState::minutes, &engagement::ContentState::hours,
          &engagement::ContentState::dirty, &engagement::ContentState::rollup_due_ms,
          &engagement::ContentState::ageing_at, &engagement::ContentState::end_timer> {};

namespace engagement {
namespace {

// The sums are integers since the operator's uid became content-metrics-v2
// (pipeline_app.cc): a checkpoint of the older encoding is not restored.
const weir::ValueStateDescriptor<ContentState> kState{"content-metrics"};

int64_t FloorTo(int64_t ts, int64_t step) {
  const int64_t rem = ((ts % step) + step) % step;
  return ts - rem;
}

}  // namespace

void Totals::Add(const Enriched& e) {
  ++events;
  if (e.event_type == "play") {
    ++plays;
  } else if (e.event_type == "pause") {
    ++pauses;
  } else if (e.event_type == "finish") {
    ++finishes;
  } else if (e.event_type == "click") {
    ++clicks;
  }
  if (e.duration_ms) {
    duration_ms += *e.duration_ms;
    ++timed_events;
  }
  if (e.engagement_pct) {
    engagement_pct_micros += std::llround(*e.engagement_pct * 1e6);
    ++pct_events;
  }
}

absl::Status ContentMetrics::ProcessElement(const Enriched& event, Context& ctx,
                                            weir::Collector<ContentUpdate>& out) {
  weir::ValueState<ContentState> state = ctx.GetState(kState);
  if (state.Get() == nullptr) state.Update(ContentState{});
  ContentState& s = *state.Mutable();
  const weir::Timestamp watermark = ctx.current_watermark();
  const weir::Timestamp now = ctx.current_processing_time();
  if (Newer(event, s.last_event_ts_ms, s.last_event_id)) {
    s.slug = event.slug;
    s.title = event.title;
    s.content_type = event.content_type;
    s.last_event_ts_ms = event.event_ts_ms;
    s.last_event_id = event.event_id;
  }
  s.totals.Add(event);

  const int64_t minute = FloorTo(event.event_ts_ms, kBucketMs);
  if (minute + kWindowMs > watermark) {
    auto it = std::lower_bound(s.minutes.begin(), s.minutes.end(), std::pair(minute, INT64_MIN));
    if (it == s.minutes.end() || it->first != minute) it = s.minutes.insert(it, {minute, 0});
    it->second += event.duration_ms.value_or(0);
    const int64_t ageing = s.minutes.front().first + kWindowMs;
    if (s.ageing_at == 0 || ageing < s.ageing_at) {
      if (s.ageing_at != 0) ctx.timer_service().DeleteEventTimeTimer(s.ageing_at);
      s.ageing_at = ageing;
      ctx.timer_service().RegisterEventTimeTimer(ageing);
    }
  }

  const int64_t hour = FloorTo(event.event_ts_ms, kHourMs);
  const int64_t hour_done = hour + kHourMs + absl::ToInt64Milliseconds(options_.rollup_lateness);
  if (hour_done > watermark) {
    auto it = std::lower_bound(s.hours.begin(), s.hours.end(), hour,
                               [](const auto& entry, int64_t h) { return entry.first < h; });
    if (it == s.hours.end() || it->first != hour) {
      it = s.hours.insert(it, {hour, HourState{}});
      ctx.timer_service().RegisterEventTimeTimer(hour_done);
    }
    HourState* h = &it->second;
    h->totals.Add(event);
    h->dirty = true;
    if (Newer(event, h->last_event_ts_ms, h->last_event_id)) {
      h->last_event_ts_ms = event.event_ts_ms;
      h->last_event_id = event.event_id;
      h->slug = event.slug;
      h->content_type = event.content_type;
    }
    if (s.rollup_due_ms == 0) {
      const int64_t step = absl::ToInt64Milliseconds(options_.rollup_refresh);
      s.rollup_due_ms = FloorTo(now, step) + step;
      ctx.timer_service().RegisterProcessingTimeTimer(s.rollup_due_ms);
    }
  }

  if (!s.dirty) {
    s.dirty = true;
    const bool catching_up =
        now - event.event_ts_ms > absl::ToInt64Milliseconds(options_.catch_up_lag);
    const int64_t step =
        absl::ToInt64Milliseconds(catching_up ? options_.catch_up_refresh : options_.refresh);
    ctx.timer_service().RegisterProcessingTimeTimer(FloorTo(now, step) + step);
  }
  if (!s.end_timer) {
    s.end_timer = true;
    ctx.timer_service().RegisterEventTimeTimer(weir::kMaxTimestamp);
  }
  (void)out;
  return absl::OkStatus();
}

absl::Status ContentMetrics::OnTimer(weir::Timestamp timestamp, OnTimerContext& ctx,
                                     weir::Collector<ContentUpdate>& out) {
  weir::ValueState<ContentState> state = ctx.GetState(kState);
  ContentState* s = state.Mutable();
  if (s == nullptr) return absl::OkStatus();
  if (ctx.time_domain() == weir::TimeDomain::kProcessingTime) {
    if (s->dirty) Emit(ctx, out);
    if (s->rollup_due_ms != 0 && timestamp >= s->rollup_due_ms) EmitRollups(ctx, false);
    return absl::OkStatus();
  }
  const weir::Timestamp watermark = ctx.current_watermark();
  if (watermark == weir::kMaxTimestamp) {
    // The input ended (every event-time timer fires now): emit what is
    // pending once, leave the window as it was.
    if (timestamp == weir::kMaxTimestamp) {
      if (s->dirty) Emit(ctx, out);
      EmitRollups(ctx, true);
    }
    return absl::OkStatus();
  }
  // Ageing: buckets the window has passed leave it.
  if (s->ageing_at != 0 && timestamp >= s->ageing_at) {
    auto keep = std::find_if(s->minutes.begin(), s->minutes.end(), [&](const auto& bucket) {
      return bucket.first + kWindowMs > watermark;
    });
    if (keep != s->minutes.begin()) {
      s->minutes.erase(s->minutes.begin(), keep);
      s->dirty = true;
    }
    s->ageing_at = 0;
    if (!s->minutes.empty()) {
      s->ageing_at = s->minutes.front().first + kWindowMs;
      ctx.timer_service().RegisterEventTimeTimer(s->ageing_at);
    }
    if (s->dirty) Emit(ctx, out);
  }
  // Hours past their lateness: their last rollup goes out, then they go.
  EmitRollups(ctx, false);
  return absl::OkStatus();
}

std::string ContentMetrics::ReplayState() const { return kState.name; }

absl::Status ContentMetrics::OnReplay(Context& ctx, weir::Collector<ContentUpdate>& out) {
  if (ctx.GetState(kState).Get() != nullptr) Emit(ctx, out);
  return absl::OkStatus();
}

void ContentMetrics::Emit(Context& ctx, weir::Collector<ContentUpdate>& out) {
  ContentState& s = *ctx.GetState(kState).Mutable();
  ContentUpdate update;
  update.content_id = ctx.current_key();
  update.slug = s.slug;
  update.title = s.title;
  update.content_type = s.content_type;
  if (!s.listed_type.empty() && s.listed_type != s.content_type) {
    update.previous_content_type = s.listed_type;
  }
  s.listed_type = s.content_type;
  update.totals = s.totals;
  update.last_event_ts_ms = s.last_event_ts_ms;
  int64_t window_ms = 0;
  for (const auto& [minute, ms] : s.minutes) window_ms += ms;
  update.window_seconds = static_cast<double>(window_ms) / 1000.0;
  s.dirty = false;
  out.Collect(std::move(update));
}

void ContentMetrics::EmitRollups(Context& ctx, bool all_done) {
  ContentState& s = *ctx.GetState(kState).Mutable();
  s.rollup_due_ms = 0;
  const weir::Timestamp watermark = ctx.current_watermark();
  const int64_t lateness = absl::ToInt64Milliseconds(options_.rollup_lateness);
  for (auto& [hour, h] : s.hours) {
    if (!h.dirty) continue;
    h.dirty = false;
    ctx.Output(options_.rollups, HourlyRollup{.content_id = ctx.current_key(),
                                              .hour_ms = hour,
                                              .slug = h.slug,
                                              .content_type = h.content_type,
                                              .totals = h.totals});
  }
  if (all_done) return;
  std::erase_if(s.hours,
                [&](const auto& entry) { return entry.first + kHourMs + lateness <= watermark; });
}

}  // namespace engagement
