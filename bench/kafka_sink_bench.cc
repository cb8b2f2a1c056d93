// Kafka sink throughput: weir::kafka::Sink at least once and exactly once
// (checkpoints every second to a local directory) against a plain librdkafka
// produce loop writing the same records with the same producer settings
// (idempotent, acks=all, linger.ms=5), in the same run, against librdkafka's
// mock cluster on loopback (in-process).
//
//   weir-bench-kafka-sink [--records=1000000] [--partitions=16] [--repeat=3] [--json=out.json]
//
// Records are 8-byte keys and ~40-byte values. The mock cluster keeps only
// about 5 MiB per partition; the bench only writes, and checks the count
// from the partitions' high watermarks, so that limit does not matter.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/workload_events.h"
#include "lib/connectors/kafka/client.h"
#include "lib/connectors/kafka/mock_broker.h"
#include "weir/connectors/kafka_sink.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace {

using weir::kafka::internal::ConfPtr;
using weir::kafka::internal::HandlePtr;

struct Options {
  int64_t records = 1'000'000;
  int partitions = 16;
  int repeat = 3;
  std::string json;
};

std::string Value(int64_t i) {
  return absl::StrFormat("{\"id\":%d,\"payload\":\"abcdefghijklmn\"}", i);
}
std::string Key(int64_t i) { return absl::StrFormat("%08d", i % 100'000'000); }

// Sum of the partitions' high watermarks of `topic`.
int64_t TopicEnd(const std::string& bootstrap, const std::string& topic, int partitions) {
  absl::StatusOr<ConfPtr> conf =
      weir::kafka::internal::MakeConf({.brokers = bootstrap}, {}, "bench");
  absl::StatusOr<HandlePtr> rk =
      weir::kafka::internal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "bench");
  int64_t total = 0;
  for (int partition = 0; partition < partitions; ++partition) {
    int64_t low = 0;
    int64_t high = 0;
    if (rd_kafka_query_watermark_offsets(rk->get(), topic.c_str(), partition, &low, &high, 10000) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      total += high;
    }
  }
  return total;
}

// The baseline: one producer, the same records, flush at the end.
absl::Status PlainLoop(const std::string& bootstrap, const std::string& topic, int64_t records) {
  absl::StatusOr<ConfPtr> conf = weir::kafka::internal::MakeConf(
      {.brokers = bootstrap}, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}},
      "baseline");
  if (!conf.ok()) return conf.status();
  absl::StatusOr<HandlePtr> rk =
      weir::kafka::internal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "baseline");
  if (!rk.ok()) return rk.status();
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk->get(), topic.c_str(), nullptr);
  std::string key;
  std::string value;
  for (int64_t i = 0; i < records; ++i) {
    key = Key(i);
    value = Value(i);
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk->get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(value.data(), value.size()),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_topic_destroy(rkt);
        return weir::kafka::internal::ToStatus(err, "baseline produce");
      }
      rd_kafka_poll(rk->get(), 10);
    }
    if (i % 1024 == 0) rd_kafka_poll(rk->get(), 0);
  }
  while (rd_kafka_outq_len(rk->get()) > 0) rd_kafka_flush(rk->get(), 100);
  rd_kafka_topic_destroy(rkt);
  return absl::OkStatus();
}

absl::Status WeirSink(const std::string& bootstrap, const std::string& topic, int64_t records,
                      weir::kafka::DeliveryGuarantee guarantee, const std::string& checkpoints) {
  weir::PipelineOptions options;
  options.job_name = "kafka-sink-bench-" + topic;
  if (guarantee == weir::kafka::DeliveryGuarantee::kExactlyOnce) {
    options.checkpoints.interval = absl::Seconds(1);
    options.checkpoints.storage_uri = "file://" + checkpoints;
  }
  weir::Pipeline pipeline(options);
  std::vector<int64_t> input(records);
  for (int64_t i = 0; i < records; ++i) input[i] = i;
  weir::testing::VectorSourceOptions source_options;
  source_options.splits = 1;
  weir::kafka::SinkOptions<int64_t> sink;
  sink.client = {.brokers = bootstrap};
  sink.topic = topic;
  sink.serializer = [](const int64_t& i, std::string& out) {
    out = Value(i);
    return absl::OkStatus();
  };
  sink.key = [](const int64_t& i) { return Key(i); };
  sink.guarantee = guarantee;
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(std::move(input), source_options))
      .Uid("numbers")
      .Sink(weir::kafka::Sink<int64_t>(std::move(sink)))
      .Uid("kafka");
  return pipeline.Run();
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int idx = 1; idx < argc; ++idx) {
    const std::string arg = argv[idx];
    const auto value = [&](const char* name) -> const char* {
      const std::string prefix = std::string(name) + "=";
      return arg.rfind(prefix, 0) == 0 ? argv[idx] + prefix.size() : nullptr;
    };
    if (const char* v = value("--records"); v && absl::SimpleAtoi(v, &options.records)) continue;
    if (const char* v = value("--partitions"); v && absl::SimpleAtoi(v, &options.partitions)) {
      continue;
    }
    if (const char* v = value("--repeat"); v && absl::SimpleAtoi(v, &options.repeat)) continue;
    if (const char* v = value("--json")) {
      options.json = v;
      continue;
    }
    std::fprintf(stderr, "usage: %s [--records=N] [--partitions=N] [--repeat=N] [--json=file]\n",
                 argv[0]);
    return 2;
  }
  absl::StatusOr<std::unique_ptr<weir::kafka::internal::MockBroker>> broker =
      weir::kafka::internal::MockBroker::Start();
  if (!broker.ok()) {
    std::fprintf(stderr, "%s\n", broker.status().ToString().c_str());
    return 1;
  }
  const std::string bootstrap = (*broker)->bootstrap();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("weir-kafka-sink-bench-", getpid());

  struct Mode {
    std::string name;
    // The contender and variant in the JSON (bench/README.md, "The JSON").
    std::string contender;
    std::string variant;
    std::function<absl::Status(const std::string& topic)> run;
  };
  const std::vector<Mode> modes = {
      {"librdkafka loop", "baseline", "librdkafka produce loop",
       [&](const std::string& topic) { return PlainLoop(bootstrap, topic, options.records); }},
      {"weir at-least-once", "weir", "at-least-once",
       [&](const std::string& topic) {
         return WeirSink(bootstrap, topic, options.records,
                         weir::kafka::DeliveryGuarantee::kAtLeastOnce, "");
       }},
      {"weir exactly-once", "weir", "exactly-once",
       [&](const std::string& topic) {
         return WeirSink(bootstrap, topic, options.records,
                         weir::kafka::DeliveryGuarantee::kExactlyOnce, (dir / topic).string());
       }},
  };
  std::vector<double> best(modes.size(), 0);
  int topic_index = 0;
  for (int round = 0; round < options.repeat; ++round) {
    for (size_t mode = 0; mode < modes.size(); ++mode) {
      const std::string topic = absl::StrCat("bench-", topic_index++);
      if (absl::Status status = (*broker)->CreateTopic(topic, options.partitions); !status.ok()) {
        std::fprintf(stderr, "%s\n", status.ToString().c_str());
        return 1;
      }
      const absl::Time start = absl::Now();
      absl::Status status = modes[mode].run(topic);
      const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
      if (!status.ok()) {
        std::fprintf(stderr, "%s: %s\n", modes[mode].name.c_str(), status.ToString().c_str());
        return 1;
      }
      const int64_t written = TopicEnd(bootstrap, topic, options.partitions);
      if (written != options.records) {
        std::fprintf(stderr, "%s: %lld records in the topic, expected %lld\n",
                     modes[mode].name.c_str(), static_cast<long long>(written),
                     static_cast<long long>(options.records));
        return 1;
      }
      const double rate = static_cast<double>(options.records) / seconds;
      best[mode] = std::max(best[mode], rate);
      std::printf("round %d  %-20s %10.0f records/s (%.2f s)\n", round + 1,
                  modes[mode].name.c_str(), rate, seconds);
    }
  }
  std::filesystem::remove_all(dir);
  std::printf("\nbest of %d, %lld records, %d partitions, 1 worker:\n", options.repeat,
              static_cast<long long>(options.records), options.partitions);
  std::vector<weir::bench::BenchResult> results;
  for (size_t mode = 0; mode < modes.size(); ++mode) {
    std::printf("  %-20s %10.0f records/s  (%.2fx the loop)\n", modes[mode].name.c_str(),
                best[mode], best[mode] / best[0]);
    results.push_back({modes[mode].contender,
                       modes[mode].variant,
                       1,
                       best[mode],
                       static_cast<double>(options.records) / best[mode],
                       {{"partitions", options.partitions}}});
  }
  weir::bench::WriteJson(options.json, "kafka-sink", static_cast<uint64_t>(options.records),
                         results);
  return 0;
}
