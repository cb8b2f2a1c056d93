// Redis sink throughput (bench/README.md): enriched engagement events
// through a weir pipeline into a redis-server the bench starts (on a free
// port of 127.0.0.1, nothing persisted), against redis-benchmark -P 16 on
// the same server in the same run.
//
// Variants, records/s (one record = what the sink writes for one event):
//   hset-expire  HSET content:<id> with 5 fields + PEXPIRE (once per key per batch)
//   zadd         ZADD top:<minute> <seconds> <id>, trimmed to the top 100 per batch, PEXPIRE
// Baselines: redis-benchmark -P 16 -n N -r 10000 running the same commands
// (HSET with 5 fields, then PEXPIRE: records/s = N / (t_hset + t_pexpire);
// ZADD alone), 50 connections, no fencing, no script.
//
//   weir-bench-redis [--events=1000000] [--json=redis.json] [--parallelism=1,2] [--repeat=3]

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/workload_events.h"
#include "tests/unit/connectors/redis/redis_server_fixture.h"
#include "weir/connectors/redis.h"
#include "weir/weir.h"

namespace weir::bench {
namespace {

// An engagement event after enrichment with its content row.
struct Enriched {
  uint64_t event_id = 0;
  uint64_t content_id = 0;
  uint64_t user_id = 0;
  int64_t event_ts = 0;
  double engagement_seconds = 0;
  std::string_view device;
  std::string_view event_type;
  std::string_view content_type;
};

constexpr std::string_view kEventTypes[] = {"play", "pause", "finish", "click"};
constexpr std::string_view kContentTypes[] = {"video", "podcast", "article"};

std::string ContentKey(const Enriched& e) { return absl::StrCat("content:", e.content_id); }

std::shared_ptr<weir::Sink<Enriched>> HashSink(const redis::SinkOptions& options) {
  return redis::Sink<Enriched>(
      options, redis::HashMapping<Enriched>{.key = ContentKey,
                                            .fields =
                                                [](const Enriched& e, redis::Fields& f) {
                                                  f.Add("last_event_id", e.event_id)
                                                      .Add("last_ts", e.event_ts)
                                                      .Add("seconds", e.engagement_seconds)
                                                      .Add("device", e.device)
                                                      .Add("type", e.content_type);
                                                },
                                            .ttl = absl::Hours(1)});
}

std::shared_ptr<weir::Sink<Enriched>> LeaderboardSink(const redis::SinkOptions& options) {
  return redis::Sink<Enriched>(
      options,
      redis::SortedSetMapping<Enriched>{
          .key = [](const Enriched& e) { return absl::StrCat("top:", e.event_ts / 60'000); },
          .member = [](const Enriched& e) { return absl::StrCat(e.content_id); },
          .score = [](const Enriched& e) { return e.engagement_seconds; },
          .top_n = 100,
          .ttl = absl::Hours(2)});
}

void Check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "check failed: %s\n", what.c_str());
  std::exit(1);
}

testing::RedisReply Query(testing::RedisServer& server, const std::vector<std::string>& args) {
  absl::StatusOr<testing::RedisReply> reply = server.Query(args);
  Check(reply.ok(), absl::StrCat(args[0], ": ", reply.status().ToString()));
  return *std::move(reply);
}

// Seconds of one weir run (Start to the end of the final flush).
double RunWeir(testing::RedisServer& server, const std::vector<Event>& events,
               const std::string& variant, int parallelism) {
  Query(server, {"FLUSHALL"});
  redis::SinkOptions options;
  options.connection = server.Connection();
  PipelineOptions pipeline_options;
  pipeline_options.parallelism = parallelism;
  Pipeline pipeline(pipeline_options);
  auto enriched = pipeline.Source(MakeEventSource(events)).Map([](const Event& e) {
    return Enriched{e.event_id,
                    e.content_id,
                    e.user_id,
                    e.event_ts,
                    e.duration_ms / 1000.0,
                    e.device,
                    kEventTypes[static_cast<int>(e.event_type)],
                    kContentTypes[e.content_id % 3]};
  });
  if (variant == "hset-expire") {
    enriched.Sink(HashSink(options)).Uid("redis-hash");
  } else {
    enriched.Sink(LeaderboardSink(options)).Uid("redis-top");
  }
  const absl::Time start = absl::Now();
  absl::Status status = pipeline.Run();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  Check(status.ok(), status.ToString());
  // What the run must have left: one hash per content id (+ the fence hash);
  // sorted sets of at most 100 members.
  const int64_t keys = Query(server, {"DBSIZE"}).integer;
  if (variant == "hset-expire") {
    absl::flat_hash_set<uint64_t> ids;
    for (const Event& e : events) ids.insert(e.content_id);
    Check(keys == static_cast<int64_t>(ids.size()) + 1, absl::StrCat("keys: ", keys));
  } else {
    const testing::RedisReply first =
        Query(server, {"ZCARD", absl::StrCat("top:", events.front().event_ts / 60'000)});
    Check(first.integer > 0 && first.integer <= 100, absl::StrCat("zcard ", first.integer));
  }
  return seconds;
}

// requests/s that redis-benchmark reports for one command (--csv).
double RedisBenchmark(testing::RedisServer& server, uint64_t n, const std::string& command) {
  const std::string line = absl::StrCat("redis-benchmark -h 127.0.0.1 -p ", server.port(),
                                        " -P 16 -n ", n, " -r 10000 --csv ", command, " 2>&1");
  FILE* pipe = ::popen(line.c_str(), "r");
  Check(pipe != nullptr, "popen redis-benchmark");
  std::string output;
  char buffer[4096];
  while (size_t got = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, got);
  Check(::pclose(pipe) == 0, absl::StrCat("redis-benchmark failed: ", output));
  // "test","rps",... then "<command>","<rps>",...
  double rps = 0;
  for (absl::string_view row : absl::StrSplit(output, '\n', absl::SkipEmpty())) {
    std::vector<std::string> cells = absl::StrSplit(row, ',');
    if (cells.size() < 2) continue;
    std::string value = cells[1];
    value.erase(std::remove(value.begin(), value.end(), '"'), value.end());
    double parsed = 0;
    if (absl::SimpleAtod(value, &parsed)) rps = parsed;
  }
  Check(rps > 0, absl::StrCat("cannot read redis-benchmark's output: ", output));
  return rps;
}

// Seconds the baseline needs for `n` records of `variant`.
double RunBaseline(testing::RedisServer& server, uint64_t n, const std::string& variant) {
  Query(server, {"FLUSHALL"});
  if (variant == "hset-expire") {
    const double hset = RedisBenchmark(
        server, n,
        "HSET content:__rand_int__ last_event_id 12345678 last_ts 1767225600000 seconds "
        "123.456 device android type video");
    const double pexpire = RedisBenchmark(server, n, "PEXPIRE content:__rand_int__ 3600000");
    return n / hset + n / pexpire;
  }
  return n / RedisBenchmark(server, n, "ZADD top:29453760 __rand_int__ __rand_int__");
}

int Main(int argc, char** argv) {
  const BenchFlags flags = ParseFlags(argc, argv, 1'000'000);
  GeneratorOptions gen;
  gen.events = flags.events;
  gen.zipf = flags.zipf;
  const std::vector<Event> events = GenerateEvents(gen);

  absl::StatusOr<std::unique_ptr<testing::RedisServer>> server = testing::RedisServer::Start();
  Check(server.ok(), server.status().ToString());
  std::printf("Redis sink: %llu enriched events into redis-server on 127.0.0.1:%d, best of %d\n",
              static_cast<unsigned long long>(flags.events), (*server)->port(), flags.repeat);

  const double n = static_cast<double>(flags.events);
  std::vector<BenchResult> results;
  for (const std::string variant : {"hset-expire", "zadd"}) {
    double baseline = 1e30;
    std::vector<double> weir(flags.parallelism.size(), 1e30);
    for (int round = 0; round < flags.repeat; ++round) {  // alternating, against noise
      baseline = std::min(baseline, RunBaseline(**server, flags.events, variant));
      for (size_t idx = 0; idx < flags.parallelism.size(); ++idx) {
        weir[idx] = std::min(weir[idx], RunWeir(**server, events, variant, flags.parallelism[idx]));
      }
    }
    results.push_back({"baseline", "redis-benchmark-P16-" + variant, 1, n / baseline, baseline});
    for (size_t idx = 0; idx < flags.parallelism.size(); ++idx) {
      results.push_back({"weir", variant, flags.parallelism[idx], n / weir[idx], weir[idx]});
    }
  }
  std::printf("  %-8s %-32s %-3s %14s %9s\n", "", "variant", "p", "records/s", "x base");
  double base = 1;
  for (const BenchResult& r : results) {
    if (r.name == "baseline") base = r.events_per_sec;
    std::printf("  %-8s %-32s %-3d %14.0f %8.3fx\n", r.name.c_str(), r.variant.c_str(),
                r.parallelism, r.events_per_sec, r.events_per_sec / base);
  }
  WriteJson(flags.json, "redis-sink", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
