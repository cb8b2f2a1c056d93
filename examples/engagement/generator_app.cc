#include "examples/engagement/generator_app.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "examples/engagement/change_sink.h"
#include "examples/engagement/paced_change_source.h"
#include "examples/engagement/postgres_writer.h"
#include "lib/connectors/kafka/client.h"
#include "weir/connectors/kafka_sink.h"
#include "weir/pipeline.h"

namespace engagement {
namespace {

// ---------------------------------------------------------------------------
// Flags. One table drives parsing, the environment and --help.

using Setter = std::function<absl::Status(GeneratorAppOptions&, const std::string& value)>;

struct Flag {
  const char* name;        // without "--"
  const char* env;         // nullptr: flag only
  const char* value_name;  // nullptr: a boolean flag (--name, --name=true|false)
  const char* help;
  Setter set;
};

absl::Status Bad(absl::string_view what, absl::string_view value, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": bad value '", value, "' (expected ", expected, ")"));
}

absl::StatusOr<bool> ParseBool(const std::string& text) {
  const std::string value = absl::AsciiStrToLower(text);
  if (value == "true" || value == "1" || value == "yes" || value == "on") return true;
  if (value == "false" || value == "0" || value == "no" || value == "off") return false;
  return absl::InvalidArgumentError("");
}

// Records per minute: "max" or 0 (unpaced), N, N/min or N/s.
absl::StatusOr<double> ParseRate(const std::string& text) {
  std::string value = absl::AsciiStrToLower(text);
  if (value == "max") return 0.0;
  double factor = 1;
  if (value.ends_with("/s")) {
    factor = 60;
    value.resize(value.size() - 2);
  } else if (value.ends_with("/min")) {
    value.resize(value.size() - 4);
  }
  double rate = 0;
  if (!absl::SimpleAtod(value, &rate) || !std::isfinite(rate) || rate < 0) {
    return absl::InvalidArgumentError("");
  }
  return rate * factor;
}

// "30" (seconds) or an absl duration ("500ms", "2s", "1m").
absl::StatusOr<absl::Duration> ParseDurationValue(const std::string& text) {
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds) && std::isfinite(seconds) && seconds >= 0) {
    return absl::Seconds(seconds);
  }
  absl::Duration duration;
  if (absl::ParseDuration(text, &duration) && duration >= absl::ZeroDuration()) return duration;
  return absl::InvalidArgumentError("");
}

// "now", epoch milliseconds, or RFC 3339.
absl::StatusOr<std::optional<int64_t>> ParseStartTime(const std::string& text) {
  if (text == "now") return std::optional<int64_t>();
  int64_t ms = 0;
  if (absl::SimpleAtoi(text, &ms)) return std::optional<int64_t>(ms);
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
    return std::optional<int64_t>(absl::ToUnixMillis(time));
  }
  return absl::InvalidArgumentError("");
}

template <class T>
Setter Integer(T GeneratorAppOptions::*field, T min) {
  return [field, min](GeneratorAppOptions& options, const std::string& value) {
    T parsed{};
    if (!absl::SimpleAtoi(value, &parsed) || parsed < min) {
      return absl::InvalidArgumentError(absl::StrCat("an integer >= ", min));
    }
    options.*field = parsed;
    return absl::OkStatus();
  };
}

Setter Share(double GeneratorAppOptions::*field) {
  return [field](GeneratorAppOptions& options, const std::string& value) {
    double parsed = 0;
    if (!absl::SimpleAtod(value, &parsed) || !(parsed >= 0 && parsed <= 1)) {
      return absl::InvalidArgumentError("a number in [0, 1]");
    }
    options.*field = parsed;
    return absl::OkStatus();
  };
}

Setter Boolean(bool GeneratorAppOptions::*field) {
  return [field](GeneratorAppOptions& options, const std::string& value) {
    absl::StatusOr<bool> parsed = ParseBool(value);
    if (!parsed.ok()) return absl::InvalidArgumentError("true or false");
    options.*field = *parsed;
    return absl::OkStatus();
  };
}

Setter Text(std::string GeneratorAppOptions::*field) {
  return [field](GeneratorAppOptions& options, const std::string& value) {
    options.*field = value;
    return absl::OkStatus();
  };
}

Setter Duration(absl::Duration GeneratorAppOptions::*field) {
  return [field](GeneratorAppOptions& options, const std::string& value) {
    absl::StatusOr<absl::Duration> parsed = ParseDurationValue(value);
    if (!parsed.ok()) return absl::InvalidArgumentError("seconds, or a duration like 500ms, 2m");
    options.*field = *parsed;
    return absl::OkStatus();
  };
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag>* flags = new std::vector<Flag>{
      // Kafka
      {"brokers", "KAFKA_BROKERS", "HOST:PORT[,...]",
       "Kafka bootstrap servers. Required unless --no-kafka.", Text(&GeneratorAppOptions::brokers)},
      {"topic-prefix", "TOPIC_PREFIX", "PREFIX",
       "Debezium's topic.prefix: the topics are PREFIX.public.content and\n"
       "PREFIX.public.engagement_events. Default: engagement",
       Text(&GeneratorAppOptions::topic_prefix)},
      {"create-topics", nullptr, "N",
       "Create missing topics with N partitions (replication: the broker's default).\n"
       "Default: 0 (the topics must exist, or the broker auto-creates them)",
       Integer(&GeneratorAppOptions::create_topics, 0)},
      {"kafka-property", nullptr, "NAME=VALUE",
       "A librdkafka producer property (repeatable), e.g. security.protocol=SASL_SSL.\n"
       "The generator's defaults: partitioner=murmur2_random (Kafka Connect's),\n"
       "message.timeout.ms=30000 (an undeliverable record fails the run after 30 s),\n"
       "linger.ms=100 (message sets of ~40 records per partition at the default rate).",
       [](GeneratorAppOptions& options, const std::string& value) {
         const size_t equals = value.find('=');
         if (equals == std::string::npos || equals == 0) {
           return absl::InvalidArgumentError("NAME=VALUE");
         }
         options.kafka_properties[value.substr(0, equals)] = value.substr(equals + 1);
         return absl::OkStatus();
       }},
      {"connect-timeout", nullptr, "DURATION",
       "How long to wait for the brokers at start. Default: 10s",
       Duration(&GeneratorAppOptions::connect_timeout)},
      {"no-kafka", nullptr, nullptr,
       "Do not produce to Kafka: only write to PostgreSQL (--postgres), for Debezium\n"
       "to capture. (With Debezium running, producing too would double the topics.)",
       Boolean(&GeneratorAppOptions::no_kafka)},
      // Pacing
      {"rate", "GENERATION_RATE", "PER_MINUTE",
       "Records per minute (also N/s, N/min); 0 or max: as fast as possible.\n"
       "Default: 200000",
       [](GeneratorAppOptions& options, const std::string& value) {
         absl::StatusOr<double> rate = ParseRate(value);
         if (!rate.ok()) return absl::InvalidArgumentError("records per minute, N/s, 0 or max");
         options.records_per_minute = *rate;
         return absl::OkStatus();
       }},
      {"burst-mode", "BURST_MODE", nullptr,
       "Every --burst-interval, emit --burst-count records as fast as possible on top\n"
       "of the rate. Default: false",
       Boolean(&GeneratorAppOptions::burst_mode)},
      {"burst-count", "BURST_COUNT", "N", "Records per burst. Default: 20000",
       Integer(&GeneratorAppOptions::burst_count, int64_t{0})},
      {"burst-interval", "BURST_INTERVAL_SECONDS", "DURATION",
       "Time between bursts (the first one after one interval). Default: 60s",
       Duration(&GeneratorAppOptions::burst_interval)},
      {"total", nullptr, "N", "Exit after N records (0: no limit). Default: 0",
       Integer(&GeneratorAppOptions::total, int64_t{0})},
      {"duration", nullptr, "DURATION", "Exit after this long. Default: no limit",
       Duration(&GeneratorAppOptions::duration)},
      // Data
      {"seed", nullptr, "N",
       "Random seed: the same seed and --start-time give the same records. Default: 1",
       Integer(&GeneratorAppOptions::seed, uint64_t{0})},
      {"initial-contents", nullptr, "N",
       "Content rows of the initial snapshot (op r). Default: 1000",
       Integer(&GeneratorAppOptions::initial_contents, 1)},
      {"with-schema", nullptr, nullptr,
       "Debezium envelopes with the JsonConverter schema ({\"schema\", \"payload\"}).\n"
       "Default: false",
       Boolean(&GeneratorAppOptions::with_schema)},
      {"start-time", nullptr, "TIME",
       "Event time of the first record: epoch ms, RFC 3339 or now. Event time then\n"
       "advances at the rate (3333/s when unpaced). Default: now",
       [](GeneratorAppOptions& options, const std::string& value) {
         absl::StatusOr<std::optional<int64_t>> start = ParseStartTime(value);
         if (!start.ok()) return absl::InvalidArgumentError("epoch ms, RFC 3339 or now");
         options.start_ms = *start;
         return absl::OkStatus();
       }},
      {"zipf-exponent", nullptr, "X",
       "Popularity skew of events over content (0: uniform). Default: 1.1",
       [](GeneratorAppOptions& options, const std::string& value) {
         double parsed = 0;
         if (!absl::SimpleAtod(value, &parsed) || !(parsed >= 0 && parsed < 10)) {
           return absl::InvalidArgumentError("a number in [0, 10)");
         }
         options.zipf_exponent = parsed;
         return absl::OkStatus();
       }},
      {"content-change-share", nullptr, "X",
       "Share of records that create, update or delete content. Default: 0.002",
       Share(&GeneratorAppOptions::content_change_share)},
      // PostgreSQL
      {"postgres", "POSTGRES_URL", "CONNINFO",
       "Also write the rows into this PostgreSQL (libpq connection string or\n"
       "postgresql:// URI), creating the tables of schema.sql if missing.",
       Text(&GeneratorAppOptions::postgres)},
      {"postgres-reset", nullptr, nullptr,
       "Empty both tables first (TRUNCATE ... RESTART IDENTITY). Default: false",
       Boolean(&GeneratorAppOptions::postgres_reset)},
      {"postgres-batch", nullptr, "N",
       "Records per PostgreSQL transaction, at most (a transaction also commits 200 ms\n"
       "after its first record). Default: 5000",
       Integer(&GeneratorAppOptions::postgres_batch, int64_t{1})},
      // Output
      {"dry-run", nullptr, nullptr,
       "Generate and pace, but write nowhere (no Kafka, no PostgreSQL): measures the\n"
       "generator itself. Default: false",
       Boolean(&GeneratorAppOptions::dry_run)},
      {"status-interval", nullptr, "DURATION",
       "How often to log a status line to stderr (0: never). Default: 5s",
       Duration(&GeneratorAppOptions::status_interval)},
      {"help", nullptr, nullptr, "This text.", Boolean(&GeneratorAppOptions::help)},
  };
  return *flags;
}

const Flag* FindFlag(absl::string_view name) {
  for (const Flag& flag : Flags()) {
    if (name == flag.name) return &flag;
  }
  return nullptr;
}

std::string NoBrokersMessage(const std::string& prefix) {
  return absl::StrCat(
      "no Kafka brokers given: pass --brokers=HOST:PORT or set KAFKA_BROKERS.\n"
      "For a local broker, start weir's development broker (librdkafka's mock cluster, built\n"
      "with the project as tools/weir-kafka-dev) in another terminal:\n"
      "  build/release/tools/weir-kafka-dev ",
      prefix, ".public.content:4 ", prefix,
      ".public.engagement_events:8\n"
      "and pass the address it prints on its first line (--brokers=127.0.0.1:PORT).\n"
      "To write only to PostgreSQL, use --no-kafka with --postgres.");
}

absl::Status Validate(const GeneratorAppOptions& options) {
  if (options.dry_run) {
    // Writes nowhere: no brokers or PostgreSQL needed.
  } else if (options.no_kafka) {
    if (options.postgres.empty()) {
      return absl::InvalidArgumentError("--no-kafka without --postgres: nothing to write to");
    }
  } else if (options.brokers.empty()) {
    return absl::InvalidArgumentError(NoBrokersMessage(options.topic_prefix));
  }
  if (options.topic_prefix.empty()) {
    return absl::InvalidArgumentError("--topic-prefix / TOPIC_PREFIX must not be empty");
  }
  if (options.burst_mode && options.burst_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--burst-interval must be positive");
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--connect-timeout must be positive");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Kafka topics.

std::string Plural(int64_t n, absl::string_view word) {
  return absl::StrCat(n, " ", word, n == 1 ? "" : "s");
}

// Checks that the brokers answer and the topics exist (creating them with
// --create-topics), so that a wrong address or a missing topic fails at once
// with a clear message instead of after message.timeout.ms.
absl::Status PrepareTopics(const GeneratorAppOptions& options,
                           const std::vector<std::string>& topics, std::FILE* log) {
  namespace rk = weir::kafka::internal;
  // With --create-topics, ask without auto-creating them (a broker would
  // give them its default partition count).
  std::map<std::string, std::string> defaults;
  if (options.create_topics > 0) defaults["allow.auto.create.topics"] = "false";
  absl::StatusOr<rk::ConfPtr> conf =
      rk::MakeConf({.brokers = options.brokers, .properties = options.kafka_properties}, defaults,
                   "engagement-generator");
  if (!conf.ok()) return conf.status();
  absl::StatusOr<rk::HandlePtr> handle =
      rk::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "engagement-generator");
  if (!handle.ok()) return handle.status();
  rd_kafka_t* producer = handle->get();
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options.connect_timeout));
  std::vector<std::string> missing;
  for (const std::string& topic : topics) {
    const rd_kafka_metadata_t* raw = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer, topic.c_str(), nullptr);
    const rd_kafka_resp_err_t err = rd_kafka_metadata(producer, 0, rkt, &raw, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      absl::Status status = rk::ToStatus(
          err, absl::StrCat("cannot reach the Kafka brokers at ", options.brokers, " within ",
                            absl::FormatDuration(options.connect_timeout)));
      return absl::Status(status.code(),
                          absl::StrCat(status.message(),
                                       ". Is the broker running and the address right? (For a "
                                       "local broker, run weir-kafka-dev: see --help.)"));
    }
    rk::MetadataPtr metadata(raw);
    const rd_kafka_resp_err_t topic_err =
        metadata->topic_cnt == 1 ? metadata->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (topic_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        topic_err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
      missing.push_back(topic);
    } else if (topic_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(log, "engagement-generator: topic %s: %s\n", topic.c_str(),
                   Plural(metadata->topics[0].partition_cnt, "partition").c_str());
    } else if (topic_err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {  // being created
      return rk::ToStatus(topic_err, absl::StrCat("topic ", topic));
    }
  }
  if (missing.empty()) return absl::OkStatus();
  if (options.create_topics <= 0) {
    return absl::NotFoundError(absl::StrCat(
        "topic ", missing.front(), " does not exist at ", options.brokers,
        ": create it, or pass --create-topics=N to create the missing topics with N partitions"));
  }
  // rd_kafka_CreateTopics (the admin API works on a producer handle).
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  char errstr[512];
  for (const std::string& topic : missing) {
    new_topics.push_back(
        rd_kafka_NewTopic_new(topic.c_str(), options.create_topics, -1, errstr, sizeof(errstr)));
    if (new_topics.back() == nullptr) {
      new_topics.pop_back();
      rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
      return absl::InvalidArgumentError(absl::StrCat("topic ", topic, ": ", errstr));
    }
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(producer);
  rd_kafka_AdminOptions_t* admin = rd_kafka_AdminOptions_new(producer, RD_KAFKA_ADMIN_OP_ANY);
  rd_kafka_AdminOptions_set_operation_timeout(admin, timeout_ms, errstr, sizeof(errstr));
  rd_kafka_CreateTopics(producer, new_topics.data(), new_topics.size(), admin, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms + 5000);
  absl::Status status = absl::OkStatus();
  if (event == nullptr) {
    status = absl::UnavailableError("creating the topics: no answer from the brokers");
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = rk::ToStatus(
        rd_kafka_event_error(event),
        absl::StrCat("creating the topics (", rd_kafka_event_error_string(event), ")"));
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t idx = 0; idx < count && status.ok(); ++idx) {
      const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[idx]);
      const char* name = rd_kafka_topic_result_name(results[idx]);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        std::fprintf(
            log, "engagement-generator: topic %s: %s\n", name,
            err == RD_KAFKA_RESP_ERR_NO_ERROR
                ? absl::StrCat("created with ", Plural(options.create_topics, "partition")).c_str()
                : "exists");
      } else {
        const char* message = rd_kafka_topic_result_error_string(results[idx]);
        status =
            rk::ToStatus(err, absl::StrCat("creating topic ", name, message == nullptr ? "" : ": ",
                                           message == nullptr ? "" : message));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(admin);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
  return status;
}

weir::kafka::SinkOptions<GeneratedRecord> KafkaOptions(const GeneratorAppOptions& options,
                                                       const std::string& topic) {
  weir::kafka::SinkOptions<GeneratedRecord> sink;
  sink.client.brokers = options.brokers;
  // Kafka Connect's partitioner (Java's murmur2), so keys land in the
  // partitions Debezium would write them to. Message sets of many records:
  // a broker that finds a fetch offset by walking a partition's message sets
  // (librdkafka's mock cluster, weir-kafka-dev) slows down with their number,
  // not with the number of records.
  sink.client.properties = {
      {"partitioner", "murmur2_random"}, {"message.timeout.ms", "30000"}, {"linger.ms", "100"}};
  for (const auto& [name, value] : options.kafka_properties) sink.client.properties[name] = value;
  sink.topic = topic;
  sink.serializer = [](const GeneratedRecord& record, std::string& value) {
    value = *record.value;
    return absl::OkStatus();
  };
  sink.key = [](const GeneratedRecord& record) -> const std::string& { return record.key; };
  sink.tombstone = [](const GeneratedRecord& record) { return !record.value.has_value(); };
  sink.flush_timeout = absl::Seconds(60);
  return sink;
}

// ---------------------------------------------------------------------------
// Status lines.

std::string RateText(double records_per_minute) {
  if (records_per_minute <= 0) return "max";
  return absl::StrFormat("%.0f/min (%.0f/s)", records_per_minute, records_per_minute / 60);
}

std::string StatusLine(const GeneratorProgress& progress, absl::Duration elapsed,
                       double recent_rate, double target_per_second) {
  std::string line = absl::StrFormat("engagement-generator: %6.1fs %lld records (%.0f/s",
                                     absl::ToDoubleSeconds(elapsed),
                                     static_cast<long long>(progress.records.load()), recent_rate);
  if (target_per_second > 0) absl::StrAppendFormat(&line, ", target %.0f/s", target_per_second);
  absl::StrAppendFormat(
      &line, "): %lld events, content r/c/u/d %lld/%lld/%lld/%lld + %lld tombstones, %lld live",
      static_cast<long long>(progress.events.load()),
      static_cast<long long>(progress.snapshot_rows.load()),
      static_cast<long long>(progress.creates.load()),
      static_cast<long long>(progress.updates.load()),
      static_cast<long long>(progress.deletes.load()),
      static_cast<long long>(progress.tombstones.load()),
      static_cast<long long>(progress.live_content.load()));
  if (progress.bursts.load() > 0) {
    absl::StrAppend(&line, ", ", Plural(progress.bursts.load(), "burst"));
  }
  if (progress.behind.load() > 0) {
    absl::StrAppend(&line, "; cannot keep up: ", progress.behind.load(),
                    " records behind the schedule so far");
  }
  return line;
}

int64_t ContentRecords(const GeneratorProgress& progress) {
  return progress.snapshot_rows.load() + progress.creates.load() + progress.updates.load() +
         progress.deletes.load() + progress.tombstones.load();
}

}  // namespace

std::optional<std::string> SystemEnvironment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

absl::StatusOr<GeneratorAppOptions> ParseGeneratorArgs(const std::vector<std::string>& args,
                                                       const Environment& env) {
  GeneratorAppOptions options;
  // Environment first, then flags over it.
  for (const Flag& flag : Flags()) {
    if (flag.env == nullptr) continue;
    std::optional<std::string> value = env(flag.env);
    if (!value || value->empty()) continue;
    absl::Status status = flag.set(options, *value);
    if (!status.ok()) return Bad(flag.env, *value, status.message());
  }
  for (size_t idx = 0; idx < args.size(); ++idx) {
    const std::string& arg = args[idx];
    if (arg == "-h") {
      options.help = true;
      continue;
    }
    if (!arg.starts_with("--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    const size_t equals = arg.find('=');
    const std::string name =
        arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    std::string value;
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else if (flag->value_name == nullptr) {
      value = "true";
    } else if (idx + 1 < args.size()) {
      value = args[++idx];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (", flag->value_name, ")"));
    }
    absl::Status status = flag->set(options, value);
    if (!status.ok()) return Bad(absl::StrCat("--", name), value, status.message());
  }
  if (options.help) return options;
  absl::Status status = Validate(options);
  if (!status.ok()) return status;
  return options;
}

std::string GeneratorUsage() {
  std::string text =
      "usage: engagement-generator [flags]\n"
      "\n"
      "Produces Debezium change events of the engagement tables (public.content and\n"
      "public.engagement_events) to Kafka at a steady rate: a snapshot of the content,\n"
      "then engagement events with skewed popularity while content is created, updated\n"
      "and deleted (a delete is followed by a tombstone). Optionally writes the same rows\n"
      "to PostgreSQL. Flags win over environment variables, which win over defaults.\n"
      "Logs a status line to stderr every few seconds and a summary at the end; exits 0\n"
      "once every record is acknowledged, 1 on errors (Kafka, PostgreSQL), 2 on bad flags.\n"
      "SIGINT/SIGTERM stop it cleanly (everything sent is flushed first).\n"
      "\n";
  for (const Flag& flag : Flags()) {
    std::string head = absl::StrCat("  --", flag.name);
    if (flag.value_name != nullptr) absl::StrAppend(&head, "=", flag.value_name);
    if (flag.env != nullptr) absl::StrAppend(&head, "   (env ", flag.env, ")");
    absl::StrAppend(&text, head, "\n");
    absl::string_view help = flag.help;
    while (!help.empty()) {
      const size_t newline = help.find('\n');
      absl::StrAppend(&text, "      ", help.substr(0, newline), "\n");
      if (newline == absl::string_view::npos) break;
      help.remove_prefix(newline + 1);
    }
  }
  absl::StrAppend(
      &text,
      "\n"
      "Boolean flags take no value (--with-schema) or =true/false; their variables\n"
      "true/false, 1/0, yes/no or on/off. Durations: seconds (30) or 500ms, 2m, 1h.\n"
      "\n"
      "A local broker to try it: weir's development broker (librdkafka's mock cluster,\n"
      "built with the project; it keeps only about the last 5 MiB per partition):\n"
      "  build/release/tools/weir-kafka-dev engagement.public.content:4 \\\n"
      "      engagement.public.engagement_events:8\n"
      "prints its address on its first line; pass it as --brokers.\n"
      "\n"
      "Examples:\n"
      "  engagement-generator --brokers=127.0.0.1:9092\n"
      "  GENERATION_RATE=600000 BURST_MODE=true BURST_COUNT=50000 KAFKA_BROKERS=kafka:9092 \\\n"
      "      engagement-generator\n"
      "  engagement-generator --brokers=127.0.0.1:9092 --rate=max --total=1000000\n"
      "  engagement-generator --no-kafka --postgres='host=localhost dbname=app user=app'\n");
  return text;
}

GeneratorOptions ToGeneratorOptions(const GeneratorAppOptions& options, int64_t now_ms) {
  GeneratorOptions generator;
  generator.seed = options.seed;
  generator.initial_contents = options.initial_contents;
  generator.zipf_exponent = options.zipf_exponent;
  generator.content_change_share = options.content_change_share;
  generator.start_ms = options.start_ms.value_or(now_ms);
  // Event time advances like the wall clock at the target rate.
  if (options.records_per_minute > 0)
    generator.records_per_second = options.records_per_minute / 60;
  generator.envelope.server = options.topic_prefix;
  generator.envelope.with_schema = options.with_schema;
  return generator;
}

absl::Status RunGenerator(const GeneratorAppOptions& options, const std::atomic<int>& stop,
                          std::FILE* log) {
  const absl::Time program_start = absl::Now();
  const GeneratorOptions generator = ToGeneratorOptions(options, absl::ToUnixMillis(program_start));
  const std::string content_topic = ContentTopic(generator.envelope);
  const std::string events_topic = EngagementTopic(generator.envelope);
  const bool kafka = !options.no_kafka && !options.dry_run;
  const bool postgres = !options.postgres.empty() && !options.dry_run;

  std::string target = absl::StrCat("rate ", RateText(options.records_per_minute));
  if (options.burst_mode && options.burst_count > 0) {
    absl::StrAppend(&target, ", bursts of ", options.burst_count, " every ",
                    absl::FormatDuration(options.burst_interval));
  }
  if (options.total > 0) absl::StrAppend(&target, ", ", options.total, " records");
  if (options.duration != absl::InfiniteDuration()) {
    absl::StrAppend(&target, ", for ", absl::FormatDuration(options.duration));
  }
  std::fprintf(log, "engagement-generator: %s%s%s; %s; seed %llu, start time %s%s\n",
               kafka ? absl::StrCat("producing to ", content_topic, " and ", events_topic, " at ",
                                    options.brokers)
                           .c_str()
                     : "",
               kafka && postgres ? " and " : "",
               postgres ? "writing to PostgreSQL" : (kafka ? "" : "dry run (writing nowhere)"),
               target.c_str(), static_cast<unsigned long long>(options.seed),
               ZonedTimestamp(generator.start_ms).c_str(),
               options.with_schema ? ", envelopes with schema" : "");
  std::fflush(log);

  if (kafka) {
    absl::Status status = PrepareTopics(options, {content_topic, events_topic}, log);
    if (!status.ok()) return status;
  }

  auto progress = std::make_shared<GeneratorProgress>();
  PacedSourceOptions source_options;
  source_options.generator = generator;
  if (options.records_per_minute > 0) {
    source_options.pacer.records_per_second = options.records_per_minute / 60;
  }
  if (options.burst_mode) {
    source_options.pacer.burst_count = options.burst_count;
    source_options.pacer.burst_interval = options.burst_interval;
  }
  source_options.total = options.total;
  source_options.duration = options.duration;

  // Parallelism 1: one writer per topic keeps every key's order (and
  // PostgreSQL gets the changes in the generator's order).
  weir::PipelineOptions pipeline_options;
  pipeline_options.parallelism = 1;
  pipeline_options.job_name = "engagement-generator";
  weir::Pipeline pipeline(pipeline_options);
  std::shared_ptr<weir::Sink<GeneratedRecord>> content_sink;
  std::shared_ptr<weir::Sink<GeneratedRecord>> events_sink;
  std::shared_ptr<weir::Sink<GeneratedRecord>> postgres_sink;
  if (kafka) {
    content_sink = weir::kafka::Sink<GeneratedRecord>(KafkaOptions(options, content_topic));
    events_sink = weir::kafka::Sink<GeneratedRecord>(KafkaOptions(options, events_topic));
  }
  if (postgres) {
    postgres_sink = std::make_shared<PostgresSink>(
        PostgresWriterOptions{.conninfo = options.postgres,
                              .reset = options.postgres_reset,
                              .batch_records = options.postgres_batch});
  }
  pipeline.Source(std::make_shared<PacedChangeSource>(source_options, progress))
      .Name("generator")
      .Sink(std::make_shared<ChangeSink>(content_sink, events_sink, postgres_sink))
      .Name("out");
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();

  const absl::Time start = absl::Now();
  absl::Time next_status = start + options.status_interval;
  absl::Time last_time = start;
  int64_t last_records = 0;
  int stops_handled = 0;
  while (!job->done()) {
    absl::SleepFor(absl::Milliseconds(20));
    const int stops = stop.load();
    if (stops >= 1 && stops_handled < 1) {
      std::fprintf(log, "engagement-generator: stopping (flushing what was sent)...\n");
      std::fflush(log);
      job->Stop();
      stops_handled = 1;
    }
    if (stops >= 2 && stops_handled < 2) {
      job->Cancel();
      stops_handled = 2;
    }
    const absl::Time now = absl::Now();
    if (options.status_interval > absl::ZeroDuration() && now >= next_status) {
      const int64_t records_now = progress->records.load();
      const double recent = static_cast<double>(records_now - last_records) /
                            std::max(1e-9, absl::ToDoubleSeconds(now - last_time));
      std::fprintf(
          log, "%s\n",
          StatusLine(*progress, now - start, recent, source_options.pacer.records_per_second)
              .c_str());
      std::fflush(log);
      last_records = records_now;
      last_time = now;
      next_status += options.status_interval;
      if (next_status < now) next_status = now + options.status_interval;
    }
  }
  absl::Status status = job->Wait();
  if (!status.ok()) return status;

  const absl::Duration elapsed = absl::Now() - start;
  const int64_t records_total = progress->records.load();
  std::string summary = absl::StrFormat(
      "engagement-generator: done: %lld records in %.1fs (%.0f/s): %lld snapshot rows, %lld "
      "creates, %lld updates, %lld deletes + %lld tombstones, %lld events; %lld content live",
      static_cast<long long>(records_total), absl::ToDoubleSeconds(elapsed),
      static_cast<double>(records_total) / std::max(1e-9, absl::ToDoubleSeconds(elapsed)),
      static_cast<long long>(progress->snapshot_rows.load()),
      static_cast<long long>(progress->creates.load()),
      static_cast<long long>(progress->updates.load()),
      static_cast<long long>(progress->deletes.load()),
      static_cast<long long>(progress->tombstones.load()),
      static_cast<long long>(progress->events.load()),
      static_cast<long long>(progress->live_content.load()));
  if (progress->bursts.load() > 0) {
    absl::StrAppend(&summary, "; ", progress->bursts.load(), " bursts");
  }
  if (progress->behind.load() > 0) {
    absl::StrAppend(&summary, "; fell ", progress->behind.load(),
                    " records behind the target rate");
  }
  if (kafka) {
    absl::StrAppend(&summary,
                    "\nengagement-generator: Kafka acknowledged all: ", ContentRecords(*progress),
                    " to ", content_topic, ", ", progress->events.load(), " to ", events_topic);
  }
  if (postgres) {
    absl::StrAppend(&summary, "\nengagement-generator: PostgreSQL: all rows committed");
  }
  std::fprintf(log, "%s\n", summary.c_str());
  std::fflush(log);
  return absl::OkStatus();
}

}  // namespace engagement
