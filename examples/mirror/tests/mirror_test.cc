// weir-mirror end to end: a random history of three tables (a column added
// midway, a truncate, deletes; PostgreSQL and MySQL envelopes) produced to
// librdkafka's mock broker in ten parts, weir-mirror kill -9'ed during each
// part and restarted from its checkpoints, then a bounded run to the end:
// ClickHouse's live views and the DuckDB tables equal the reference model,
// value by value. Also: --help names every flag, and bad flags are refused.

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "examples/mirror/mirror_app.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/mirror_history.h"
#include "tests/support/postgres_server.h"
#include "tests/support/prerequisite.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"
#include "weir/connectors/clickhouse.h"
#ifdef WEIR_MIRROR_DUCKDB
#include "weir/connectors/duckdb_mirror.h"
#endif

namespace mirror_app {
namespace {

using ::testing::HasSubstr;
using weir::testing::MirrorHistory;
using weir::testing::ModelKind;
using weir::testing::ModelTable;

// The checkpoint ids in a run's log: the one it restored ("from checkpoint
// N)") and those its status lines name ("last checkpoint N").
std::vector<int64_t> CheckpointsIn(const std::string& text) {
  std::vector<int64_t> ids;
  for (const char* marker : {"from checkpoint ", "last checkpoint "}) {
    for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + 1)) {
      int64_t id = 0;
      const size_t begin = at + std::strlen(marker);
      const size_t end = text.find_first_not_of("0123456789", begin);
      if (absl::SimpleAtoi(text.substr(begin, end - begin), &id)) ids.push_back(id);
    }
  }
  return ids;
}

// The records read so far by the run whose log is `text` (its last status
// line's "<n> read"), or -1.
int64_t LastRead(const std::string& text) {
  const size_t at = text.rfind(" read, lag ");
  if (at == std::string::npos) return -1;
  const size_t begin = text.rfind(' ', at - 1) + 1;
  int64_t read = -1;
  (void)absl::SimpleAtoi(text.substr(begin, at - begin), &read);
  return read;
}

// Rows as "v1|v2|..." sorted, NULL as "NULL"; dates as text, timestamps as
// micros, booleans as the store prints them.
std::vector<std::string> ModelRows(const ModelTable& table, bool clickhouse) {
  std::vector<std::string> lines;
  for (const auto& [key, values] : table.rows) {
    std::vector<std::string> fields;
    for (size_t idx = 0; idx < values.size(); ++idx) {
      if (!values[idx].has_value()) {
        fields.push_back(clickhouse ? "\\N" : "NULL");
        continue;
      }
      const std::string& value = *values[idx];
      switch (table.columns[idx].kind) {
        case ModelKind::kBool:
          fields.push_back(clickhouse ? (value == "true" ? "1" : "0") : value);
          break;
        case ModelKind::kDate:
          fields.push_back(clickhouse && value == "0" ? "0000-00-00"
                                                      : weir::testing::DateText(std::stoll(value)));
          break;
        default:
          fields.push_back(value);
      }
    }
    lines.push_back(absl::StrJoin(fields, clickhouse ? "\t" : "|"));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST(MirrorFlagsTest, HelpNamesEveryFlagAndBadFlagsAreRefused) {
  const std::string usage = Usage("weir-mirror");
  for (const char* flag : {"--brokers",
                           "--topics",
                           "--topic-prefix",
                           "--clickhouse-url",
                           "--duckdb",
                           "--dead-letter-topic",
                           "--on-incompatible",
                           "--table",
                           "--rename-column",
                           "--exclude-column",
                           "--decimal-column",
                           "--checkpoint-uri",
                           "--checkpoint-interval",
                           "--parallelism",
                           "--http-port",
                           "--status-interval",
                           "--bounded",
                           "--only-listed",
                           "--duckdb-query",
                           "--postgres",
                           "--postgres-tables",
                           "--postgres-slot",
                           "--postgres-publication"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
  const auto parse = [](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    bool help = false;
    return ParseConfig(
        static_cast<int>(argv.size()), argv.data(),
        [](const char*) -> const char* { return nullptr; }, &help);
  };
  EXPECT_FALSE(parse({"m", "--topics=a", "--clickhouse-url=http://x"}).ok());   // no brokers
  EXPECT_FALSE(parse({"m", "--brokers=b", "--clickhouse-url=http://x"}).ok());  // no topics
  EXPECT_FALSE(parse({"m", "--brokers=b", "--topics=a"}).ok());                 // no target
  EXPECT_FALSE(parse({"m", "--brokers=b", "--topics=a", "--clickhouse-url=u",
                      "--on-incompatible=dead-letter"})
                   .ok());
  EXPECT_FALSE(parse({"m", "--brokers=b", "--topics=a", "--clickhouse-url=u", "--nope=1"}).ok());
  EXPECT_FALSE(parse({"m", "--postgres=host=db", "--clickhouse-url=u"}).ok());  // no tables
  EXPECT_FALSE(
      parse({"m", "--postgres=host=db", "--postgres-tables=t", "--topics=a", "--clickhouse-url=u"})
          .ok());
  absl::StatusOr<MirrorConfig> postgres = parse(
      {"m", "--postgres=host=db", "--postgres-tables=public.a,public.b", "--clickhouse-url=u"});
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  EXPECT_EQ(postgres->postgres_tables, (std::vector<std::string>{"public.a", "public.b"}));
  EXPECT_EQ(postgres->postgres_slot, "weir_mirror");
  absl::StatusOr<MirrorConfig> config =
      parse({"m", "--brokers=b", "--topics=a,b", "--clickhouse-url=u",
             "--table=public.orders=orders_copy", "--rename-column=public.orders.total=amount",
             "--exclude-column=public.orders.secret", "--decimal-column=shop.t.price:10:2"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->topics, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(config->mirror.tables.size(), 1u);
  EXPECT_EQ(config->mirror.tables[0].target, "orders_copy");
  EXPECT_EQ(config->mirror.tables[0].rename_columns[0].second, "amount");
  EXPECT_EQ(config->mirror.tables[0].exclude_columns[0], "secret");
  ASSERT_EQ(config->decoder.tables.size(), 1u);
  EXPECT_EQ(config->decoder.tables[0].columns[0].scale, 2);
}

class MirrorEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<weir::testing::ClickHouseServer>> server =
        weir::testing::ClickHouseServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    clickhouse_ = *std::move(server);
    database_ = absl::StrCat("mirror_e2e_", getpid());
    connection_ = clickhouse_->Connection();
    ASSERT_TRUE(weir::clickhouse::Query(connection_, "CREATE DATABASE " + database_).ok());
    connection_.database = database_;
    absl::StatusOr<std::unique_ptr<weir::kafka::testing::KafkaTestBroker>> broker =
        weir::kafka::testing::KafkaTestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("weir-mirror-test");
    ASSERT_TRUE(dir.ok());
    dir_ = *dir;
  }
  void TearDown() override {
    if (clickhouse_ != nullptr) {
      (void)weir::clickhouse::Query(clickhouse_->Connection(),
                                    "DROP DATABASE IF EXISTS " + database_);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::vector<std::string> ClickHouseRows(const ModelTable& table) {
    std::vector<std::string> names;
    for (const weir::testing::ModelColumn& column : table.columns) names.push_back(column.name);
    absl::StatusOr<std::string> answer = weir::clickhouse::Query(
        connection_, absl::StrCat("SELECT ", absl::StrJoin(names, ", "), " FROM ", table.target,
                                  "_live FORMAT TSV"));
    EXPECT_TRUE(answer.ok()) << answer.status();
    if (!answer.ok()) return {};
    std::vector<std::string> lines =
        absl::StrSplit(absl::StripTrailingAsciiWhitespace(*answer), '\n', absl::SkipEmpty());
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  std::unique_ptr<weir::testing::ClickHouseServer> clickhouse_;
  std::string database_;
  weir::clickhouse::ConnectionOptions connection_;
  std::unique_ptr<weir::kafka::testing::KafkaTestBroker> broker_;
  std::string dir_;
};

TEST_F(MirrorEndToEndTest, KilledTenTimesDuringAHistoryEndsAsTheReferenceModel) {
  const MirrorHistory history = MirrorHistory::Generate(31, 2400);
  for (const auto& [name, table] : history.tables) {
    ASSERT_TRUE(broker_->CreateTopic(table.topic, 1).ok());
  }
  ASSERT_TRUE(broker_->CreateTopic("mirror.dlq", 1).ok());
  const auto produce = [&](size_t from, size_t to) {
    std::map<std::string, std::vector<weir::kafka::testing::TestRecord>> by_topic;
    for (size_t idx = from; idx < to && idx < history.records.size(); ++idx) {
      const weir::testing::HistoryRecord& record = history.records[idx];
      by_topic[record.topic].push_back({.key = record.key, .value = record.value, .partition = 0});
    }
    for (const auto& [topic, records] : by_topic) {
      ASSERT_TRUE(weir::kafka::testing::Produce(broker_->bootstrap(), topic, records).ok());
    }
  };
  std::vector<std::string> topics;
  for (const auto& [name, table] : history.tables) topics.push_back(table.topic);
  std::vector<std::string> argv = {
      WEIR_MIRROR_PATH,
      absl::StrCat("--brokers=", broker_->bootstrap()),
      absl::StrCat("--topics=", absl::StrJoin(topics, ",")),
      absl::StrCat("--clickhouse-url=", clickhouse_->url()),
      absl::StrCat("--clickhouse-user=", weir::testing::ClickHouseServer::kUser),
      absl::StrCat("--clickhouse-password=", weir::testing::ClickHouseServer::kPassword),
      absl::StrCat("--clickhouse-database=", database_),
      absl::StrCat("--checkpoint-uri=file://", dir_, "/checkpoints"),
      "--checkpoint-interval=150ms",
      "--status-interval=50ms",
      "--dead-letter-topic=mirror.dlq",
      // Three single-partition topics over two workers: each copy has two
      // writers, whose checkpoints a restore commits per worker.
      "--parallelism=2",
  };
#ifdef WEIR_MIRROR_DUCKDB
  const std::string duckdb_path = dir_ + "/mirror.duckdb";
  argv.push_back("--duckdb=" + duckdb_path);
#endif
  const std::string log = dir_ + "/mirror.log";
  constexpr int kKills = 10;
  const size_t part = history.records.size() / (kKills + 1);
  produce(0, part);
  int kills_with_new_work = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    const size_t log_start = weir::testing::ReadFileOrEmpty(log).size();
    auto child = weir::testing::ChildProcess::Spawn(argv, {.log_path = log});
    ASSERT_TRUE(child.ok()) << child.status();
    // Until this run completed a checkpoint beyond the one it restored.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    int64_t restored = -1;
    bool checkpointed = false;
    while (!checkpointed && (*child)->Running() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
      const std::string text = weir::testing::ReadFileOrEmpty(log).substr(log_start);
      const size_t running = text.find("weir-mirror: running (");
      if (running == std::string::npos) continue;
      const std::vector<int64_t> ids = CheckpointsIn(text.substr(running));
      if (restored < 0 && !ids.empty()) restored = ids.front();
      for (int64_t id : ids) checkpointed |= restored >= 0 && id > restored;
    }
    ASSERT_TRUE(checkpointed) << "no checkpoint completed; log:\n"
                              << weir::testing::ReadFileOrEmpty(log).substr(log_start);
    // The next part arrives while this run reads; it is killed once it has
    // read some of it (or after 300 ms).
    const int64_t read_before = LastRead(weir::testing::ReadFileOrEmpty(log).substr(log_start));
    produce(part * (kill + 1), part * (kill + 2));
    const absl::Time wait_until = absl::Now() + absl::Milliseconds(300);
    bool reading = false;
    while (!reading && absl::Now() < wait_until) {
      absl::SleepFor(absl::Milliseconds(5));
      reading = LastRead(weir::testing::ReadFileOrEmpty(log).substr(log_start)) > read_before;
    }
    kills_with_new_work += reading ? 1 : 0;
    ASSERT_TRUE((*child)->Running()) << "weir-mirror stopped by itself; log:\n"
                                     << weir::testing::ReadFileOrEmpty(log).substr(log_start);
    (*child)->Kill();
  }
  produce(part * (kKills + 1), history.records.size());
  argv.push_back("--bounded");
  auto child = weir::testing::ChildProcess::Spawn(argv, {.log_path = log});
  ASSERT_TRUE(child.ok()) << child.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while ((*child)->Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_FALSE((*child)->Running()) << weir::testing::ReadFileOrEmpty(log);
  ASSERT_EQ((*child)->exit_status(), 0) << weir::testing::ReadFileOrEmpty(log);
  const std::string text = weir::testing::ReadFileOrEmpty(log);
  size_t restores = 0;
  for (size_t at = text.find("restoring job"); at != std::string::npos;
       at = text.find("restoring job", at + 1)) {
    ++restores;
  }
  EXPECT_EQ(restores, static_cast<size_t>(kKills)) << text;
  std::printf("kills that landed while the run was reading new records: %d of %d\n",
              kills_with_new_work, kKills);

  for (const auto& [name, table] : history.tables) {
    SCOPED_TRACE(name);
    EXPECT_GT(table.rows.size(), 30u);
    EXPECT_EQ(ClickHouseRows(table), ModelRows(table, /*clickhouse=*/true));
  }
#ifdef WEIR_MIRROR_DUCKDB
  for (const auto& [name, table] : history.tables) {
    SCOPED_TRACE(absl::StrCat("duckdb ", name));
    std::vector<std::string> select;
    for (const weir::testing::ModelColumn& column : table.columns) {
      if (column.kind == ModelKind::kTimestampMicros) {
        select.push_back(absl::StrCat("epoch_us(\"", column.name, "\")"));
      } else if (column.kind == ModelKind::kDouble) {
        select.push_back(
            absl::StrCat("regexp_replace(CAST(\"", column.name, "\" AS VARCHAR), '\\.0$', '')"));
      } else {
        select.push_back(absl::StrCat("CAST(\"", column.name, "\" AS VARCHAR)"));
      }
    }
    auto rows = weir::duckdb::Query(
        duckdb_path,
        absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM \"", table.target, "\""));
    ASSERT_TRUE(rows.ok()) << rows.status();
    std::vector<std::string> lines;
    for (const auto& row : *rows) {
      std::vector<std::string> fields;
      for (const auto& value : row) fields.push_back(value.value_or("NULL"));
      lines.push_back(absl::StrJoin(fields, "|"));
    }
    std::sort(lines.begin(), lines.end());
    EXPECT_EQ(lines, ModelRows(table, /*clickhouse=*/false));
  }
#else
  WEIR_MISSING_PREREQUISITE(
      "libduckdb is not installed (.ci/setup-duckdb): the DuckDB copy was not checked; the "
      "ClickHouse copy was");
#endif
}

TEST_F(MirrorEndToEndTest, BadRecordsAndAnIncompatibleChangeAreDeadLettersAndTheOthersGoOn) {
  weir::testing::EnvelopeTable prices{
      .table = "prices",
      .columns =
          {{"id", R"("type":"int32","optional":false)"},
           {"price",
            R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"})"}},
      .key = {"id"}};
  weir::testing::EnvelopeTable other{
      .table = "other", .columns = {{"id", R"("type":"int32","optional":false)"}}, .key = {"id"}};
  ASSERT_TRUE(broker_->CreateTopic(prices.Prefix(), 1).ok());
  ASSERT_TRUE(broker_->CreateTopic(other.Prefix(), 1).ok());
  ASSERT_TRUE(broker_->CreateTopic("mirror.dlq", 1).ok());
  const auto price = [&](int id, const std::string& value) -> weir::kafka::testing::TestRecord {
    return {.key = prices.Key(absl::StrCat(R"({"id":)", id, "}")),
            .value = prices.Value("c", std::nullopt,
                                  absl::StrCat(R"({"id":)", id, R"(,"price":)", value, "}")),
            .partition = 0};
  };
  std::vector<weir::kafka::testing::TestRecord> price_records = {
      price(1, absl::StrCat("\"", weir::testing::DecimalBase64(150), "\"")),
      price(2, R"("not base64!")")};
  // The source's scale goes from 2 to 3: Decimal(10,3) does not fit the copies.
  prices.columns[1].second =
      R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"3","connect.decimal.precision":"10"})";
  price_records.push_back(price(3, absl::StrCat("\"", weir::testing::DecimalBase64(1500), "\"")));
  price_records.push_back(price(4, absl::StrCat("\"", weir::testing::DecimalBase64(7), "\"")));
  ASSERT_TRUE(
      weir::kafka::testing::Produce(broker_->bootstrap(), prices.Prefix(), price_records).ok());
  std::vector<weir::kafka::testing::TestRecord> other_records;
  for (int id = 1; id <= 3; ++id) {
    other_records.push_back(
        {.key = other.Key(absl::StrCat(R"({"id":)", id, "}")),
         .value = other.Value("c", std::nullopt, absl::StrCat(R"({"id":)", id, "}")),
         .partition = 0});
  }
  ASSERT_TRUE(
      weir::kafka::testing::Produce(broker_->bootstrap(), other.Prefix(), other_records).ok());

  std::vector<std::string> argv = {
      WEIR_MIRROR_PATH,
      absl::StrCat("--brokers=", broker_->bootstrap()),
      "--topic-prefix=pg",
      absl::StrCat("--clickhouse-url=", clickhouse_->url()),
      absl::StrCat("--clickhouse-user=", weir::testing::ClickHouseServer::kUser),
      absl::StrCat("--clickhouse-password=", weir::testing::ClickHouseServer::kPassword),
      absl::StrCat("--clickhouse-database=", database_),
      absl::StrCat("--checkpoint-uri=file://", dir_, "/checkpoints"),
      "--dead-letter-topic=mirror.dlq",
      "--on-incompatible=dead-letter",
      "--http-port=0",
      "--bounded",
  };
#ifdef WEIR_MIRROR_DUCKDB
  const std::string duckdb_path = dir_ + "/mirror.duckdb";
  argv.push_back("--duckdb=" + duckdb_path);
#endif
  const std::string log = dir_ + "/mirror.log";
  auto child = weir::testing::ChildProcess::Spawn(argv, {.log_path = log});
  ASSERT_TRUE(child.ok()) << child.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while ((*child)->Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_FALSE((*child)->Running()) << weir::testing::ReadFileOrEmpty(log);
  const std::string text = weir::testing::ReadFileOrEmpty(log);
  ASSERT_EQ((*child)->exit_status(), 0) << text;
  EXPECT_THAT(text, HasSubstr("2 topics: pg.public.other,pg.public.prices"));
  EXPECT_THAT(text, HasSubstr("weir-mirror: dashboard at http://127.0.0.1:"));

  absl::StatusOr<std::string> live = weir::clickhouse::Query(
      connection_, "SELECT id, price FROM prices_live ORDER BY id FORMAT TSV");
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(absl::StripTrailingAsciiWhitespace(*live), "1\t1.50");
  live = weir::clickhouse::Query(connection_, "SELECT count() FROM other_live FORMAT TSV");
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(absl::StripTrailingAsciiWhitespace(*live), "3");
#ifdef WEIR_MIRROR_DUCKDB
  auto rows =
      weir::duckdb::Query(duckdb_path,
                          "SELECT (SELECT string_agg(id || ':' || price, ',') FROM prices), "
                          "(SELECT count(*) FROM other)");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ((*rows)[0][0], "1:1.50");
  EXPECT_EQ((*rows)[0][1], "3");
#endif

  // The dead letters: the bad record from the source, naming the field;
  // records 3 and 4 from each copy, naming the column.
  auto letters = weir::kafka::testing::ReadTopic(broker_->bootstrap(), "mirror.dlq", 1,
                                                 /*read_committed=*/false);
  ASSERT_TRUE(letters.ok()) << letters.status();
  std::map<std::string, std::vector<std::string>> errors_by_stage;
  for (const weir::kafka::testing::ReadMessage& letter : *letters) {
    std::string stage;
    std::string error;
    for (const auto& [name, value] : letter.headers) {
      if (name == "weir.stage") stage = value;
      if (name == "weir.error") error = value;
    }
    errors_by_stage[stage].push_back(error);
  }
  ASSERT_EQ(errors_by_stage["kafka-source"].size(), 1u) << text;
  EXPECT_THAT(errors_by_stage["kafka-source"][0],
              HasSubstr("table public.prices: after: field \"price\""));
#ifdef WEIR_MIRROR_DUCKDB
  const size_t copies = 2;
#else
  const size_t copies = 1;
#endif
  ASSERT_EQ(errors_by_stage["mirror"].size(), 2 * copies);
  for (const std::string& error : errors_by_stage["mirror"]) {
    EXPECT_THAT(error, HasSubstr("table public.prices: column \"price\" is now"));
  }
}

}  // namespace
// --postgres: a table read whole, then its changes, straight from PostgreSQL
// into ClickHouse, with no broker.
TEST(MirrorPostgresTest, ATableIsMirroredWithoutKafka) {
  absl::StatusOr<std::unique_ptr<weir::testing::PostgresServer>> postgres =
      weir::testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(postgres.status())) {
    WEIR_MISSING_PREREQUISITE(postgres.status().message());
  }
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  PGconn* conn = PQconnectdb((*postgres)->conninfo().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK);
  const auto sql = [conn](const char* text) {
    PGresult* result = PQexec(conn, text);
    EXPECT_NE(PQresultStatus(result), PGRES_FATAL_ERROR) << PQresultErrorMessage(result);
    PQclear(result);
  };
  sql("CREATE TABLE prices (id integer PRIMARY KEY, price numeric(10,2))");
  sql("INSERT INTO prices VALUES (1, 1.50), (2, 2.25)");
  absl::StatusOr<std::unique_ptr<weir::testing::ClickHouseServer>> clickhouse =
      weir::testing::ClickHouseServer::Shared();
  ASSERT_TRUE(clickhouse.ok()) << clickhouse.status();
  weir::clickhouse::ConnectionOptions connection = (*clickhouse)->Connection();
  const std::string database = absl::StrCat("mirror_pg_", getpid());
  ASSERT_TRUE(weir::clickhouse::Query(connection, "CREATE DATABASE " + database).ok());
  connection.database = database;
  absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("weir-mirror-pg");
  ASSERT_TRUE(dir.ok());
  MirrorConfig config;
  config.postgres = (*postgres)->conninfo();
  config.postgres_tables = {"public.prices"};
  config.clickhouse_url = connection.url;
  config.clickhouse_user = connection.user;
  config.clickhouse_password = connection.password;
  config.clickhouse_database = database;
  config.checkpoint_uri = "file://" + *dir + "/checkpoints";
  config.checkpoint_interval = absl::Milliseconds(200);
  std::atomic<bool> stop{false};
  absl::Status run;
  std::thread runner([&] { run = RunMirror(config, stop); });
  sql("UPDATE prices SET price = 9.99 WHERE id = 2");
  sql("DELETE FROM prices WHERE id = 1");
  sql("INSERT INTO prices VALUES (3, 0.01)");
  std::string live;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> answer =
        weir::clickhouse::Query(connection, "SELECT id, price FROM prices_live ORDER BY id");
    live = answer.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*answer)) : "";
    if (live == "2\t9.99\n3\t0.01") break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  stop = true;
  runner.join();
  EXPECT_TRUE(run.ok()) << run;
  EXPECT_EQ(live, "2\t9.99\n3\t0.01");
  PQfinish(conn);
  (void)weir::clickhouse::Query((*clickhouse)->Connection(), "DROP DATABASE " + database);
  std::filesystem::remove_all(*dir);
}

}  // namespace mirror_app
