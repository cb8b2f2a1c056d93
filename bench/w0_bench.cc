// W0 (../shared/BENCHMARKS.md): the runtime's cost per record.
//
// 20M in-memory events -> Map(engagement_seconds = duration_ms / 1000.0) ->
// KeyBy(content_id) -> per-key running count and sum in a
// KeyedProcessFunction -> a sink that counts. Parallelism 1 and 2, against a
// hand-written single-thread loop over the same vector into an
// absl::flat_hash_map, in the same run.
//
//   weir-bench-w0 [--events=20000000] [--json=w0.json] [--parallelism=1,2] [--repeat=3]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <span>
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
    Accumulator& acc = totals_[ctx.CurrentKey()];
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

double RunWeir(const std::shared_ptr<testing::VectorSource<Event>>& source, int parallelism,
               uint64_t events) {
  Pipeline pipeline({.parallelism = parallelism});
  auto sink = std::make_shared<CountingSink>();
  pipeline.Source(source)
      .Map([](const Event& e) {
        return Seconds{e.content_id, e.duration_ms / 1000.0};
      })
      .KeyBy([](const Seconds& s) { return s.content_id; })
      .Process(RunningTotals{})
      .Sink(sink);
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = pipeline.Run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!status.ok() || sink->count() != static_cast<int64_t>(events)) {
    std::fprintf(stderr, "weir W0 failed: %s, sink saw %lld of %llu events\n",
                 status.ToString().c_str(), static_cast<long long>(sink->count()),
                 static_cast<unsigned long long>(events));
    std::exit(1);
  }
  return seconds;
}

double RunBaseline(const std::vector<Event>& events) {
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
  return elapsed;
}

int Main(int argc, char** argv) {
  const BenchFlags flags = ParseFlags(argc, argv, 20'000'000);
  GeneratorOptions gen;
  gen.events = flags.events;
  gen.zipf = flags.zipf;
  std::vector<Event> events = GenerateEvents(gen);

  auto source = MakeEventSource(events);

  std::vector<BenchResult> results;
  std::printf("W0: %llu events, best of %d runs each\n",
              static_cast<unsigned long long>(flags.events), flags.repeat);
  // Contenders alternate so that machine noise hits all of them alike.
  std::vector<double> baseline_best(1, 1e30);
  std::vector<double> weir_best(flags.parallelism.size(), 1e30);
  for (int round = 0; round < flags.repeat; ++round) {
    baseline_best[0] = std::min(baseline_best[0], RunBaseline(events));
    for (size_t i = 0; i < flags.parallelism.size(); ++i) {
      weir_best[i] = std::min(weir_best[i], RunWeir(source, flags.parallelism[i], flags.events));
    }
  }
  const double n = static_cast<double>(flags.events);
  results.push_back({"baseline", "flat_hash_map loop", 1, n / baseline_best[0], baseline_best[0]});
  for (size_t i = 0; i < flags.parallelism.size(); ++i) {
    results.push_back({"weir", "memory", flags.parallelism[i], n / weir_best[i], weir_best[i]});
  }
  for (const BenchResult& r : results) {
    std::printf("  %-8s p=%d  %12.0f events/s  (%.3f s)  %.2fx baseline\n", r.name.c_str(),
                r.parallelism, r.events_per_sec, r.seconds,
                r.events_per_sec / results[0].events_per_sec);
  }
  WriteJson(flags.json, "W0", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
