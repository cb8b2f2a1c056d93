// The job cluster_job_test runs in cluster mode: "key,id" records from the
// bounded topic `events`, repartitioned by key (a KeyBy between tasks,
// through Kafka), and the distinct ids per key counted in keyed state,
// emitting (key, count) whenever a new id arrives into a transactional file
// sink every process shares. Counting distinct ids makes the final count per
// key exact even where the broker shows a reader aborted records (the mock).

#ifndef WEIR_TESTS_UNIT_CLUSTER_COUNT_JOB_H_
#define WEIR_TESTS_UNIT_CLUSTER_COUNT_JOB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "weir/connectors/kafka.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::cluster_test {

struct Event {
  std::string key;
  int64_t id = 0;
};

}  // namespace weir::cluster_test

template <>
struct weir::Codec<weir::cluster_test::Event>
    : weir::MemberCodec<weir::cluster_test::Event, &weir::cluster_test::Event::key,
                        &weir::cluster_test::Event::id> {};

namespace weir::cluster_test {

using Count = std::pair<std::string, int64_t>;

class DistinctIds final : public weir::KeyedProcessFunction<std::string, Event, Count> {
 public:
  explicit DistinctIds(int64_t delay_us) : delay_us_(delay_us) {}
  absl::Status ProcessElement(const Event& event, Context& ctx,
                              weir::Collector<Count>& out) override {
    if (delay_us_ > 0) absl::SleepFor(absl::Microseconds(delay_us_));
    weir::MapState<int64_t, bool> seen = ctx.GetState(kSeen);
    if (seen.Contains(event.id)) return absl::OkStatus();
    seen.Put(event.id, true);
    weir::ValueState<int64_t> count = ctx.GetState(kCount);
    const int64_t now = (count.Get() != nullptr ? *count.Get() : 0) + 1;
    count.Update(now);
    out.Collect(Count{ctx.current_key(), now});
    return absl::OkStatus();
  }

 private:
  static inline const weir::MapStateDescriptor<int64_t, bool> kSeen{"seen"};
  static inline const weir::ValueStateDescriptor<int64_t> kCount{"count"};
  int64_t delay_us_;
};

// Adds the job to `pipeline` (nodes: Source 0, KeyBy 1, Process 2, Sink 3).
inline void BuildCountJob(weir::Pipeline& pipeline, const std::string& brokers,
                          const std::string& out_dir, int64_t delay_us) {
  auto source = weir::kafka::Source<Event>(
      {.client = {.brokers = brokers},
       .topics = {"events"},
       .deserializer = weir::kafka::DeserializeWith<Event>(
           [](const weir::kafka::KafkaRecord& record) -> absl::StatusOr<Event> {
             std::pair<std::string, std::string> parts =
                 absl::StrSplit(std::string(record.value), absl::MaxSplits(',', 1));
             Event event{.key = parts.first};
             if (!absl::SimpleAtoi(parts.second, &event.id)) {
               return absl::InvalidArgumentError("not key,id: " + std::string(record.value));
             }
             return event;
           }),
       .bounded = true});
  pipeline.Source(source)
      .Uid("events")
      .KeyBy([](const Event& event) { return event.key; })
      .Process(DistinctIds(delay_us))
      .Uid("distinct")
      .Sink(std::make_shared<weir::testing::TransactionalFileSink<Count>>(out_dir))
      .Uid("out");
}

}  // namespace weir::cluster_test

#endif  // WEIR_TESTS_UNIT_CLUSTER_COUNT_JOB_H_
