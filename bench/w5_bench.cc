// W5: change capture from PostgreSQL. Inserts --rows rows into an
// engagement_events table (the engagement example's) in transactions of
// 1,000 rows, then reads them back from logical replication with three
// contenders, alternating, each on a replication slot of its own created
// before the inserts (so each decodes the same WAL):
//   - baseline: pg_recvlogical with pgoutput writing the stream to /dev/null;
//   - weir-source: weir::postgres::CdcSource decoding into typed Change<T>;
//   - weir-capture: tools/capture's pipeline writing Debezium JSON to Kafka
//     (librdkafka's mock cluster, in process), exactly once, checkpoints
//     every second.
// Prints rows/s and the ratio to the baseline; --json=FILE as every bench.
//
//   weir-bench-w5 [--rows=1000000] [--repeat=2] [--json=w5.json]

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/workload_events.h"
#include "lib/connectors/kafka/mock_broker.h"
#include "tests/support/child_process.h"
#include "tests/support/postgres_server.h"
#include "tools/capture/capture.h"
#include "weir/connectors/postgres.h"
#include "weir/weir.h"

namespace {

struct Event {
  int64_t id = 0;
  std::string content_id;
  std::string user_id;
  std::string event_type;
  int64_t event_ts_ms = 0;
  std::optional<int32_t> duration_ms;
  std::string device;
  std::optional<std::string> raw_payload;
};

weir::debezium::Fields<Event> EventFields() {
  return weir::debezium::Fields<Event>()
      .Required("id", &Event::id)
      .Required("content_id", &Event::content_id, weir::debezium::Uuid())
      .Required("user_id", &Event::user_id, weir::debezium::Uuid())
      .Required("event_type", &Event::event_type)
      .Required("event_ts", &Event::event_ts_ms, weir::debezium::EpochMillis())
      .Optional("duration_ms", &Event::duration_ms)
      .Required("device", &Event::device)
      .Optional("raw_payload", &Event::raw_payload, weir::debezium::Json());
}

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};

absl::Status Exec(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  absl::Status out =
      status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
          ? absl::OkStatus()
          : absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(result)));
  PQclear(result);
  return out;
}

std::string ScalarOf(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  std::string value = PQntuples(result) > 0 ? PQgetvalue(result, 0, 0) : "";
  PQclear(result);
  return value;
}

std::string PostgresBin() {
  if (const char* dir = std::getenv("WEIR_POSTGRES_BIN"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  std::string best;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    if (std::filesystem::exists(entry.path() / "bin" / "pg_recvlogical")) {
      best = (entry.path() / "bin").string();
    }
  }
  return best;
}

// pg_recvlogical from the slot to /dev/null until `end_lsn`.
absl::Status RecvLogical(const std::string& conninfo, const std::string& slot,
                         const std::string& end_lsn, const std::string& dir) {
  absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> child =
      weir::testing::ChildProcess::Spawn(
          {PostgresBin() + "/pg_recvlogical", "-d", conninfo, "--slot=" + slot, "--start",
           "--no-loop", "-f", "/dev/null", "-o", "proto_version=1", "-o", "publication_names=w5",
           "--endpos=" + end_lsn},
          {.log_path = dir + "/pg_recvlogical.log"});
  if (!child.ok()) return child.status();
  while ((*child)->Running()) absl::SleepFor(absl::Milliseconds(2));
  if (!WIFEXITED((*child)->exit_status()) || WEXITSTATUS((*child)->exit_status()) != 0) {
    return absl::InternalError(absl::StrCat("pg_recvlogical failed: ", (*child)->Log()));
  }
  return absl::OkStatus();
}

weir::postgres::CdcOptions SourceOptions(const std::string& conninfo, const std::string& slot) {
  return {.connection = conninfo,
          .slot = slot,
          .publication = "w5",
          .tables = {"public.engagement_events"},
          .snapshot = weir::postgres::SnapshotMode::kNever};
}

// A sink that only counts.
class CountingSink final : public weir::Sink<weir::debezium::Change<Event>> {
 public:
  std::atomic<int64_t> count{0};
  absl::StatusOr<std::unique_ptr<weir::SinkWriter<weir::debezium::Change<Event>>>> CreateWriter(
      const weir::SinkContext&) override {
    class Writer final : public weir::SinkWriter<weir::debezium::Change<Event>> {
     public:
      explicit Writer(CountingSink* sink) : sink_(sink) {}
      absl::Status Write(std::span<weir::debezium::Change<Event>> values,
                         std::span<const weir::Timestamp>) override {
        sink_->count += static_cast<int64_t>(values.size());
        return absl::OkStatus();
      }

     private:
      CountingSink* sink_;
    };
    return std::unique_ptr<weir::SinkWriter<weir::debezium::Change<Event>>>(new Writer(this));
  }
};

absl::Status WeirSource(const std::string& conninfo, const std::string& slot, int64_t rows) {
  weir::Pipeline pipeline;
  auto sink = std::make_shared<CountingSink>();
  pipeline
      .Source(
          weir::postgres::CdcSource<Event>::Create(SourceOptions(conninfo, slot), EventFields()))
      .Uid("events")
      .Sink(sink);
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();
  while (sink->count.load() < rows && !job->done()) absl::SleepFor(absl::Milliseconds(2));
  job->Stop();
  return job->Wait();
}

absl::Status WeirCapture(const std::string& conninfo, const std::string& slot, int64_t rows,
                         const std::string& bootstrap, const std::string& dir) {
  weir::PipelineOptions options{.job_name = slot};
  options.checkpoints = {.interval = absl::Seconds(1), .storage_uri = "file://" + dir + "/" + slot};
  weir::Pipeline pipeline(options);
  absl::StatusOr<std::shared_ptr<weir::postgres::RowCdcSource>> source = weir::capture::AddCapture(
      pipeline, {.source = SourceOptions(conninfo, slot), .kafka = {.brokers = bootstrap}});
  if (!source.ok()) return source.status();
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();
  while ((*source)->Stats().changes < rows && !job->done()) absl::SleepFor(absl::Milliseconds(2));
  job->Stop();  // the last checkpoint commits the last transaction
  return job->Wait();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 1000000;
  int repeat = 2;
  std::string json;
  for (int idx = 1; idx < argc; ++idx) {
    const std::string arg = argv[idx];
    if (arg.rfind("--rows=", 0) == 0 && absl::SimpleAtoi(arg.substr(7), &rows) && rows > 0) {
      continue;
    }
    if (arg.rfind("--repeat=", 0) == 0 && absl::SimpleAtoi(arg.substr(9), &repeat) && repeat > 0) {
      continue;
    }
    if (arg.rfind("--json=", 0) == 0) {
      json = arg.substr(7);
      continue;
    }
    std::fprintf(stderr, "usage: %s [--rows=N] [--repeat=R] [--json=FILE]\n", argv[0]);
    return 2;
  }
  absl::StatusOr<std::unique_ptr<weir::testing::PostgresServer>> server =
      weir::testing::PostgresServer::Start();
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  const std::string conninfo = (*server)->conninfo();
  std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(conninfo.c_str()));
  const std::string dir =
      absl::StrCat(std::filesystem::temp_directory_path().string(), "/weir-bench-w5-", getpid());
  std::filesystem::create_directories(dir);
  absl::StatusOr<std::unique_ptr<weir::kafka::internal::MockBroker>> broker =
      weir::kafka::internal::MockBroker::Start();
  if (!broker.ok()) {
    std::fprintf(stderr, "%s\n", broker.status().ToString().c_str());
    return 1;
  }
  if (absl::Status created = (*broker)->CreateTopic("postgres.public.engagement_events", 1);
      !created.ok()) {
    std::fprintf(stderr, "%s\n", created.ToString().c_str());
    return 1;
  }

  struct Contender {
    std::string name;
    std::string result_name;
    std::function<absl::Status(const std::string& slot)> run;
    double best = 0;
  };
  std::vector<Contender> contenders = {
      {"pg_recvlogical", "baseline", nullptr},
      {"weir source", "weir-source",
       [&](const std::string& slot) { return WeirSource(conninfo, slot, rows); }},
      {"weir-capture", "weir-capture",
       [&](const std::string& slot) {
         return WeirCapture(conninfo, slot, rows, (*broker)->bootstrap(), dir);
       }},
  };
  for (const std::string& sql :
       {std::string("CREATE TABLE engagement_events (id BIGSERIAL PRIMARY KEY, content_id UUID "
                    "NOT NULL, user_id UUID NOT NULL, event_type TEXT NOT NULL, event_ts "
                    "TIMESTAMPTZ NOT NULL, duration_ms INT NULL, device TEXT NOT NULL, "
                    "raw_payload JSONB)"),
        std::string("CREATE PUBLICATION w5 FOR TABLE engagement_events")}) {
    if (absl::Status status = Exec(conn.get(), sql); !status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
  }
  for (int round = 0; round < repeat; ++round) {
    for (size_t idx = 0; idx < contenders.size(); ++idx) {
      if (absl::Status status =
              Exec(conn.get(), absl::StrCat("SELECT pg_create_logical_replication_slot('w5_", round,
                                            "_", idx, "', 'pgoutput')"));
          !status.ok()) {
        std::fprintf(stderr, "%s\n", status.ToString().c_str());
        return 1;
      }
    }
  }
  const absl::Time insert_start = absl::Now();
  for (int64_t first = 1; first <= rows; first += 1000) {
    const int64_t last = std::min(rows, first + 999);
    const std::string sql = absl::StrCat(
        "INSERT INTO engagement_events (content_id, user_id, event_type, event_ts, duration_ms, "
        "device, raw_payload) SELECT md5(g::text)::uuid, md5((g * 7)::text)::uuid, "
        "(ARRAY['play','pause','finish','click'])[1 + g % 4], now(), CASE WHEN g % 4 = 1 THEN "
        "NULL ELSE (g % 600000)::int END, (ARRAY['ios','android','web'])[1 + g % 3], "
        "jsonb_build_object('seq', g) FROM generate_series(",
        first, ", ", last, ") g");
    if (absl::Status status = Exec(conn.get(), sql); !status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
  }
  // pg_recvlogical stops at the first message at or past this position: the
  // end of the last commit record.
  const std::string end_lsn = ScalarOf(conn.get(), "SELECT pg_current_wal_insert_lsn()");
  std::printf("inserted %lld rows in %.1f s (transactions of 1000), WAL end %s\n",
              static_cast<long long>(rows), absl::ToDoubleSeconds(absl::Now() - insert_start),
              end_lsn.c_str());
  contenders[0].run = [&](const std::string& slot) {
    return RecvLogical(conninfo, slot, end_lsn, dir);
  };

  for (int round = 0; round < repeat; ++round) {
    for (size_t idx = 0; idx < contenders.size(); ++idx) {
      const std::string slot = absl::StrCat("w5_", round, "_", idx);
      const absl::Time start = absl::Now();
      absl::Status status = contenders[idx].run(slot);
      const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      if (!status.ok()) {
        std::fprintf(stderr, "%s: %s\n", contenders[idx].name.c_str(), status.ToString().c_str());
        return 1;
      }
      const double rate = static_cast<double>(rows) / seconds;
      contenders[idx].best = std::max(contenders[idx].best, rate);
      std::printf("round %d  %-16s %10.0f rows/s (%.2f s)\n", round + 1,
                  contenders[idx].name.c_str(), rate, seconds);
    }
  }
  std::printf("\nbest of %d, %lld rows:\n", repeat, static_cast<long long>(rows));
  std::vector<weir::bench::BenchResult> results;
  for (const Contender& contender : contenders) {
    std::printf("  %-16s %10.0f rows/s  (%.2fx pg_recvlogical)\n", contender.name.c_str(),
                contender.best, contender.best / contenders[0].best);
    results.push_back({contender.result_name, contender.name, 1, contender.best,
                       static_cast<double>(rows) / contender.best});
  }
  weir::bench::WriteJson(json, "W5", static_cast<uint64_t>(rows), results);
  std::filesystem::remove_all(dir);
  return 0;
}
