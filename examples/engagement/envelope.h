// Debezium change events for the two engagement tables, written the way
// Debezium's PostgreSQL connector with Kafka Connect's JsonConverter writes
// them: the envelope (before, after, source, op, ts_ms) with or without the
// {"schema", "payload"} wrapper (schemas.enable), record keys ({"id": ...}),
// and topic names <server>.public.<table>. Column types follow the
// connector's defaults: UUID -> io.debezium.data.Uuid string, TIMESTAMPTZ ->
// io.debezium.time.ZonedTimestamp ISO-8601 string, JSONB ->
// io.debezium.data.Json string, INT -> int32, BIGSERIAL -> int64.
//
// Example:
//
//   EnvelopeOptions options{.server = "engagement", .with_schema = false};
//   std::string value = ContentChange(weir::debezium::Op::kCreate, nullptr, &row,
//                                     {.ts_ms = now_ms, .lsn = 1234, .tx_id = 77}, options);

#ifndef WEIR_EXAMPLES_ENGAGEMENT_ENVELOPE_H_
#define WEIR_EXAMPLES_ENGAGEMENT_ENVELOPE_H_

#include <cstdint>
#include <string>

#include "examples/engagement/model.h"
#include "weir/formats/debezium.h"

namespace engagement {

struct EnvelopeOptions {
  // Debezium's topic.prefix (the logical server name).
  // Default: "engagement"
  std::string server = "engagement";
  // Wrap values and keys in {"schema": ..., "payload": ...}.
  // Default: false
  bool with_schema = false;
};

// The source block of one change.
struct SourcePosition {
  int64_t ts_ms = 0;  // commit time
  int64_t lsn = 0;
  int64_t tx_id = 0;
  bool snapshot = false;  // a row read by the initial snapshot (op r)
};

// "<server>.public.content" / "<server>.public.engagement_events".
std::string ContentTopic(const EnvelopeOptions& options);
std::string EngagementTopic(const EnvelopeOptions& options);

// Message values. `before`/`after` as the op needs them (nullptr: absent).
std::string ContentChange(weir::debezium::Op op, const Content* before, const Content* after,
                          const SourcePosition& source, const EnvelopeOptions& options);
std::string EngagementChange(weir::debezium::Op op, const EngagementEvent* before,
                             const EngagementEvent* after, const SourcePosition& source,
                             const EnvelopeOptions& options);

// Message keys: the primary key as Debezium writes it.
std::string ContentKey(const std::string& id, const EnvelopeOptions& options);
std::string EngagementKey(int64_t id, const EnvelopeOptions& options);

// Epoch milliseconds as io.debezium.time.ZonedTimestamp text
// ("2026-11-25T12:00:00.123Z").
std::string ZonedTimestamp(int64_t epoch_ms);

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_ENVELOPE_H_
