// W1 (bench/README.md): event-time windows over keyed state.
//
// 20M in-memory events (watermarks: 2 s bounded out-of-orderness) ->
// Map(engagement_seconds) -> KeyBy(content_id) -> event-time windows with an
// incremental (count, sum) aggregate (weir's Window().Aggregate()) -> a sink
// that counts. Windows: tumbling 60 s, and sliding 10 min every 1 min.
// Variants: state in memory and in RocksDB, parallelism 1 and 2, against a
// hand-written single-thread loop in the same run: tumbling buckets by
// (content_id, window start) in a hash map; sliding buckets by (content_id,
// 1-minute pane) and merges a window's 10 panes when it fires (the same
// pane technique weir uses). Both emit windows as the watermark passes them.
// Every run checks that the window counts add up to the number of events
// times the windows each event belongs to, and agree with the baseline.
//
//   weir-bench-w1 [--events=20000000] [--json=w1.json] [--parallelism=1,2] [--repeat=3]
//                 [--backends=memory,rocksdb] [--windows=tumbling,sliding]

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
#include "bench/window_workload.h"
#include "bench/workload_events.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::bench {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kMaxOutOfOrdernessMs = 2'000;

// A window shape: tumbling when slide == size.
struct Shape {
  const char* name;
  int64_t size_ms;
  int64_t slide_ms;
  int64_t windows_per_event() const { return size_ms / slide_ms; }
};
constexpr Shape kTumbling{"tumbling", kMinuteMs, kMinuteMs};
constexpr Shape kSliding{"sliding", 10 * kMinuteMs, kMinuteMs};

int64_t FloorTo(int64_t ts, int64_t step) {
  int64_t offset = ts % step;
  if (offset < 0) offset += step;
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

namespace weir::bench {
namespace {

Outcome RunWeir(const std::shared_ptr<testing::VectorSource<Event>>& source, const Shape& shape,
                int parallelism, bool rocksdb) {
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
  auto keyed = pipeline
                   .Source(source, WatermarkStrategy<Event>::BoundedOutOfOrderness(
                                       absl::Milliseconds(kMaxOutOfOrdernessMs)))
                   .Map([](const Event& e) {
                     return Seconds{e.content_id, e.duration_ms / 1000.0};
                   })
                   .KeyBy([](const Seconds& s) { return s.content_id; });
  auto windowed =
      shape.size_ms == shape.slide_ms
          ? keyed.Window(TumblingEventTimeWindows::Of(absl::Milliseconds(shape.size_ms)))
          : keyed.Window(SlidingEventTimeWindows::Of(absl::Milliseconds(shape.size_ms),
                                                     absl::Milliseconds(shape.slide_ms)));
  windowed
      .Aggregate(CountSum{},
                 [](const uint64_t& content_id, const TimeWindow& window, WindowAcc acc) {
                   return WindowResult{content_id, window.start, acc.count, acc.sum};
                 })
      .Name("windows")
      .Sink(sink);
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<JobHandle> job = pipeline.Start();
  absl::Status status = job.ok() ? job->Wait() : job.status();
  Outcome outcome;
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  if (!status.ok()) {
    std::fprintf(stderr, "weir W1 (%s, %s, p=%d) failed: %s\n", shape.name,
                 rocksdb ? "rocksdb" : "memory", parallelism, status.ToString().c_str());
    std::exit(1);
  }
  outcome.windows = sink->windows();
  outcome.counted = sink->counted();
  outcome.sum = sink->sum();
  for (const testing::OperatorMetricsSnapshot& m : testing::OperatorMetricsOf(job->Metrics())) {
    if (m.name == "windows") outcome.late += m.late_records;
  }
  return outcome;
}

// The hand-written loop: (content_id, pane) buckets in a hash map, a window's
// panes merged when the watermark passes its end; panes are the windows
// themselves when tumbling.
Outcome RunBaseline(const std::vector<Event>& events, const Shape& shape) {
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  Outcome outcome;
  const int64_t pane_ms = shape.slide_ms;  // size is a multiple of slide in both shapes
  absl::flat_hash_map<std::pair<uint64_t, int64_t>, WindowAcc> panes;
  // Pane start -> the content ids with that pane, to fire windows in order.
  std::map<int64_t, std::vector<uint64_t>> keys_by_pane;
  // The next window end (inclusive) to fire; windows fire in order of end.
  Timestamp next_end = kMaxTimestamp;
  absl::flat_hash_map<uint64_t, WindowAcc> merged;
  auto fire_window = [&](int64_t window_start) {
    merged.clear();
    for (auto it = keys_by_pane.lower_bound(window_start);
         it != keys_by_pane.end() && it->first < window_start + shape.size_ms; ++it) {
      for (uint64_t content_id : it->second) {
        const WindowAcc& pane = panes.find(std::pair(content_id, it->first))->second;
        WindowAcc& acc = merged[content_id];
        acc.count += pane.count;
        acc.sum += pane.sum;
      }
    }
    for (const auto& [content_id, acc] : merged) {
      ++outcome.windows;
      outcome.counted += acc.count;
      outcome.sum += acc.sum;
    }
    // The pane starting here has no later window.
    auto first = keys_by_pane.find(window_start);
    if (first != keys_by_pane.end()) {
      for (uint64_t content_id : first->second) panes.erase(std::pair(content_id, window_start));
      keys_by_pane.erase(first);
    }
  };
  auto fire_up_to = [&](Timestamp watermark) {
    while (!keys_by_pane.empty()) {
      // The earliest window still holding a pane ends at first pane + slide - 1
      // at the earliest.
      if (next_end == kMaxTimestamp) next_end = keys_by_pane.begin()->first + pane_ms - 1;
      if (next_end > watermark) return;
      fire_window(next_end + 1 - shape.size_ms);
      next_end += shape.slide_ms;
      if (!keys_by_pane.empty() && keys_by_pane.begin()->first - shape.size_ms >= next_end) {
        next_end = kMaxTimestamp;  // a gap: restart from the next pane
      }
    }
    next_end = kMaxTimestamp;
  };
  Timestamp max_ts = kMinTimestamp;
  Timestamp watermark = kMinTimestamp;
  for (const Event& e : events) {
    // Late: the last window containing e has already fired.
    if (FloorTo(e.event_ts, shape.slide_ms) + shape.size_ms - 1 <= watermark) {
      ++outcome.late;
      continue;
    }
    const int64_t pane = FloorTo(e.event_ts, pane_ms);
    auto [it, inserted] = panes.try_emplace(std::pair(e.content_id, pane));
    if (inserted) {
      keys_by_pane[pane].push_back(e.content_id);
      if (next_end != kMaxTimestamp && pane + pane_ms - 1 < next_end) next_end = kMaxTimestamp;
    }
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

// Fails loudly unless every event was counted in each of its windows.
void Check(const std::string& what, const Outcome& outcome, uint64_t events, const Shape& shape,
           const Outcome& baseline) {
  const int64_t expected = static_cast<int64_t>(events) * shape.windows_per_event();
  const bool sums_agree = std::abs(outcome.sum - baseline.sum) <= 1e-9 * std::abs(baseline.sum);
  if (outcome.counted == expected && outcome.late == 0 && sums_agree &&
      outcome.windows == baseline.windows) {
    return;
  }
  std::fprintf(stderr,
               "W1 check failed for %s: window counts add up to %lld, expected %lld (%lld late), "
               "%lld windows (baseline %lld), sum %.6f (baseline %.6f)\n",
               what.c_str(), static_cast<long long>(outcome.counted),
               static_cast<long long>(expected), static_cast<long long>(outcome.late),
               static_cast<long long>(outcome.windows), static_cast<long long>(baseline.windows),
               outcome.sum, baseline.sum);
  std::exit(1);
}

int Main(int argc, char** argv) {
  bool run_memory = true;
  bool run_rocksdb = true;
  std::vector<Shape> shapes;
  const BenchFlags flags = ParseFlags(argc, argv, 20'000'000,
                                      {{"--backends=", "memory,rocksdb",
                                        [&](const char* value) {
                                          const std::string backends = value;
                                          run_memory = backends.find("memory") != std::string::npos;
                                          run_rocksdb =
                                              backends.find("rocksdb") != std::string::npos;
                                        }},
                                       {"--windows=", "tumbling,sliding", [&](const char* value) {
                                          const std::string windows = value;
                                          if (windows.find("tumbling") != std::string::npos)
                                            shapes.push_back(kTumbling);
                                          if (windows.find("sliding") != std::string::npos)
                                            shapes.push_back(kSliding);
                                        }}});
  if (shapes.empty()) shapes = {kTumbling, kSliding};
  GeneratorOptions gen;
  gen.events = flags.events;
  gen.zipf = flags.zipf;
  std::vector<Event> events = GenerateEvents(gen);

  auto source = MakeEventSource(events);

  std::printf("W1: %llu events, tumbling 60 s / sliding 10 min every 1 min, best of %d runs\n",
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
  const double n = static_cast<double>(flags.events);
  auto result = [&](const char* name, const std::string& variant, int p, const Best& best) {
    return BenchResult{
        name,
        variant,
        p,
        n / best.seconds,
        best.seconds,
        {{"cpu_seconds", best.cpu_seconds}, {"events_per_cpu_sec", n / best.cpu_seconds}}};
  };
  std::vector<BenchResult> results;
  std::printf("  %-8s %-16s %-3s %14s %9s %14s %9s\n", "", "variant", "p", "events/s", "x base",
              "events/cpu-s", "x base");
  for (const Shape& shape : shapes) {
    const Outcome reference = RunBaseline(events, shape);
    Check(std::string(shape.name) + " baseline", reference, flags.events, shape, reference);
    Best baseline;
    baseline.Add(reference);
    const size_t num_p = flags.parallelism.size();
    std::vector<Best> memory(num_p);
    std::vector<Best> rocksdb(num_p);
    // Contenders alternate so that machine noise hits all of them alike.
    for (int round = 0; round < flags.repeat; ++round) {
      if (round > 0) baseline.Add(RunBaseline(events, shape));
      for (size_t i = 0; i < num_p; ++i) {
        for (bool use_rocksdb : {false, true}) {
          if (!(use_rocksdb ? run_rocksdb : run_memory)) continue;
          const Outcome outcome = RunWeir(source, shape, flags.parallelism[i], use_rocksdb);
          Check(std::string(shape.name) + (use_rocksdb ? "-rocksdb" : "-memory"), outcome,
                flags.events, shape, reference);
          (use_rocksdb ? rocksdb : memory)[i].Add(outcome);
        }
      }
    }
    const size_t first = results.size();
    results.push_back(result("baseline", shape.name, 1, baseline));
    for (size_t i = 0; i < num_p; ++i) {
      const int p = flags.parallelism[i];
      if (run_memory)
        results.push_back(result("weir", std::string(shape.name) + "-memory", p, memory[i]));
      if (run_rocksdb) {
        results.push_back(result("weir", std::string(shape.name) + "-rocksdb", p, rocksdb[i]));
        if (run_memory) {
          results.back().fields.push_back(
              {"rocksdb_vs_memory", memory[i].seconds / rocksdb[i].seconds});
          results.back().fields.push_back(
              {"rocksdb_vs_memory_cpu", memory[i].cpu_seconds / rocksdb[i].cpu_seconds});
        }
      }
    }
    for (size_t r_idx = first; r_idx < results.size(); ++r_idx) {
      BenchResult& r = results[r_idx];
      r.fields.push_back({"vs_baseline", r.events_per_sec / results[first].events_per_sec});
      const double per_cpu = r.fields[1].second;
      std::printf("  %-8s %-16s %-3d %14.0f %8.3fx %14.0f %8.3fx", r.name.c_str(),
                  r.variant.c_str(), r.parallelism, r.events_per_sec,
                  r.events_per_sec / results[first].events_per_sec, per_cpu,
                  per_cpu / results[first].fields[1].second);
      if (r.fields.size() > 4) {  // rocksdb_vs_memory(_cpu) and vs_baseline
        std::printf("   rocksdb/memory %.2fx (cpu %.2fx)", r.fields[2].second, r.fields[3].second);
      }
      std::printf("\n");
    }
    std::printf("  %s: %lld windows; counts add up to %lld x %llu events in every run\n",
                shape.name, static_cast<long long>(reference.windows),
                static_cast<long long>(shape.windows_per_event()),
                static_cast<unsigned long long>(flags.events));
  }
  WriteJson(flags.json, "W1", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
