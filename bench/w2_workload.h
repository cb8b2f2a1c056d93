// The W2 workload (bench/README.md), shared by W2 and W4: engagement events
// as Debezium JSON envelopes in a 32-partition topic, decoded by weir's
// Kafka source and counted in tumbling one-minute event-time windows per
// content id.

#ifndef WEIR_BENCH_W2_WORKLOAD_H_
#define WEIR_BENCH_W2_WORKLOAD_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/window_workload.h"
#include "bench/workload_events.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "weir/connectors/kafka.h"
#include "weir/connectors/kafka_debezium.h"
#include "weir/weir.h"
#include "weir/window.h"

namespace weir::bench {

constexpr int kPartitions = 32;
constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kMaxOutOfOrdernessMs = 2'000;
constexpr const char kTopic[] = "engagement";
constexpr std::array<std::string_view, 4> kEventTypes = {"play", "pause", "finish", "click"};

// The row weir decodes (the columns of public.engagement_events).
struct Engagement {
  int64_t event_id = 0;
  int64_t content_id = 0;
  int64_t user_id = 0;
  std::string event_type;
  int64_t event_ts = 0;
  int32_t duration_ms = 0;
  std::string device;
};

// The Debezium envelope (JsonConverter with schemas.enable=false) of an
// INSERT of `e`; a random-length `raw_payload` JSON column spreads the sizes
// over 500-900 bytes.
inline std::string Envelope(const Event& e, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> padding(0, 380);
  std::string payload(static_cast<size_t>(padding(rng)), 'p');
  return absl::StrCat(
      R"({"before":null,"after":{"event_id":)", e.event_id, R"(,"content_id":)", e.content_id,
      R"(,"user_id":)", static_cast<int64_t>(e.user_id >> 1), R"(,"event_type":")",
      std::string(kEventTypes[static_cast<size_t>(e.event_type)]), R"(","event_ts":)", e.event_ts,
      R"(,"duration_ms":)", e.duration_ms, R"(,"device":")", std::string(e.device),
      R"(","raw_payload":"{\"ref\":\")", payload, R"(\"}"},)",
      R"("source":{"version":"2.5.0.Final","connector":"postgresql","name":"engagement",)",
      R"("ts_ms":)", e.event_ts + 150, R"(,"snapshot":"false","db":"app",)",
      R"("sequence":"[\"24023128\",\"24023304\"]","schema":"public",)",
      R"("table":"engagement_events","txId":)", 700 + e.event_id / 100, R"(,"lsn":)",
      24'000'000 + e.event_id * 64, R"(,"xmin":null},"op":"c","ts_ms":)", e.event_ts + 300,
      R"(,"transaction":null})");
}

// The Kafka source of the workload: bounded, Debezium decoding into an
// Engagement row, failing on a bad record.
inline kafka::SourceOptions<debezium::Change<Engagement>> EngagementSource(
    const std::string& brokers) {
  kafka::SourceOptions<debezium::Change<Engagement>> options;
  options.client.brokers = brokers;
  options.topics = {kTopic};
  options.bounded = true;
  options.on_error = ErrorPolicy::kFail;
  options.deserializer = kafka::DebeziumDeserializer(
      debezium::Fields<Engagement>()
          .Required("event_id", &Engagement::event_id)
          .Required("content_id", &Engagement::content_id)
          .Required("user_id", &Engagement::user_id)
          .Required("event_type", &Engagement::event_type)
          .Required("event_ts", &Engagement::event_ts,
                    debezium::EpochMillis(debezium::TimeType::kTimestamp))
          .Required("duration_ms", &Engagement::duration_ms)
          .Required("device", &Engagement::device));
  return options;
}

// AddTumblingJob without an observer.
struct NoObserver {};

// Source -> Filter(inserts) -> Map(seconds) -> KeyBy(content_id) ->
// tumbling one-minute windows (count, sum), 2 s out of orderness -> `sink`.
// `observe`, a ProcessFunction<Change, Change>, when given sees every change
// first (W4 notes a task's first record there).
template <class Observer = NoObserver>
void AddTumblingJob(Pipeline& pipeline, kafka::SourceOptions<debezium::Change<Engagement>> options,
                    std::shared_ptr<Sink<WindowResult>> sink, Observer observe = {}) {
  using Change = debezium::Change<Engagement>;
  Stream<Change> changes =
      pipeline
          .Source(kafka::Source(std::move(options)),
                  WatermarkStrategy<Change>::BoundedOutOfOrderness(
                      absl::Milliseconds(kMaxOutOfOrdernessMs))
                      .WithTimestampAssigner([](const Change& c, Timestamp ts) {
                        return c.after ? c.after->event_ts : ts;
                      }))
          .Uid("engagement");
  if constexpr (!std::is_same_v<Observer, NoObserver>) changes = changes.Process(observe);
  changes.Filter([](const Change& c) { return c.after.has_value(); })
      .Map([](const Change& c) {
        return Seconds{static_cast<uint64_t>(c.after->content_id), c.after->duration_ms / 1000.0};
      })
      .KeyBy([](const Seconds& s) { return s.content_id; })
      .Window(TumblingEventTimeWindows::Of(absl::Milliseconds(kMinuteMs)))
      .Aggregate(CountSum{},
                 [](const uint64_t& content_id, const TimeWindow& window, WindowAcc acc) {
                   return WindowResult{content_id, window.start, acc.count, acc.sum};
                 })
      .Uid("windows")
      .Sink(sink)
      .Uid("out");
}

// What ProduceEngagementInput wrote.
struct EngagementInput {
  size_t bytes = 0;
  size_t smallest = SIZE_MAX;
  size_t largest = 0;
};

// Generates `flags.events` events and produces their envelopes to kTopic
// (kPartitions partitions, made by the broker's start) on `brokers`.
inline absl::StatusOr<EngagementInput> ProduceEngagementInput(const std::string& brokers,
                                                              const BenchFlags& flags) {
  EngagementInput input;
  GeneratorOptions gen;
  gen.events = flags.events;
  gen.zipf = flags.zipf;
  const std::vector<Event> events = GenerateEvents(gen);
  std::mt19937_64 rng(7);
  std::vector<std::string> values;
  values.reserve(events.size());
  for (const Event& e : events) {
    values.push_back(Envelope(e, rng));
    input.bytes += values.back().size();
    input.smallest = std::min(input.smallest, values.back().size());
    input.largest = std::max(input.largest, values.back().size());
  }
  absl::Status produced = kafka::testing::ProduceGenerated(
      brokers, kTopic, static_cast<int64_t>(values.size()), [&](int64_t idx) {
        kafka::testing::TestRecord record;
        record.key = std::to_string(events[static_cast<size_t>(idx)].content_id);
        record.value = values[static_cast<size_t>(idx)];
        record.partition = static_cast<int32_t>(idx % kPartitions);
        record.timestamp_ms = events[static_cast<size_t>(idx)].event_ts;
        return record;
      });
  if (!produced.ok()) return produced;
  // The mock keeps ~5 MiB per partition: make sure nothing was dropped.
  for (int32_t partition = 0; partition < kPartitions; ++partition) {
    absl::StatusOr<std::pair<int64_t, int64_t>> marks =
        kafka::testing::QueryWatermarks(brokers, kTopic, partition);
    if (!marks.ok()) return marks.status();
    if (marks->first != 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("partition ", partition, " lost its first ", marks->first,
                       " records to the mock cluster's retention; use fewer --events"));
    }
  }
  return input;
}

}  // namespace weir::bench

#endif  // WEIR_BENCH_W2_WORKLOAD_H_
