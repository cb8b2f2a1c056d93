#include "examples/mirror/mirror_app.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "weir/connectors/clickhouse_mirror.h"
#include "weir/connectors/kafka.h"
#include "weir/connectors/kafka_debezium.h"
#include "weir/connectors/postgres_mirror.h"
#include "weir/connectors/postgres_rows.h"
#include "weir/pipeline.h"
#ifdef WEIR_MIRROR_DUCKDB
#include "weir/connectors/duckdb_mirror.h"
#endif

namespace mirror_app {
namespace {

struct Flag {
  const char* name;
  const char* env;
  const char* help;
  std::function<absl::Status(MirrorConfig&, const std::string&)> set;
  std::string default_value;
};

absl::Status ParseDuration(const std::string& name, const std::string& value, absl::Duration& out) {
  if (!absl::ParseDuration(value, &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": \"", value, "\" is not a duration (e.g. 10s, 500ms)"));
  }
  return absl::OkStatus();
}

absl::Status ParseInt(const std::string& name, const std::string& value, int& out) {
  if (!absl::SimpleAtoi(value, &out)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": \"", value, "\" is not an integer"));
  }
  return absl::OkStatus();
}

std::vector<std::string> List(const std::string& value) {
  return absl::StrSplit(value, ',', absl::SkipWhitespace());
}

weir::mirror::TableMapping& Mapping(MirrorConfig& config, const std::string& source) {
  for (weir::mirror::TableMapping& mapping : config.mirror.tables) {
    if (mapping.source == source) return mapping;
  }
  config.mirror.tables.push_back({.source = source});
  return config.mirror.tables.back();
}

weir::debezium::RowTable& Declared(MirrorConfig& config, const std::string& table) {
  for (weir::debezium::RowTable& declared : config.decoder.tables) {
    if (declared.table == table) return declared;
  }
  config.decoder.tables.push_back({.table = table});
  return config.decoder.tables.back();
}

// "schema.table.column" -> ("schema.table", "column").
absl::StatusOr<std::pair<std::string, std::string>> TableColumn(const std::string& flag,
                                                                const std::string& text) {
  const size_t dot = text.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", text, "\" is not <table>.<column>"));
  }
  return std::make_pair(text.substr(0, dot), text.substr(dot + 1));
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> flags = {
      {"brokers", "KAFKA_BROKERS", "Kafka bootstrap servers (required)",
       [](MirrorConfig& c, const std::string& v) {
         c.brokers = v;
         return absl::OkStatus();
       }},
      {"topics", "WEIR_MIRROR_TOPICS", "Debezium topics to mirror, comma-separated",
       [](MirrorConfig& c, const std::string& v) {
         c.topics = List(v);
         return absl::OkStatus();
       }},
      {"topic-prefix", "WEIR_MIRROR_TOPIC_PREFIX",
       "mirror every topic whose name starts with <prefix>. (e.g. the connector's topic.prefix); "
       "the topics are listed once, at start",
       [](MirrorConfig& c, const std::string& v) {
         c.topic_prefix = v;
         return absl::OkStatus();
       }},
      {"group-id", "WEIR_MIRROR_GROUP_ID",
       "consumer group the offsets are committed to after each checkpoint (for lag tools)",
       [](MirrorConfig& c, const std::string& v) {
         c.group_id = v;
         return absl::OkStatus();
       },
       "weir-mirror"},
      {"kafka-properties", "WEIR_MIRROR_KAFKA_PROPERTIES",
       "librdkafka properties for every client, key=value,key=value (e.g. "
       "security.protocol=SASL_SSL)",
       [](MirrorConfig& c, const std::string& v) {
         for (const std::string& pair : List(v)) {
           const size_t eq = pair.find('=');
           if (eq == std::string::npos) {
             return absl::InvalidArgumentError(
                 absl::StrCat("kafka-properties: \"", pair, "\" is not key=value"));
           }
           c.kafka_properties[pair.substr(0, eq)] = pair.substr(eq + 1);
         }
         return absl::OkStatus();
       }},
      {"bounded", "WEIR_MIRROR_BOUNDED",
       "read the topics up to their end at start, then finish (a flag, or =true/false)",
       [](MirrorConfig& c, const std::string& v) {
         c.bounded = v.empty() || v == "true" || v == "1";
         return absl::OkStatus();
       },
       "false"},
      {"postgres", "WEIR_MIRROR_POSTGRES",
       "capture straight from PostgreSQL instead of Kafka (a libpq connection string; the user "
       "needs REPLICATION and wal_level=logical): no Debezium, no Kafka",
       [](MirrorConfig& c, const std::string& v) {
         c.postgres = v;
         return absl::OkStatus();
       }},
      {"postgres-tables", "WEIR_MIRROR_POSTGRES_TABLES",
       "with --postgres: the tables, schema.table, comma-separated (read whole first, then "
       "their changes)",
       [](MirrorConfig& c, const std::string& v) {
         c.postgres_tables = List(v);
         return absl::OkStatus();
       }},
      {"postgres-slot", "WEIR_MIRROR_POSTGRES_SLOT",
       "with --postgres: the replication slot (created when missing)",
       [](MirrorConfig& c, const std::string& v) {
         c.postgres_slot = v;
         return absl::OkStatus();
       },
       "weir_mirror"},
      {"postgres-publication", "WEIR_MIRROR_POSTGRES_PUBLICATION",
       "with --postgres: the publication (created for the tables when missing)",
       [](MirrorConfig& c, const std::string& v) {
         c.postgres_publication = v;
         return absl::OkStatus();
       },
       "weir_mirror"},
      {"dead-letter-topic", "WEIR_MIRROR_DEAD_LETTER_TOPIC",
       "Kafka topic for records that cannot be mirrored (bad envelopes, values a copy cannot "
       "hold, tables that changed incompatibly); without it they fail the run",
       [](MirrorConfig& c, const std::string& v) {
         c.dead_letter_topic = v;
         return absl::OkStatus();
       }},
      {"clickhouse-url", "WEIR_MIRROR_CLICKHOUSE_URL",
       "ClickHouse HTTP interface, e.g. http://127.0.0.1:8123 (empty: no ClickHouse)",
       [](MirrorConfig& c, const std::string& v) {
         c.clickhouse_url = v;
         return absl::OkStatus();
       }},
      {"clickhouse-user", "WEIR_MIRROR_CLICKHOUSE_USER", "ClickHouse user",
       [](MirrorConfig& c, const std::string& v) {
         c.clickhouse_user = v;
         return absl::OkStatus();
       },
       "default"},
      {"clickhouse-password", "WEIR_MIRROR_CLICKHOUSE_PASSWORD", "ClickHouse password",
       [](MirrorConfig& c, const std::string& v) {
         c.clickhouse_password = v;
         return absl::OkStatus();
       }},
      {"clickhouse-database", "WEIR_MIRROR_CLICKHOUSE_DATABASE",
       "ClickHouse database of the tables (must exist)",
       [](MirrorConfig& c, const std::string& v) {
         c.clickhouse_database = v;
         return absl::OkStatus();
       },
       "default"},
      {"duckdb", "WEIR_MIRROR_DUCKDB", "DuckDB database file (empty: no DuckDB)",
       [](MirrorConfig& c, const std::string& v) {
         c.duckdb_path = v;
         return absl::OkStatus();
       }},
      {"duckdb-query", "WEIR_MIRROR_DUCKDB_QUERY",
       "print the rows of this SQL query on the --duckdb file (tab-separated, NULL as \\N) and "
       "exit (nothing is mirrored; no other flag is needed)",
       [](MirrorConfig& c, const std::string& v) {
         c.duckdb_query = v;
         return absl::OkStatus();
       }},
      {"table", "WEIR_MIRROR_TABLE",
       "source table to mirror, optionally renamed: public.orders=orders_copy (comma-separated)",
       [](MirrorConfig& c, const std::string& v) {
         for (const std::string& entry : List(v)) {
           const size_t eq = entry.find('=');
           weir::mirror::TableMapping& mapping = Mapping(c, entry.substr(0, eq));
           if (eq != std::string::npos) mapping.target = entry.substr(eq + 1);
         }
         return absl::OkStatus();
       }},
      {"only-listed", "WEIR_MIRROR_ONLY_LISTED",
       "mirror only the tables named by --table (others are skipped)",
       [](MirrorConfig& c, const std::string& v) {
         c.mirror.only_listed = v.empty() || v == "true" || v == "1";
         return absl::OkStatus();
       },
       "false"},
      {"rename-column", "WEIR_MIRROR_RENAME_COLUMN",
       "rename a column in the copy: public.orders.total=total_eur (comma-separated)",
       [](MirrorConfig& c, const std::string& v) {
         for (const std::string& entry : List(v)) {
           const size_t eq = entry.find('=');
           if (eq == std::string::npos) {
             return absl::InvalidArgumentError(
                 absl::StrCat("rename-column: \"", entry, "\" is not <table>.<column>=<name>"));
           }
           auto table_column = TableColumn("rename-column", entry.substr(0, eq));
           if (!table_column.ok()) return table_column.status();
           Mapping(c, table_column->first)
               .rename_columns.emplace_back(table_column->second, entry.substr(eq + 1));
         }
         return absl::OkStatus();
       }},
      {"exclude-column", "WEIR_MIRROR_EXCLUDE_COLUMN",
       "leave a column out of the copy: public.users.password (comma-separated)",
       [](MirrorConfig& c, const std::string& v) {
         for (const std::string& entry : List(v)) {
           auto table_column = TableColumn("exclude-column", entry);
           if (!table_column.ok()) return table_column.status();
           Mapping(c, table_column->first).exclude_columns.push_back(table_column->second);
         }
         return absl::OkStatus();
       }},
      {"decimal-column", "WEIR_MIRROR_DECIMAL_COLUMN",
       "a column that is DECIMAL(P,S) in the database but a string or double in the records "
       "(decimal.handling.mode=string/double): shop.orders.total:10:2 (comma-separated)",
       [](MirrorConfig& c, const std::string& v) {
         for (const std::string& entry : List(v)) {
           std::vector<std::string> parts = absl::StrSplit(entry, ':');
           int precision = 0;
           int scale = 0;
           if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &precision) ||
               !absl::SimpleAtoi(parts[2], &scale)) {
             return absl::InvalidArgumentError(absl::StrCat(
                 "decimal-column: \"", entry, "\" is not <table>.<column>:<precision>:<scale>"));
           }
           auto table_column = TableColumn("decimal-column", parts[0]);
           if (!table_column.ok()) return table_column.status();
           Declared(c, table_column->first)
               .columns.push_back({.name = table_column->second,
                                   .type = weir::ColumnType::kDecimal,
                                   .nullable = true,
                                   .precision = precision,
                                   .scale = scale});
         }
         return absl::OkStatus();
       }},
      {"on-incompatible", "WEIR_MIRROR_ON_INCOMPATIBLE",
       "when a table's schema changes in a way its copy cannot follow (a type, nullability or "
       "the key): fail, or dead-letter (that table's records go to --dead-letter-topic, the "
       "others go on)",
       [](MirrorConfig& c, const std::string& v) {
         if (v == "fail") {
           c.mirror.on_incompatible = weir::mirror::OnIncompatible::kFail;
         } else if (v == "dead-letter") {
           c.mirror.on_incompatible = weir::mirror::OnIncompatible::kDeadLetter;
         } else {
           return absl::InvalidArgumentError(
               absl::StrCat("on-incompatible: \"", v, "\" is neither fail nor dead-letter"));
         }
         return absl::OkStatus();
       },
       "fail"},
      {"checkpoint-uri", "WEIR_MIRROR_CHECKPOINT_URI",
       "checkpoint storage: file:///dir or s3://bucket/prefix (empty: no checkpoints)",
       [](MirrorConfig& c, const std::string& v) {
         c.checkpoint_uri = v;
         return absl::OkStatus();
       },
       "file:///tmp/weir-mirror/checkpoints"},
      {"checkpoint-interval", "WEIR_MIRROR_CHECKPOINT_INTERVAL",
       "time between checkpoints; DuckDB applies changes at each, ClickHouse inserts at least "
       "then",
       [](MirrorConfig& c, const std::string& v) {
         return ParseDuration("checkpoint-interval", v, c.checkpoint_interval);
       },
       "10s"},
      {"parallelism", "WEIR_MIRROR_PARALLELISM",
       "worker threads (partitions are spread over them; a table's truncate is ordered only "
       "with the changes of its own partition)",
       [](MirrorConfig& c, const std::string& v) {
         return ParseInt("parallelism", v, c.parallelism);
       },
       "1"},
      {"job-name", "WEIR_MIRROR_JOB_NAME", "the job's name in metrics and logs",
       [](MirrorConfig& c, const std::string& v) {
         c.job_name = v;
         return absl::OkStatus();
       },
       "weir-mirror"},
      {"status-interval", "WEIR_MIRROR_STATUS_INTERVAL", "time between status lines (stderr)",
       [](MirrorConfig& c, const std::string& v) {
         return ParseDuration("status-interval", v, c.status_interval);
       },
       "5s"},
      {"http-port", "WEIR_MIRROR_HTTP_PORT",
       "port of the metrics endpoint and dashboard (0: any free port, -1: off)",
       [](MirrorConfig& c, const std::string& v) { return ParseInt("http-port", v, c.http_port); },
       "-1"},
      {"http-address", "WEIR_MIRROR_HTTP_ADDRESS",
       "address the metrics endpoint listens on (anything but loopback shows the job to the "
       "network)",
       [](MirrorConfig& c, const std::string& v) {
         c.http_address = v;
         return absl::OkStatus();
       },
       "127.0.0.1"},
  };
  return flags;
}

// The topics whose names start with `prefix` + ".", from the broker's metadata.
absl::StatusOr<std::vector<std::string>> TopicsWithPrefix(const MirrorConfig& config) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", config.brokers.c_str(), error, sizeof(error)) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(error);
  }
  for (const auto& [key, value] : config.kafka_properties) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(error);
    }
  }
  std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> client(
      rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof(error)), &rd_kafka_destroy);
  if (!client) return absl::InvalidArgumentError(error);
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(client.get(), 1, nullptr, &metadata, 30'000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(
        absl::StrCat("listing topics at ", config.brokers, ": ", rd_kafka_err2str(err)));
  }
  std::vector<std::string> topics;
  const std::string prefix = absl::StrCat(config.topic_prefix, ".");
  for (int idx = 0; idx < metadata->topic_cnt; ++idx) {
    const std::string name = metadata->topics[idx].topic;
    if (name.starts_with(prefix) && name != config.dead_letter_topic) topics.push_back(name);
  }
  rd_kafka_metadata_destroy(metadata);
  std::sort(topics.begin(), topics.end());
  return topics;
}

}  // namespace

std::string Usage(const char* program) {
  std::string out = absl::StrCat(
      "usage: ", program,
      " (--brokers=HOST:PORT (--topics=T1,T2 | --topic-prefix=P) | --postgres=CONNINFO "
      "--postgres-tables=S.T1,S.T2) [--clickhouse-url=URL] [--duckdb=FILE] [flags]\n\n"
      "Mirrors whole tables from Debezium change topics (JsonConverter, with or without\n"
      "schemas), or straight from PostgreSQL's logical replication, into ClickHouse "
      "(ReplacingMergeTree + a <table>_live view) and/or a DuckDB\n"
      "file, exactly once, with checkpoints. Flags (environment variable, default):\n");
  for (const Flag& flag : Flags()) {
    absl::StrAppend(
        &out, "  --", flag.name, "  ", flag.help, " (", flag.env,
        flag.default_value.empty() ? "" : absl::StrCat("; default ", flag.default_value), ")\n");
  }
  absl::StrAppend(&out, "  --help  this text\n");
  return out;
}

absl::StatusOr<MirrorConfig> ParseConfig(int argc, char** argv,
                                         const std::function<const char*(const char*)>& getenv,
                                         bool* help) {
  MirrorConfig config;
  *help = false;
  for (const Flag& flag : Flags()) {
    if (const char* value = getenv(flag.env)) {
      if (absl::Status status = flag.set(config, value); !status.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("environment ", flag.env, ": ", status.message()));
      }
    }
  }
  for (int idx = 1; idx < argc; ++idx) {
    const std::string arg = argv[idx];
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
    if (eq == std::string::npos && name != "bounded" && name != "only-listed") {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (--", name, "=...)"));
    }
    if (absl::Status status = found->set(config, value); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", status.message()));
    }
  }
  if (*help) return config;
  if (!config.duckdb_query.empty()) {
    if (config.duckdb_path.empty()) {
      return absl::InvalidArgumentError("--duckdb-query needs --duckdb (the file)");
    }
    return config;
  }
  if (!config.postgres.empty()) {
    if (config.postgres_tables.empty()) {
      return absl::InvalidArgumentError("--postgres needs --postgres-tables");
    }
    if (!config.topics.empty() || !config.topic_prefix.empty()) {
      return absl::InvalidArgumentError("give --postgres or --topics/--topic-prefix, not both");
    }
    if (!config.dead_letter_topic.empty() && config.brokers.empty()) {
      return absl::InvalidArgumentError("--dead-letter-topic needs --brokers");
    }
  } else if (config.brokers.empty()) {
    return absl::InvalidArgumentError("--brokers (KAFKA_BROKERS) is required");
  } else if (config.topics.empty() == config.topic_prefix.empty()) {
    return absl::InvalidArgumentError("give either --topics or --topic-prefix");
  }
  if (config.clickhouse_url.empty() && config.duckdb_path.empty()) {
    return absl::InvalidArgumentError("give --clickhouse-url, --duckdb, or both");
  }
#ifndef WEIR_MIRROR_DUCKDB
  if (!config.duckdb_path.empty()) {
    return absl::InvalidArgumentError(
        "--duckdb: this weir-mirror was built without DuckDB (run .ci/setup-duckdb and "
        "reconfigure)");
  }
#endif
  if (config.mirror.on_incompatible == weir::mirror::OnIncompatible::kDeadLetter &&
      config.dead_letter_topic.empty()) {
    return absl::InvalidArgumentError("--on-incompatible=dead-letter needs --dead-letter-topic");
  }
  if (config.parallelism < 1) return absl::InvalidArgumentError("--parallelism must be >= 1");
  return config;
}

absl::Status QueryDuckDb(const MirrorConfig& config, std::FILE* out) {
#ifdef WEIR_MIRROR_DUCKDB
  auto rows = weir::duckdb::Query(config.duckdb_path, config.duckdb_query);
  if (!rows.ok()) return rows.status();
  for (const auto& row : *rows) {
    std::vector<std::string> fields;
    for (const auto& value : row) fields.push_back(value.value_or("\\N"));
    std::fprintf(out, "%s\n", absl::StrJoin(fields, "\t").c_str());
  }
  return absl::OkStatus();
#else
  (void)out;
  return absl::FailedPreconditionError(absl::StrCat("--duckdb-query ", config.duckdb_path,
                                                    ": weir-mirror was built without DuckDB"));
#endif
}

absl::Status RunMirror(const MirrorConfig& config, const std::atomic<bool>& stop) {
  std::vector<std::string> topics = config.topics;
  if (!config.postgres.empty()) topics = config.postgres_tables;
  if (!config.topic_prefix.empty()) {
    absl::StatusOr<std::vector<std::string>> found = TopicsWithPrefix(config);
    if (!found.ok()) return found.status();
    if (found->empty()) {
      return absl::NotFoundError(
          absl::StrCat("no topic starts with \"", config.topic_prefix, ".\" at ", config.brokers));
    }
    topics = *std::move(found);
  }
  weir::PipelineOptions options;
  options.parallelism = config.parallelism;
  options.job_name = config.job_name;
  options.http_port = config.http_port;
  options.http_address = config.http_address;
  if (!config.checkpoint_uri.empty()) {
    options.checkpoints.interval = config.checkpoint_interval;
    options.checkpoints.storage_uri = config.checkpoint_uri;
  }
  weir::Pipeline pipeline(options);
  const weir::kafka::ClientOptions client{.brokers = config.brokers,
                                          .properties = config.kafka_properties};
  std::shared_ptr<weir::DeadLetterQueue> dead_letters;
  if (!config.dead_letter_topic.empty()) {
    dead_letters =
        weir::kafka::DeadLetterTopic({.client = client, .topic = config.dead_letter_topic});
  }
  // The changes, and how many were read and dead-lettered (for the status line).
  std::function<int64_t()> records_read;
  std::function<int64_t()> source_letters = [] { return int64_t{0}; };
  auto changes = [&]() -> weir::Stream<weir::debezium::RowChange> {
    if (!config.postgres.empty()) {
      auto source =
          weir::postgres::RowCdcSource::Create({.connection = config.postgres,
                                                .slot = config.postgres_slot,
                                                .publication = config.postgres_publication,
                                                .create_publication = true,
                                                .tables = config.postgres_tables});
      records_read = [source] {
        const weir::postgres::CdcSourceStats stats = source->Stats();
        return stats.snapshot_rows + stats.changes;
      };
      return pipeline.Source(source)
          .Uid("postgres-changes")
          .Name("postgres changes")
          .FlatMap<weir::debezium::RowChange>(weir::postgres::ToMirrorChanges)
          .Uid("postgres-rows")
          .Name("postgres rows");
    }
    auto source = weir::kafka::Source<weir::debezium::RowChange>(
        {.client = client,
         .topics = topics,
         .group_id = config.group_id,
         .deserializer = weir::kafka::DebeziumRowDeserializer(config.decoder),
         .bounded = config.bounded,
         .dead_letters = dead_letters});
    records_read = [source] { return source->Stats().records; };
    source_letters = [source] { return source->Stats().dead_letters; };
    return pipeline.Source(source).Uid("debezium-changes").Name("debezium changes");
  }();
  weir::mirror::MirrorOptions mirror = config.mirror;
  mirror.dead_letters = dead_letters;
  auto clickhouse_stats = std::make_shared<weir::clickhouse::MirrorStats>();
  if (!config.clickhouse_url.empty()) {
    changes
        .Sink(weir::clickhouse::MirrorSink({.connection = {.url = config.clickhouse_url,
                                                           .user = config.clickhouse_user,
                                                           .password = config.clickhouse_password,
                                                           .database = config.clickhouse_database},
                                            .mirror = mirror},
                                           clickhouse_stats))
        .Uid("clickhouse-mirror")
        .Name("clickhouse mirror");
  }
#ifdef WEIR_MIRROR_DUCKDB
  auto duckdb_stats = std::make_shared<weir::duckdb::MirrorStats>();
  if (!config.duckdb_path.empty()) {
    changes
        .Sink(
            weir::duckdb::MirrorSink({.path = config.duckdb_path, .mirror = mirror}, duckdb_stats))
        .Uid("duckdb-mirror")
        .Name("duckdb mirror");
  }
#endif
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();
  std::fprintf(stderr,
               "weir-mirror: running (%zu %s: %s; ClickHouse %s; DuckDB %s; checkpoints %s "
               "every %s, from checkpoint %lld)\n",
               topics.size(), config.postgres.empty() ? "topics" : "PostgreSQL tables",
               absl::StrJoin(topics, ",").c_str(),
               config.clickhouse_url.empty() ? "off" : config.clickhouse_url.c_str(),
               config.duckdb_path.empty() ? "off" : config.duckdb_path.c_str(),
               config.checkpoint_uri.empty() ? "off" : config.checkpoint_uri.c_str(),
               absl::FormatDuration(config.checkpoint_interval).c_str(),
               static_cast<long long>(job->restored_checkpoint()));
  if (job->http_port() >= 0) {
    std::fprintf(stderr, "weir-mirror: dashboard at http://%s:%d/\n", config.http_address.c_str(),
                 job->http_port());
  }
  auto last = std::chrono::steady_clock::now();
  int64_t last_records = 0;
  bool stopping = false;
  const auto status_line = [&](double elapsed) {
    const int64_t records = records_read();
    const double unread = job->Metrics().Sum("weir_kafka_consumer_lag_records");
    int64_t checkpoint = job->last_completed_checkpoint();
    if (checkpoint == 0) checkpoint = job->restored_checkpoint();
    std::string targets;
    int64_t letters = source_letters() + clickhouse_stats->dead_letters.load();
    if (!config.clickhouse_url.empty()) {
      absl::StrAppend(&targets, ", ClickHouse ", clickhouse_stats->rows.load(), " rows ",
                      clickhouse_stats->deletes.load(), " deletes ",
                      clickhouse_stats->truncates.load(), " truncates");
    }
#ifdef WEIR_MIRROR_DUCKDB
    if (!config.duckdb_path.empty()) {
      absl::StrAppend(&targets, ", DuckDB ", duckdb_stats->checkpoints_applied.load(),
                      " checkpoints applied (", duckdb_stats->rows_upserted.load(), " upserts ",
                      duckdb_stats->rows_deleted.load(), " deletes)");
      letters += duckdb_stats->dead_letters.load();
    }
#endif
    std::fprintf(stderr,
                 "weir-mirror: %.0f changes/s, %lld read, lag %.0f unread, last checkpoint "
                 "%lld%s, dead letters %lld\n",
                 elapsed > 0 ? static_cast<double>(records - last_records) / elapsed : 0.0,
                 static_cast<long long>(records), unread, static_cast<long long>(checkpoint),
                 targets.c_str(), static_cast<long long>(letters));
    last_records = records;
  };
  while (!job->done()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (stop.load() && !stopping) {
      std::fprintf(stderr, "weir-mirror: stopping (final checkpoint)\n");
      job->Stop();
      stopping = true;
    }
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - last).count();
    if (elapsed < absl::ToDoubleSeconds(config.status_interval)) continue;
    status_line(elapsed);
    last = now;
  }
  absl::Status status = job->Wait();
  status_line(0);
  std::fprintf(stderr, "weir-mirror: %s\n", status.ok() ? "finished" : status.ToString().c_str());
  return status;
}

}  // namespace mirror_app
