#include "examples/engagement/model.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "weir/connectors/clickhouse.h"
#include "weir/formats/json.h"

namespace engagement {

namespace dbz = weir::debezium;

dbz::Fields<Content> ContentFields() {
  return dbz::Fields<Content>()
      .Required("id", &Content::id, dbz::Uuid())
      .Required("slug", &Content::slug)
      .Required("title", &Content::title)
      .Required("content_type", &Content::content_type)
      .Optional("length_seconds", &Content::length_seconds)
      .Required("publish_ts", &Content::publish_ts_ms, dbz::EpochMillis());
}

dbz::Fields<EngagementEvent> EngagementEventFields(bool with_raw_payload) {
  auto fields = dbz::Fields<EngagementEvent>()
                    .Required("id", &EngagementEvent::id)
                    .Required("content_id", &EngagementEvent::content_id, dbz::Uuid())
                    .Required("user_id", &EngagementEvent::user_id, dbz::Uuid())
                    .Required("event_type", &EngagementEvent::event_type)
                    .Required("event_ts", &EngagementEvent::event_ts_ms, dbz::EpochMillis())
                    .Optional("duration_ms", &EngagementEvent::duration_ms)
                    .Required("device", &EngagementEvent::device);
  if (with_raw_payload) {
    fields.Optional("raw_payload", &EngagementEvent::raw_payload, dbz::Json());
  }
  return fields;
}

namespace {

// `Event` is `const EngagementEvent&` (its strings copied) or
// `EngagementEvent&&` (moved).
template <class Event>
Enriched EnrichFrom(Event&& event, const Content& content) {
  Enriched out;
  out.event_id = event.id;
  out.content_id = std::forward<Event>(event).content_id;
  out.user_id = std::forward<Event>(event).user_id;
  out.event_type = std::forward<Event>(event).event_type;
  out.event_ts_ms = event.event_ts_ms;
  out.duration_ms = event.duration_ms;
  out.device = std::forward<Event>(event).device;
  if (out.duration_ms) out.engagement_seconds = *out.duration_ms / 1000.0;
  if (out.engagement_seconds && content.length_seconds && *content.length_seconds != 0) {
    out.engagement_pct = *out.engagement_seconds / *content.length_seconds * 100.0;
  }
  out.slug = content.slug;
  out.title = content.title;
  out.content_type = content.content_type;
  out.length_seconds = content.length_seconds;
  out.publish_ts_ms = content.publish_ts_ms;
  return out;
}

}  // namespace

Enriched Enrich(const EngagementEvent& event, const Content& content) {
  return EnrichFrom(event, content);
}

Enriched Enrich(EngagementEvent&& event, const Content& content) {
  return EnrichFrom(std::move(event), content);
}

std::string ToJson(const Enriched& e) {
  std::string out;
  AppendJson(e, out);
  return out;
}

void AppendJson(const Enriched& e, std::string& out) {
  weir::json::Writer json(out);
  json.BeginObject()
      .Member("event_id", e.event_id)
      .Member("content_id", e.content_id)
      .Member("user_id", e.user_id)
      .Member("event_type", e.event_type)
      .Member("event_ts_ms", e.event_ts_ms)
      .Member("duration_ms", e.duration_ms)
      .Member("device", e.device)
      .Member("engagement_seconds", e.engagement_seconds)
      .Member("engagement_pct", e.engagement_pct)
      .Member("slug", e.slug)
      .Member("title", e.title)
      .Member("content_type", e.content_type)
      .Member("length_seconds", e.length_seconds)
      .Member("publish_ts_ms", e.publish_ts_ms)
      .EndObject();
}

std::string FormatDouble(double value) {
  // Below 10^12 the thousandths fit a double's integers: the value times
  // 1000 is rounded to an integer as printf rounds the exact value (to
  // nearest, the exact product being the rounded one plus fma's error),
  // unless it lies within 10^-9 of a tie, which std::to_chars settles.
  const double magnitude = std::fabs(value);
  if (magnitude < 1e12) {
    const double scaled = magnitude * 1000.0;
    const double error = std::fma(magnitude, 1000.0, -scaled);
    const double whole = std::floor(scaled);
    const double fraction = (scaled - whole) + error;
    if (std::fabs(fraction - 0.5) > 1e-9) {
      const auto thousandths = static_cast<uint64_t>(whole) + (fraction > 0.5 ? 1 : 0);
      char buffer[32];
      char* at = buffer;
      if (std::signbit(value)) *at++ = '-';
      at = std::to_chars(at, buffer + sizeof(buffer), thousandths / 1000).ptr;
      const auto decimals = static_cast<unsigned>(thousandths % 1000);
      at[0] = '.';
      at[1] = static_cast<char>('0' + decimals / 100);
      at[2] = static_cast<char>('0' + decimals / 10 % 10);
      at[3] = static_cast<char>('0' + decimals % 10);
      return std::string(buffer, static_cast<size_t>(at + 4 - buffer));
    }
  }
  // Fixed notation of the largest double: 309 digits, the point and 3
  // decimals (and a sign).
  char buffer[320];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed, 3);
  return std::string(buffer, static_cast<size_t>(result.ptr - buffer));
}

weir::clickhouse::Columns<Enriched> EnrichedColumns() {
  return weir::clickhouse::Columns<Enriched>()
      .Add("event_id", &Enriched::event_id)
      .Add("content_id", &Enriched::content_id)
      .Add("user_id", &Enriched::user_id)
      .Add("event_type", &Enriched::event_type)
      .AddDateTime("event_ts", &Enriched::event_ts_ms)
      .Add("event_ts_ms", &Enriched::event_ts_ms)
      .Add("duration_ms", &Enriched::duration_ms)
      .Add("device", &Enriched::device)
      .Add("engagement_seconds", &Enriched::engagement_seconds)
      .Add("engagement_pct", &Enriched::engagement_pct)
      .Add("slug", &Enriched::slug)
      .Add("title", &Enriched::title)
      .Add("content_type", &Enriched::content_type)
      .Add("length_seconds", &Enriched::length_seconds)
      .AddDateTime("publish_ts", &Enriched::publish_ts_ms);
}

}  // namespace engagement
