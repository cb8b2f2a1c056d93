// W1 (../shared/BENCHMARKS.md): event-time windows over keyed state.
//
// 20M in-memory events (watermarks: 2 s bounded out-of-orderness) ->
// Map(engagement_seconds) -> KeyBy(content_id) -> tumbling event-time windows
// of 60 s with an incremental (count, sum) aggregate -> a sink that counts.
// Windows are not in the API yet, so the window is a KeyedProcessFunction: a
// MapState<window start, accumulator> per key and an event-time timer at each
// window's end that emits and clears it. Variants: state in memory and in
// RocksDB, parallelism 1 and 2, against a hand-written single-thread loop
// that buckets by (content_id, window start) in a hash map and emits windows
// as its watermark passes them, in the same run. Every run checks that the
// window counts add up to the number of events.
//
//   weir-bench-w1 [--events=20000000] [--json=w1.json] [--parallelism=1,2] [--repeat=3]
//                 [--backends=memory,rocksdb]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "bench/workload_events.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::bench {
namespace {

constexpr int64_t kWindowMs = 60'000;
constexpr int64_t kMaxOutOfOrdernessMs = 2'000;

struct Seconds {
  uint64_t content_id;
  double seconds;
};

// The incremental aggregate of one window.
struct WindowAcc {
  int64_t count = 0;
  double sum = 0;
};

struct WindowResult {
  uint64_t content_id;
  int64_t window_start;
  int64_t count;
  double sum;
};

int64_t WindowStart(int64_t ts) {
  int64_t offset = ts % kWindowMs;
  if (offset < 0) offset += kWindowMs;
  return ts - offset;
}

// What every weir run and the baseline must agree on.
struct Outcome {
  double seconds = 0;
  double cpu_seconds = 0;  // of every thread of the process
  int64_t windows = 0;
  int64_t counted = 0;  // sum of the window counts
  double sum = 0;       // sum of the window sums
  int64_t late = 0;     // events dropped behind the watermark
};

}  // namespace
}  // namespace weir::bench

template <>
struct weir::Codec<weir::bench::WindowAcc> {
  static void Encode(const weir::bench::WindowAcc& acc, std::string& out) {
    weir::Codec<int64_t>::Encode(acc.count, out);
    weir::Codec<double>::Encode(acc.sum, out);
  }
  static bool Decode(std::string_view& in, weir::bench::WindowAcc& acc) {
    return weir::Codec<int64_t>::Decode(in, acc.count) && weir::Codec<double>::Decode(in, acc.sum);
  }
};

namespace weir::bench {
namespace {

// A tumbling event-time window with an incremental aggregate, as Flink's
// window operator runs it: the window [start, start + 60 s) fires when the
// watermark reaches start + 60 s - 1 ms; records of windows already fired are
// late and dropped (zero allowed lateness).
class TumblingWindowAggregate final : public KeyedProcessFunction<uint64_t, Seconds, WindowResult> {
 public:
  explicit TumblingWindowAggregate(std::shared_ptr<std::atomic<int64_t>> late)
      : late_total_(std::move(late)) {}

  absl::Status ProcessElement(const Seconds& value, Context& ctx,
                              Collector<WindowResult>&) override {
    const int64_t start = WindowStart(ctx.timestamp());
    const Timestamp window_max = start + kWindowMs - 1;
    if (window_max <= ctx.current_watermark()) {
      ++late_;
      return absl::OkStatus();
    }
    MapState<int64_t, WindowAcc> windows = ctx.GetState(kWindows);
    WindowAcc acc;
    if (const WindowAcc* existing = windows.Find(start)) {
      acc = *existing;
    } else {
      ctx.timer_service().RegisterEventTimeTimer(window_max);
    }
    ++acc.count;
    acc.sum += value.seconds;
    windows.Put(start, acc);
    return absl::OkStatus();
  }

  absl::Status OnTimer(Timestamp timestamp, OnTimerContext& ctx,
                       Collector<WindowResult>& out) override {
    const int64_t start = timestamp + 1 - kWindowMs;
    MapState<int64_t, WindowAcc> windows = ctx.GetState(kWindows);
    if (const WindowAcc* acc = windows.Find(start)) {
      out.Collect(WindowResult{ctx.CurrentKey(), start, acc->count, acc->sum});
      windows.Remove(start);
    }
    return absl::OkStatus();
  }

  absl::Status Close() override {
    *late_total_ += late_;
    return absl::OkStatus();
  }

 private:
  static inline const MapStateDescriptor<int64_t, WindowAcc> kWindows{"windows"};
  std::shared_ptr<std::atomic<int64_t>> late_total_;
  int64_t late_ = 0;
};

// Counts windows and adds up their counts and sums.
class WindowSink final : public Sink<WindowResult> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<WindowResult>>> CreateWriter(
      const SinkContext&) override {
    return std::unique_ptr<SinkWriter<WindowResult>>(new Writer(this));
  }
  int64_t windows() const { return windows_.load(); }
  int64_t counted() const { return counted_.load(); }
  double sum() const { return sum_.load(); }

 private:
  class Writer final : public SinkWriter<WindowResult> {
   public:
    explicit Writer(WindowSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<WindowResult> values, std::span<const Timestamp>) override {
      windows_ += static_cast<int64_t>(values.size());
      for (const WindowResult& w : values) {
        counted_ += w.count;
        sum_ += w.sum;
      }
      return absl::OkStatus();
    }
    absl::Status Flush() override {
      sink_->windows_ += std::exchange(windows_, 0);
      sink_->counted_ += std::exchange(counted_, 0);
      const double sum = std::exchange(sum_, 0.0);
      double expected = sink_->sum_.load();
      while (!sink_->sum_.compare_exchange_weak(expected, expected + sum)) {
      }
      return absl::OkStatus();
    }

   private:
    WindowSink* sink_;
    int64_t windows_ = 0;
    int64_t counted_ = 0;
    double sum_ = 0;
  };
  std::atomic<int64_t> windows_{0};
  std::atomic<int64_t> counted_{0};
  std::atomic<double> sum_{0};
};

Outcome RunWeir(const std::shared_ptr<testing::VectorSource<Event>>& source, int parallelism,
                bool rocksdb) {
  // Outside the timing: the scratch directory (and its removal).
  std::unique_ptr<ScratchDir> state_dir;
  PipelineOptions options;
  options.parallelism = parallelism;
  if (rocksdb) {
    state_dir = std::make_unique<ScratchDir>("weir-bench-w1");
    options.state_backend = StateBackend::RocksDb(state_dir->path());
  }
  Pipeline pipeline(options);
  auto sink = std::make_shared<WindowSink>();
  auto late = std::make_shared<std::atomic<int64_t>>(0);
  pipeline
      .Source(source, WatermarkStrategy<Event>::BoundedOutOfOrderness(
                          absl::Milliseconds(kMaxOutOfOrdernessMs)))
      .Map([](const Event& e) {
        return Seconds{e.content_id, e.duration_ms / 1000.0};
      })
      .KeyBy([](const Seconds& s) { return s.content_id; })
      .Process(TumblingWindowAggregate(late))
      .Sink(sink);
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = pipeline.Run();
  Outcome outcome;
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  if (!status.ok()) {
    std::fprintf(stderr, "weir W1 (%s, p=%d) failed: %s\n", rocksdb ? "rocksdb" : "memory",
                 parallelism, status.ToString().c_str());
    std::exit(1);
  }
  outcome.windows = sink->windows();
  outcome.counted = sink->counted();
  outcome.sum = sink->sum();
  outcome.late = late->load();
  return outcome;
}

Outcome RunBaseline(const std::vector<Event>& events) {
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  Outcome outcome;
  absl::flat_hash_map<std::pair<uint64_t, int64_t>, WindowAcc> open;
  // Window start -> the content ids with that window open, to emit windows in
  // order as the watermark passes them.
  std::map<int64_t, std::vector<uint64_t>> keys_by_window;
  auto fire_up_to = [&](Timestamp watermark) {
    while (!keys_by_window.empty() && keys_by_window.begin()->first + kWindowMs - 1 <= watermark) {
      const int64_t window_start = keys_by_window.begin()->first;
      for (uint64_t content_id : keys_by_window.begin()->second) {
        auto it = open.find(std::pair(content_id, window_start));
        ++outcome.windows;
        outcome.counted += it->second.count;
        outcome.sum += it->second.sum;
        open.erase(it);
      }
      keys_by_window.erase(keys_by_window.begin());
    }
  };
  Timestamp max_ts = kMinTimestamp;
  Timestamp watermark = kMinTimestamp;
  for (const Event& e : events) {
    const int64_t window_start = WindowStart(e.event_ts);
    if (window_start + kWindowMs - 1 <= watermark) {
      ++outcome.late;
      continue;
    }
    auto [it, inserted] = open.try_emplace(std::pair(e.content_id, window_start));
    if (inserted) keys_by_window[window_start].push_back(e.content_id);
    ++it->second.count;
    it->second.sum += e.duration_ms / 1000.0;
    if (e.event_ts > max_ts) {
      max_ts = e.event_ts;
      watermark = max_ts - kMaxOutOfOrdernessMs - 1;
      fire_up_to(watermark);
    }
  }
  fire_up_to(kMaxTimestamp);
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  return outcome;
}

// Fails loudly unless every event was counted in exactly one window.
void Check(const char* what, const Outcome& outcome, uint64_t events, const Outcome& baseline) {
  const bool sums_agree = std::abs(outcome.sum - baseline.sum) <= 1e-9 * std::abs(baseline.sum);
  if (outcome.counted == static_cast<int64_t>(events) && outcome.late == 0 && sums_agree &&
      outcome.windows == baseline.windows) {
    return;
  }
  std::fprintf(stderr,
               "W1 check failed for %s: window counts add up to %lld of %llu events (%lld late), "
               "%lld windows (baseline %lld), sum %.6f (baseline %.6f)\n",
               what, static_cast<long long>(outcome.counted),
               static_cast<unsigned long long>(events), static_cast<long long>(outcome.late),
               static_cast<long long>(outcome.windows), static_cast<long long>(baseline.windows),
               outcome.sum, baseline.sum);
  std::exit(1);
}

int Main(int argc, char** argv) {
  bool run_memory = true;
  bool run_rocksdb = true;
  const BenchFlags flags = ParseFlags(
      argc, argv, 20'000'000, {{"--backends=", "memory,rocksdb", [&](const char* value) {
                                  const std::string backends = value;
                                  run_memory = backends.find("memory") != std::string::npos;
                                  run_rocksdb = backends.find("rocksdb") != std::string::npos;
                                }}});
  GeneratorOptions gen;
  gen.events = flags.events;
  gen.zipf = flags.zipf;
  std::vector<Event> events = GenerateEvents(gen);

  auto source = MakeEventSource(events);

  std::printf("W1: %llu events, tumbling 60 s windows, best of %d runs each\n",
              static_cast<unsigned long long>(flags.events), flags.repeat);
  // The fastest run of each contender, by wall time and (separately) by CPU time.
  struct Best {
    double seconds = 1e30;
    double cpu_seconds = 1e30;
    void Add(const Outcome& outcome) {
      seconds = std::min(seconds, outcome.seconds);
      cpu_seconds = std::min(cpu_seconds, outcome.cpu_seconds);
    }
  };
  const Outcome reference = RunBaseline(events);
  Check("baseline", reference, flags.events, reference);
  Best baseline;
  baseline.Add(reference);
  const size_t num_p = flags.parallelism.size();
  std::vector<Best> memory(num_p);
  std::vector<Best> rocksdb(num_p);
  // Contenders alternate so that machine noise hits all of them alike.
  for (int round = 0; round < flags.repeat; ++round) {
    if (round > 0) baseline.Add(RunBaseline(events));
    for (size_t i = 0; i < num_p; ++i) {
      for (bool use_rocksdb : {false, true}) {
        if (!(use_rocksdb ? run_rocksdb : run_memory)) continue;
        const Outcome outcome = RunWeir(source, flags.parallelism[i], use_rocksdb);
        Check(use_rocksdb ? "tumbling-rocksdb" : "tumbling-memory", outcome, flags.events,
              reference);
        (use_rocksdb ? rocksdb : memory)[i].Add(outcome);
      }
    }
  }

  const double n = static_cast<double>(flags.events);
  auto result = [&](const char* name, const char* variant, int p, const Best& best) {
    return BenchResult{
        name,
        variant,
        p,
        n / best.seconds,
        best.seconds,
        {{"cpu_seconds", best.cpu_seconds}, {"events_per_cpu_sec", n / best.cpu_seconds}}};
  };
  std::vector<BenchResult> results;
  results.push_back(result("baseline", "tumbling", 1, baseline));
  for (size_t i = 0; i < num_p; ++i) {
    const int p = flags.parallelism[i];
    if (run_memory) results.push_back(result("weir", "tumbling-memory", p, memory[i]));
    if (run_rocksdb) {
      results.push_back(result("weir", "tumbling-rocksdb", p, rocksdb[i]));
      if (run_memory) {
        results.back().fields.push_back(
            {"rocksdb_vs_memory", memory[i].seconds / rocksdb[i].seconds});
        results.back().fields.push_back(
            {"rocksdb_vs_memory_cpu", memory[i].cpu_seconds / rocksdb[i].cpu_seconds});
      }
    }
  }
  std::printf("  %lld windows; their counts add up to the %llu events in every run\n",
              static_cast<long long>(reference.windows),
              static_cast<unsigned long long>(flags.events));
  std::printf("  %-8s %-16s %-3s %14s %9s %14s %9s\n", "", "variant", "p", "events/s", "x base",
              "events/cpu-s", "x base");
  for (const BenchResult& r : results) {
    const double per_cpu = r.fields[1].second;
    std::printf("  %-8s %-16s %-3d %14.0f %8.3fx %14.0f %8.3fx", r.name.c_str(), r.variant.c_str(),
                r.parallelism, r.events_per_sec, r.events_per_sec / results[0].events_per_sec,
                per_cpu, per_cpu / results[0].fields[1].second);
    if (r.fields.size() > 2) {
      std::printf("   rocksdb/memory %.2fx (cpu %.2fx)", r.fields[2].second, r.fields[3].second);
    }
    std::printf("\n");
  }
  WriteJson(flags.json, "W1", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
