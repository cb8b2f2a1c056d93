#include "examples/engagement/envelope.h"

#include <string_view>

#include "absl/time/time.h"
#include "weir/formats/json.h"

namespace engagement {
namespace {

using weir::debezium::Op;
using weir::json::Writer;

void WriteRow(Writer& json, const Content& row) {
  json.BeginObject()
      .Member("id", row.id)
      .Member("slug", row.slug)
      .Member("title", row.title)
      .Member("content_type", row.content_type)
      .Member("length_seconds", row.length_seconds)
      .Member("publish_ts", ZonedTimestamp(row.publish_ts_ms))
      .EndObject();
}

void WriteRow(Writer& json, const EngagementEvent& row) {
  json.BeginObject()
      .Member("id", row.id)
      .Member("content_id", row.content_id)
      .Member("user_id", row.user_id)
      .Member("event_type", row.event_type)
      .Member("event_ts", ZonedTimestamp(row.event_ts_ms))
      .Member("duration_ms", row.duration_ms)
      .Member("device", row.device)
      .Member("raw_payload", row.raw_payload)
      .EndObject();
}

// One column of a Kafka Connect struct schema.
void Field(Writer& json, std::string_view name, std::string_view type, bool optional,
           std::string_view semantic = {}) {
  json.BeginObject().Member("type", type).Member("optional", optional);
  if (!semantic.empty()) json.Member("name", semantic).Member("version", int64_t{1});
  json.Member("field", name).EndObject();
}

void RowFields(Writer& json, const Content*) {
  Field(json, "id", "string", false, "io.debezium.data.Uuid");
  Field(json, "slug", "string", false);
  Field(json, "title", "string", false);
  Field(json, "content_type", "string", false);
  Field(json, "length_seconds", "int32", true);
  Field(json, "publish_ts", "string", false, "io.debezium.time.ZonedTimestamp");
}

void RowFields(Writer& json, const EngagementEvent*) {
  Field(json, "id", "int64", false);
  Field(json, "content_id", "string", false, "io.debezium.data.Uuid");
  Field(json, "user_id", "string", false, "io.debezium.data.Uuid");
  Field(json, "event_type", "string", false);
  Field(json, "event_ts", "string", false, "io.debezium.time.ZonedTimestamp");
  Field(json, "duration_ms", "int32", true);
  Field(json, "device", "string", false);
  Field(json, "raw_payload", "string", true, "io.debezium.data.Json");
}

template <class Row>
void RowSchema(Writer& json, const std::string& record_name, std::string_view field) {
  json.BeginObject().Member("type", "struct").Key("fields").BeginArray();
  RowFields(json, static_cast<const Row*>(nullptr));
  json.EndArray().Member("optional", true).Member("name", record_name);
  if (!field.empty()) json.Member("field", field);
  json.EndObject();
}

template <class Row>
void EnvelopeSchema(Writer& json, const std::string& table_name) {
  const std::string value_name = table_name + ".Value";
  json.BeginObject().Member("type", "struct").Key("fields").BeginArray();
  RowSchema<Row>(json, value_name, "before");
  RowSchema<Row>(json, value_name, "after");
  json.BeginObject().Member("type", "struct").Key("fields").BeginArray();
  Field(json, "version", "string", false);
  Field(json, "connector", "string", false);
  Field(json, "name", "string", false);
  Field(json, "ts_ms", "int64", false);
  Field(json, "snapshot", "string", true, "io.debezium.data.Enum");
  Field(json, "db", "string", false);
  Field(json, "schema", "string", false);
  Field(json, "table", "string", false);
  Field(json, "txId", "int64", true);
  Field(json, "lsn", "int64", true);
  json.EndArray()
      .Member("optional", false)
      .Member("name", "io.debezium.connector.postgresql.Source")
      .Member("field", "source")
      .EndObject();
  Field(json, "op", "string", false);
  Field(json, "ts_ms", "int64", true);
  json.EndArray().Member("optional", false).Member("name", table_name + ".Envelope").EndObject();
}

template <class Row>
std::string Change(Op op, const Row* before, const Row* after, const SourcePosition& source,
                   const EnvelopeOptions& options, std::string_view table) {
  const std::string table_name = options.server + ".public." + std::string(table);
  std::string out;
  Writer json(out);
  if (options.with_schema) {
    json.BeginObject().Key("schema");
    EnvelopeSchema<Row>(json, table_name);
    json.Key("payload");
  }
  json.BeginObject().Key("before");
  before ? WriteRow(json, *before) : (void)json.Null();
  json.Key("after");
  after ? WriteRow(json, *after) : (void)json.Null();
  json.Key("source")
      .BeginObject()
      .Member("version", "2.5.0.Final")
      .Member("connector", "postgresql")
      .Member("name", options.server)
      .Member("ts_ms", source.ts_ms)
      .Member("snapshot", source.snapshot ? "true" : "false")
      .Member("db", "app")
      .Member("schema", "public")
      .Member("table", table)
      .Member("txId", source.tx_id)
      .Member("lsn", source.lsn)
      .EndObject()
      .Member("op", weir::debezium::OpName(op))
      .Member("ts_ms", source.ts_ms + 5)  // Debezium sees the change a moment later
      .EndObject();
  if (options.with_schema) json.EndObject();
  return out;
}

template <class Id>
std::string Key(const Id& id, std::string_view type, std::string_view semantic,
                const std::string& key_name, const EnvelopeOptions& options) {
  std::string out;
  Writer json(out);
  if (options.with_schema) {
    json.BeginObject().Key("schema").BeginObject().Member("type", "struct").Key("fields");
    json.BeginArray();
    Field(json, "id", type, false, semantic);
    json.EndArray().Member("optional", false).Member("name", key_name).EndObject();
    json.Key("payload");
  }
  json.BeginObject().Member("id", id).EndObject();
  if (options.with_schema) json.EndObject();
  return out;
}

}  // namespace

std::string ContentTopic(const EnvelopeOptions& options) {
  return options.server + ".public.content";
}
std::string EngagementTopic(const EnvelopeOptions& options) {
  return options.server + ".public.engagement_events";
}

std::string ContentChange(Op op, const Content* before, const Content* after,
                          const SourcePosition& source, const EnvelopeOptions& options) {
  return Change(op, before, after, source, options, "content");
}

std::string EngagementChange(Op op, const EngagementEvent* before, const EngagementEvent* after,
                             const SourcePosition& source, const EnvelopeOptions& options) {
  return Change(op, before, after, source, options, "engagement_events");
}

std::string ContentKey(const std::string& id, const EnvelopeOptions& options) {
  return Key(id, "string", "io.debezium.data.Uuid", ContentTopic(options) + ".Key", options);
}

std::string EngagementKey(int64_t id, const EnvelopeOptions& options) {
  return Key(id, "int64", "", EngagementTopic(options) + ".Key", options);
}

std::string ZonedTimestamp(int64_t epoch_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(epoch_ms),
                          absl::UTCTimeZone());
}

}  // namespace engagement
