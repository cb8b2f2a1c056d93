// weir::Row and weir::debezium::RowDecoder: PostgreSQL and MySQL connector
// envelopes with schema (every column type, the key from the record key,
// nullability, precise/string/double decimals, UNSIGNED BIGINT, zero dates,
// DATETIME vs TIMESTAMP precisions), schemaless envelopes with a declared
// schema, errors naming table and field, schema sharing, and Codec<Row>.

#include "weir/formats/debezium_row.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/debezium_envelopes.h"
#include "weir/codec.h"
#include "weir/row.h"

namespace weir::debezium {
namespace {

using ::testing::HasSubstr;
using weir::testing::Connector;
using weir::testing::DecimalBase64;
using weir::testing::EnvelopeTable;

// MySQL: BIGINT UNSIGNED (bigint.unsigned.handling.mode=precise), DECIMAL(10,2)
// (decimal.handling.mode=precise), DATETIME(3), DATETIME(6), TIMESTAMP(6),
// DATE (nullable: zero dates arrive as null), TIME(6), VARCHAR, TINYINT(1).
EnvelopeTable MySqlOrders() {
  return {
      .connector = Connector::kMySql,
      .db = "shop",
      .table = "orders",
      .columns =
          {{"id",
            R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"0","connect.decimal.precision":"20"})"},
           {"price",
            R"("type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"})"},
           {"created",
            R"("type":"int64","optional":false,"name":"io.debezium.time.Timestamp","version":1)"},
           {"updated",
            R"("type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1)"},
           {"seen_at",
            R"("type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1)"},
           {"ship_date",
            R"("type":"int32","optional":true,"name":"io.debezium.time.Date","version":1)"},
           {"ship_time",
            R"("type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1)"},
           {"note", R"("type":"string","optional":true)"},
           {"paid", R"("type":"int16","optional":false)"}},
      .key = {"id"}};
}

TEST(DebeziumRowTest, MySqlPreciseDecimalsUnsignedBigintAndDatetimePrecisions) {
  const EnvelopeTable table = MySqlOrders();
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  const absl::int128 max_unsigned = absl::MakeInt128(0, UINT64_MAX);
  const std::string id = DecimalBase64(max_unsigned);
  const std::string after = absl::StrCat(
      R"({"id":")", id, R"(","price":")", DecimalBase64(-1250),
      R"(","created":1709285400123,"updated":1709285400123456,"seen_at":"2024-03-01T09:30:00.654321Z","ship_date":null,"ship_time":34200000001,"note":"a \"quoted\" note","paid":1})");
  absl::StatusOr<RowChange> change =
      decoder->Decode(table.Key(absl::StrCat(R"({"id":")", id, R"("})")),
                      table.Value("c", std::nullopt, after,
                                  {.file = "mysql-bin.000007",
                                   .pos = 4711,
                                   .row = 2,
                                   .gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"}));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->op, Op::kCreate);
  EXPECT_EQ(change->table, "shop.orders");
  EXPECT_EQ(change->source.file, "mysql-bin.000007");
  EXPECT_EQ(change->source.pos, 4711);
  EXPECT_EQ(change->source.row, 2);
  EXPECT_EQ(change->source.gtid, "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
  EXPECT_EQ(change->source.server_id, 223344);
  ASSERT_TRUE(change->after.has_value());
  const Row& row = *change->after;
  const RowSchema& schema = row.schema();
  ASSERT_EQ(schema.columns().size(), 9u);
  EXPECT_EQ(schema.key(), std::vector<int>{0});
  EXPECT_EQ(schema.columns()[0],
            (RowColumn{.name = "id", .type = ColumnType::kDecimal, .precision = 20, .scale = 0}));
  EXPECT_EQ(std::get<absl::int128>(row.value(0)), max_unsigned);
  EXPECT_EQ(RowValueToString(row.value(0), schema.columns()[0]), "18446744073709551615");
  EXPECT_EQ(schema.columns()[1], (RowColumn{.name = "price",
                                            .type = ColumnType::kDecimal,
                                            .nullable = true,
                                            .precision = 10,
                                            .scale = 2}));
  EXPECT_EQ(RowValueToString(row.value(1), schema.columns()[1]), "-12.50");
  // DATETIME(3): io.debezium.time.Timestamp, millis; DATETIME(6): micros;
  // TIMESTAMP(6): ZonedTimestamp, micros UTC.
  EXPECT_EQ(schema.columns()[2].type, ColumnType::kTimestamp);
  EXPECT_EQ(schema.columns()[2].unit, RowTimeUnit::kMillis);
  EXPECT_EQ(std::get<int64_t>(row.value(2)), 1709285400123);
  EXPECT_EQ(schema.columns()[3].unit, RowTimeUnit::kMicros);
  EXPECT_EQ(std::get<int64_t>(row.value(3)), 1709285400123456);
  EXPECT_EQ(schema.columns()[4].type, ColumnType::kTimestamp);
  EXPECT_EQ(std::get<int64_t>(row.value(4)), 1709285400654321);
  EXPECT_EQ(schema.columns()[5].type, ColumnType::kDate);
  EXPECT_TRUE(row.is_null(5));  // a zero date of a nullable column
  EXPECT_EQ(schema.columns()[6].type, ColumnType::kTime);
  EXPECT_EQ(std::get<int64_t>(row.value(6)), 34200000001);
  EXPECT_EQ(std::get<std::string>(row.value(7)), "a \"quoted\" note");
  EXPECT_EQ(schema.columns()[8].type, ColumnType::kInt16);
  EXPECT_EQ(std::get<int64_t>(row.value(8)), 1);
}

TEST(DebeziumRowTest, MySqlDateAndConnectTimeTypes) {
  EnvelopeTable table{
      .connector = Connector::kMySql,
      .db = "shop",
      .table = "days",
      .columns =
          {{"id", R"("type":"int32","optional":false)"},
           {"d", R"("type":"int32","optional":false,"name":"io.debezium.time.Date","version":1)"},
           {"c",
            R"("type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1)"},
           {"cd",
            R"("type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1)"}},
      .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  // A zero date in a NOT NULL column: Debezium sends the epoch (day 0).
  absl::StatusOr<RowChange> change =
      decoder->Decode(table.Key(R"({"id":1})"),
                      table.Value("c", std::nullopt, R"({"id":1,"d":0,"c":-1000,"cd":-719162})"));
  ASSERT_TRUE(change.ok()) << change.status();
  const Row& row = *change->after;
  EXPECT_EQ(std::get<int64_t>(row.value(1)), 0);
  EXPECT_EQ(row.schema().columns()[2].unit, RowTimeUnit::kMillis);
  EXPECT_EQ(std::get<int64_t>(row.value(2)), -1000);
  EXPECT_EQ(row.schema().columns()[3].type, ColumnType::kDate);
  EXPECT_EQ(std::get<int64_t>(row.value(3)), -719162);  // 0001-01-01
}

// decimal.handling.mode=string and double: the schema says "string" and
// "double"; a declared kDecimal column reads them exactly.
TEST(DebeziumRowTest, MySqlStringAndDoubleDecimalsAsDeclared) {
  EnvelopeTable table{.connector = Connector::kMySql,
                      .db = "shop",
                      .table = "prices",
                      .columns = {{"id", R"("type":"int64","optional":false)"},
                                  {"s", R"("type":"string","optional":true)"},
                                  {"d", R"("type":"double","optional":true)"}},
                      .key = {"id"}};
  absl::StatusOr<RowDecoder> plain = RowDecoder::Create();
  ASSERT_TRUE(plain.ok());
  absl::StatusOr<RowChange> undeclared = plain->Decode(
      table.Key(R"({"id":1})"), table.Value("c", std::nullopt, R"({"id":1,"s":"12.50","d":0.1})"));
  ASSERT_TRUE(undeclared.ok()) << undeclared.status();
  EXPECT_EQ(undeclared->after->schema().columns()[1].type, ColumnType::kString);
  EXPECT_EQ(undeclared->after->schema().columns()[2].type, ColumnType::kFloat64);
  EXPECT_EQ(std::get<double>(undeclared->after->value(2)), 0.1);

  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create(
      {.tables = {{.table = "shop.prices",
                   .columns = {
                       {.name = "s", .type = ColumnType::kDecimal, .precision = 12, .scale = 3},
                       {.name = "d", .type = ColumnType::kDecimal, .precision = 5, .scale = 2}}}}});
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  absl::StatusOr<RowChange> change =
      decoder->Decode(table.Key(R"({"id":1})"),
                      table.Value("c", std::nullopt, R"({"id":1,"s":"-98765.43","d":123.45})"));
  ASSERT_TRUE(change.ok()) << change.status();
  const Row& row = *change->after;
  EXPECT_TRUE(row.schema().columns()[1].nullable);  // from the schema
  EXPECT_EQ(std::get<absl::int128>(row.value(1)), absl::int128(-98765430));
  EXPECT_EQ(RowValueToString(row.value(1), row.schema().columns()[1]), "-98765.430");
  EXPECT_EQ(std::get<absl::int128>(row.value(2)), absl::int128(12345));

  // More fractional digits than the scale, or more digits than the precision.
  absl::StatusOr<RowChange> rounded = decoder->Decode(
      table.Key(R"({"id":2})"), table.Value("c", std::nullopt, R"({"id":2,"s":"1","d":0.125})"));
  ASSERT_FALSE(rounded.ok());
  EXPECT_EQ(rounded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rounded.status().message(), HasSubstr("table shop.prices: after: field \"d\""));
  absl::StatusOr<RowChange> too_long = decoder->Decode(
      table.Key(R"({"id":3})"), table.Value("c", std::nullopt, R"({"id":3,"s":"1","d":1234.5})"));
  ASSERT_FALSE(too_long.ok());
  EXPECT_THAT(too_long.status().message(),
              HasSubstr("field \"d\": decimal 1234.50 has more than 5"));
  absl::StatusOr<RowChange> not_a_number = decoder->Decode(
      table.Key(R"({"id":4})"), table.Value("c", std::nullopt, R"({"id":4,"s":"abc","d":1})"));
  ASSERT_FALSE(not_a_number.ok());
  EXPECT_THAT(not_a_number.status().message(), HasSubstr("field \"s\""));
}

TEST(DebeziumRowTest, PostgresTypesKeyAndDeleteWithKeyOnlyBefore) {
  EnvelopeTable table{
      .table = "accounts",
      .columns =
          {{"tenant", R"("type":"string","optional":false)"},
           {"id", R"("type":"int32","optional":false)"},
           {"uid", R"("type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1)"},
           {"doc", R"("type":"string","optional":true,"name":"io.debezium.data.Json","version":1)"},
           {"balance",
            R"("type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal")"},
           {"blob", R"("type":"bytes","optional":true)"},
           {"ok", R"("type":"boolean","optional":false)"},
           {"ratio", R"("type":"float","optional":true)"},
           {"born",
            R"("type":"int32","optional":true,"name":"io.debezium.time.Date","version":1)"}},
      .key = {"tenant", "id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  const std::string good = absl::StrCat(
      R"({"tenant":"acme","id":7,"uid":"6f1b4a4e-0c7e-4d5e-9f00-1234567890ab","doc":"{\"a\": [1, 2]}","balance":{"scale":3,"value":")",
      DecimalBase64(123456), R"("},"blob":"AAEC/w==","ok":true,"ratio":0.5,"born":19000})");
  absl::StatusOr<RowChange> change = decoder->Decode(
      table.Key(R"({"tenant":"acme","id":7})"), table.Value("u", std::nullopt, good, {.lsn = 42}));
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->table, "public.accounts");
  EXPECT_EQ(change->source.lsn, 42);
  const Row& row = *change->after;
  EXPECT_EQ(row.schema().key(), (std::vector<int>{0, 1}));
  EXPECT_EQ(std::get<std::string>(row.value(2)), "6f1b4a4e-0c7e-4d5e-9f00-1234567890ab");
  EXPECT_EQ(row.schema().columns()[3].type, ColumnType::kJson);
  EXPECT_EQ(std::get<std::string>(row.value(3)), R"({"a": [1, 2]})");
  EXPECT_EQ(row.schema().columns()[4].type, ColumnType::kDecimalText);
  EXPECT_EQ(std::get<std::string>(row.value(4)), "123.456");
  EXPECT_EQ(std::get<std::string>(row.value(5)), std::string("\x00\x01\x02\xff", 4));
  EXPECT_EQ(std::get<bool>(row.value(6)), true);
  EXPECT_EQ(row.schema().columns()[7].type, ColumnType::kFloat32);
  EXPECT_EQ(std::get<int64_t>(row.value(8)), 19000);

  // REPLICA IDENTITY DEFAULT: the delete's before holds the key only.
  absl::StatusOr<RowChange> deleted = decoder->Decode(
      table.Key(R"({"tenant":"acme","id":7})"),
      table.Value(
          "d",
          R"({"tenant":"acme","id":7,"uid":null,"doc":null,"balance":null,"blob":null,"ok":false,"ratio":null,"born":null})",
          std::nullopt, {.lsn = 43}));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->op, Op::kDelete);
  ASSERT_TRUE(deleted->before.has_value());
  EXPECT_EQ(deleted->before->schema_ptr(), row.schema_ptr()) << "one schema for both";
  EXPECT_EQ(std::get<std::string>(deleted->before->value(0)), "acme");

  // A truncate and a tombstone.
  absl::StatusOr<RowChange> truncate =
      decoder->Decode("", table.Value("t", std::nullopt, std::nullopt));
  ASSERT_TRUE(truncate.ok()) << truncate.status();
  EXPECT_EQ(truncate->op, Op::kTruncate);
  EXPECT_EQ(truncate->table, "public.accounts");
  absl::StatusOr<RowChange> tombstone = decoder->Decode(table.Key(R"({"tenant":"a","id":1})"), "");
  ASSERT_TRUE(tombstone.ok());
  EXPECT_EQ(tombstone->op, Op::kTombstone);

  // What a topic prefix also takes in: transaction markers, heartbeats,
  // logical decoding messages. Anything else without "op" is an error.
  const struct {
    const char* value;
    Op op;
  } others[] = {
      {R"({"status":"END","id":"571:53195829","ts_ms":1,"event_count":2,"data_collections":[]})",
       Op::kTransaction},
      {R"({"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}]},"payload":{"ts_ms":1700000000000}})",
       Op::kHeartbeat},
      {R"({"op":"m","ts_ms":1,"source":{"connector":"postgresql"},"message":{"prefix":"p","content":"Zm9v"}})",
       Op::kMessage},
  };
  for (const auto& other : others) {
    absl::StatusOr<RowChange> decoded = decoder->Decode("", other.value);
    ASSERT_TRUE(decoded.ok()) << decoded.status() << " " << other.value;
    EXPECT_EQ(decoded->op, other.op) << other.value;
    EXPECT_FALSE(IsRowOp(decoded->op));
  }
  absl::StatusOr<RowChange> no_op = decoder->Decode("", R"({"after":{"x":1}})");
  ASSERT_FALSE(no_op.ok());
  EXPECT_THAT(no_op.status().message(), HasSubstr("no \"op\" field"));
}

TEST(DebeziumRowTest, ValuesThatDoNotFitTheirColumnNameTableAndField) {
  EnvelopeTable table{.table = "t",
                      .columns = {{"id", R"("type":"int16","optional":false)"},
                                  {"n", R"("type":"string","optional":false)"}},
                      .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  const struct {
    const char* after;
    const char* message;
  } cases[] = {
      {R"({"id":40000,"n":"x"})", "after: field \"id\""},
      {R"({"id":1.5,"n":"x"})", "after: field \"id\""},
      {R"({"id":1,"n":null})", "after: field \"n\": null, but the column is not nullable"},
      {R"({"id":1})", "after: field \"n\": required, but missing"},
      {R"({"id":1,"n":"x","extra":1})", "after: field \"extra\": not a column"},
      {R"({"id":1,"n":"__debezium_unavailable_value"})", "field \"n\": the value is Debezium's"},
  };
  for (const auto& test_case : cases) {
    absl::StatusOr<RowChange> change =
        decoder->Decode(table.Key(R"({"id":1})"), table.Value("c", std::nullopt, test_case.after));
    ASSERT_FALSE(change.ok()) << test_case.after;
    EXPECT_EQ(change.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(change.status().message(), HasSubstr("table public.t: "));
    EXPECT_THAT(change.status().message(), HasSubstr(test_case.message));
  }
  absl::StatusOr<RowChange> broken = decoder->Decode("", R"({"payload": {"op": "c")");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss);
}

TEST(DebeziumRowTest, SchemalessRecordsUseTheDeclaredSchema) {
  RowTable declared{
      .table = "inventory.items",
      .columns = {{.name = "id", .type = ColumnType::kInt64},
                  {.name = "price",
                   .type = ColumnType::kDecimal,
                   .nullable = true,
                   .precision = 8,
                   .scale = 2},
                  {.name = "at", .type = ColumnType::kTimestamp, .unit = RowTimeUnit::kMicros}},
      .key = {"id"},
      .decimal_mode = DecimalMode::kPrecise};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create({.tables = {declared}});
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  const std::string value = absl::StrCat(
      R"({"before":null,"after":{"id":5,"price":")", DecimalBase64(100000),
      R"(","at":1700000000000001},"source":{"connector":"mysql","db":"inventory","table":"items","file":"b.1","pos":9,"row":0},"op":"c","ts_ms":1})");
  absl::StatusOr<RowChange> change = decoder->Decode(R"({"id":5})", value);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->after->schema().key(), std::vector<int>{0});
  EXPECT_EQ(RowValueToString(change->after->value(1), change->after->schema().columns()[1]),
            "1000.00");
  EXPECT_EQ(std::get<int64_t>(change->after->value(2)), 1700000000000001);

  // Decimal(8,2) holds at most 999999.99; base64 that is no Decimal bytes.
  absl::StatusOr<RowChange> too_long = decoder->Decode(
      R"({"id":6})",
      absl::StrCat(R"({"after":{"id":6,"price":")", DecimalBase64(100000000),
                   R"(","at":1},"source":{"db":"inventory","table":"items"},"op":"c"})"));
  ASSERT_FALSE(too_long.ok());
  EXPECT_THAT(too_long.status().message(),
              HasSubstr("field \"price\": decimal 1000000.00 has more than 8 digits"));
  absl::StatusOr<RowChange> not_base64 = decoder->Decode(
      R"({"id":7})",
      R"({"after":{"id":7,"price":"12.5","at":1},"source":{"db":"inventory","table":"items"},"op":"c"})");
  ASSERT_FALSE(not_base64.ok());
  EXPECT_THAT(not_base64.status().message(), HasSubstr("field \"price\": precise decimal"));

  // A table nobody declared, and a declared decimal without a mode.
  absl::StatusOr<RowChange> unknown = decoder->Decode(
      "", R"({"after":{"id":1},"source":{"db":"inventory","table":"other"},"op":"c"})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("table inventory.other: the record has no schema"));
  declared.decimal_mode.reset();
  absl::StatusOr<RowDecoder> modeless = RowDecoder::Create({.tables = {declared}});
  ASSERT_TRUE(modeless.ok());
  absl::StatusOr<RowChange> ambiguous = modeless->Decode("", value);
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_THAT(ambiguous.status().message(), HasSubstr("field \"price\""));
  EXPECT_THAT(ambiguous.status().message(), HasSubstr("ambiguous"));

  EXPECT_FALSE(
      RowDecoder::Create(
          {.tables = {{.table = "x",
                       .columns = {{.name = "d", .type = ColumnType::kDecimal, .precision = 40}}}}})
          .ok());
}

TEST(DebeziumRowTest, ANewColumnGivesANewSchemaAndEqualSchemasAreShared) {
  EnvelopeTable table{
      .table = "t", .columns = {{"id", R"("type":"int32","optional":false)"}}, .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  absl::StatusOr<RowChange> first =
      decoder->Decode(table.Key(R"({"id":1})"), table.Value("c", std::nullopt, R"({"id":1})"));
  absl::StatusOr<RowChange> second =
      decoder->Decode(table.Key(R"({"id":2})"), table.Value("c", std::nullopt, R"({"id":2})"));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->after->schema_ptr(), second->after->schema_ptr());
  table.columns.push_back({"added", R"("type":"string","optional":true)"});
  absl::StatusOr<RowChange> third = decoder->Decode(
      table.Key(R"({"id":3})"), table.Value("c", std::nullopt, R"({"id":3,"added":"x"})"));
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_NE(third->after->schema_ptr(), first->after->schema_ptr());
  EXPECT_EQ(third->after->schema().columns().size(), 2u);
  EXPECT_TRUE(third->after->schema().columns()[1].nullable);
}

TEST(RowCodecTest, RoundTripsEveryTypeAndSharesDecodedSchemas) {
  absl::StatusOr<std::shared_ptr<const RowSchema>> schema = RowSchema::Create(
      "s.t",
      {{.name = "b", .type = ColumnType::kBool},
       {.name = "i", .type = ColumnType::kInt32},
       {.name = "u", .type = ColumnType::kUInt64},
       {.name = "f", .type = ColumnType::kFloat64, .nullable = true},
       {.name = "d", .type = ColumnType::kDecimal, .precision = 38, .scale = 10},
       {.name = "s", .type = ColumnType::kString, .nullable = true},
       {.name = "ts", .type = ColumnType::kTimestamp, .unit = RowTimeUnit::kNanos}},
      {"i"});
  ASSERT_TRUE(schema.ok()) << schema.status();
  std::mt19937_64 random(7);
  std::vector<Row> rows;
  std::string encoded;
  for (int idx = 0; idx < 50; ++idx) {
    Row row(*schema);
    row.Set(0, (random() & 1) == 1);
    row.Set(1, static_cast<int64_t>(static_cast<int32_t>(random())));
    row.Set(2, static_cast<uint64_t>(random()));
    if (idx % 3 != 0) row.Set(3, static_cast<double>(random()) / 7.0);
    row.Set(4, absl::MakeInt128(static_cast<int64_t>(random() >> 20), random()) *
                   (idx % 2 == 0 ? 1 : -1));
    if (idx % 5 != 0) row.Set(5, std::string("a\0b", 3) + std::to_string(random()));
    row.Set(6, static_cast<int64_t>(random()));
    Codec<Row>::Encode(row, encoded);
    rows.push_back(std::move(row));
  }
  std::string_view in = encoded;
  std::vector<Row> decoded(rows.size());
  for (size_t idx = 0; idx < rows.size(); ++idx) {
    ASSERT_TRUE(Codec<Row>::Decode(in, decoded[idx])) << idx;
    EXPECT_EQ(decoded[idx], rows[idx]) << decoded[idx].ToString() << " vs " << rows[idx].ToString();
  }
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(decoded[0].schema_ptr(), decoded[49].schema_ptr());
  // Every truncation is refused.
  std::string one;
  Codec<Row>::Encode(rows[1], one);
  for (size_t size = 0; size < one.size(); ++size) {
    std::string_view cut(one.data(), size);
    Row row;
    EXPECT_FALSE(Codec<Row>::Decode(cut, row)) << size;
  }
}

TEST(RowSchemaTest, RefusesBadSchemas) {
  EXPECT_FALSE(RowSchema::Create("t", {{.name = ""}}, {}).ok());
  EXPECT_FALSE(RowSchema::Create("t", {{.name = "a"}, {.name = "a"}}, {}).ok());
  EXPECT_FALSE(RowSchema::Create("t", {{.name = "a"}}, {"b"}).ok());
  EXPECT_FALSE(RowSchema::Create("t", {{.name = "a", .nullable = true}}, {"a"}).ok());
  EXPECT_FALSE(
      RowSchema::Create(
          "t", {{.name = "a", .type = ColumnType::kDecimal, .precision = 5, .scale = 6}}, {})
          .ok());
  EXPECT_TRUE(RowSchema::Create("t", {{.name = "a"}}, {"a"}).ok());
}

}  // namespace
}  // namespace weir::debezium
