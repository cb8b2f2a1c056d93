// weir::debezium: the settings real Debezium deployments use, each in the
// exact shape the connector (and Kafka Connect's JsonConverter) emits it:
// schemaless decimals, JsonConverter's type spellings, string-mode special
// values, decimal.format=NUMERIC, time.precision.mode=isostring, records that
// are not row changes (messages, heartbeats, transaction markers) and array
// columns. Ends with a property test over decimals: every mode, with and
// without a schema, gives the exact value or an error, never another number.

#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/formats/debezium.h"

namespace weir::debezium {
namespace {

using ::testing::HasSubstr;

std::string Join(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

void ExpectError(const absl::Status& status, absl::StatusCode code, std::string_view substring) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(substring)));
}

// `decimal` with `mode`, when there is one.
Decimal WithMode(Decimal decimal, std::optional<DecimalMode> mode) {
  if (mode.has_value()) decimal.Mode(*mode);
  return decimal;
}

template <class V>
struct Holder {
  V v{};
};

// A PostgreSQL create event whose row is {"v": <value>}: bare
// (schemas.enable=false) or, with `column` (the column's Kafka Connect
// schema without "field"), wrapped as JsonConverter writes it.
std::string Event(std::string_view value, std::string_view column = {}) {
  const std::string payload =
      Join({R"({"before":null,"after":{"id":1,"v":)", value,
            R"(},"source":{"version":"2.5.0.Final","connector":"postgresql","name":"shop",)",
            R"("ts_ms":1709285400456,"snapshot":"false","db":"shop","schema":"public",)",
            R"("table":"orders","txId":771,"lsn":24023304},"op":"c","ts_ms":1709285400789})"});
  if (column.empty()) return payload;
  const std::string row =
      Join({R"({"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},)", column,
            R"(],"optional":true,"name":"shop.public.orders.Value","field":"%s"})"});
  const auto row_as = [&row](std::string_view field) {
    std::string out = row;
    out.replace(out.find("%s"), 2, std::string(field));
    return out;
  };
  const std::string schema = Join(
      {R"({"type":"struct","fields":[)", row_as("before"), ",", row_as("after"),
       R"(,{"type":"struct","fields":[{"type":"string","optional":false,"field":"connector"}],)",
       R"("optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},)",
       R"({"type":"string","optional":false,"field":"op"},)",
       R"({"type":"int64","optional":true,"field":"ts_ms"}],)",
       R"("optional":false,"name":"shop.public.orders.Envelope","version":1})"});
  return Join({R"({"schema":)", schema, R"(,"payload":)", payload, "}"});
}

// A column schema for "v".
std::string Column(std::string_view type, std::string_view name = {},
                   std::string_view parameters = {}) {
  std::string out = Join({R"({"type":")", type, R"(","optional":true)"});
  if (!name.empty()) out += Join({R"(,"name":")", name, R"(","version":1)"});
  if (!parameters.empty()) out += Join({R"(,"parameters":)", parameters});
  return out + R"(,"field":"v"})";
}

std::string DecimalColumn(int scale) {
  return Column(
      "bytes", "org.apache.kafka.connect.data.Decimal",
      Join({R"({"scale":")", std::to_string(scale), R"(","connect.decimal.precision":"38"})"}));
}

template <class V, class... Type>
absl::StatusOr<V> DecodeOne(std::string_view value, std::string_view column, Type... type) {
  absl::StatusOr<Decoder<Holder<V>>> decoder =
      Decoder<Holder<V>>::Create(Fields<Holder<V>>().Required("v", &Holder<V>::v, type...));
  if (!decoder.ok()) return decoder.status();
  absl::StatusOr<Change<Holder<V>>> change = decoder->Decode(Event(value, column));
  if (!change.ok()) return change.status();
  return change->after->v;
}

template <class V, class... Type>
absl::StatusOr<V> DecodeBare(std::string_view value, Type... type) {
  return DecodeOne<V>(value, {}, type...);
}

// ---------------------------------------------------------------------------
// Decimals without a schema: the encoding must be declared
// ---------------------------------------------------------------------------

TEST(DebeziumSchemalessDecimals, AmbiguousStringsNeedADeclaredMode) {
  // "1000" and "100" are base64 (bytes d7 4d 34 and d7 4d) and decimal text.
  for (std::string_view amount : {R"("1000")", R"("100")"}) {
    const absl::Status status = DecodeBare<int64_t>(amount, Decimal(2)).status();
    ExpectError(status, absl::StatusCode::kInvalidArgument, R"(field "v")");
    ExpectError(status, absl::StatusCode::kInvalidArgument, "Mode(DecimalMode::kPrecise)");
    ExpectError(status, absl::StatusCode::kInvalidArgument, "Mode(DecimalMode::kString)");
  }
  // Numbers and objects are not guessed at either: the mode is always needed.
  ExpectError(DecodeBare<int64_t>("12.5", Decimal(2)).status(), absl::StatusCode::kInvalidArgument,
              "is ambiguous");
  ExpectError(DecodeBare<std::string>(R"({"scale":0,"value":"BNI="})", Decimal()).status(),
              absl::StatusCode::kInvalidArgument, "is ambiguous");

  // Declared, each gives its own (exact) value.
  EXPECT_EQ(DecodeBare<int64_t>(R"("1000")", Decimal(2).Mode(DecimalMode::kString)).value(),
            100000);
  EXPECT_EQ(DecodeBare<int64_t>(R"("100")", Decimal(2).Mode(DecimalMode::kString)).value(), 10000);
  EXPECT_EQ(DecodeBare<int64_t>(R"("1000")", Decimal(2).Mode(DecimalMode::kPrecise)).value(),
            -2667212);
  EXPECT_EQ(DecodeBare<int64_t>("1000", Decimal(2).Mode(DecimalMode::kDouble)).value(), 100000);

  // A mode fixes the JSON type it may send.
  ExpectError(DecodeBare<int64_t>("12", Decimal(2).Mode(DecimalMode::kString)).status(),
              absl::StatusCode::kInvalidArgument,
              "a decimal declared Mode(DecimalMode::kString) cannot be number 12");
  ExpectError(DecodeBare<int64_t>(R"("12")", Decimal(2).Mode(DecimalMode::kDouble)).status(),
              absl::StatusCode::kInvalidArgument, R"(expected number, got string "12")");
  // With a schema the schema decides, and no mode is needed.
  EXPECT_EQ(DecodeOne<int64_t>(R"("1000")", Column("string"), Decimal(2)).value(), 100000);
  EXPECT_EQ(DecodeOne<int64_t>(R"("1000")", DecimalColumn(2), Decimal(2)).value(), -2667212);
}

// ---------------------------------------------------------------------------
// JsonConverter's spellings, special values, decimal.format=NUMERIC
// ---------------------------------------------------------------------------

TEST(DebeziumJsonConverter, DoubleAndFloatTypeNames) {
  // decimal.handling.mode=double with JsonConverter's "double" spelling.
  for (std::string_view type : {"double", "float64"}) {
    const std::string column = Column(type);
    EXPECT_TRUE(std::isnan(DecodeOne<double>(R"("NaN")", column, Decimal()).value())) << type;
    EXPECT_EQ(DecodeOne<double>(R"("Infinity")", column, Decimal()).value(),
              std::numeric_limits<double>::infinity());
    EXPECT_EQ(DecodeOne<double>(R"("-Infinity")", column, Decimal()).value(),
              -std::numeric_limits<double>::infinity());
    EXPECT_EQ(DecodeOne<int64_t>("12.5", column, Decimal(2)).value(), 1250);
    ExpectError(DecodeOne<int64_t>(R"("NaN")", column, Decimal(2)).status(),
                absl::StatusCode::kInvalidArgument, R"(field "v": "NaN" is not a finite decimal)");
    EXPECT_EQ(DecodeOne<double>("0.25", column).value(), 0.25);
  }
  for (std::string_view type : {"float", "float32"}) {
    EXPECT_EQ(DecodeOne<float>("0.5", Column(type), Decimal()).value(), 0.5f) << type;
    EXPECT_TRUE(std::isnan(DecodeOne<float>(R"("NaN")", Column(type), Decimal()).value()));
  }
}

TEST(DebeziumJsonConverter, StringModeSpecialValues) {
  // decimal.handling.mode=string renders NUMERIC 'NaN' and the infinities so.
  const std::string column = Column("string");
  EXPECT_TRUE(std::isnan(DecodeOne<double>(R"("NAN")", column, Decimal()).value()));
  EXPECT_EQ(DecodeOne<double>(R"("POSITIVE_INFINITY")", column, Decimal()).value(),
            std::numeric_limits<double>::infinity());
  EXPECT_EQ(DecodeOne<float>(R"("NEGATIVE_INFINITY")", column, Decimal()).value(),
            -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(
      std::isnan(DecodeBare<double>(R"("NAN")", Decimal().Mode(DecimalMode::kString)).value()));
  for (std::string_view special :
       {R"("NAN")", R"("POSITIVE_INFINITY")", R"("NEGATIVE_INFINITY")"}) {
    ExpectError(DecodeOne<int64_t>(special, column, Decimal(2)).status(),
                absl::StatusCode::kInvalidArgument, R"(field "v": )");
    ExpectError(DecodeOne<int64_t>(special, column, Decimal(2)).status(),
                absl::StatusCode::kInvalidArgument, "is not a finite decimal");
    ExpectError(DecodeOne<std::string>(special, column, Decimal()).status(),
                absl::StatusCode::kInvalidArgument, "is not a finite decimal");
  }
}

TEST(DebeziumJsonConverter, NumericDecimalFormat) {
  // decimal.format=NUMERIC (KIP-481): the Decimal schema stays, the value is
  // a JSON number, read exactly from its text.
  const std::string column = DecimalColumn(2);
  EXPECT_EQ(DecodeOne<int64_t>("398.54", column, Decimal(2)).value(), 39854);
  EXPECT_EQ(DecodeOne<std::string>("398.54", column, Decimal()).value(), "398.54");
  EXPECT_EQ(DecodeOne<std::string>("398.54", column, Decimal(4)).value(), "398.5400");
  EXPECT_EQ(DecodeOne<double>("398.54", column, Decimal()).value(), 398.54);
  EXPECT_EQ(DecodeOne<std::string>("12345678901234567890.12", column, Decimal()).value(),
            "12345678901234567890.12");
  ExpectError(DecodeOne<int64_t>("1.005", column, Decimal(2)).status(),
              absl::StatusCode::kInvalidArgument, "decimal 1.005 does not fit scale 2");
  ExpectError(DecodeOne<double>("12345678901234567890.12", column, Decimal()).status(),
              absl::StatusCode::kInvalidArgument, "is not exact as a double");
  // Without a schema, under the precise mode.
  EXPECT_EQ(DecodeBare<int64_t>("398.54", Decimal(2).Mode(DecimalMode::kPrecise)).value(), 39854);
  // A member without Decimal() on a decimal column gets the decimal, never
  // its base64 text or a rounded double.
  EXPECT_EQ(DecodeOne<std::string>(R"("BNI=")", column).value(), "12.34");
  EXPECT_EQ(DecodeOne<int64_t>(R"("BNI=")", DecimalColumn(0)).value(), 1234);
  ExpectError(DecodeOne<int64_t>(R"("BNI=")", column).status(), absl::StatusCode::kInvalidArgument,
              "does not fit scale 0");
  ExpectError(DecodeOne<double>("12345678901234567890.12", column).status(),
              absl::StatusCode::kInvalidArgument, "is not exact as a double");
}

// ---------------------------------------------------------------------------
// time.precision.mode=isostring, and time strings without a schema
// ---------------------------------------------------------------------------

TEST(DebeziumIsoTimes, EveryIsoTypeIntoEveryUnit) {
  const std::string date = Column("string", "io.debezium.time.IsoDate");
  const std::string time = Column("string", "io.debezium.time.IsoTime");
  const std::string timestamp = Column("string", "io.debezium.time.IsoTimestamp");
  // 2017-09-15 is day 17424.
  EXPECT_EQ(DecodeOne<int64_t>(R"("2017-09-15Z")", date, EpochSeconds()).value(), 1505433600);
  EXPECT_EQ(DecodeOne<int64_t>(R"("2017-09-15Z")", date, EpochMillis()).value(), 1505433600000);
  EXPECT_EQ(DecodeOne<int64_t>(R"("2017-09-15")", date, EpochMicros()).value(), 1505433600000000);
  EXPECT_EQ(DecodeOne<int64_t>(R"("04:05:11.789Z")", time, EpochMillis()).value(), 14711789);
  EXPECT_EQ(DecodeOne<int64_t>(R"("04:05:11.789Z")", time, EpochMicros()).value(), 14711789000);
  EXPECT_EQ(DecodeOne<int64_t>(R"("04:05:11.789")", time, EpochNanos()).value(), 14711789000000);
  EXPECT_EQ(DecodeOne<int64_t>(R"("2017-09-15T04:05:11.789Z")", timestamp, EpochMillis()).value(),
            1505448311789);
  EXPECT_EQ(DecodeOne<int64_t>(R"("2017-09-15T04:05:11.789")", timestamp, EpochMicros()).value(),
            1505448311789000);
  // Without a schema, the declared type says the same.
  EXPECT_EQ(DecodeBare<int64_t>(R"("2017-09-15Z")", EpochMillis(TimeType::kIsoDate)).value(),
            1505433600000);
  EXPECT_EQ(DecodeBare<int64_t>(R"("04:05:11.789Z")", EpochMicros(TimeType::kIsoTime)).value(),
            14711789000);
  EXPECT_EQ(DecodeBare<int64_t>(R"("04:05:11.789Z")", EpochMicros(TimeType::kZonedTime)).value(),
            14711789000);
  EXPECT_EQ(
      DecodeBare<int64_t>(R"("2017-09-15T04:05:11.789")", EpochMillis(TimeType::kIsoTimestamp))
          .value(),
      1505448311789);
  // An ISO date or a zoned time-of-day string is told by its shape.
  EXPECT_EQ(DecodeBare<int64_t>(R"("2017-09-15Z")", EpochMillis()).value(), 1505433600000);
  EXPECT_EQ(DecodeBare<int64_t>(R"("04:05:11.789Z")", EpochMillis()).value(), 14711789);
}

TEST(DebeziumIsoTimes, AStringOfTheWrongKindOrZoneIsAnError) {
  const std::string date = Column("string", "io.debezium.time.IsoDate");
  ExpectError(DecodeOne<int64_t>(R"("04:05:11Z")", date, EpochMillis()).status(),
              absl::StatusCode::kInvalidArgument,
              R"(field "v": expected a date, got a time of day "04:05:11Z")");
  ExpectError(DecodeOne<int64_t>(R"("2017-09-15T00:00:00Z")", date, EpochMillis()).status(),
              absl::StatusCode::kInvalidArgument, "expected a date, got a date-time");
  ExpectError(
      DecodeBare<int64_t>(R"("2017-09-15")", EpochMillis(TimeType::kMicroTimestamp)).status(),
      absl::StatusCode::kInvalidArgument, "expected integer, got string");
  ExpectError(
      DecodeBare<int64_t>(R"("2017-09-15")", EpochMillis(TimeType::kZonedTimestamp)).status(),
      absl::StatusCode::kInvalidArgument, "expected a date-time, got a date");
  // Outside the Iso types a string without an offset has no known zone.
  ExpectError(DecodeBare<int64_t>(R"("2017-09-15T04:05:11")", EpochMillis()).status(),
              absl::StatusCode::kInvalidArgument, "is not an ISO-8601 timestamp with offset");
  ExpectError(DecodeOne<int64_t>(R"("04:05:11")", Column("string", "io.debezium.time.ZonedTime"),
                                 EpochMillis())
                  .status(),
              absl::StatusCode::kInvalidArgument, "is not an ISO-8601 time with offset");
  // Durations and years are not points in time.
  ExpectError(DecodeOne<int64_t>("3600000000", Column("int64", "io.debezium.time.MicroDuration"),
                                 EpochMicros(TimeType::kMicroTimestamp))
                  .status(),
              absl::StatusCode::kInvalidArgument,
              "the column's logical type io.debezium.time.MicroDuration is not a date, time or "
              "timestamp");
  ExpectError(
      DecodeOne<int64_t>("2024", Column("int32", "io.debezium.time.Year"), EpochMillis()).status(),
      absl::StatusCode::kInvalidArgument, "io.debezium.time.Year");
  ExpectError(
      DecodeOne<int64_t>("17424", Column("int32", "io.debezium.time.IsoDate"), EpochMillis())
          .status(),
      absl::StatusCode::kInvalidArgument, "expected ISO-8601 string, got number");
}

// ---------------------------------------------------------------------------
// Records that are not row changes
// ---------------------------------------------------------------------------

struct Order {
  int64_t id = 0;
  friend bool operator==(const Order&, const Order&) = default;
};

Decoder<Order> OrderDecoder(DecoderOptions options = {}) {
  absl::StatusOr<Decoder<Order>> decoder =
      Decoder<Order>::Create(Fields<Order>().Required("id", &Order::id), options);
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  return *std::move(decoder);
}

// pg_logical_emit_message(true, 'audit', 'hello') through the PostgreSQL
// connector, schemaless.
constexpr std::string_view kMessage =
    R"({"op":"m","ts_ms":1681325230811,"source":{"version":"2.5.0.Final",)"
    R"("connector":"postgresql","name":"shop","ts_ms":1681325230800,"snapshot":"false",)"
    R"("db":"shop","sequence":"[null,\"24023304\"]","schema":"","table":"","txId":771,)"
    R"("lsn":24023304,"xmin":null},"message":{"prefix":"audit","content":"aGVsbG8="}})";

// A heartbeat (heartbeat.interval.ms) with JsonConverter's schema.
constexpr std::string_view kHeartbeat =
    R"({"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],)"
    R"("optional":false,"name":"io.debezium.connector.common.Heartbeat"},)"
    R"("payload":{"ts_ms":1588252618953}})";

// provide.transaction.metadata=true: BEGIN and END on "<prefix>.transaction".
constexpr std::string_view kBegin =
    R"({"status":"BEGIN","id":"571:53195829","ts_ms":1486500577125,"event_count":null,)"
    R"("data_collections":null})";
constexpr std::string_view kEnd =
    R"({"status":"END","id":"571:53195832","ts_ms":1486500577691,"event_count":2,)"
    R"("data_collections":[{"data_collection":"s1.a","event_count":1},)"
    R"({"data_collection":"s2.a","event_count":1}]})";

TEST(DebeziumNonRowRecords, SkippedByDefault) {
  Decoder<Order> decoder = OrderDecoder();
  absl::StatusOr<Change<Order>> message = decoder.Decode(kMessage);
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->op, Op::kMessage);
  EXPECT_TRUE(decoder.Skips(*message));
  absl::StatusOr<Change<Order>> heartbeat = decoder.Decode(kHeartbeat);
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_EQ(heartbeat->op, Op::kHeartbeat);
  EXPECT_TRUE(decoder.Skips(*heartbeat));
  absl::StatusOr<Change<Order>> begin = decoder.Decode(kBegin);
  ASSERT_TRUE(begin.ok()) << begin.status();
  EXPECT_TRUE(decoder.Skips(*begin));
  // Row changes are never skipped.
  absl::StatusOr<Change<Order>> row = decoder.Decode(Event("1"));
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_FALSE(decoder.Skips(*row));
  EXPECT_FALSE(decoder.Skips(*decoder.Decode("")));
}

TEST(DebeziumNonRowRecords, DeliveredWithTheirContents) {
  Decoder<Order> decoder = OrderDecoder({.messages = NonRowPolicy::kDeliver,
                                         .heartbeats = NonRowPolicy::kDeliver,
                                         .transactions = NonRowPolicy::kDeliver});
  absl::StatusOr<Change<Order>> message = decoder.Decode(kMessage);
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_FALSE(decoder.Skips(*message));
  EXPECT_EQ(message->op, Op::kMessage);
  EXPECT_EQ(OpName(message->op), "m");
  EXPECT_FALSE(IsRowOp(message->op));
  ASSERT_TRUE(message->message.has_value());
  EXPECT_EQ(message->message->prefix, "audit");
  EXPECT_EQ(message->message->content, "aGVsbG8=");
  EXPECT_EQ(message->source.tx_id, 771);
  EXPECT_EQ(message->ts_ms, 1681325230811);
  EXPECT_EQ(message->row(), nullptr);

  absl::StatusOr<Change<Order>> heartbeat = decoder.Decode(kHeartbeat);
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_EQ(heartbeat->op, Op::kHeartbeat);
  EXPECT_EQ(heartbeat->ts_ms, 1588252618953);
  EXPECT_FALSE(heartbeat->before || heartbeat->after || heartbeat->message);

  absl::StatusOr<Change<Order>> begin = decoder.Decode(kBegin);
  ASSERT_TRUE(begin.ok()) << begin.status();
  ASSERT_EQ(begin->op, Op::kTransaction);
  EXPECT_EQ(begin->transaction->status, TransactionMarker::Status::kBegin);
  EXPECT_EQ(begin->transaction->id, "571:53195829");
  EXPECT_EQ(begin->transaction->event_count, std::nullopt);
  EXPECT_EQ(begin->ts_ms, 1486500577125);
  absl::StatusOr<Change<Order>> end = decoder.Decode(kEnd);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->transaction->status, TransactionMarker::Status::kEnd);
  EXPECT_EQ(end->transaction->event_count, 2);
  const std::vector<std::pair<std::string, int64_t>> collections = {{"s1.a", 1}, {"s2.a", 1}};
  EXPECT_EQ(end->transaction->data_collections, collections);
}

TEST(DebeziumNonRowRecords, DeadLetteredWithTheReason) {
  Decoder<Order> decoder = OrderDecoder({.messages = NonRowPolicy::kDeadLetter,
                                         .heartbeats = NonRowPolicy::kDeadLetter,
                                         .transactions = NonRowPolicy::kDeadLetter});
  ExpectError(decoder.Decode(kMessage).status(), absl::StatusCode::kInvalidArgument,
              R"(a logical decoding message (op "m") record, not a row change)");
  ExpectError(decoder.Decode(kHeartbeat).status(), absl::StatusCode::kInvalidArgument,
              "a heartbeat record, not a row change (DecoderOptions::heartbeats");
  ExpectError(decoder.Decode(kEnd).status(), absl::StatusCode::kInvalidArgument,
              "a transaction metadata record");
  // What is neither stays an error.
  ExpectError(decoder.Decode(R"({"status":"COMMITTED","id":"1"})").status(),
              absl::StatusCode::kInvalidArgument, "expected BEGIN or END");
  ExpectError(decoder.Decode(R"({"after":{"id":1}})").status(), absl::StatusCode::kInvalidArgument,
              R"(no "op" field)");
  ExpectError(decoder.Decode(R"({"op":"m","ts_ms":1})").status(),
              absl::StatusCode::kInvalidArgument, R"(op "m" without a "message")");
}

// ---------------------------------------------------------------------------
// Array columns
// ---------------------------------------------------------------------------

struct Tagged {
  std::vector<std::string> tags;
  std::optional<std::vector<int32_t>> scores;
  std::vector<std::optional<int32_t>> sparse;
  std::vector<int64_t> cents;
  std::vector<std::string> amounts;
};

Fields<Tagged> TaggedFields(std::optional<DecimalMode> mode = std::nullopt) {
  return Fields<Tagged>()
      .Optional("tags", &Tagged::tags)
      .Optional("scores", &Tagged::scores)
      .Optional("sparse", &Tagged::sparse)
      .Optional("cents", &Tagged::cents, Decimal(2, mode))
      .Optional("amounts", &Tagged::amounts, WithMode(Decimal(), mode));
}

std::string ArrayColumn(std::string_view field, std::string_view items) {
  return Join(
      {R"({"type":"array","items":)", items, R"(,"optional":true,"field":")", field, R"("})"});
}

std::string TaggedEvent(std::string_view row, bool with_schema) {
  const std::string payload =
      Join({R"({"before":null,"after":)", row, R"(,"source":{"connector":"postgresql"},)",
            R"("op":"c","ts_ms":1})"});
  if (!with_schema) return payload;
  const std::string columns =
      Join({ArrayColumn("tags", R"({"type":"string","optional":true})"), ",",
            ArrayColumn("scores", R"({"type":"int32","optional":true})"), ",",
            ArrayColumn("sparse", R"({"type":"int32","optional":true})"), ",",
            ArrayColumn("cents", R"({"type":"bytes","optional":true,)"
                                 R"("name":"org.apache.kafka.connect.data.Decimal",)"
                                 R"("parameters":{"scale":"2"}})"),
            ",",
            ArrayColumn("amounts", R"({"type":"struct","fields":[{"type":"int32","field":"scale"},)"
                                   R"({"type":"bytes","field":"value"}],"optional":true,)"
                                   R"("name":"io.debezium.data.VariableScaleDecimal"})")});
  return Join({R"({"schema":{"type":"struct","fields":[{"type":"struct","fields":[)", columns,
               R"(],"optional":true,"field":"after"},{"type":"string","field":"op"}],)",
               R"("optional":false},"payload":)", payload, "}"});
}

TEST(DebeziumArrays, TextIntAndNumericArrays) {
  absl::StatusOr<Decoder<Tagged>> decoder = Decoder<Tagged>::Create(TaggedFields());
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  // text[], int4[] (with NULL elements) and numeric(10,2)[] / numeric[] in
  // Debezium's default precise mode.
  absl::StatusOr<Change<Tagged>> change = decoder->Decode(TaggedEvent(
      R"({"tags":["a","b c"],"scores":[1,-2,3],"sparse":[1,null,3],"cents":["BNI=","/2o="],)"
      R"("amounts":[{"scale":3,"value":"A+0="},{"scale":0,"value":"AA=="}]})",
      true));
  ASSERT_TRUE(change.ok()) << change.status();
  const Tagged& row = *change->after;
  EXPECT_EQ(row.tags, (std::vector<std::string>{"a", "b c"}));
  EXPECT_EQ(row.scores, (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(row.sparse, (std::vector<std::optional<int32_t>>{1, std::nullopt, 3}));
  EXPECT_EQ(row.cents, (std::vector<int64_t>{1234, -150}));
  EXPECT_EQ(row.amounts, (std::vector<std::string>{"1.005", "0"}));

  // Empty arrays and a null array column.
  change = decoder->Decode(TaggedEvent(R"({"tags":[],"scores":null,"sparse":[]})", true));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_TRUE(change->after->tags.empty());
  EXPECT_EQ(change->after->scores, std::nullopt);
  change = decoder->Decode(TaggedEvent(R"({"scores":[]})", true));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->after->scores, std::vector<int32_t>{});
}

TEST(DebeziumArrays, ElementErrorsNameTheFieldAndIndex) {
  absl::StatusOr<Decoder<Tagged>> decoder = Decoder<Tagged>::Create(TaggedFields());
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  ExpectError(decoder->Decode(TaggedEvent(R"({"scores":[1,null]})", true)).status(),
              absl::StatusCode::kInvalidArgument,
              R"(after: field "scores": element [1]: null, but the member's elements are not)");
  ExpectError(decoder->Decode(TaggedEvent(R"({"scores":[1,"x"]})", true)).status(),
              absl::StatusCode::kInvalidArgument,
              R"(field "scores": element [1]: expected integer, got string "x")");
  ExpectError(decoder->Decode(TaggedEvent(R"({"scores":[1,3000000000]})", true)).status(),
              absl::StatusCode::kInvalidArgument, "element [1]: 3000000000 out of range for int32");
  ExpectError(decoder->Decode(TaggedEvent(R"({"cents":["BNI=","!!"]})", true)).status(),
              absl::StatusCode::kInvalidArgument,
              R"(element [1]: precise decimal "!!" is not base64)");
  ExpectError(decoder->Decode(TaggedEvent(R"({"tags":"a,b"})", true)).status(),
              absl::StatusCode::kInvalidArgument, R"(field "tags": expected array, got string)");
  ExpectError(
      decoder->Decode(TaggedEvent(R"({"tags":["__debezium_unavailable_value"]})", true)).status(),
      absl::StatusCode::kInvalidArgument, "placeholder for an unchanged TOASTed column");
  // Schemaless numeric[] needs the mode like any decimal.
  ExpectError(decoder->Decode(TaggedEvent(R"({"cents":["1000"]})", false)).status(),
              absl::StatusCode::kInvalidArgument, "is ambiguous");
  absl::StatusOr<Decoder<Tagged>> string_mode =
      Decoder<Tagged>::Create(TaggedFields(DecimalMode::kString));
  ASSERT_TRUE(string_mode.ok());
  absl::StatusOr<Change<Tagged>> change =
      string_mode->Decode(TaggedEvent(R"({"cents":["1000","0.5"],"amounts":["1.50"]})", false));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->after->cents, (std::vector<int64_t>{100000, 50}));
  EXPECT_EQ(change->after->amounts, std::vector<std::string>{"1.50"});
}

// ---------------------------------------------------------------------------
// Property: a decimal decodes to its exact value or to an error
// ---------------------------------------------------------------------------

// Plain decimal text of unscaled * 10^-scale.
std::string DecimalText(absl::int128 unscaled, int scale) {
  const bool negative = unscaled < 0;
  absl::uint128 magnitude = negative ? -absl::uint128(unscaled) : absl::uint128(unscaled);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude != 0);
  if (scale > 0) {
    if (digits.size() <= static_cast<size_t>(scale)) {
      digits.insert(0, static_cast<size_t>(scale) - digits.size() + 1, '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale), ".");
  }
  return negative ? "-" + digits : digits;
}

// Kafka Connect's Decimal bytes: minimal big-endian two's complement.
std::string Base64Unscaled(absl::int128 unscaled) {
  std::string bytes;
  for (int idx = 15; idx >= 0; --idx) {
    bytes.push_back(static_cast<char>(
        static_cast<uint8_t>(absl::Uint128Low64(absl::uint128(unscaled) >> (idx * 8)) & 0xff)));
  }
  // Drop leading bytes that only repeat the sign.
  while (bytes.size() > 1) {
    const auto first = static_cast<uint8_t>(bytes[0]);
    const auto second = static_cast<uint8_t>(bytes[1]);
    if ((first == 0x00 && (second & 0x80) == 0) || (first == 0xff && (second & 0x80) != 0)) {
      bytes.erase(0, 1);
    } else {
      break;
    }
  }
  return absl::Base64Escape(bytes);
}

// The text without trailing fractional zeros (and "-0" as "0").
std::string Canonical(std::string text) {
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  if (text == "-0") text = "0";
  return text;
}

enum class Wire {
  kPreciseSchema,
  kPreciseBare,
  kNumericFormat,
  kStringSchema,
  kStringBare,
  kDoubleSchema,
  kDoubleBare,
  kStringNoMode,
  kPreciseNoMode
};

TEST(DebeziumDecimalProperty, EveryModeGivesTheExactValueOrAnError) {
  std::mt19937_64 random(20261205);
  const absl::int128 kInt64Max = std::numeric_limits<int64_t>::max();
  int checked = 0;
  for (int round = 0; round < 400; ++round) {
    const int scale = static_cast<int>(random() % 11);
    absl::int128 unscaled = 0;
    absl::int128 power = 1;
    for (int idx = 0; idx < scale; ++idx) power *= 10;
    switch (round % 5) {
      case 0:  // whole numbers, the NUMERIC(p,0)-like case that base64 mistakes
        unscaled = absl::int128(static_cast<int64_t>(random() % 100000)) * power;
        break;
      case 1:  // small values
        unscaled = static_cast<int64_t>(random() % 2000001) - 1000000;
        break;
      case 2:  // near the int64 limits, just inside and just outside
        unscaled =
            kInt64Max - static_cast<int64_t>(random() % 3) + static_cast<int64_t>(random() % 3);
        if (random() % 2 == 0) unscaled = -unscaled - 1;
        break;
      case 3:  // wide values, up to ~30 digits
        unscaled = absl::MakeInt128(static_cast<int64_t>(random() % 100000), random());
        if (random() % 2 == 0) unscaled = -unscaled;
        break;
      default:  // any 64-bit value
        unscaled = static_cast<int64_t>(random());
        break;
    }
    const std::string text = DecimalText(unscaled, scale);
    const std::string base64 = Join({"\"", Base64Unscaled(unscaled), "\""});
    const std::string quoted = Join({"\"", text, "\""});
    for (Wire wire : {Wire::kPreciseSchema, Wire::kPreciseBare, Wire::kNumericFormat,
                      Wire::kStringSchema, Wire::kStringBare, Wire::kDoubleSchema,
                      Wire::kDoubleBare, Wire::kStringNoMode, Wire::kPreciseNoMode}) {
      std::string value;
      std::string column;
      std::optional<DecimalMode> mode;
      bool must_fail = false;
      switch (wire) {
        case Wire::kPreciseSchema:
          value = base64;
          column = DecimalColumn(scale);
          break;
        case Wire::kPreciseBare:
          value = base64;
          mode = DecimalMode::kPrecise;
          break;
        case Wire::kNumericFormat:
          value = text;
          column = DecimalColumn(scale);
          break;
        case Wire::kStringSchema:
          value = quoted;
          column = Column("string");
          break;
        case Wire::kStringBare:
          value = quoted;
          mode = DecimalMode::kString;
          break;
        case Wire::kDoubleSchema:
          value = text;
          column = Column("double");
          break;
        case Wire::kDoubleBare:
          value = text;
          mode = DecimalMode::kDouble;
          break;
        case Wire::kStringNoMode:
          value = quoted;
          must_fail = true;
          break;
        case Wire::kPreciseNoMode:
          value = base64;
          must_fail = true;
          break;
      }
      const std::string context = Join({"value ", value, " scale ", std::to_string(scale)});
      // Integer units at the value's own scale.
      absl::StatusOr<int64_t> units = DecodeOne<int64_t>(value, column, Decimal(scale, mode));
      if (must_fail || unscaled > kInt64Max || unscaled < -kInt64Max - 1) {
        EXPECT_FALSE(units.ok()) << context << " gave " << *units;
        if (!units.ok()) {
          EXPECT_EQ(units.status().code(), absl::StatusCode::kInvalidArgument);
        }
      } else {
        ASSERT_TRUE(units.ok()) << context << ": " << units.status();
        EXPECT_EQ(absl::int128(*units), unscaled) << context;
      }
      // Text, unscaled.
      absl::StatusOr<std::string> plain =
          DecodeOne<std::string>(value, column, WithMode(Decimal(), mode));
      if (must_fail) {
        EXPECT_FALSE(plain.ok()) << context << " gave " << *plain;
      } else if (wire == Wire::kPreciseBare) {
        // Base64 carries no scale: Decimal() without one cannot read it.
        EXPECT_FALSE(plain.ok()) << context;
      } else {
        ASSERT_TRUE(plain.ok()) << context << ": " << plain.status();
        EXPECT_EQ(Canonical(*plain), Canonical(text)) << context;
      }
      // Double: the exact value or an error.
      absl::StatusOr<double> binary = DecodeOne<double>(value, column, Decimal(scale, mode));
      if (must_fail) {
        EXPECT_FALSE(binary.ok()) << context;
      } else if (binary.ok()) {
        char buffer[512];
        auto [end, error] =
            std::to_chars(buffer, buffer + sizeof(buffer), *binary, std::chars_format::fixed);
        ASSERT_EQ(error, std::errc());
        EXPECT_EQ(Canonical(std::string(buffer, end)), Canonical(text)) << context;
      } else {
        EXPECT_THAT(std::string(binary.status().message()), HasSubstr("is not exact as a double"))
            << context;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 400 * 9);
}

}  // namespace
}  // namespace weir::debezium
