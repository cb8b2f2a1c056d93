#include "examples/engagement/pipeline_app.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "examples/engagement/content_join.h"
#include "examples/engagement/content_metrics.h"
#include "examples/engagement/model.h"
#include "weir/connectors/kafka.h"
#include "weir/connectors/kafka_debezium.h"
#include "weir/dead_letter.h"
#include "weir/formats/json.h"
#include "weir/weir.h"

namespace engagement {
namespace {

namespace dbz = weir::debezium;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

struct Flag {
  const char* name;  // without "--"
  const char* env;
  const char* help;
  std::function<absl::Status(PipelineConfig&, const std::string&)> set;
  std::function<std::string(const PipelineConfig&)> show;
};

absl::Status ParseInt(const std::string& text, int& out, const char* what) {
  if (!absl::SimpleAtoi(text, &out)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": \"", text, "\" is not an integer"));
  }
  return absl::OkStatus();
}

absl::Status ParseDurationFlag(const std::string& text, absl::Duration& out, const char* what) {
  if (!absl::ParseDuration(text, &out) || out < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", text, "\" is not a duration (e.g. 250ms, 10s, 1h)"));
  }
  return absl::OkStatus();
}

Flag StringFlag(const char* name, const char* env, const char* help,
                std::string PipelineConfig::*member) {
  return {name, env, help,
          [member](PipelineConfig& c, const std::string& v) {
            c.*member = v;
            return absl::OkStatus();
          },
          [member](const PipelineConfig& c) { return c.*member; }};
}

Flag IntFlag(const char* name, const char* env, const char* help, int PipelineConfig::*member) {
  return {name, env, help,
          [member, name](PipelineConfig& c, const std::string& v) {
            return ParseInt(v, c.*member, name);
          },
          [member](const PipelineConfig& c) { return std::to_string(c.*member); }};
}

Flag DurationFlag(const char* name, const char* env, const char* help,
                  absl::Duration PipelineConfig::*member) {
  return {name, env, help,
          [member, name](PipelineConfig& c, const std::string& v) {
            return ParseDurationFlag(v, c.*member, name);
          },
          [member](const PipelineConfig& c) { return absl::FormatDuration(c.*member); }};
}

// key=value,key=value into a map (replacing what it held).
Flag PropertiesFlag(const char* name, const char* env, const char* help,
                    std::map<std::string, std::string> PipelineConfig::*member) {
  return {name, env, help,
          [member, name](PipelineConfig& c, const std::string& v) {
            std::map<std::string, std::string>& properties = c.*member;
            properties.clear();
            for (absl::string_view item : absl::StrSplit(v, ',', absl::SkipEmpty())) {
              const size_t eq = item.find('=');
              if (eq == absl::string_view::npos || eq == 0) {
                return absl::InvalidArgumentError(
                    absl::StrCat(name, ": \"", item, "\" is not key=value"));
              }
              properties[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
            }
            return absl::OkStatus();
          },
          [member](const PipelineConfig& c) {
            std::string out;
            for (const auto& [k, v] : c.*member)
              absl::StrAppend(&out, out.empty() ? "" : ",", k, "=", v);
            return out;
          }};
}

absl::Status ParseBool(const std::string& text, bool& out, const char* what) {
  if (text.empty() || text == "true" || text == "1" || text == "yes" || text == "on") {
    out = true;
  } else if (text == "false" || text == "0" || text == "no" || text == "off") {
    out = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(what, ": \"", text, "\" is not a boolean"));
  }
  return absl::OkStatus();
}

constexpr std::pair<const char*, weir::postgres::SnapshotMode> kSnapshotModes[] = {
    {"initial", weir::postgres::SnapshotMode::kInitial},
    {"never", weir::postgres::SnapshotMode::kNever},
    {"initial_only", weir::postgres::SnapshotMode::kInitialOnly},
};

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> flags = {
      {"source", "SOURCE",
       "where the tables' changes come from: kafka (Debezium's topics <p>.public.content and "
       "<p>.public.engagement_events) or postgres (PostgreSQL's logical replication, see "
       "--postgres)",
       [](PipelineConfig& c, const std::string& v) {
         if (v == "kafka") {
           c.source = ChangeSource::kKafka;
         } else if (v == "postgres") {
           c.source = ChangeSource::kPostgres;
         } else {
           return absl::InvalidArgumentError(
               absl::StrCat("source: \"", v, "\" is neither kafka nor postgres"));
         }
         return absl::OkStatus();
       },
       [](const PipelineConfig& c) {
         return std::string(c.source == ChangeSource::kPostgres ? "postgres" : "kafka");
       }},
      StringFlag("postgres", "POSTGRES_URL",
                 "--source=postgres: the application's PostgreSQL, a libpq connection string or "
                 "postgresql:// URI (wal_level=logical; a user with REPLICATION and SELECT on "
                 "both tables)",
                 &PipelineConfig::postgres),
      StringFlag("postgres-slot", "POSTGRES_SLOT",
                 "--source=postgres: replication slots <slot>_content and <slot>_events, "
                 "created when missing (drop them when the job is retired: a slot keeps WAL)",
                 &PipelineConfig::postgres_slot),
      StringFlag("postgres-publication", "POSTGRES_PUBLICATION",
                 "--source=postgres: publications <publication>_content (FOR TABLE "
                 "public.content) and <publication>_events (FOR TABLE public.engagement_events)",
                 &PipelineConfig::postgres_publication),
      {"postgres-create-publication", "POSTGRES_CREATE_PUBLICATION",
       "--source=postgres: create the publications when missing (true/false; false: a missing "
       "one fails the start, naming the CREATE PUBLICATION to run)",
       [](PipelineConfig& c, const std::string& v) {
         return ParseBool(v, c.postgres_create_publication, "postgres-create-publication");
       },
       [](const PipelineConfig& c) {
         return std::string(c.postgres_create_publication ? "true" : "false");
       }},
      {"postgres-snapshot", "POSTGRES_SNAPSHOT",
       "--source=postgres: initial (the tables' rows when the slots are created, then their "
       "changes), never (only changes after that) or initial_only (only the rows, then stop)",
       [](PipelineConfig& c, const std::string& v) {
         for (const auto& [name, mode] : kSnapshotModes) {
           if (v == name) {
             c.postgres_snapshot = mode;
             return absl::OkStatus();
           }
         }
         return absl::InvalidArgumentError(absl::StrCat(
             "postgres-snapshot: \"", v, "\" is none of initial, never, initial_only"));
       },
       [](const PipelineConfig& c) {
         for (const auto& [name, mode] : kSnapshotModes) {
           if (c.postgres_snapshot == mode) return std::string(name);
         }
         return std::string();
       }},
      StringFlag("brokers", "KAFKA_BROKERS",
                 "Kafka bootstrap servers (required, also with --source=postgres for the outbox "
                 "and the dead letters; `weir-kafka-dev` starts a local one)",
                 &PipelineConfig::brokers),
      StringFlag("topic-prefix", "TOPIC_PREFIX",
                 "Debezium topic prefix: reads <p>.public.content and "
                 "<p>.public.engagement_events, writes <p>.engagement_enriched and <p>.dlq",
                 &PipelineConfig::topic_prefix),
      StringFlag("group-id", "KAFKA_GROUP_ID",
                 "consumer group the read offsets are committed to after each checkpoint",
                 &PipelineConfig::group_id),
      PropertiesFlag("kafka-properties", "KAFKA_PROPERTIES",
                     "librdkafka properties for every Kafka client, key=value,key=value (e.g. "
                     "security.protocol=SASL_SSL,sasl.mechanism=PLAIN,sasl.username=...)",
                     &PipelineConfig::kafka_properties),
      PropertiesFlag("kafka-consumer-properties", "KAFKA_CONSUMER_PROPERTIES",
                     "librdkafka properties for the consumers only, after --kafka-properties "
                     "(e.g. fetch.wait.max.ms=10)",
                     &PipelineConfig::kafka_consumer_properties),
      PropertiesFlag("kafka-producer-properties", "KAFKA_PRODUCER_PROPERTIES",
                     "librdkafka properties for the producers only, after --kafka-properties "
                     "(e.g. linger.ms=5)",
                     &PipelineConfig::kafka_producer_properties),
      {"bounded", "BOUNDED", "read the topics up to their current end, then stop (true/false)",
       [](PipelineConfig& c, const std::string& v) {
         c.bounded = v == "true" || v == "1" || v.empty();
         if (!c.bounded && v != "false" && v != "0") {
           return absl::InvalidArgumentError(absl::StrCat("bounded: \"", v, "\" is not a boolean"));
         }
         return absl::OkStatus();
       },
       [](const PipelineConfig& c) { return std::string(c.bounded ? "true" : "false"); }},
      StringFlag("redis-host", "REDIS_HOST", "Redis host (empty: no Redis output)",
                 &PipelineConfig::redis_host),
      IntFlag("redis-port", "REDIS_PORT", "Redis port", &PipelineConfig::redis_port),
      StringFlag("redis-user", "REDIS_USER", "Redis ACL user", &PipelineConfig::redis_user),
      StringFlag("redis-password", "REDIS_PASSWORD", "Redis password",
                 &PipelineConfig::redis_password),
      IntFlag("redis-db", "REDIS_DB", "Redis database number", &PipelineConfig::redis_db),
      StringFlag("clickhouse-url", "CLICKHOUSE_URL",
                 "ClickHouse HTTP interface, e.g. http://127.0.0.1:8123 (empty: no ClickHouse "
                 "output)",
                 &PipelineConfig::clickhouse_url),
      StringFlag("clickhouse-user", "CLICKHOUSE_USER", "ClickHouse user",
                 &PipelineConfig::clickhouse_user),
      StringFlag("clickhouse-password", "CLICKHOUSE_PASSWORD", "ClickHouse password",
                 &PipelineConfig::clickhouse_password),
      StringFlag("clickhouse-database", "CLICKHOUSE_DATABASE", "ClickHouse database",
                 &PipelineConfig::clickhouse_database),
      StringFlag("checkpoint-uri", "CHECKPOINT_URI",
                 "checkpoint storage: file:///path or s3://bucket/prefix (S3 endpoint and keys "
                 "from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                 &PipelineConfig::checkpoint_uri),
      DurationFlag("checkpoint-interval", "CHECKPOINT_INTERVAL", "time between checkpoints",
                   &PipelineConfig::checkpoint_interval),
      {"sink-flush", "SINK_FLUSH",
       "async: at a checkpoint the sinks flush while the workers go on (default); sync: the "
       "workers wait for each flush",
       [](PipelineConfig& c, const std::string& v) {
         if (v != "async" && v != "sync") {
           return absl::InvalidArgumentError(
               absl::StrCat("sink-flush: \"", v, "\" is neither async nor sync"));
         }
         c.synchronous_sink_flush = v == "sync";
         return absl::OkStatus();
       },
       [](const PipelineConfig& c) {
         return std::string(c.synchronous_sink_flush ? "sync" : "async");
       }},
      StringFlag("state-dir", "STATE_DIR",
                 "keep keyed state in RocksDB under this directory (empty: in memory)",
                 &PipelineConfig::state_dir),
      IntFlag("parallelism", "PARALLELISM", "worker threads", &PipelineConfig::parallelism),
      StringFlag("job-name", "JOB_NAME",
                 "the job's name (checkpoints, Kafka transactional ids, Redis fencing)",
                 &PipelineConfig::job_name),
      StringFlag("cluster-job-id", "CLUSTER_JOB_ID",
                 "run as one process of this cluster-mode job: every process started with the "
                 "same id shares the job's tasks through Kafka (empty: this process runs it all)",
                 &PipelineConfig::cluster_job_id),
      IntFlag("cluster-tasks", "CLUSTER_TASKS",
              "cluster mode: the job's tasks (the same in every process)",
              &PipelineConfig::cluster_tasks),
      StringFlag("cluster-instance-id", "CLUSTER_INSTANCE_ID",
                 "cluster mode: this process's static group membership id (optional)",
                 &PipelineConfig::cluster_instance_id),
      DurationFlag("cluster-session-timeout", "CLUSTER_SESSION_TIMEOUT",
                   "cluster mode: how long a silent process keeps its tasks",
                   &PipelineConfig::cluster_session_timeout),
      DurationFlag("out-of-orderness", "OUT_OF_ORDERNESS",
                   "how far event times may go backwards (watermark delay)",
                   &PipelineConfig::out_of_orderness),
      DurationFlag("join-max-wait", "JOIN_MAX_WAIT",
                   "how long an event waits for its content row before it is dead-lettered",
                   &PipelineConfig::join_max_wait),
      DurationFlag("refresh", "REFRESH_INTERVAL",
                   "how often a changed content's Redis metrics and leaderboard entries are "
                   "written",
                   &PipelineConfig::refresh),
      DurationFlag("rollup-refresh", "ROLLUP_REFRESH_INTERVAL",
                   "how often a changed hourly rollup row is written to ClickHouse",
                   &PipelineConfig::rollup_refresh),
      {"leaderboard-size", "LEADERBOARD_SIZE", "entries kept in each leaderboard sorted set",
       [](PipelineConfig& c, const std::string& v) {
         int n = 0;
         absl::Status status = ParseInt(v, n, "leaderboard-size");
         if (status.ok() && n <= 0)
           status = absl::InvalidArgumentError("leaderboard-size: must be > 0");
         c.leaderboard_size = static_cast<size_t>(n);
         return status;
       },
       [](const PipelineConfig& c) { return std::to_string(c.leaderboard_size); }},
      DurationFlag("leaderboard-ttl", "LEADERBOARD_TTL", "TTL of the leaderboard keys",
                   &PipelineConfig::leaderboard_ttl),
      DurationFlag("metrics-ttl", "METRICS_TTL", "TTL of the content:<id>:metrics hashes",
                   &PipelineConfig::metrics_ttl),
      DurationFlag("status-interval", "STATUS_INTERVAL", "time between status lines",
                   &PipelineConfig::status_interval),
      IntFlag("http-port", "HTTP_PORT",
              "serve weir's dashboard, /metrics (Prometheus) and /api/v1/job on this port "
              "(-1: off, 0: any free port)",
              &PipelineConfig::http_port),
      StringFlag("http-address", "HTTP_ADDRESS",
                 "address the dashboard binds to (no authentication: keep it on loopback)",
                 &PipelineConfig::http_address),
  };
  return flags;
}

// ---------------------------------------------------------------------------
// Change streams
// ---------------------------------------------------------------------------

const weir::OutputTag<weir::DeadLetter> kChangeRejected("change-rejected");

weir::DeadLetter ChangeLetter(std::string stage, std::string error, std::string key,
                              const dbz::SourceInfo& source, dbz::Op op) {
  weir::DeadLetter letter;
  std::string payload;
  weir::json::Writer json(payload);
  json.BeginObject()
      .Member("op", std::string(dbz::OpName(op)))
      .Member("table", source.table)
      .Member("ts_ms", source.ts_ms)
      .Member("key", key)
      .EndObject();
  letter.payload = std::move(payload);
  letter.key = std::move(key);
  letter.code = absl::StatusCode::kUnimplemented;
  letter.error = std::move(error);
  letter.stage = std::move(stage);
  letter.timestamp_ms = source.ts_ms;
  return letter;
}

// Content changes → versions (creates, updates, snapshot reads, deletes).
// Tombstones carry nothing the delete before them did not; a TRUNCATE goes to
// the dead letters (it cannot be applied row by row).
class ContentVersions final : public weir::ProcessFunction<dbz::Change<Content>, ContentVersion> {
 public:
  absl::Status ProcessElement(const dbz::Change<Content>& change, Context& ctx,
                              weir::Collector<ContentVersion>& out) override {
    switch (change.op) {
      case dbz::Op::kCreate:
      case dbz::Op::kUpdate:
      case dbz::Op::kRead:
        out.Collect(ContentVersion{change.after->id, change.source.ts_ms, change.after});
        break;
      case dbz::Op::kDelete:
        if (change.before) {
          out.Collect(ContentVersion{change.before->id, change.source.ts_ms, std::nullopt});
        } else {
          ctx.Output(kChangeRejected,
                     ChangeLetter("content-changes", "a delete without the row's key (before)", "",
                                  change.source, change.op));
        }
        break;
      case dbz::Op::kTruncate:
        ctx.Output(kChangeRejected,
                   ChangeLetter("content-changes",
                                "TRUNCATE of public.content is not applied: restart the pipeline "
                                "from a fresh snapshot",
                                "", change.source, change.op));
        break;
      case dbz::Op::kTombstone:
        break;
      case dbz::Op::kMessage:
      case dbz::Op::kHeartbeat:
      case dbz::Op::kTransaction:
        break;  // not row changes; the source skips and counts them (DecoderOptions)
    }
    return absl::OkStatus();
  }
};

// Engagement events are append-only: inserts (and snapshot reads) are
// events; an UPDATE, DELETE or TRUNCATE goes to the dead letters. The
// operator hands each change over (the rvalue overload), so the row is
// moved on, not copied.
class NewEvents final
    : public weir::ProcessFunction<dbz::Change<EngagementEvent>, EngagementEvent> {
 public:
  absl::Status ProcessElement(const dbz::Change<EngagementEvent>& change, Context& ctx,
                              weir::Collector<EngagementEvent>& out) override {
    return ProcessElement(dbz::Change<EngagementEvent>(change), ctx, out);
  }
  absl::Status ProcessElement(dbz::Change<EngagementEvent>&& change, Context& ctx,
                              weir::Collector<EngagementEvent>& out) {
    switch (change.op) {
      case dbz::Op::kCreate:
      case dbz::Op::kRead:
        out.Collect(std::move(*change.after));
        break;
      case dbz::Op::kTombstone:
        break;
      default: {
        const EngagementEvent* row = change.row();
        ctx.Output(kChangeRejected,
                   ChangeLetter("event-changes",
                                absl::StrCat("engagement_events is append-only: ",
                                             std::string(dbz::OpName(change.op)), " not applied"),
                                row ? std::to_string(row->id) : "", change.source, change.op));
      }
    }
    return absl::OkStatus();
  }
};

// A Kafka source of one table's Debezium change events; records that do
// not decode go to `dlq`.
template <class Row>
auto DebeziumSource(const PipelineConfig& config, const weir::kafka::ClientOptions& client,
                    std::shared_ptr<weir::DeadLetterQueue> dlq, std::string topic,
                    dbz::Fields<Row> fields) {
  weir::kafka::SourceOptions<dbz::Change<Row>> options;
  options.client = client;
  options.topics = {std::move(topic)};
  options.group_id = config.group_id;
  options.deserializer = weir::kafka::DebeziumDeserializer(std::move(fields));
  options.bounded = config.bounded;
  options.dead_letters = std::move(dlq);
  return weir::kafka::Source(std::move(options));
}

weir::clickhouse::Columns<HourlyRollup> HourlyColumns() {
  using R = HourlyRollup;
  return weir::clickhouse::Columns<R>()
      .Add("content_id", &R::content_id)
      .AddDateTime("hour", &R::hour_ms)
      .Add("slug", &R::slug)
      .Add("content_type", &R::content_type)
      .Add("events", [](const R& r) { return r.totals.events; })
      .Add("plays", [](const R& r) { return r.totals.plays; })
      .Add("pauses", [](const R& r) { return r.totals.pauses; })
      .Add("finishes", [](const R& r) { return r.totals.finishes; })
      .Add("clicks", [](const R& r) { return r.totals.clicks; })
      .Add("engagement_seconds", [](const R& r) { return r.totals.engagement_seconds(); })
      .Add("timed_events", [](const R& r) { return r.totals.timed_events; })
      .Add("engagement_pct_sum", [](const R& r) { return r.totals.engagement_pct_sum(); })
      .Add("pct_events", [](const R& r) { return r.totals.pct_events; })
      .Add("avg_engagement_pct",
           [](const R& r) {
             return r.totals.pct_events == 0 ? std::optional<double>()
                                             : std::optional<double>(r.totals.engagement_pct_sum() /
                                                                     r.totals.pct_events);
           })
      .Add("version", [](const R& r) { return static_cast<uint64_t>(r.totals.events); });
}

std::string LeaderboardKey(const std::string& content_type) {
  return content_type.empty() ? std::string(kLeaderboardKey)
                              : absl::StrCat(kLeaderboardKey, ":", content_type);
}

// ---------------------------------------------------------------------------
// Consumer lag: the group's committed offsets (advanced after each
// checkpoint) against the partitions' high watermarks.
// ---------------------------------------------------------------------------

class LagProbe {
 public:
  LagProbe(const PipelineConfig& config, std::vector<std::string> topics)
      : topics_(std::move(topics)) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", config.brokers.c_str(), errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", config.group_id.c_str(), errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    for (const auto* properties : {&config.kafka_properties, &config.kafka_consumer_properties}) {
      for (const auto& [key, value] : *properties) {
        rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof(errstr));
      }
    }
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk_ == nullptr) rd_kafka_conf_destroy(conf);
  }
  ~LagProbe() {
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }

  // Messages not yet covered by a committed offset; -1 when unknown.
  int64_t Lag() {
    if (rk_ == nullptr) return -1;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
    for (const std::string& topic : topics_) {
      rd_kafka_topic_t* handle = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
      const rd_kafka_metadata_t* metadata = nullptr;
      if (rd_kafka_metadata(rk_, 0, handle, &metadata, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int t = 0; t < metadata->topic_cnt; ++t) {
          for (int p = 0; p < metadata->topics[t].partition_cnt; ++p) {
            rd_kafka_topic_partition_list_add(list, topic.c_str(),
                                              metadata->topics[t].partitions[p].id);
          }
        }
        rd_kafka_metadata_destroy(metadata);
      }
      rd_kafka_topic_destroy(handle);
    }
    int64_t lag = 0;
    if (rd_kafka_committed(rk_, list, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) lag = -1;
    for (int i = 0; lag >= 0 && i < list->cnt; ++i) {
      int64_t low = 0;
      int64_t high = 0;
      if (rd_kafka_query_watermark_offsets(rk_, list->elems[i].topic, list->elems[i].partition,
                                           &low, &high, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        lag = -1;
        break;
      }
      const int64_t committed = list->elems[i].offset >= 0 ? list->elems[i].offset : low;
      lag += std::max<int64_t>(0, high - committed);
    }
    rd_kafka_topic_partition_list_destroy(list);
    return lag;
  }

 private:
  std::vector<std::string> topics_;
  rd_kafka_t* rk_ = nullptr;
};

std::string FormatTime(int64_t ms) {
  if (ms <= 0) return "-";
  return absl::FormatTime("%H:%M:%E3S", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

}  // namespace

std::string Usage(const char* program) {
  std::string out = absl::StrCat(
      "usage: ", program, " [--flag=value ...]\n\n",
      "Joins the change events of public.engagement_events with public.content (from\n"
      "Debezium's Kafka topics, or straight from PostgreSQL with --source=postgres) and\n"
      "writes Redis leaderboards and metrics, ClickHouse tables, an exactly-once Kafka\n"
      "outbox and a dead-letter topic. Each flag can also be set by its environment\n"
      "variable; a flag wins over the variable, the variable over the default.\n\n");
  const PipelineConfig defaults;
  for (const Flag& flag : Flags()) {
    const std::string shown = flag.show(defaults);
    absl::StrAppend(&out, "  --", flag.name, " (", flag.env, ")\n      ", flag.help,
                    "\n      default: ", shown.empty() ? "(empty)" : shown, "\n");
  }
  absl::StrAppend(&out, "  --help\n      this text\n");
  return out;
}

absl::StatusOr<PipelineConfig> ParseConfig(int argc, char** argv,
                                           const std::function<const char*(const char*)>& getenv,
                                           bool* help) {
  PipelineConfig config;
  *help = false;
  for (const Flag& flag : Flags()) {
    if (const char* value = getenv(flag.env)) {
      absl::Status status = flag.set(config, value);
      if (!status.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("environment ", flag.env, ": ", status.message()));
      }
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      continue;
    }
    if (!arg.starts_with("--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", arg, "\""));
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    const Flag* found = nullptr;
    for (const Flag& flag : Flags()) {
      if (name == flag.name) found = &flag;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (eq == std::string::npos && name != "bounded" && name != "postgres-create-publication") {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (--", name, "=...)"));
    }
    absl::Status status = found->set(config, value);
    if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat("--", status.message()));
  }
  if (!*help && config.brokers.empty()) {
    return absl::InvalidArgumentError(
        "--brokers (KAFKA_BROKERS) is required; for a local broker run `weir-kafka-dev "
        "engagement.public.content:4 engagement.public.engagement_events:8` and pass the "
        "address it prints");
  }
  if (config.source == ChangeSource::kPostgres && !*help) {
    if (config.postgres.empty()) {
      return absl::InvalidArgumentError(
          "--source=postgres needs --postgres (POSTGRES_URL), e.g. --postgres='host=127.0.0.1 "
          "dbname=app user=weir'");
    }
    if (config.postgres_slot.empty() || config.postgres_publication.empty()) {
      return absl::InvalidArgumentError(
          "--postgres-slot and --postgres-publication must not be empty");
    }
    if (config.bounded) {
      return absl::InvalidArgumentError(
          "--bounded reads Kafka topics to their end; with --source=postgres use "
          "--postgres-snapshot=initial_only to read the tables' rows and stop");
    }
    if (!config.cluster_job_id.empty()) {
      return absl::InvalidArgumentError(
          "--cluster-job-id needs --source=kafka (a replication slot has one reader)");
    }
  }
  if (config.parallelism < 1) return absl::InvalidArgumentError("--parallelism must be >= 1");
  if (!config.cluster_job_id.empty() && config.cluster_tasks < 1) {
    return absl::InvalidArgumentError("--cluster-tasks must be >= 1");
  }
  return config;
}

std::string ContentTopicName(const PipelineConfig& c) {
  return absl::StrCat(c.topic_prefix, ".public.content");
}
std::string EventsTopicName(const PipelineConfig& c) {
  return absl::StrCat(c.topic_prefix, ".public.engagement_events");
}
std::string OutboxTopicName(const PipelineConfig& c) {
  return absl::StrCat(c.topic_prefix, ".engagement_enriched");
}
std::string DeadLetterTopicName(const PipelineConfig& c) {
  return absl::StrCat(c.topic_prefix, ".dlq");
}

namespace {
weir::postgres::CdcOptions CdcOptionsFor(const PipelineConfig& config, const char* suffix,
                                         const char* table,
                                         std::shared_ptr<weir::DeadLetterQueue> dlq) {
  return {.connection = config.postgres,
          .slot = absl::StrCat(config.postgres_slot, "_", suffix),
          .publication = absl::StrCat(config.postgres_publication, "_", suffix),
          .create_publication = config.postgres_create_publication,
          .tables = {table},
          .snapshot = config.postgres_snapshot,
          // source.name, as Debezium's topic.prefix would set it.
          .name = config.topic_prefix,
          // Rows that do not map go where the Kafka path's undecodable records go.
          .dead_letters = std::move(dlq)};
}
}  // namespace

weir::postgres::CdcOptions ContentCdcOptions(const PipelineConfig& config,
                                             std::shared_ptr<weir::DeadLetterQueue> dlq) {
  return CdcOptionsFor(config, "content", "public.content", std::move(dlq));
}
weir::postgres::CdcOptions EventsCdcOptions(const PipelineConfig& config,
                                            std::shared_ptr<weir::DeadLetterQueue> dlq) {
  return CdcOptionsFor(config, "events", "public.engagement_events", std::move(dlq));
}

weir::clickhouse::ConnectionOptions ClickHouseConnection(const PipelineConfig& config) {
  weir::clickhouse::ConnectionOptions connection;
  connection.url = config.clickhouse_url;
  connection.user = config.clickhouse_user;
  connection.password = config.clickhouse_password;
  connection.database = config.clickhouse_database;
  return connection;
}

absl::Status CreateClickHouseTables(const PipelineConfig& config) {
  const weir::clickhouse::ConnectionOptions connection = ClickHouseConnection(config);
  absl::Status status =
      weir::clickhouse::CreateTable(connection, EnrichedColumns(),
                                    {.table = kEnrichedTable,
                                     .order_by = {"content_type", "event_type", "event_id"},
                                     .partition_time_column = "event_ts"});
  if (!status.ok()) return status;
  return weir::clickhouse::CreateTable(connection, HourlyColumns(),
                                       {.table = kHourlyTable,
                                        .order_by = {"content_id", "hour"},
                                        .version_column = "version",
                                        .partition_time_column = "hour"});
}

weir::PipelineOptions PipelineOptionsFor(const PipelineConfig& config) {
  weir::PipelineOptions options;
  options.parallelism = config.parallelism;
  options.job_name = config.job_name;
  options.http_port = config.http_port;
  options.http_address = config.http_address;
  if (!config.state_dir.empty())
    options.state_backend = weir::StateBackend::RocksDb(config.state_dir);
  if (!config.checkpoint_uri.empty() && config.checkpoint_interval > absl::ZeroDuration()) {
    options.checkpoints.interval = config.checkpoint_interval;
    options.checkpoints.storage_uri = config.checkpoint_uri;
  }
  options.checkpoints.asynchronous_sink_flush = !config.synchronous_sink_flush;
  if (!config.cluster_job_id.empty()) {
    options.cluster.brokers = config.brokers;
    options.cluster.job_id = config.cluster_job_id;
    options.cluster.instance_id = config.cluster_instance_id;
    options.cluster.tasks = config.cluster_tasks;
    options.cluster.session_timeout = config.cluster_session_timeout;
    options.cluster.properties = config.kafka_properties;
  }
  return options;
}

namespace {

// The change streams of both tables, after their sources: content versions
// (for the join) and new engagement events.
struct ChangeStreams {
  weir::Stream<ContentVersion> content;
  weir::Stream<EngagementEvent> events;
};

ChangeStreams ReadChanges(weir::Pipeline& pipeline, const PipelineConfig& config,
                          const weir::kafka::ClientOptions& client,
                          std::shared_ptr<weir::DeadLetterQueue> dlq, PipelineCounters& counters) {
  std::shared_ptr<weir::Source<dbz::Change<Content>>> content_source;
  std::shared_ptr<weir::Source<dbz::Change<EngagementEvent>>> event_source;
  if (config.source == ChangeSource::kPostgres) {
    // The same Fields as the Kafka path: the rest of the job cannot tell
    // the difference. A row that does not map (a NULL, a value out of
    // range) goes to the dead-letter topic, as an undecodable record does.
    auto content =
        weir::postgres::CdcSource<Content>::Create(ContentCdcOptions(config, dlq), ContentFields());
    auto events = weir::postgres::CdcSource<EngagementEvent>::Create(
        EventsCdcOptions(config, dlq), EngagementEventFields(/*with_raw_payload=*/false));
    counters.events_read = [events] {
      const weir::postgres::CdcSourceStats stats = events->Stats();
      return stats.snapshot_rows + stats.changes;
    };
    counters.source_dead_letters = [events, content] {
      return events->Stats().dead_letters + content->Stats().dead_letters;
    };
    content_source = std::move(content);
    event_source = std::move(events);
  } else {
    auto content = DebeziumSource(config, client, dlq, ContentTopicName(config), ContentFields());
    auto events = DebeziumSource(config, client, dlq, EventsTopicName(config),
                                 EngagementEventFields(/*with_raw_payload=*/false));
    counters.events_read = [events] { return events->Stats().records; };
    counters.source_dead_letters = [events, content] {
      return events->Stats().dead_letters + content->Stats().dead_letters;
    };
    content_source = std::move(content);
    event_source = std::move(events);
  }

  // Every source, sink and stateful operator has a uid: a restore finds its
  // state (offsets, keyed state, committables), the outbox its Kafka
  // transactional ids and the Redis sinks their fences by it, so it never
  // changes. They are the names those operators had before weir had uids,
  // which identified them in checkpoints then: older checkpoints restore.
  weir::Stream<ContentVersion> content_changes =
      pipeline
          .Source(content_source,
                  weir::WatermarkStrategy<dbz::Change<Content>>::BoundedOutOfOrderness(
                      config.out_of_orderness)
                      // Commit time. Tombstones have no source block: they carry no event
                      // time (never the broker's clock, which would move the watermark to
                      // the wall clock).
                      .WithTimestampAssigner([](const dbz::Change<Content>& c, weir::Timestamp) {
                        return c.source.ts_ms > 0 ? c.source.ts_ms : weir::kNoTimestamp;
                      }))
          .Uid("content-source")
          .Process(ContentVersions{})
          .Name("content-versions");
  weir::Stream<EngagementEvent> event_changes =
      pipeline
          .Source(event_source,
                  weir::WatermarkStrategy<dbz::Change<EngagementEvent>>::BoundedOutOfOrderness(
                      config.out_of_orderness)
                      .WithTimestampAssigner(
                          [](const dbz::Change<EngagementEvent>& c, weir::Timestamp) {
                            const EngagementEvent* row = c.row();
                            return row != nullptr ? row->event_ts_ms : weir::kNoTimestamp;
                          }))
          .Uid("event-source")
          .Process(NewEvents{})
          .Name("new-events");

  return {content_changes, event_changes};
}

// Each event joined with the content version committed at or before it;
// rejected records of every stage go to the dead-letter topic.
weir::Stream<Enriched> JoinAndDeadLetter(ChangeStreams changes, const PipelineConfig& config,
                                         std::shared_ptr<weir::DeadLetterQueue> dlq,
                                         std::shared_ptr<PipelineCounters> counters) {
  weir::Stream<ContentVersion>& content_changes = changes.content;
  weir::Stream<EngagementEvent>& event_changes = changes.events;
  ContentJoinOptions join_options;
  join_options.max_wait = config.join_max_wait;
  const weir::OutputTag<weir::DeadLetter> rejected = join_options.rejected;
  // The keys are returned by reference: routing an event then hashes its
  // content id without copying it.
  auto enriched =
      event_changes
          .KeyBy([](const EngagementEvent& e) -> const std::string& { return e.content_id; })
          .Connect(content_changes.Broadcast())
          .Process(ContentJoin(join_options))
          .Uid("content-join");

  auto letters =
      content_changes.SideOutput(kChangeRejected)
          .Union(event_changes.SideOutput(kChangeRejected), enriched.SideOutput(rejected))
          .Map([counters](const weir::DeadLetter& letter) {
            counters->rejected.fetch_add(1, std::memory_order_relaxed);
            return letter;
          });
  letters.Sink(std::make_shared<weir::DeadLetterSink>(dlq)).Uid("dead-letters");

  return enriched;
}

void WriteOutbox(weir::Stream<Enriched>& enriched, const PipelineConfig& config,
                 const weir::kafka::ClientOptions& client) {
  // The outbox: every enriched event exactly once.
  weir::kafka::SinkOptions<Enriched> outbox;
  outbox.client = client;
  outbox.topic = OutboxTopicName(config);
  outbox.guarantee = config.checkpoint_uri.empty() ? weir::kafka::DeliveryGuarantee::kAtLeastOnce
                                                   : weir::kafka::DeliveryGuarantee::kExactlyOnce;
  outbox.serializer = [](const Enriched& e, std::string& value) {
    AppendJson(e, value);  // the sink hands over an empty, reused buffer
    return absl::OkStatus();
  };
  outbox.key = [](const Enriched& e) -> const std::string& { return e.content_id; };
  outbox.event_time_as_timestamp = true;
  enriched.Sink(weir::kafka::Sink(std::move(outbox))).Uid("kafka-outbox");
}

void WriteClickHouse(weir::Stream<Enriched>& enriched, weir::Stream<ContentUpdate>& updates,
                     const weir::OutputTag<HourlyRollup>& rollups, const PipelineConfig& config) {
  // RowBinary: CreateClickHouseTables made the tables from the same
  // columns, so the types match; it costs both ends about a third of
  // JSONEachRow.
  // One row per event, never updated: its table has no version. The
  // hourly rollups are updated, and versioned by their event count.
  weir::clickhouse::SinkOptions enriched_sink{.connection = ClickHouseConnection(config),
                                              .table = kEnrichedTable,
                                              .format = weir::clickhouse::Format::kRowBinary,
                                              .immutable_rows = true};
  enriched.Sink(weir::clickhouse::Sink<Enriched>(enriched_sink, EnrichedColumns()))
      .Uid("clickhouse-enriched");
  weir::clickhouse::SinkOptions hourly_sink{.connection = ClickHouseConnection(config),
                                            .table = kHourlyTable,
                                            .format = weir::clickhouse::Format::kRowBinary};
  updates.SideOutput(rollups)
      .Sink(weir::clickhouse::Sink<HourlyRollup>(hourly_sink, HourlyColumns()))
      .Uid("clickhouse-hourly");
}

void WriteRedis(weir::Stream<ContentUpdate>& updates, const PipelineConfig& config,
                std::shared_ptr<PipelineCounters> counters) {
  weir::redis::SinkOptions redis;
  redis.connection.host = config.redis_host;
  redis.connection.port = config.redis_port;
  redis.connection.user = config.redis_user;
  redis.connection.password = config.redis_password;
  redis.connection.database = config.redis_db;
  // ContentMetrics emits its updates in bursts, one per refresh tick, each
  // handed over whole: a batch has nothing more to wait for, and the
  // default 5 ms linger would only delay every update by that much.
  redis.linger = absl::Milliseconds(1);
  // By value: Map hands over its element, so the update (four strings) is
  // moved through rather than copied.
  auto tracked = updates.Map([counters](ContentUpdate u) {
    int64_t seen = counters->latest_event_ms.load(std::memory_order_relaxed);
    while (u.last_event_ts_ms > seen && !counters->latest_event_ms.compare_exchange_weak(
                                            seen, u.last_event_ts_ms, std::memory_order_relaxed)) {
    }
    return u;
  });
  tracked
      .Sink(weir::redis::Sink<ContentUpdate>(
          redis, weir::redis::HashMapping<ContentUpdate>{
                     .key =
                         [](const ContentUpdate& u) {
                           return absl::StrCat("content:", u.content_id, ":metrics");
                         },
                     .fields =
                         [](const ContentUpdate& u, weir::redis::Fields& f) {
                           const Totals& t = u.totals;
                           f.Add("slug", u.slug)
                               .Add("title", u.title)
                               .Add("content_type", u.content_type)
                               .Add("events", t.events)
                               .Add("plays", t.plays)
                               .Add("pauses", t.pauses)
                               .Add("finishes", t.finishes)
                               .Add("clicks", t.clicks)
                               .Add("total_engagement_seconds",
                                    FormatDouble(t.engagement_seconds()))
                               .Add("avg_engagement_seconds",
                                    t.timed_events == 0
                                        ? std::string()
                                        : FormatDouble(t.engagement_seconds() / t.timed_events))
                               .Add("avg_engagement_pct",
                                    t.pct_events == 0
                                        ? std::string()
                                        : FormatDouble(t.engagement_pct_sum() / t.pct_events))
                               .Add("engagement_seconds_10min", FormatDouble(u.window_seconds))
                               .Add("last_event_ts_ms", u.last_event_ts_ms);
                         },
                     .ttl = config.metrics_ttl}))
      .Uid("redis-metrics");
  const std::string ttl_ms = std::to_string(absl::ToInt64Milliseconds(config.leaderboard_ttl));
  const std::string trim = std::to_string(-static_cast<int64_t>(config.leaderboard_size) - 1);
  tracked
      .Sink(weir::redis::Sink<ContentUpdate>(
          redis, weir::redis::CommandMapping<ContentUpdate>([ttl_ms, trim](
                                                                const ContentUpdate& u,
                                                                weir::redis::CommandBuilder& out) {
            if (!u.previous_content_type.empty()) {
              out.Add({"ZREM", LeaderboardKey(u.previous_content_type), u.content_id});
            }
            for (const std::string& key : {LeaderboardKey(""), LeaderboardKey(u.content_type)}) {
              if (u.window_seconds > 0) {
                out.Begin("ZADD").Arg(key).Arg(u.window_seconds).Arg(u.content_id).End();
                out.AddOncePerBatch({"ZREMRANGEBYRANK", key, "0", trim});
                out.AddOncePerBatch({"PEXPIRE", key, ttl_ms});
              } else {
                out.Add({"ZREM", key, u.content_id});
              }
            }
          })))
      .Uid("redis-leaderboards");
}

}  // namespace

// The job, step by step: sources, the join (and dead letters), the outbox,
// the per-content metrics, then ClickHouse and Redis when configured.
absl::Status BuildPipeline(weir::Pipeline& pipeline, const PipelineConfig& config,
                           std::shared_ptr<PipelineCounters> counters) {
  weir::kafka::ClientOptions client{.brokers = config.brokers,
                                    .properties = config.kafka_properties,
                                    .consumer_properties = config.kafka_consumer_properties,
                                    .producer_properties = config.kafka_producer_properties};
  std::shared_ptr<weir::DeadLetterQueue> dlq =
      weir::kafka::DeadLetterTopic({.client = client, .topic = DeadLetterTopicName(config)});
  ChangeStreams changes = ReadChanges(pipeline, config, client, dlq, *counters);
  weir::Stream<Enriched> enriched = JoinAndDeadLetter(changes, config, dlq, counters);
  WriteOutbox(enriched, config, client);
  ContentMetricsOptions metrics_options;
  metrics_options.refresh = config.refresh;
  metrics_options.rollup_refresh = config.rollup_refresh;
  const weir::OutputTag<HourlyRollup> rollups = metrics_options.rollups;
  weir::Stream<ContentUpdate> updates =
      enriched.KeyBy([](const Enriched& e) -> const std::string& { return e.content_id; })
          .Process(ContentMetrics(metrics_options))
          // "-v2": its sums became integers; a checkpoint of the
          // floating-point state fails the restore, naming
          // "content-metrics", instead of decoding into wrong numbers.
          .Uid("content-metrics-v2")
          .Name("content-metrics");

  if (!config.clickhouse_url.empty()) WriteClickHouse(enriched, updates, rollups, config);
  if (!config.redis_host.empty()) WriteRedis(updates, config, counters);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, int>>> ClusterTopicsFor(
    const PipelineConfig& config) {
  weir::Pipeline pipeline(PipelineOptionsFor(config));
  absl::Status built = BuildPipeline(pipeline, config, std::make_shared<PipelineCounters>());
  if (!built.ok()) return built;
  return pipeline.ClusterTopics();
}

absl::Status RunPipeline(const PipelineConfig& config, const std::atomic<bool>& stop) {
  if (!config.clickhouse_url.empty()) {
    absl::Status created = CreateClickHouseTables(config);
    if (!created.ok()) return created;
  }
  weir::Pipeline pipeline(PipelineOptionsFor(config));
  auto counters = std::make_shared<PipelineCounters>();
  absl::Status built = BuildPipeline(pipeline, config, counters);
  if (!built.ok()) return built;
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();
  std::fprintf(
      stderr,
      "engagement-pipeline: running (%s, changes from %s, checkpoints %s every %s, Redis %s, "
      "ClickHouse %s)\n",
      config.cluster_job_id.empty() ? absl::StrCat("parallelism ", config.parallelism).c_str()
                                    : absl::StrCat("cluster job ", config.cluster_job_id, " of ",
                                                   config.cluster_tasks, " tasks")
                                          .c_str(),
      config.source == ChangeSource::kPostgres ? "PostgreSQL" : "Kafka",
      config.checkpoint_uri.empty() ? "off" : config.checkpoint_uri.c_str(),
      absl::FormatDuration(config.checkpoint_interval).c_str(),
      config.redis_host.empty() ? "off"
                                : absl::StrCat(config.redis_host, ":", config.redis_port).c_str(),
      config.clickhouse_url.empty() ? "off" : config.clickhouse_url.c_str());
  if (job->http_port() >= 0) {
    std::fprintf(stderr, "engagement-pipeline: dashboard at http://%s:%d/\n",
                 config.http_address.c_str(), job->http_port());
  }
  const bool from_kafka = config.source == ChangeSource::kKafka;
  LagProbe lag(config, from_kafka ? std::vector<std::string>{EventsTopicName(config),
                                                             ContentTopicName(config)}
                                  : std::vector<std::string>{});
  auto last = std::chrono::steady_clock::now();
  int64_t last_events = 0;
  bool stopping = false;
  while (!job->done()) {
    // A short step: a bounded run ends as soon as its job does (a 100 ms
    // step cost a run 50 ms on average), and the loop's work per step is a
    // clock read.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (stop.load() && !stopping) {
      std::fprintf(stderr, "engagement-pipeline: stopping (final checkpoint)\n");
      job->Stop();
      stopping = true;
    }
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - last).count();
    if (elapsed < absl::ToDoubleSeconds(config.status_interval)) continue;
    const int64_t events = counters->events_read();
    const int64_t latest = counters->latest_event_ms.load();
    // Two lags: records not yet read (weir's per-partition gauges), and
    // records not yet covered by a committed offset (the group commits only
    // after each checkpoint, so this one grows between checkpoints).
    const double unread = job->Metrics().Sum("weir_kafka_consumer_lag_records");
    // Until this run completes a checkpoint, the one it restored.
    int64_t checkpoint = job->last_completed_checkpoint();
    const bool restored = checkpoint == 0 && job->restored_checkpoint() > 0;
    if (restored) checkpoint = job->restored_checkpoint();
    // From PostgreSQL the slots hold what is not yet read; the lag shown
    // is that of the event time.
    const std::string lag_text = from_kafka
                                     ? absl::StrFormat("lag %.0f unread / %lld uncommitted", unread,
                                                       static_cast<long long>(lag.Lag()))
                                     : std::string("from PostgreSQL");
    std::fprintf(
        stderr,
        "engagement-pipeline: %.0f events/s, %s, event time %s "
        "(%.1f s behind), last checkpoint %lld%s, dead letters %lld\n",
        static_cast<double>(events - last_events) / elapsed, lag_text.c_str(),
        FormatTime(latest).c_str(),
        latest > 0 ? (absl::ToUnixMillis(absl::Now()) - latest) / 1000.0 : 0.0,
        static_cast<long long>(checkpoint), restored ? " (restored)" : "",
        static_cast<long long>(counters->source_dead_letters() + counters->rejected.load()));
    last = now;
    last_events = events;
  }
  absl::Status status = job->Wait();
  std::fprintf(stderr, "engagement-pipeline: %s after %lld events (%lld dead letters)\n",
               status.ok() ? "finished" : status.ToString().c_str(),
               static_cast<long long>(counters->events_read()),
               static_cast<long long>(counters->source_dead_letters() + counters->rejected.load()));
  return status;
}

}  // namespace engagement
