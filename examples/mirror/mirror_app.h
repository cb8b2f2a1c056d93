// weir-mirror: mirrors whole tables from Debezium topics (or straight from
// PostgreSQL) into ClickHouse and/or a DuckDB file. Configuration (flags and environment) and the
// run loop with its status line, apart from main() so tests can parse flags the same way.
//
// The dataflow:
//
//   Debezium topics (--topics, or every topic under --topic-prefix)
//     ──RowDecoder──▶ RowChange ─┬▶ clickhouse::MirrorSink (--clickhouse-url)
//                                └▶ duckdb::MirrorSink (--duckdb)
//   or PostgreSQL (--postgres, --postgres-tables)
//     ──RowCdcSource, ToMirrorChanges──▶ RowChange ─▶ the same sinks
//   records that do not decode, values a copy cannot hold, records of a
//   table that changed incompatibly (--on-incompatible=dead-letter)
//     ──▶ Kafka --dead-letter-topic

#ifndef WEIR_EXAMPLES_MIRROR_MIRROR_APP_H_
#define WEIR_EXAMPLES_MIRROR_MIRROR_APP_H_

#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "weir/formats/debezium_row.h"
#include "weir/mirror.h"

namespace mirror_app {

struct MirrorConfig {
  // Kafka.
  std::string brokers;
  std::vector<std::string> topics;
  std::string topic_prefix;
  std::string group_id = "weir-mirror";
  std::map<std::string, std::string> kafka_properties;
  bool bounded = false;
  std::string dead_letter_topic;
  // PostgreSQL instead of Kafka (RowCdcSource and postgres::ToMirrorChanges):
  // the libpq connection string, the tables, the slot and the publication.
  std::string postgres;
  std::vector<std::string> postgres_tables;
  std::string postgres_slot = "weir_mirror";
  std::string postgres_publication = "weir_mirror";
  // Targets (at least one).
  std::string clickhouse_url;
  std::string clickhouse_user = "default";
  std::string clickhouse_password;
  std::string clickhouse_database = "default";
  std::string duckdb_path;
  // Print the rows of this SQL query on the DuckDB file (tab-separated) and
  // exit, instead of mirroring.
  std::string duckdb_query;
  // Tables.
  weir::mirror::MirrorOptions mirror;
  weir::debezium::RowDecoderOptions decoder;
  // Checkpoints.
  std::string checkpoint_uri = "file:///tmp/weir-mirror/checkpoints";
  absl::Duration checkpoint_interval = absl::Seconds(10);
  int parallelism = 1;
  std::string job_name = "weir-mirror";
  absl::Duration status_interval = absl::Seconds(5);
  // weir's metrics endpoint and dashboard (-1: off, 0: any free port).
  int http_port = -1;
  std::string http_address = "127.0.0.1";
};

// Every flag, its environment variable and its default.
std::string Usage(const char* program);

// Parses flags (--name=value) over environment variables over defaults.
// `help` is set when --help was given. kInvalidArgument names the flag.
absl::StatusOr<MirrorConfig> ParseConfig(int argc, char** argv,
                                         const std::function<const char*(const char*)>& getenv,
                                         bool* help);

// Prints the rows of config.duckdb_query on config.duckdb_path to `out`.
absl::Status QueryDuckDb(const MirrorConfig& config, std::FILE* out);

// Runs until the input ends (--bounded) or `stop` becomes true, logging the
// status line every status_interval; then stops with a final checkpoint.
absl::Status RunMirror(const MirrorConfig& config, const std::atomic<bool>& stop);

}  // namespace mirror_app

#endif  // WEIR_EXAMPLES_MIRROR_MIRROR_APP_H_
