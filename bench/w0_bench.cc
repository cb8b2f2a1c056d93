// W0 (bench/README.md): the runtime's cost per record.
//
// 20M in-memory events -> Map(engagement_seconds = duration_ms / 1000.0) ->
// KeyBy(content_id) -> per-key running count and sum in a
// KeyedProcessFunction -> a sink that counts. Parallelism 1 and 2, against a
// hand-written single-thread loop over the same vector into an
// absl::flat_hash_map, in the same run.
//
// --http adds a variant with the job's HTTP server on (PipelineOptions::
// http_port) and a client scraping /metrics and /api/v1/job every 100 ms,
// to measure what serving metrics costs (docs/architecture.md, "Metrics").
//
//   weir-bench-w0 [--events=20000000] [--json=w0.json] [--parallelism=1,2] [--repeat=3] [--http]

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "bench/workload_events.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::bench {
namespace {

struct Seconds {
  uint64_t content_id;
  double seconds;
};

struct Totals {
  uint64_t content_id;
  int64_t count;
  double sum;
};

struct Accumulator {
  int64_t count = 0;
  double sum = 0;
};

class RunningTotals final : public KeyedProcessFunction<uint64_t, Seconds, Totals> {
 public:
  absl::Status ProcessElement(const Seconds& value, Context& ctx, Collector<Totals>& out) override {
    Accumulator& acc = totals_[ctx.current_key()];
    ++acc.count;
    acc.sum += value.seconds;
    out.Collect(Totals{value.content_id, acc.count, acc.sum});
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_map<uint64_t, Accumulator> totals_;
};

// Counts records; keeps the last sum seen so the work cannot be optimized away.
class CountingSink final : public Sink<Totals> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<Totals>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<Totals>>(new Writer(this));
  }
  int64_t count() const { return count_.load(); }
  double checksum() const { return checksum_.load(); }

 private:
  class Writer final : public SinkWriter<Totals> {
   public:
    explicit Writer(CountingSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<Totals> values, std::span<const Timestamp>) override {
      count_ += static_cast<int64_t>(values.size());
      for (const Totals& t : values) last_ += t.sum;
      return absl::OkStatus();
    }
    absl::Status Flush() override {
      sink_->count_ += count_;
      double expected = sink_->checksum_.load();
      while (!sink_->checksum_.compare_exchange_weak(expected, expected + last_)) {
      }
      return absl::OkStatus();
    }

   private:
    CountingSink* sink_;
    int64_t count_ = 0;
    double last_ = 0;
  };
  std::atomic<int64_t> count_{0};
  std::atomic<double> checksum_{0};
};

// Scrapes the job's /metrics and /api/v1/job every 100 ms until stopped.
class Scraper {
 public:
  explicit Scraper(int port)
      : thread_([this, port] {
          httplib::Client client("127.0.0.1", port);
          while (!stop_.load()) {
            for (const char* path : {"/metrics", "/api/v1/job"}) {
              httplib::Result result = client.Get(path);
              if (result && result->status == 200) ++scrapes_;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        }) {}
  ~Scraper() {
    stop_ = true;
    thread_.join();
  }
  int scrapes() const { return scrapes_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> scrapes_{0};
  std::thread thread_;
};

// Wall and CPU seconds of one run (best of several: the minimum of each).
// CPU time, of every thread of the process during the run, is what a
// shared machine's load disturbs least.
struct Timing {
  double wall = 1e30;
  double cpu = 1e30;
  void Keep(const Timing& run) {
    wall = std::min(wall, run.wall);
    cpu = std::min(cpu, run.cpu);
  }
};

Timing RunWeir(const std::shared_ptr<testing::VectorSource<Event>>& source, int parallelism,
               uint64_t events, bool http = false) {
  Pipeline pipeline({.parallelism = parallelism, .http_port = http ? 0 : -1});
  auto sink = std::make_shared<CountingSink>();
  pipeline.Source(source)
      .Map([](const Event& e) {
        return Seconds{e.content_id, e.duration_ms / 1000.0};
      })
      .KeyBy([](const Seconds& s) { return s.content_id; })
      .Process(RunningTotals{})
      .Sink(sink);
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<JobHandle> job = pipeline.Start();
  if (!job.ok()) {
    std::fprintf(stderr, "weir W0 failed to start: %s\n", job.status().ToString().c_str());
    std::exit(1);
  }
  std::optional<Scraper> scraper;
  if (http) scraper.emplace(job->http_port());
  absl::Status status = job->Wait();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  scraper.reset();
  if (!status.ok() || sink->count() != static_cast<int64_t>(events)) {
    std::fprintf(stderr, "weir W0 failed: %s, sink saw %lld of %llu events\n",
                 status.ToString().c_str(), static_cast<long long>(sink->count()),
                 static_cast<unsigned long long>(events));
    std::exit(1);
  }
  return {seconds, ProcessCpuSeconds() - cpu_start};
}

Timing RunBaseline(const std::vector<Event>& events) {
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  absl::flat_hash_map<uint64_t, Accumulator> totals;
  int64_t emitted = 0;
  double checksum = 0;
  for (const Event& e : events) {
    const double seconds = e.duration_ms / 1000.0;
    Accumulator& acc = totals[e.content_id];
    ++acc.count;
    acc.sum += seconds;
    ++emitted;
    checksum += acc.sum;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (emitted != static_cast<int64_t>(events.size()) || checksum < 0) std::exit(1);
  return {elapsed, ProcessCpuSeconds() - cpu_start};
}

BenchResult Result(const char* name, const char* variant, int parallelism, double events,
                   const Timing& timing) {
  return {name,        variant,
          parallelism, events / timing.wall,
          timing.wall, {{"cpu_seconds", timing.cpu}, {"events_per_cpu_sec", events / timing.cpu}}};
}

int Main(int argc, char** argv) {
  bool http = false;
  const BenchFlags flags =
      ParseFlags(argc, argv, 20'000'000, {{"--http", "", [&](const char*) { http = true; }}});
  GeneratorOptions gen;
  gen.events = flags.events;
  gen.zipf = flags.zipf;
  std::vector<Event> events = GenerateEvents(gen);

  auto source = MakeEventSource(events);

  std::vector<BenchResult> results;
  std::printf("W0: %llu events, best of %d runs each\n",
              static_cast<unsigned long long>(flags.events), flags.repeat);
  // Contenders alternate so that machine noise hits all of them alike.
  Timing baseline_best;
  std::vector<Timing> weir_best(flags.parallelism.size());
  std::vector<Timing> http_best(flags.parallelism.size());
  for (int round = 0; round < flags.repeat; ++round) {
    baseline_best.Keep(RunBaseline(events));
    for (size_t i = 0; i < flags.parallelism.size(); ++i) {
      weir_best[i].Keep(RunWeir(source, flags.parallelism[i], flags.events));
      if (http) {
        http_best[i].Keep(RunWeir(source, flags.parallelism[i], flags.events, true));
      }
    }
  }
  const double n = static_cast<double>(flags.events);
  results.push_back(Result("baseline", "flat_hash_map loop", 1, n, baseline_best));
  for (size_t i = 0; i < flags.parallelism.size(); ++i) {
    results.push_back(Result("weir", "memory", flags.parallelism[i], n, weir_best[i]));
  }
  if (http) {
    for (size_t i = 0; i < flags.parallelism.size(); ++i) {
      results.push_back(
          Result("weir", "memory+http-scraped-10/s", flags.parallelism[i], n, http_best[i]));
    }
  }
  for (const BenchResult& r : results) {
    const double per_cpu = r.fields[1].second;
    std::printf(
        "  %-8s %-26s p=%d  %12.0f events/s  (%.3f s)  %.2fx baseline   %12.0f events/CPU-s  "
        "%.2fx\n",
        r.name.c_str(), r.variant.c_str(), r.parallelism, r.events_per_sec, r.seconds,
        r.events_per_sec / results[0].events_per_sec, per_cpu,
        per_cpu / results[0].fields[1].second);
  }
  WriteJson(flags.json, "W0", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
