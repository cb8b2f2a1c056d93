// The engagement-pipeline program: configuration (flags and environment),
// the dataflow, and the run loop with its status line. Kept apart from
// main() so tests build and run the same pipeline in-process.
//
// The dataflow (with --source=postgres, both tables' changes come from
// PostgreSQL's logical replication instead of the two topics, decoded with
// the same Fields):
//
//   <prefix>.public.content ──Debezium──▶ versions ──broadcast──┐
//   <prefix>.public.engagement_events ──Debezium──▶ events ─keyBy content─▶ ContentJoin
//   ContentJoin ─▶ enriched ─┬▶ Kafka <prefix>.engagement_enriched (exactly once)
//                            ├▶ ClickHouse engagement_enriched
//                            └▶ keyBy content ▶ ContentMetrics ─┬▶ Redis content:<id>:metrics
//                                                               ├▶ Redis
//                                                               top_engagement:10min[:type] └▶
//                                                               ClickHouse engagement_hourly
//   bad envelopes, rejected events ─▶ Kafka <prefix>.dlq

#ifndef WEIR_EXAMPLES_ENGAGEMENT_PIPELINE_APP_H_
#define WEIR_EXAMPLES_ENGAGEMENT_PIPELINE_APP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "weir/connectors/clickhouse.h"
#include "weir/connectors/postgres.h"
#include "weir/connectors/redis.h"
#include "weir/pipeline.h"

namespace engagement {

// Where the pipeline reads the tables' changes.
enum class ChangeSource {
  // Debezium's topics <prefix>.public.content and
  // <prefix>.public.engagement_events (Debezium or weir-capture writes them).
  kKafka,
  // PostgreSQL's logical replication, with weir::postgres::CdcSource: no
  // Debezium, no Kafka Connect.
  kPostgres,
};

struct PipelineConfig {
  ChangeSource source = ChangeSource::kKafka;
  // PostgreSQL (--source=postgres): libpq connection string or
  // postgresql:// URI of the application's database.
  std::string postgres;
  // Slots <postgres_slot>_content and <postgres_slot>_events (one per
  // table: a slot has one reader), created when missing.
  std::string postgres_slot = "weir_engagement";
  // Publications <postgres_publication>_content and _events, created (FOR
  // TABLE public.content, resp. public.engagement_events) when missing and
  // postgres_create_publication is set.
  std::string postgres_publication = "weir_engagement";
  bool postgres_create_publication = true;
  weir::postgres::SnapshotMode postgres_snapshot = weir::postgres::SnapshotMode::kInitial;
  // Kafka (the outbox and the dead letters also with --source=postgres).
  std::string brokers;
  std::string topic_prefix = "engagement";
  std::string group_id = "engagement-pipeline";
  // librdkafka properties for every client (consumers, producers), e.g.
  // security.protocol=SASL_SSL; "key=value,key=value" on the command line.
  std::map<std::string, std::string> kafka_properties;
  // librdkafka properties for consumers only (e.g. fetch.wait.max.ms) and
  // for producers only (e.g. linger.ms): a property in the wrong kind of
  // client makes librdkafka warn (CONFWARN) at every start.
  std::map<std::string, std::string> kafka_consumer_properties;
  std::map<std::string, std::string> kafka_producer_properties;
  // Read the topics up to their current end, then finish (tests, backfills).
  bool bounded = false;
  // Redis (empty host: no Redis output).
  std::string redis_host = "127.0.0.1";
  int redis_port = 6379;
  std::string redis_user;
  std::string redis_password;
  int redis_db = 0;
  // ClickHouse (empty URL: no ClickHouse output).
  std::string clickhouse_url;
  std::string clickhouse_user = "default";
  std::string clickhouse_password;
  std::string clickhouse_database = "default";
  // Checkpoints and state.
  std::string checkpoint_uri = "file:///tmp/weir-engagement/checkpoints";
  absl::Duration checkpoint_interval = absl::Seconds(10);
  // At a checkpoint barrier the sinks flush off the worker's thread (the
  // default); true: on it, and the worker waits (for comparison).
  bool synchronous_sink_flush = false;
  std::string state_dir;  // RocksDB state there; empty: memory
  int parallelism = 2;
  std::string job_name = "engagement";
  // Cluster mode (empty job id: one process runs the whole job). Every
  // process started with the same id, brokers and tasks runs a share of it.
  std::string cluster_job_id;
  int cluster_tasks = 4;
  std::string cluster_instance_id;  // static group membership (optional)
  absl::Duration cluster_session_timeout = absl::Seconds(10);
  // Event time and freshness.
  absl::Duration out_of_orderness = absl::Milliseconds(200);
  absl::Duration join_max_wait = absl::Seconds(30);
  // How often a changed content's Redis entries are written: half of it is
  // the mean wait it adds to an event's effect in Redis.
  absl::Duration refresh = absl::Milliseconds(50);
  absl::Duration rollup_refresh = absl::Seconds(5);
  size_t leaderboard_size = 100;
  absl::Duration leaderboard_ttl = absl::Hours(1);
  absl::Duration metrics_ttl = absl::Hours(24);
  absl::Duration status_interval = absl::Seconds(5);
  // weir's metrics endpoint and dashboard (-1: off, 0: any free port).
  int http_port = -1;
  std::string http_address = "127.0.0.1";
};

// Every flag, its environment variable and its default (for --help).
std::string Usage(const char* program);

// Parses flags (--name=value) over environment variables over defaults.
// `help` is set when --help was given. kInvalidArgument names the flag.
absl::StatusOr<PipelineConfig> ParseConfig(int argc, char** argv,
                                           const std::function<const char*(const char*)>& getenv,
                                           bool* help);

// Topic and table names.
std::string ContentTopicName(const PipelineConfig& config);
std::string EventsTopicName(const PipelineConfig& config);
std::string OutboxTopicName(const PipelineConfig& config);
std::string DeadLetterTopicName(const PipelineConfig& config);
// --source=postgres: the CdcSource options of public.content and
// public.engagement_events; rows that do not map go to `dlq` (the job's
// dead-letter topic), or fail the job without one.
weir::postgres::CdcOptions ContentCdcOptions(const PipelineConfig& config,
                                             std::shared_ptr<weir::DeadLetterQueue> dlq = nullptr);
weir::postgres::CdcOptions EventsCdcOptions(const PipelineConfig& config,
                                            std::shared_ptr<weir::DeadLetterQueue> dlq = nullptr);
inline constexpr char kEnrichedTable[] = "engagement_enriched";
inline constexpr char kHourlyTable[] = "engagement_hourly";
inline constexpr char kLeaderboardKey[] = "top_engagement:10min";

weir::clickhouse::ConnectionOptions ClickHouseConnection(const PipelineConfig& config);
// Creates engagement_enriched and engagement_hourly if missing.
absl::Status CreateClickHouseTables(const PipelineConfig& config);

// Live counters the status line reads.
struct PipelineCounters {
  std::atomic<int64_t> rejected{0};         // events the join dead-lettered
  std::atomic<int64_t> latest_event_ms{0};  // newest event time sent to Redis
  std::function<int64_t()> events_read;     // engagement events deserialized
  std::function<int64_t()> source_dead_letters;
};

// Adds the whole dataflow to `pipeline` (whose options come from
// PipelineOptionsFor).
absl::Status BuildPipeline(weir::Pipeline& pipeline, const PipelineConfig& config,
                           std::shared_ptr<PipelineCounters> counters);
weir::PipelineOptions PipelineOptionsFor(const PipelineConfig& config);
// Cluster mode: the topics the job uses, with their partition counts
// (weir::Pipeline::ClusterTopics of the whole dataflow).
absl::StatusOr<std::vector<std::pair<std::string, int>>> ClusterTopicsFor(
    const PipelineConfig& config);

// Runs until the input ends (bounded) or `stop` becomes true, logging the
// status line every status_interval; then stops with a final checkpoint.
absl::Status RunPipeline(const PipelineConfig& config, const std::atomic<bool>& stop);

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_PIPELINE_APP_H_
