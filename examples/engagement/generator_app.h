// The engagement-generator program, minus main(): its options,
// read from flags over environment variables over defaults, and Run, which
// paces the ChangeGenerator (generator.h) and produces its Debezium envelopes
// to Kafka through weir's Kafka sink, and optionally writes the same rows to
// PostgreSQL. generator_main.cc is the thin main; the tests call these.
//
// The pipeline it runs (parallelism 1, so every key keeps its order):
//
//   PacedChangeSource ── ChangeSink ─┬─ kafka::Sink <prefix>.public.content
//                                    ├─ kafka::Sink <prefix>.public.engagement_events
//                                    └─ PostgresSink (with --postgres)
//
// (ChangeSink splits batches by moving records; see change_sink.h for why
// not Filter + Sink per topic.)
//
// Example:
//
//   absl::StatusOr<GeneratorAppOptions> options = ParseGeneratorArgs(args, SystemEnvironment);
//   if (options.ok() && !options->help) status = RunGenerator(*options, stop, stderr);

#ifndef WEIR_EXAMPLES_ENGAGEMENT_GENERATOR_APP_H_
#define WEIR_EXAMPLES_ENGAGEMENT_GENERATOR_APP_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "examples/engagement/generator.h"

namespace engagement {

// Every option, with its flag and environment variable (see GeneratorUsage()).
struct GeneratorAppOptions {
  // --brokers / KAFKA_BROKERS: bootstrap servers. Required unless --no-kafka.
  std::string brokers;
  // --topic-prefix / TOPIC_PREFIX: Debezium's topic.prefix; topics are
  // <prefix>.public.content and <prefix>.public.engagement_events.
  // Default: "engagement"
  std::string topic_prefix = "engagement";
  // --no-kafka: write only to PostgreSQL (for Debezium to capture).
  // Default: false
  bool no_kafka = false;
  // --create-topics=N: create missing topics with N partitions.
  // Default: 0 (topics must exist, or the broker creates them itself)
  int create_topics = 0;
  // --kafka-property=name=value (repeatable): librdkafka producer properties.
  std::map<std::string, std::string> kafka_properties;
  // --connect-timeout: how long to wait for the brokers at start.
  // Default: 10 s
  absl::Duration connect_timeout = absl::Seconds(10);

  // --rate / GENERATION_RATE: records per minute; 0 or "max": unpaced.
  // Default: 200000
  double records_per_minute = 200000;
  // --burst-mode / BURST_MODE: every burst_interval, burst_count records as
  // fast as possible on top of the rate.
  // Default: false
  bool burst_mode = false;
  // --burst-count / BURST_COUNT.
  // Default: 20000
  int64_t burst_count = 20000;
  // --burst-interval / BURST_INTERVAL_SECONDS.
  // Default: 60 s
  absl::Duration burst_interval = absl::Seconds(60);
  // --total=N: exit after N records. Default: 0 (no limit)
  int64_t total = 0;
  // --duration: exit after this long. Default: no limit
  absl::Duration duration = absl::InfiniteDuration();

  // --seed. Default: 1
  uint64_t seed = 1;
  // --initial-contents: content rows of the initial snapshot. Default: 1000
  int initial_contents = 1000;
  // --with-schema: Debezium envelopes with the JsonConverter schema.
  // Default: false
  bool with_schema = false;
  // --start-time: event time of the first record (epoch ms or RFC 3339).
  // Default: the time the program starts
  std::optional<int64_t> start_ms;
  // --zipf-exponent: popularity skew of events over content. Default: 1.1
  double zipf_exponent = 1.1;
  // --content-change-share: share of records that change content rather
  // than add an event. Default: 0.002
  double content_change_share = 0.002;

  // --postgres / POSTGRES_URL: also write the rows to this PostgreSQL
  // (libpq connection string or URI). Default: none
  std::string postgres;
  // --postgres-reset: empty the two tables first. Default: false
  bool postgres_reset = false;
  // --postgres-batch: records per transaction, at most. Default: 5000
  int64_t postgres_batch = 5000;

  // --dry-run: generate and pace, but write nowhere (measures the generator).
  // Default: false
  bool dry_run = false;
  // --status-interval: how often to log a status line (0: never).
  // Default: 5 s
  absl::Duration status_interval = absl::Seconds(5);
  // --help
  bool help = false;
};

// Looks up an environment variable (nullopt: unset).
using Environment = std::function<std::optional<std::string>(const char* name)>;
// The process's environment (getenv).
std::optional<std::string> SystemEnvironment(const char* name);

// Options from `args` (argv without the program name; --name=value or
// --name value) over `env` over the defaults. kInvalidArgument naming the
// flag or variable for a bad or unknown one, and when no brokers are given
// (the message says how to start the local broker weir-kafka-dev).
absl::StatusOr<GeneratorAppOptions> ParseGeneratorArgs(const std::vector<std::string>& args,
                                                       const Environment& env);

// The --help text: every flag with its environment variable and default.
std::string GeneratorUsage();

// The ChangeGenerator configuration these options give; `now_ms` is the
// start time when --start-time is not given. The records of a run are
// exactly ChangeGenerator(ToGeneratorOptions(...)).Next() in order.
GeneratorOptions ToGeneratorOptions(const GeneratorAppOptions& options, int64_t now_ms);

// Runs the generator until --total/--duration or `stop` (1: stop and flush,
// 2: abandon). Logs a status line every status_interval and a summary to
// `log`. Returns OK once every record is acknowledged by Kafka (and
// committed to PostgreSQL); otherwise the first failure, e.g. kUnavailable
// when the brokers cannot be reached or a delivery failed.
absl::Status RunGenerator(const GeneratorAppOptions& options, const std::atomic<int>& stop,
                          std::FILE* log);

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_GENERATOR_APP_H_
