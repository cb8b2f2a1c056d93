// The engagement-generator program with --postgres against a throwaway
// PostgreSQL server (tests/support/postgres_server.h): the tables of schema.sql end up
// holding exactly the rows the ChangeGenerator produced (content created
// and updated, deleted content absent, every event), with Kafka alongside
// or without it; a second run into the same tables fails with a hint and
// --postgres-reset starts over.

#include <libpq-fe.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "examples/engagement/generator.h"
#include "examples/engagement/tests/generator_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"
#include "tests/support/prerequisite.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"

namespace engagement::testing {
namespace {

using ::testing::HasSubstr;
using weir::debezium::Op;
using weir::testing::PostgresServer;

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// What the tables must hold after `records`.
struct Tables {
  std::map<std::string, Content> content;     // by id
  std::map<int64_t, EngagementEvent> events;  // by id
  std::vector<std::string> deleted;           // content ids deleted (and not re-created)
};

Tables Apply(const std::vector<GeneratedRecord>& records) {
  Tables tables;
  for (const GeneratedRecord& record : records) {
    if (const auto* event = std::get_if<EngagementEvent>(&record.row)) {
      tables.events[event->id] = *event;
      continue;
    }
    const Content& row = std::get<Content>(record.row);
    switch (record.op) {
      case Op::kRead:
      case Op::kCreate:
      case Op::kUpdate:
        tables.content[row.id] = row;
        break;
      case Op::kDelete:
        tables.content.erase(row.id);
        tables.deleted.push_back(row.id);
        break;
      case Op::kTombstone:
      case Op::kTruncate:
      case Op::kMessage:
      case Op::kHeartbeat:
      case Op::kTransaction:
        break;
    }
  }
  return tables;
}

class GeneratorPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
    // Not installed: skipped, or failed under CI=true (.ci/setup installs it).
    if (absl::IsFailedPrecondition(server.status())) {
      WEIR_MISSING_PREREQUISITE(server.status().message());
    }
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Rows of a query, as text (nullopt: NULL).
  std::vector<std::vector<std::optional<std::string>>> Query(const std::string& sql) {
    std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(server_->conninfo().c_str()));
    EXPECT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
    ResultPtr result(PQexec(conn.get(), sql.c_str()));
    EXPECT_EQ(PQresultStatus(result.get()), PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(result.get());
    std::vector<std::vector<std::optional<std::string>>> rows;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      rows.emplace_back();
      for (int column = 0; column < PQnfields(result.get()); ++column) {
        rows.back().push_back(
            PQgetisnull(result.get(), row, column)
                ? std::nullopt
                : std::optional<std::string>(PQgetvalue(result.get(), row, column)));
      }
    }
    return rows;
  }

  static int64_t Int(const std::optional<std::string>& text) {
    int64_t value = 0;
    EXPECT_TRUE(text && absl::SimpleAtoi(*text, &value)) << text.value_or("NULL");
    return value;
  }
  static std::optional<int32_t> OptionalInt(const std::optional<std::string>& text) {
    if (!text) return std::nullopt;
    return static_cast<int32_t>(Int(text));
  }

  // Checks that the tables hold exactly what `records` wrote.
  void ExpectTablesHold(const std::vector<GeneratedRecord>& records) {
    const Tables expected = Apply(records);
    ASSERT_FALSE(expected.deleted.empty()) << "the run should delete some content";

    std::map<std::string, Content> content;
    for (const auto& row : Query("SELECT id::text, slug, title, content_type, length_seconds, "
                                 "(extract(epoch FROM publish_ts) * 1000)::bigint FROM content")) {
      Content c{.id = *row[0],
                .slug = *row[1],
                .title = *row[2],
                .content_type = *row[3],
                .length_seconds = OptionalInt(row[4]),
                .publish_ts_ms = Int(row[5])};
      content[c.id] = c;
    }
    EXPECT_EQ(content.size(), expected.content.size());
    EXPECT_TRUE(content == expected.content) << "the content table differs";
    for (const std::string& id : expected.deleted) {
      if (!expected.content.contains(id)) {
        EXPECT_FALSE(content.contains(id)) << id;
      }
    }

    // raw_payload is JSONB, which PostgreSQL normalizes: compare its members.
    std::map<int64_t, EngagementEvent> events;
    for (const auto& row :
         Query("SELECT id, content_id::text, user_id::text, event_type, "
               "(extract(epoch FROM event_ts) * 1000)::bigint, duration_ms, device, "
               "raw_payload->>'app_version', raw_payload->>'session', "
               "(SELECT count(*) FROM jsonb_object_keys(raw_payload)) FROM engagement_events")) {
      EXPECT_EQ(row[9], "2");
      EngagementEvent e{.id = Int(row[0]),
                        .content_id = *row[1],
                        .user_id = *row[2],
                        .event_type = *row[3],
                        .event_ts_ms = Int(row[4]),
                        .duration_ms = OptionalInt(row[5]),
                        .device = *row[6],
                        .raw_payload = absl::StrCat(R"({"app_version":")", row[7].value_or(""),
                                                    R"(","session":)", row[8].value_or(""), "}")};
      events[e.id] = e;
    }
    EXPECT_EQ(events.size(), expected.events.size());
    EXPECT_TRUE(events == expected.events) << "the engagement_events table differs";
    // The id sequence is past the generator's ids.
    const auto next = Query("SELECT nextval(pg_get_serial_sequence('engagement_events', 'id'))");
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(Int(next[0][0]), static_cast<int64_t>(expected.events.size()) + 1);
  }

  std::unique_ptr<PostgresServer> server_;
};

TEST_F(GeneratorPostgresTest, TablesHoldExactlyTheGeneratorsRowsWithKafkaAlongside) {
  absl::StatusOr<std::unique_ptr<weir::kafka::testing::KafkaTestBroker>> broker =
      weir::kafka::testing::KafkaTestBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE((*broker)->CreateTopic("pg.public.content", 2).ok());
  ASSERT_TRUE((*broker)->CreateTopic("pg.public.engagement_events", 2).ok());
  // Batches of up to 5000 records per transaction: several transactions.
  const std::vector<std::string> args = {"--brokers=" + (*broker)->bootstrap(),
                                         "--topic-prefix=pg",
                                         "--postgres",
                                         server_->conninfo(),
                                         "--seed=9",
                                         "--initial-contents=200",
                                         "--content-change-share=0.05",
                                         "--total=12000",
                                         "--rate=max",
                                         "--start-time=2026-11-25T00:00:00Z"};
  const GeneratorRun run = RunGeneratorProgram(args);
  ASSERT_EQ(run.exit_code, 0) << run.log;
  EXPECT_THAT(run.log, HasSubstr("PostgreSQL: all rows committed"));
  const std::vector<GeneratedRecord> expected = ExpectedRecords(args, {});
  ASSERT_EQ(expected.size(), 12000u);
  ExpectTablesHold(expected);
  // And Kafka got the same records.
  int64_t content_records = 0;
  for (const GeneratedRecord& record : expected) content_records += record.is_content();
  absl::StatusOr<std::vector<weir::kafka::testing::ReadMessage>> content =
      weir::kafka::testing::ReadTopic((*broker)->bootstrap(), "pg.public.content", 2, false);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(static_cast<int64_t>(content->size()), content_records);
}

TEST_F(GeneratorPostgresTest, ASecondRunNeedsResetWhichStartsOver) {
  // Only PostgreSQL (as for Debezium), URL from the environment.
  const std::vector<std::string> args = {"--no-kafka",
                                         "--seed=3",
                                         "--initial-contents=50",
                                         "--content-change-share=0.05",
                                         "--total=3000",
                                         "--start-time=1795564800000"};
  const std::map<std::string, std::string> env = {{"POSTGRES_URL", server_->conninfo()},
                                                  {"GENERATION_RATE", "max"}};
  GeneratorRun run = RunGeneratorProgram(args, env);
  ASSERT_EQ(run.exit_code, 0) << run.log;
  const std::vector<GeneratedRecord> expected = ExpectedRecords(args, env);
  ExpectTablesHold(expected);

  run = RunGeneratorProgram(args, env);
  EXPECT_EQ(run.exit_code, 1) << run.log;
  EXPECT_THAT(run.log, HasSubstr("--postgres-reset"));

  std::vector<std::string> reset_args = args;
  reset_args.push_back("--postgres-reset");
  run = RunGeneratorProgram(reset_args, env);
  ASSERT_EQ(run.exit_code, 0) << run.log;
  ExpectTablesHold(expected);
}

// Needs no server: ctest runs each test in a process of its own, so the
// fixture's would be an initdb for nothing.
TEST(GeneratorPostgresUnreachableTest, UnreachableServerFailsWithAClearMessage) {
  absl::StatusOr<int> port = weir::testing::FreeLoopbackPort();
  ASSERT_TRUE(port.ok());
  const GeneratorRun run = RunGeneratorProgram(
      {"--no-kafka", absl::StrCat("--postgres=host=127.0.0.1 port=", *port, " connect_timeout=2"),
       "--total=10"});
  EXPECT_EQ(run.exit_code, 1) << run.log;
  EXPECT_THAT(run.log, HasSubstr("postgres: cannot connect"));
}

}  // namespace
}  // namespace engagement::testing
