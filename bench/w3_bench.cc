// W3 (bench/README.md): the engagement pipeline with all its sinks
// (Redis, ClickHouse, the exactly-once Kafka outbox, dead letters) and
// checkpoints every 10 s, run as the shipped program (engagement-pipeline,
// a child process) against librdkafka's mock cluster (in this process), redis-server and
// clickhouse-server on loopback.
//
//   throughput: N generated change events are produced first, then the
//     pipeline reads them all (--bounded): events/s over its whole run,
//     start-up and final checkpoint included; its peak RSS (VmHWM).
//   latency at R events/s (--rates): events are produced paced at R while
//     the pipeline runs, their event times up to 2 s before their creation
//     as the generator makes them (clients report late). The bench notes
//     when it created (produced) each event. Redis is polled every 5 ms for
//     the top contents' last_event_ts_ms; each time it advances, the event
//     that carries the new value just became visible, and now minus that
//     event's creation time is a sample of the time from an event's
//     creation to its effect being visible in Redis (p50/p99).
//
// librdkafka's mock cluster answers a fetch only when fetch.wait.max.ms
// (500 ms) has passed unless data is already there; a real broker answers
// as soon as data arrives. So a quiet topic (the content changes) is seen
// up to 500 ms late on the mock. The pipeline runs with
// fetch.wait.max.ms=10 here (its KAFKA_PROPERTIES), which gives the mock a
// real broker's behaviour. The mock's one thread also gets slower as it
// holds more produce batches: with this bench's producer lingering 5 ms it
// used a whole core, and the latency rose by ~0.3 s every second in a
// sawtooth while the pipeline's workers were 80% idle (the events reached
// them late). The producer lingers 20 ms (fewer, larger batches; the
// linger is part of the measured latency). The reason: the mock finds a
// fetch's position by walking the partition's log from its oldest batch,
// so its cost grows with the number of batches it holds. For the same
// reason the latency runs' topics have 16 partitions, not 64.
//
// Everything shares the 2 cores, so the bench keeps its own cost down: the
// latency producer paces in 1 ms steps and notes one number per event, and
// this process keeps the mock's freed buffers (mallopt) rather than
// page-faulting in fresh ones. It reports the pipeline's own CPU use
// (events per CPU-second; cores at each rate), which is steadier than the
// wall-clock figures on a shared host; --timeline=on prints the latency
// per second of a run.
//
// The baseline, in the same run: a plain librdkafka consumer reading the
// same events topic to its end (the input's cost on its own).
//
// --sink-flush=async,sync runs everything twice, once with each of the
// pipeline's --sink-flush modes (the sinks flushing at a checkpoint while
// the workers go on, or the workers waiting): the same-run comparison of
// asynchronous barrier acknowledgement.
//
// Usage: weir-bench-w3 [--events=N] [--rates=10000,100000] [--seconds=S]
//                      [--pipeline-parallelism=P] [--clickhouse=on|off]
//                      [--sink-flush=async|sync|async,sync]
//                      [--timeline=on|off] [--pipeline=PATH] [--json=FILE]

#include <librdkafka/rdkafka.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/workload_events.h"
#include "examples/engagement/generator.h"
#include "tests/support/child_process.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/redis/redis_server_fixture.h"

namespace weir::bench {
namespace {

using engagement::ChangeGenerator;
using engagement::GeneratedRecord;
using engagement::GeneratorOptions;

// The mock cluster keeps ~5 MiB per partition: 64 partitions hold ~450K
// events of ~700 bytes.
constexpr int kEventPartitions = 64;
// The latency runs' topics. The mock finds a fetch's position by walking the
// partition's log from its oldest batch: with 64 partitions of ~5 MiB each
// in small batches that walk took a tenth of the machine at 100K events/s.
// 16 partitions hold 4x larger batches (their logs are shorter lists), and
// are plenty for 100K events/s on a real broker too. The price: the mock
// keeps only ~80 MiB of them, ~1.2 s of input at 100K events/s, so a run in
// which the pipeline falls further behind than that fails with weir's
// DATA_LOSS error (the source names the partition and the offsets the
// broker dropped), and the bench prints the pipeline's log.
constexpr int kLatencyPartitions = 16;

void Die(const std::string& what) {
  std::fprintf(stderr, "weir-bench-w3: %s\n", what.c_str());
  std::exit(1);
}

// The peak resident set of `pid` (VmHWM), in bytes; 0 if gone.
int64_t PeakRss(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) {
      int64_t kb = 0;
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb * 1024;
    }
  }
  return 0;
}

// A librdkafka producer for the generated records.
class Producer {
 public:
  explicit Producer(const std::string& brokers) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [k, v] : std::vector<std::pair<const char*, const char*>>{
             {"linger.ms", "20"},
             {"batch.num.messages", "10000"},
             {"queue.buffering.max.messages", "1000000"},
             {"log_level", "3"}}) {
      rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr));
    }
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        static_cast<std::atomic<int64_t>*>(opaque)->fetch_add(1);
      }
    });
    rd_kafka_conf_set_opaque(conf, &failed_);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk_ == nullptr) Die(errstr);
  }
  ~Producer() {
    Flush();
    rd_kafka_destroy(rk_);
  }
  void Send(const std::string& topic, const GeneratedRecord& r) {
    char* value = r.value ? const_cast<char*>(r.value->data()) : nullptr;
    const size_t size = r.value ? r.value->size() : 0;
    for (;;) {
      const rd_kafka_resp_err_t err =
          rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
                            RD_KAFKA_V_KEY(const_cast<char*>(r.key.data()), r.key.size()),
                            RD_KAFKA_V_VALUE(value, size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_TIMESTAMP(r.ts_ms), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) Die(rd_kafka_err2str(err));
      rd_kafka_poll(rk_, 10);
    }
  }
  // Serves delivery reports.
  void Poll() { rd_kafka_poll(rk_, 0); }
  void Flush() {
    rd_kafka_flush(rk_, 60'000);
    if (failed_.load() > 0) Die(absl::StrCat(failed_.load(), " records were not delivered"));
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  std::atomic<int64_t> failed_{0};
};

struct Servers {
  std::unique_ptr<kafka::testing::KafkaTestBroker> broker;
  std::unique_ptr<testing::RedisServer> redis;
  std::unique_ptr<testing::ClickHouseServer> clickhouse;
};

// The engagement-pipeline program run (--pipeline=PATH; default: this build's).
std::string pipeline_path = ENGAGEMENT_PIPELINE_PATH;
// The pipeline's --sink-flush for the runs being made (async or sync).
std::string sink_flush = "async";

std::vector<std::string> PipelineArgs(const Servers& s, const std::string& prefix,
                                      const std::string& dir, int parallelism, bool bounded) {
  std::vector<std::string> argv = {
      pipeline_path, absl::StrCat("--brokers=", s.broker->bootstrap()),
      absl::StrCat("--topic-prefix=", prefix), absl::StrCat("--group-id=", prefix),
      absl::StrCat("--job-name=", prefix), absl::StrCat("--redis-port=", s.redis->port()),
      absl::StrCat("--checkpoint-uri=file://", dir, "/", prefix), "--checkpoint-interval=10s",
      absl::StrCat("--parallelism=", parallelism), "--status-interval=5s",
      // See the top of this file: the mock broker.
      "--kafka-consumer-properties=fetch.wait.max.ms=10"};
  if (s.clickhouse) {
    argv.push_back(absl::StrCat("--clickhouse-url=", s.clickhouse->url()));
    argv.push_back(absl::StrCat("--clickhouse-user=", testing::ClickHouseServer::kUser));
    argv.push_back(absl::StrCat("--clickhouse-password=", testing::ClickHouseServer::kPassword));
  }
  if (bounded) argv.push_back("--bounded");
  argv.push_back(absl::StrCat("--sink-flush=", sink_flush));
  return argv;
}

void CreateTopics(const Servers& s, const std::string& prefix, int event_partitions) {
  for (const auto& [topic, partitions] : std::vector<std::pair<std::string, int>>{
           {prefix + ".public.content", 4},
           {prefix + ".public.engagement_events", event_partitions},
           {prefix + ".engagement_enriched", event_partitions},
           {prefix + ".dlq", 1}}) {
    absl::Status status = s.broker->CreateTopic(topic, partitions);
    if (!status.ok()) Die(status.ToString());
  }
}

// The baseline: a plain consumer reading `topic` (all partitions) to its end.
double ConsumeAll(const std::string& brokers, const std::string& topic, int64_t expected) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", "w3-baseline", errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) Die(errstr);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(kEventPartitions);
  for (int p = 0; p < kEventPartitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  const auto start = std::chrono::steady_clock::now();
  int64_t seen = 0;
  uint64_t checksum = 0;
  while (seen < expected) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++seen;
      checksum += m->len;
    }
    rd_kafka_message_destroy(m);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  if (checksum == 0) Die("baseline read nothing");
  return seconds;
}

struct Throughput {
  int64_t events = 0;
  double seconds = 0;
  int64_t peak_rss = 0;
  // The pipeline's CPU time (sampled every 50 ms while it ran).
  double cpu_seconds = 0;
  double baseline_seconds = 0;
};

Throughput RunThroughput(const Servers& s, const std::string& dir, int64_t events,
                         int parallelism) {
  const std::string prefix = absl::StrCat("w3t-", sink_flush);
  CreateTopics(s, prefix, kEventPartitions);
  GeneratorOptions options;
  options.seed = 3;
  options.start_ms = absl::ToUnixMillis(absl::Now()) - 3'600'000;
  ChangeGenerator generator(options);
  Throughput out;
  {
    Producer producer(s.broker->bootstrap());
    while (generator.events() < events) {
      GeneratedRecord r = generator.Next();
      producer.Send(prefix + (r.is_content() ? ".public.content" : ".public.engagement_events"), r);
    }
    producer.Flush();
  }
  out.events = generator.events();
  std::printf("throughput: produced %lld events (%lld records); running the pipeline\n",
              static_cast<long long>(out.events), static_cast<long long>(generator.records()));
  std::fflush(stdout);
  const std::string log = absl::StrCat(dir, "/", prefix, ".log");
  const auto start = std::chrono::steady_clock::now();
  auto child = testing::ChildProcess::Spawn(PipelineArgs(s, prefix, dir, parallelism, true),
                                            {.log_path = log});
  if (!child.ok()) Die(child.status().ToString());
  // Looks every 5 ms (at 50 ms a run measured up to 50 ms long, 25 ms on
  // average; a short run is a few tenths of a second).
  while ((*child)->Running()) {
    out.peak_rss = std::max(out.peak_rss, PeakRss((*child)->pid()));
    out.cpu_seconds = std::max(out.cpu_seconds, ProcessCpuSeconds((*child)->pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string text = testing::ReadFileOrEmpty(log);
  if ((*child)->exit_status() != 0) Die("the pipeline failed:\n" + text);
  // Every produced event must have been read (else retention dropped some).
  const size_t at = text.rfind("finished after ");
  int64_t read = 0;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(text.substr(at + 15, text.find(' ', at + 15) - at - 15), &read) ||
      read != out.events) {
    Die(absl::StrCat("the pipeline read ", read, " of ", out.events,
                     " events (the mock cluster's retention? use fewer --events)\n", text));
  }
  out.baseline_seconds =
      ConsumeAll(s.broker->bootstrap(), prefix + ".public.engagement_events", out.events);
  return out;
}

struct Latency {
  int rate = 0;
  double produced_rate = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  size_t samples = 0;
  int64_t peak_rss = 0;
  // The pipeline's CPU use from the end of the warm-up to the end of
  // production, in cores.
  double cores = 0;
  // Per second of the run: the samples' count, median and maximum.
  std::string timeline;
};

// About how long generating `total` records with `options` takes: 5% of
// them (at least 20,000) timed after the initial snapshot's content rows,
// scaled up. Keeping them (RunLatency's hash map of events) costs more as
// they grow, so this is short by a fifth or so for millions of records.
absl::Duration EstimateGeneration(GeneratorOptions options, size_t total) {
  options.seed = 6;
  ChangeGenerator generator(options);
  for (int i = 0; i < options.initial_contents; ++i) generator.Next();
  const size_t sample = std::min(total, std::max<size_t>(total / 20, 20'000));
  std::vector<GeneratedRecord> kept;
  kept.reserve(sample);
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < sample; ++i) kept.push_back(generator.Next());
  const absl::Duration taken = absl::Now() - start;
  return taken * (static_cast<double>(total) / static_cast<double>(sample));
}

Latency RunLatency(const Servers& s, const std::string& dir, int rate, double seconds,
                   int parallelism) {
  const std::string prefix = absl::StrCat("w3l", rate, "-", sink_flush);
  CreateTopics(s, prefix, kLatencyPartitions);
  // The leaderboard keys are the same for every run: start from an empty
  // Redis, so the top contents polled are this run's.
  if (absl::StatusOr<testing::RedisReply> flushed = s.redis->Query({"FLUSHALL"}); !flushed.ok()) {
    Die(flushed.status().ToString());
  }
  const std::string log = absl::StrCat(dir, "/", prefix, ".log");
  auto child = testing::ChildProcess::Spawn(PipelineArgs(s, prefix, dir, parallelism, false),
                                            {.log_path = log});
  if (!child.ok()) Die(child.status().ToString());
  // Production starts once the job runs (its sources have their partitions)
  // and 2 s more for the consumers' first fetches, so that start-up is not
  // a backlog the measurement then carries.
  const auto running_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*child)->Log().find("engagement-pipeline: running") == std::string::npos) {
    if (!(*child)->Running() || std::chrono::steady_clock::now() > running_by) {
      Die(absl::StrCat("the pipeline did not start: ", (*child)->Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));

  std::atomic<bool> done{false};
  Latency out;
  out.rate = rate;
  // (content id, event time) -> the index of the (last) event that has
  // them, built before the clock starts; created_ms[index]: when the bench
  // produced it (0: not yet). The producer only stores a number per event.
  absl::flat_hash_map<std::pair<std::string, int64_t>, size_t> event_index;
  // The records are generated before the clock starts, so that the
  // generator's CPU does not compete with the pipeline and the broker
  // during the measurement. Their event times must still be those of live
  // events (up to 2 s before their creation, as the generator makes them):
  // generating takes seconds (about 8 s for 2M records), and events older
  // than their creation by that much come near what the pipeline treats as
  // a backfill (ContentMetrics refreshes a content whose event is more than
  // 10 s old every 250 ms instead of 50 ms), which the latency would then
  // measure. So the generator's clock starts at a time safely after the
  // generation will have ended (1.5 times the estimate, plus 1 s), and
  // production waits for it.
  struct Prepared {
    GeneratedRecord record;
    bool content = false;
    bool event = false;
  };
  std::vector<Prepared> prepared;
  absl::Time production_start;
  {
    const auto total = static_cast<size_t>(rate * seconds);
    GeneratorOptions options;
    options.records_per_second = rate;
    const absl::Duration generation = EstimateGeneration(options, total);
    options.seed = 5;
    options.start_ms = absl::ToUnixMillis(absl::Now() + generation * 1.5 + absl::Seconds(1));
    production_start = absl::FromUnixMillis(options.start_ms);
    ChangeGenerator generator(options);
    prepared.reserve(total);
    event_index.reserve(total);
    for (size_t i = 0; i < total; ++i) {
      Prepared p{.record = generator.Next()};
      p.content = p.record.is_content();
      p.record.ts_ms = std::max(p.record.ts_ms, int64_t{0});
      if (const auto* event = std::get_if<engagement::EngagementEvent>(&p.record.row)) {
        p.event = true;
        event_index[{event->content_id, event->event_ts_ms}] = i;
      }
      p.record.row = engagement::Content{};  // keep only what is sent
      prepared.push_back(std::move(p));
    }
  }
  std::vector<std::atomic<int64_t>> created_ms(prepared.size());
  const std::string content_topic = prefix + ".public.content";
  const std::string events_topic = prefix + ".public.engagement_events";
  std::printf("latency at %d events/s: producing\n", rate);
  std::fflush(stdout);
  std::thread produce([&] {
    Producer producer(s.broker->bootstrap());
    // The generator's clock starts now (see above).
    absl::SleepFor(production_start - absl::Now());
    if (const absl::Duration late = absl::Now() - production_start; late > absl::Seconds(1)) {
      std::printf(
          "note: generating took longer than estimated; event times are %.1f s older "
          "than their creation on top of the generator's up to 2 s\n",
          absl::ToDoubleSeconds(late));
    }
    const auto start = std::chrono::steady_clock::now();
    size_t sent = 0;
    // Paced in steps of 1 ms: every record due by now is sent, then the
    // thread sleeps until the next one is due if that is a millisecond or
    // more away (a sleep per record would cost the shared cores ~20% of one).
    auto now = start;
    int64_t now_ms = absl::ToUnixMillis(absl::Now());
    for (const Prepared& p : prepared) {
      const auto due = start + std::chrono::duration<double>(static_cast<double>(sent) / rate);
      if (due > now) {
        now = std::chrono::steady_clock::now();
        if (due > now + std::chrono::milliseconds(1)) {
          producer.Poll();
          std::this_thread::sleep_until(due);
          now = std::chrono::steady_clock::now();
        }
        now_ms = absl::ToUnixMillis(absl::Now());
      }
      if (p.event) created_ms[sent].store(now_ms, std::memory_order_relaxed);
      producer.Send(p.content ? content_topic : events_topic, p.record);
      ++sent;
    }
    out.produced_rate =
        sent / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    producer.Flush();
    done = true;
  });

  std::vector<double> samples;
  std::map<int64_t, std::vector<double>> by_second;
  std::map<std::string, int64_t> last_seen;
  // Both from the moment production starts (the producer waits for it).
  const auto warmup =
      std::chrono::steady_clock::now() +
      absl::ToChronoNanoseconds(std::max(production_start - absl::Now(), absl::ZeroDuration())) +
      std::chrono::seconds(3);
  const int64_t start_ms = absl::ToUnixMillis(std::max(production_start, absl::Now()));
  // One round trip per poll: the top contents with their last_event_ts_ms.
  // (The bench shares the 2 cores with the pipeline and the mock broker, so
  // the poll must stay cheap.)
  const std::string script =
      "local out = {} "
      "for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, 19)) do "
      "  out[#out + 1] = id "
      "  out[#out + 1] = redis.call('HGET', 'content:' .. id .. ':metrics', "
      "                             'last_event_ts_ms') or '' "
      "end "
      "return out";
  auto next_rss = std::chrono::steady_clock::now();
  double cpu_at_warmup = -1;
  std::chrono::steady_clock::time_point warm;
  while (!done.load()) {
    if (std::chrono::steady_clock::now() >= next_rss) {
      out.peak_rss = std::max(out.peak_rss, PeakRss((*child)->pid()));
      next_rss += std::chrono::milliseconds(100);
    }
    if (cpu_at_warmup < 0 && std::chrono::steady_clock::now() > warmup) {
      cpu_at_warmup = ProcessCpuSeconds((*child)->pid());
      warm = std::chrono::steady_clock::now();
    }
    absl::StatusOr<testing::RedisReply> top =
        s.redis->Query({"EVAL", script, "1", "top_engagement:10min"});
    if (top.ok()) {
      for (size_t i = 0; i + 1 < top->elements.size(); i += 2) {
        const std::string& content = top->elements[i].str;
        int64_t value = 0;
        if (!absl::SimpleAtoi(top->elements[i + 1].str, &value)) continue;
        const int64_t now = absl::ToUnixMillis(absl::Now());
        int64_t& last = last_seen[content];
        if (value > last) {
          if (last != 0 && std::chrono::steady_clock::now() > warmup) {
            auto it = event_index.find({content, value});
            const int64_t created = it == event_index.end()
                                        ? 0
                                        : created_ms[it->second].load(std::memory_order_relaxed);
            if (created != 0) {
              samples.push_back(static_cast<double>(now - created));
              by_second[(now - start_ms) / 1000].push_back(samples.back());
            }
          }
          last = value;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (cpu_at_warmup >= 0) {
    out.cores = (ProcessCpuSeconds((*child)->pid()) - cpu_at_warmup) /
                std::chrono::duration<double>(std::chrono::steady_clock::now() - warm).count();
  }
  produce.join();
  // A pipeline that stopped, or that never made Redis move, is reported
  // with its log: its figures above would otherwise read as zeros.
  const bool exited = !(*child)->Running();
  if (exited || samples.empty()) {
    const std::string text = (*child)->Log();
    std::fprintf(stderr, "weir-bench-w3: at %d events/s the pipeline %s; the end of its log:\n%s\n",
                 rate,
                 exited ? absl::StrCat("exited (status ", (*child)->exit_status(), ")").c_str()
                        : "made no change visible in Redis",
                 text.substr(text.size() > 4000 ? text.size() - 4000 : 0).c_str());
  }
  (*child)->Terminate(absl::Seconds(60));
  for (auto& [second, values] : by_second) {
    std::sort(values.begin(), values.end());
    absl::StrAppend(&out.timeline, "   ", second, "s: n=", values.size(),
                    " p50=", values[values.size() / 2], " max=", values.back(), " ms\n");
  }
  std::sort(samples.begin(), samples.end());
  out.samples = samples.size();
  if (!samples.empty()) {
    out.p50_ms = samples[samples.size() / 2];
    out.p99_ms = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
    out.max_ms = samples.back();
  }
  return out;
}

int Main(int argc, char** argv) {
  // The mock broker in this process copies every produce request into a
  // fresh buffer of up to a few MB. With glibc's default thresholds those
  // come from mmap and go back at free, so each one page-faults in zeroed
  // pages: a tenth of a core at 100K events/s, taken from the pipeline on
  // the shared cores. Freed buffers are kept for reuse instead (a real
  // broker runs on another machine).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  std::vector<int> rates = {10'000, 100'000};
  double seconds = 20;
  int parallelism = 2;
  bool with_clickhouse = true;
  bool timeline = false;
  std::vector<std::string> sink_flushes = {"async"};
  BenchFlags flags = ParseFlags(
      argc, argv, 300'000,
      {{"--rates=", "R1,R2",
        [&](const char* v) {
          rates.clear();
          for (absl::string_view part : absl::StrSplit(v, ',')) {
            int rate = 0;
            if (!absl::SimpleAtoi(part, &rate) || rate <= 0) Die("bad --rates");
            rates.push_back(rate);
          }
        }},
       {"--seconds=", "S", [&](const char* v) { seconds = std::atof(v); }},
       {"--pipeline-parallelism=", "P", [&](const char* v) { parallelism = std::atoi(v); }},
       {"--clickhouse=", "on|off",
        [&](const char* v) { with_clickhouse = std::string(v) != "off"; }},
       {"--sink-flush=", "async|sync|async,sync",
        [&](const char* v) {
          sink_flushes = absl::StrSplit(v, ',');
          for (const std::string& mode : sink_flushes) {
            if (mode != "async" && mode != "sync") Die("bad --sink-flush");
          }
        }},
       {"--timeline=", "on|off", [&](const char* v) { timeline = std::string(v) == "on"; }},
       {"--pipeline=", "PATH", [&](const char* v) { pipeline_path = v; }}});
  absl::StatusOr<std::string> dir = testing::MakeTempDir("weir-bench-w3");
  if (!dir.ok()) Die(dir.status().ToString());

  Servers s;
  auto broker = kafka::testing::KafkaTestBroker::Start();
  if (!broker.ok()) Die(broker.status().ToString());
  s.broker = *std::move(broker);
  auto redis = testing::RedisServer::Start();
  if (!redis.ok()) Die(redis.status().ToString());
  s.redis = *std::move(redis);
  auto clickhouse = with_clickhouse ? testing::ClickHouseServer::Start()
                                    : absl::StatusOr<std::unique_ptr<testing::ClickHouseServer>>(
                                          absl::FailedPreconditionError("--clickhouse=off"));
  if (clickhouse.ok()) {
    s.clickhouse = *std::move(clickhouse);
  } else {
    std::printf("clickhouse-server not available (%s): running without the ClickHouse sinks\n",
                clickhouse.status().ToString().c_str());
  }

  std::vector<BenchResult> results;
  for (const std::string& mode : sink_flushes) {
    sink_flush = mode;
    std::printf("--- sinks flush %s at checkpoints (--sink-flush=%s)\n",
                mode == "async" ? "asynchronously" : "synchronously", mode.c_str());
    const Throughput t = RunThroughput(s, *dir, static_cast<int64_t>(flags.events), parallelism);
    const double eps = t.events / t.seconds;
    const double baseline_eps = t.events / t.baseline_seconds;
    std::printf(
        "W3 throughput (all sinks%s, checkpoints every 10 s, p=%d): %lld events in %.2f s = %.0f "
        "events/s; peak RSS %.0f MiB; pipeline CPU %.2f s = %.0f events per CPU-second\n"
        "   baseline (plain librdkafka consumer of the same topic, no processing): %.0f events/s "
        "-> pipeline = %.2fx of reading the input alone\n",
        s.clickhouse ? "" : " but ClickHouse", parallelism, static_cast<long long>(t.events),
        t.seconds, eps, t.peak_rss / 1048576.0, t.cpu_seconds, t.events / t.cpu_seconds,
        baseline_eps, eps / baseline_eps);
    results.push_back({.name = "weir",
                       .variant = absl::StrCat("throughput-", mode),
                       .parallelism = parallelism,
                       .events_per_sec = eps,
                       .seconds = t.seconds,
                       .fields = {{"peak_rss_bytes", static_cast<double>(t.peak_rss)},
                                  {"cpu_seconds", t.cpu_seconds},
                                  {"events_per_cpu_sec", t.events / t.cpu_seconds}}});
    results.push_back({.name = "baseline",
                       .variant = "consume-only",
                       .parallelism = 1,
                       .events_per_sec = baseline_eps,
                       .seconds = t.baseline_seconds});
    for (int rate : rates) {
      const Latency l = RunLatency(s, *dir, rate, seconds, parallelism);
      std::printf(
          "W3 latency at %d events/s (produced %.0f/s for %.0f s): event -> Redis p50 %.0f ms, "
          "p99 %.0f ms, max %.0f ms (%zu samples); peak RSS %.0f MiB; pipeline CPU %.2f cores\n",
          rate, l.produced_rate, seconds, l.p50_ms, l.p99_ms, l.max_ms, l.samples,
          l.peak_rss / 1048576.0, l.cores);
      if (timeline) std::printf("%s", l.timeline.c_str());
      results.push_back({.name = "weir",
                         .variant = absl::StrCat("latency-", rate, "-", mode),
                         .parallelism = parallelism,
                         .events_per_sec = l.produced_rate,
                         .seconds = seconds,
                         .fields = {{"p50_ms", l.p50_ms},
                                    {"p99_ms", l.p99_ms},
                                    {"max_ms", l.max_ms},
                                    {"samples", static_cast<double>(l.samples)},
                                    {"peak_rss_bytes", static_cast<double>(l.peak_rss)},
                                    {"pipeline_cores", l.cores}}});
    }
  }
  WriteJson(flags.json, "W3", flags.events, results);
  std::filesystem::remove_all(*dir);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
