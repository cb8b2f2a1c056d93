// PostgreSQL tables mirrored without Debezium or Kafka: RowCdcSource's
// changes, through postgres::ToMirrorChanges, into the ClickHouse mirror sink
// (real clickhouse-server, 18.16 on Debian) and the DuckDB one (real DuckDB;
// that half is skipped without libduckdb). A random history of inserts,
// updates (some of the key) and deletes on two tables, with rows read by the snapshot, a
// column added and one dropped midway, and a truncate, ends with ClickHouse's
// live views and DuckDB's tables equal to PostgreSQL's SELECT, value by
// value (decimals exactly). The type mapping is checked value by value too.

#include "weir/connectors/postgres_mirror.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"
#include "tests/support/prerequisite.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "weir/connectors/clickhouse_mirror.h"
#include "weir/connectors/postgres_rows.h"
#include "weir/testing.h"
#include "weir/weir.h"
#ifdef WEIR_HAVE_DUCKDB
#include "weir/connectors/duckdb_mirror.h"
#endif

namespace weir {
namespace {

using ::testing::HasSubstr;
using weir::testing::PostgresServer;

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};

// A compared column: its name and how each store renders it as text.
enum class Render { kPlain, kBool, kTimestamp, kBytes, kDouble, kArray };

struct ComparedColumn {
  std::string name;
  Render render = Render::kPlain;
};

testing::ClickHouseServer* g_clickhouse = nullptr;

class PostgresMirrorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (g_clickhouse != nullptr) return;
    absl::StatusOr<std::unique_ptr<testing::ClickHouseServer>> server =
        testing::ClickHouseServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    g_clickhouse = server->release();
  }

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
    if (absl::IsFailedPrecondition(server.status())) {
      WEIR_MISSING_PREREQUISITE(server.status().message());
    }
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    conn_.reset(PQconnectdb(server_->conninfo().c_str()));
    ASSERT_EQ(PQstatus(conn_.get()), CONNECTION_OK) << PQerrorMessage(conn_.get());
    absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("weir-pg-mirror");
    ASSERT_TRUE(dir.ok());
    dir_ = *dir;
    ASSERT_NE(g_clickhouse, nullptr);
    database_ = absl::StrCat("pg_", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                             "_", getpid());
    ASSERT_TRUE(clickhouse::Query(g_clickhouse->Connection(), "CREATE DATABASE " + database_).ok());
    clickhouse_ = g_clickhouse->Connection();
    clickhouse_.database = database_;
  }
  void TearDown() override {
    conn_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    if (g_clickhouse != nullptr && !database_.empty()) {
      (void)clickhouse::Query(g_clickhouse->Connection(), "DROP DATABASE IF EXISTS " + database_);
    }
  }

  std::vector<std::vector<std::string>> Sql(const std::string& sql) {
    PGresult* result = PQexec(conn_.get(), sql.c_str());
    std::vector<std::vector<std::string>> rows;
    const ExecStatusType status = PQresultStatus(result);
    EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(result);
    for (int row = 0; row < PQntuples(result); ++row) {
      std::vector<std::string> values;
      for (int column = 0; column < PQnfields(result); ++column) {
        values.push_back(PQgetisnull(result, row, column) ? "NULL"
                                                          : PQgetvalue(result, row, column));
      }
      rows.push_back(std::move(values));
    }
    PQclear(result);
    return rows;
  }

  postgres::CdcOptions Options(std::vector<std::string> tables) {
    return {.connection = server_->conninfo(),
            .slot = "weir_mirror",
            .publication = "weir_mirror",
            .create_publication = true,
            .tables = std::move(tables),
            .snapshot_chunk_rows = 50,
            .status_interval = absl::Milliseconds(200)};
  }

  // Starts RowCdcSource -> ToMirrorChange -> both mirror sinks.
  absl::StatusOr<JobHandle> StartMirror(std::vector<std::string> tables) {
    PipelineOptions options;
    options.checkpoints = {.interval = absl::Milliseconds(300),
                           .storage_uri = "file://" + dir_ + "/checkpoints",
                           .retained = 1};
    pipeline_ = std::make_unique<Pipeline>(options);
    auto changes = pipeline_->Source(postgres::RowCdcSource::Create(Options(std::move(tables))))
                       .Uid("capture")
                       .FlatMap<debezium::RowChange>(postgres::ToMirrorChanges)
                       .Uid("rows");
    changes.Sink(clickhouse::MirrorSink({.connection = clickhouse_})).Uid("clickhouse");
#ifdef WEIR_HAVE_DUCKDB
    duckdb_path_ = dir_ + "/mirror.duckdb";
    changes.Sink(duckdb::MirrorSink({.path = duckdb_path_})).Uid("duckdb");
#endif
    return pipeline_->Start();
  }

  // PostgreSQL's rows, each as "v1|v2|...", sorted.
  std::vector<std::string> PostgresRows(const std::string& table,
                                        const std::vector<ComparedColumn>& columns) {
    std::vector<std::string> select;
    for (const ComparedColumn& column : columns) {
      const std::string& name = column.name;
      switch (column.render) {
        case Render::kBool:
          select.push_back(
              absl::StrCat("CASE WHEN ", name, " THEN '1' WHEN NOT ", name, " THEN '0' END"));
          break;
        case Render::kTimestamp:
          select.push_back(
              absl::StrCat("(extract(epoch FROM ", name, ") * 1000000)::bigint::text"));
          break;
        case Render::kBytes:
          select.push_back(absl::StrCat("encode(", name, ", 'hex')"));
          break;
        case Render::kArray:
          select.push_back(absl::StrCat("array_to_json(", name, ")::text"));
          break;
        default:
          select.push_back(absl::StrCat(name, "::text"));
      }
    }
    return Joined(Sql(absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM ", table)));
  }

  std::vector<std::string> ClickHouseRows(const std::string& table,
                                          const std::vector<ComparedColumn>& columns) {
    std::vector<std::string> select;
    for (const ComparedColumn& column : columns) {
      const std::string& name = column.name;
      select.push_back(column.render == Render::kBytes ? absl::StrCat("lower(hex(", name, "))")
                                                       : name);
    }
    absl::StatusOr<std::string> answer = clickhouse::Query(
        clickhouse_,
        absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM ", table, "_live FORMAT TSV"));
    if (!answer.ok()) return {answer.status().ToString()};
    std::vector<std::vector<std::string>> rows;
    for (absl::string_view line : absl::StrSplit(*answer, '\n', absl::SkipEmpty())) {
      std::vector<std::string> values = absl::StrSplit(line, '\t');
      for (std::string& value : values) {
        if (value == "\\N") value = "NULL";
      }
      rows.push_back(std::move(values));
    }
    return Joined(rows);
  }

#ifdef WEIR_HAVE_DUCKDB
  std::vector<std::string> DuckDbRows(const std::string& table,
                                      const std::vector<ComparedColumn>& columns) {
    std::vector<std::string> select;
    for (const ComparedColumn& column : columns) {
      const std::string name = absl::StrCat("\"", column.name, "\"");
      switch (column.render) {
        case Render::kBool:
          select.push_back(absl::StrCat("CAST(CAST(", name, " AS INTEGER) AS VARCHAR)"));
          break;
        case Render::kTimestamp:
          select.push_back(absl::StrCat("CAST(epoch_us(", name, ") AS VARCHAR)"));
          break;
        case Render::kBytes:
          select.push_back(absl::StrCat("lower(hex(", name, "))"));
          break;
        default:
          select.push_back(absl::StrCat("CAST(", name, " AS VARCHAR)"));
      }
    }
    auto rows = duckdb::Query(duckdb_path_, absl::StrCat("SELECT ", absl::StrJoin(select, ", "),
                                                         " FROM \"", table, "\""));
    if (!rows.ok()) return {rows.status().ToString()};
    std::vector<std::vector<std::string>> texts;
    for (const auto& row : *rows) {
      std::vector<std::string> values;
      for (const auto& value : row) values.push_back(value.value_or("NULL"));
      texts.push_back(std::move(values));
    }
    return Joined(texts);
  }
#endif

  static std::vector<std::string> Joined(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::string> lines;
    for (const auto& row : rows) lines.push_back(absl::StrJoin(row, "|"));
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  // Waits (up to 60 s) until both stores hold what PostgreSQL holds, then
  // compares them.
  void ExpectMirrored(const std::string& table, const std::vector<ComparedColumn>& columns) {
    SCOPED_TRACE(table);
    const std::vector<std::string> expected = PostgresRows(table, columns);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      bool equal = ClickHouseRows(table, columns) == expected;
#ifdef WEIR_HAVE_DUCKDB
      equal = equal && DuckDbRows(table, columns) == expected;
#endif
      if (equal) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    EXPECT_EQ(ClickHouseRows(table, columns), expected);
#ifdef WEIR_HAVE_DUCKDB
    EXPECT_EQ(DuckDbRows(table, columns), expected);
#endif
  }

  std::unique_ptr<PostgresServer> server_;
  std::unique_ptr<PGconn, ConnDeleter> conn_;
  std::string dir_;
  std::string database_;
  clickhouse::ConnectionOptions clickhouse_;
  std::string duckdb_path_;
  std::unique_ptr<Pipeline> pipeline_;
};

std::string RandomDecimal(std::mt19937_64& random, int integer_digits, int scale) {
  std::string text = (random() % 4 == 0) ? "-" : "";
  for (int digit = 0; digit < integer_digits; ++digit) {
    text.push_back(static_cast<char>('0' + (digit == 0 ? 1 + random() % 9 : random() % 10)));
  }
  text.push_back('.');
  for (int digit = 0; digit < scale; ++digit)
    text.push_back(static_cast<char>('0' + random() % 10));
  return text;
}

TEST_F(PostgresMirrorTest, ARandomHistoryEndsAsPostgresHasIt) {
  Sql("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12,2), qty integer, note text, "
      "at timestamptz, paid boolean, ref uuid, doc jsonb, blob bytea, sizes integer[], day date)");
  Sql("CREATE TABLE accounts (region smallint, num bigint, balance numeric(38,10) NOT NULL, "
      "active boolean, ratio double precision, legacy text, PRIMARY KEY (region, num))");
  std::mt19937_64 random(5);
  std::set<int64_t> orders;
  std::set<std::pair<int, int64_t>> accounts;
  int64_t next_order = 1;
  int64_t next_account = 1;
  auto order_values = [&](int64_t id) {
    return absl::StrCat(
        "(", id, ", ", random() % 5 == 0 ? "NULL" : RandomDecimal(random, 1 + random() % 10, 2),
        ", ", random() % 1000, ", ",
        random() % 5 == 0 ? "NULL" : absl::StrCat("'note ", random() % 100, "'"), ", to_timestamp(",
        1700000000 + random() % 100000000, ".", random() % 1000000, "), ",
        random() % 2 == 0 ? "true" : "false", ", gen_random_uuid(), '{\"k\": ", random() % 10,
        ", \"s\": \"x\"}', '\\x", absl::StrFormat("%06x", random() % 0xffffff), "', '{",
        random() % 10, ",", random() % 10, "}', date '2000-01-01' + ", random() % 9000, ")");
  };
  auto account_values = [&](int region, int64_t num) {
    return absl::StrCat("(", region, ", ", num, ", ", RandomDecimal(random, 1 + random() % 28, 10),
                        ", ",
                        random() % 3 == 0 ? "NULL"
                        : random() % 2    ? "true"
                                          : "false",
                        ", ", random() % 1000, ".25, 'old')");
  };
  // Rows the snapshot reads.
  for (int row = 0; row < 40; ++row) {
    Sql(absl::StrCat("INSERT INTO orders VALUES ", order_values(next_order)));
    orders.insert(next_order++);
    const int region = static_cast<int>(random() % 3);
    Sql(absl::StrCat("INSERT INTO accounts VALUES ", account_values(region, next_account)));
    accounts.insert({region, next_account++});
  }
  absl::StatusOr<JobHandle> job = StartMirror({"public.orders", "public.accounts"});
  ASSERT_TRUE(job.ok()) << job.status();

  const int kSteps = 1200;
  bool extra = false;
  bool legacy = true;
  for (int step = 0; step < kSteps; ++step) {
    if (step == kSteps * 2 / 5) {
      Sql("ALTER TABLE orders ADD COLUMN extra numeric(20,5)");
      extra = true;
    }
    if (step == kSteps / 2) {
      Sql("ALTER TABLE accounts DROP COLUMN legacy");
      legacy = false;
    }
    if (step == kSteps * 2 / 3) {
      Sql("TRUNCATE accounts");
      accounts.clear();
    }
    // A few statements per transaction, now and then the same row twice.
    const bool transaction = random() % 4 == 0;
    if (transaction) Sql("BEGIN");
    for (int statement = 0; statement < (transaction ? 5 : 1); ++statement) {
      const int choice = static_cast<int>(random() % 10);
      if (random() % 2 == 0) {
        if (choice < 4 || orders.size() < 5) {
          Sql(absl::StrCat("INSERT INTO orders VALUES ", order_values(next_order)));
          orders.insert(next_order++);
        } else {
          auto it = orders.begin();
          std::advance(it, static_cast<long>(random() % orders.size()));
          if (choice == 7) {  // a new key: a delete and a create in the copies
            Sql(absl::StrCat("UPDATE orders SET id = ", next_order, " WHERE id = ", *it));
            orders.erase(it);
            orders.insert(next_order++);
          } else if (choice < 8) {
            Sql(absl::StrCat(
                "UPDATE orders SET total = ", RandomDecimal(random, 1 + random() % 10, 2),
                ", qty = qty + 1, note = ", random() % 3 == 0 ? "NULL" : "'changed'",
                extra ? absl::StrCat(", extra = ", RandomDecimal(random, 15, 5)) : "",
                " WHERE id = ", *it));
          } else {
            Sql(absl::StrCat("DELETE FROM orders WHERE id = ", *it));
            orders.erase(it);
          }
        }
      } else {
        if (choice < 4 || accounts.size() < 5) {
          const int region = static_cast<int>(random() % 3);
          std::string values = account_values(region, next_account);
          if (!legacy) values = absl::StrCat(values.substr(0, values.rfind(", 'old')")), ")");
          Sql(absl::StrCat("INSERT INTO accounts VALUES ", values));
          accounts.insert({region, next_account++});
        } else {
          auto it = accounts.begin();
          std::advance(it, static_cast<long>(random() % accounts.size()));
          const std::string where =
              absl::StrCat(" WHERE region = ", it->first, " AND num = ", it->second);
          if (choice < 8) {
            Sql(absl::StrCat(
                "UPDATE accounts SET balance = ", RandomDecimal(random, 1 + random() % 28, 10),
                ", active = NOT coalesce(active, false)", where));
          } else {
            Sql(absl::StrCat("DELETE FROM accounts", where));
            accounts.erase(it);
          }
        }
      }
    }
    if (transaction) Sql("COMMIT");
  }
  ASSERT_GT(orders.size(), 50u);
  ASSERT_GT(accounts.size(), 20u);

  ExpectMirrored("orders", {{"id"},
                            {"total"},
                            {"qty"},
                            {"note"},
                            {"at", Render::kTimestamp},
                            {"paid", Render::kBool},
                            {"ref"},
                            {"doc"},
                            {"blob", Render::kBytes},
                            {"sizes", Render::kArray},
                            {"day"},
                            {"extra"}});
  ExpectMirrored(
      "accounts",
      {{"region"}, {"num"}, {"balance"}, {"active", Render::kBool}, {"ratio", Render::kDouble}});
  // The copies' types: exact decimals, the added column, the dropped one kept.
  absl::StatusOr<std::string> types =
      clickhouse::Query(clickhouse_, "SELECT name, type FROM system.columns WHERE database = '" +
                                         database_ + "' AND table = 'accounts' FORMAT TSV");
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_THAT(*types, HasSubstr("balance\tNullable(Decimal(38, 10))"));
  EXPECT_THAT(*types, HasSubstr("legacy\tNullable(String)"));
  types =
      clickhouse::Query(clickhouse_, "SELECT name, type FROM system.columns WHERE database = '" +
                                         database_ + "' AND table = 'orders' FORMAT TSV");
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_THAT(*types, HasSubstr("id\tInt64"));
  EXPECT_THAT(*types, HasSubstr("qty\tNullable(Int32)"));
  EXPECT_THAT(*types, HasSubstr("extra\tNullable(Decimal(20, 5))"));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
}

// Each type as the mirror's row holds it, from a snapshot row and from the
// stream (whose columns come from the Relation message), and the errors.
TEST_F(PostgresMirrorTest, TypesComeFromTheRelationMessageExactly) {
  Sql("CREATE TABLE typed (id integer PRIMARY KEY, s smallint, b bigint, o oid, r real, "
      "d double precision, n numeric(10,3), v numeric, w numeric(50,2), t text, "
      "u uuid, j json, jb jsonb, by bytea, da date, ti time, ts timestamp, tz timestamptz, "
      "ok boolean, arr text[], nums integer[])");
  const std::string values =
      "-32768, 9223372036854775807, 4000000000, 1.5, 0.1, 1234567.891, 3.14159265358979323846, "
      "123456789012345678901234567890123456789012345678.99, 'tab\there', "
      "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"a\":  [1, 2]}', '{\"a\":  [1, 2]}', "
      "'\\x00ff', '2024-02-29', '23:59:59.999999', '2024-02-29 12:00:00.5', "
      "'2024-02-29 12:00:00.25+02', true, '{\"x y\",NULL,z}', '{1,NULL,-3}'";
  Sql("INSERT INTO typed VALUES (1, " + values + ")");
  Sql("INSERT INTO typed (id) VALUES (3)");
  auto sink = weir::testing::CollectingSink<debezium::RowChange>::Create();
  Pipeline pipeline;
  pipeline.Source(postgres::RowCdcSource::Create(Options({"public.typed"})))
      .Uid("capture")
      .Map(postgres::ToMirrorChange)
      .Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql("INSERT INTO typed VALUES (2, " + values + ")");
  Sql("DELETE FROM typed WHERE id = 3");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (sink->size() < 4 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  std::vector<debezium::RowChange> changes = sink->Values();
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].op, debezium::Op::kRead);
  EXPECT_EQ(changes[2].op, debezium::Op::kCreate);
  EXPECT_EQ(changes[2].table, "public.typed");
  EXPECT_EQ(changes[2].offset, -1);
  // The first streamed change may start at the snapshot's LSN (the sinks
  // order snapshot rows below it).
  EXPECT_GE(*changes[2].source.lsn, *changes[0].source.lsn);
  for (const debezium::RowChange* change : {&changes[0], &changes[2]}) {
    ASSERT_TRUE(change->after.has_value());
    const Row& row = *change->after;
    // The snapshot's columns and the Relation message's give the same schema.
    EXPECT_EQ(row.schema(), changes[2].after->schema());
    const RowSchema& schema = row.schema();
    EXPECT_EQ(schema.table(), "public.typed");
    ASSERT_EQ(schema.key(), std::vector<int>{0});
    EXPECT_FALSE(schema.columns()[0].nullable);
    EXPECT_TRUE(schema.columns()[1].nullable);
    auto type_of = [&](const char* name) { return schema.columns()[schema.Find(name)].type; };
    auto text_of = [&](const char* name) {
      return RowValueToString(*row.Find(name), schema.columns()[schema.Find(name)]);
    };
    EXPECT_EQ(type_of("id"), ColumnType::kInt32);
    EXPECT_EQ(type_of("s"), ColumnType::kInt16);
    EXPECT_EQ(text_of("s"), "-32768");
    EXPECT_EQ(type_of("b"), ColumnType::kInt64);
    EXPECT_EQ(text_of("b"), "9223372036854775807");
    EXPECT_EQ(type_of("o"), ColumnType::kInt64);
    EXPECT_EQ(text_of("o"), "4000000000");
    EXPECT_EQ(type_of("r"), ColumnType::kFloat32);
    EXPECT_EQ(std::get<double>(*row.Find("r")), 1.5);
    EXPECT_EQ(type_of("d"), ColumnType::kFloat64);
    EXPECT_EQ(std::get<double>(*row.Find("d")), 0.1);
    const RowColumn& n = schema.columns()[schema.Find("n")];
    EXPECT_EQ(n.type, ColumnType::kDecimal);
    EXPECT_EQ(n.precision, 10);
    EXPECT_EQ(n.scale, 3);
    EXPECT_EQ(std::get<absl::int128>(*row.Find("n")), absl::int128(1234567891));
    EXPECT_EQ(type_of("v"), ColumnType::kDecimalText);
    EXPECT_EQ(text_of("v"), "3.14159265358979323846");
    EXPECT_EQ(type_of("w"), ColumnType::kDecimalText);  // more than 38 digits
    EXPECT_EQ(text_of("w"), "123456789012345678901234567890123456789012345678.99");
    EXPECT_EQ(std::get<std::string>(*row.Find("t")), "tab\there");
    EXPECT_EQ(std::get<std::string>(*row.Find("u")), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    EXPECT_EQ(type_of("j"), ColumnType::kJson);
    EXPECT_EQ(std::get<std::string>(*row.Find("j")), "{\"a\":  [1, 2]}");
    EXPECT_EQ(std::get<std::string>(*row.Find("jb")), "{\"a\": [1, 2]}");
    EXPECT_EQ(type_of("by"), ColumnType::kBytes);
    EXPECT_EQ(std::get<std::string>(*row.Find("by")), std::string("\0\xff", 2));
    EXPECT_EQ(type_of("da"), ColumnType::kDate);
    EXPECT_EQ(std::get<int64_t>(*row.Find("da")), 19782);
    EXPECT_EQ(type_of("ti"), ColumnType::kTime);
    EXPECT_EQ(std::get<int64_t>(*row.Find("ti")), 86399999999);
    EXPECT_EQ(type_of("ts"), ColumnType::kTimestamp);
    EXPECT_EQ(std::get<int64_t>(*row.Find("ts")), 1709208000500000);
    EXPECT_EQ(std::get<int64_t>(*row.Find("tz")), 1709200800250000);
    EXPECT_EQ(std::get<bool>(*row.Find("ok")), true);
    EXPECT_EQ(type_of("arr"), ColumnType::kJson);
    EXPECT_EQ(std::get<std::string>(*row.Find("arr")), "[\"x y\",null,\"z\"]");
    EXPECT_EQ(std::get<std::string>(*row.Find("nums")), "[1,null,-3]");
  }
  // NULLs, and a delete's key-only before image.
  EXPECT_TRUE(changes[1].after->is_null(1));
  EXPECT_EQ(changes[3].op, debezium::Op::kDelete);
  ASSERT_TRUE(changes[3].before.has_value());
  EXPECT_EQ(changes[3].before->ToString().substr(0, 12), "{id=3, s=NUL");
}

// A value that does not fit its column fails the job naming the column.
TEST_F(PostgresMirrorTest, AValueThatDoesNotFitNamesTheColumn) {
  Sql("CREATE TABLE bad (id integer PRIMARY KEY, price numeric(8,2))");
  Sql("INSERT INTO bad VALUES (1, 'NaN')");
  Pipeline pipeline;
  pipeline.Source(postgres::RowCdcSource::Create(Options({"public.bad"})))
      .Uid("capture")
      .Map(postgres::ToMirrorChange)
      .Sink(weir::testing::CollectingSink<debezium::RowChange>::Create());
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("table public.bad: after: column \"price\" (numeric)"));
}

}  // namespace
}  // namespace weir
