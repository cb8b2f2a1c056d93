// PostgreSQL tables mirrored without Debezium or Kafka: RowCdcSource's
// changes, through postgres::ToMirrorChange, into the ClickHouse mirror sink
// (real clickhouse-server, 18.16 on Debian) and the DuckDB one (real DuckDB;
// that half is skipped without libduckdb). A random history of inserts,
// updates and deletes on two tables, with rows read by the snapshot, a
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
                       .Map(postgres::ToMirrorChange)
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
          if (choice < 8) {
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

}  // namespace
}  // namespace weir
