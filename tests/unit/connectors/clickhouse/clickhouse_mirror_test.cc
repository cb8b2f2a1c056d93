// The ClickHouse mirror sink against a real clickhouse-server (18.16 on
// Debian): random histories of three tables (a column added midway, a
// truncate, deletes) end with each live view equal to the reference model,
// value by value; a replay from an earlier point changes nothing; MySQL
// envelopes keep their exact types; an incompatible schema change fails the
// job or dead-letters the table's records while the other tables go on.

#include "weir/connectors/clickhouse_mirror.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/debezium_envelopes.h"
#include "tests/support/mirror_history.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "weir/formats/debezium_row.h"
#include "weir/testing.h"

namespace weir {
namespace {

using ::testing::HasSubstr;
using weir::debezium::RowChange;
using weir::debezium::RowDecoder;
using weir::testing::EnvelopeTable;
using weir::testing::MirrorHistory;
using weir::testing::ModelKind;
using weir::testing::ModelTable;

testing::ClickHouseServer* g_server = nullptr;

class ClickHouseMirrorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (g_server != nullptr) return;
    absl::StatusOr<std::unique_ptr<testing::ClickHouseServer>> server =
        testing::ClickHouseServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    g_server = server->release();
  }

  void SetUp() override {
    ASSERT_NE(g_server, nullptr);
    database_ = absl::StrCat(
        "mirror_", ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", getpid());
    ASSERT_TRUE(clickhouse::Query(g_server->Connection(), "CREATE DATABASE " + database_).ok());
    connection_ = g_server->Connection();
    connection_.database = database_;
  }
  void TearDown() override {
    if (g_server != nullptr) {
      (void)clickhouse::Query(g_server->Connection(), "DROP DATABASE IF EXISTS " + database_);
    }
  }

  std::string Query(const std::string& sql) {
    absl::StatusOr<std::string> answer = clickhouse::Query(connection_, sql);
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*answer)) : "";
  }

  static std::vector<RowChange> Decode(const MirrorHistory& history) {
    std::string error;
    std::vector<RowChange> changes = testing::DecodeHistory(history, &error);
    EXPECT_EQ(error, "");
    return changes;
  }

  std::unique_ptr<SinkWriter<RowChange>> Writer(clickhouse::MirrorSinkOptions options,
                                                std::shared_ptr<clickhouse::MirrorStats> stats) {
    options.connection = connection_;
    std::shared_ptr<Sink<RowChange>> sink = clickhouse::MirrorSink(options, std::move(stats));
    absl::StatusOr<std::unique_ptr<SinkWriter<RowChange>>> writer =
        sink->CreateWriter({.operator_name = "mirror", .operator_uid = "mirror"});
    EXPECT_TRUE(writer.ok()) << writer.status();
    return writer.ok() ? *std::move(writer) : nullptr;
  }

  // Writes `changes` in random batches with checkpoints (PreCommit) between.
  static void Feed(SinkWriter<RowChange>& writer, std::span<RowChange> changes,
                   std::mt19937_64& random) {
    int64_t checkpoint = 1;
    size_t at = 0;
    while (at < changes.size()) {
      const size_t size = std::min<size_t>(changes.size() - at, 1 + random() % 300);
      absl::Status written = writer.Write(changes.subspan(at, size), {});
      ASSERT_TRUE(written.ok()) << written;
      at += size;
      if (random() % 3 == 0) {
        ASSERT_TRUE(writer.PreCommit(checkpoint++).ok());
      }
    }
    ASSERT_TRUE(writer.PreCommit(checkpoint).ok());
  }

  // The model's rows as ClickHouse prints them in TSV, sorted.
  static std::vector<std::string> ExpectedTsv(const ModelTable& table) {
    std::vector<std::string> lines;
    for (const auto& [key, values] : table.rows) {
      std::vector<std::string> fields;
      for (size_t idx = 0; idx < values.size(); ++idx) {
        if (!values[idx].has_value()) {
          fields.push_back("\\N");
          continue;
        }
        const std::string& value = *values[idx];
        switch (table.columns[idx].kind) {
          case ModelKind::kBool:
            fields.push_back(value == "true" ? "1" : "0");
            break;
          case ModelKind::kDate:
            // ClickHouse prints day 0 (1970-01-01) as its "zero date".
            fields.push_back(value == "0" ? "0000-00-00" : testing::DateText(std::stoll(value)));
            break;
          default:
            fields.push_back(value);
        }
      }
      lines.push_back(absl::StrJoin(fields, "\t"));
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  std::vector<std::string> LiveTsv(const ModelTable& table) {
    std::vector<std::string> names;
    for (const testing::ModelColumn& column : table.columns) names.push_back(column.name);
    const std::string answer = Query(absl::StrCat("SELECT ", absl::StrJoin(names, ", "), " FROM ",
                                                  table.target, "_live FORMAT TSV"));
    std::vector<std::string> lines = absl::StrSplit(answer, '\n', absl::SkipEmpty());
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  std::string database_;
  clickhouse::ConnectionOptions connection_;
};

TEST_F(ClickHouseMirrorTest, RandomHistoriesEndAsTheReferenceModelAndReplaysChangeNothing) {
  for (uint64_t seed : {11u, 12u}) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const MirrorHistory history = MirrorHistory::Generate(seed, 3000);
    std::vector<RowChange> changes = Decode(history);
    ASSERT_EQ(changes.size(), history.records.size());
    std::mt19937_64 random(seed);
    auto stats = std::make_shared<clickhouse::MirrorStats>();
    {
      std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, stats);
      ASSERT_NE(writer, nullptr);
      Feed(*writer, changes, random);
      ASSERT_TRUE(writer->Close().ok());
    }
    EXPECT_EQ(stats->tables_created.load(), seed == 11u ? 3 : 0);  // the second seed reuses them
    EXPECT_EQ(stats->columns_added.load(), seed == 11u ? 1 : 0);
    EXPECT_GT(stats->deletes.load(), 100);
    EXPECT_EQ(stats->truncates.load(), 1);
    for (const auto& [name, table] : history.tables) {
      SCOPED_TRACE(name);
      EXPECT_GT(table.rows.size(), 50u);
      EXPECT_EQ(LiveTsv(table), ExpectedTsv(table));
    }
    // The deletes are rows marked deleted.
    EXPECT_NE(Query("SELECT count() FROM orders FINAL WHERE _is_deleted = 1"), "0");

    // A restart from an earlier checkpoint replays the changes after it
    // (with the same offsets): nothing changes.
    const size_t from = history.truncated_at + 10 + random() % 200;
    {
      std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, nullptr);
      ASSERT_NE(writer, nullptr);
      Feed(*writer, std::span<RowChange>(changes).subspan(from), random);
    }
    for (const auto& [name, table] : history.tables) {
      SCOPED_TRACE(absl::StrCat(name, " after a replay from ", from));
      EXPECT_EQ(LiveTsv(table), ExpectedTsv(table));
    }
    if (seed == 11u) {
      for (const auto& [name, table] : history.tables) {
        ASSERT_TRUE(clickhouse::Query(connection_, "TRUNCATE TABLE " + name).ok());
      }
    }
  }
  EXPECT_EQ(Query("SELECT name, type FROM system.columns WHERE database = '" + database_ +
                  "' AND table = 'orders' FORMAT TSV"),
            "id\tInt64\ntotal\tNullable(Decimal(12, 2))\nqty\tInt32\nnote\tNullable(String)\n"
            "at\tInt64\nextra\tNullable(String)\n_version\tUInt64\n_is_deleted\tUInt8");
  EXPECT_EQ(Query("SELECT engine_full FROM system.tables WHERE database = '" + database_ +
                  "' AND name = 'accounts' FORMAT TSV"),
            "ReplacingMergeTree(_version) ORDER BY (tenant, id) SETTINGS index_granularity = 8192");
}

TEST_F(ClickHouseMirrorTest, MySqlEnvelopesKeepTheirExactTypesAndValues) {
  EnvelopeTable table{
      .connector = testing::Connector::kMySql,
      .db = "shop",
      .table = "orders",
      .columns =
          {{"id",
            R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"0","connect.decimal.precision":"20"})"},
           {"precise",
            R"("type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"4","connect.decimal.precision":"8"})"},
           {"as_string", R"("type":"string","optional":true)"},
           {"as_double", R"("type":"double","optional":true)"},
           {"created",
            R"("type":"int64","optional":false,"name":"io.debezium.time.Timestamp","version":1)"},
           {"updated",
            R"("type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1)"},
           {"seen",
            R"("type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1)"},
           {"born",
            R"("type":"int32","optional":true,"name":"io.debezium.time.Date","version":1)"}},
      .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create(
      {.tables = {
           {.table = "shop.orders",
            .columns = {
                {.name = "as_string", .type = ColumnType::kDecimal, .precision = 30, .scale = 6},
                {.name = "as_double",
                 .type = ColumnType::kDecimal,
                 .precision = 10,
                 .scale = 2}}}}});
  ASSERT_TRUE(decoder.ok());
  std::vector<RowChange> changes;
  const auto add = [&](const std::string& key, const std::string& op,
                       std::optional<std::string> before, std::optional<std::string> after) {
    absl::StatusOr<RowChange> change = decoder->Decode(
        table.Key(key),
        table.Value(op, before, after, {.pos = 100 + static_cast<int64_t>(changes.size())}),
        "mysql.shop.orders");
    ASSERT_TRUE(change.ok()) << change.status();
    change->offset = static_cast<int64_t>(changes.size());
    changes.push_back(*std::move(change));
  };
  const std::string max_id = testing::DecimalBase64(absl::MakeInt128(0, UINT64_MAX));
  add(absl::StrCat(R"({"id":")", max_id, R"("})"), "c", std::nullopt,
      absl::StrCat(
          R"({"id":")", max_id, R"(","precise":")", testing::DecimalBase64(-99999999),
          R"(","as_string":"123456789012345678901234.000001","as_double":-0.5,"created":1709285400123,"updated":1709285400123456,"seen":"2024-03-01T10:30:00.000001+01:00","born":null})"));
  add(R"({"id":"AQ=="})", "c", std::nullopt,
      R"({"id":"AQ==","precise":null,"as_string":null,"as_double":null,"created":0,"updated":null,"seen":null,"born":0})");
  add(R"({"id":"Ag=="})", "c", std::nullopt,
      R"({"id":"Ag==","precise":null,"as_string":"1","as_double":2,"created":1,"updated":2,"seen":null,"born":19782})");
  add(R"({"id":"Ag=="})", "d",
      R"({"id":"Ag==","precise":null,"as_string":null,"as_double":null,"created":0,"updated":null,"seen":null,"born":null})",
      std::nullopt);
  std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(changes, {}).ok());
  ASSERT_TRUE(writer->PreCommit(1).ok());
  EXPECT_EQ(Query("SELECT name, type FROM system.columns WHERE database = '" + database_ +
                  "' AND table = 'orders' FORMAT TSV"),
            "id\tDecimal(20, 0)\nprecise\tNullable(Decimal(8, 4))\nas_string\tNullable(Decimal(30, "
            "6))\nas_double\tNullable(Decimal(10, 2))\ncreated\tInt64\nupdated\tNullable(Int64)\n"
            "seen\tNullable(Int64)\nborn\tNullable(Date)\n_version\tUInt64\n_is_deleted\tUInt8");
  // ClickHouse prints day 0 (1970-01-01, and MySQL's zero date in a NOT NULL
  // column, which Debezium sends as day 0) as 0000-00-00.
  EXPECT_EQ(Query("SELECT * FROM orders_live ORDER BY id FORMAT TSV"),
            "1\t\\N\t\\N\t\\N\t0\t\\N\t\\N\t0000-00-00\n"
            "18446744073709551615\t-9999.9999\t123456789012345678901234.000001\t-0.50\t"
            "1709285400123\t1709285400123456\t1709285400000001\t\\N");
}

TEST_F(ClickHouseMirrorTest, AnIncompatibleChangeDeadLettersThatTableAndTheOthersGoOn) {
  EnvelopeTable prices{
      .table = "prices",
      .columns =
          {{"id", R"("type":"int32","optional":false)"},
           {"price",
            R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"})"}},
      .key = {"id"}};
  EnvelopeTable other{
      .table = "other", .columns = {{"id", R"("type":"int32","optional":false)"}}, .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  std::vector<RowChange> changes;
  const auto add = [&](const EnvelopeTable& table, int id, const std::string& after) {
    absl::StatusOr<RowChange> change = decoder->Decode(
        table.Key(absl::StrCat(R"({"id":)", id, "}")), table.Value("c", std::nullopt, after));
    ASSERT_TRUE(change.ok()) << change.status();
    change->offset = static_cast<int64_t>(changes.size());
    changes.push_back(*std::move(change));
  };
  add(prices, 1, absl::StrCat(R"({"id":1,"price":")", testing::DecimalBase64(150), "\"}"));
  add(other, 1, R"({"id":1})");
  // The source's scale went from 2 to 3: Decimal(10, 3) no longer fits.
  prices.columns[1].second =
      R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"3","connect.decimal.precision":"10"})";
  add(prices, 2, absl::StrCat(R"({"id":2,"price":")", testing::DecimalBase64(1500), "\"}"));
  add(other, 2, R"({"id":2})");
  add(prices, 3, absl::StrCat(R"({"id":3,"price":")", testing::DecimalBase64(1), "\"}"));

  {  // OnIncompatible::kFail: the job fails, naming table and column.
    std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, nullptr);
    ASSERT_NE(writer, nullptr);
    absl::Status status = writer->Write(changes, {});
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(status.message(), HasSubstr("table public.prices: column \"price\" is now "
                                            "Decimal(10, 3), but ClickHouse table prices has "
                                            "Decimal(10, 2)"));
  }
  auto dead_letters = testing::CollectingDeadLetterQueue::Create();
  auto stats = std::make_shared<clickhouse::MirrorStats>();
  std::unique_ptr<SinkWriter<RowChange>> writer =
      Writer({.mirror = {.on_incompatible = mirror::OnIncompatible::kDeadLetter,
                         .dead_letters = dead_letters}},
             stats);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(changes, {}).ok());
  ASSERT_TRUE(writer->PreCommit(1).ok());
  EXPECT_EQ(Query("SELECT id, price FROM prices_live ORDER BY id FORMAT TSV"), "1\t1.50");
  EXPECT_EQ(Query("SELECT id FROM other_live ORDER BY id FORMAT TSV"), "1\n2");
  const std::vector<DeadLetter> letters = dead_letters->Letters();
  ASSERT_EQ(letters.size(), 2u);  // id 2 and, the table stopped, id 3
  EXPECT_EQ(stats->dead_letters.load(), 2);
  EXPECT_THAT(letters[0].error, HasSubstr("column \"price\""));
  EXPECT_EQ(letters[0].stage, "mirror");
  EXPECT_EQ(letters[0].offset, 2);
  EXPECT_THAT(letters[1].payload, HasSubstr("id=3"));
  EXPECT_EQ(letters[1].offset, 4);
}

TEST_F(ClickHouseMirrorTest, ADateClickHouseCannotHoldIsADeadLetterNotAnotherDate) {
  EnvelopeTable days{
      .connector = testing::Connector::kMySql,
      .db = "shop",
      .table = "days",
      .columns =
          {{"id", R"("type":"int32","optional":false)"},
           {"d", R"("type":"int32","optional":false,"name":"io.debezium.time.Date","version":1)"}},
      .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  std::vector<RowChange> changes;
  // 2024-03-01, then 1000-01-01 (MySQL's DATE goes back to year 1000).
  for (const auto& [id, day] : std::vector<std::pair<int, int>>{{1, 19783}, {2, -354285}}) {
    absl::StatusOr<RowChange> change = decoder->Decode(
        days.Key(absl::StrCat(R"({"id":)", id, "}")),
        days.Value("c", std::nullopt, absl::StrCat(R"({"id":)", id, R"(,"d":)", day, "}")));
    ASSERT_TRUE(change.ok()) << change.status();
    change->offset = id;
    changes.push_back(*std::move(change));
  }
  {  // Without a dead-letter queue the job fails, naming the column.
    std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, nullptr);
    ASSERT_NE(writer, nullptr);
    absl::Status status = writer->Write(changes, {});
    EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
    EXPECT_THAT(status.message(), HasSubstr("table shop.days: column \"d\": date -354285"));
  }
  ASSERT_TRUE(clickhouse::Query(connection_, "TRUNCATE TABLE days").ok());
  auto dead_letters = testing::CollectingDeadLetterQueue::Create();
  std::unique_ptr<SinkWriter<RowChange>> writer =
      Writer({.mirror = {.dead_letters = dead_letters}}, nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(changes, {}).ok());
  ASSERT_TRUE(writer->PreCommit(1).ok());
  EXPECT_EQ(Query("SELECT id, d FROM days_live FORMAT TSV"), "1\t2024-03-01");
  ASSERT_EQ(dead_letters->size(), 1u);
  EXPECT_EQ(dead_letters->Letters()[0].offset, 2);
  EXPECT_THAT(dead_letters->Letters()[0].error, HasSubstr("outside ClickHouse's Date range"));
}

TEST_F(ClickHouseMirrorTest, RenamedTablesAndColumnsAndLeftOutColumns) {
  EnvelopeTable users{.table = "users",
                      .columns = {{"id", R"("type":"int32","optional":false)"},
                                  {"name", R"("type":"string","optional":false)"},
                                  {"password", R"("type":"string","optional":false)"}},
                      .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  absl::StatusOr<RowChange> change = decoder->Decode(
      users.Key(R"({"id":1})"),
      users.Value("c", std::nullopt, R"({"id":1,"name":"ann","password":"secret"})"));
  ASSERT_TRUE(change.ok());
  std::unique_ptr<SinkWriter<RowChange>> writer =
      Writer({.mirror = {.tables = {{.source = "public.users",
                                     .target = "people",
                                     .rename_columns = {{"name", "full_name"}},
                                     .exclude_columns = {"password"}}}},
              .view_suffix = "_now"},
             nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(std::span<RowChange>(&*change, 1), {}).ok());
  ASSERT_TRUE(writer->PreCommit(1).ok());
  EXPECT_EQ(Query("SELECT * FROM people_now FORMAT TSVWithNames"), "id\tfull_name\n1\tann");
}

}  // namespace
}  // namespace weir
