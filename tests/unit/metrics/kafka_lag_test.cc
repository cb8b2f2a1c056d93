// The Kafka source's consumer lag per partition and its dead letters, in the
// job's metrics, against librdkafka's mock cluster (in-process, real protocol).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/connectors/kafka/client.h"
#include "lib/connectors/kafka/mock_broker.h"
#include "tests/unit/metrics/test_pipeline.h"
#include "weir/connectors/kafka.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using kafka::internal::ConfPtr;
using kafka::internal::HandlePtr;
using ::weir::testing::WaitFor;

// Produces `count` values "0", "1", ... round-robin over `partitions`; every
// 10th value is "bad" (the deserializer rejects it).
void Produce(const std::string& bootstrap, const std::string& topic, int partitions, int count) {
  absl::StatusOr<ConfPtr> conf = kafka::internal::MakeConf({.brokers = bootstrap}, {}, "test");
  ASSERT_TRUE(conf.ok()) << conf.status();
  absl::StatusOr<HandlePtr> producer =
      kafka::internal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "test");
  ASSERT_TRUE(producer.ok()) << producer.status();
  for (int i = 0; i < count; ++i) {
    const std::string value = i % 10 == 9 ? "bad" : absl::StrCat(i);
    ASSERT_EQ(rd_kafka_producev(
                  producer->get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                  RD_KAFKA_V_PARTITION(i % partitions), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                  RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_flush(producer->get(), 10'000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

// Takes a while per batch, so the source stays behind the partitions' ends.
class SlowSink final : public Sink<int64_t> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<int64_t>>(new Writer(this));
  }
  int64_t count() const { return count_.load(); }
  std::atomic<bool> slow{true};

 private:
  class Writer final : public SinkWriter<int64_t> {
   public:
    explicit Writer(SlowSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<int64_t> values, std::span<const Timestamp>) override {
      if (sink_->slow.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      sink_->count_ += static_cast<int64_t>(values.size());
      return absl::OkStatus();
    }

   private:
    SlowSink* sink_;
  };
  std::atomic<int64_t> count_{0};
};

TEST(KafkaLagTest, ConsumerLagPerPartitionAndDeadLetters) {
  absl::StatusOr<std::unique_ptr<kafka::internal::MockBroker>> broker =
      kafka::internal::MockBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string bootstrap = (*broker)->bootstrap();
  ASSERT_TRUE((*broker)->CreateTopic("events", 2).ok());
  constexpr int kRecords = 6000;
  Produce(bootstrap, "events", 2, kRecords);

  auto dead_letters = testing::CollectingDeadLetterQueue::Create();
  auto sink = std::make_shared<SlowSink>();
  Pipeline pipeline({.job_name = "lagging"});
  pipeline
      .Source(kafka::Source<int64_t>(
          {.client = {.brokers = bootstrap},
           .topics = {"events"},
           .deserializer = kafka::DeserializeWith<int64_t>(
               [](const kafka::KafkaRecord& record) -> absl::StatusOr<int64_t> {
                 int64_t value = 0;
                 if (!absl::SimpleAtoi(absl::string_view(record.value.data(), record.value.size()),
                                       &value)) {
                   return absl::InvalidArgumentError("not a number");
                 }
                 return value;
               }),
           .dead_letters = dead_letters,
           .max_records_per_poll = 50}))
      .Name("events")
      .Sink(sink)
      .Name("slow");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  // Behind: both partitions report lag while the sink is slow.
  ASSERT_TRUE(WaitFor([&] {
    const MetricsSnapshot m = job->Metrics();
    return m.Sum("weir_kafka_consumer_lag_records", {{"partition", "0"}}) > 0 &&
           m.Sum("weir_kafka_consumer_lag_records", {{"partition", "1"}}) > 0;
  }));
  const MetricsSnapshot behind = job->Metrics();
  const MetricFamily* lag = behind.Find("weir_kafka_consumer_lag_records");
  ASSERT_NE(lag, nullptr);
  ASSERT_EQ(lag->series.size(), 2u);
  EXPECT_EQ(lag->series[0].labels, (MetricLabels{{"job", "lagging"},
                                                 {"operator", "events"},
                                                 {"worker", "0"},
                                                 {"topic", "events"},
                                                 {"partition", "0"}}));
  EXPECT_LE(job->Metrics().Sum("weir_kafka_consumer_lag_records"), kRecords);

  // Caught up: no lag, every record read or dead-lettered.
  sink->slow = false;
  ASSERT_TRUE(WaitFor([&] { return sink->count() == kRecords * 9 / 10; }));
  ASSERT_TRUE(WaitFor([&] { return job->Metrics().Sum("weir_kafka_consumer_lag_records") == 0; }));
  const MetricsSnapshot m = job->Metrics();
  EXPECT_EQ(m.Sum("weir_dead_letters_total", {{"operator", "events"}}), kRecords / 10);
  EXPECT_EQ(static_cast<int>(dead_letters->size()), kRecords / 10);
  EXPECT_EQ(m.Sum("weir_operator_records_out_total", {{"operator", "events"}}), kRecords * 9 / 10);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
}

}  // namespace
}  // namespace weir
