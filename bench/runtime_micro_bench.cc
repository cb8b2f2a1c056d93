// Google Benchmark micro benches of the runtime's building blocks: the SPSC
// ring between workers, key -> key group -> worker routing, a KeyBy
// exchange through a whole pipeline, and the Debezium decoder on W2's
// envelopes against the hand-written On Demand walk of W2's loop, and
// (with the examples built) the engagement pipeline's outbox record written
// with json::Writer and its ClickHouse row encoded in RowBinary.
//
//   build/release/bench/weir-bench-micro [--json=FILE] [--benchmark_filter=...]
//
// --json writes the results in the JSON of bench/README.md ("The JSON")
// (items/s as events_per_sec), like the other weir-bench-* binaries; Google
// Benchmark's own flags work as usual.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/w2_workload.h"
#include "bench/workload_events.h"
#include "benchmark/benchmark.h"
#include "simdjson.h"
#include "weir/internal/batch.h"
#include "weir/internal/spsc_ring.h"
#include "weir/key.h"
#include "weir/testing.h"
#include "weir/weir.h"

#ifdef WEIR_BENCH_ENGAGEMENT
#include <variant>

#include "examples/engagement/generator.h"
#include "examples/engagement/model.h"
#include "weir/connectors/clickhouse.h"
#endif

namespace weir {
namespace {

void BM_RingPushPopSameThread(benchmark::State& state) {
  internal::SpscRing<uint64_t> ring(1024);
  uint64_t value = 0;
  uint64_t out = 0;
  for (auto _ : state) {
    uint64_t v = value++;
    ring.TryPush(v);
    ring.TryPop(out);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RingPushPopSameThread);

// Envelopes of 1024-record batches across two threads: the exchange's unit of transfer.
void BM_RingBatchesAcrossThreads(benchmark::State& state) {
  constexpr int kBatch = 1024;
  internal::SpscRing<internal::Envelope<uint64_t>> ring(static_cast<size_t>(state.range(0)));
  std::atomic<bool> done{false};
  std::atomic<int64_t> received{0};
  std::thread consumer([&] {
    internal::Envelope<uint64_t> envelope;
    int64_t count = 0;
    while (!done.load(std::memory_order_relaxed)) {
      while (ring.TryPop(envelope)) count += static_cast<int64_t>(envelope.batch.size());
    }
    while (ring.TryPop(envelope)) count += static_cast<int64_t>(envelope.batch.size());
    received = count;
  });
  for (auto _ : state) {
    internal::Envelope<uint64_t> envelope;
    envelope.batch.values.resize(kBatch);
    envelope.batch.timestamps.resize(kBatch);
    while (!ring.TryPush(envelope)) {
    }
  }
  done = true;
  consumer.join();
  state.SetItemsProcessed(received.load());
}
BENCHMARK(BM_RingBatchesAcrossThreads)->Arg(4)->Arg(64)->UseRealTime();

void BM_KeyGroupRouteInt(benchmark::State& state) {
  const int parallelism = static_cast<int>(state.range(0));
  uint64_t key = 0;
  for (auto _ : state) {
    const int worker = WorkerForKeyGroup(KeyGroupOf(key++, 128), 128, parallelism);
    benchmark::DoNotOptimize(worker);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KeyGroupRouteInt)->Arg(2)->Arg(4);

void BM_KeyGroupRouteString(benchmark::State& state) {
  std::vector<std::string> keys;
  for (int i = 0; i < 4096; ++i) keys.push_back("content-" + std::to_string(i * 7919));
  size_t i = 0;
  for (auto _ : state) {
    const int worker = WorkerForKeyGroup(KeyGroupOf(keys[i++ & 4095], 128), 128, 2);
    benchmark::DoNotOptimize(worker);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KeyGroupRouteString);

// Source -> KeyBy -> sink through the runtime, 4M integers per iteration.
void BM_KeyByExchangePipeline(benchmark::State& state) {
  const int parallelism = static_cast<int>(state.range(0));
  std::vector<uint64_t> values(4'000'000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = i * 2654435761u;
  auto source = testing::VectorSource<uint64_t>::Create(values);
  for (auto _ : state) {
    Pipeline pipeline({.parallelism = parallelism});
    std::atomic<int64_t> count{0};
    pipeline.Source(source)
        .KeyBy([](uint64_t v) { return v; })
        .AsStream()
        .Sink([&count](const uint64_t&) { count.fetch_add(1, std::memory_order_relaxed); });
    if (!pipeline.Run().ok() || count.load() != static_cast<int64_t>(values.size())) {
      state.SkipWithError("pipeline failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(values.size()));
}
BENCHMARK(BM_KeyByExchangePipeline)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// W2's envelopes (bench/w2_workload.h), 4,096 of them, made once.
const std::vector<std::string>& W2Envelopes() {
  static const std::vector<std::string> envelopes = [] {
    bench::GeneratorOptions gen;
    gen.events = 4096;
    std::mt19937_64 rng(7);
    std::vector<std::string> out;
    for (const bench::Event& e : bench::GenerateEvents(gen)) out.push_back(bench::Envelope(e, rng));
    return out;
  }();
  return envelopes;
}

// weir's decoder as the Kafka source runs it: each envelope into a
// Change<Engagement> with W2's field declaration.
void BM_DebeziumDecodeW2(benchmark::State& state) {
  const std::vector<std::string>& envelopes = W2Envelopes();
  auto factory = bench::EngagementSource("unused").deserializer;
  auto deserializer = factory();
  if (!deserializer.ok()) {
    state.SkipWithError(deserializer.status().ToString().c_str());
    return;
  }
  kafka::KafkaRecord record;
  record.has_value = true;
  int64_t sum = 0;
  size_t idx = 0;
  for (auto _ : state) {
    record.value = envelopes[idx];
    idx = (idx + 1) % envelopes.size();
    absl::StatusOr<debezium::Change<bench::Engagement>> change =
        (*deserializer)->Deserialize(record);
    if (!change.ok()) {
      state.SkipWithError(change.status().ToString().c_str());
      return;
    }
    sum += change->after->duration_ms;
    benchmark::DoNotOptimize(change);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DebeziumDecodeW2);

// W2's envelopes in turn, each copied into a padded buffer and parsed as
// W2's loop does.
class EnvelopeCycle {
 public:
  // Starts parsing the next envelope into `doc`; false on an error.
  bool Next(simdjson::ondemand::document& doc) {
    const std::string& value = envelopes_[idx_];
    idx_ = (idx_ + 1) % envelopes_.size();
    std::memcpy(buffer_.data(), value.data(), value.size());
    return !parser_.iterate(buffer_.data(), value.size(), buffer_.size()).get(doc);
  }

 private:
  const std::vector<std::string>& envelopes_ = W2Envelopes();
  simdjson::ondemand::parser parser_;
  simdjson::padded_string buffer_{4096};
  size_t idx_ = 0;
};

// W2's hand-written loop's On Demand walk: copy into a padded buffer, read
// the seven columns of "after".
void BM_OnDemandLoopW2(benchmark::State& state) {
  EnvelopeCycle envelopes;
  int64_t sum = 0;
  for (auto _ : state) {
    simdjson::ondemand::document doc;
    simdjson::ondemand::object after;
    int64_t numbers[5] = {};
    std::string_view event_type;
    std::string_view device;
    if (!envelopes.Next(doc) || doc["after"].get_object().get(after) ||
        after["event_id"].get_int64().get(numbers[0]) ||
        after["content_id"].get_int64().get(numbers[1]) ||
        after["user_id"].get_int64().get(numbers[2]) ||
        after["event_type"].get_string().get(event_type) ||
        after["event_ts"].get_int64().get(numbers[3]) ||
        after["duration_ms"].get_int64().get(numbers[4]) ||
        after["device"].get_string().get(device)) {
      state.SkipWithError("bad envelope");
      return;
    }
    sum += numbers[4] + static_cast<int64_t>(event_type.size() + device.size());
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OnDemandLoopW2);

// Reads every value of `value` as a strict decoder must (each number's
// grammar, each string's escapes, each literal), keeping nothing.
bool ValidateAll(simdjson::ondemand::value value) {
  simdjson::ondemand::json_type type;
  if (value.type().get(type)) return false;
  switch (type) {
    case simdjson::ondemand::json_type::object: {
      simdjson::ondemand::object object;
      if (value.get_object().get(object)) return false;
      for (auto field : object) {
        simdjson::ondemand::value inner;
        if (field.value().get(inner) || !ValidateAll(inner)) return false;
      }
      return true;
    }
    case simdjson::ondemand::json_type::array: {
      simdjson::ondemand::array array;
      if (value.get_array().get(array)) return false;
      for (auto element : array) {
        simdjson::ondemand::value inner;
        if (element.get(inner) || !ValidateAll(inner)) return false;
      }
      return true;
    }
    case simdjson::ondemand::json_type::string: {
      std::string_view text;
      return !value.get_string().get(text);
    }
    case simdjson::ondemand::json_type::number: {
      simdjson::ondemand::number number;
      return !value.get_number().get(number);
    }
    case simdjson::ondemand::json_type::boolean: {
      bool flag = false;
      return !value.get_bool().get(flag);
    }
    case simdjson::ondemand::json_type::null:
      return value.is_null();
  }
  return false;
}

// The floor of a decoder that yields no wrong value: W2's loop's walk, but
// every value of the envelope read and checked (as weir's decoder does), no
// row built.
void BM_OnDemandValidateAllW2(benchmark::State& state) {
  EnvelopeCycle envelopes;
  for (auto _ : state) {
    simdjson::ondemand::document doc;
    simdjson::ondemand::value root;
    if (!envelopes.Next(doc) || doc.get_value().get(root) || !ValidateAll(root)) {
      state.SkipWithError("bad envelope");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OnDemandValidateAllW2);

#ifdef WEIR_BENCH_ENGAGEMENT
// 1,024 enriched events from the example's generator, so that the strings
// vary as in a stream; made once, so that the benches' rounds (and callgrind's
// counts of them) are only the work measured.
const std::vector<engagement::Enriched>& EnrichedRecords() {
  static const std::vector<engagement::Enriched> records = [] {
    engagement::GeneratorOptions options;
    options.seed = 11;
    engagement::ChangeGenerator generator(options);
    std::vector<engagement::Enriched> made;
    while (made.size() < 1024) {
      const engagement::GeneratedRecord record = generator.Next();
      const auto* event = std::get_if<engagement::EngagementEvent>(&record.row);
      if (event == nullptr) continue;
      for (const engagement::Content& content : generator.live_content()) {
        if (content.id == event->content_id) {
          made.push_back(engagement::Enrich(*event, content));
          break;
        }
      }
    }
    return made;
  }();
  return records;
}

// The engagement pipeline's outbox record as the pipeline writes it
// (engagement::AppendJson: 14 members written with json::Writer, among them
// two UUIDs, a title with quotes to escape, integers and two doubles),
// cycling over EnrichedRecords().
void BM_JsonWriterOutboxRecord(benchmark::State& state) {
  const std::vector<engagement::Enriched>& records = EnrichedRecords();
  std::string out;
  size_t next = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    engagement::AppendJson(records[next], out);
    next = (next + 1) % records.size();
    benchmark::DoNotOptimize(out.data());
    bytes += static_cast<int64_t>(out.size());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_JsonWriterOutboxRecord);

// The engagement pipeline's ClickHouse row as its sink encodes it in
// RowBinary (engagement::EnrichedColumns: 15 columns, among them 7 strings
// and two DateTimes), cycling over EnrichedRecords() and appending to one
// buffer that is emptied every 1,024 rows, as an insert batch is.
void BM_ClickHouseRowBinaryEnriched(benchmark::State& state) {
  const std::vector<engagement::Enriched>& records = EnrichedRecords();
  const clickhouse::Columns<engagement::Enriched> columns = engagement::EnrichedColumns();
  std::string out;
  size_t next = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    if (next == 0) {
      bytes += static_cast<int64_t>(out.size());
      out.clear();
    }
    columns.AppendRowBinary(records[next], out);
    next = (next + 1) % records.size();
    benchmark::DoNotOptimize(out.data());
  }
  bytes += static_cast<int64_t>(out.size());
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_ClickHouseRowBinaryEnriched);
#endif  // WEIR_BENCH_ENGAGEMENT

// Prints as usual and keeps every run for --json.
class CollectingReporter final : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration || run.iterations == 0) continue;
      bench::BenchResult result{"weir", run.benchmark_name(), 1, 0,
                                run.real_accumulated_time / static_cast<double>(run.iterations)};
      if (auto items = run.counters.find("items_per_second"); items != run.counters.end()) {
        result.events_per_sec = items->second.value;
      }
      results.push_back(std::move(result));
    }
  }
  std::vector<bench::BenchResult> results;
};

}  // namespace
}  // namespace weir

int main(int argc, char** argv) {
  std::string json;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--json=", 0) == 0) {
      json = arg.substr(7);
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 2;
  weir::CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  weir::bench::WriteJson(json, "micro", 0, reporter.results);
  return 0;
}
