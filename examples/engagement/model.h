// The engagement pipeline's rows: the two source tables as Debezium delivers
// them (public.content and public.engagement_events, see schema.sql), their
// Debezium field declarations, and the enriched event the pipeline emits.
//
// Example:
//
//   auto events = weir::debezium::Decoder<EngagementEvent>::Create(EngagementEventFields());
//   ...
//   Enriched out = Enrich(event, &content);   // content may be nullptr: no match

#ifndef WEIR_EXAMPLES_ENGAGEMENT_MODEL_H_
#define WEIR_EXAMPLES_ENGAGEMENT_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "weir/connectors/clickhouse.h"
#include "weir/formats/debezium.h"

namespace engagement {

// public.content
struct Content {
  std::string id;  // UUID
  std::string slug;
  std::string title;
  std::string content_type;  // podcast | newsletter | video
  std::optional<int32_t> length_seconds;
  int64_t publish_ts_ms = 0;  // TIMESTAMPTZ

  friend bool operator==(const Content&, const Content&) = default;
};

// public.engagement_events
struct EngagementEvent {
  int64_t id = 0;  // BIGSERIAL
  std::string content_id;
  std::string user_id;
  std::string event_type;  // play | pause | finish | click
  int64_t event_ts_ms = 0;
  std::optional<int32_t> duration_ms;
  std::string device;
  std::optional<std::string> raw_payload;  // JSONB as JSON text

  friend bool operator==(const EngagementEvent&, const EngagementEvent&) = default;
};

// An event joined with its content row.
struct Enriched {
  int64_t event_id = 0;
  std::string content_id;
  std::string user_id;
  std::string event_type;
  int64_t event_ts_ms = 0;
  std::optional<int32_t> duration_ms;
  std::string device;
  // duration_ms / 1000.0; null when duration_ms is.
  std::optional<double> engagement_seconds;
  // engagement_seconds / length_seconds * 100; null when either is null or
  // the length is 0.
  std::optional<double> engagement_pct;
  // From the content row.
  std::string slug;
  std::string title;
  std::string content_type;
  std::optional<int32_t> length_seconds;
  int64_t publish_ts_ms = 0;

  friend bool operator==(const Enriched&, const Enriched&) = default;
};

inline constexpr std::string_view kContentTypes[] = {"podcast", "newsletter", "video"};
inline constexpr std::string_view kEventTypes[] = {"play", "pause", "finish", "click"};

// Debezium field declarations of the two tables (TIMESTAMPTZ arrives as
// io.debezium.time.ZonedTimestamp, UUID as io.debezium.data.Uuid, JSONB as
// io.debezium.data.Json).
weir::debezium::Fields<Content> ContentFields();
// `with_raw_payload` false: raw_payload is neither decoded nor checked (the
// pipeline's outputs do not carry it).
weir::debezium::Fields<EngagementEvent> EngagementEventFields(bool with_raw_payload = true);

// The enriched event; `content` is the event's content row.
Enriched Enrich(const EngagementEvent& event, const Content& content);
// The same, moving the event's strings instead of copying them.
Enriched Enrich(EngagementEvent&& event, const Content& content);

// Enriched as one JSON object (the outbox value and the ClickHouse row):
// timestamps as epoch milliseconds, nulls as null.
std::string ToJson(const Enriched& enriched);
// The same, appended to `out` (a reused buffer: no allocation per record).
void AppendJson(const Enriched& enriched, std::string& out);

// `value` with three decimals, character for character as printf's "%.3f"
// writes it (the numbers of the Redis hashes), without printf's cost.
std::string FormatDouble(double value);

// Enriched's ClickHouse columns (the enriched-events table): the event, its
// event time as a DateTime and in milliseconds, and the content's fields.
weir::clickhouse::Columns<Enriched> EnrichedColumns();

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_MODEL_H_
