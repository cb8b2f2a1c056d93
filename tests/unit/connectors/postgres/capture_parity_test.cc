// weir-capture's pipeline (tools/capture) against a real PostgreSQL and
// librdkafka's mock cluster: what it writes to Kafka, decoded with weir's
// Debezium decoder, is the same Change<T> sequence the native source
// (CdcSource<T>) yields for the same changes; each delete is followed by a
// tombstone; keys are the primary key. And the program killed (SIGKILL) ten
// times mid-stream: on every broker the topic's last value per key is the
// table's row; where the broker isolates transactions (a real one:
// WEIR_TEST_KAFKA_BROKERS, docs/testing.md), a read_committed reader sees
// every change exactly once, in LSN order per key. librdkafka's mock cluster
// shows aborted transactions to read_committed readers too: that check skips
// on it (counted by ctest).

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/postgres_server.h"
#include "tests/support/prerequisite.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"
#include "tools/capture/capture.h"
#include "weir/connectors/postgres.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::capture {
namespace {

using debezium::Change;
using debezium::Op;
using weir::testing::PostgresServer;

struct Row {
  int64_t id = 0;
  std::string name;
  std::optional<int32_t> qty;
  int64_t price_cents = 0;
  std::optional<std::string> note;
  int64_t at_us = 0;
  int64_t day_ms = 0;
  std::string uuid;
  std::string doc;
  std::vector<int64_t> numbers;
  std::string bytes;
  std::optional<double> ratio;

  friend bool operator==(const Row&, const Row&) = default;
};

debezium::Fields<Row> RowFields() {
  return debezium::Fields<Row>()
      .Required("id", &Row::id)
      .Required("name", &Row::name)
      .Optional("qty", &Row::qty)
      // The wire types, for records without a schema (schemas.enable=false).
      .Required("price", &Row::price_cents, debezium::Decimal(2, debezium::DecimalMode::kString))
      .Optional("note", &Row::note)
      .Required("at", &Row::at_us, debezium::EpochMicros(debezium::TimeType::kZonedTimestamp))
      .Required("day", &Row::day_ms, debezium::EpochMillis(debezium::TimeType::kDate))
      .Required("u", &Row::uuid, debezium::Uuid())
      .Required("doc", &Row::doc, debezium::Json())
      .Required("numbers", &Row::numbers)
      .Required("b", &Row::bytes)
      .Optional("ratio", &Row::ratio);
}

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};

class CaptureProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
    if (absl::IsFailedPrecondition(server.status())) {
      WEIR_MISSING_PREREQUISITE(server.status().message());
    }
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    conn_.reset(PQconnectdb(server_->conninfo().c_str()));
    ASSERT_EQ(PQstatus(conn_.get()), CONNECTION_OK);
    absl::StatusOr<std::unique_ptr<kafka::testing::KafkaTestBroker>> broker =
        environment_broker_ ? kafka::testing::KafkaTestBroker::FromEnvironment()
                            : kafka::testing::KafkaTestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    if (broker_->mock() == nullptr) {
      // Topics and transactional ids outlive the run on a real broker: this
      // run's have names of their own.
      const std::string run = absl::StrCat(
          getpid(), "-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
      prefix_ = "capture-" + run;
      job_name_ = "weir-capture-" + run;
    }
    absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("weir-capture");
    ASSERT_TRUE(dir.ok());
    dir_ = *dir;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void Sql(const std::string& sql) {
    PGresult* result = PQexec(conn_.get(), sql.c_str());
    EXPECT_TRUE(PQresultStatus(result) == PGRES_COMMAND_OK ||
                PQresultStatus(result) == PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(result);
    PQclear(result);
  }
  postgres::CdcOptions Source(const std::string& slot) {
    return {.connection = server_->conninfo(),
            .slot = slot,
            .publication = "pub",
            .tables = {"public.items"},
            .snapshot = postgres::SnapshotMode::kInitial,
            .status_interval = absl::Milliseconds(200)};
  }

  // Set by fixtures whose tests also run against WEIR_TEST_KAFKA_BROKERS.
  bool environment_broker_ = false;
  std::unique_ptr<PostgresServer> server_;
  std::unique_ptr<PGconn, ConnDeleter> conn_;
  std::unique_ptr<kafka::testing::KafkaTestBroker> broker_;
  // weir-capture's --prefix and --job-name.
  std::string prefix_ = "postgres";
  std::string job_name_ = "weir-capture";
  std::string dir_;
};

class CaptureParityTest : public CaptureProgramTest, public ::testing::WithParamInterface<bool> {};

TEST_P(CaptureParityTest, KafkaOutputDecodesToTheNativeSourcesChanges) {
  const bool with_schema = GetParam();
  Sql("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, "
      "price numeric(10,2) NOT NULL, note text, at timestamptz NOT NULL, day date NOT NULL, "
      "u uuid NOT NULL, doc jsonb NOT NULL, numbers bigint[] NOT NULL, b bytea NOT NULL, "
      "ratio double precision)");
  Sql("CREATE PUBLICATION pub FOR TABLE items");
  const std::string values =
      "'n', 1, 12.5, NULL, '2024-03-01 10:30:00.123456+01', '2024-03-01', "
      "'6f1b0c2e-0000-4000-8000-00000000ffff', '{\"a\": [1, 2]}', '{1,-2}', '\\x00ff', 'NaN'";
  Sql("INSERT INTO items VALUES (1, " + values + ")");  // read by both snapshots
  ASSERT_TRUE(broker_->CreateTopic("postgres.public.items", 1).ok());

  // The native source.
  Pipeline native;
  auto sink = weir::testing::CollectingSink<Change<Row>>::Create();
  native.Source(postgres::CdcSource<Row>::Create(Source("native"), RowFields()))
      .Uid("native")
      .Sink(sink);
  absl::StatusOr<JobHandle> native_job = native.Start();
  ASSERT_TRUE(native_job.ok()) << native_job.status();

  // weir-capture's pipeline, exactly once.
  PipelineOptions options{.job_name = "capture"};
  options.checkpoints = {.interval = absl::Milliseconds(200),
                         .storage_uri = "file://" + dir_ + "/checkpoints"};
  Pipeline capture(options);
  CaptureOptions capture_options{.source = Source("capture"),
                                 .kafka = {.brokers = broker_->bootstrap()},
                                 .with_schema = with_schema};
  absl::StatusOr<std::shared_ptr<postgres::RowCdcSource>> source =
      AddCapture(capture, capture_options);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<JobHandle> capture_job = capture.Start();
  ASSERT_TRUE(capture_job.ok()) << capture_job.status();

  // Both snapshots read row 1 before the changes (a TRUNCATE waits for a
  // snapshot in progress, but one committed before it started would empty it).
  const absl::Time snapshot_deadline = absl::Now() + absl::Seconds(30);
  while ((sink->size() < 1 || (*source)->Stats().snapshot_rows < 1) &&
         absl::Now() < snapshot_deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  Sql("INSERT INTO items VALUES (2, " + values + ")");
  Sql("UPDATE items SET qty = 7, note = 'x', ratio = 0.25 WHERE id = 1");
  Sql("DELETE FROM items WHERE id = 2");
  Sql("ALTER TABLE items ADD COLUMN extra int DEFAULT 5");  // a new schema mid-stream
  Sql("INSERT INTO items VALUES (3, " + values + ")");
  Sql("TRUNCATE items");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while ((sink->size() < 6 || (*source)->Stats().changes < 5) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  native_job->Stop();
  ASSERT_TRUE(native_job->Wait().ok());
  capture_job->Stop();  // a last checkpoint commits the last transaction
  absl::Status stopped = capture_job->Wait();
  ASSERT_TRUE(stopped.ok()) << stopped;

  absl::StatusOr<std::vector<kafka::testing::ReadMessage>> messages = kafka::testing::ReadTopic(
      broker_->bootstrap(), "postgres.public.items", 1, /*read_committed=*/true);
  ASSERT_TRUE(messages.ok()) << messages.status();
  debezium::DecoderOptions decoder_options;
  absl::StatusOr<debezium::Decoder<Row>> decoder =
      debezium::Decoder<Row>::Create(RowFields(), decoder_options);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  absl::StatusOr<debezium::Decoder<Row>> key_decoder =
      debezium::Decoder<Row>::Create(debezium::Fields<Row>().Required("id", &Row::id));
  ASSERT_TRUE(key_decoder.ok()) << key_decoder.status();
  std::vector<Change<Row>> decoded;
  std::vector<Change<Row>> native_changes = sink->Values();
  for (size_t idx = 0; idx < messages->size(); ++idx) {
    const kafka::testing::ReadMessage& message = (*messages)[idx];
    absl::StatusOr<Change<Row>> change =
        decoder->Decode(message.has_value ? message.value : std::string());
    ASSERT_TRUE(change.ok()) << change.status() << "\n" << message.value;
    if (change->op == Op::kTombstone) {
      ASSERT_FALSE(decoded.empty());
      EXPECT_EQ(decoded.back().op, Op::kDelete) << "a tombstone follows each delete";
      continue;
    }
    if (with_schema && change->op == Op::kCreate && change->after->id == 3) {
      EXPECT_THAT(message.value, ::testing::HasSubstr(R"("optional":true,"field":"extra")"));
    }
    if (change->op != Op::kTruncate) {
      absl::StatusOr<std::optional<Row>> key = key_decoder->DecodeRow(message.key);
      ASSERT_TRUE(key.ok()) << key.status() << "\n" << message.key;
      ASSERT_TRUE(key->has_value());
      EXPECT_EQ((*key)->id, change->row()->id);
    } else {
      EXPECT_FALSE(message.has_key);
    }
    decoded.push_back(*std::move(change));
  }
  std::string ops;
  for (const auto& change : decoded) ops += std::string(debezium::OpName(change.op)) + " ";
  ASSERT_EQ(decoded.size(), 6u) << ops << " snapshot rows " << (*source)->Stats().snapshot_rows
                                << " messages " << messages->size();
  ASSERT_EQ(native_changes.size(), 6u);
  for (size_t idx = 0; idx < decoded.size(); ++idx) {
    SCOPED_TRACE(idx);
    Change<Row> got = decoded[idx];
    Change<Row> want = native_changes[idx];
    got.ts_ms.reset();  // processing times of two runs
    want.ts_ms.reset();
    // NaN != NaN: compare it apart.
    for (auto* change : {&got, &want}) {
      for (auto* row : {&change->before, &change->after}) {
        if (row->has_value() && (*row)->ratio.has_value() && std::isnan(*(*row)->ratio)) {
          (*row)->ratio = -1;
        }
      }
    }
    if (got.source.snapshot == "true") {  // two snapshots: their LSNs and times differ
      EXPECT_EQ(want.source.snapshot, "true");
      got.source.lsn = want.source.lsn;
      got.source.ts_ms = want.source.ts_ms;
    }
    EXPECT_EQ(got, want);
  }
  EXPECT_EQ(decoded[0].op, Op::kRead);
  EXPECT_EQ(decoded[1].op, Op::kCreate);
  EXPECT_EQ(decoded[2].op, Op::kUpdate);
  EXPECT_EQ(decoded[3].op, Op::kDelete);
  EXPECT_EQ(decoded[5].op, Op::kTruncate);
}

TEST(WeirCaptureProgramTest, HelpDocumentsEveryFlag) {
  absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("weir-capture-help");
  ASSERT_TRUE(dir.ok());
  absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> child =
      weir::testing::ChildProcess::Spawn({WEIR_CAPTURE_PATH, "--help"},
                                         {.log_path = *dir + "/help.txt"});
  ASSERT_TRUE(child.ok()) << child.status();
  while ((*child)->Running()) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ((*child)->exit_status(), 0);
  const std::string help = (*child)->Log();
  for (const char* flag :
       {"--connection=", "--tables=", "--slot=", "--publication=", "--create-publication",
        "--snapshot=", "--brokers=", "--kafka-property=", "--prefix=", "--schemas=",
        "--exactly-once=", "--checkpoints=", "--checkpoint-interval=", "--job-name=",
        "--status-interval=", "--http-port=", "--help"}) {
    EXPECT_THAT(help, ::testing::HasSubstr(flag));
  }
  std::filesystem::remove_all(*dir);
}

// The program, killed (SIGKILL) ten times at random moments (a fixed seed)
// while rows change, restarted on its checkpoints each time. Runs against
// WEIR_TEST_KAFKA_BROKERS when that is set, else the mock cluster.
class CaptureKilledTest : public CaptureProgramTest {
 protected:
  CaptureKilledTest() { environment_broker_ = true; }

  std::string Topic() const { return prefix_ + ".public.items"; }

  // 50 rows (qty 0), then the program started and killed ten times while a
  // writer runs 500 one-row UPDATEs (round r sets qty = r on row
  // 1 + r % 50), and started once more. Returns the rounds whose UPDATE
  // committed; child_ is the last run, still running.
  std::vector<int> RunKilledTenTimes() {
    Sql("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, "
        "price numeric(10,2) NOT NULL, note text, at timestamptz NOT NULL, day date NOT NULL, "
        "u uuid NOT NULL, doc jsonb NOT NULL, numbers bigint[] NOT NULL, b bytea NOT NULL, "
        "ratio double precision)");
    Sql("INSERT INTO items SELECT g, 'n', 0, 1, NULL, now(), current_date, gen_random_uuid(), "
        "'{}', '{}', '\\x00', 0 FROM generate_series(1, 50) g");
    absl::Status created = broker_->CreateTopic(Topic(), 1);
    EXPECT_TRUE(created.ok()) << created;
    const std::vector<std::string> argv = {WEIR_CAPTURE_PATH,
                                           "--connection=" + server_->conninfo(),
                                           "--tables=public.items",
                                           "--create-publication",
                                           "--brokers=" + broker_->bootstrap(),
                                           "--prefix=" + prefix_,
                                           "--job-name=" + job_name_,
                                           "--checkpoints=file://" + dir_ + "/checkpoints",
                                           "--checkpoint-interval=0.2",
                                           "--status-interval=0.5"};
    std::vector<int> committed;
    std::thread writer([&] {
      std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(server_->conninfo().c_str()));
      for (int round = 1; round <= 500; ++round) {
        const std::string sql =
            absl::StrCat("UPDATE items SET qty = ", round, " WHERE id = ", 1 + round % 50);
        PGresult* result = PQexec(conn.get(), sql.c_str());
        if (PQresultStatus(result) == PGRES_COMMAND_OK && std::string(PQcmdTuples(result)) == "1")
          committed.push_back(round);
        PQclear(result);
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
    std::mt19937 random(17);
    std::uniform_int_distribution<int> delay_ms(300, 1200);
    for (int run = 0; run <= 10; ++run) {
      absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> spawned =
          weir::testing::ChildProcess::Spawn(argv, {.log_path = dir_ + "/capture.log"});
      EXPECT_TRUE(spawned.ok()) << spawned.status();
      if (!spawned.ok()) break;
      child_ = *std::move(spawned);
      if (run == 10) break;
      absl::SleepFor(absl::Milliseconds(delay_ms(random)));
      child_->Kill();
    }
    writer.join();
    return committed;
  }

  // The table's qty per id.
  std::map<int64_t, int32_t> TableRows() {
    std::map<int64_t, int32_t> table;
    PGresult* result = PQexec(conn_.get(), "SELECT id, qty FROM items");
    for (int row = 0; row < PQntuples(result); ++row) {
      table[std::stoll(PQgetvalue(result, row, 0))] = std::stoi(PQgetvalue(result, row, 1));
    }
    PQclear(result);
    return table;
  }

  // The topic's changes (read_committed), in offset order, once the last
  // value of every key is the table's row (or after 60 s, or when the
  // program exited).
  std::vector<Change<Row>> ReadUntilTheTopicHoldsTheTable() {
    absl::StatusOr<debezium::Decoder<Row>> decoder = debezium::Decoder<Row>::Create(RowFields());
    EXPECT_TRUE(decoder.ok());
    const std::map<int64_t, int32_t> table = TableRows();
    std::vector<Change<Row>> changes;
    std::map<int64_t, int32_t> topic;
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (topic != table && absl::Now() < deadline && child_->Running()) {
      absl::SleepFor(absl::Milliseconds(200));
      absl::StatusOr<std::vector<kafka::testing::ReadMessage>> messages =
          kafka::testing::ReadTopic(broker_->bootstrap(), Topic(), 1, /*read_committed=*/true);
      if (!messages.ok()) continue;
      topic.clear();
      changes.clear();
      for (const kafka::testing::ReadMessage& message : *messages) {
        if (!message.has_value) continue;  // no deletes here: no tombstones
        absl::StatusOr<Change<Row>> change = decoder->Decode(message.value);
        EXPECT_TRUE(change.ok()) << change.status();
        if (!change.ok()) return {};
        if (change->after.has_value()) topic[change->after->id] = change->after->qty.value_or(-1);
        changes.push_back(*std::move(change));
      }
    }
    EXPECT_EQ(topic, table) << child_->Log();
    return changes;
  }

  // SIGTERM: a last checkpoint, then exit 0; the restarts restored.
  void ExpectCleanExit() {
    child_->Terminate(absl::Seconds(30));
    EXPECT_TRUE(WIFEXITED(child_->exit_status()) && WEXITSTATUS(child_->exit_status()) == 0)
        << child_->Log();
    EXPECT_THAT(child_->Log(), ::testing::HasSubstr("changes ("));  // status lines
    EXPECT_THAT(child_->Log(), ::testing::HasSubstr("restoring job '" + job_name_ + "'"));
  }

  std::unique_ptr<weir::testing::ChildProcess> child_;
};

// On every broker: the last value of every key in the topic is the table's
// final row. (The mock shows aborted transactions too, so this is what it
// can prove; the next test is the exact check.)
TEST_F(CaptureKilledTest, KilledAndRestartedEndsWithTheTablesRows) {
  RunKilledTenTimes();
  ReadUntilTheTopicHoldsTheTable();
  ExpectCleanExit();
}

// Where the broker hides aborted transactions from read_committed readers:
// the same as a run without kills. Per key, the snapshot's read once, then
// every UPDATE committed after the snapshot once, in commit (LSN) order,
// and nothing else.
TEST_F(CaptureKilledTest, KilledAndRestartedWritesEveryChangeExactlyOnce) {
  const std::string probe = prefix_ + ".probe";
  absl::Status created = broker_->CreateTopic(probe, 1);
  ASSERT_TRUE(created.ok()) << created;
  absl::StatusOr<bool> isolates =
      kafka::testing::BrokerIsolatesTransactions(broker_->bootstrap(), probe);
  ASSERT_TRUE(isolates.ok()) << isolates.status();
  if (!*isolates) GTEST_SKIP() << kafka::testing::kNeedsTransactionIsolation;

  const std::vector<int> committed = RunKilledTenTimes();
  ASSERT_EQ(committed.size(), 500u) << "every UPDATE of the writer should commit";
  const std::vector<Change<Row>> changes = ReadUntilTheTopicHoldsTheTable();
  ASSERT_FALSE(HasFailure());
  std::map<int64_t, std::vector<const Change<Row>*>> by_key;
  for (const Change<Row>& change : changes) {
    ASSERT_TRUE(change.op == Op::kRead || change.op == Op::kUpdate)
        << "op " << debezium::OpName(change.op);
    by_key[change.row()->id].push_back(&change);
  }
  ASSERT_EQ(by_key.size(), 50u);
  for (const auto& [id, records] : by_key) {
    SCOPED_TRACE(absl::StrCat("id ", id));
    // The snapshot's read comes first, once; it holds the row as of the
    // slot's creation: qty 0 or a round of this row that committed before.
    ASSERT_EQ(records.front()->op, Op::kRead);
    const int32_t snapshot_qty = records.front()->after->qty.value_or(-1);
    std::vector<int> want;  // the rounds after the snapshot, in commit order
    bool snapshot_round_seen = snapshot_qty == 0;
    for (int round : committed) {
      if (1 + round % 50 != id) continue;
      if (snapshot_round_seen) want.push_back(round);
      if (round == snapshot_qty) snapshot_round_seen = true;
    }
    ASSERT_TRUE(snapshot_round_seen)
        << "the snapshot read qty " << snapshot_qty << ", which no UPDATE of this row wrote";
    std::vector<int> got;
    std::optional<int64_t> last_lsn;
    for (size_t idx = 1; idx < records.size(); ++idx) {
      const Change<Row>& change = *records[idx];
      ASSERT_EQ(change.op, Op::kUpdate) << "a second read of the row, record " << idx;
      got.push_back(change.after->qty.value_or(-1));
      ASSERT_TRUE(change.source.lsn.has_value());
      if (last_lsn.has_value()) {
        EXPECT_GT(*change.source.lsn, *last_lsn) << "not in LSN order, record " << idx;
      }
      last_lsn = change.source.lsn;
    }
    // Equal: no change twice (a duplicate), none missing, none reordered.
    EXPECT_EQ(got, want);
  }
  ExpectCleanExit();
}

INSTANTIATE_TEST_SUITE_P(Schemas, CaptureParityTest, ::testing::Bool(), [](const auto& param_info) {
  return param_info.param ? "WithSchema" : "Bare";
});

}  // namespace
}  // namespace weir::capture
