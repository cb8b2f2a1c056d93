// weir-capture: PostgreSQL tables to Kafka, as Debezium's PostgreSQL
// connector would write them, exactly once and without a JVM. See
// `weir-capture --help` and docs/connectors.md.

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tools/capture/capture.h"
#include "weir/weir.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

constexpr char kUsage[] =
    R"(usage: weir-capture --connection=CONNINFO --tables=SCHEMA.TABLE[,...] --brokers=HOST:PORT [flags]

Captures PostgreSQL tables through logical replication (pgoutput) and writes every change to
Kafka as Debezium's PostgreSQL connector would: topic <prefix>.<schema>.<table>, Kafka Connect
JsonConverter values (envelope: before, after, source, op, ts_ms) and keys (the primary key), a
tombstone after each delete. Exactly once: Kafka transactions are committed with the checkpoint
that then confirms the replication slot's LSN. Runs until SIGINT/SIGTERM (then takes a last
checkpoint), or, with --snapshot=initial_only, until the tables are read.

PostgreSQL:
  --connection=CONNINFO     libpq connection string (passwords, TLS pass through). Required.
  --tables=LIST             comma-separated tables, schema.table or table (public). Required.
  --slot=NAME               replication slot, created when missing. Default: weir_capture
  --publication=NAME        publication the slot streams. Default: weir_capture
  --create-publication      create the publication (FOR TABLE the tables) when missing.
  --snapshot=MODE           initial (read the tables, then stream), never, initial_only.
                            Default: initial
  --snapshot-workers=N      connections reading the snapshot in parallel, by primary-key
                            range (1 to 64). Default: 4
Kafka:
  --brokers=LIST            bootstrap servers. Required.
  --kafka-property=K=V      a librdkafka property (repeatable), e.g. security.protocol=SSL.
  --prefix=NAME             topic prefix and source.name (Debezium's topic.prefix).
                            Default: postgres
  --schemas=BOOL            JsonConverter schemas.enable: values and keys with their schema.
                            Default: true
  --exactly-once=BOOL       Kafka transactions tied to checkpoints; false: at least once.
                            Default: true
Checkpoints:
  --checkpoints=URI         checkpoint storage, file:///dir or s3://bucket/prefix. Required.
  --checkpoint-interval=S   seconds between checkpoints (and so between commits). Default: 5
  --job-name=NAME           names the checkpoints and transactional ids. Default: weir-capture
Monitoring:
  --status-interval=S       seconds between status lines on stderr; 0: none. Default: 10
  --http-port=N             serve /metrics, /healthz and the dashboard on 127.0.0.1:N.
                            Default: none
  --help                    this text.
)";

bool ParseBool(const std::string& text, bool& out) {
  if (text == "true" || text == "1") {
    out = true;
    return true;
  }
  if (text == "false" || text == "0") {
    out = false;
    return true;
  }
  return false;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "weir-capture: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  weir::capture::CaptureOptions options;
  options.source.slot = "weir_capture";
  options.source.publication = "weir_capture";
  weir::PipelineOptions pipeline_options;
  pipeline_options.job_name = "weir-capture";
  double checkpoint_seconds = 5;
  double status_seconds = 10;
  for (int idx = 1; idx < argc; ++idx) {
    const std::string arg = argv[idx];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    bool ok = true;
    if (name == "--connection") {
      options.source.connection = value;
    } else if (name == "--tables") {
      options.source.tables = absl::StrSplit(value, ',', absl::SkipEmpty());
    } else if (name == "--slot") {
      options.source.slot = value;
    } else if (name == "--publication") {
      options.source.publication = value;
    } else if (name == "--create-publication") {
      options.source.create_publication = true;
    } else if (name == "--snapshot") {
      if (value == "initial") {
        options.source.snapshot = weir::postgres::SnapshotMode::kInitial;
      } else if (value == "never") {
        options.source.snapshot = weir::postgres::SnapshotMode::kNever;
      } else if (value == "initial_only") {
        options.source.snapshot = weir::postgres::SnapshotMode::kInitialOnly;
      } else {
        ok = false;
      }
    } else if (name == "--snapshot-workers") {
      ok = absl::SimpleAtoi(value, &options.source.snapshot_workers);
    } else if (name == "--brokers") {
      options.kafka.brokers = value;
    } else if (name == "--kafka-property") {
      const size_t kv = value.find('=');
      ok = kv != std::string::npos;
      if (ok) options.kafka.properties[value.substr(0, kv)] = value.substr(kv + 1);
    } else if (name == "--prefix") {
      options.prefix = value;
      options.source.name = value;
    } else if (name == "--schemas") {
      ok = ParseBool(value, options.with_schema);
    } else if (name == "--exactly-once") {
      ok = ParseBool(value, options.exactly_once);
    } else if (name == "--checkpoints") {
      pipeline_options.checkpoints.storage_uri = value;
    } else if (name == "--checkpoint-interval") {
      ok = absl::SimpleAtod(value, &checkpoint_seconds) && checkpoint_seconds > 0;
    } else if (name == "--job-name") {
      pipeline_options.job_name = value;
    } else if (name == "--status-interval") {
      ok = absl::SimpleAtod(value, &status_seconds) && status_seconds >= 0;
    } else if (name == "--http-port") {
      ok = absl::SimpleAtoi(value, &pipeline_options.http_port);
    } else {
      return Fail(absl::StrCat("unknown flag ", arg, " (see --help)"));
    }
    if (!ok) return Fail(absl::StrCat("bad value in ", arg, " (see --help)"));
  }
  if (options.source.connection.empty() || options.source.tables.empty() ||
      options.kafka.brokers.empty() || pipeline_options.checkpoints.storage_uri.empty()) {
    return Fail("--connection, --tables, --brokers and --checkpoints are required (see --help)");
  }
  pipeline_options.checkpoints.interval = absl::Seconds(checkpoint_seconds);

  weir::Pipeline pipeline(pipeline_options);
  absl::StatusOr<std::shared_ptr<weir::postgres::RowCdcSource>> source =
      weir::capture::AddCapture(pipeline, options);
  if (!source.ok()) return Fail(std::string(source.status().ToString()));
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) return Fail(std::string(job.status().ToString()));
  ::signal(SIGINT, OnSignal);
  ::signal(SIGTERM, OnSignal);
  std::fprintf(stderr, "weir-capture: capturing %zu table(s) into %s.* (slot %s)\n",
               options.source.tables.size(), options.prefix.c_str(), options.source.slot.c_str());
  absl::Time next_status = absl::Now() + absl::Seconds(status_seconds);
  int64_t last_changes = 0;
  while (!job->done()) {
    if (g_stop) {
      job->Stop();
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
    if (status_seconds > 0 && absl::Now() >= next_status) {
      const weir::postgres::CdcSourceStats stats = (*source)->Stats();
      const int64_t total = stats.snapshot_rows + stats.changes;
      std::fprintf(
          stderr,
          "weir-capture: %lld snapshot rows, %lld changes (%.0f/s), checkpoint %lld, "
          "confirmed LSN %X/%X, %lld reconnects\n",
          static_cast<long long>(stats.snapshot_rows), static_cast<long long>(stats.changes),
          static_cast<double>(total - last_changes) / status_seconds,
          static_cast<long long>(job->last_completed_checkpoint()),
          static_cast<unsigned>(stats.confirmed_lsn >> 32),
          static_cast<unsigned>(stats.confirmed_lsn), static_cast<long long>(stats.reconnects));
      last_changes = total;
      next_status = absl::Now() + absl::Seconds(status_seconds);
    }
  }
  const absl::Status status = job->Wait();
  if (!status.ok()) return Fail(std::string(status.ToString()));
  return 0;
}
