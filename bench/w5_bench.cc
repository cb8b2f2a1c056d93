// W5: change capture from PostgreSQL, in two phases (--phases, both by
// default).
//
// throughput: inserts --rows rows into an engagement_events table (the
// engagement example's) in transactions of 1,000 rows, then reads them back
// from logical replication with three contenders, alternating, each on a
// replication slot of its own created before the inserts (so each decodes
// the same WAL):
//   - baseline: pg_recvlogical with pgoutput writing the stream to /dev/null;
//   - weir-source: weir::postgres::CdcSource decoding into typed Change<T>;
//   - weir-capture: tools/capture's pipeline writing Debezium JSON to Kafka
//     (librdkafka's mock cluster, in process), exactly once, checkpoints
//     every second.
// Prints rows/s and the ratio to the baseline.
//
// latency: the engagement pipeline (the shipped engagement-pipeline program,
// a child process) with --source=postgres on a database of its own in the
// same server, with all its sinks: Redis (redis-server), ClickHouse
// (clickhouse-server; --clickhouse=off leaves it out), the exactly-once Kafka
// outbox and the dead letters (the in-process mock cluster), checkpoints
// every 10 s. Engagement rows are inserted at --rate rows/s for --seconds in
// transactions of --rows-per-transaction, spread round-robin over
// --contents content rows, from a connection with synchronous_commit=on (a
// commit returns once its WAL is flushed, which also wakes the walsenders;
// the test server runs with synchronous_commit=off, whose WAL would wait for
// the WAL writer). Per row: from the moment the client sent its
// transaction (BEGIN, the INSERT and COMMIT in one round trip, so the
// commit happens after: an upper bound of the latency) to the first poll of Redis (every 5 ms, one
// EVAL reading every content's `events` in content:<id>:metrics) whose reply shows it. A content's
// count reaching n means its n-th row is visible; rows of one content are committed in order. Every
// row must become visible, and no count may exceed the rows inserted (nothing dropped, nothing
// twice); ClickHouse, when on, must hold every row (engagement_enriched FINAL). Also printed: the
// pipeline's CPU use while the rows went in, the load average (the host is shared), and with
// --timeline=on the latency per second of the inserts.
//
//   weir-bench-w5 [--phases=throughput,latency] [--rows=1000000] [--repeat=2]
//                 [--rate=10000] [--seconds=60] [--rows-per-transaction=10]
//                 [--contents=100] [--clickhouse=on|off] [--timeline=on|off]
//                 [--pipeline=PATH] [--json=w5.json]

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/workload_events.h"
#include "lib/connectors/kafka/mock_broker.h"
#include "tests/support/child_process.h"
#include "tests/support/postgres_server.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "tests/unit/connectors/redis/redis_server_fixture.h"
#include "tools/capture/capture.h"
#include "weir/connectors/clickhouse.h"
#include "weir/connectors/postgres.h"
#include "weir/weir.h"
#ifdef ENGAGEMENT_PIPELINE_PATH
#include "engagement_schema_sql.h"  // kEngagementSchemaSql: examples/engagement/schema.sql
#endif

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

void Fail(const std::string& what) {
  std::fprintf(stderr, "weir-bench-w5: %s\n", what.c_str());
  std::exit(1);
}

void FailOn(const absl::Status& status) {
  if (!status.ok()) Fail(status.ToString());
}

// The 1-, 5- and 15-minute load averages (the host is shared: the figures
// are read with it).
std::string LoadAverage() {
  std::ifstream file("/proc/loadavg");
  std::string one, five, fifteen;
  file >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

double Percentile(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  const auto at = static_cast<size_t>(fraction * static_cast<double>(sorted.size()));
  return sorted[std::min(sorted.size() - 1, at)];
}

// ---------------------------------------------------------------------------
// Phase 1: throughput
// ---------------------------------------------------------------------------

void RunThroughput(const std::string& conninfo, const std::string& dir, int64_t rows, int repeat,
                   std::vector<weir::bench::BenchResult>& results) {
  std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(conninfo.c_str()));
  absl::StatusOr<std::unique_ptr<weir::kafka::internal::MockBroker>> broker =
      weir::kafka::internal::MockBroker::Start();
  FailOn(broker.status());
  FailOn((*broker)->CreateTopic("postgres.public.engagement_events", 1));

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
    FailOn(Exec(conn.get(), sql));
  }
  for (int round = 0; round < repeat; ++round) {
    for (size_t idx = 0; idx < contenders.size(); ++idx) {
      FailOn(Exec(conn.get(), absl::StrCat("SELECT pg_create_logical_replication_slot('w5_", round,
                                           "_", idx, "', 'pgoutput')")));
    }
  }
  const absl::Time insert_start = absl::Now();
  for (int64_t first = 1; first <= rows; first += 1000) {
    const int64_t last = std::min(rows, first + 999);
    FailOn(Exec(
        conn.get(),
        absl::StrCat(
            "INSERT INTO engagement_events (content_id, user_id, event_type, event_ts, "
            "duration_ms, device, raw_payload) SELECT md5(g::text)::uuid, md5((g * "
            "7)::text)::uuid, "
            "(ARRAY['play','pause','finish','click'])[1 + g % 4], now(), CASE WHEN g % 4 = 1 THEN "
            "NULL ELSE (g % 600000)::int END, (ARRAY['ios','android','web'])[1 + g % 3], "
            "jsonb_build_object('seq', g) FROM generate_series(",
            first, ", ", last, ") g")));
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
      if (!status.ok()) Fail(absl::StrCat(contenders[idx].name, ": ", status.ToString()));
      const double rate = static_cast<double>(rows) / seconds;
      contenders[idx].best = std::max(contenders[idx].best, rate);
      std::printf("round %d  %-16s %10.0f rows/s (%.2f s)\n", round + 1,
                  contenders[idx].name.c_str(), rate, seconds);
    }
    // The slots are done with: they would hold WAL for the latency phase.
    for (size_t idx = 0; idx < contenders.size(); ++idx) {
      FailOn(Exec(conn.get(),
                  absl::StrCat("SELECT pg_drop_replication_slot('w5_", round, "_", idx, "')")));
    }
  }
  std::printf("\nbest of %d, %lld rows:\n", repeat, static_cast<long long>(rows));
  for (const Contender& contender : contenders) {
    std::printf("  %-16s %10.0f rows/s  (%.2fx pg_recvlogical)\n", contender.name.c_str(),
                contender.best, contender.best / contenders[0].best);
    results.push_back({contender.result_name, contender.name, 1, contender.best,
                       static_cast<double>(rows) / contender.best});
  }
}

// ---------------------------------------------------------------------------
// Phase 2: latency, commit to Redis, through the engagement pipeline
// ---------------------------------------------------------------------------

struct LatencyOptions {
  int rate = 10'000;
  double seconds = 60;
  int rows_per_transaction = 10;
  int contents = 100;
  bool clickhouse = true;
  bool timeline = false;  // print the latency per second of the inserts
  std::string pipeline;   // the engagement-pipeline program
};

// Content row `index`'s id, which the Redis poll (a Lua script) rebuilds.
std::string ContentId(int index) { return absl::StrFormat("00000000-0000-4000-8000-%012d", index); }

// The servers and the pipeline the latency phase runs against.
struct LatencySetup {
  std::unique_ptr<weir::testing::RedisServer> redis;
  std::unique_ptr<weir::testing::ClickHouseServer> clickhouse;
  std::unique_ptr<weir::kafka::internal::MockBroker> broker;
  std::unique_ptr<weir::testing::ChildProcess> pipeline;
  std::string conninfo;  // the latency database
};

// A database of its own (the throughput phase's table has the same name),
// with the engagement example's tables and `contents` content rows.
std::string CreateLatencyDatabase(const std::string& server_conninfo, int contents) {
  std::unique_ptr<PGconn, ConnDeleter> admin(PQconnectdb(server_conninfo.c_str()));
  FailOn(Exec(admin.get(), "CREATE DATABASE w5_latency"));
  // libpq takes the last value of a repeated keyword.
  const std::string conninfo = server_conninfo + " dbname=w5_latency";
  std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(conninfo.c_str()));
#ifdef ENGAGEMENT_PIPELINE_PATH
  FailOn(Exec(conn.get(), kEngagementSchemaSql));
#else
  Fail("the latency phase needs the engagement example (WEIR_BUILD_EXAMPLES)");
#endif
  FailOn(Exec(conn.get(),
              absl::StrCat("INSERT INTO content (id, slug, title, content_type, length_seconds, "
                           "publish_ts) SELECT format('00000000-0000-4000-8000-%s', lpad(g::text, "
                           "12, '0'))::uuid, 'content-' || g, 'Content ' || g, "
                           "(ARRAY['podcast','newsletter','video'])[1 + g % 3], 600, now() - "
                           "interval '1 day' FROM generate_series(0, ",
                           contents - 1, ") g")));
  return conninfo;
}

void StartPipeline(LatencySetup& setup, const LatencyOptions& options, const std::string& dir,
                   const std::string& server_conninfo) {
  const std::string prefix = "w5l";
  FailOn(setup.broker->CreateTopic(prefix + ".engagement_enriched", 4));
  FailOn(setup.broker->CreateTopic(prefix + ".dlq", 1));
  std::vector<std::string> argv = {
      options.pipeline, "--source=postgres", "--postgres=" + setup.conninfo,
      // The content rows, inserted before the slots exist, come with the snapshot.
      "--postgres-snapshot=initial", "--brokers=" + setup.broker->bootstrap(),
      "--topic-prefix=" + prefix, "--group-id=" + prefix, "--job-name=" + prefix,
      absl::StrCat("--redis-port=", setup.redis->port()),
      absl::StrCat("--checkpoint-uri=file://", dir, "/", prefix), "--checkpoint-interval=10s",
      "--parallelism=2", "--status-interval=5s"};
  if (setup.clickhouse) {
    argv.push_back("--clickhouse-url=" + setup.clickhouse->url());
    argv.push_back(absl::StrCat("--clickhouse-user=", weir::testing::ClickHouseServer::kUser));
    argv.push_back(
        absl::StrCat("--clickhouse-password=", weir::testing::ClickHouseServer::kPassword));
  }
  absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> child =
      weir::testing::ChildProcess::Spawn(argv, {.log_path = dir + "/pipeline.log"});
  FailOn(child.status());
  setup.pipeline = *std::move(child);
  // Running, with both slots created (and the content snapshot read), before
  // the first row is inserted.
  std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(server_conninfo.c_str()));
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (setup.pipeline->Log().find("engagement-pipeline: running") == std::string::npos ||
         ScalarOf(conn.get(),
                  "SELECT count(*) FROM pg_replication_slots WHERE database = 'w5_latency'") !=
             "2") {
    if (!setup.pipeline->Running() || absl::Now() > deadline) {
      Fail("the pipeline did not start:\n" + setup.pipeline->Log());
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  absl::SleepFor(absl::Seconds(2));
}

// What the inserting thread records: per transaction, when it was sent
// (BEGIN, INSERT, COMMIT in one round trip) and when its COMMIT returned
// (steady clock, ns; 0: not yet).
struct Commits {
  explicit Commits(size_t transactions) : sent(transactions), returned(transactions) {}
  std::vector<std::atomic<int64_t>> sent;
  std::vector<std::atomic<int64_t>> returned;
  std::atomic<bool> done{false};
  std::atomic<int64_t> start_ns{0};
  std::string error;
  double seconds = 0;        // first transaction's start to the last commit
  double max_behind_ms = 0;  // how late a transaction started after it was due
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Inserts rows 0..rows-1 paced at options.rate: row g is for content
// g % contents; transaction t holds rows [t * R, (t + 1) * R).
void InsertPaced(const std::string& conninfo, const LatencyOptions& options, int64_t rows,
                 Commits& commits) {
  std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(conninfo.c_str()));
  if (absl::Status status = Exec(conn.get(), "SET synchronous_commit = on"); !status.ok()) {
    commits.error = status.ToString();
    commits.done = true;
    return;
  }
  static constexpr const char* kTypes[] = {"play", "pause", "finish", "click"};
  const int per = options.rows_per_transaction;
  const auto start = std::chrono::steady_clock::now();
  commits.start_ns = NowNs();
  std::string sql;
  for (size_t txn = 0; txn < commits.sent.size(); ++txn) {
    const auto due =
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(static_cast<double>(txn) * per / options.rate));
    const auto now = std::chrono::steady_clock::now();
    if (due > now) {
      std::this_thread::sleep_until(due);
    } else {
      commits.max_behind_ms = std::max(
          commits.max_behind_ms, std::chrono::duration<double, std::milli>(now - due).count());
    }
    sql =
        "BEGIN; INSERT INTO engagement_events (content_id, user_id, event_type, event_ts, "
        "duration_ms, device) VALUES ";
    for (int64_t row = static_cast<int64_t>(txn) * per;
         row < std::min(rows, static_cast<int64_t>(txn + 1) * per); ++row) {
      absl::StrAppend(&sql, row % per == 0 ? "" : ", ", "('",
                      ContentId(static_cast<int>(row % options.contents)), "', '",
                      absl::StrFormat("00000000-0000-4000-9000-%012d", row % 100'000), "', '",
                      kTypes[row % 4], "', now(), ", 1000 + row % 5000, ", 'web')");
    }
    sql += "; COMMIT";
    commits.sent[txn].store(NowNs(), std::memory_order_release);
    if (absl::Status status = Exec(conn.get(), sql); !status.ok()) {
      commits.error = status.ToString();
      break;
    }
    commits.returned[txn].store(NowNs(), std::memory_order_release);
  }
  commits.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  commits.done = true;
}

struct LatencyResult {
  int64_t rows = 0;
  double inserted_rate = 0;
  std::vector<double> samples_ms;      // sorted
  std::vector<double> transaction_ms;  // transactions' round trips, sorted
  double max_behind_ms = 0;
  // The pipeline's CPU use while the rows went in, in cores.
  double pipeline_cores = 0;
  // Per second of the inserts (by when a row's transaction was sent): the
  // count, median, p99 and maximum of its rows' latencies.
  std::string timeline;
  std::string load_before;
  std::string load_after;
};

LatencyResult MeasureLatency(LatencySetup& setup, const LatencyOptions& options) {
  LatencyResult out;
  out.load_before = LoadAverage();
  const int64_t rows = static_cast<int64_t>(options.rate * options.seconds);
  const int per = options.rows_per_transaction;
  Commits commits(static_cast<size_t>((rows + per - 1) / per));
  // The rows each content gets.
  std::vector<int64_t> expected(options.contents, 0);
  for (int64_t row = 0; row < rows; ++row) ++expected[row % options.contents];

  std::printf("latency: inserting %lld rows at %d rows/s (transactions of %d, %d contents)\n",
              static_cast<long long>(rows), options.rate, per, options.contents);
  std::fflush(stdout);
  std::thread insert([&] { InsertPaced(setup.conninfo, options, rows, commits); });

  // Every content's `events`, in one round trip.
  const std::string script =
      "local out = {} "
      "for i = 0, tonumber(ARGV[1]) - 1 do "
      "  out[#out + 1] = redis.call('HGET', "
      "    string.format('content:00000000-0000-4000-8000-%012d:metrics', i), 'events') or '0' "
      "end "
      "return out";
  const std::string contents = std::to_string(options.contents);
  std::vector<int64_t> seen(options.contents, 0);
  int64_t visible = 0;
  int64_t extra = 0;          // counts past the rows inserted for a content
  int64_t went_back = 0;      // a count lower than one seen before
  int64_t before_commit = 0;  // visible before its transaction was sent (impossible)
  out.samples_ms.reserve(static_cast<size_t>(rows));
  std::vector<std::vector<double>> by_second;
  const double cpu_start = weir::bench::ProcessCpuSeconds(setup.pipeline->pid());
  const int64_t cpu_start_ns = NowNs();
  absl::Time settle_deadline = absl::InfiniteFuture();
  for (;;) {
    absl::StatusOr<weir::testing::RedisReply> reply =
        setup.redis->Query({"EVAL", script, "0", contents});
    const int64_t seen_ns = NowNs();
    if (reply.ok() && reply->elements.size() == seen.size()) {
      for (int content = 0; content < options.contents; ++content) {
        int64_t count = 0;
        if (!absl::SimpleAtoi(reply->elements[content].str, &count)) continue;
        if (count < seen[content]) ++went_back;
        for (int64_t k = seen[content]; k < count; ++k) {
          if (k >= expected[content]) {
            ++extra;
            continue;
          }
          const int64_t row = k * options.contents + content;
          const int64_t sent = commits.sent[row / per].load(std::memory_order_acquire);
          if (sent == 0) {
            ++before_commit;
            continue;
          }
          out.samples_ms.push_back(static_cast<double>(seen_ns - sent) / 1e6);
          const auto second = static_cast<size_t>((sent - commits.start_ns.load()) / 1'000'000'000);
          if (second >= by_second.size()) by_second.resize(second + 1);
          by_second[second].push_back(out.samples_ms.back());
          ++visible;
        }
        seen[content] = std::max(seen[content], count);
      }
    }
    if (commits.done.load() && settle_deadline == absl::InfiniteFuture()) {
      out.pipeline_cores = (weir::bench::ProcessCpuSeconds(setup.pipeline->pid()) - cpu_start) /
                           (static_cast<double>(NowNs() - cpu_start_ns) / 1e9);
      // After the last commit: until every row is visible, or 60 s.
      settle_deadline = absl::Now() + absl::Seconds(60);
    }
    if (visible >= rows) {
      // And one more second, for counts that would go past the rows inserted.
      if (settle_deadline > absl::Now() + absl::Seconds(1)) {
        settle_deadline = absl::Now() + absl::Seconds(1);
      }
    }
    if (absl::Now() > settle_deadline) break;
    if (!setup.pipeline->Running()) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  insert.join();
  out.load_after = LoadAverage();
  out.rows = rows;
  out.inserted_rate = static_cast<double>(rows) / commits.seconds;
  out.max_behind_ms = commits.max_behind_ms;
  for (size_t txn = 0; txn < commits.sent.size(); ++txn) {
    const int64_t sent = commits.sent[txn].load();
    const int64_t returned = commits.returned[txn].load();
    if (sent != 0 && returned != 0) {
      out.transaction_ms.push_back(static_cast<double>(returned - sent) / 1e6);
    }
  }
  std::sort(out.samples_ms.begin(), out.samples_ms.end());
  for (size_t second = 0; second < by_second.size(); ++second) {
    std::vector<double>& values = by_second[second];
    if (values.empty()) continue;
    std::sort(values.begin(), values.end());
    absl::StrAppendFormat(&out.timeline, "   %3zus: n=%zu p50=%.0f p99=%.0f max=%.0f ms\n", second,
                          values.size(), Percentile(values, 0.5), Percentile(values, 0.99),
                          values.back());
  }
  std::sort(out.transaction_ms.begin(), out.transaction_ms.end());

  std::string problems;
  if (!commits.error.empty()) absl::StrAppend(&problems, "inserting failed: ", commits.error, "\n");
  if (!setup.pipeline->Running()) {
    absl::StrAppend(&problems, "the pipeline exited (status ", setup.pipeline->exit_status(),
                    ")\n");
  }
  if (visible != rows) {
    absl::StrAppend(&problems, rows - visible, " of ", rows,
                    " rows never became visible in Redis (60 s after the last commit)\n");
  }
  if (extra != 0) absl::StrAppend(&problems, extra, " rows were counted twice in Redis\n");
  if (went_back != 0) absl::StrAppend(&problems, went_back, " times a count went back\n");
  if (before_commit != 0) {
    absl::StrAppend(&problems, before_commit,
                    " rows were visible before their transaction was sent\n");
  }
  if (setup.clickhouse && problems.empty()) {
    // ClickHouse inserts in batches: wait for the last.
    std::string count;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> answer = weir::clickhouse::Query(
          setup.clickhouse->Connection(),
          "SELECT count() FROM default.engagement_enriched FINAL FORMAT TSV");
      if (answer.ok()) count = std::string(absl::StripAsciiWhitespace(*answer));
      if (count == std::to_string(rows)) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (count != std::to_string(rows)) {
      absl::StrAppend(&problems, "ClickHouse holds ", count, " enriched rows, not ", rows, "\n");
    }
  }
  if (!problems.empty()) {
    const std::string log = setup.pipeline->Log();
    Fail(absl::StrCat(problems, "the end of the pipeline's log:\n",
                      log.substr(log.size() > 4000 ? log.size() - 4000 : 0)));
  }
  return out;
}

void RunLatency(const std::string& server_conninfo, const std::string& dir,
                const LatencyOptions& options, std::vector<weir::bench::BenchResult>& results) {
  LatencySetup setup;
  absl::StatusOr<std::unique_ptr<weir::testing::RedisServer>> redis =
      weir::testing::RedisServer::Start();
  FailOn(redis.status());
  setup.redis = *std::move(redis);
  if (options.clickhouse) {
    absl::StatusOr<std::unique_ptr<weir::testing::ClickHouseServer>> clickhouse =
        weir::testing::ClickHouseServer::Start();
    if (!clickhouse.ok()) {
      Fail(absl::StrCat("clickhouse-server: ", clickhouse.status().ToString(),
                        " (--clickhouse=off runs without the ClickHouse sinks)"));
    }
    setup.clickhouse = *std::move(clickhouse);
  }
  absl::StatusOr<std::unique_ptr<weir::kafka::internal::MockBroker>> broker =
      weir::kafka::internal::MockBroker::Start();
  FailOn(broker.status());
  setup.broker = *std::move(broker);
  setup.conninfo = CreateLatencyDatabase(server_conninfo, options.contents);
  StartPipeline(setup, options, dir, server_conninfo);
  const LatencyResult r = MeasureLatency(setup, options);
  setup.pipeline->Terminate(absl::Seconds(60));

  const std::string sinks = setup.clickhouse ? "Redis, ClickHouse, Kafka outbox, dead letters"
                                             : "Redis, Kafka outbox, dead letters";
  const double p50 = Percentile(r.samples_ms, 0.50);
  const double p99 = Percentile(r.samples_ms, 0.99);
  const double max = r.samples_ms.empty() ? 0 : r.samples_ms.back();
  std::printf(
      "\nW5 latency, engagement pipeline --source=postgres (%s), %lld rows at %d rows/s "
      "(inserted at %.0f/s, transactions of %d, at most %.1f ms behind schedule):\n"
      "  commit -> Redis: p50 %.0f ms, p99 %.0f ms, max %.0f ms over %zu rows (every row seen "
      "once, none twice)\n"
      "  transaction round trip (sent to COMMIT returned): p50 %.2f ms, p99 %.2f ms\n"
      "  pipeline CPU %.2f cores; load average before %s, after %s\n",
      sinks.c_str(), static_cast<long long>(r.rows), options.rate, r.inserted_rate,
      options.rows_per_transaction, r.max_behind_ms, p50, p99, max, r.samples_ms.size(),
      Percentile(r.transaction_ms, 0.50), Percentile(r.transaction_ms, 0.99), r.pipeline_cores,
      r.load_before.c_str(), r.load_after.c_str());
  if (options.timeline) std::printf("%s", r.timeline.c_str());
  if (r.inserted_rate < 0.95 * options.rate) {
    std::printf(
        "  NOTE: rows went in at %.0f/s, below the %d rows/s asked for (the inserting thread did "
        "not get the CPU to keep up): this run is not a measurement at %d rows/s\n",
        r.inserted_rate, options.rate, options.rate);
  }
  results.push_back({.name = "weir",
                     .variant = absl::StrCat("commit-to-redis-", options.rate),
                     .parallelism = 2,
                     .events_per_sec = r.inserted_rate,
                     .seconds = options.seconds,
                     .fields = {{"p50_ms", p50},
                                {"p99_ms", p99},
                                {"max_ms", max},
                                {"samples", static_cast<double>(r.samples_ms.size())},
                                {"pipeline_cores", r.pipeline_cores},
                                {"transaction_p99_ms", Percentile(r.transaction_ms, 0.99)}}});
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 1000000;
  int repeat = 2;
  std::string json;
  bool throughput = true;
  bool latency = true;
  LatencyOptions latency_options;
#ifdef ENGAGEMENT_PIPELINE_PATH
  latency_options.pipeline = ENGAGEMENT_PIPELINE_PATH;
#endif
  // Each flag's parser returns whether its value is valid.
  const std::vector<std::pair<std::string, std::function<bool(const std::string&)>>> flags = {
      {"--rows=", [&](const std::string& v) { return absl::SimpleAtoi(v, &rows) && rows > 0; }},
      {"--repeat=",
       [&](const std::string& v) { return absl::SimpleAtoi(v, &repeat) && repeat > 0; }},
      {"--json=",
       [&](const std::string& v) {
         json = v;
         return true;
       }},
      {"--phases=",
       [&](const std::string& v) {
         throughput = latency = false;
         bool valid = true;
         for (absl::string_view phase : absl::StrSplit(v, ',')) {
           throughput |= phase == "throughput";
           latency |= phase == "latency";
           valid &= phase == "throughput" || phase == "latency";
         }
         return valid;
       }},
      {"--rate=",
       [&](const std::string& v) {
         return absl::SimpleAtoi(v, &latency_options.rate) && latency_options.rate > 0;
       }},
      {"--seconds=",
       [&](const std::string& v) {
         return absl::SimpleAtod(v, &latency_options.seconds) && latency_options.seconds > 0;
       }},
      {"--rows-per-transaction=",
       [&](const std::string& v) {
         return absl::SimpleAtoi(v, &latency_options.rows_per_transaction) &&
                latency_options.rows_per_transaction > 0;
       }},
      {"--contents=",
       [&](const std::string& v) {
         return absl::SimpleAtoi(v, &latency_options.contents) && latency_options.contents > 0;
       }},
      {"--clickhouse=",
       [&](const std::string& v) {
         latency_options.clickhouse = v == "on";
         return v == "on" || v == "off";
       }},
      {"--timeline=",
       [&](const std::string& v) {
         latency_options.timeline = v == "on";
         return v == "on" || v == "off";
       }},
      {"--pipeline=",
       [&](const std::string& v) {
         latency_options.pipeline = v;
         return !v.empty();
       }},
  };
  for (int idx = 1; idx < argc; ++idx) {
    const std::string arg = argv[idx];
    bool ok = false;
    for (const auto& [flag, parse] : flags) {
      if (arg.rfind(flag, 0) == 0) {
        ok = parse(arg.substr(flag.size()));
        break;
      }
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: %s [--phases=throughput,latency] [--rows=N] [--repeat=R] [--rate=R] "
                   "[--seconds=S] [--rows-per-transaction=N] [--contents=N] "
                   "[--clickhouse=on|off] [--timeline=on|off] [--pipeline=PATH] [--json=FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  if (latency && latency_options.pipeline.empty()) {
    Fail(
        "the latency phase needs the engagement-pipeline program (built with the examples, "
        "or --pipeline=PATH)");
  }
  absl::StatusOr<std::unique_ptr<weir::testing::PostgresServer>> server =
      weir::testing::PostgresServer::Start();
  FailOn(server.status());
  const std::string dir =
      absl::StrCat(std::filesystem::temp_directory_path().string(), "/weir-bench-w5-", getpid());
  std::filesystem::create_directories(dir);
  std::vector<weir::bench::BenchResult> results;
  if (throughput) RunThroughput((*server)->conninfo(), dir, rows, repeat, results);
  if (latency) RunLatency((*server)->conninfo(), dir, latency_options, results);
  weir::bench::WriteJson(json, "W5", static_cast<uint64_t>(rows), results);
  std::filesystem::remove_all(dir);
  return 0;
}
