// The job cluster_job_test runs in cluster mode: "key,id" records from the
// bounded topic `events`, repartitioned by key (a KeyBy between tasks,
// through Kafka), and the distinct ids per key counted in keyed state,
// emitting (key, count) whenever a new id arrives into a transactional file
// sink every process shares. Counting distinct ids makes the final count per
// key exact even where the broker shows a reader aborted records (the mock).
//
// The window job, for watermarks across repartition topics: "key,id,ts"
// records from the unbounded topic `wm` (event time: ts), repartitioned to
// a keyed function that fails the job if the watermark it sees ever goes
// backwards (it keeps the last one per key in state, so a restore that lost
// the exchange's watermarks shows), repartitioned again into tumbling 1 s
// event-time windows counting records per key.

#ifndef WEIR_TESTS_UNIT_CLUSTER_COUNT_JOB_H_
#define WEIR_TESTS_UNIT_CLUSTER_COUNT_JOB_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "weir/connectors/kafka.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::cluster_test {

struct Event {
  std::string key;
  int64_t id = 0;
  int64_t ts = 0;  // event time (window job only)
};

// One fired window of the window job.
struct WindowCount {
  std::string key;
  int64_t start = 0;
  int64_t count = 0;
};

}  // namespace weir::cluster_test

template <>
struct weir::Codec<weir::cluster_test::Event>
    : weir::MemberCodec<weir::cluster_test::Event, &weir::cluster_test::Event::key,
                        &weir::cluster_test::Event::id, &weir::cluster_test::Event::ts> {};

template <>
struct weir::Codec<weir::cluster_test::WindowCount>
    : weir::MemberCodec<weir::cluster_test::WindowCount, &weir::cluster_test::WindowCount::key,
                        &weir::cluster_test::WindowCount::start,
                        &weir::cluster_test::WindowCount::count> {};

namespace weir::cluster_test {

using Count = std::pair<std::string, int64_t>;

// Where a process notes each id its DistinctIds functions processed, one
// line each (so a test can tell which records were processed twice).
class ProcessedLog {
 public:
  explicit ProcessedLog(const std::string& path) : file_(std::fopen(path.c_str(), "w")) {}
  ~ProcessedLog() {
    if (file_ != nullptr) std::fclose(file_);
  }
  ProcessedLog(const ProcessedLog&) = delete;
  ProcessedLog& operator=(const ProcessedLog&) = delete;
  void Add(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (file_ != nullptr) std::fprintf(file_, "%lld\n", static_cast<long long>(id));
  }

 private:
  std::mutex mu_;
  std::FILE* file_;
};

class DistinctIds final : public weir::KeyedProcessFunction<std::string, Event, Count> {
 public:
  explicit DistinctIds(int64_t delay_us, std::shared_ptr<ProcessedLog> log = nullptr)
      : delay_us_(delay_us), log_(std::move(log)) {}
  absl::Status ProcessElement(const Event& event, Context& ctx,
                              weir::Collector<Count>& out) override {
    if (delay_us_ > 0) absl::SleepFor(absl::Microseconds(delay_us_));
    if (log_ != nullptr) log_->Add(event.id);
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
  std::shared_ptr<ProcessedLog> log_;
};

// Wraps a sink; once its input has ended, each writer's next commit (the
// final checkpoint's, which Kafka has committed by then) never returns: it
// writes <hold_dir>/holding-<pid>-<worker> with the number of records that
// commit holds and sleeps until the process is killed. A test kills it
// there, between the final checkpoint's commit and the sink's.
template <class T>
class HoldFinalCommitSink final : public weir::Sink<T> {
 public:
  HoldFinalCommitSink(std::shared_ptr<weir::Sink<T>> inner, std::string hold_dir)
      : inner_(std::move(inner)), hold_dir_(std::move(hold_dir)) {}
  absl::StatusOr<std::unique_ptr<weir::SinkWriter<T>>> CreateWriter(
      const weir::SinkContext& context) override {
    absl::StatusOr<std::unique_ptr<weir::SinkWriter<T>>> inner = inner_->CreateWriter(context);
    if (!inner.ok()) return inner.status();
    return std::unique_ptr<weir::SinkWriter<T>>(
        new Writer(*std::move(inner),
                   absl::StrCat(hold_dir_, "/holding-", getpid(), "-", context.worker_index)));
  }

 private:
  class Writer final : public weir::SinkWriter<T> {
   public:
    Writer(std::unique_ptr<weir::SinkWriter<T>> inner, std::string path)
        : inner_(std::move(inner)), path_(std::move(path)) {}
    absl::Status Write(std::span<T> values, std::span<const weir::Timestamp> times) override {
      written_ += static_cast<int64_t>(values.size());
      return inner_->Write(values, times);
    }
    void EndOfInput() override {
      ended_ = true;
      inner_->EndOfInput();
    }
    absl::Status Flush() override { return inner_->Flush(); }
    absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
      pending_[checkpoint_id] = written_;
      written_ = 0;
      return inner_->PreCommit(checkpoint_id);
    }
    absl::Status Commit(int64_t checkpoint_id, const std::string& committable) override {
      if (ended_) {
        if (std::FILE* file = std::fopen(path_.c_str(), "w"); file != nullptr) {
          std::fprintf(file, "%lld\n", static_cast<long long>(pending_[checkpoint_id]));
          std::fclose(file);
        }
        for (;;) absl::SleepFor(absl::Seconds(1));
      }
      pending_.erase(checkpoint_id);
      return inner_->Commit(checkpoint_id, committable);
    }
    absl::Status Close() override { return inner_->Close(); }

   private:
    std::unique_ptr<weir::SinkWriter<T>> inner_;
    std::string path_;
    bool ended_ = false;
    int64_t written_ = 0;                 // since the last PreCommit
    std::map<int64_t, int64_t> pending_;  // records per pre-committed checkpoint
  };

  std::shared_ptr<weir::Sink<T>> inner_;
  std::string hold_dir_;
};

// Adds the job to `pipeline` (nodes: Source 0, KeyBy 1, Process 2, Sink 3).
// With `log`, every record DistinctIds processes is noted there. It reads
// `topic` ("key,id" values). With `hold_dir`, the sink holds its final
// commit (HoldFinalCommitSink).
inline void BuildCountJob(weir::Pipeline& pipeline, const std::string& brokers,
                          const std::string& out_dir, int64_t delay_us,
                          std::shared_ptr<ProcessedLog> log = nullptr,
                          const std::string& topic = "events", const std::string& hold_dir = "") {
  auto source = weir::kafka::Source<Event>(
      {.client = {.brokers = brokers},
       .topics = {topic},
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
  std::shared_ptr<weir::Sink<Count>> sink =
      std::make_shared<weir::testing::TransactionalFileSink<Count>>(out_dir);
  pipeline.Source(source)
      .Uid("events")
      .KeyBy([](const Event& event) { return event.key; })
      .Process(DistinctIds(delay_us, std::move(log)))
      .Uid("distinct")
      .Sink(hold_dir.empty() ? sink : std::make_shared<HoldFinalCommitSink<Count>>(sink, hold_dir))
      .Uid("out");
}

// Passes records through, and fails the job when the watermark it sees for a
// key is below the one it saw (and checkpointed) for that key before.
class WatermarkNeverBack final : public weir::KeyedProcessFunction<std::string, Event, Event> {
 public:
  explicit WatermarkNeverBack(int64_t delay_us) : delay_us_(delay_us) {}
  absl::Status ProcessElement(const Event& event, Context& ctx,
                              weir::Collector<Event>& out) override {
    if (delay_us_ > 0) absl::SleepFor(absl::Microseconds(delay_us_));
    weir::ValueState<int64_t> last = ctx.GetState(kLast);
    const weir::Timestamp now = ctx.current_watermark();
    if (last.Get() != nullptr && now < *last.Get()) {
      return absl::InternalError(absl::StrCat("the watermark went backwards for key ",
                                              ctx.current_key(), ": ", now, " after ",
                                              *last.Get()));
    }
    last.Update(now);
    out.Collect(event);
    return absl::OkStatus();
  }

 private:
  static inline const weir::ValueStateDescriptor<int64_t> kLast{"last-watermark"};
  int64_t delay_us_;
};

// Adds the window job to `pipeline` (nodes: Source 0, KeyBy 1, Process 2,
// KeyBy 3, Window 4, Sink 5).
inline void BuildWindowJob(weir::Pipeline& pipeline, const std::string& brokers,
                           const std::string& out_dir, int64_t delay_us,
                           const std::string& topic = "wm") {
  auto source = weir::kafka::Source<Event>(
      {.client = {.brokers = brokers},
       .topics = {topic},
       .deserializer = weir::kafka::DeserializeWith<Event>(
           [](const weir::kafka::KafkaRecord& record) -> absl::StatusOr<Event> {
             std::vector<std::string> parts = absl::StrSplit(std::string(record.value), ',');
             Event event;
             if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &event.id) ||
                 !absl::SimpleAtoi(parts[2], &event.ts)) {
               return absl::InvalidArgumentError("not key,id,ts: " + std::string(record.value));
             }
             event.key = parts[0];
             return event;
           })});
  auto watermarks = weir::WatermarkStrategy<Event>::ForMonotonousTimestamps().WithTimestampAssigner(
      [](const Event& event, weir::Timestamp) { return weir::Timestamp{event.ts}; });
  pipeline.Source(source, watermarks)
      .Uid("wm-events")
      .KeyBy([](const Event& event) { return event.key; })
      .Process(WatermarkNeverBack(delay_us))
      .Uid("never-back")
      .KeyBy([](const Event& event) { return event.key; })
      .Window(weir::TumblingEventTimeWindows::Of(absl::Seconds(1)))
      .Aggregate(weir::aggregations::Count<Event>(),
                 [](const std::string& key, const weir::TimeWindow& window, int64_t count) {
                   return WindowCount{key, window.start, count};
                 })
      .Uid("windows")
      .Sink(std::make_shared<weir::testing::TransactionalFileSink<WindowCount>>(out_dir))
      .Uid("out");
}

}  // namespace weir::cluster_test

#endif  // WEIR_TESTS_UNIT_CLUSTER_COUNT_JOB_H_
