// W2 (bench/README.md): Kafka end to end.
//
// 200,000 engagement events as Debezium JSON envelopes (before/after/source/
// op/ts_ms, 500-900 bytes each) in a 32-partition topic on weir-kafka-dev
// (librdkafka's mock cluster), started by the bench as a child process. The
// contenders, alternating, each consume the whole topic from the beginning
// `--repeat` times (default 5):
//
// - weir: the Kafka source (bounded) + Debezium decoding into a typed row
//   (weir::kafka::DebeziumDeserializer) -> Map -> KeyBy(content_id) ->
//   tumbling 60 s event-time windows with a (count, sum) aggregate, 2 s
//   bounded out-of-orderness;
// - baseline: a minimal librdkafka consumer loop (all partitions assigned to
//   one consumer) that parses the same fields with simdjson On-Demand and
//   updates a hash map of (content_id, window start) -> (count, sum).
// - weir, no window: the Kafka source + Debezium decoding only (what the
//   connector itself costs), the rows counted by a sink.
//
// All check that they saw every event (the window counts add up to it).
//
//   weir-bench-w2 [--events=200000] [--json=w2.json] [--parallelism=1,2] [--repeat=5]
//                 [--kafka-dev=PATH]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/w2_workload.h"
#include "bench/window_workload.h"
#include "bench/workload_events.h"
#include "simdjson.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "weir/connectors/kafka.h"
#include "weir/connectors/kafka_debezium.h"
#include "weir/weir.h"
#include "weir/window.h"

namespace weir::bench {
namespace {

struct Outcome {
  double seconds = 0;
  double cpu_seconds = 0;
  int64_t counted = 0;
  int64_t windows = 0;
};

// `windows` false: only the source and Debezium decoding (the rows are
// counted), to show what the connector itself costs.
Outcome RunWeir(const std::string& brokers, int parallelism, bool windows) {
  PipelineOptions pipeline_options;
  pipeline_options.parallelism = parallelism;
  Pipeline pipeline(pipeline_options);
  kafka::SourceOptions<debezium::Change<Engagement>> options = EngagementSource(brokers);
  auto sink = std::make_shared<WindowSink>();
  using Change = debezium::Change<Engagement>;
  if (!windows) {
    pipeline.Source(kafka::Source(std::move(options)))
        .Map([](const Change& c) {
          return WindowResult{0, 0, c.after ? 1 : 0, 0};
        })
        .Sink(sink);
  } else {
    AddTumblingJob(pipeline, std::move(options), sink);
  }
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = pipeline.Run();
  Outcome outcome;
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  if (!status.ok()) {
    std::fprintf(stderr, "weir W2 (p=%d) failed: %s\n", parallelism, status.ToString().c_str());
    std::exit(1);
  }
  outcome.counted = sink->counted();
  outcome.windows = sink->windows();
  return outcome;
}

int64_t FloorTo(int64_t ts, int64_t step) {
  int64_t offset = ts % step;
  if (offset < 0) offset += step;
  return ts - offset;
}

void Die(const std::string& what) {
  std::fprintf(stderr, "weir-bench-w2: %s\n", what.c_str());
  std::exit(1);
}

// The hand-written loop: one librdkafka consumer assigned every partition
// from the beginning, simdjson On-Demand over each value, a flat_hash_map.
Outcome RunBaseline(const std::string& brokers) {
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  char errstr[512];
  int at_end = 0;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] :
       std::vector<std::pair<const char*, std::string>>{{"bootstrap.servers", brokers},
                                                        {"group.id", "w2-baseline"},
                                                        {"enable.auto.commit", "false"},
                                                        {"enable.partition.eof", "true"},
                                                        {"auto.offset.reset", "earliest"}}) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      Die(errstr);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) Die(errstr);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(kPartitions);
  for (int32_t partition = 0; partition < kPartitions; ++partition) {
    // Offset 0 is the log start (checked after producing); a logical
    // RD_KAFKA_OFFSET_BEGINNING costs an offset lookup round of ~1 s here.
    rd_kafka_topic_partition_list_add(list, kTopic, partition)->offset = 0;
  }
  if (rd_kafka_assign(rk, list) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("assign failed");
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk);
  // Stop at the end offsets of the start (as weir's bounded source does),
  // not at end-of-partition events, which the broker may hold back for
  // fetch.wait.max.ms.
  std::vector<int64_t> end(kPartitions, 0);
  rd_kafka_topic_partition_list_t* ends = rd_kafka_topic_partition_list_new(kPartitions);
  for (int32_t partition = 0; partition < kPartitions; ++partition) {
    rd_kafka_topic_partition_list_add(ends, kTopic, partition)->offset = RD_KAFKA_OFFSET_END;
  }
  if (rd_kafka_offsets_for_times(rk, ends, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Die("cannot read the end offsets");
  }
  for (int idx = 0; idx < ends->cnt; ++idx) {
    end[static_cast<size_t>(ends->elems[idx].partition)] = ends->elems[idx].offset;
    if (ends->elems[idx].offset == 0) ++at_end;
  }
  rd_kafka_topic_partition_list_destroy(ends);

  simdjson::ondemand::parser parser;
  simdjson::padded_string buffer;
  absl::flat_hash_map<std::pair<int64_t, int64_t>, WindowAcc> windows;
  int64_t counted = 0;
  std::vector<rd_kafka_message_t*> messages(2048);
  while (at_end < kPartitions) {
    const ssize_t count =
        rd_kafka_consume_batch_queue(queue, 100, messages.data(), messages.size());
    for (ssize_t idx = 0; idx < count; ++idx) {
      rd_kafka_message_t* message = messages[static_cast<size_t>(idx)];
      if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        // At the end already counted by offset.
      } else if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Die(rd_kafka_message_errstr(message));
      } else {
        // On-Demand needs SIMDJSON_PADDING readable bytes after the value.
        const std::string_view value(static_cast<const char*>(message->payload), message->len);
        if (buffer.size() < value.size()) buffer = simdjson::padded_string(value.size() * 2);
        std::memcpy(buffer.data(), value.data(), value.size());
        simdjson::ondemand::document doc;
        if (parser.iterate(buffer.data(), value.size(), buffer.size() + simdjson::SIMDJSON_PADDING)
                .get(doc) != simdjson::SUCCESS) {
          Die("bad JSON");
        }
        simdjson::ondemand::object after;
        int64_t event_id = 0;
        int64_t content_id = 0;
        int64_t user_id = 0;
        std::string_view event_type;
        int64_t event_ts = 0;
        int64_t duration_ms = 0;
        std::string_view device;
        if (doc["after"].get_object().get(after) != simdjson::SUCCESS ||
            after["event_id"].get_int64().get(event_id) != simdjson::SUCCESS ||
            after["content_id"].get_int64().get(content_id) != simdjson::SUCCESS ||
            after["user_id"].get_int64().get(user_id) != simdjson::SUCCESS ||
            after["event_type"].get_string().get(event_type) != simdjson::SUCCESS ||
            after["event_ts"].get_int64().get(event_ts) != simdjson::SUCCESS ||
            after["duration_ms"].get_int64().get(duration_ms) != simdjson::SUCCESS ||
            after["device"].get_string().get(device) != simdjson::SUCCESS) {
          Die("bad envelope");
        }
        WindowAcc& acc = windows[std::pair(content_id, FloorTo(event_ts, kMinuteMs))];
        ++acc.count;
        acc.sum += static_cast<double>(duration_ms) / 1000.0;
        ++counted;
        if (message->offset + 1 == end[static_cast<size_t>(message->partition)]) ++at_end;
      }
      rd_kafka_message_destroy(message);
    }
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  Outcome outcome;
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  outcome.counted = 0;
  for (const auto& [key, acc] : windows) outcome.counted += acc.count;
  outcome.windows = static_cast<int64_t>(windows.size());
  if (outcome.counted != counted) Die("baseline lost events");
  return outcome;
}

void Check(const std::string& what, const Outcome& outcome, uint64_t events,
           const Outcome& baseline) {
  if (outcome.counted == static_cast<int64_t>(events) &&
      (outcome.windows == baseline.windows || outcome.windows == outcome.counted)) {
    return;
  }
  std::fprintf(stderr,
               "W2 check failed for %s: counted %lld of %llu events, %lld windows "
               "(baseline %lld)\n",
               what.c_str(), static_cast<long long>(outcome.counted),
               static_cast<unsigned long long>(events), static_cast<long long>(outcome.windows),
               static_cast<long long>(baseline.windows));
  std::exit(1);
}

int Main(int argc, char** argv) {
  std::string kafka_dev = WEIR_KAFKA_DEV_PATH;
  BenchFlags flags =
      ParseFlags(argc, argv, 200'000,
                 {{"--kafka-dev=", "PATH", [&](const char* value) { kafka_dev = value; }}});
  // bench/README.md (W2): 5 passes each unless --repeat says otherwise.
  bool repeat_given = false;
  for (int idx = 1; idx < argc; ++idx) {
    repeat_given |= std::string_view(argv[idx]).starts_with("--repeat=");
  }
  if (!repeat_given) flags.repeat = 5;

  absl::StatusOr<std::unique_ptr<kafka::testing::KafkaTestBroker>> broker =
      kafka::testing::KafkaTestBroker::StartChildProcess(kafka_dev,
                                                         {absl::StrCat(kTopic, ":", kPartitions)});
  if (!broker.ok()) Die(broker.status().ToString());
  const std::string brokers = (*broker)->bootstrap();

  absl::StatusOr<EngagementInput> input = ProduceEngagementInput(brokers, flags);
  if (!input.ok()) Die(input.status().ToString());
  const size_t bytes = input->bytes;
  const size_t smallest = input->smallest;
  const size_t largest = input->largest;

  std::printf(
      "W2: %llu Debezium envelopes (%zu-%zu bytes, %.1f MiB) in %d partitions on %s, "
      "best of %d passes each, alternating\n",
      static_cast<unsigned long long>(flags.events), smallest, largest,
      static_cast<double>(bytes) / (1 << 20), kPartitions, brokers.c_str(), flags.repeat);

  struct Best {
    double seconds = 1e30;
    double cpu_seconds = 1e30;
    void Add(const Outcome& outcome) {
      seconds = std::min(seconds, outcome.seconds);
      cpu_seconds = std::min(cpu_seconds, outcome.cpu_seconds);
    }
  };
  const Outcome reference = RunBaseline(brokers);
  Check("baseline", reference, flags.events, reference);
  Best baseline;
  std::vector<Best> weir(flags.parallelism.size());
  std::vector<Best> decode_only(flags.parallelism.size());
  for (int round = 0; round < flags.repeat; ++round) {
    baseline.Add(RunBaseline(brokers));
    for (size_t idx = 0; idx < flags.parallelism.size(); ++idx) {
      const Outcome outcome = RunWeir(brokers, flags.parallelism[idx], true);
      Check(absl::StrCat("weir p=", flags.parallelism[idx]), outcome, flags.events, reference);
      weir[idx].Add(outcome);
    }
    for (size_t idx = 0; idx < flags.parallelism.size(); ++idx) {
      const Outcome outcome = RunWeir(brokers, flags.parallelism[idx], false);
      Check(absl::StrCat("weir decode-only p=", flags.parallelism[idx]), outcome, flags.events,
            reference);
      decode_only[idx].Add(outcome);
    }
  }
  const double n = static_cast<double>(flags.events);
  auto result = [&](const char* name, const char* variant, int p, const Best& best) {
    return BenchResult{name,
                       variant,
                       p,
                       n / best.seconds,
                       best.seconds,
                       {{"cpu_seconds", best.cpu_seconds},
                        {"events_per_cpu_sec", n / best.cpu_seconds},
                        {"bytes", static_cast<double>(bytes)}}};
  };
  std::vector<BenchResult> results;
  results.push_back(result("baseline", "librdkafka+simdjson", 1, baseline));
  for (size_t idx = 0; idx < flags.parallelism.size(); ++idx) {
    results.push_back(result("weir", "kafka+debezium+tumbling", flags.parallelism[idx], weir[idx]));
  }
  for (size_t idx = 0; idx < flags.parallelism.size(); ++idx) {
    results.push_back(
        result("weir", "kafka+debezium (no window)", flags.parallelism[idx], decode_only[idx]));
  }
  std::printf("  %-8s %-24s %-3s %12s %8s %14s %8s\n", "", "variant", "p", "events/s", "x base",
              "events/cpu-s", "x base");
  for (BenchResult& r : results) {
    r.fields.push_back({"vs_baseline", r.events_per_sec / results[0].events_per_sec});
    std::printf("  %-8s %-24s %-3d %12.0f %7.3fx %14.0f %7.3fx\n", r.name.c_str(),
                r.variant.c_str(), r.parallelism, r.events_per_sec,
                r.events_per_sec / results[0].events_per_sec, r.fields[1].second,
                r.fields[1].second / results[0].fields[1].second);
  }
  std::printf("  every pass counted all %llu events in %lld windows\n",
              static_cast<unsigned long long>(flags.events),
              static_cast<long long>(reference.windows));
  WriteJson(flags.json, "W2", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
