// W0 (bench/README.md): the runtime's cost per record.
//
// 20M in-memory events -> Map(engagement_seconds = duration_ms / 1000.0) ->
// KeyBy(content_id) -> per-key running count and sum in a
// KeyedProcessFunction -> a sink that counts. Parallelism 1 and 2, against a
// hand-written single-thread loop over the same vector into an
// absl::flat_hash_map, in the same run.
//
// Two more contenders separate the runtime's cost from the memory bus's.
// "generated" computes each event from its index (a few arithmetic
// operations, nothing read from memory), in weir's source and in a loop of
// its own. "memory read" only streams the events vector from memory on one
// and on two threads, with nothing else: the floor under any run that reads
// its input from that vector.
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

// The event with index `i` of the generated input: the same fields and
// ranges as GenerateEvents, computed instead of read.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline Event GeneratedEvent(uint64_t i) {
  const uint64_t h = SplitMix64(i);
  Event e;
  e.event_id = i;
  e.content_id = (h & 0xffffffff) % 10'000;
  e.user_id = SplitMix64(h);
  e.event_type = static_cast<EventType>((h >> 32) & 3);
  e.duration_ms = static_cast<int32_t>((h >> 34) % 600'001);
  e.device = kDevices[(h >> 54) % kDevices.size()];
  e.event_ts = 1'767'225'600'000 + static_cast<int64_t>(i / 100) - static_cast<int64_t>(h >> 53);
  return e;
}

// A source of `events` generated events in 4 splits (split s holds the
// indices s, s + 4, s + 8, ...), stamped with their event_ts.
class GeneratedSource final : public Source<Event> {
 public:
  explicit GeneratedSource(uint64_t events) : events_(events) {}

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    std::vector<SourceSplit> splits;
    for (int split = 0; split < kSplits; ++split) {
      splits.push_back({"generated-" + std::to_string(split), std::nullopt});
    }
    return splits;
  }

  absl::StatusOr<std::unique_ptr<SourceReader<Event>>> CreateReader(
      const SourceReaderContext& context) override {
    std::vector<uint64_t> next;
    for (const SourceSplit& split : context.splits) {
      uint64_t start = std::stoull(split.id.substr(split.id.find('-') + 1));
      if (split.state && !absl::SimpleAtoi(*split.state, &start)) {
        return absl::DataLossError("GeneratedSource: bad position for split " + split.id);
      }
      next.push_back(start);
    }
    return std::unique_ptr<SourceReader<Event>>(new Reader(events_, std::move(next)));
  }

 private:
  static constexpr int kSplits = 4;

  class Reader final : public SourceReader<Event> {
   public:
    Reader(uint64_t events, std::vector<uint64_t> next) : events_(events), next_(std::move(next)) {}

    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t) override {
      std::vector<std::string> states;
      for (uint64_t next : next_) states.push_back(std::to_string(next));
      return states;
    }

    absl::StatusOr<PollResult> Poll(SourceOutput<Event>& out) override {
      bool any_left = false;
      for (size_t split = 0; split < next_.size(); ++split) {
        uint64_t& next = next_[split];
        for (int n = 0; n < 1024 && next < events_; ++n, next += kSplits) {
          const Event e = GeneratedEvent(next);
          out.Collect(static_cast<int>(split), e, e.event_ts);
        }
        if (next < events_) {
          any_left = true;
        } else {
          out.FinishSplit(static_cast<int>(split));
        }
      }
      return any_left ? PollResult::kMoreAvailable : PollResult::kEndOfInput;
    }

   private:
    uint64_t events_;
    std::vector<uint64_t> next_;
  };

  uint64_t events_;
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

Timing RunWeir(const std::shared_ptr<Source<Event>>& source, int parallelism, uint64_t events,
               bool http = false) {
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

// The hand-written loop: event_at(i) for every i < events, into the map.
template <class EventAt>
Timing RunLoop(uint64_t events, EventAt event_at) {
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  absl::flat_hash_map<uint64_t, Accumulator> totals;
  int64_t emitted = 0;
  double checksum = 0;
  for (uint64_t i = 0; i < events; ++i) {
    const Event& e = event_at(i);
    const double seconds = e.duration_ms / 1000.0;
    Accumulator& acc = totals[e.content_id];
    ++acc.count;
    acc.sum += seconds;
    ++emitted;
    checksum += acc.sum;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (emitted != static_cast<int64_t>(events) || checksum < 0) std::exit(1);
  return {elapsed, ProcessCpuSeconds() - cpu_start};
}

// Over the events vector.
Timing RunBaseline(const std::vector<Event>& events) {
  return RunLoop(events.size(), [&](uint64_t i) -> const Event& { return events[i]; });
}

// Over generated events: GeneratedEvent(i), computed, nothing read from memory.
Timing RunGeneratedBaseline(uint64_t events) {
  return RunLoop(events, [](uint64_t i) { return GeneratedEvent(i); });
}

// Streams the source's records (what weir's reader reads: the events with
// their timestamps) from memory on `threads` threads, each its own part,
// doing nothing with them but a sum.
Timing RunMemoryRead(const std::vector<testing::TimestampedValue<Event>>& records, int threads) {
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8, 0);
  std::vector<std::thread> readers;
  for (int t = 0; t < threads; ++t) {
    readers.emplace_back([&, t] {
      const size_t begin = records.size() * t / threads;
      const size_t end = records.size() * (t + 1) / threads;
      uint64_t sum = 0;
      for (size_t i = begin; i < end; ++i) {
        sum += records[i].value.content_id + static_cast<uint64_t>(records[i].timestamp);
      }
      sums[static_cast<size_t>(t) * 8] = sum;
    });
  }
  for (std::thread& reader : readers) reader.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t total = 0;
  for (uint64_t sum : sums) total += sum;
  if (total == 0 && !records.empty()) std::exit(1);
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

  std::shared_ptr<Source<Event>> source = MakeEventSource(events);
  auto generated = std::make_shared<GeneratedSource>(flags.events);
  std::vector<testing::TimestampedValue<Event>> records;
  records.reserve(events.size());
  for (const Event& e : events) records.push_back({e, e.event_ts});

  std::vector<BenchResult> results;
  std::printf("W0: %llu events, best of %d runs each\n",
              static_cast<unsigned long long>(flags.events), flags.repeat);
  // Contenders alternate so that machine noise hits all of them alike.
  Timing baseline_best;
  Timing generated_baseline_best;
  std::vector<Timing> weir_best(flags.parallelism.size());
  std::vector<Timing> generated_best(flags.parallelism.size());
  std::vector<Timing> http_best(flags.parallelism.size());
  Timing read_best[2];
  for (int round = 0; round < flags.repeat; ++round) {
    baseline_best.Keep(RunBaseline(events));
    for (size_t i = 0; i < flags.parallelism.size(); ++i) {
      weir_best[i].Keep(RunWeir(source, flags.parallelism[i], flags.events));
      if (http) {
        http_best[i].Keep(RunWeir(source, flags.parallelism[i], flags.events, true));
      }
    }
    generated_baseline_best.Keep(RunGeneratedBaseline(flags.events));
    for (size_t i = 0; i < flags.parallelism.size(); ++i) {
      generated_best[i].Keep(RunWeir(generated, flags.parallelism[i], flags.events));
    }
    for (int threads : {1, 2}) read_best[threads - 1].Keep(RunMemoryRead(records, threads));
  }
  const double n = static_cast<double>(flags.events);
  results.push_back(Result("baseline", "flat_hash_map loop", 1, n, baseline_best));
  for (size_t i = 0; i < flags.parallelism.size(); ++i) {
    results.push_back(Result("weir", "memory", flags.parallelism[i], n, weir_best[i]));
  }
  for (int threads : {1, 2}) {
    results.push_back(Result("floor", "memory read only", threads, n, read_best[threads - 1]));
  }
  results.push_back(Result("loop", "generated", 1, n, generated_baseline_best));
  for (size_t i = 0; i < flags.parallelism.size(); ++i) {
    results.push_back(Result("weir", "generated", flags.parallelism[i], n, generated_best[i]));
  }
  if (http) {
    for (size_t i = 0; i < flags.parallelism.size(); ++i) {
      results.push_back(
          Result("weir", "memory+http-scraped-10/s", flags.parallelism[i], n, http_best[i]));
    }
  }
  // Each row against its own loop: the generated ones against the loop over
  // generated events, the others against the loop over the vector.
  const BenchResult* generated_loop = nullptr;
  for (const BenchResult& r : results) {
    if (r.name == "loop") generated_loop = &r;
  }
  for (const BenchResult& r : results) {
    const BenchResult& loop = r.variant == "generated" ? *generated_loop : results[0];
    const double per_cpu = r.fields[1].second;
    std::printf(
        "  %-8s %-26s p=%d  %12.0f events/s  (%.3f s)  %.2fx its loop   %12.0f events/CPU-s  "
        "%.2fx\n",
        r.name.c_str(), r.variant.c_str(), r.parallelism, r.events_per_sec, r.seconds,
        r.events_per_sec / loop.events_per_sec, per_cpu, per_cpu / loop.fields[1].second);
  }
  // Scaling: the second worker's gain, and the memory bus's own.
  auto rate = [&](const char* name, const char* variant, int parallelism) {
    for (const BenchResult& r : results) {
      if (r.name == name && r.variant == variant && r.parallelism == parallelism) {
        return r.events_per_sec;
      }
    }
    return 0.0;
  };
  if (rate("weir", "memory", 1) > 0 && rate("weir", "memory", 2) > 0) {
    std::printf(
        "  p=2 / p=1: weir memory %.2f, weir generated %.2f; memory read 2 threads / 1 thread "
        "%.2f\n",
        rate("weir", "memory", 2) / rate("weir", "memory", 1),
        rate("weir", "generated", 2) / rate("weir", "generated", 1),
        rate("floor", "memory read only", 2) / rate("floor", "memory read only", 1));
  }
  WriteJson(flags.json, "W0", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
