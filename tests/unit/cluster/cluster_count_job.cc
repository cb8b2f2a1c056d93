// A cluster-mode job for cluster_job_test: reads "key,id" records from the
// bounded topic `events`, repartitions them by key (a KeyBy between tasks,
// through Kafka) and counts the distinct ids per key in keyed state,
// emitting (key, count) whenever a new id arrives, into a transactional file
// sink every process shares. Counting distinct ids makes the final count per
// key exact even where the broker shows a reader aborted records (the mock).
//
//   cluster_count_job <brokers> <job_id> <tasks> <checkpoint_dir> <out_dir> [instance_id]
//
// Exits 0 when the whole job ended (every task's input), 1 with the status
// on stderr otherwise. SIGTERM stops this process gracefully (its tasks
// commit a checkpoint and move to the other processes).

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "weir/connectors/kafka.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace {

struct Event {
  std::string key;
  int64_t id = 0;
};

}  // namespace

template <>
struct weir::Codec<Event> : weir::MemberCodec<Event, &Event::key, &Event::id> {};

namespace {

using Count = std::pair<std::string, int64_t>;

class DistinctIds final : public weir::KeyedProcessFunction<std::string, Event, Count> {
 public:
  absl::Status ProcessElement(const Event& event, Context& ctx,
                              weir::Collector<Count>& out) override {
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
};

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: cluster_count_job <brokers> <job_id> <tasks> <checkpoint_dir> <out_dir> "
                 "[instance_id]\n");
    return 2;
  }
  weir::PipelineOptions options;
  options.cluster.brokers = argv[1];
  options.cluster.job_id = argv[2];
  if (!absl::SimpleAtoi(argv[3], &options.cluster.tasks)) return 2;
  if (argc > 6) options.cluster.instance_id = argv[6];
  options.cluster.session_timeout = absl::Seconds(6);
  options.checkpoints.storage_uri = std::string("file://") + argv[4];
  options.checkpoints.interval = absl::Milliseconds(300);
  weir::Pipeline pipeline(options);
  auto source = weir::kafka::Source<Event>(
      {.client = {.brokers = argv[1]},
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
      .Process(DistinctIds())
      .Uid("distinct")
      .Sink(std::make_shared<weir::testing::TransactionalFileSink<Count>>(argv[5]))
      .Uid("out");
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) {
    std::fprintf(stderr, "start: %s\n", job.status().ToString().c_str());
    return 1;
  }
  std::signal(SIGTERM, OnSignal);
  while (!job->done()) {
    if (g_stop) {
      job->Stop();
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::Status status = job->Wait();
  if (!status.ok()) {
    std::fprintf(stderr, "job: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
