// weir::postgres::CdcSource against a real PostgreSQL (tests/support/
// postgres_server.h, one server per test on a free loopback port), through
// the public API: a Pipeline with the source, checkpoints, crashes
// (JobHandle::Cancel, then a restore), a server restart and a blocked sink.

#include <libpq-fe.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/postgres_server.h"
#include "tests/support/prerequisite.h"
#include "tests/support/wait_for.h"
#include "weir/connectors/postgres.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::postgres {
namespace {

using debezium::Change;
using debezium::Op;
using ::testing::HasSubstr;
using weir::testing::PostgresServer;

struct Item {
  int64_t id = 0;
  std::string name;
  std::optional<int32_t> qty;
  int64_t price_cents = 0;
  std::optional<std::string> note;

  friend bool operator==(const Item&, const Item&) = default;
};

debezium::Fields<Item> ItemFields() {
  return debezium::Fields<Item>()
      .Required("id", &Item::id)
      .Required("name", &Item::name)
      .Optional("qty", &Item::qty)
      .Required("price", &Item::price_cents, debezium::Decimal(2))
      .Optional("note", &Item::note);
}

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};

absl::Status StartStatus(Pipeline& pipeline) {
  absl::StatusOr<JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();
  job->Stop();
  return job->Wait();
}

class CdcSourceTest : public ::testing::Test {
 protected:
  void StartServer(PostgresServer::Options options = {}) {
    absl::StatusOr<std::unique_ptr<PostgresServer>> server =
        PostgresServer::Start(std::move(options));
    if (absl::IsFailedPrecondition(server.status())) {
      WEIR_MISSING_PREREQUISITE(server.status().message());
    }
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    Reconnect();
  }
  void SetUp() override {
    StartServer();
    if (IsSkipped()) return;
    absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("weir-cdc");
    ASSERT_TRUE(dir.ok());
    dir_ = *dir;
  }
  void TearDown() override {
    conn_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void Reconnect() {
    conn_.reset(PQconnectdb(server_->conninfo().c_str()));
    ASSERT_EQ(PQstatus(conn_.get()), CONNECTION_OK) << PQerrorMessage(conn_.get());
  }

  // Runs `sql`; fails the test on an error.
  std::vector<std::vector<std::string>> Sql(const std::string& sql) {
    PGresult* result = PQexec(conn_.get(), sql.c_str());
    std::vector<std::vector<std::string>> rows;
    const ExecStatusType status = PQresultStatus(result);
    EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(result);
    for (int row = 0; row < PQntuples(result); ++row) {
      rows.emplace_back();
      for (int col = 0; col < PQnfields(result); ++col) {
        rows.back().push_back(PQgetisnull(result, row, col) ? "NULL"
                                                            : PQgetvalue(result, row, col));
      }
    }
    PQclear(result);
    return rows;
  }

  void CreateItems(const std::string& identity = "DEFAULT") {
    Sql("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, "
        "price numeric(10,2) NOT NULL, note text)");
    Sql("ALTER TABLE items REPLICA IDENTITY " + identity);
    Sql("CREATE PUBLICATION weir_pub FOR TABLE items");
  }

  CdcOptions Options(SnapshotMode snapshot = SnapshotMode::kNever) {
    return {.connection = server_->conninfo(),
            .slot = "weir_slot",
            .publication = "weir_pub",
            .tables = {"public.items"},
            .snapshot = snapshot,
            .snapshot_chunk_rows = 100,
            .status_interval = absl::Milliseconds(200),
            .reconnect_timeout = absl::Seconds(60),
            .slot_busy_timeout = absl::Seconds(10)};
  }

  // Waits until `sink` holds `count` records (or fails after a deadline).
  template <class S>
  void WaitFor(const S& sink, size_t count, absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (sink->size() < count && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    ASSERT_GE(sink->size(), count) << "timed out; the server's log:\n" << server_->Log();
  }

  // A finished run's walsender lets go of its slot shortly after.
  void WaitSlotsInactive() {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (Sql("SELECT 1 FROM pg_replication_slots WHERE active").size() > 0 &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  std::string SlotConfirmed() {
    auto rows =
        Sql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = "
            "'weir_slot'");
    return rows.empty() ? "" : rows[0][0];
  }

  // Runs `source` (SnapshotMode::kInitialOnly) to its end; what it emitted.
  template <class T>
  std::vector<Change<T>> ReadToEnd(std::shared_ptr<CdcSource<T>> source) {
    Pipeline pipeline;
    auto sink = weir::testing::CollectingSink<Change<T>>::Create();
    pipeline.Source(source).Uid("snapshot").Sink(sink);
    weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
    EXPECT_TRUE(result.status.ok()) << result.status;
    return sink->Values();
  }

  // The items table now, by id.
  std::map<int64_t, Item> ItemsTable() {
    std::map<int64_t, Item> table;
    for (const auto& row : Sql("SELECT id, name, qty, price * 100, note FROM items")) {
      Item item{std::stoll(row[0]), row[1], std::nullopt, 0, std::nullopt};
      if (row[2] != "NULL") item.qty = std::stoi(row[2]);
      item.price_cents = std::stoll(row[3].substr(0, row[3].find('.')));
      if (row[4] != "NULL") item.note = row[4];
      table[item.id] = item;
    }
    return table;
  }

  // Applies the sink's changes in order, each shown to `observe` first,
  // until they give `table` (or a minute passes); returns what they gave.
  template <class S>
  std::map<int64_t, Item> ReplayUntil(const S& sink, const std::map<int64_t, Item>& table,
                                      const std::function<void(const Change<Item>&)>& observe) {
    std::map<int64_t, Item> replayed;
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    size_t applied = 0;
    while (absl::Now() < deadline) {
      auto values = sink->Values();
      for (; applied < values.size(); ++applied) {
        const Change<Item>& change = values[applied];
        observe(change);
        if (change.op == Op::kDelete) {
          replayed.erase(change.before->id);
        } else {
          replayed[change.after->id] = *change.after;
        }
      }
      if (replayed == table) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return replayed;
  }

  std::unique_ptr<PostgresServer> server_;
  std::unique_ptr<PGconn, ConnDeleter> conn_;
  std::string dir_;
};

TEST_F(CdcSourceTest, StreamsInsertUpdateDeleteAndTruncate) {
  CreateItems();
  Pipeline pipeline({.batch_size = 16});
  auto source = CdcSource<Item>::Create(Options(), ItemFields());
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(source).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  Sql("BEGIN");
  Sql("INSERT INTO items VALUES (1, 'apple', 3, 1.25, NULL), (2, 'pear', NULL, 0.5, 'ripe')");
  Sql("COMMIT");
  Sql("UPDATE items SET qty = 4, price = 2 WHERE id = 1");
  Sql("UPDATE items SET id = 3 WHERE id = 2");  // a key change: the old key comes along
  Sql("DELETE FROM items WHERE id = 1");
  Sql("TRUNCATE items");
  WaitFor(sink, 6);
  // The job's metrics count them too (published while the source is idle).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (job->Metrics().Sum("weir_postgres_changes_total") < 6 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(job->Metrics().Sum("weir_postgres_changes_total", {{"slot", "weir_slot"}}), 6);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());

  auto records = sink->Records();
  ASSERT_EQ(records.size(), 6u);
  const auto& first = records[0].value;
  EXPECT_EQ(first.op, Op::kCreate);
  EXPECT_FALSE(first.before.has_value());
  EXPECT_EQ(*first.after, (Item{1, "apple", 3, 125, std::nullopt}));
  EXPECT_EQ(records[1].value.after->note, "ripe");
  EXPECT_EQ(records[1].value.after->qty, std::nullopt);
  // Both rows of one transaction: same txId, same commit time.
  EXPECT_EQ(first.source.tx_id, records[1].value.source.tx_id);
  EXPECT_EQ(first.source.ts_ms, records[1].value.source.ts_ms);
  EXPECT_LT(*first.source.lsn, *records[1].value.source.lsn);
  EXPECT_EQ(first.source.connector, "postgresql");
  EXPECT_EQ(first.source.db, "postgres");
  EXPECT_EQ(first.source.schema, "public");
  EXPECT_EQ(first.source.table, "items");
  EXPECT_EQ(first.source.snapshot, "false");
  // Event time is the commit time.
  EXPECT_EQ(records[0].timestamp, first.source.ts_ms);
  EXPECT_NEAR(static_cast<double>(first.source.ts_ms),
              static_cast<double>(absl::ToUnixMillis(absl::Now())), 60000);

  const auto& update = records[2].value;
  EXPECT_EQ(update.op, Op::kUpdate);
  EXPECT_FALSE(update.before.has_value());  // REPLICA IDENTITY DEFAULT, key unchanged
  EXPECT_EQ(*update.after, (Item{1, "apple", 4, 200, std::nullopt}));
  EXPECT_GT(update.source.tx_id, first.source.tx_id);

  const auto& key_change = records[3].value;
  EXPECT_EQ(key_change.op, Op::kUpdate);
  ASSERT_TRUE(key_change.before.has_value());
  EXPECT_EQ(key_change.before->id, 2);  // the key only
  EXPECT_EQ(key_change.before->name, "");
  EXPECT_EQ(key_change.after->id, 3);

  const auto& del = records[4].value;
  EXPECT_EQ(del.op, Op::kDelete);
  ASSERT_TRUE(del.before.has_value());
  EXPECT_EQ(del.before->id, 1);
  EXPECT_FALSE(del.after.has_value());

  EXPECT_EQ(records[5].value.op, Op::kTruncate);
  EXPECT_EQ(records[5].value.source.table, "items");
  EXPECT_EQ(source->Stats().changes, 6);
}

TEST_F(CdcSourceTest, ReplicaIdentityFullGivesTheWholeOldRow) {
  CreateItems("FULL");
  Pipeline pipeline({.parallelism = 2});  // the slot's one split runs on worker 0
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql("INSERT INTO items VALUES (1, 'apple', 3, 1.25, 'n')");
  Sql("UPDATE items SET qty = 5 WHERE id = 1");
  Sql("DELETE FROM items WHERE id = 1");
  WaitFor(sink, 3);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  auto values = sink->Values();
  ASSERT_TRUE(values[1].before.has_value());
  EXPECT_EQ(*values[1].before, (Item{1, "apple", 3, 125, "n"}));
  EXPECT_EQ(*values[2].before, (Item{1, "apple", 5, 125, "n"}));
}

struct Typed {
  int16_t i2 = 0;
  int32_t i4 = 0;
  int64_t i8 = 0;
  float f4 = 0;
  double f8 = 0;
  bool flag = false;
  std::string text;
  std::string vc;
  std::string uuid;
  std::string json;
  std::string jsonb;
  int64_t tstz_us = 0;
  int64_t ts_ms = 0;
  int64_t day_ms = 0;
  int64_t time_us = 0;
  std::string bytes;
  std::vector<std::string> tags;
  std::vector<int32_t> ints;
  std::vector<std::string> amounts;
  std::string mood;
  int64_t price_cents = 0;
  std::string exact;
  std::optional<double> maybe_nan;

  friend bool operator==(const Typed&, const Typed&) = default;
};

TEST_F(CdcSourceTest, EveryTypeMapsExactly) {
  Sql("CREATE TYPE mood AS ENUM ('sad', 'happy')");
  Sql("CREATE DOMAIN price AS numeric(12,2) CHECK (VALUE >= 0)");
  Sql("CREATE TABLE typed (id int PRIMARY KEY, i2 smallint, i4 int, i8 bigint, f4 real, "
      "f8 double precision, flag bool, t text, vc varchar(20), u uuid, j json, jb jsonb, "
      "tstz timestamptz, ts timestamp, d date, tm time, b bytea, tags text[], ints int[], "
      "amounts numeric[], m mood, p price, exact numeric, maybe_nan numeric)");
  Sql("CREATE PUBLICATION weir_pub FOR TABLE typed");
  auto fields = debezium::Fields<Typed>()
                    .Required("i2", &Typed::i2)
                    .Required("i4", &Typed::i4)
                    .Required("i8", &Typed::i8)
                    .Required("f4", &Typed::f4)
                    .Required("f8", &Typed::f8)
                    .Required("flag", &Typed::flag)
                    .Required("t", &Typed::text)
                    .Required("vc", &Typed::vc)
                    .Required("u", &Typed::uuid, debezium::Uuid())
                    .Required("j", &Typed::json, debezium::Json())
                    .Required("jb", &Typed::jsonb, debezium::Json())
                    .Required("tstz", &Typed::tstz_us, debezium::EpochMicros())
                    .Required("ts", &Typed::ts_ms, debezium::EpochMillis())
                    .Required("d", &Typed::day_ms, debezium::EpochMillis())
                    .Required("tm", &Typed::time_us, debezium::EpochMicros())
                    .Required("b", &Typed::bytes)
                    .Required("tags", &Typed::tags)
                    .Required("ints", &Typed::ints)
                    .Required("amounts", &Typed::amounts, debezium::Decimal())
                    .Required("m", &Typed::mood)
                    .Required("p", &Typed::price_cents, debezium::Decimal(2))
                    .Required("exact", &Typed::exact, debezium::Decimal())
                    .Optional("maybe_nan", &Typed::maybe_nan, debezium::Decimal());
  CdcOptions options = Options(SnapshotMode::kInitial);
  options.tables = {"typed"};
  // One row before the slot (read by the snapshot), the same row after (streamed).
  const std::string values =
      "(%d, -32768, 2147483647, -9223372036854775808, 1.5, 0.1, true, 'tëxt', 'v', "
      "'6F1B0C2E-0000-4000-8000-00000000FFFF', '{\"a\": [1, 2]}', '{\"b\": 1, \"a\": 2}', "
      "'2024-03-01 10:30:00.123456+01', '2024-03-01 09:30:00.5', '2024-03-01', '09:30:00.25', "
      "'\\x00ff', ARRAY['a', 'b c'], '{1,2,3}', '{1.50,-2}', 'happy', 12.5, "
      "'123456789012345678901234567890.123456789', 'NaN')";
  auto row = [&](int id) {
    std::string sql = values;
    sql.replace(sql.find("%d"), 2, std::to_string(id));
    return "INSERT INTO typed VALUES " + sql;
  };
  Sql(row(1));
  Sql("UPDATE typed SET flag = true WHERE id = 1");
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<Change<Typed>>::Create();
  pipeline.Source(CdcSource<Typed>::Create(options, fields)).Uid("typed").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql(row(2));
  Sql("UPDATE typed SET flag = true WHERE id = 2");
  WaitFor(sink, 3);
  job->Stop();
  absl::Status status = job->Wait();
  ASSERT_TRUE(status.ok()) << status;
  auto changes = sink->Values();
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].op, Op::kRead);
  EXPECT_EQ(changes[0].source.snapshot, "true");
  EXPECT_EQ(changes[2].op, Op::kUpdate);
  const Typed expected{.i2 = -32768,
                       .i4 = 2147483647,
                       .i8 = INT64_MIN,
                       .f4 = 1.5f,
                       .f8 = 0.1,
                       .flag = true,
                       .text = "tëxt",
                       .vc = "v",
                       .uuid = "6f1b0c2e-0000-4000-8000-00000000ffff",
                       .json = "{\"a\": [1, 2]}",
                       .jsonb = "{\"a\": 2, \"b\": 1}",
                       .tstz_us = 1709285400123456,
                       .ts_ms = 1709285400500,
                       .day_ms = 1709251200000,
                       .time_us = 34200250000,
                       .bytes = "AP8=",
                       .tags = {"a", "b c"},
                       .ints = {1, 2, 3},
                       .amounts = {"1.50", "-2"},
                       .mood = "happy",
                       .price_cents = 1250,
                       .exact = "123456789012345678901234567890.123456789",
                       .maybe_nan = std::nullopt};
  for (const Typed* got : {&*changes[0].after, &*changes[2].after}) {
    Typed compared = *got;
    ASSERT_TRUE(compared.maybe_nan.has_value());
    EXPECT_TRUE(std::isnan(*compared.maybe_nan));
    compared.maybe_nan.reset();
    EXPECT_EQ(compared, expected);
  }
}

TEST_F(CdcSourceTest, NanIntoAnExactMemberFailsTheJobNamingTheField) {
  CreateItems();
  Sql("ALTER TABLE items ALTER COLUMN price TYPE numeric");
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql("INSERT INTO items VALUES (1, 'x', 1, 'NaN', NULL)");
  absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("\"price\""));
  EXPECT_THAT(status.message(), HasSubstr("not a finite decimal"));
}

TEST_F(CdcSourceTest, UnchangedToastFromOldRowOrAClearError) {
  for (const std::string identity : {"FULL", "DEFAULT"}) {
    SCOPED_TRACE(identity);
    WaitSlotsInactive();
    Sql("DROP TABLE IF EXISTS items");
    Sql("DROP PUBLICATION IF EXISTS weir_pub");
    Sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots");
    CreateItems(identity);
    Sql("ALTER TABLE items ALTER COLUMN name SET STORAGE EXTERNAL");  // TOASTed, uncompressed
    Pipeline pipeline;
    auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
    pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("items").Sink(sink);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const std::string big(20000, 'x');
    Sql("INSERT INTO items VALUES (1, '" + big + "', 1, 1, NULL)");
    Sql("UPDATE items SET qty = 2 WHERE id = 1");  // name is unchanged and TOASTed
    if (identity == "FULL") {
      WaitFor(sink, 2);
      job->Stop();
      ASSERT_TRUE(job->Wait().ok());
      EXPECT_EQ(sink->Values()[1].after->name, big);
      EXPECT_EQ(sink->Values()[1].after->qty, 2);
    } else {
      absl::Status status = job->Wait();
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      EXPECT_THAT(status.message(), HasSubstr("\"name\""));
      EXPECT_THAT(status.message(), HasSubstr("REPLICA IDENTITY FULL"));
    }
  }
}

TEST_F(CdcSourceTest, ColumnsAddedAndDroppedMidStream) {
  Sql("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, "
      "price numeric(10,2) NOT NULL)");
  Sql("CREATE PUBLICATION weir_pub FOR TABLE items");
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql("INSERT INTO items VALUES (1, 'a', 1, 1)");
  Sql("ALTER TABLE items ADD COLUMN note text");
  Sql("INSERT INTO items VALUES (2, 'b', 2, 2, 'added')");
  Sql("ALTER TABLE items DROP COLUMN qty");
  Sql("INSERT INTO items VALUES (3, 'c', 3, 'dropped')");
  WaitFor(sink, 3);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  auto values = sink->Values();
  EXPECT_EQ(*values[0].after, (Item{1, "a", 1, 100, std::nullopt}));
  EXPECT_EQ(*values[1].after, (Item{2, "b", 2, 200, "added"}));
  EXPECT_EQ(*values[2].after, (Item{3, "c", std::nullopt, 300, "dropped"}));
}

// A snapshot read while another connection writes, then the stream: applied
// in order, the changes give exactly the table's final contents, and no
// insert arrives twice.
TEST_F(CdcSourceTest, SnapshotWithConcurrentWritesThenStreamingEqualsTheTable) {
  CreateItems();
  Sql("INSERT INTO items SELECT g, 'item' || g, g % 7, g * 0.01, NULL "
      "FROM generate_series(1, 5000) g");
  Pipeline pipeline({.batch_size = 64});
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  auto source = CdcSource<Item>::Create(Options(SnapshotMode::kInitial), ItemFields());
  pipeline.Source(source)
      .Uid("items")
      .Map([](const Change<Item>& change) {
        absl::SleepFor(absl::Microseconds(200));  // the snapshot takes about a second
        return change;
      })
      .Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // Writes while the snapshot is being read: the rows they change are read
  // before or after the change, and the stream must fit either.
  {
    std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(server_->conninfo().c_str()));
    for (int round = 0; round < 300; ++round) {
      const int id = 1 + (round * 37) % 5000;
      std::string sql = absl::StrCat(
          "BEGIN; UPDATE items SET qty = coalesce(qty, 0) + 1, name = 'w", round,
          "' WHERE id = ", id, "; INSERT INTO items VALUES (", 10000 + round, ", 'new", round,
          "', 1, 1, NULL); ",
          round % 3 == 0 ? absl::StrCat("DELETE FROM items WHERE id = ", 5000 - round, ";") : "",
          " COMMIT");
      PQclear(PQexec(conn.get(), sql.c_str()));
    }
  }
  EXPECT_LT(source->Stats().snapshot_rows, 5000) << "the writes did not overlap the snapshot";
  // The final state, then wait until every change of it has arrived.
  const std::map<int64_t, Item> table = ItemsTable();
  std::map<int64_t, int> creates;
  const std::map<int64_t, Item> replayed =
      ReplayUntil(sink, table, [&](const Change<Item>& change) {
        if (change.op == Op::kCreate) ++creates[change.after->id];
      });
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(replayed.size(), table.size());
  EXPECT_TRUE(replayed == table);
  for (const auto& [id, count] : creates) EXPECT_EQ(count, 1) << "id " << id;
  EXPECT_GE(source->Stats().snapshot_rows, 4000);
  EXPECT_GT(source->Stats().changes, 0);
}

// The snapshot cut into primary-key ranges over four connections, each
// importing the slot's snapshot, while another connection inserts, updates
// and deletes; then the stream. Every row of the snapshot is read exactly
// once, with its value as of the snapshot, and the stream applied after it
// gives the table's final contents.
TEST_F(CdcSourceTest, ParallelSnapshotReadsKeyRangesOnSeveralConnections) {
  CreateItems();
  constexpr int kRows = 20000;
  Sql(
      absl::StrCat("INSERT INTO items SELECT g, 'item' || g, g % 7, g * 0.01, repeat('n', 100) "
                   "FROM generate_series(1, ",
                   kRows, ") g"));
  Pipeline pipeline({.batch_size = 64});
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  CdcOptions options = Options(SnapshotMode::kInitial);
  options.snapshot_workers = 4;
  options.snapshot_chunk_rows = 500;
  auto source = CdcSource<Item>::Create(options, ItemFields());
  pipeline.Source(source)
      .Uid("items")
      .Map([](const Change<Item>& change) {
        absl::SleepFor(absl::Microseconds(100));  // the snapshot takes a couple of seconds
        return change;
      })
      .Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // The readers are the server's backends named after the slot, all in a
  // transaction on the same snapshot (one backend_xmin).
  const auto readers =
      Sql("SELECT count(*), count(DISTINCT backend_xmin::text), count(*) FILTER (WHERE xact_start "
          "IS NOT "
          "NULL) FROM pg_stat_activity WHERE application_name = 'weir-snapshot:weir_slot'");
  ASSERT_EQ(readers.size(), 1u);
  EXPECT_EQ(readers[0][0], "4");
  EXPECT_EQ(readers[0][1], "1");
  EXPECT_EQ(readers[0][2], "4");
  {
    std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(server_->conninfo().c_str()));
    for (int round = 0; round < 300; ++round) {
      const int id = 1 + (round * 67) % kRows;
      std::string sql = absl::StrCat(
          "BEGIN; UPDATE items SET qty = coalesce(qty, 0) + 100, name = 'w", round,
          "' WHERE id = ", id, "; INSERT INTO items VALUES (", 100000 + round, ", 'new", round,
          "', 1, 1, NULL); ",
          round % 3 == 0 ? absl::StrCat("DELETE FROM items WHERE id = ", kRows - round, ";") : "",
          " COMMIT");
      PQclear(PQexec(conn.get(), sql.c_str()));
    }
  }
  EXPECT_LT(source->Stats().snapshot_rows, kRows) << "the writes did not overlap the snapshot";
  const std::map<int64_t, Item> table = ItemsTable();
  std::map<int64_t, int> reads;
  std::map<int64_t, int> creates;
  bool streamed = false;
  bool read_after_change = false;
  const std::map<int64_t, Item> replayed =
      ReplayUntil(sink, table, [&](const Change<Item>& change) {
        if (change.op == Op::kRead) {
          ++reads[change.after->id];
          // As of the snapshot: none of the concurrent writes.
          const int64_t id = change.after->id;
          EXPECT_EQ(*change.after, (Item{id, absl::StrCat("item", id), static_cast<int>(id % 7), id,
                                         std::string(100, 'n')}));
          if (streamed) read_after_change = true;
        } else {
          streamed = true;
          if (change.op == Op::kCreate) ++creates[change.after->id];
        }
      });
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_TRUE(replayed == table) << replayed.size() << " rows replayed, " << table.size()
                                 << " in the table";
  // Exactly the snapshot's rows, once each, all before the first streamed change.
  EXPECT_EQ(reads.size(), static_cast<size_t>(kRows));
  for (const auto& [id, count] : reads) {
    ASSERT_TRUE(id >= 1 && id <= kRows) << id;
    EXPECT_EQ(count, 1) << "id " << id;
  }
  EXPECT_FALSE(read_after_change);
  EXPECT_EQ(creates.size(), 300u);
  for (const auto& [id, count] : creates) EXPECT_EQ(count, 1) << "id " << id;
  const CdcSourceStats stats = source->Stats();
  EXPECT_EQ(stats.snapshot_rows, kRows);
  EXPECT_EQ(stats.snapshot_readers, 4);
  EXPECT_GE(stats.snapshot_chunks, kRows / 500);
  EXPECT_GE(stats.snapshot_max_parallel_reads, 2) << "the chunks were read one at a time";
  EXPECT_GT(stats.changes, 0);
  // The readers' connections ended with the snapshot.
  EXPECT_TRUE(weir::testing::WaitFor(
      [&] {
        return Sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                   "'weir-snapshot:weir_slot'")[0][0] == "0";
      },
      absl::Seconds(10)));
}

// With snapshot_workers set, a table without a primary key is read whole by
// one reader (and one with a key that has no exact text form too), while a
// table with one is cut into ranges; every row arrives exactly once.
TEST_F(CdcSourceTest, ParallelSnapshotReadsTablesWithoutAPrimaryKeyWhole) {
  CreateItems();
  Sql("CREATE TABLE nokey (id bigint, name text NOT NULL, qty int, price numeric(10,2) NOT "
      "NULL, note text)");
  Sql("CREATE TABLE jsonkey (doc jsonb PRIMARY KEY, id bigint, name text NOT NULL, qty int, "
      "price numeric(10,2) NOT NULL, note text)");
  Sql("ALTER PUBLICATION weir_pub ADD TABLE nokey, jsonkey");
  Sql("INSERT INTO items SELECT g, 'i', 1, 1, NULL FROM generate_series(1, 3000) g");
  Sql("INSERT INTO nokey SELECT g, 'n', 1, 1, NULL FROM generate_series(1, 2500) g");
  Sql("INSERT INTO nokey SELECT g, 'n', 1, 1, NULL FROM generate_series(1, 10) g");  // duplicates
  Sql("INSERT INTO jsonkey SELECT jsonb_build_object('k', g), g, 'j', 1, 1, NULL "
      "FROM generate_series(1, 700) g");
  CdcOptions options = Options(SnapshotMode::kInitialOnly);
  options.tables = {"items", "public.nokey", "jsonkey"};
  options.snapshot_workers = 3;
  options.snapshot_chunk_rows = 200;
  auto source = CdcSource<Item>::Create(options, ItemFields());
  const std::vector<Change<Item>> changes = ReadToEnd(source);
  std::map<std::string, std::map<int64_t, int>> counts;
  for (const auto& change : changes) {
    EXPECT_EQ(change.op, Op::kRead);
    ++counts[change.source.table][change.after->id];
  }
  ASSERT_EQ(counts["items"].size(), 3000u);
  for (const auto& [id, count] : counts["items"]) EXPECT_EQ(count, 1) << "items " << id;
  ASSERT_EQ(counts["nokey"].size(), 2500u);
  for (const auto& [id, count] : counts["nokey"]) {
    EXPECT_EQ(count, id <= 10 ? 2 : 1) << "nokey " << id;
  }
  ASSERT_EQ(counts["jsonkey"].size(), 700u);
  for (const auto& [id, count] : counts["jsonkey"]) EXPECT_EQ(count, 1) << "jsonkey " << id;
  EXPECT_EQ(changes.size(), 3000u + 2510u + 700u);
  EXPECT_EQ(source->Stats().snapshot_readers, 3);
  EXPECT_EQ(source->Stats().snapshot_chunks, 3000 / 200 + 1);  // items only; the last is empty
}

// Only a table without a primary key: no parallel readers are opened, the
// source's own connection reads it, as with snapshot_workers = 1.
TEST_F(CdcSourceTest, SnapshotOfATableWithoutAPrimaryKeyNeedsNoReaders) {
  Sql("CREATE TABLE nokey (id bigint, name text NOT NULL, qty int, price numeric(10,2) NOT "
      "NULL, note text)");
  Sql("CREATE PUBLICATION weir_pub FOR TABLE nokey");
  Sql("INSERT INTO nokey SELECT g, 'n', 1, 1, NULL FROM generate_series(1, 1500) g");
  CdcOptions options = Options(SnapshotMode::kInitialOnly);
  options.tables = {"nokey"};
  options.snapshot_workers = 4;
  auto source = CdcSource<Item>::Create(options, ItemFields());
  const std::vector<Change<Item>> changes = ReadToEnd(source);
  std::set<int64_t> ids;
  for (const auto& change : changes) ids.insert(change.after->id);
  EXPECT_EQ(ids.size(), 1500u);
  EXPECT_EQ(changes.size(), 1500u);
  EXPECT_EQ(source->Stats().snapshot_readers, 0);
  EXPECT_EQ(source->Stats().snapshot_chunks, 0);
}

struct Keyed {
  std::string region;
  int64_t seq = 0;
  std::string label;
};

// A composite key (text, then bigint) is cut with row comparisons; text
// bounds with quotes, spaces and non-ASCII letters round-trip exactly.
TEST_F(CdcSourceTest, ParallelSnapshotCutsCompositeAndTextKeys) {
  Sql("CREATE TABLE keyed (region text, seq bigint, label text NOT NULL, "
      "PRIMARY KEY (region, seq))");
  Sql("CREATE PUBLICATION weir_pub FOR TABLE keyed");
  Sql("INSERT INTO keyed SELECT r, s, r || '/' || s FROM unnest(ARRAY['a', 'B', 'it''s', 'ä b', "
      "'z\"q', '']) r, generate_series(1, 500) s");
  CdcOptions options = Options(SnapshotMode::kInitialOnly);
  options.tables = {"keyed"};
  options.snapshot_workers = 3;
  options.snapshot_chunk_rows = 70;
  auto source = CdcSource<Keyed>::Create(options, debezium::Fields<Keyed>()
                                                      .Required("region", &Keyed::region)
                                                      .Required("seq", &Keyed::seq)
                                                      .Required("label", &Keyed::label));
  std::map<std::string, int> counts;
  for (const auto& change : ReadToEnd(source)) {
    EXPECT_EQ(change.after->label, absl::StrCat(change.after->region, "/", change.after->seq));
    ++counts[change.after->label];
  }
  EXPECT_EQ(counts.size(), 3000u);
  for (const auto& [label, count] : counts) EXPECT_EQ(count, 1) << label;
  EXPECT_EQ(source->Stats().snapshot_readers, 3);
  EXPECT_EQ(source->Stats().snapshot_chunks, 3000 / 70 + 1);
}

// A reader's connection lost in the middle of the snapshot fails the job
// with kUnavailable naming the table (and the key range it was reading);
// nothing crashes, and no row is silently skipped.
TEST_F(CdcSourceTest, ParallelSnapshotReaderLostFailsTheJobNamingTheTable) {
  CreateItems();
  Sql("INSERT INTO items SELECT g, 'a', 1, 1, NULL FROM generate_series(1, 20000) g");
  CdcOptions options = Options(SnapshotMode::kInitial);
  options.snapshot_workers = 2;
  options.snapshot_chunk_rows = 100;
  auto source = CdcSource<Item>::Create(options, ItemFields());
  Pipeline pipeline;
  pipeline.Source(source)
      .Uid("items")
      .Map([](const Change<Item>& change) {
        absl::SleepFor(absl::Microseconds(200));  // the readers wait with work left
        return change;
      })
      .Sink([](auto&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(Sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                "application_name = 'weir-snapshot:weir_slot'")[0][0],
            "2");
  absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("table public.items"));
  EXPECT_THAT(status.message(), HasSubstr("primary key (id)"));
  EXPECT_LT(source->Stats().snapshot_rows, 20000);
}

TEST_F(CdcSourceTest, SnapshotWorkersOutOfRangeIsInvalidArgument) {
  CreateItems();
  for (int workers : {0, 65}) {
    CdcOptions options = Options(SnapshotMode::kInitial);
    options.snapshot_workers = workers;
    Pipeline pipeline;
    pipeline.Source(CdcSource<Item>::Create(options, ItemFields())).Uid("i").Sink([](auto&) {});
    absl::Status status = StartStatus(pipeline);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr("snapshot_workers must be in [1, 64]"));
  }
}

TEST_F(CdcSourceTest, InitialOnlyReadsTheTableAndEnds) {
  CreateItems();
  Sql("INSERT INTO items SELECT g, 'item' || g, NULL, 1, NULL FROM generate_series(1, 250) g");
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(CdcSource<Item>::Create(Options(SnapshotMode::kInitialOnly), ItemFields()))
      .Uid("items")
      .Sink(sink);
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_EQ(sink->size(), 250u);
  std::set<int64_t> ids;
  for (const auto& change : sink->Values()) {
    EXPECT_EQ(change.op, Op::kRead);
    ids.insert(change.after->id);
  }
  EXPECT_EQ(ids.size(), 250u);
  // Its slot is temporary: the server drops it once the walsender's session
  // has ended, which may be just after the job.
  EXPECT_TRUE(weir::testing::WaitFor(
      [&] { return Sql("SELECT 1 FROM pg_replication_slots").empty(); }, absl::Seconds(10)));
}

// "op:id:qty" of every change; the crash test's sink encodes these.
std::string Describe(const Change<Item>& change) {
  const Item& row = *change.row();
  return absl::StrCat(std::string(debezium::OpName(change.op)), ":", row.id, ":",
                      row.qty.value_or(-1));
}

// items -> a Map that sleeps `per_change` (so that barriers come between
// the changes of a transaction) and describes each change -> a
// transactional file sink at `out`. The source is appended to `sources`.
void AddDescribeJob(Pipeline& pipeline, const CdcOptions& options, absl::Duration per_change,
                    const std::string& out,
                    std::vector<std::shared_ptr<CdcSource<Item>>>& sources) {
  auto source = CdcSource<Item>::Create(options, ItemFields());
  sources.push_back(source);
  pipeline.Source(source)
      .Uid("items")
      .Map([per_change](const Change<Item>& change) {
        absl::SleepFor(per_change);
        return Describe(change);
      })
      .Uid("describe")
      .Sink(std::make_shared<weir::testing::TransactionalFileSink<std::string>>(out))
      .Uid("out");
}

TEST_F(CdcSourceTest, CrashesAndRestoresEmitEveryChangeExactlyOnce) {
  CreateItems();
  const std::string out = dir_ + "/out";
  std::vector<std::shared_ptr<CdcSource<Item>>> sources;
  // Few changes per poll: checkpoints cut through transactions.
  CdcOptions source_options = Options();
  source_options.max_changes_per_poll = 7;
  int64_t skipped = 0;
  // Slow enough that barriers come while a transaction is half read.
  auto build = [&](Pipeline& pipeline) {
    AddDescribeJob(pipeline, source_options, absl::Microseconds(500), out, sources);
  };
  PipelineOptions options{.batch_size = 8};
  options.checkpoints = {.interval = absl::Milliseconds(100),
                         .storage_uri = "file://" + dir_ + "/checkpoints",
                         .retained = 2};
  // A writer commits transactions of 20 rows (an insert and an update each)
  // while runs are cancelled at moments a checkpoint cuts through one.
  // It starts once the first run created the slot (SnapshotMode::kNever:
  // what commits before that is not captured).
  std::atomic<int> committed{0};
  std::thread writer;
  auto write = [&] {
    std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(server_->conninfo().c_str()));
    for (int tx = 0; tx < 60; ++tx) {
      std::string sql = "BEGIN;";
      for (int idx = 0; idx < 10; ++idx) {
        const int id = tx * 10 + idx;
        absl::StrAppend(&sql, "INSERT INTO items VALUES (", id, ", 'n', 0, 1, NULL);",
                        "UPDATE items SET qty = 1 WHERE id = ", id, ";");
      }
      sql += "COMMIT";
      PQclear(PQexec(conn.get(), sql.c_str()));
      committed = tx + 1;
      absl::SleepFor(absl::Milliseconds(25));
    }
  };
  for (int run = 0; run < 4; ++run) {
    Pipeline pipeline(options);
    build(pipeline);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << "run " << run << ": " << job.status();
    if (run == 0) writer = std::thread(write);
    absl::SleepFor(absl::Milliseconds(300 + 170 * run));
    job->Cancel();  // a crash: nothing after the last checkpoint is committed
    (void)job->Wait();
  }
  writer.join();
  {
    Pipeline pipeline(options);
    build(pipeline);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    // Until every change is committed by a checkpoint.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::vector<std::string>> done =
          weir::testing::TransactionalFileSink<std::string>::ReadCommitted(out);
      if (done.ok() && done->size() >= 1200) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    job->Stop();
    ASSERT_TRUE(job->Wait().ok());
  }
  absl::StatusOr<std::vector<std::string>> done =
      weir::testing::TransactionalFileSink<std::string>::ReadCommitted(out);
  ASSERT_TRUE(done.ok()) << done.status();
  std::map<std::string, int> counts;
  for (const std::string& line : *done) ++counts[line];
  EXPECT_EQ(done->size(), 1200u);
  for (int id = 0; id < 600; ++id) {
    EXPECT_EQ(counts[absl::StrCat("c:", id, ":0")], 1) << id;
    EXPECT_EQ(counts[absl::StrCat("u:", id, ":1")], 1) << id;
  }
  // Restores resent rows of transactions a checkpoint had cut through.
  for (const auto& source : sources) skipped += source->Stats().skipped_replayed;
  EXPECT_GT(skipped, 0);
}

absl::Status StartStatus(Pipeline& pipeline);

// The value of `name` in `letter.position` ("" when absent).
std::string PositionOf(const DeadLetter& letter, const std::string& name) {
  for (const auto& [key, value] : letter.position) {
    if (key == name) return value;
  }
  return "";
}

TEST_F(CdcSourceTest, RowsThatDoNotMapBecomeDeadLettersWithTheirPosition) {
  CreateItems();
  // Room for values the struct cannot take: NaN (price into Decimal(2)
  // cents), a NULL name (a Required field) and a qty beyond int32.
  Sql("ALTER TABLE items ALTER COLUMN price TYPE numeric");
  Sql("ALTER TABLE items ALTER COLUMN name DROP NOT NULL");
  Sql("ALTER TABLE items ALTER COLUMN qty TYPE bigint");
  Sql("ALTER TABLE items ALTER COLUMN name SET STORAGE EXTERNAL");  // TOASTed, uncompressed
  Pipeline pipeline;
  auto dlq = weir::testing::CollectingDeadLetterQueue::Create();
  CdcOptions options = Options();
  options.dead_letters = dlq;
  auto source = CdcSource<Item>::Create(options, ItemFields());
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(source).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  // Each bad row with the WAL positions around it, the field and the reason.
  struct Bad {
    int64_t id;
    std::string op;
    std::string sql;
    std::string field;
    std::string reason;
    std::string lsn_before, lsn_after;
  };
  const std::string big(20000, 'x');
  std::vector<Bad> bad = {
      {2, "c", "INSERT INTO items VALUES (2, NULL, 1, 1, NULL)", "name", "is NULL"},
      {3, "c", "INSERT INTO items VALUES (3, 'n', 1, 'NaN', NULL)", "price",
       "not a finite decimal"},
      {4, "c", "INSERT INTO items VALUES (4, 'n', 1099511627776, 1, NULL)", "qty", "range"},
      // name is unchanged and TOASTed, and REPLICA IDENTITY DEFAULT sends no old row.
      {5, "u", "UPDATE items SET qty = 2 WHERE id = 5", "name", "REPLICA IDENTITY FULL"},
  };
  Sql("INSERT INTO items VALUES (1, 'a', 1, 1.5, NULL)");
  Sql("INSERT INTO items VALUES (5, '" + big + "', 1, 1, NULL)");
  for (Bad& row : bad) {
    row.lsn_before = Sql("SELECT pg_current_wal_insert_lsn()")[0][0];
    Sql(row.sql);
    row.lsn_after = Sql("SELECT pg_current_wal_insert_lsn()")[0][0];
  }
  // A transaction mixing good and bad rows: the good ones still arrive.
  Sql("BEGIN; INSERT INTO items VALUES (6, 'b', NULL, 2, NULL); "
      "INSERT INTO items VALUES (7, NULL, NULL, 2, NULL); "
      "INSERT INTO items VALUES (8, 'c', NULL, 3, NULL); COMMIT");
  WaitFor(sink, 4);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (dlq->size() < 5 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());

  std::vector<int64_t> good;
  for (const Change<Item>& change : sink->Values()) good.push_back(change.after->id);
  EXPECT_THAT(good, ::testing::ElementsAre(1, 5, 6, 8));
  const std::vector<DeadLetter> letters = dlq->Letters();
  ASSERT_EQ(letters.size(), 5u);
  EXPECT_EQ(source->Stats().dead_letters, 5);
  EXPECT_EQ(source->Stats().changes, 4);
  for (size_t index = 0; index < bad.size(); ++index) {
    const Bad& row = bad[index];
    const DeadLetter& letter = letters[index];
    SCOPED_TRACE(row.sql);
    EXPECT_EQ(letter.code, absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(letter.error, HasSubstr("field \"" + row.field + "\""));
    EXPECT_THAT(letter.error, HasSubstr("table public.items"));
    EXPECT_THAT(letter.error, HasSubstr(row.reason));
    EXPECT_EQ(letter.stage, "postgres-source");
    EXPECT_EQ(letter.topic, "postgres.public.items");
    EXPECT_EQ(letter.key, absl::StrCat("{\"id\":\"", row.id, "\"}"));
    EXPECT_GT(letter.timestamp_ms, 0);
    EXPECT_EQ(PositionOf(letter, "slot"), "weir_slot");
    EXPECT_EQ(PositionOf(letter, "table"), "public.items");
    EXPECT_FALSE(PositionOf(letter, "txid").empty());
    const std::string lsn = PositionOf(letter, "lsn");
    ASSERT_FALSE(lsn.empty());
    EXPECT_EQ(Sql("SELECT '" + lsn + "'::pg_lsn BETWEEN '" + row.lsn_before + "'::pg_lsn AND '" +
                  row.lsn_after + "'::pg_lsn")[0][0],
              "t")
        << lsn << " not in " << row.lsn_before << ".." << row.lsn_after;
    // The change as Debezium JSON with the values as the server sent them.
    EXPECT_THAT(letter.payload, HasSubstr("\"op\":\"" + row.op + "\""));
    EXPECT_THAT(letter.payload, HasSubstr("\"table\":\"items\""));
    EXPECT_THAT(letter.payload, HasSubstr("\"lsn\":"));
  }
  EXPECT_THAT(letters[0].payload,
              HasSubstr("\"after\":{\"id\":\"2\",\"name\":null,\"qty\":\"1\",\"price\":\"1\","
                        "\"note\":null}"));
  EXPECT_THAT(letters[1].payload, HasSubstr("\"price\":\"NaN\""));
  EXPECT_THAT(letters[2].payload, HasSubstr("\"qty\":\"1099511627776\""));
  EXPECT_THAT(letters[3].payload, HasSubstr("\"before\":null"));
  EXPECT_THAT(letters[3].payload, HasSubstr("\"name\":\"__debezium_unavailable_value\""));
  EXPECT_THAT(letters[3].payload, HasSubstr("\"qty\":\"2\""));
  EXPECT_EQ(letters[4].key, "{\"id\":\"7\"}");
  // All three rows of the mixed transaction share its txid.
  EXPECT_EQ(PositionOf(letters[4], "txid"), Sql("SELECT xmin FROM items WHERE id = 8")[0][0]);
}

TEST_F(CdcSourceTest, DeadLetterPolicyWithoutAQueueIsInvalidArgument) {
  CreateItems();
  CdcOptions options = Options();
  options.on_error = ErrorPolicy::kDeadLetter;
  Pipeline pipeline;
  pipeline.Source(CdcSource<Item>::Create(options, ItemFields())).Uid("items").Sink([](auto&) {});
  absl::Status status = StartStatus(pipeline);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("dead_letters"));
}

TEST_F(CdcSourceTest, FailPolicyWithAQueueFailsTheJobNamingThePosition) {
  CreateItems();
  Sql("ALTER TABLE items ALTER COLUMN price TYPE numeric");
  auto dlq = weir::testing::CollectingDeadLetterQueue::Create();
  CdcOptions options = Options();
  options.dead_letters = dlq;
  options.on_error = ErrorPolicy::kFail;
  Pipeline pipeline;
  pipeline.Source(CdcSource<Item>::Create(options, ItemFields())).Uid("items").Sink([](auto&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql("INSERT INTO items VALUES (1, 'x', 1, 'NaN', NULL)");
  absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("slot weir_slot, LSN "));
  EXPECT_THAT(status.message(), HasSubstr("table public.items"));
  EXPECT_THAT(status.message(), HasSubstr("\"price\""));
  EXPECT_EQ(dlq->size(), 0u);
}

TEST_F(CdcSourceTest, SnapshotRowsThatDoNotMapBecomeDeadLetters) {
  CreateItems();
  Sql("ALTER TABLE items ALTER COLUMN price TYPE numeric");
  Sql("INSERT INTO items VALUES (1, 'a', 1, 1, NULL), (2, 'b', 1, 'NaN', NULL), "
      "(3, 'c', 1, 3, NULL)");
  auto dlq = weir::testing::CollectingDeadLetterQueue::Create();
  CdcOptions options = Options(SnapshotMode::kInitialOnly);
  options.dead_letters = dlq;
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(CdcSource<Item>::Create(options, ItemFields())).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->Wait().ok());
  ASSERT_EQ(sink->size(), 2u);
  const std::vector<DeadLetter> letters = dlq->Letters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_THAT(letters[0].error, HasSubstr("\"price\""));
  EXPECT_EQ(letters[0].key, "{\"id\":\"2\"}");
  EXPECT_THAT(letters[0].payload, HasSubstr("\"op\":\"r\""));
  EXPECT_THAT(letters[0].payload, HasSubstr("\"snapshot\":\"true\""));
  EXPECT_THAT(letters[0].payload, HasSubstr("\"price\":\"NaN\""));
  EXPECT_FALSE(PositionOf(letters[0], "lsn").empty());
}

// A run is cancelled (a crash) after a checkpoint that cut through a
// transaction, with letters of rows after it not yet covered; rows are
// written while the job is down; the restored run ends with a final
// checkpoint. Every good change and every dead letter arrives exactly once.
TEST_F(CdcSourceTest, CrashAndRestoreLoseAndDuplicateNoDeadLetter) {
  CreateItems();
  Sql("ALTER TABLE items ALTER COLUMN price TYPE numeric");
  Sql("ALTER TABLE items ALTER COLUMN name DROP NOT NULL");
  Sql("ALTER TABLE items ALTER COLUMN qty TYPE bigint");
  const std::string out = dir_ + "/out";
  auto dlq = weir::testing::CollectingDeadLetterQueue::Create();
  CdcOptions source_options = Options();
  source_options.dead_letters = dlq;
  source_options.max_changes_per_poll = 3;
  std::vector<std::shared_ptr<CdcSource<Item>>> sources;
  // The source and this map are one call chain: the source reads
  // about a row a millisecond, so a checkpoint cuts a transaction.
  auto build = [&](Pipeline& pipeline) {
    AddDescribeJob(pipeline, source_options, absl::Milliseconds(1), out, sources);
  };
  // Checkpoints only when the test asks, so none is in flight at the crash.
  PipelineOptions options{.batch_size = 4};
  options.checkpoints = {.interval = absl::Hours(1),
                         .storage_uri = "file://" + dir_ + "/checkpoints"};
  // Rows [from, to) in one transaction; every tenth is bad, in turn a NULL
  // name, a NaN price and a qty beyond int32.
  auto write = [&](int from, int to) {
    std::string sql = "BEGIN;";
    for (int id = from; id < to; ++id) {
      std::string values = absl::StrCat(id, ", 'n', 0, 1, NULL");
      if (id % 10 == 5) {
        switch ((id / 10) % 3) {
          case 0:
            values = absl::StrCat(id, ", NULL, 0, 1, NULL");
            break;
          case 1:
            values = absl::StrCat(id, ", 'n', 0, 'NaN', NULL");
            break;
          default:
            values = absl::StrCat(id, ", 'n', 1099511627776, 1, NULL");
        }
      }
      absl::StrAppend(&sql, "INSERT INTO items VALUES (", values, ");");
    }
    Sql(sql + "COMMIT");
  };
  {
    Pipeline pipeline(options);
    build(pipeline);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(job->TriggerCheckpoint().ok());  // the slot exists from here on
    write(0, 400);
    // Waits until the run has read `rows` rows of the transaction.
    auto read = [&](int64_t rows) {
      ASSERT_TRUE(weir::testing::WaitFor(
          [&] { return sources.back()->Stats().changes >= rows * 9 / 10; }, absl::Seconds(30)));
    };
    read(120);
    absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();  // mid-transaction
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    read(250);
    job->Cancel();  // a crash: the letters read since the checkpoint are not out
    (void)job->Wait();
  }
  // The checkpoint's letters are out, those of the rows after it are not.
  const size_t first_run_letters = dlq->size();
  EXPECT_GT(first_run_letters, 0u);
  EXPECT_LT(first_run_letters, 40u);
  WaitSlotsInactive();
  write(400, 500);  // while the job is down
  {
    Pipeline pipeline(options);
    build(pipeline);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    // Checkpoints commit the changes and send the letters out.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      ASSERT_TRUE(job->TriggerCheckpoint().ok());
      absl::StatusOr<std::vector<std::string>> done =
          weir::testing::TransactionalFileSink<std::string>::ReadCommitted(out);
      if (done.ok() && done->size() >= 450 && dlq->size() >= 50) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    job->Stop();  // a final checkpoint: the last letters go out with it
    ASSERT_TRUE(job->Wait().ok());
  }
  absl::StatusOr<std::vector<std::string>> done =
      weir::testing::TransactionalFileSink<std::string>::ReadCommitted(out);
  ASSERT_TRUE(done.ok()) << done.status();
  std::map<std::string, int> changes;
  for (const std::string& line : *done) ++changes[line];
  EXPECT_EQ(done->size(), 450u);
  std::map<std::string, int> letters;
  for (const DeadLetter& letter : dlq->Letters()) ++letters[letter.key];
  EXPECT_EQ(dlq->size(), 50u);
  for (int id = 0; id < 500; ++id) {
    if (id % 10 == 5) {
      EXPECT_EQ(letters[absl::StrCat("{\"id\":\"", id, "\"}")], 1) << id;
      EXPECT_EQ(changes[absl::StrCat("c:", id, ":0")], 0) << id;
    } else {
      EXPECT_EQ(changes[absl::StrCat("c:", id, ":0")], 1) << id;
    }
  }
  // The restore resumed inside the transaction the checkpoint cut through.
  EXPECT_GT(sources.back()->Stats().skipped_replayed, 0);
}

TEST_F(CdcSourceTest, ServerRestartMidStreamLosesAndDuplicatesNothing) {
  CreateItems();
  Pipeline pipeline({.batch_size = 8});
  auto source = CdcSource<Item>::Create(Options(), ItemFields());
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(source).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql("INSERT INTO items SELECT g, 'a', 1, 1, NULL FROM generate_series(1, 500) g");
  WaitFor(sink, 500);
  ASSERT_TRUE(server_->Restart().ok()) << server_->Log();
  Reconnect();
  Sql("INSERT INTO items SELECT g, 'b', 2, 1, NULL FROM generate_series(501, 1000) g");
  WaitFor(sink, 1000);
  absl::SleepFor(absl::Milliseconds(500));  // anything replayed would show up now
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  std::map<int64_t, int> counts;
  for (const auto& change : sink->Values()) ++counts[change.after->id];
  EXPECT_EQ(counts.size(), 1000u);
  for (const auto& [id, count] : counts) EXPECT_EQ(count, 1) << id;
  EXPECT_GE(source->Stats().reconnects, 1);
}

// A sink that blocks until released.
class BlockingSink final : public Sink<Change<Item>> {
 public:
  std::atomic<bool> released{false};
  std::atomic<int64_t> received{0};
  size_t size() const { return static_cast<size_t>(received.load()); }
  absl::StatusOr<std::unique_ptr<SinkWriter<Change<Item>>>> CreateWriter(
      const SinkContext&) override {
    class Writer final : public SinkWriter<Change<Item>> {
     public:
      explicit Writer(BlockingSink* sink) : sink_(sink) {}
      absl::Status Write(std::span<Change<Item>> values, std::span<const Timestamp>) override {
        while (!sink_->released.load()) absl::SleepFor(absl::Milliseconds(10));
        sink_->received += static_cast<int64_t>(values.size());
        return absl::OkStatus();
      }

     private:
      BlockingSink* sink_;
    };
    return std::unique_ptr<SinkWriter<Change<Item>>>(new Writer(this));
  }
};

TEST_F(CdcSourceTest, ConnectionSurvivesASinkBlockedPastWalSenderTimeout) {
  server_.reset();
  StartServer({.settings = {"wal_sender_timeout=2s"}});
  CreateItems();
  Pipeline pipeline({.batch_size = 16, .queue_capacity = 2});
  CdcOptions options = Options();
  options.max_buffered_bytes = 64 << 10;  // the reader stops reading soon
  auto source = CdcSource<Item>::Create(options, ItemFields());
  auto sink = std::make_shared<BlockingSink>();
  pipeline.Source(source).Uid("items").Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  Sql("INSERT INTO items SELECT g, repeat('x', 200), 1, 1, NULL FROM generate_series(1, 20000) g");
  absl::SleepFor(absl::Seconds(10));
  sink->released = true;
  WaitFor(sink, 20000);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(sink->size(), 20000u);
  EXPECT_EQ(source->Stats().reconnects, 0);
  EXPECT_THAT(server_->Log(), ::testing::Not(HasSubstr("terminating walsender process due to "
                                                       "replication timeout")));
}

// No checkpoint completes while the initial snapshot is read: its barrier
// waits at the source (the exported snapshot could not be resumed by a
// restore). A run killed during the snapshot has therefore committed none of
// it, and the next run, finding the slot but no checkpoint, takes the
// snapshot again from a new slot: every row exactly once, then streaming.
TEST_F(CdcSourceTest, CrashDuringTheSnapshotTakesItAgainExactlyOnce) {
  CreateItems();
  Sql("INSERT INTO items SELECT g, 'a', 1, 1, NULL FROM generate_series(1, 3000) g");
  const std::string out = dir_ + "/out";
  PipelineOptions options{.batch_size = 16};
  options.checkpoints = {.interval = absl::Milliseconds(20),
                         .storage_uri = "file://" + dir_ + "/checkpoints"};
  std::vector<std::shared_ptr<CdcSource<Item>>> sources;
  auto build = [&](Pipeline& pipeline) {
    AddDescribeJob(pipeline, Options(SnapshotMode::kInitial), absl::Microseconds(300), out,
                   sources);
  };
  {
    Pipeline pipeline(options);
    build(pipeline);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    // Checkpoints are asked for every 20 ms; none completes during the snapshot.
    while (sources[0]->Stats().snapshot_rows < 1500) {
      ASSERT_EQ(job->last_completed_checkpoint(), 0)
          << "a checkpoint completed after " << sources[0]->Stats().snapshot_rows
          << " snapshot rows";
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_EQ(job->last_completed_checkpoint(), 0);
    EXPECT_LT(sources[0]->Stats().snapshot_rows, 3000);
    job->Cancel();
    (void)job->Wait();
  }
  Sql("INSERT INTO items VALUES (5000, 'after', 1, 1, NULL)");
  {
    Pipeline pipeline(options);
    build(pipeline);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    Sql("INSERT INTO items VALUES (5001, 'streamed', 1, 1, NULL)");
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while ((sources[1]->Stats().changes < 1 || job->last_completed_checkpoint() == 0) &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    // Once the snapshot is read, checkpoints complete again.
    EXPECT_GT(job->last_completed_checkpoint(), 0);
    job->Stop();
    ASSERT_TRUE(job->Wait().ok());
  }
  absl::StatusOr<std::vector<std::string>> done =
      weir::testing::TransactionalFileSink<std::string>::ReadCommitted(out);
  ASSERT_TRUE(done.ok()) << done.status();
  std::map<std::string, int> counts;
  for (const std::string& line : *done) ++counts[line];
  for (int id = 1; id <= 3000; ++id) EXPECT_EQ(counts[absl::StrCat("r:", id, ":1")], 1) << id;
  EXPECT_EQ(counts["r:5000:1"], 1);  // read by the second snapshot
  EXPECT_EQ(counts["c:5001:1"], 1);  // streamed after it
  EXPECT_EQ(done->size(), 3002u);
  EXPECT_EQ(sources[1]->Stats().snapshot_rows, 3001);
  // Both attempts read the snapshot in key ranges, over the default four readers.
  EXPECT_EQ(sources[0]->Stats().snapshot_readers, 4);
  EXPECT_EQ(sources[1]->Stats().snapshot_readers, 4);
  EXPECT_GE(sources[1]->Stats().snapshot_chunks, 30);
}

// With nothing to capture (the writes go to a table outside the
// publication), keepalives let the slot's confirmed LSN follow the WAL, once
// checkpoints cover it.
TEST_F(CdcSourceTest, IdleSlotAdvancesWithCheckpoints) {
  CreateItems();
  Sql("CREATE TABLE other (id int)");
  PipelineOptions options;
  options.checkpoints = {
      .interval = absl::Hours(1), .storage_uri = "file://" + dir_ + "/checkpoints", .retained = 1};
  Pipeline pipeline(options);
  pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields()))
      .Uid("items")
      .Sink([](auto&) {})
      .Uid("sink");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string created = SlotConfirmed();
  Sql("SET synchronous_commit = on");
  Sql("INSERT INTO other SELECT generate_series(1, 10000)");
  const std::string wal_end = Sql("SELECT pg_current_wal_lsn()")[0][0];
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool advanced = false;
  while (!advanced && absl::Now() < deadline) {
    ASSERT_TRUE(job->TriggerCheckpoint().ok());
    absl::SleepFor(absl::Milliseconds(300));
    advanced = Sql("SELECT confirmed_flush_lsn >= '" + wal_end +
                   "' FROM pg_replication_slots WHERE slot_name = 'weir_slot'")[0][0] == "t";
  }
  EXPECT_TRUE(advanced) << "created at " << created << ", now at " << SlotConfirmed() << ", WAL at "
                        << wal_end;
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
}

TEST_F(CdcSourceTest, WalLevelNotLogicalIsFailedPrecondition) {
  server_.reset();
  StartServer({.settings = {"wal_level=replica"}});
  CreateItems();
  Pipeline pipeline;
  pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("items").Sink([](auto&) {});
  absl::Status status = StartStatus(pipeline);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("wal_level = logical"));
}

TEST_F(CdcSourceTest, BadCredentialsAreUnauthenticated) {
  server_.reset();
  StartServer({.password = "s3cret"});
  CreateItems();
  CdcOptions options = Options();
  options.connection = absl::StrCat("host=127.0.0.1 port=", server_->port(),
                                    " user=postgres dbname=postgres password=wrong");
  Pipeline pipeline;
  pipeline.Source(CdcSource<Item>::Create(options, ItemFields())).Uid("items").Sink([](auto&) {});
  absl::Status status = StartStatus(pipeline);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  // With the right password it starts.
  Pipeline good;
  good.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("items").Sink([](auto&) {});
  EXPECT_TRUE(StartStatus(good).ok());
}

TEST_F(CdcSourceTest, MissingOrIncompletePublicationNamesIt) {
  Sql("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, "
      "price numeric(10,2) NOT NULL, note text)");
  Sql("CREATE TABLE other (id int PRIMARY KEY)");
  {
    Pipeline pipeline;
    pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("i").Sink([](auto&) {});
    absl::Status status = StartStatus(pipeline);
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
    EXPECT_THAT(status.message(), HasSubstr("publication \"weir_pub\" does not exist"));
  }
  Sql("CREATE PUBLICATION weir_pub FOR TABLE other");
  {
    Pipeline pipeline;
    pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields())).Uid("i").Sink([](auto&) {});
    absl::Status status = StartStatus(pipeline);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(status.message(), HasSubstr("does not cover table public.items"));
  }
  Sql("DROP PUBLICATION weir_pub");
  {
    CdcOptions options = Options();
    options.create_publication = true;
    Pipeline pipeline;
    pipeline.Source(CdcSource<Item>::Create(options, ItemFields())).Uid("i").Sink([](auto&) {});
    EXPECT_TRUE(StartStatus(pipeline).ok());
    EXPECT_EQ(Sql("SELECT tablename FROM pg_publication_tables WHERE pubname = 'weir_pub'"),
              (std::vector<std::vector<std::string>>{{"items"}}));
  }
}

TEST_F(CdcSourceTest, SlotActiveElsewhereIsUnavailable) {
  CreateItems();
  Sql("SELECT pg_create_logical_replication_slot('weir_slot', 'pgoutput')");
  std::unique_ptr<PGconn, ConnDeleter> other(
      PQconnectdb((server_->conninfo() + " replication=database").c_str()));
  ASSERT_EQ(PQstatus(other.get()), CONNECTION_OK);
  PGresult* started = PQexec(other.get(),
                             "START_REPLICATION SLOT weir_slot LOGICAL 0/0 (proto_version '1', "
                             "publication_names 'weir_pub')");
  ASSERT_EQ(PQresultStatus(started), PGRES_COPY_BOTH) << PQresultErrorMessage(started);
  PQclear(started);
  CdcOptions options = Options();
  options.slot_busy_timeout = absl::Milliseconds(500);
  Pipeline pipeline;
  pipeline.Source(CdcSource<Item>::Create(options, ItemFields())).Uid("i").Sink([](auto&) {});
  absl::Status status = StartStatus(pipeline);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("\"weir_slot\" is active"));
}

class CdcRestoreTest : public CdcSourceTest {
 protected:
  // Runs a job with checkpoints until it emitted `rows` changes and took a
  // checkpoint covering them; stops it.
  void RunOnce(int rows) {
    Pipeline pipeline(Checkpointed());
    auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
    pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields()))
        .Uid("items")
        .Sink(sink)
        .Uid("sink");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    Sql(absl::StrCat("INSERT INTO items SELECT g, 'a', 1, 1, NULL FROM generate_series(", next_id_,
                     ", ", next_id_ + rows - 1, ") g"));
    next_id_ += rows;
    WaitFor(sink, static_cast<size_t>(rows));
    ASSERT_TRUE(job->TriggerCheckpoint().ok());
    job->Cancel();
    (void)job->Wait();
    WaitSlotsInactive();
  }
  PipelineOptions Checkpointed() {
    PipelineOptions options;
    options.checkpoints = {.interval = absl::Hours(1),
                           .storage_uri = "file://" + dir_ + "/checkpoints",
                           .retained = 1};
    return options;
  }
  absl::Status Restore() {
    Pipeline pipeline(Checkpointed());
    pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields()))
        .Uid("items")
        .Sink([](auto&) {})
        .Uid("sink");
    return StartStatus(pipeline);
  }
  int next_id_ = 1;
};

TEST_F(CdcRestoreTest, SlotMissingOnRestoreIsDataLoss) {
  CreateItems();
  RunOnce(10);
  Sql("SELECT pg_drop_replication_slot('weir_slot')");
  absl::Status status = Restore();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr("\"weir_slot\" does not exist"));
  EXPECT_THAT(status.message(), HasSubstr("resumes at LSN "));
}

TEST_F(CdcRestoreTest, SlotConfirmedBeyondTheCheckpointIsDataLoss) {
  CreateItems();
  RunOnce(10);
  // Flushed at commit (the server runs with synchronous_commit=off), so that
  // the slot can advance past it.
  Sql("SET synchronous_commit = on");
  Sql("INSERT INTO items VALUES (1000, 'later', 1, 1, NULL)");
  Sql("SELECT pg_replication_slot_advance('weir_slot', pg_current_wal_lsn())");
  const std::string advanced = SlotConfirmed();
  absl::Status status = Restore();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr("\"weir_slot\" has confirmed LSN " + advanced));
  EXPECT_THAT(status.message(), HasSubstr("beyond the checkpoint's LSN "));
}

TEST_F(CdcRestoreTest, ConfirmedLsnMovesOnlyWithCompletedCheckpoints) {
  CreateItems();
  Pipeline pipeline(Checkpointed());
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields()))
      .Uid("items")
      .Sink(sink)
      .Uid("sink");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string created = SlotConfirmed();
  Sql("INSERT INTO items SELECT g, 'a', 1, 1, NULL FROM generate_series(1, 100) g");
  WaitFor(sink, 100);
  absl::SleepFor(absl::Seconds(1));     // several status updates
  EXPECT_EQ(SlotConfirmed(), created);  // no checkpoint yet: nothing confirmed
  ASSERT_TRUE(job->TriggerCheckpoint().ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (SlotConfirmed() == created && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(SlotConfirmed(), created);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
}

// With CheckpointOptions::retained = 2 a restore may fall back to the
// checkpoint before the newest: the slot is confirmed for that one.
TEST_F(CdcRestoreTest, ConfirmsTheOldestRetainedCheckpoint) {
  CreateItems();
  PipelineOptions options = Checkpointed();
  options.checkpoints.retained = 2;
  Pipeline pipeline(options);
  auto sink = weir::testing::CollectingSink<Change<Item>>::Create();
  pipeline.Source(CdcSource<Item>::Create(Options(), ItemFields()))
      .Uid("items")
      .Sink(sink)
      .Uid("sink");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string created = SlotConfirmed();
  auto checkpoint_after = [&](int first) {
    Sql(absl::StrCat("INSERT INTO items SELECT g, 'a', 1, 1, NULL FROM generate_series(", first,
                     ", ", first + 99, ") g"));
    WaitFor(sink, static_cast<size_t>(first + 99));
    ASSERT_TRUE(job->TriggerCheckpoint().ok());
    absl::SleepFor(absl::Milliseconds(800));  // several status updates
  };
  auto lsn = [&](const std::string& text) {
    return Sql("SELECT '" + text + "'::pg_lsn - '0/0'::pg_lsn")[0][0];
  };
  checkpoint_after(1);
  const std::string first = SlotConfirmed();
  EXPECT_NE(first, created);  // the only (so the oldest) checkpoint
  checkpoint_after(101);
  EXPECT_EQ(SlotConfirmed(), first);  // checkpoint 1 is still the oldest retained
  checkpoint_after(201);
  const std::string third = SlotConfirmed();
  EXPECT_GT(std::stoll(lsn(third)), std::stoll(lsn(first)));  // checkpoint 2's
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
}

}  // namespace
}  // namespace weir::postgres
