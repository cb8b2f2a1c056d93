// weir::debezium: decoding Debezium JSON change events — every op, both
// envelope styles, tombstones, every declared type (with exact decimals),
// schema changes between messages, and the errors for malformed or
// mismatching messages. The realistic fixtures are the two tables of the
// engagement pipeline as Debezium's PostgreSQL connector (pgoutput,
// JsonConverter) emits them.

#include "weir/formats/debezium.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weir::debezium {
namespace {

using ::testing::HasSubstr;

// Concatenation for std::string_view pieces (Debian's absl::StrCat does not
// take std::string_view).
std::string Join(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

void ExpectError(const absl::Status& status, absl::StatusCode code, std::string_view substring) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(substring)));
}

// ---------------------------------------------------------------------------
// The engagement pipeline's tables
// ---------------------------------------------------------------------------

// CREATE TABLE content (id UUID PRIMARY KEY, slug TEXT NOT NULL, title TEXT NOT NULL,
//   content_type TEXT NOT NULL, length_seconds INT NULL, publish_ts TIMESTAMPTZ NOT NULL);
struct Content {
  std::string id;
  std::string slug;
  std::string title;
  std::string content_type;
  std::optional<int32_t> length_seconds;
  int64_t publish_ts_ms = 0;

  friend bool operator==(const Content&, const Content&) = default;
};

Fields<Content> ContentFields() {
  return Fields<Content>()
      .Required("id", &Content::id, Uuid())
      .Required("slug", &Content::slug)
      .Required("title", &Content::title)
      .Required("content_type", &Content::content_type)
      .Optional("length_seconds", &Content::length_seconds)
      .Required("publish_ts", &Content::publish_ts_ms, EpochMillis());
}

// CREATE TABLE engagement_events (id BIGSERIAL PRIMARY KEY, content_id UUID NOT NULL,
//   user_id UUID NOT NULL, event_type TEXT NOT NULL, event_ts TIMESTAMPTZ NOT NULL,
//   duration_ms INT NULL, device TEXT NOT NULL, raw_payload JSONB NULL);
struct EngagementEvent {
  int64_t id = 0;
  std::string content_id;
  std::string user_id;
  std::string event_type;
  int64_t event_ts_ms = 0;
  std::optional<int32_t> duration_ms;
  std::string device;
  std::optional<std::string> raw_payload;

  friend bool operator==(const EngagementEvent&, const EngagementEvent&) = default;
};

Fields<EngagementEvent> EngagementFields() {
  return Fields<EngagementEvent>()
      .Required("id", &EngagementEvent::id)
      .Required("content_id", &EngagementEvent::content_id, Uuid())
      .Required("user_id", &EngagementEvent::user_id, Uuid())
      .Required("event_type", &EngagementEvent::event_type)
      .Required("event_ts", &EngagementEvent::event_ts_ms, EpochMillis())
      .Optional("duration_ms", &EngagementEvent::duration_ms)
      .Required("device", &EngagementEvent::device)
      .Optional("raw_payload", &EngagementEvent::raw_payload, Json());
}

// The value schema's columns, as the connector describes public.content.
constexpr std::string_view kContentColumns =
    R"({"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"id"},)"
    R"({"type":"string","optional":false,"field":"slug"},)"
    R"({"type":"string","optional":false,"field":"title"},)"
    R"({"type":"string","optional":false,"field":"content_type"},)"
    R"({"type":"int32","optional":true,"field":"length_seconds"},)"
    R"({"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"publish_ts"})";

constexpr std::string_view kEngagementColumns =
    R"({"type":"int64","optional":false,"field":"id"},)"
    R"({"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"content_id"},)"
    R"({"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"user_id"},)"
    R"({"type":"string","optional":false,"field":"event_type"},)"
    R"({"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"event_ts"},)"
    R"({"type":"int32","optional":true,"field":"duration_ms"},)"
    R"({"type":"string","optional":false,"field":"device"},)"
    R"({"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"raw_payload"})";

// The envelope schema Debezium 2.x's PostgreSQL connector sends with every
// value (JsonConverter, schemas.enable=true), for a table with `columns`.
std::string EnvelopeSchema(std::string_view table, std::string_view columns) {
  return Join(
      {R"({"type":"struct","fields":[)",
       R"({"type":"struct","fields":[)",
       columns,
       R"(],"optional":true,"name":"engagement.public.)",
       table,
       R"(.Value","field":"before"},)",
       R"({"type":"struct","fields":[)",
       columns,
       R"(],"optional":true,"name":"engagement.public.)",
       table,
       R"(.Value","field":"after"},)",
       R"({"type":"struct","fields":[)",
       R"({"type":"string","optional":false,"field":"version"},)",
       R"({"type":"string","optional":false,"field":"connector"},)",
       R"({"type":"string","optional":false,"field":"name"},)",
       R"({"type":"int64","optional":false,"field":"ts_ms"},)",
       R"({"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,)",
       R"("parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},)",
       R"({"type":"string","optional":false,"field":"db"},)",
       R"({"type":"string","optional":true,"field":"sequence"},)",
       R"({"type":"string","optional":false,"field":"schema"},)",
       R"({"type":"string","optional":false,"field":"table"},)",
       R"({"type":"int64","optional":true,"field":"txId"},)",
       R"({"type":"int64","optional":true,"field":"lsn"},)",
       R"({"type":"int64","optional":true,"field":"xmin"}],)",
       R"("optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},)",
       R"({"type":"string","optional":false,"field":"op"},)",
       R"({"type":"int64","optional":true,"field":"ts_ms"},)",
       R"({"type":"struct","fields":[)",
       R"({"type":"string","optional":false,"field":"id"},)",
       R"({"type":"int64","optional":false,"field":"total_order"},)",
       R"({"type":"int64","optional":false,"field":"data_collection_order"}],)",
       R"("optional":true,"name":"event.block","version":1,"field":"transaction"}],)",
       R"("optional":false,"name":"engagement.public.)",
       table,
       R"(.Envelope","version":1})"});
}

std::string Wrap(std::string_view schema, std::string_view payload) {
  return Join({R"({"schema":)", schema, R"(,"payload":)", payload, "}"});
}

std::string ContentSource(std::string_view snapshot = "false") {
  return Join({R"({"version":"2.5.0.Final","connector":"postgresql","name":"engagement",)",
               R"("ts_ms":1709285400456,"snapshot":")", snapshot,
               R"(","db":"app","sequence":"[\"24023128\",\"24023304\"]","schema":"public",)",
               R"("table":"content","txId":771,"lsn":24023304,"xmin":null})"});
}

constexpr std::string_view kEpisodeRow =
    R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10","slug":"ep-42-streaming",)"
    R"("title":"Episode 42: Streams, \"exactly once\"","content_type":"podcast",)"
    R"("length_seconds":2730,"publish_ts":"2024-03-01T09:30:00.123456Z"})";

Content Episode() {
  return {.id = "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10",
          .slug = "ep-42-streaming",
          .title = "Episode 42: Streams, \"exactly once\"",
          .content_type = "podcast",
          .length_seconds = 2730,
          .publish_ts_ms = 1709285400123};
}

std::string ContentPayload(std::string_view op, std::string_view before, std::string_view after,
                           std::string_view snapshot = "false") {
  return Join({R"({"before":)", before, R"(,"after":)", after, R"(,"source":)",
               ContentSource(snapshot), R"(,"op":")", op,
               R"(","ts_ms":1709285400789,"transaction":null})"});
}

std::string ContentMessage(std::string_view op, std::string_view before, std::string_view after,
                           std::string_view snapshot = "false") {
  return Wrap(EnvelopeSchema("content", kContentColumns),
              ContentPayload(op, before, after, snapshot));
}

Decoder<Content> ContentDecoder(DecoderOptions options = {}) {
  absl::StatusOr<Decoder<Content>> decoder = Decoder<Content>::Create(ContentFields(), options);
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  return *std::move(decoder);
}

Decoder<EngagementEvent> EngagementDecoder() {
  absl::StatusOr<Decoder<EngagementEvent>> decoder =
      Decoder<EngagementEvent>::Create(EngagementFields());
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  return *std::move(decoder);
}

TEST(DebeziumContent, CreateWithSchema) {
  Decoder<Content> decoder = ContentDecoder();
  absl::StatusOr<Change<Content>> change = decoder.Decode(ContentMessage("c", "null", kEpisodeRow));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kCreate);
  EXPECT_FALSE(change->before.has_value());
  ASSERT_TRUE(change->after.has_value());
  EXPECT_EQ(*change->after, Episode());
  EXPECT_EQ(change->row(), &*change->after);
  EXPECT_EQ(change->ts_ms, 1709285400789);
  EXPECT_EQ(change->source.version, "2.5.0.Final");
  EXPECT_EQ(change->source.connector, "postgresql");
  EXPECT_EQ(change->source.name, "engagement");
  EXPECT_EQ(change->source.db, "app");
  EXPECT_EQ(change->source.schema, "public");
  EXPECT_EQ(change->source.table, "content");
  EXPECT_EQ(change->source.snapshot, "false");
  EXPECT_EQ(change->source.ts_ms, 1709285400456);
  EXPECT_EQ(change->source.lsn, 24023304);
  EXPECT_EQ(change->source.tx_id, 771);
  EXPECT_FALSE(change->is_tombstone());
}

TEST(DebeziumContent, SnapshotRead) {
  Decoder<Content> decoder = ContentDecoder();
  absl::StatusOr<Change<Content>> change =
      decoder.Decode(ContentMessage("r", "null", kEpisodeRow, "last"));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kRead);
  EXPECT_EQ(change->source.snapshot, "last");
  EXPECT_EQ(*change->after, Episode());
}

TEST(DebeziumContent, UpdateWithDefaultReplicaIdentityHasNoBefore) {
  Decoder<Content> decoder = ContentDecoder();
  const std::string renamed = Join(
      {R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10","slug":"ep-42-streaming",)",
       R"json("title":"Episode 42 (remastered)","content_type":"podcast","length_seconds":null,)json",
       R"("publish_ts":"2024-03-01T10:30:00+01:00"})"});
  absl::StatusOr<Change<Content>> change = decoder.Decode(ContentMessage("u", "null", renamed));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kUpdate);
  EXPECT_FALSE(change->before.has_value());
  EXPECT_EQ(change->after->title, "Episode 42 (remastered)");
  EXPECT_EQ(change->after->length_seconds, std::nullopt);
  EXPECT_EQ(change->after->publish_ts_ms, 1709285400000);
}

TEST(DebeziumContent, UpdateWithFullReplicaIdentityHasBefore) {
  Decoder<Content> decoder = ContentDecoder({.strict_before = true});
  const std::string longer =
      Join({R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10","slug":"ep-42-streaming",)",
            R"("title":"Episode 42: Streams, \"exactly once\"","content_type":"podcast",)",
            R"("length_seconds":2790,"publish_ts":"2024-03-01T09:30:00.123456Z"})"});
  absl::StatusOr<Change<Content>> change = decoder.Decode(ContentMessage("u", kEpisodeRow, longer));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(*change->before, Episode());
  EXPECT_EQ(change->after->length_seconds, 2790);
}

TEST(DebeziumContent, DeleteWithKeyOnlyBefore) {
  // REPLICA IDENTITY DEFAULT: the before image has the key; the other
  // columns are null even where the table says NOT NULL.
  Decoder<Content> decoder = ContentDecoder();
  constexpr std::string_view kKeyOnly =
      R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10","slug":null,"title":null,)"
      R"("content_type":null,"length_seconds":null,"publish_ts":null})";
  absl::StatusOr<Change<Content>> change = decoder.Decode(ContentMessage("d", kKeyOnly, "null"));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kDelete);
  EXPECT_FALSE(change->after.has_value());
  ASSERT_TRUE(change->before.has_value());
  EXPECT_EQ(change->before->id, "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10");
  EXPECT_EQ(change->before->slug, "");
  EXPECT_EQ(change->row(), &*change->before);

  // Only the key, the other columns absent.
  change = decoder.Decode(
      ContentMessage("d", R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10"})", "null"));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->before->id, "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10");

  // With strict_before (REPLICA IDENTITY FULL expected) that is an error.
  Decoder<Content> strict = ContentDecoder({.strict_before = true});
  ExpectError(strict.Decode(ContentMessage("d", kKeyOnly, "null")).status(),
              absl::StatusCode::kInvalidArgument,
              R"(before: field "slug": required, but the value is null)");
  // REPLICA IDENTITY NOTHING: no before at all.
  change = decoder.Decode(ContentMessage("d", "null", "null"));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->row(), nullptr);
}

TEST(DebeziumContent, DeleteIsFollowedByATombstone) {
  Decoder<Content> decoder = ContentDecoder();
  for (std::string_view tombstone :
       {std::string_view(""), std::string_view("null"), std::string_view("  null\n"),
        std::string_view(" \t\r\n"), std::string_view(R"({"schema":null,"payload":null})")}) {
    absl::StatusOr<Change<Content>> change = decoder.Decode(tombstone);
    ASSERT_TRUE(change.ok()) << change.status() << " for '" << tombstone << "'";
    EXPECT_EQ(change->op, Op::kTombstone);
    EXPECT_TRUE(change->is_tombstone());
    EXPECT_FALSE(change->before.has_value());
    EXPECT_FALSE(change->after.has_value());
    EXPECT_EQ(change->row(), nullptr);
  }
}

TEST(DebeziumContent, Truncate) {
  // Truncate events have neither before nor after.
  Decoder<Content> decoder = ContentDecoder();
  const std::string truncate =
      Wrap(EnvelopeSchema("content", kContentColumns),
           Join({R"({"source":)", ContentSource(), R"(,"op":"t","ts_ms":1709285400999})"}));
  absl::StatusOr<Change<Content>> change = decoder.Decode(truncate);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kTruncate);
  EXPECT_EQ(change->source.table, "content");
  EXPECT_EQ(change->row(), nullptr);
  EXPECT_EQ(change->ts_ms, 1709285400999);

  // Also with explicit nulls, and without the wrapper.
  change = decoder.Decode(ContentPayload("t", "null", "null"));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kTruncate);
}

TEST(DebeziumContent, BothEnvelopeStylesDecodeAlike) {
  Decoder<Content> decoder = ContentDecoder();
  for (std::string_view op : {"c", "u", "r"}) {
    absl::StatusOr<Change<Content>> wrapped =
        decoder.Decode(ContentMessage(op, "null", kEpisodeRow));
    absl::StatusOr<Change<Content>> bare = decoder.Decode(ContentPayload(op, "null", kEpisodeRow));
    ASSERT_TRUE(wrapped.ok()) << wrapped.status();
    ASSERT_TRUE(bare.ok()) << bare.status();
    EXPECT_EQ(*wrapped, *bare);
  }
}

TEST(DebeziumContent, OpNames) {
  EXPECT_EQ(OpName(Op::kCreate), "c");
  EXPECT_EQ(OpName(Op::kUpdate), "u");
  EXPECT_EQ(OpName(Op::kDelete), "d");
  EXPECT_EQ(OpName(Op::kRead), "r");
  EXPECT_EQ(OpName(Op::kTruncate), "t");
  EXPECT_EQ(OpName(Op::kTombstone), "tombstone");
}

// An insert into engagement_events with schemas.enable=false, as the
// connector sends it.
constexpr std::string_view kPlayEvent = R"({
  "before": null,
  "after": {
    "id": 90017,
    "content_id": "6F1B0C56-3F0E-4C1C-9B7A-2F4D8E2A9C10",
    "user_id": "0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77",
    "event_type": "play",
    "event_ts": "2024-05-20T14:03:07.987654Z",
    "duration_ms": null,
    "device": "ios",
    "raw_payload": "{\"position_ms\": 0, \"app\": {\"version\": \"5.2.1\"}, \"tags\": [\"a\", \"b\"]}"
  },
  "source": {
    "version": "2.5.0.Final", "connector": "postgresql", "name": "engagement",
    "ts_ms": 1716213788001, "snapshot": "false", "db": "app",
    "sequence": "[\"24100000\",\"24100312\"]", "schema": "public", "table": "engagement_events",
    "txId": 9911, "lsn": 24100312, "xmin": null
  },
  "op": "c",
  "ts_ms": 1716213788120,
  "transaction": null
})";

TEST(DebeziumEngagement, InsertWithoutSchema) {
  Decoder<EngagementEvent> decoder = EngagementDecoder();
  absl::StatusOr<Change<EngagementEvent>> change = decoder.Decode(kPlayEvent);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kCreate);
  const EngagementEvent& event = *change->after;
  EXPECT_EQ(event.id, 90017);
  EXPECT_EQ(event.content_id, "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10");  // canonical lower case
  EXPECT_EQ(event.user_id, "0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77");
  EXPECT_EQ(event.event_type, "play");
  EXPECT_EQ(event.event_ts_ms, 1716213787987);  // micros floored to millis
  EXPECT_EQ(event.duration_ms, std::nullopt);
  EXPECT_EQ(event.device, "ios");
  // JSONB is kept as the database rendered it.
  EXPECT_EQ(event.raw_payload,
            R"({"position_ms": 0, "app": {"version": "5.2.1"}, "tags": ["a", "b"]})");
  EXPECT_EQ(change->source.table, "engagement_events");
  EXPECT_EQ(change->source.lsn, 24100312);
}

TEST(DebeziumEngagement, InsertsWithSchema) {
  Decoder<EngagementEvent> decoder = EngagementDecoder();
  const std::string schema = EnvelopeSchema("engagement_events", kEngagementColumns);
  const std::string source =
      R"({"version":"2.5.0.Final","connector":"postgresql","name":"engagement",)"
      R"("ts_ms":1716213912100,"snapshot":"false","db":"app","sequence":null,)"
      R"("schema":"public","table":"engagement_events","txId":9920,"lsn":24100990,"xmin":null})";
  struct Case {
    std::string_view after;
    EngagementEvent want;
  };
  const Case cases[] = {
      {R"({"id":90018,"content_id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10",)"
       R"("user_id":"0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77","event_type":"pause",)"
       R"("event_ts":"2024-05-20T14:05:12.001Z","duration_ms":124013,"device":"ios",)"
       R"("raw_payload":"{\"position_ms\": 124013}"})",
       {90018, "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10", "0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77",
        "pause", 1716213912001, 124013, "ios", R"({"position_ms": 124013})"}},
      {R"({"id":90019,"content_id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10",)"
       R"("user_id":"0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77","event_type":"finish",)"
       R"("event_ts":"2024-05-20T14:05:12.000001Z","duration_ms":2730000,"device":"web",)"
       R"("raw_payload":null})",
       {90019, "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10", "0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77",
        "finish", 1716213912000, 2730000, "web", std::nullopt}},
      {R"({"id":90020,"content_id":"9d3e7a10-5b2c-4f6e-a1d8-0c4b7e9f2a31",)"
       R"("user_id":"0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77","event_type":"click",)"
       R"("event_ts":"2024-01-15T08:00:00Z","duration_ms":null,"device":"android",)"
       R"("raw_payload":"{\"target\": \"subscribe\", \"utm\": null}"})",
       {90020, "9d3e7a10-5b2c-4f6e-a1d8-0c4b7e9f2a31", "0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77",
        "click", 1705305600000, std::nullopt, "android",
        R"({"target": "subscribe", "utm": null})"}},
  };
  for (const Case& c : cases) {
    const std::string message =
        Wrap(schema, Join({R"({"before":null,"after":)", c.after, R"(,"source":)", source,
                           R"(,"op":"c","ts_ms":1716213912200,"transaction":null})"}));
    absl::StatusOr<Change<EngagementEvent>> change = decoder.Decode(message);
    ASSERT_TRUE(change.ok()) << change.status();
    EXPECT_EQ(*change->after, c.want);
    EXPECT_EQ(change->source.tx_id, 9920);
  }
}

TEST(DebeziumEngagement, WrongTypeNamesTheField) {
  Decoder<EngagementEvent> decoder = EngagementDecoder();
  std::string message(kPlayEvent);
  message.replace(message.find(R"("duration_ms": null)"), 19, R"("duration_ms": "abc")");
  ExpectError(decoder.Decode(message).status(), absl::StatusCode::kInvalidArgument,
              R"(after: field "duration_ms": expected integer, got string "abc")");
}

TEST(DebeziumEngagement, KeysAndFlattenedRows) {
  // Kafka record keys, with and without the schema wrapper.
  struct Key {
    std::string id;
  };
  absl::StatusOr<Decoder<Key>> decoder =
      Decoder<Key>::Create(Fields<Key>().Required("id", &Key::id, Uuid()));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  absl::StatusOr<std::optional<Key>> key = decoder->DecodeRow(
      R"({"schema":{"type":"struct","fields":[{"type":"string","optional":false,)"
      R"("name":"io.debezium.data.Uuid","version":1,"field":"id"}],"optional":false,)"
      R"("name":"engagement.public.content.Key"},)"
      R"("payload":{"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10"}})");
  ASSERT_TRUE(key.ok()) << key.status();
  ASSERT_TRUE(key->has_value());
  EXPECT_EQ((*key)->id, "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10");
  key = decoder->DecodeRow(R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10"})");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ((*key)->id, "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10");
  key = decoder->DecodeRow("");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_FALSE(key->has_value());
  ExpectError(decoder->DecodeRow(R"({"uuid":"x"})").status(), absl::StatusCode::kInvalidArgument,
              R"(field "id": required, but missing)");

  // A value flattened by ExtractNewRecordState, and a table whose columns
  // happen to be called "schema" and "payload" (not a wrapper: more keys).
  absl::StatusOr<Decoder<EngagementEvent>> events =
      Decoder<EngagementEvent>::Create(EngagementFields());
  ASSERT_TRUE(events.ok());
  absl::StatusOr<std::optional<EngagementEvent>> row = events->DecodeRow(
      R"({"id":5,"content_id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10",)"
      R"("user_id":"0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77","event_type":"play",)"
      R"("event_ts":"2024-05-20T14:03:07.25Z","device":"tv","schema":{"x":1},"payload":null})");
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ((*row)->event_ts_ms, 1716213787250);
  EXPECT_EQ((*row)->device, "tv");
}

// ---------------------------------------------------------------------------
// Types, one column at a time
// ---------------------------------------------------------------------------

template <class V>
struct Holder {
  V v{};
};

// A create event whose row is {"v": <value>}: bare, or wrapped with a
// schema whose only column is `column` (a Kafka Connect field schema).
std::string OneColumn(std::string_view value, std::string_view column = {}) {
  const std::string payload =
      Join({R"({"before":null,"after":{"v":)", value,
            R"(},"source":{"connector":"postgresql","table":"t"},"op":"c","ts_ms":1})"});
  if (column.empty()) return payload;
  return Wrap(EnvelopeSchema("t", column), payload);
}

// {"type": <type>, "name": <name>, "parameters": <parameters>, "field": "v"}
std::string Column(std::string_view type, std::string_view name = {},
                   std::string_view parameters = {}) {
  std::string out = Join({R"({"type":")", type, R"(","optional":true)"});
  if (!name.empty()) out += Join({R"(,"name":")", name, R"(","version":1)"});
  if (!parameters.empty()) out += Join({R"(,"parameters":)", parameters});
  return out + R"(,"field":"v"})";
}

template <class V, class... Type>
absl::StatusOr<V> DecodeOne(std::string_view value, std::string_view column, Type... type) {
  absl::StatusOr<Decoder<Holder<V>>> decoder =
      Decoder<Holder<V>>::Create(Fields<Holder<V>>().Required("v", &Holder<V>::v, type...));
  if (!decoder.ok()) return decoder.status();
  absl::StatusOr<Change<Holder<V>>> change = decoder->Decode(OneColumn(value, column));
  if (!change.ok()) return change.status();
  return change->after->v;
}

template <class V, class... Type>
absl::StatusOr<V> DecodeBare(std::string_view value, Type... type) {
  return DecodeOne<V>(value, {}, type...);
}

// The `source` block: every field SourceInfo keeps, from either connector
// (snapshot as a boolean too); other fields, including ones of the same
// length as a known name, are checked and ignored; a known field of the
// wrong type is an error naming it.
TEST(DebeziumEnvelope, SourceBlockFieldsOfEachConnector) {
  absl::StatusOr<Decoder<Holder<int64_t>>> decoder = Decoder<Holder<int64_t>>::Create(
      Fields<Holder<int64_t>>().Required("v", &Holder<int64_t>::v));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  auto envelope = [](std::string_view source) {
    return Join({R"({"before":null,"after":{"v":1},"source":)", source, R"(,"op":"c","ts_ms":5})"});
  };
  absl::StatusOr<Change<Holder<int64_t>>> mysql = decoder->Decode(envelope(
      R"({"version":"2.5.0.Final","connector":"mysql","name":"shop","ts_ms":1709285400000,)"
      R"("snapshot":true,"db":"inventory","sequence":"[\"1\",\"2\"]","table":"orders",)"
      R"("server_id":223344,"gtid":"3e11fa47-71ca-11e1-9e33-c80aa9429562:23",)"
      R"("file":"mysql-bin.000007","pos":4711,"row":2,"thread":7,"query":null,)"
      R"("dbx":"no","lsm":1,"Table":"no","ts_us":1709285400000000,"serverid":1})"));
  ASSERT_TRUE(mysql.ok()) << mysql.status();
  const SourceInfo expected_mysql{.version = "2.5.0.Final",
                                  .connector = "mysql",
                                  .name = "shop",
                                  .db = "inventory",
                                  .table = "orders",
                                  .snapshot = "true",
                                  .ts_ms = 1709285400000,
                                  .file = "mysql-bin.000007",
                                  .pos = 4711,
                                  .row = 2,
                                  .gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
                                  .server_id = 223344};
  EXPECT_EQ(mysql->source, expected_mysql);

  absl::StatusOr<Change<Holder<int64_t>>> postgres = decoder->Decode(
      envelope(R"({"version":"2.5.0.Final","connector":"postgresql","name":"app","ts_ms":17,)"
               R"("snapshot":"last","db":"app","schema":"public","table":"content","txId":771,)"
               R"("lsn":24023304,"xmin":null})"));
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  const SourceInfo expected_postgres{.version = "2.5.0.Final",
                                     .connector = "postgresql",
                                     .name = "app",
                                     .db = "app",
                                     .schema = "public",
                                     .table = "content",
                                     .snapshot = "last",
                                     .ts_ms = 17,
                                     .lsn = 24023304,
                                     .tx_id = 771};
  EXPECT_EQ(postgres->source, expected_postgres);

  ExpectError(decoder->Decode(envelope(R"({"pos":"4711"})")).status(),
              absl::StatusCode::kInvalidArgument, R"(source: field "pos": expected integer)");
  ExpectError(decoder->Decode(envelope(R"({"table":7})")).status(),
              absl::StatusCode::kInvalidArgument, R"(source: field "table": expected string)");
  EXPECT_EQ(decoder->Decode(envelope(R"({"lsm":"1x"})")).status().code(), absl::StatusCode::kOk);
  EXPECT_EQ(decoder->Decode(envelope(R"({"lsm":1x})")).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(DebeziumTypes, Integers) {
  EXPECT_EQ(DecodeBare<int64_t>("9223372036854775807").value(),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(DecodeBare<int64_t>("-9223372036854775808").value(),
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(DecodeBare<int32_t>("-2147483648").value(), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(DecodeBare<int16_t>("32767").value(), 32767);
  EXPECT_EQ(DecodeBare<int8_t>("-128").value(), -128);
  EXPECT_EQ(DecodeBare<uint64_t>("18446744073709551615").value(),
            std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(DecodeBare<uint8_t>("255").value(), 255);
  EXPECT_EQ(DecodeOne<int32_t>("7", Column("int32")).value(), 7);

  ExpectError(DecodeBare<int32_t>("2147483648").status(), absl::StatusCode::kInvalidArgument,
              R"(field "v": 2147483648 out of range for int32)");
  ExpectError(DecodeBare<int64_t>("9223372036854775808").status(),
              absl::StatusCode::kInvalidArgument, "out of range for int64");
  ExpectError(DecodeBare<uint32_t>("-1").status(), absl::StatusCode::kInvalidArgument,
              "-1 out of range for uint32");
  ExpectError(DecodeBare<int64_t>("123456789012345678901234567890123456789012").status(),
              absl::StatusCode::kInvalidArgument, "out of range");
  ExpectError(DecodeBare<int32_t>("1.5").status(), absl::StatusCode::kInvalidArgument,
              R"(field "v": expected integer, got number 1.5)");
  ExpectError(DecodeBare<int32_t>("1e3").status(), absl::StatusCode::kInvalidArgument,
              "expected integer, got number 1e3");
  ExpectError(DecodeBare<int32_t>(R"("12")").status(), absl::StatusCode::kInvalidArgument,
              R"(expected integer, got string "12")");
  ExpectError(DecodeBare<int32_t>("true").status(), absl::StatusCode::kInvalidArgument,
              "expected integer, got boolean true");
  ExpectError(DecodeBare<int32_t>("[1]").status(), absl::StatusCode::kInvalidArgument,
              "expected integer, got array");
  ExpectError(DecodeBare<int32_t>(R"({"a":1})").status(), absl::StatusCode::kInvalidArgument,
              "expected integer, got object");
}

// Integers that fit an int64, strings and keys without a backslash are read
// from the message's text in place; everything else takes the general path.
// Both must give the same values and reject the same text.
TEST(DebeziumTypes, TextReadInPlaceMeansWhatUnescapingMeans) {
  // Integers at the edge of the one-pass reader.
  EXPECT_EQ(DecodeBare<int64_t>("999999999999999999").value(), 999'999'999'999'999'999);
  EXPECT_EQ(DecodeBare<int64_t>("-999999999999999999").value(), -999'999'999'999'999'999);
  EXPECT_EQ(DecodeBare<int64_t>("1000000000000000000").value(), 1'000'000'000'000'000'000);
  // 19 digits: read in one pass up to int64's limits, on the general path
  // beyond them.
  EXPECT_EQ(DecodeBare<int64_t>("1234567890123456789").value(), 1'234'567'890'123'456'789);
  EXPECT_EQ(DecodeBare<int64_t>("-1234567890123456789").value(), -1'234'567'890'123'456'789);
  EXPECT_EQ(DecodeBare<int64_t>("9223372036854775806").value(),
            std::numeric_limits<int64_t>::max() - 1);
  EXPECT_EQ(DecodeBare<int64_t>("-9223372036854775807").value(),
            std::numeric_limits<int64_t>::min() + 1);
  EXPECT_EQ(DecodeBare<int64_t>("-9223372036854775808 ").value(),
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(DecodeBare<uint64_t>("9223372036854775808").value(), uint64_t{1} << 63);
  EXPECT_EQ(DecodeBare<uint64_t>("9999999999999999999").value(), 9'999'999'999'999'999'999u);
  EXPECT_EQ(DecodeBare<uint64_t>("10000000000000000000").value(), 10'000'000'000'000'000'000u);
  for (const char* beyond : {"9223372036854775808", "-9223372036854775809", "9999999999999999999",
                             "-9999999999999999999", "10000000000000000000"}) {
    ExpectError(DecodeBare<int64_t>(beyond).status(), absl::StatusCode::kInvalidArgument,
                "out of range for int64");
  }
  ExpectError(DecodeBare<int32_t>("1234567890123456789").status(),
              absl::StatusCode::kInvalidArgument, "1234567890123456789 out of range for int32");
  // Eight digits at a time, then one at a time.
  for (const int64_t expected : {int64_t{12345678}, int64_t{987654321}, int64_t{1234567890123456},
                                 int64_t{90817263544536271}, int64_t{10000000}, int64_t{99999999},
                                 int64_t{1716213787987}, int64_t{7}}) {
    EXPECT_EQ(DecodeBare<int64_t>(std::to_string(expected)).value(), expected);
    EXPECT_EQ(DecodeBare<int64_t>(std::to_string(-expected)).value(), -expected);
  }
  EXPECT_EQ(DecodeBare<int64_t>("0").value(), 0);
  EXPECT_EQ(DecodeBare<int64_t>("-0").value(), 0);
  EXPECT_EQ(DecodeBare<int64_t>(" 42 ").value(), 42);
  EXPECT_EQ(DecodeBare<int64_t>("42\n").value(), 42);
  ExpectError(DecodeBare<int32_t>("999999999999999999").status(),
              absl::StatusCode::kInvalidArgument, "999999999999999999 out of range for int32");
  ExpectError(DecodeBare<uint8_t>("-5").status(), absl::StatusCode::kInvalidArgument,
              "-5 out of range for uint8");
  for (const char* bad : {"007", "-", "-01", "1-2", "12a", "1234567a", "12345678a",
                          "123456789:", "12345678/", "1234567812345678x", "1234567890123456789x",
                          "-1234567890123456789x", "0123456789012345678"}) {
    EXPECT_EQ(DecodeBare<int64_t>(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
  ExpectError(DecodeBare<int64_t>("\"12\"").status(), absl::StatusCode::kInvalidArgument,
              R"(expected integer, got string "12")");

  // Strings: raw text and escapes give the same value.
  EXPECT_EQ(DecodeBare<std::string>(R"("ios")").value(), "ios");
  EXPECT_EQ(DecodeBare<std::string>(R"("\u0069os")").value(), "ios");
  EXPECT_EQ(DecodeBare<std::string>(R"("a\"b")").value(), "a\"b");
  EXPECT_EQ(DecodeBare<std::string>(R"("")").value(), "");
  // An escape anywhere in short and long strings takes the general path.
  for (size_t size = 1; size <= 40; ++size) {
    for (size_t at = 0; at < size; ++at) {
      std::string text(size, 'a');
      std::string json = "\"" + text + "\"";
      json.replace(at + 1, 1, "\\u0062");  // 'b', escaped
      text[at] = 'b';
      EXPECT_EQ(DecodeBare<std::string>(json).value(), text) << json;
    }
  }
  ExpectError(DecodeBare<std::string>("17").status(), absl::StatusCode::kInvalidArgument,
              "expected string, got number 17");

  // An escaped key names the same column, in a row and in the source block.
  absl::StatusOr<Decoder<Holder<std::string>>> decoder = Decoder<Holder<std::string>>::Create(
      Fields<Holder<std::string>>().Required("v", &Holder<std::string>::v));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  absl::StatusOr<Change<Holder<std::string>>> change = decoder->Decode(
      R"({"before":null,"after":{"\u0076":"x"},"source":{"t\u0061ble":"t","lsn":7},"op":"c"})");
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->after->v, "x");
  EXPECT_EQ(change->source.table, "t");
  EXPECT_EQ(change->source.lsn, 7);
  // An escape anywhere in short and long keys, and keys without one next to
  // values with one (the check for a backslash reads whole 16-byte blocks).
  for (size_t size = 1; size <= 40; ++size) {
    const std::string name(size, 'k');
    absl::StatusOr<Decoder<Holder<std::string>>> named = Decoder<Holder<std::string>>::Create(
        Fields<Holder<std::string>>().Required(name, &Holder<std::string>::v));
    ASSERT_TRUE(named.ok()) << named.status();
    for (size_t at = 0; at < size; ++at) {
      std::string key = name;
      key.replace(at, 1, "\\u006b");  // 'k', escaped
      const std::string json = "{\"after\":{\"" + key + "\":\"x\"},\"op\":\"c\"}";
      absl::StatusOr<Change<Holder<std::string>>> read = named->Decode(json);
      ASSERT_TRUE(read.ok()) << json << ": " << read.status();
      EXPECT_EQ(read->after->v, "x") << json;
    }
    const std::string json = "{\"after\":{\"" + name + "\":\"\\u0078\"},\"op\":\"c\"}";
    absl::StatusOr<Change<Holder<std::string>>> read = named->Decode(json);
    ASSERT_TRUE(read.ok()) << json << ": " << read.status();
    EXPECT_EQ(read->after->v, "x") << json;
  }

  // A control character must be escaped in JSON: raw in a value read in
  // place, in a key, in the source block or in a value nobody reads, it is
  // malformed JSON all the same.
  for (const std::string& bad : {
           std::string("{\"before\":null,\"after\":{\"v\":\"a\x01b\"},\"op\":\"c\"}"),
           std::string("{\"before\":null,\"after\":{\"v\":\"a\nb\"},\"op\":\"c\"}"),
           std::string("{\"before\":null,\"after\":{\"v\x02\":\"a\",\"v\":\"b\"},\"op\":\"c\"}"),
           std::string("{\"after\":{\"v\":\"a\"},\"source\":{\"table\":\"t\x1f\"},\"op\":\"c\"}"),
           std::string("{\"after\":{\"v\":\"a\",\"w\":\"\x7f\x03\"},\"op\":\"c\"}"),
       }) {
    SCOPED_TRACE(absl::CEscape(bad));
    ExpectError(decoder->Decode(bad).status(), absl::StatusCode::kDataLoss, "unescaped characters");
  }
}

// DecodeInto (what the Kafka source uses, into a batch's new slot) gives what
// Decode gives, for rows, deletes, tombstones and errors alike.
TEST(DebeziumTypes, DecodeIntoGivesWhatDecodeGives) {
  absl::StatusOr<Decoder<Holder<std::string>>> decoder = Decoder<Holder<std::string>>::Create(
      Fields<Holder<std::string>>().Required("v", &Holder<std::string>::v));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  for (const std::string& json : std::vector<std::string>{
           R"({"before":null,"after":{"v":"x"},"source":{"table":"t","lsn":7},"op":"c","ts_ms":5})",
           R"({"before":{"v":"x"},"after":null,"source":{"table":"t"},"op":"d"})",
           R"({"schema":null,"payload":{"before":{"v":"a"},"after":{"v":"b"},"op":"u"}})", "",
           "null", R"({"before":null,"after":{"v":17},"op":"c"})", R"({"after":)"}) {
    SCOPED_TRACE(json);
    absl::StatusOr<Change<Holder<std::string>>> decoded = decoder->Decode(json);
    Change<Holder<std::string>> in_place;
    absl::Status status = decoder->DecodeInto(json, in_place);
    EXPECT_EQ(status, decoded.status());
    if (status.ok()) {
      EXPECT_EQ(in_place.op, decoded->op);
      EXPECT_EQ(in_place.ts_ms, decoded->ts_ms);
      EXPECT_EQ(in_place.source, decoded->source);
      ASSERT_EQ(in_place.before.has_value(), decoded->before.has_value());
      if (in_place.before) {
        EXPECT_EQ(in_place.before->v, decoded->before->v);
      }
      ASSERT_EQ(in_place.after.has_value(), decoded->after.has_value());
      if (in_place.after) {
        EXPECT_EQ(in_place.after->v, decoded->after->v);
      }
    }
  }
}

// Columns are matched by their position in the previous row first: rows
// whose columns come in another order, with undeclared columns in between
// or with fewer columns, must still give each field its own value.
struct Three {
  int64_t a = 0;
  std::string b;
  std::optional<int64_t> c;
};

TEST(DebeziumTypes, ColumnsInAnyOrderGiveTheirOwnValues) {
  absl::StatusOr<Decoder<Three>> decoder = Decoder<Three>::Create(
      Fields<Three>().Required("a", &Three::a).Required("b", &Three::b).Optional("c", &Three::c));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  struct Case {
    std::string after;
    int64_t a;
    std::string b;
    std::optional<int64_t> c;
  };
  const std::vector<Case> cases = {
      {R"({"a":1,"b":"x","c":3})", 1, "x", 3},
      {R"({"c":6,"a":4,"b":"y"})", 4, "y", 6},
      {R"({"a":7,"b":"z","c":9})", 7, "z", 9},
      {R"({"x":0,"a":10,"b":"w"})", 10, "w", std::nullopt},
      {R"({"b":"v","a":13})", 13, "v", std::nullopt},
      {R"({"b":"u","x":"a","a":16,"c":18})", 16, "u", 18},
      {R"({"a":19,"b":"t","c":21})", 19, "t", 21},
  };
  for (int round = 0; round < 2; ++round) {
    for (const Case& c : cases) {
      SCOPED_TRACE(c.after);
      absl::StatusOr<Change<Three>> change =
          decoder->Decode(absl::StrCat(R"({"before":null,"after":)", c.after, R"(,"op":"c"})"));
      ASSERT_TRUE(change.ok()) << change.status();
      EXPECT_EQ(change->after->a, c.a);
      EXPECT_EQ(change->after->b, c.b);
      EXPECT_EQ(change->after->c, c.c);
    }
  }
}

TEST(DebeziumTypes, FloatsAndBooleans) {
  EXPECT_EQ(DecodeBare<double>("1.25").value(), 1.25);
  EXPECT_EQ(DecodeBare<double>("-3").value(), -3.0);
  EXPECT_EQ(DecodeBare<double>("6.02214076e23").value(), 6.02214076e23);
  EXPECT_EQ(DecodeBare<float>("0.5").value(), 0.5f);
  EXPECT_EQ(DecodeOne<double>("2.5", Column("float64")).value(), 2.5);
  // JsonConverter writes non-finite doubles as strings.
  EXPECT_TRUE(std::isnan(DecodeBare<double>(R"("NaN")").value()));
  EXPECT_EQ(DecodeBare<double>(R"("-Infinity")").value(), -std::numeric_limits<double>::infinity());
  ExpectError(DecodeBare<float>("1e39").status(), absl::StatusCode::kInvalidArgument,
              "1e39 out of range for float");
  ExpectError(DecodeBare<double>("1e400").status(), absl::StatusCode::kInvalidArgument,
              "out of range for double");
  ExpectError(DecodeBare<double>(R"("1.5")").status(), absl::StatusCode::kInvalidArgument,
              R"(expected number, got string "1.5")");

  EXPECT_EQ(DecodeBare<bool>("true").value(), true);
  EXPECT_EQ(DecodeBare<bool>("false").value(), false);
  ExpectError(DecodeBare<bool>("1").status(), absl::StatusCode::kInvalidArgument,
              "expected boolean, got number 1");
  ExpectError(DecodeBare<std::string>("1").status(), absl::StatusCode::kInvalidArgument,
              "expected string, got number 1");
  EXPECT_EQ(DecodeBare<std::string>(R"("caf\u00e9 \ud83c\udfa7")").value(),
            "caf\xc3\xa9 \xf0\x9f\x8e\xa7");
}

TEST(DebeziumTypes, Uuids) {
  const std::string uuid_column = Column("string", "io.debezium.data.Uuid");
  EXPECT_EQ(DecodeOne<std::string>(R"("0B6A3C0E-77D4-4D2E-8F52-2C1E0F3B9A77")", uuid_column, Uuid())
                .value(),
            "0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a77");
  const std::array<uint8_t, 16> bytes =
      DecodeBare<std::array<uint8_t, 16>>(R"("00112233-4455-6677-8899-aabbccddeeff")", Uuid())
          .value();
  for (size_t idx = 0; idx < bytes.size(); ++idx) EXPECT_EQ(bytes[idx], idx * 0x11);
  ExpectError(DecodeBare<std::string>(R"("0b6a3c0e77d44d2e8f522c1e0f3b9a77")", Uuid()).status(),
              absl::StatusCode::kInvalidArgument, "is not a UUID");
  ExpectError(DecodeBare<std::string>(R"("0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a7g")", Uuid()).status(),
              absl::StatusCode::kInvalidArgument, "is not a UUID");
  ExpectError(DecodeBare<std::string>(R"("0b6a3c0e7-7d4-4d2e-8f52-2c1e0f3b9a77")", Uuid()).status(),
              absl::StatusCode::kInvalidArgument, "is not a UUID");
  ExpectError(
      DecodeBare<std::string>(R"("0b6a3c0e-77d4-4d2e-8f52-2c1e0f3b9a\u00e9")", Uuid()).status(),
      absl::StatusCode::kInvalidArgument, "is not a UUID");
  ExpectError(DecodeBare<std::string>("17", Uuid()).status(), absl::StatusCode::kInvalidArgument,
              "expected UUID string, got number 17");
}

TEST(DebeziumTypes, TimesFromTheSchema) {
  struct Case {
    std::string_view schema_name;
    std::string_view type;
    std::string_view value;
    EpochTime target;
    int64_t want;
  };
  const Case cases[] = {
      // 2024-03-01 is day 19783.
      {"io.debezium.time.Date", "int32", "19783", EpochMillis(), 19783LL * 86'400'000},
      {"org.apache.kafka.connect.data.Date", "int32", "-1", EpochMicros(), -86'400'000'000LL},
      // 09:30:00.123 past midnight.
      {"io.debezium.time.Time", "int32", "34200123", EpochMicros(), 34'200'123'000LL},
      {"io.debezium.time.MicroTime", "int64", "34200123456", EpochMillis(), 34'200'123LL},
      {"io.debezium.time.NanoTime", "int64", "34200123456789", EpochMicros(), 34'200'123'456LL},
      {"io.debezium.time.Timestamp", "int64", "1709285400123", EpochMicros(),
       1'709'285'400'123'000LL},
      {"org.apache.kafka.connect.data.Timestamp", "int64", "1709285400123", EpochMillis(),
       1'709'285'400'123LL},
      {"io.debezium.time.MicroTimestamp", "int64", "1709285400123456", EpochMillis(),
       1'709'285'400'123LL},
      {"io.debezium.time.MicroTimestamp", "int64", "1709285400123456", EpochMicros(),
       1'709'285'400'123'456LL},
      // Before 1970, flooring goes down: -1us is -1ms.
      {"io.debezium.time.MicroTimestamp", "int64", "-1", EpochMillis(), -1},
      {"io.debezium.time.NanoTimestamp", "int64", "1709285400123456789", EpochMicros(),
       1'709'285'400'123'456LL},
      {"io.debezium.time.NanoTimestamp", "int64", "1709285400123456789", EpochNanos(),
       1'709'285'400'123'456'789LL},
      {"io.debezium.time.ZonedTimestamp", "string", R"("2024-03-01T09:30:00.123456Z")",
       EpochMicros(), 1'709'285'400'123'456LL},
      {"io.debezium.time.ZonedTimestamp", "string", R"("2024-03-01T09:30:00.123456Z")",
       EpochSeconds(), 1'709'285'400LL},
      {"io.debezium.time.ZonedTime", "string", R"("09:30:00.5+02:00")", EpochMillis(),
       (7 * 3600 + 30 * 60) * 1000LL + 500},
      {"io.debezium.time.ZonedTime", "string", R"("01:00:00-03:00")", EpochMillis(),
       4 * 3600 * 1000LL},
  };
  for (const Case& c : cases) {
    absl::StatusOr<int64_t> got =
        DecodeOne<int64_t>(c.value, Column(c.type, c.schema_name), c.target);
    ASSERT_TRUE(got.ok()) << got.status() << " for " << c.schema_name << " " << c.value;
    EXPECT_EQ(*got, c.want) << c.schema_name << " " << c.value;
  }
}

TEST(DebeziumTypes, ZonedTimestamps) {
  struct Case {
    std::string_view value;
    int64_t want_micros;
  };
  const Case cases[] = {
      {R"("2024-05-20T14:03:07.25Z")", 1716213787250000},
      {R"("2024-05-20T14:03:06.5Z")", 1716213786500000},
      {R"("2024-05-20T14:03:09.123Z")", 1716213789123000},
      {R"("2024-05-20T14:03:07.250000000Z")", 1716213787250000},
      {R"("2024-05-20T16:03:07.25+02:00")", 1716213787250000},
      {R"("2024-05-20T09:33:07.25-04:30")", 1716213787250000},
      {R"("2024-05-20T16:03:07.25+0200")", 1716213787250000},
      {R"("2024-05-20T14:03Z")", 1716213780000000},
      {R"("2024-02-29T23:59:59Z")", 1709251199000000},
      {R"("1969-12-31T23:59:59.999999Z")", -1},
      {R"("1900-01-01T00:00:00Z")", -2208988800000000},
  };
  for (const Case& c : cases) {
    absl::StatusOr<int64_t> got = DecodeBare<int64_t>(c.value, EpochMicros());
    ASSERT_TRUE(got.ok()) << got.status() << " for " << c.value;
    EXPECT_EQ(*got, c.want_micros) << c.value;
  }
  EXPECT_EQ(DecodeBare<int64_t>(R"("1969-12-31T23:59:59.999999Z")", EpochMillis()).value(), -1);
  for (std::string_view bad :
       {R"("2024-02-30T00:00:00Z")", R"("2023-02-29T00:00:00Z")", R"("2024-05-20T24:00:00Z")",
        R"("2024-05-20T14:03:07")", R"("2024-05-20T14:03:07.1234567890Z")",
        R"("2024-05-20T14:03:07Z junk")", R"("20240520T140307Z")", R"("")"}) {
    ExpectError(DecodeBare<int64_t>(bad, EpochMillis()).status(),
                absl::StatusCode::kInvalidArgument, "is not an ISO-8601 timestamp");
  }
  ExpectError(DecodeBare<int64_t>(R"("infinity")", EpochMillis()).status(),
              absl::StatusCode::kInvalidArgument, "infinite timestamp");
  // A date alone is that day at midnight UTC (as Debezium's Date days are).
  EXPECT_EQ(DecodeBare<int64_t>(R"("2024-05-20")", EpochMillis()).value(), 1716163200000);
  ExpectError(DecodeBare<int64_t>(R"("+999999999-12-31T23:59:59Z")", EpochNanos()).status(),
              absl::StatusCode::kInvalidArgument, "overflows int64");
}

TEST(DebeziumTypes, IntegerTimesWithoutASchemaNeedTheirType) {
  ExpectError(DecodeBare<int64_t>("1709285400123456", EpochMillis()).status(),
              absl::StatusCode::kInvalidArgument, "without a schema: declare its Debezium type");
  EXPECT_EQ(DecodeBare<int64_t>("1709285400123456", EpochMillis(TimeType::kMicroTimestamp)).value(),
            1709285400123);
  EXPECT_EQ(DecodeBare<int64_t>("19783", EpochMillis(TimeType::kDate)).value(),
            19783LL * 86'400'000);
  // The schema wins over the declaration.
  EXPECT_EQ(DecodeOne<int64_t>("1709285400123", Column("int64", "io.debezium.time.Timestamp"),
                               EpochMillis(TimeType::kMicroTimestamp))
                .value(),
            1709285400123);
  ExpectError(DecodeOne<int64_t>(R"("2024-03-01T09:30:00Z")",
                                 Column("int64", "io.debezium.time.MicroTimestamp"), EpochMillis())
                  .status(),
              absl::StatusCode::kInvalidArgument, R"(expected integer, got string)");
  ExpectError(DecodeBare<int64_t>("true", EpochMillis()).status(),
              absl::StatusCode::kInvalidArgument, "got boolean true");
  ExpectError(
      DecodeBare<int64_t>("9223372036854775807", EpochNanos(TimeType::kMicroTimestamp)).status(),
      absl::StatusCode::kInvalidArgument, "overflows int64");
}

const std::string kDecimal2 = Column("bytes", "org.apache.kafka.connect.data.Decimal",
                                     R"({"scale":"2","connect.decimal.precision":"10"})");
const std::string kDecimal3 = Column("bytes", "org.apache.kafka.connect.data.Decimal",
                                     R"({"scale":"3","connect.decimal.precision":"10"})");

TEST(DebeziumDecimals, PreciseMode) {
  // Base64 of the big-endian two's-complement unscaled value.
  EXPECT_EQ(DecodeOne<int64_t>(R"("BNI=")", kDecimal2, Decimal(2)).value(), 1234);  // 12.34
  EXPECT_EQ(DecodeOne<int64_t>(R"("/2o=")", kDecimal2, Decimal(2)).value(), -150);  // -1.50
  EXPECT_EQ(DecodeOne<int32_t>(R"("AIA=")", kDecimal2, Decimal(2)).value(), 128);   // 1.28
  EXPECT_EQ(DecodeOne<int32_t>(R"("gA==")", kDecimal2, Decimal(2)).value(), -128);  // -1.28
  EXPECT_EQ(DecodeOne<int64_t>(R"("AA==")", kDecimal2, Decimal(2)).value(), 0);
  EXPECT_EQ(DecodeOne<int64_t>(R"("BNI=")", kDecimal2, Decimal(4)).value(), 123400);  // rescaled
  EXPECT_EQ(DecodeOne<std::string>(R"("BNI=")", kDecimal2, Decimal()).value(), "12.34");
  EXPECT_EQ(DecodeOne<std::string>(R"("/2o=")", kDecimal2, Decimal()).value(), "-1.50");
  EXPECT_EQ(DecodeOne<std::string>(R"("BNI=")", kDecimal2, Decimal(4)).value(), "12.3400");
  EXPECT_EQ(DecodeOne<double>(R"("BNI=")", kDecimal2, Decimal()).value(), 12.34);
  EXPECT_EQ(DecodeOne<std::string>(R"("J+QbMka+ybFuOYEV")", kDecimal2, Decimal()).value(),
            "123456789012345678901234567.89");

  // Scale 3 into a scale-2 target: exact when the last digit is 0.
  EXPECT_EQ(DecodeOne<int64_t>(R"("A+g=")", kDecimal3, Decimal(2)).value(), 100);  // 1.000
  ExpectError(DecodeOne<int64_t>(R"("A+0=")", kDecimal3, Decimal(2)).status(),     // 1.005
              absl::StatusCode::kInvalidArgument,
              R"(field "v": decimal 1.005 does not fit scale 2 without rounding)");
  ExpectError(DecodeOne<std::string>(R"("A+0=")", kDecimal3, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "does not fit scale 2");
  // Out of range for the member.
  ExpectError(DecodeOne<int64_t>(R"("J+QbMka+ybFuOYEV")", kDecimal2, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument,
              "decimal 123456789012345678901234567.89 out of range for int64 at scale 2");
  ExpectError(DecodeOne<int8_t>(R"("Th8=")", kDecimal2, Decimal(2)).status(),  // 199.99
              absl::StatusCode::kInvalidArgument, "decimal 199.99 out of range for int8");
  EXPECT_EQ(DecodeOne<int64_t>(R"("f/////////8=")",
                               Column("bytes",
                                      "org.apache.kafka.connect.data."
                                      "Decimal",
                                      R"({"scale":"0"})"),
                               Decimal(0))
                .value(),
            std::numeric_limits<int64_t>::max());
  ExpectError(
      DecodeOne<int64_t>(
          R"("AIAAAAAAAAAA")",
          Column("bytes", "org.apache.kafka.connect.data.Decimal", R"({"scale":"0"})"), Decimal(0))
          .status(),
      absl::StatusCode::kInvalidArgument, "out of range for int64");

  // Without a schema the declaration gives the mode and the scale.
  const DecimalMode precise = DecimalMode::kPrecise;
  EXPECT_EQ(DecodeBare<int64_t>(R"("BNI=")", Decimal(2).Mode(precise)).value(), 1234);
  EXPECT_EQ(DecodeBare<std::string>(R"("BNI=")", Decimal(3).Mode(precise)).value(), "1.234");
  ExpectError(DecodeBare<std::string>(R"("BNI=")", Decimal().Mode(precise)).status(),
              absl::StatusCode::kInvalidArgument, "precise decimal without a scale");
  ExpectError(DecodeBare<int64_t>(R"("BNI=")", Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "is ambiguous");
  ExpectError(DecodeOne<int64_t>(R"("not base64!")", kDecimal2, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "is not base64");
  ExpectError(DecodeOne<int64_t>("true", kDecimal2, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument,
              "expected base64 decimal bytes or a number, got boolean true");
}

TEST(DebeziumDecimals, DoubleMode) {
  const std::string column = Column("float64");
  EXPECT_EQ(DecodeOne<int64_t>("12.34", column, Decimal(2)).value(), 1234);
  EXPECT_EQ(DecodeOne<int64_t>("-0.5", column, Decimal(2)).value(), -50);
  EXPECT_EQ(DecodeOne<int64_t>("1E2", column, Decimal(2)).value(), 10000);
  EXPECT_EQ(DecodeBare<int64_t>("12.3", Decimal(2).Mode(DecimalMode::kDouble)).value(), 1230);
  // The JSON text is read exactly, not through a double.
  ExpectError(DecodeOne<int64_t>("1.005", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "decimal 1.005 does not fit scale 2");
  EXPECT_EQ(DecodeOne<double>("0.1", column, Decimal()).value(), 0.1);
  EXPECT_EQ(DecodeOne<double>("0.30000000000000004", column, Decimal()).value(), 0.1 + 0.2);
  ExpectError(DecodeOne<double>("0.1000000000000000000001", column, Decimal()).status(),
              absl::StatusCode::kInvalidArgument, "is not exact as a double");
  ExpectError(DecodeOne<float>("0.1234567891", column, Decimal()).status(),
              absl::StatusCode::kInvalidArgument, "is not exact as a float");
  EXPECT_EQ(DecodeOne<std::string>("1.0E20", column, Decimal()).value(), "100000000000000000000");
  EXPECT_TRUE(std::isnan(DecodeOne<double>(R"("NaN")", column, Decimal()).value()));
  ExpectError(DecodeOne<int64_t>(R"("NaN")", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "is not a finite decimal");
}

TEST(DebeziumDecimals, StringMode) {
  const std::string column = Column("string");
  EXPECT_EQ(DecodeOne<int64_t>(R"("12.30")", column, Decimal(2)).value(), 1230);
  EXPECT_EQ(DecodeOne<std::string>(R"("-0.050")", column, Decimal()).value(), "-0.050");
  EXPECT_EQ(DecodeOne<std::string>(R"("00012.5")", column, Decimal(2)).value(), "12.50");
  ExpectError(DecodeOne<int64_t>(R"("1.005")", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "decimal 1.005 does not fit scale 2");
  ExpectError(DecodeOne<int64_t>(R"("12,30")", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "is not a finite decimal number");
  // Without a schema the declaration says how to read strings.
  EXPECT_EQ(DecodeBare<int64_t>(R"("12.34")", Decimal(2, DecimalMode::kString)).value(), 1234);
  // Double mode sends numbers; a string there is not one.
  ExpectError(DecodeBare<int64_t>(R"("12.34")", Decimal(2).Mode(DecimalMode::kDouble)).status(),
              absl::StatusCode::kInvalidArgument, "expected number");
}

TEST(DebeziumDecimals, VariableScale) {
  // NUMERIC without precision/scale: io.debezium.data.VariableScaleDecimal.
  const std::string column = Join(
      {R"({"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},)",
       R"({"type":"bytes","optional":false,"field":"value"}],"optional":true,)",
       R"("name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"v"})"});
  EXPECT_EQ(DecodeOne<int64_t>(R"({"scale":3,"value":"A+g="})", column, Decimal(2)).value(), 100);
  EXPECT_EQ(DecodeOne<std::string>(R"({"value":"A+0=","scale":3})", column, Decimal()).value(),
            "1.005");
  EXPECT_EQ(DecodeBare<std::string>(R"({"scale":0,"value":"BNI="})",
                                    Decimal().Mode(DecimalMode::kPrecise))
                .value(),
            "1234");
  ExpectError(DecodeOne<int64_t>(R"({"scale":3,"value":"A+0="})", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "does not fit scale 2");
  ExpectError(DecodeOne<int64_t>(R"({"scale":3})", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, R"(needs both "scale" and "value")");
  ExpectError(DecodeOne<int64_t>(R"({"scale":"3","value":"A+0="})", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, R"("scale": expected integer, got string "3")");
}

TEST(DebeziumTypes, JsonColumnsKeepTheirText) {
  const std::string column = Column("string", "io.debezium.data.Json");
  EXPECT_EQ(DecodeOne<std::string>(R"("{\"b\": 2, \"a\": [1, 2.50]}")", column, Json()).value(),
            R"({"b": 2, "a": [1, 2.50]})");
  EXPECT_EQ(DecodeOne<std::string>(R"("[]")", column, Json()).value(), "[]");
  // A converter that embeds the JSON as a value.
  EXPECT_EQ(DecodeBare<std::string>(R"({"b": 2,  "a": [1, {"c": null}]}  )", Json()).value(),
            R"({"b": 2,  "a": [1, {"c": null}]})");
  EXPECT_EQ(DecodeBare<std::string>("12.50", Json()).value(), "12.50");
  ExpectError(DecodeBare<std::string>(R"({"a": [1, }  )", Json()).status(),
              absl::StatusCode::kDataLoss, "malformed JSON");
}

TEST(DebeziumTypes, OptionalFieldsAndDefaults) {
  struct Row {
    int64_t id = 0;
    std::optional<int32_t> maybe;
    int32_t with_default = 42;
    std::optional<std::string> note = "unset";
  };
  absl::StatusOr<Decoder<Row>> decoder =
      Decoder<Row>::Create(Fields<Row>()
                               .Required("id", &Row::id)
                               .Optional("maybe", &Row::maybe)
                               .Optional("with_default", &Row::with_default)
                               .Optional("note", &Row::note));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  auto decode = [&](std::string_view after) {
    absl::StatusOr<Change<Row>> change =
        decoder->Decode(Join({R"({"op":"c","after":)", after, "}"}));
    EXPECT_TRUE(change.ok()) << change.status();
    return *change->after;
  };
  Row row = decode(R"({"id":1})");
  EXPECT_EQ(row.maybe, std::nullopt);
  EXPECT_EQ(row.with_default, 42);
  EXPECT_EQ(row.note, "unset");
  row = decode(R"({"id":1,"maybe":null,"with_default":null,"note":null})");
  EXPECT_EQ(row.maybe, std::nullopt);
  EXPECT_EQ(row.with_default, 42);
  EXPECT_EQ(row.note, std::nullopt);  // an explicit null resets a std::optional
  row = decode(R"({"id":1,"maybe":-7,"with_default":3,"note":"x"})");
  EXPECT_EQ(row.maybe, -7);
  EXPECT_EQ(row.with_default, 3);
  EXPECT_EQ(row.note, "x");
  // Optional still checks the type.
  ExpectError(decoder->Decode(R"({"op":"c","after":{"id":1,"maybe":"x"}})").status(),
              absl::StatusCode::kInvalidArgument,
              R"(after: field "maybe": expected integer, got string "x")");
}

// ---------------------------------------------------------------------------
// Schema changes while the job runs
// ---------------------------------------------------------------------------

TEST(DebeziumSchemaChange, NewColumnIgnoredDroppedOptionalColumnDefaults) {
  Decoder<Content> decoder = ContentDecoder();
  ASSERT_TRUE(decoder.Decode(ContentMessage("c", "null", kEpisodeRow)).ok());

  // ALTER TABLE content ADD COLUMN tags JSONB, ADD COLUMN rating NUMERIC(3,1).
  const std::string added_columns = Join(
      {kContentColumns,
       R"(,{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"tags"})",
       R"(,{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal",)",
       R"("version":1,"parameters":{"scale":"1","connect.decimal.precision":"3"},"field":"rating"})"});
  std::string with_tags(kEpisodeRow);
  with_tags.insert(with_tags.size() - 1, R"(,"tags":"[\"ml\"]","rating":"AJY=")");
  absl::StatusOr<Change<Content>> change = decoder.Decode(
      Wrap(EnvelopeSchema("content", added_columns), ContentPayload("u", "null", with_tags)));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(*change->after, Episode());

  // ALTER TABLE content DROP COLUMN length_seconds.
  const std::string dropped_columns =
      R"({"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"id"},)"
      R"({"type":"string","optional":false,"field":"slug"},)"
      R"({"type":"string","optional":false,"field":"title"},)"
      R"({"type":"string","optional":false,"field":"content_type"},)"
      R"({"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"publish_ts"})";
  const std::string without_length =
      R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10","slug":"ep-42-streaming",)"
      R"("title":"Episode 42: Streams, \"exactly once\"","content_type":"podcast",)"
      R"("publish_ts":"2024-03-01T09:30:00.123456Z"})";
  change = decoder.Decode(Wrap(EnvelopeSchema("content", dropped_columns),
                               ContentPayload("u", "null", without_length)));
  ASSERT_TRUE(change.ok()) << change.status();
  Content want = Episode();
  want.length_seconds.reset();
  EXPECT_EQ(*change->after, want);

  // Dropping a required column is an error that names it.
  const std::string without_slug =
      R"({"id":"6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10","title":"t","content_type":"video",)"
      R"("publish_ts":"2024-03-01T09:30:00Z"})";
  ExpectError(decoder.Decode(ContentPayload("c", "null", without_slug)).status(),
              absl::StatusCode::kInvalidArgument, R"(after: field "slug": required, but missing)");
}

TEST(DebeziumSchemaChange, EachMessageUsesItsOwnSchema) {
  // The decoder caches the last schema; a changed scale must not be missed,
  // going forward or back.
  struct Price {
    int64_t cents = 0;
  };
  absl::StatusOr<Decoder<Price>> decoder =
      Decoder<Price>::Create(Fields<Price>().Required("v", &Price::cents, Decimal(2)));
  ASSERT_TRUE(decoder.ok());
  auto decode = [&](const std::string& column) {
    absl::StatusOr<Change<Price>> change = decoder->Decode(OneColumn(R"("A+g=")", column));
    EXPECT_TRUE(change.ok()) << change.status();
    return change.ok() ? change->after->cents : -1;
  };
  EXPECT_EQ(decode(kDecimal2), 1000);  // 10.00
  EXPECT_EQ(decode(kDecimal3), 100);   // 1.000
  EXPECT_EQ(decode(kDecimal3), 100);
  EXPECT_EQ(decode(kDecimal2), 1000);
}

// ---------------------------------------------------------------------------
// Malformed and mismatching messages
// ---------------------------------------------------------------------------

TEST(DebeziumErrors, MalformedJson) {
  Decoder<Content> decoder = ContentDecoder();
  const std::string good = ContentMessage("c", "null", kEpisodeRow);
  for (const std::string& bad : {
           good.substr(0, good.size() / 2),                       // truncated
           good.substr(0, good.size() - 1),                       // last brace missing
           good + "}",                                            // extra brace
           good + " {}",                                          // a second document
           std::string(R"({"op":"c","after":{"zz":1,}})"),        // trailing comma
           std::string(R"({"op":"c","after":null,"x":tru})"),     // bad literal, unused field
           std::string(R"({"op":"c","after":null,"x":[1,2,}})"),  // bad array, unused field
           std::string(R"({"op":"c","after":null,"x":"\u12"})"),  // bad escape, unused field
           std::string(R"({"op":"c","after":null,"x":01})"),      // bad number, unused field
           std::string("{\"op\":\"c\",\"after\":null,\"x\":\"\xff\"}"),  // invalid UTF-8
           std::string(R"({"op" "c"})"),
           std::string("{"),
       }) {
    absl::StatusOr<Change<Content>> change = decoder.Decode(bad);
    EXPECT_EQ(change.status().code(), absl::StatusCode::kDataLoss)
        << change.status() << " for: " << bad;
  }
  // A stray "schema" in a bare envelope is validated too.
  ExpectError(decoder.Decode(R"({"schema":{"a":[1,}},"op":"t"})").status(),
              absl::StatusCode::kDataLoss, "malformed JSON");
}

TEST(DebeziumErrors, NotAChangeEvent) {
  Decoder<Content> decoder = ContentDecoder();
  ExpectError(decoder.Decode("[1,2]").status(), absl::StatusCode::kInvalidArgument,
              "expected a JSON object");
  ExpectError(decoder.Decode("42").status(), absl::StatusCode::kInvalidArgument,
              "expected a JSON object");
  ExpectError(decoder.Decode("{}").status(), absl::StatusCode::kInvalidArgument,
              R"(no "op" field)");
  ExpectError(decoder.Decode(R"({"before":null,"after":null})").status(),
              absl::StatusCode::kInvalidArgument, R"(no "op" field)");
  ExpectError(decoder.Decode(R"({"op":"x"})").status(), absl::StatusCode::kInvalidArgument,
              R"(field "op": unknown operation "x")");
  ExpectError(decoder.Decode(R"({"op":1})").status(), absl::StatusCode::kInvalidArgument,
              R"(field "op": expected string, got number 1)");
  ExpectError(decoder.Decode(R"({"op":"c","after":null})").status(),
              absl::StatusCode::kInvalidArgument, R"(op "c" without an "after" row)");
  ExpectError(decoder.Decode(R"({"op":"u"})").status(), absl::StatusCode::kInvalidArgument,
              R"(op "u" without an "after" row)");
  ExpectError(decoder.Decode(ContentPayload("d", kEpisodeRow, kEpisodeRow)).status(),
              absl::StatusCode::kInvalidArgument, R"(op "d" with an "after" row)");
  ExpectError(decoder.Decode(R"({"op":"c","after":[]})").status(),
              absl::StatusCode::kInvalidArgument,
              R"(field "after": expected object or null, got array)");
  ExpectError(decoder.Decode(R"({"op":"c","payload":{}})").status(),
              absl::StatusCode::kInvalidArgument, R"(both "payload" and envelope fields)");
  ExpectError(decoder.Decode(R"({"schema":{},"payload":"x"})").status(),
              absl::StatusCode::kInvalidArgument,
              R"(field "payload": expected object or null, got string "x")");
  ExpectError(decoder.Decode(R"({"op":"t","ts_ms":"soon"})").status(),
              absl::StatusCode::kInvalidArgument, R"(field "ts_ms": expected integer)");
  ExpectError(decoder.Decode(R"({"op":"t","source":{"lsn":"0/16B3748"}})").status(),
              absl::StatusCode::kInvalidArgument,
              R"(source: field "lsn": expected integer, got string "0/16B3748")");
  ExpectError(decoder.Decode(Wrap(R"({"type":"struct","fields":"x"})", R"({"op":"t"})")).status(),
              absl::StatusCode::kInvalidArgument, R"(schema: "fields": expected array)");
  std::string deep(200, '[');
  deep += std::string(200, ']');
  ExpectError(decoder.Decode(Join({R"({"op":"t","x":)", deep, "}"})).status(),
              absl::StatusCode::kInvalidArgument, "nested deeper");
}

TEST(DebeziumErrors, MissingAndNullRequiredFields) {
  Decoder<Content> decoder = ContentDecoder();
  std::string no_title(kEpisodeRow);
  const size_t start = no_title.find(R"("title")");
  const size_t end = no_title.find(R"("content_type")");
  no_title.erase(start, end - start);
  ExpectError(decoder.Decode(ContentMessage("c", "null", no_title)).status(),
              absl::StatusCode::kInvalidArgument, R"(after: field "title": required, but missing)");
  std::string null_ts(kEpisodeRow);
  null_ts.replace(null_ts.find(R"("2024-03-01T09:30:00.123456Z")"), 29, "null");
  ExpectError(decoder.Decode(ContentMessage("c", "null", null_ts)).status(),
              absl::StatusCode::kInvalidArgument,
              R"(after: field "publish_ts": required, but the value is null)");
  std::string bad_uuid(kEpisodeRow);
  bad_uuid.replace(bad_uuid.find("6f1b0c56"), 8, "zzzzzzzz");
  ExpectError(decoder.Decode(ContentMessage("c", "null", bad_uuid)).status(),
              absl::StatusCode::kInvalidArgument, R"(after: field "id": "zzzzzzzz-)");
}

TEST(DebeziumErrors, UnavailableToastedValues) {
  // An UPDATE that leaves a TOASTed column unchanged (REPLICA IDENTITY
  // DEFAULT): the connector cannot read it and sends its placeholder.
  std::string row(kEpisodeRow);
  const std::string title = R"("Episode 42: Streams, \"exactly once\"")";
  row.replace(row.find(title), title.size(), R"("__debezium_unavailable_value")");
  Decoder<Content> decoder = ContentDecoder();
  ExpectError(
      decoder.Decode(ContentMessage("u", "null", row)).status(), absl::StatusCode::kInvalidArgument,
      R"(after: field "title": the value is Debezium's placeholder for an unchanged TOASTed)");
  // Binary columns (here a precise decimal) get the placeholder's bytes.
  ExpectError(
      DecodeOne<int64_t>(R"("X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==")", kDecimal2, Decimal(2))
          .status(),
      absl::StatusCode::kInvalidArgument, "placeholder for an unchanged TOASTed column");
  // The check follows the connector's setting, and can be turned off.
  Decoder<Content> custom = ContentDecoder({.unavailable_value_placeholder = "<toast>"});
  absl::StatusOr<Change<Content>> change = custom.Decode(ContentMessage("u", "null", row));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->after->title, "__debezium_unavailable_value");
  std::string custom_row(kEpisodeRow);
  custom_row.replace(custom_row.find(title), title.size(), R"("<toast>")");
  ExpectError(custom.Decode(ContentMessage("u", "null", custom_row)).status(),
              absl::StatusCode::kInvalidArgument, R"(field "title": the value is Debezium's)");
  Decoder<Content> unchecked = ContentDecoder({.unavailable_value_placeholder = ""});
  EXPECT_TRUE(unchecked.Decode(ContentMessage("u", "null", row)).ok());
}

TEST(DebeziumErrors, BadDeclarations) {
  struct Row {
    int64_t a = 0;
    int64_t b = 0;
  };
  ExpectError(
      Decoder<Row>::Create(Fields<Row>().Required("a", &Row::a).Optional("a", &Row::b)).status(),
      absl::StatusCode::kInvalidArgument, R"(field "a" is declared twice)");
  ExpectError(Decoder<Row>::Create(Fields<Row>().Required("", &Row::a)).status(),
              absl::StatusCode::kInvalidArgument, "empty name");
  ExpectError(Decoder<Row>::Create(Fields<Row>().Required("a", &Row::a, Decimal())).status(),
              absl::StatusCode::kInvalidArgument, "needs the scale of its units");
  ExpectError(
      Decoder<Row>::Create(Fields<Row>().Required("a", &Row::a, Decimal(1'000'000))).status(),
      absl::StatusCode::kInvalidArgument, "decimal scale out of range");
}

TEST(DebeziumErrors, UnknownFieldsAndEnvelopeExtrasAreIgnored) {
  Decoder<Content> decoder = ContentDecoder();
  std::string row(kEpisodeRow);
  row.insert(row.size() - 1, R"(,"new_col":{"nested":[1,{"x":null}]},"another":1e5)");
  const std::string message =
      Join({R"({"before":null,"after":)", row,
            R"(,"source":{"connector":"postgresql","snapshot":false,"lsn":null,"txId":null,)"
            R"("new_source_field":[]},"op":"c","ts_ms":null,"ts_us":1,"ts_ns":2,)"
            R"("transaction":{"id":"571:53195829","total_order":1,"data_collection_order":1},)"
            R"("something_else":true})"});
  absl::StatusOr<Change<Content>> change = decoder.Decode(message);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(*change->after, Episode());
  EXPECT_EQ(change->source.snapshot, "false");
  EXPECT_EQ(change->source.lsn, std::nullopt);
  EXPECT_EQ(change->ts_ms, std::nullopt);
}

}  // namespace
}  // namespace weir::debezium
