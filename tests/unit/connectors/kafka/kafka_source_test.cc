// The Kafka source against librdkafka's mock cluster over the real protocol
// (the timestamp lookup, which the mock lacks, also against a real broker):
// exactly-once delivery at several parallelisms, start positions, checkpoint
// and restart, group commits, idle partitions, broker faults, data loss and
// Debezium dead letters.

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "weir/connectors/kafka.h"
#include "weir/connectors/kafka_debezium.h"
#include "weir/testing.h"
#include "weir/weir.h"
#include "weir/window.h"

namespace weir::kafka::testing {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int64_t kBaseTs = 1'700'000'000'000;

std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> values(static_cast<size_t>(to - from));
  std::iota(values.begin(), values.end(), from);
  return values;
}

template <class T>
std::vector<T> Sorted(std::vector<T> values) {
  std::sort(values.begin(), values.end());
  return values;
}

// Produces records with `values` (and no key) to partition 0 of `topic`.
absl::Status ProduceValues(const std::string& bootstrap, const std::string& topic,
                           const std::vector<std::string>& values) {
  std::vector<TestRecord> records;
  for (const std::string& value : values) {
    TestRecord record;
    record.value = value;
    record.partition = 0;
    records.push_back(std::move(record));
  }
  return Produce(bootstrap, topic, records);
}

DeserializerFactory<int64_t> IntDeserializer() {
  return DeserializeWith<int64_t>([](const KafkaRecord& record) -> absl::StatusOr<int64_t> {
    int64_t value = 0;
    if (!absl::SimpleAtoi(absl::string_view(record.value.data(), record.value.size()), &value)) {
      return absl::InvalidArgumentError("not a number");
    }
    return value;
  });
}

class KafkaSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker = KafkaTestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    root_ = std::filesystem::temp_directory_path() /
            ("weir-kafka-source-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  const std::string& bootstrap() const { return broker_->bootstrap(); }

  SourceOptions<int64_t> IntOptions(const std::string& topic) {
    SourceOptions<int64_t> options;
    options.client.brokers = bootstrap();
    options.topics = {topic};
    options.deserializer = IntDeserializer();
    options.on_error = ErrorPolicy::kFail;
    options.bounded = true;
    options.unavailable_timeout = absl::Seconds(10);
    return options;
  }

  // Reads everything `options` selects with a bounded job.
  std::vector<int64_t> ReadAll(SourceOptions<int64_t> options, int parallelism = 1) {
    Pipeline pipeline({.parallelism = parallelism});
    auto sink = weir::testing::CollectingSink<int64_t>::Create();
    pipeline.Source(Source(std::move(options))).Sink(sink);
    weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(20));
    EXPECT_TRUE(result.status.ok()) << result.status;
    return Sorted(sink->Values());
  }

  // Starts a live (unbounded) job with `options` on `topic`, then produces
  // the numbers [first, first + count) to it (over `partitions`), and returns
  // what the job read (sorted) once it has `count` records or 10 s passed.
  std::vector<int64_t> ReadLiveWhileProducing(SourceOptions<int64_t> options,
                                              const std::string& topic, int partitions,
                                              int64_t first, int64_t count) {
    options.bounded = false;
    Pipeline pipeline;
    auto sink = weir::testing::CollectingSink<int64_t>::Create();
    pipeline.Source(Source(std::move(options))).Sink(sink);
    absl::StatusOr<JobHandle> job = pipeline.Start();
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return {};
    EXPECT_TRUE(ProduceNumbered(bootstrap(), topic, count, partitions, first).ok());
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (static_cast<int64_t>(sink->size()) < count && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    job->Stop();
    EXPECT_TRUE(job->Wait().ok());
    return Sorted(sink->Values());
  }

  PipelineOptions CheckpointedOptions(const std::string& job, int parallelism = 1) {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.job_name = job;
    options.checkpoints.interval = absl::Milliseconds(50);
    options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    return options;
  }

  // Why Start() refuses a job reading with `options` (OK when it starts; the
  // job is then cancelled).
  absl::Status StartError(SourceOptions<int64_t> options) {
    Pipeline pipeline;
    pipeline.Source(Source(std::move(options)))
        .Sink(weir::testing::CollectingSink<int64_t>::Create());
    absl::StatusOr<JobHandle> job = pipeline.Start();
    if (!job.ok()) return job.status();
    job->Cancel();
    (void)job->Wait();
    return absl::OkStatus();
  }

  // Starts a live job `topic` (source uid "kafka", `group_id`; checkpoints
  // only when triggered) on the new `topic` holding 0..199 in 2 partitions,
  // and returns it once it has read all 200.
  absl::StatusOr<JobHandle> StartReading200(const std::string& topic, const std::string& group_id) {
    absl::Status status = broker_->CreateTopic(topic, 2);
    if (status.ok()) status = ProduceNumbered(bootstrap(), topic, 200, 2);
    if (!status.ok()) return status;
    PipelineOptions pipeline_options = CheckpointedOptions(topic);
    pipeline_options.checkpoints.interval = absl::Hours(1);
    Pipeline pipeline(pipeline_options);
    SourceOptions<int64_t> options = IntOptions(topic);
    options.bounded = false;
    options.group_id = group_id;
    auto sink = weir::testing::CollectingSink<int64_t>::Create();
    pipeline.Source(Source(std::move(options))).Uid("kafka").Sink(sink).Uid("out");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    if (!job.ok()) return job.status();
    if (!weir::testing::WaitFor([&] { return sink->size() == 200 || job->done(); }) ||
        sink->size() != 200) {
      job->Cancel();
      return absl::InternalError(absl::StrCat("the job read ", sink->size(), " of 200 records (",
                                              job->Wait().ToString(), ")"));
    }
    return job;
  }

  // Job `topic` (source uid "kafka") reads the records 0..9 of the new
  // one-partition `topic` and checkpoints offset 10; then the mock's
  // retention moves the log start past it. Returns the new log start.
  absl::StatusOr<int64_t> CheckpointAtOffset10ThenOverflow(const std::string& topic) {
    absl::Status status = broker_->CreateTopic(topic, 1);
    if (status.ok()) status = ProduceNumbered(bootstrap(), topic, 10, 1);
    if (!status.ok()) return status;
    Pipeline pipeline(CheckpointedOptions(topic));
    pipeline.Source(Source(IntOptions(topic)))
        .Uid("kafka")
        .Sink(weir::testing::CollectingSink<int64_t>::Create())
        .Uid("out");
    status = weir::testing::RunToCompletion(pipeline, absl::Seconds(20)).status;
    if (!status.ok()) return status;
    return OverflowPartition(bootstrap(), topic, 0);
  }

  std::unique_ptr<KafkaTestBroker> broker_;
  std::filesystem::path root_;
};

TEST(KafkaTestBroker, ChildProcessServesTopicsGivenOnTheCommandLine) {
  absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker =
      KafkaTestBroker::StartChildProcess(WEIR_KAFKA_DEV_PATH, {"c:3"});
  ASSERT_TRUE(broker.ok()) << broker.status();
  EXPECT_THAT((*broker)->bootstrap(), HasSubstr("127.0.0.1:"));
  ASSERT_TRUE(ProduceNumbered((*broker)->bootstrap(), "c", 30, 3).ok());
  absl::StatusOr<std::pair<int64_t, int64_t>> marks =
      QueryWatermarks((*broker)->bootstrap(), "c", 2);
  ASSERT_TRUE(marks.ok()) << marks.status();
  EXPECT_EQ(marks->second, 10);
}

// N records arrive exactly once, also with more workers than partitions.
class KafkaSourceParallelismTest : public KafkaSourceTest,
                                   public ::testing::WithParamInterface<int> {};

TEST_P(KafkaSourceParallelismTest, EveryRecordExactlyOnce) {
  ASSERT_TRUE(broker_->CreateTopic("numbers", 4).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "numbers", 3000, 4).ok());
  EXPECT_THAT(ReadAll(IntOptions("numbers"), GetParam()), ElementsAreArray(Range(0, 3000)));
}

INSTANTIATE_TEST_SUITE_P(Parallelism, KafkaSourceParallelismTest, ::testing::Values(1, 2, 4, 6));

TEST_F(KafkaSourceTest, ReadsSeveralTopics) {
  ASSERT_TRUE(broker_->CreateTopic("a", 2).ok());
  ASSERT_TRUE(broker_->CreateTopic("b", 3).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "a", 100, 2).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "b", 100, 3, 100).ok());
  SourceOptions<int64_t> options = IntOptions("a");
  options.topics = {"a", "b"};
  EXPECT_THAT(ReadAll(options, 2), ElementsAreArray(Range(0, 200)));
}

TEST_F(KafkaSourceTest, KeyHeadersTimestampAndOffsetReachTheDeserializer) {
  ASSERT_TRUE(broker_->CreateTopic("meta", 1).ok());
  TestRecord record;
  record.key = "k1";
  record.value = "v1";
  record.headers = {{"h", "1"}, {"h", "2"}};
  record.partition = 0;
  record.timestamp_ms = kBaseTs + 7;
  TestRecord null_value;
  null_value.key = "k2";
  null_value.partition = 0;
  null_value.timestamp_ms = kBaseTs + 8;
  ASSERT_TRUE(Produce(bootstrap(), "meta", {record, null_value}).ok());

  SourceOptions<std::string> options;
  options.client.brokers = bootstrap();
  options.topics = {"meta"};
  options.bounded = true;
  options.on_error = ErrorPolicy::kFail;
  options.deserializer =
      DeserializeWith<std::string>([](const KafkaRecord& r) -> absl::StatusOr<std::string> {
        std::string out = absl::StrCat(
            absl::string_view(r.topic.data(), r.topic.size()), "/", r.partition, "@", r.offset,
            " ts=", r.timestamp_ms, " key=", absl::string_view(r.key.data(), r.key.size()),
            r.has_value ? " value=" : " null", absl::string_view(r.value.data(), r.value.size()));
        for (const auto& [name, value] : r.headers) {
          absl::StrAppend(&out, " ", absl::string_view(name.data(), name.size()), "=",
                          absl::string_view(value.data(), value.size()));
        }
        return out;
      });
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<std::string>::Create();
  pipeline.Source(Source(std::move(options))).Sink(sink);
  ASSERT_TRUE(weir::testing::RunToCompletion(pipeline, absl::Seconds(20)).status.ok());
  std::vector<weir::testing::TimestampedValue<std::string>> records = sink->Records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].value, "meta/0@0 ts=1700000000007 key=k1 value=v1 h=1 h=2");
  EXPECT_EQ(records[0].timestamp, kBaseTs + 7);  // the broker timestamp is the event time
  EXPECT_EQ(records[1].value, "meta/0@1 ts=1700000000008 key=k2 null");
}

// A deserializer that does not read headers gets none (the source leaves them
// unparsed), yet the records it rejects reach the dead-letter queue with
// their headers.
TEST_F(KafkaSourceTest, HeadersAreReadOnlyForDeserializersThatReadThemAndForDeadLetters) {
  ASSERT_TRUE(broker_->CreateTopic("plain", 1).ok());
  std::vector<TestRecord> records;
  for (const char* value : {"1", "bad", "3"}) {
    TestRecord record;
    record.value = value;
    record.headers = {{"trace", absl::StrCat("t-", value)}, {"origin", "test"}};
    record.partition = 0;
    record.timestamp_ms = kBaseTs + static_cast<int64_t>(records.size());
    records.push_back(std::move(record));
  }
  ASSERT_TRUE(Produce(bootstrap(), "plain", records).ok());

  class NoHeaders final : public Deserializer<int64_t> {
   public:
    explicit NoHeaders(std::shared_ptr<std::atomic<int>> saw_headers)
        : saw_headers_(std::move(saw_headers)) {}
    absl::StatusOr<int64_t> Deserialize(const KafkaRecord& record) override {
      if (!record.headers.empty()) saw_headers_->fetch_add(1);
      int64_t value = 0;
      if (!absl::SimpleAtoi(absl::string_view(record.value.data(), record.value.size()), &value)) {
        return absl::InvalidArgumentError("not a number");
      }
      return value;
    }
    bool ReadsHeaders() const override { return false; }

   private:
    std::shared_ptr<std::atomic<int>> saw_headers_;
  };
  auto saw_headers = std::make_shared<std::atomic<int>>(0);
  auto dead_letters = weir::testing::CollectingDeadLetterQueue::Create();
  SourceOptions<int64_t> options;
  options.client.brokers = bootstrap();
  options.topics = {"plain"};
  options.bounded = true;
  options.dead_letters = dead_letters;
  options.deserializer = [saw_headers]() -> absl::StatusOr<std::unique_ptr<Deserializer<int64_t>>> {
    return std::unique_ptr<Deserializer<int64_t>>(new NoHeaders(saw_headers));
  };
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  pipeline.Source(Source(std::move(options))).Sink(sink);
  ASSERT_TRUE(weir::testing::RunToCompletion(pipeline, absl::Seconds(20)).status.ok());
  EXPECT_THAT(sink->Values(), ElementsAreArray({int64_t{1}, int64_t{3}}));
  EXPECT_EQ(saw_headers->load(), 0);
  std::vector<DeadLetter> letters = dead_letters->Letters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].payload, "bad");
  EXPECT_EQ(letters[0].offset, 1);
  EXPECT_THAT(letters[0].headers,
              ElementsAreArray({std::pair<std::string, std::string>("trace", "t-bad"),
                                std::pair<std::string, std::string>("origin", "test")}));
}

// A record type without a default constructor cannot be built in place in
// the batch: the source emits what Deserialize returns.
struct Reading {
  explicit Reading(int64_t v) : value(v) {}
  int64_t value;
};

TEST_F(KafkaSourceTest, ATypeWithoutADefaultConstructorIsEmittedAsDeserialized) {
  static_assert(!std::is_default_constructible_v<Reading>);
  ASSERT_TRUE(broker_->CreateTopic("readings", 2).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "readings", 50, 2).ok());
  SourceOptions<Reading> options;
  options.client.brokers = bootstrap();
  options.topics = {"readings"};
  options.bounded = true;
  options.on_error = ErrorPolicy::kFail;
  options.deserializer =
      DeserializeWith<Reading>([](const KafkaRecord& record) -> absl::StatusOr<Reading> {
        int64_t value = 0;
        if (!absl::SimpleAtoi(absl::string_view(record.value.data(), record.value.size()),
                              &value)) {
          return absl::InvalidArgumentError("not a number");
        }
        return Reading(value);
      });
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  pipeline.Source(Source(std::move(options)))
      .Map([](const Reading& reading) { return reading.value; })
      .Sink(sink);
  ASSERT_TRUE(weir::testing::RunToCompletion(pipeline, absl::Seconds(20)).status.ok());
  std::vector<int64_t> values = sink->Values();
  std::sort(values.begin(), values.end());
  EXPECT_THAT(values, ElementsAreArray(Range(0, 50)));
}

// Whether the broker answers a timestamp lookup (ListOffsets with a
// timestamp) for partition 0 of `topic` with a real offset. librdkafka
// 2.0.2's mock cluster answers every lookup with -1 ("no record at or after
// it"); a real broker, or a later mock, looks it up.
bool BrokerLooksUpTimestamps(const std::string& bootstrap, const std::string& topic,
                             int64_t timestamp_ms) {
  absl::StatusOr<internal::ConfPtr> conf =
      internal::MakeConf({.brokers = bootstrap}, {}, "timestamp probe");
  if (!conf.ok()) return false;
  absl::StatusOr<internal::HandlePtr> consumer =
      internal::MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), "timestamp probe");
  if (!consumer.ok()) return false;
  internal::TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), 0)->offset = timestamp_ms;
  if (rd_kafka_offsets_for_times(consumer->get(), list.get(), 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return false;
  }
  return list->elems[0].offset >= 0;
}

// A timestamp after every record: the broker finds no offset (-1) and the
// source starts at the end: a bounded job reads nothing, a live one only
// what arrives after it started. (The mock answers -1 to any timestamp, so
// this is what it can show.)
TEST_F(KafkaSourceTest, StartsAtTheEndForATimestampAfterTheLastRecord) {
  ASSERT_TRUE(broker_->CreateTopic("ts-end", 3).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "ts-end", 300, 3).ok());
  SourceOptions<int64_t> options = IntOptions("ts-end");
  options.starting_offsets = StartingOffsets::FromTimestamp(kBaseTs + 1000);
  EXPECT_TRUE(ReadAll(options).empty());
  EXPECT_THAT(ReadLiveWhileProducing(options, "ts-end", 3, 300, 30),
              ElementsAreArray(Range(300, 330)));
}

// A timestamp inside the topic: the source starts at the first record at or
// after it, in each partition. Needs a broker that looks timestamps up
// (a real one: WEIR_TEST_KAFKA_BROKERS, docs/testing.md).
TEST(KafkaSourceTimestampTest, StartsAtTheFirstRecordAtOrAfterATimestamp) {
  absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker = KafkaTestBroker::FromEnvironment();
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string topic = absl::StrCat("ts-inside-", getpid());  // unique on a real broker
  ASSERT_TRUE((*broker)->CreateTopic(topic, 3).ok());
  ASSERT_TRUE(ProduceNumbered((*broker)->bootstrap(), topic, 300, 3).ok());
  if (!BrokerLooksUpTimestamps((*broker)->bootstrap(), topic, kBaseTs + 200)) {
    GTEST_SKIP() << "needs a broker that looks up offsets by timestamp; librdkafka's mock "
                    "cluster answers -1 (a real broker: WEIR_TEST_KAFKA_BROKERS, see "
                    "docs/testing.md)";
  }
  SourceOptions<int64_t> options;
  options.client.brokers = (*broker)->bootstrap();
  options.topics = {topic};
  options.deserializer = IntDeserializer();
  options.on_error = ErrorPolicy::kFail;
  options.bounded = true;
  options.starting_offsets = StartingOffsets::FromTimestamp(kBaseTs + 200);
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  pipeline.Source(Source(std::move(options))).Sink(sink);
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(20));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_THAT(Sorted(sink->Values()), ElementsAreArray(Range(200, 300)));
}

TEST_F(KafkaSourceTest, StartsAtExplicitOffsets) {
  ASSERT_TRUE(broker_->CreateTopic("ex", 2).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "ex", 100, 2).ok());
  SourceOptions<int64_t> options = IntOptions("ex");
  // Partition 0 holds the even numbers: offset 40 is number 80. Partition 1
  // is not listed and falls back to its latest offset (nothing).
  options.starting_offsets =
      StartingOffsets::Explicit({{"ex", {{0, 40}}}}, StartingOffsets::Kind::kLatest);
  EXPECT_THAT(ReadAll(options), ElementsAreArray({80, 82, 84, 86, 88, 90, 92, 94, 96, 98}));
}

TEST_F(KafkaSourceTest, LatestReadsOnlyNewRecords) {
  ASSERT_TRUE(broker_->CreateTopic("new", 2).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "new", 100, 2).ok());
  SourceOptions<int64_t> options = IntOptions("new");
  options.starting_offsets = StartingOffsets::Latest();
  EXPECT_THAT(ReadLiveWhileProducing(options, "new", 2, 100, 50),
              ElementsAreArray(Range(100, 150)));
}

TEST_F(KafkaSourceTest, MissingTopicIsNotFoundAtStart) {
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  pipeline.Source(Source(IntOptions("no-such-topic"))).Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(job.status().message(), HasSubstr("'no-such-topic'"));
}

TEST_F(KafkaSourceTest, MissingDeadLetterQueueIsInvalidArgument) {
  ASSERT_TRUE(broker_->CreateTopic("t", 1).ok());
  SourceOptions<int64_t> options = IntOptions("t");
  options.on_error = ErrorPolicy::kDeadLetter;
  absl::Status status = StartError(std::move(options));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("dead_letters"));
}

// SourceOptions::deserializer is required: without one Start() fails with
// kInvalidArgument; a factory's error fails Start() with that error, and a
// factory that returns no deserializer with kInvalidArgument.
TEST_F(KafkaSourceTest, MissingDeserializerFailsStart) {
  ASSERT_TRUE(broker_->CreateTopic("t", 1).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "t", 10, 1).ok());
  const auto start = [&](DeserializerFactory<int64_t> factory) {
    SourceOptions<int64_t> options = IntOptions("t");
    options.deserializer = std::move(factory);
    return StartError(std::move(options));
  };
  absl::Status status = start(nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("deserializer"));

  status = start([]() -> absl::StatusOr<std::unique_ptr<Deserializer<int64_t>>> {
    return absl::FailedPreconditionError("schema registry unreachable");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("schema registry unreachable"));

  status = start([]() -> absl::StatusOr<std::unique_ptr<Deserializer<int64_t>>> {
    return std::unique_ptr<Deserializer<int64_t>>();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("deserializer factory returned null"));
}

// StartingOffsets::Committed() reads the offsets of `group_id`: without one
// Start() fails with kInvalidArgument naming both.
TEST_F(KafkaSourceTest, CommittedStartWithoutAGroupIdIsInvalidArgument) {
  ASSERT_TRUE(broker_->CreateTopic("t", 1).ok());
  SourceOptions<int64_t> options = IntOptions("t");
  options.starting_offsets = StartingOffsets::Committed();
  absl::Status status = StartError(std::move(options));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("Committed()"));
  EXPECT_THAT(status.message(), HasSubstr("group_id"));
}

TEST_F(KafkaSourceTest, BrokersDownAtStartIsUnavailable) {
  ASSERT_TRUE(broker_->CreateTopic("t", 1).ok());
  ASSERT_TRUE(broker_->mock()->SetBrokerDown(-1).ok());
  SourceOptions<int64_t> options = IntOptions("t");
  options.unavailable_timeout = absl::Milliseconds(500);
  absl::Status status = StartError(std::move(options));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST_F(KafkaSourceTest, AuthenticationFailureIsAClearError) {
  ASSERT_TRUE(broker_->CreateTopic("t", 1).ok());
  SourceOptions<int64_t> options = IntOptions("t");
  options.unavailable_timeout = absl::Seconds(1);
  options.client.properties = {{"security.protocol", "SASL_PLAINTEXT"},
                               {"sasl.mechanism", "PLAIN"},
                               {"sasl.username", "nobody"},
                               {"sasl.password", "wrong"}};
  absl::Status status = StartError(std::move(options));
  // The mock cluster does not speak SASL: the handshake fails, and the
  // status says so instead of a bare timeout.
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("SASL"));
}

// A slow map so that jobs are still running when a test interferes.
int64_t Slowly(int64_t value) {
  absl::SleepFor(absl::Microseconds(300));
  return value;
}

TEST_F(KafkaSourceTest, RecoversFromFetchErrorsAndABrokerOutage) {
  ASSERT_TRUE(broker_->CreateTopic("faults", 2).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "faults", 3000, 2).ok());
  broker_->mock()->PushRequestErrors(1, 5, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  SourceOptions<int64_t> options = IntOptions("faults");
  options.max_records_per_poll = 50;
  auto source = Source(std::move(options));
  pipeline.Source(source).Map(Slowly).Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  while (sink->size() < 300 && !job->done()) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(broker_->mock()->SetBrokerDown(-1).ok());
  absl::SleepFor(absl::Milliseconds(1500));
  ASSERT_TRUE(broker_->mock()->SetBrokerUp(-1).ok());
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_THAT(Sorted(sink->Values()), ElementsAreArray(Range(0, 3000)));
}

TEST_F(KafkaSourceTest, BrokersDownLongerThanTheDeadlineFailTheJob) {
  ASSERT_TRUE(broker_->CreateTopic("down", 1).ok());
  SourceOptions<int64_t> options = IntOptions("down");
  options.bounded = false;
  options.unavailable_timeout = absl::Seconds(1);
  Pipeline pipeline;
  pipeline.Source(Source(std::move(options)))
      .Sink(weir::testing::CollectingSink<int64_t>::Create());
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(broker_->mock()->SetBrokerDown(-1).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (!job->done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(job->done()) << "the job did not fail";
  absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("unreachable"));
}

// Stop mid-stream (a crash: no final checkpoint), restart from the
// checkpoint: every record is committed exactly once.
TEST_F(KafkaSourceTest, RestartFromCheckpointLosesAndDuplicatesNothing) {
  ASSERT_TRUE(broker_->CreateTopic("resume", 3).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "resume", 4000, 3).ok());
  const std::string out = (root_ / "out").string();
  {
    Pipeline pipeline(CheckpointedOptions("resume", 2));
    SourceOptions<int64_t> options = IntOptions("resume");
    options.bounded = false;
    options.max_records_per_poll = 100;
    pipeline.Source(Source(std::move(options)))
        .Uid("kafka")
        .Map(Slowly)
        .Sink(std::make_shared<weir::testing::TransactionalFileSink<int64_t>>(out))
        .Uid("out");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (job->last_completed_checkpoint() < 3 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    job->Cancel();
    (void)job->Wait();
  }
  absl::StatusOr<std::vector<int64_t>> first =
      weir::testing::TransactionalFileSink<int64_t>::ReadCommitted(out);
  ASSERT_TRUE(first.ok());
  EXPECT_GT(first->size(), 0u);
  EXPECT_LT(first->size(), 4000u) << "the first run should have been interrupted mid-stream";
  {
    Pipeline pipeline(CheckpointedOptions("resume", 3));
    pipeline.Source(Source(IntOptions("resume")))
        .Uid("kafka")
        .Sink(std::make_shared<weir::testing::TransactionalFileSink<int64_t>>(out))
        .Uid("out");
    ASSERT_TRUE(weir::testing::RunToCompletion(pipeline, absl::Seconds(20)).status.ok());
  }
  absl::StatusOr<std::vector<int64_t>> all =
      weir::testing::TransactionalFileSink<int64_t>::ReadCommitted(out);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(Sorted(*all), ElementsAreArray(Range(0, 4000)));
}

TEST_F(KafkaSourceTest, CommitsGroupOffsetsOnlyAfterACheckpoint) {
  absl::StatusOr<JobHandle> job = StartReading200("commits", "lag-watchers");
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<std::vector<int64_t>> before =
      CommittedOffsets(bootstrap(), "lag-watchers", "commits", 2);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_THAT(*before, ElementsAreArray({RD_KAFKA_OFFSET_INVALID, RD_KAFKA_OFFSET_INVALID}));
  ASSERT_TRUE(job->TriggerCheckpoint().ok());
  absl::StatusOr<std::vector<int64_t>> after =
      CommittedOffsets(bootstrap(), "lag-watchers", "commits", 2);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(*after, ElementsAreArray({100, 100}));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());

  // A new job of the group (no checkpoint) starts where the group stopped.
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "commits", 20, 2, 200).ok());
  SourceOptions<int64_t> again = IntOptions("commits");
  again.group_id = "lag-watchers";
  again.starting_offsets = StartingOffsets::Committed();
  EXPECT_THAT(ReadAll(again), ElementsAreArray(Range(200, 220)));
}

// Without a group_id, completed checkpoints commit nothing: not even to the
// group librdkafka needs for the assignment ("weir-<source uid>").
TEST_F(KafkaSourceTest, WithoutAGroupIdCheckpointsCommitNothing) {
  absl::StatusOr<JobHandle> job = StartReading200("nogroup", /*group_id=*/"");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->TriggerCheckpoint().ok());
  job->Stop();  // and a final checkpoint; every commit is done once Wait returns
  ASSERT_TRUE(job->Wait().ok());
  absl::StatusOr<std::vector<int64_t>> committed =
      CommittedOffsets(bootstrap(), "weir-kafka", "nogroup", 2);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_THAT(*committed, ElementsAreArray({RD_KAFKA_OFFSET_INVALID, RD_KAFKA_OFFSET_INVALID}));
}

// Event time advances although partition 1 never receives a record: a
// partition at its high watermark is idle at once.
TEST_F(KafkaSourceTest, QuietPartitionDoesNotHoldBackTheWatermark) {
  ASSERT_TRUE(broker_->CreateTopic("quiet", 2).ok());
  std::vector<TestRecord> records;
  for (int64_t idx = 0; idx < 50; ++idx) {
    TestRecord record;
    record.value = std::to_string(idx);
    record.partition = 0;
    record.timestamp_ms = kBaseTs + idx * 100;  // 5 s of event time
    records.push_back(record);
  }
  ASSERT_TRUE(Produce(bootstrap(), "quiet", records).ok());
  SourceOptions<int64_t> options = IntOptions("quiet");
  options.bounded = false;
  Pipeline pipeline;
  auto windows = weir::testing::CollectingSink<std::pair<int64_t, int64_t>>::Create();
  pipeline
      .Source(Source(std::move(options)),
              WatermarkStrategy<int64_t>::BoundedOutOfOrderness(absl::ZeroDuration()))
      .KeyBy([](const int64_t&) { return int64_t{0}; })
      .Window(TumblingEventTimeWindows::Of(absl::Seconds(1)))
      .Aggregate(aggregations::Count<int64_t>(),
                 [](const int64_t&, const TimeWindow& window, int64_t count) {
                   return std::make_pair(window.start, count);
                 })
      .Sink(windows);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (windows->size() < 4 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  // Windows fired while the job runs (not only at the final watermark).
  std::vector<std::pair<int64_t, int64_t>> fired = Sorted(windows->Values());
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  ASSERT_GE(fired.size(), 4u);
  for (size_t idx = 0; idx < 4; ++idx) {
    EXPECT_EQ(fired[idx], std::make_pair(kBaseTs + static_cast<int64_t>(idx) * 1000, int64_t{10}));
  }
}

TEST_F(KafkaSourceTest, CheckpointOlderThanTheLogStartIsDataLoss) {
  absl::StatusOr<int64_t> overflowed = CheckpointAtOffset10ThenOverflow("lossy");
  ASSERT_TRUE(overflowed.ok()) << overflowed.status();
  const int64_t log_start = *overflowed;

  Pipeline pipeline(CheckpointedOptions("lossy"));
  SourceOptions<int64_t> options = IntOptions("lossy");
  options.deserializer =
      DeserializeWith<int64_t>([](const KafkaRecord&) -> absl::StatusOr<int64_t> { return 0; });
  pipeline.Source(Source(options))
      .Uid("kafka")
      .Sink(weir::testing::CollectingSink<int64_t>::Create())
      .Uid("out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(20));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kDataLoss) << result.status;
  EXPECT_THAT(result.status.message(),
              HasSubstr(absl::StrCat("offsets [10, ", log_start, ") of lossy/0")));

  // With an explicit reset policy the job goes on, and says so.
  Pipeline reset(CheckpointedOptions("lossy"));
  options.on_data_loss = DataLossPolicy::kResetToEarliest;
  auto source = Source(options);
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  reset.Source(source).Uid("kafka").Sink(sink).Uid("out");
  ASSERT_TRUE(weir::testing::RunToCompletion(reset, absl::Seconds(20)).status.ok());
  EXPECT_EQ(source->Stats().offset_resets, 1);
  EXPECT_EQ(source->Stats().skipped_offsets, log_start - 10);
  EXPECT_EQ(static_cast<int64_t>(sink->size()), 430 - log_start);
}

// DataLossPolicy::kResetToLatest: a restored checkpoint older than the log
// start continues at the partition's high watermark (logged and counted), so
// the job reads only what is written after it started; none of the records
// retention left between the log start and the high watermark (they are not
// numbers: reading one would fail the job).
TEST_F(KafkaSourceTest, ResetToLatestContinuesAtTheHighWatermark) {
  absl::StatusOr<int64_t> log_start = CheckpointAtOffset10ThenOverflow("lossy");
  ASSERT_TRUE(log_start.ok()) << log_start.status();
  absl::StatusOr<std::pair<int64_t, int64_t>> marks = QueryWatermarks(bootstrap(), "lossy", 0);
  ASSERT_TRUE(marks.ok()) << marks.status();
  const int64_t high = marks->second;
  ASSERT_GT(high, *log_start);

  SourceOptions<int64_t> options = IntOptions("lossy");
  options.bounded = false;
  options.on_data_loss = DataLossPolicy::kResetToLatest;
  auto source = Source(options);
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  Pipeline pipeline(CheckpointedOptions("lossy"));
  pipeline.Source(source).Uid("kafka").Sink(sink).Uid("out");
  ::testing::internal::CaptureStderr();
  absl::StatusOr<JobHandle> job = pipeline.Start();
  absl::Status status = job.status();
  if (job.ok()) {
    // New records once the position is reset.
    EXPECT_TRUE(
        weir::testing::WaitFor([&] { return source->Stats().offset_resets > 0 || job->done(); }));
    EXPECT_TRUE(ProduceNumbered(bootstrap(), "lossy", 20, 1, /*first=*/1000).ok());
    EXPECT_TRUE(weir::testing::WaitFor([&] { return sink->size() >= 20 || job->done(); }));
    job->Stop();
    status = job->Wait();
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(Sorted(sink->Values()), ElementsAreArray(Range(1000, 1020)));
  EXPECT_EQ(source->Stats().offset_resets, 1);
  EXPECT_EQ(source->Stats().skipped_offsets, high - 10);
  EXPECT_THAT(log, HasSubstr(absl::StrCat("offsets [10, ", *log_start, ") of lossy/0")));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("continuing at the high watermark ", high)));
}

TEST_F(KafkaSourceTest, ExplicitOffsetBelowTheLogStartIsDataLoss) {
  ASSERT_TRUE(broker_->CreateTopic("gone", 1).ok());
  absl::StatusOr<int64_t> overflowed = OverflowPartition(bootstrap(), "gone", 0);
  ASSERT_TRUE(overflowed.ok()) << overflowed.status();
  const int64_t log_start = *overflowed;
  ASSERT_GT(log_start, 5);
  SourceOptions<int64_t> options = IntOptions("gone");
  options.starting_offsets = StartingOffsets::Explicit({{"gone", {{0, 5}}}});
  Pipeline pipeline;
  pipeline.Source(Source(options)).Sink(weir::testing::CollectingSink<int64_t>::Create());
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(job.status().message(),
              HasSubstr(absl::StrCat("offsets [5, ", log_start, ") of gone/0")));
}

// The log start passes a running job's position (it reads slower than the
// mock's retention moves): kDataLoss naming the partition and the range.
TEST_F(KafkaSourceTest, RetentionPassingARunningJobIsDataLoss) {
  ASSERT_TRUE(broker_->CreateTopic("behind", 1).ok());
  ASSERT_TRUE(ProduceNumbered(bootstrap(), "behind", 20, 1).ok());
  SourceOptions<int64_t> options = IntOptions("behind");
  options.bounded = false;
  // Little prefetching, and a slow deserializer.
  options.client.properties = {{"queued.max.messages.kbytes", "64"},
                               {"fetch.max.bytes", "65536"},
                               {"message.max.bytes", "65536"},
                               {"max.partition.fetch.bytes", "65536"}};
  options.deserializer =
      DeserializeWith<int64_t>([](const KafkaRecord&) -> absl::StatusOr<int64_t> {
        absl::SleepFor(absl::Milliseconds(20));
        return 0;
      });
  Pipeline pipeline;
  pipeline.Source(Source(std::move(options)))
      .Sink(weir::testing::CollectingSink<int64_t>::Create());
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<int64_t> overflowed = OverflowPartition(bootstrap(), "behind", 0);
  ASSERT_TRUE(overflowed.ok()) << overflowed.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!job->done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(job->done()) << "the job did not notice the lost offsets";
  absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr("of behind/0 are no longer on the broker"));
  EXPECT_THAT(status.message(), HasSubstr("the source's position needs offset"));
}

// ---------------------------------------------------------------------------
// Debezium
// ---------------------------------------------------------------------------

struct Content {
  std::string id;
  std::string slug;
  std::optional<int32_t> length_seconds;
};

debezium::Fields<Content> ContentFields() {
  return debezium::Fields<Content>()
      .Required("id", &Content::id, debezium::Uuid())
      .Required("slug", &Content::slug)
      .Optional("length_seconds", &Content::length_seconds);
}

constexpr char kId[] = "6f1b0c56-3f0e-4c1c-9b7a-2f4d8e2a9c10";

std::string Row(const std::string& slug, const std::string& length) {
  return absl::StrCat(R"({"id":")", kId, R"(","slug":)", slug, R"(,"length_seconds":)", length,
                      "}");
}

std::string Bare(const std::string& op, const std::string& before, const std::string& after) {
  return absl::StrCat(R"({"before":)", before, R"(,"after":)", after,
                      R"(,"source":{"connector":"postgresql","db":"app","schema":"public",)",
                      R"("table":"content","ts_ms":1709285400456,"txId":771,"lsn":24023304},)",
                      R"("op":")", op, R"(","ts_ms":1709285400789})");
}

std::string Wrapped(const std::string& op, const std::string& before, const std::string& after) {
  const std::string row_schema =
      R"({"type":"struct","optional":true,"fields":[)"
      R"({"type":"string","optional":false,"name":"io.debezium.data.Uuid","field":"id"},)"
      R"({"type":"string","optional":false,"field":"slug"},)"
      R"({"type":"int32","optional":true,"field":"length_seconds"}],"field":"%s"})";
  std::string before_schema = row_schema;
  before_schema.replace(before_schema.find("%s"), 2, "before");
  std::string after_schema = row_schema;
  after_schema.replace(after_schema.find("%s"), 2, "after");
  return absl::StrCat(R"({"schema":{"type":"struct","fields":[)", before_schema, ",", after_schema,
                      R"(,{"type":"string","optional":false,"field":"op"},)"
                      R"({"type":"int64","optional":true,"field":"ts_ms"}],)"
                      R"("name":"app.public.content.Envelope"},"payload":)",
                      Bare(op, before, after), "}");
}

TEST_F(KafkaSourceTest, DebeziumEventsDecodeAndBadOnesBecomeDeadLetters) {
  ASSERT_TRUE(broker_->CreateTopic("pg.content", 1).ok());
  const std::string good = Row(R"("ep-42")", "2730");
  std::vector<TestRecord> records;
  auto add = [&](std::optional<std::string> value) {
    TestRecord record;
    record.key = absl::StrCat(R"({"id":")", kId, R"("})");
    record.value = std::move(value);
    record.partition = 0;
    record.timestamp_ms = kBaseTs + static_cast<int64_t>(records.size());
    record.headers = {{"origin", "test"}};
    records.push_back(std::move(record));
  };
  add(Bare("c", "null", good));                            // 0
  add(Wrapped("u", good, Row(R"("ep-42b")", "2790")));     // 1
  add(Bare("d", good, "null"));                            // 2
  add(std::nullopt);                                       // 3: tombstone
  add(Wrapped("r", "null", good));                         // 4
  add(Bare("t", "null", "null"));                          // 5
  add(R"({"op":"c","after":{"id":)");                      // 6: malformed JSON
  add(Bare("c", "null", Row(R"("ep-43")", R"("long")")));  // 7: wrong type
  add(Wrapped("c", "null", Row("17", "1")));               // 8: wrong type (slug)
  add(Bare("c", "null", good));                            // 9
  ASSERT_TRUE(Produce(bootstrap(), "pg.content", records).ok());

  auto dead_letters = weir::testing::CollectingDeadLetterQueue::Create();
  SourceOptions<debezium::Change<Content>> options;
  options.client.brokers = bootstrap();
  options.topics = {"pg.content"};
  options.bounded = true;
  options.deserializer = DebeziumDeserializer(ContentFields());
  options.dead_letters = dead_letters;
  Pipeline pipeline(CheckpointedOptions("debezium"));
  auto sink = weir::testing::CollectingSink<debezium::Change<Content>>::Create();
  auto source = Source(std::move(options));
  pipeline.Source(source).Uid("kafka").Sink(sink).Uid("out");
  ASSERT_TRUE(weir::testing::RunToCompletion(pipeline, absl::Seconds(20)).status.ok());

  std::vector<debezium::Change<Content>> changes = sink->Values();
  ASSERT_EQ(changes.size(), 7u);
  std::vector<debezium::Op> ops;
  for (const auto& change : changes) ops.push_back(change.op);
  EXPECT_THAT(
      ops, ElementsAreArray({debezium::Op::kCreate, debezium::Op::kUpdate, debezium::Op::kDelete,
                             debezium::Op::kTombstone, debezium::Op::kRead, debezium::Op::kTruncate,
                             debezium::Op::kCreate}));
  EXPECT_EQ(changes[1].after->slug, "ep-42b");
  EXPECT_EQ(changes[1].before->length_seconds, 2730);
  EXPECT_EQ(changes[2].before->id, kId);
  EXPECT_EQ(changes[0].source.table, "content");
  EXPECT_EQ(changes[0].source.lsn, 24023304);

  std::vector<DeadLetter> letters = dead_letters->Letters();
  ASSERT_EQ(letters.size(), 3u);
  EXPECT_EQ(source->Stats().dead_letters, 3);
  const int64_t offsets[] = {6, 7, 8};
  for (size_t idx = 0; idx < letters.size(); ++idx) {
    const DeadLetter& letter = letters[idx];
    const TestRecord& original = records[static_cast<size_t>(offsets[idx])];
    EXPECT_EQ(letter.payload, *original.value);
    EXPECT_EQ(letter.key, original.key);
    EXPECT_THAT(letter.headers,
                ElementsAreArray({std::pair<std::string, std::string>("origin", "test")}));
    EXPECT_EQ(letter.stage, "kafka-source");
    EXPECT_EQ(letter.topic, "pg.content");
    EXPECT_EQ(letter.partition, 0);
    EXPECT_EQ(letter.offset, offsets[idx]);
    EXPECT_EQ(letter.timestamp_ms, original.timestamp_ms);
  }
  EXPECT_EQ(letters[0].code, absl::StatusCode::kDataLoss);  // not JSON
  EXPECT_EQ(letters[1].code, absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(letters[1].error, HasSubstr("length_seconds"));
  EXPECT_THAT(letters[2].error, HasSubstr("slug"));
}

// Debezium interleaves records that are not row changes when a subscription
// or a routing transform puts its message, heartbeat and transaction topics
// together with a table's: by default they are skipped and counted; each can
// be dead-lettered or delivered instead.
TEST_F(KafkaSourceTest, DebeziumNonRowRecordsAreSkippedDeadLetteredOrDelivered) {
  ASSERT_TRUE(broker_->CreateTopic("pg.mixed", 1).ok());
  const std::vector<std::string> values = {
      Bare("c", "null", Row(R"("ep-42")", "2730")),
      R"({"op":"m","ts_ms":1,"source":{"connector":"postgresql","txId":7,"lsn":9},)"
      R"("message":{"prefix":"audit","content":"aGVsbG8="}})",
      R"({"ts_ms":1588252618953})",
      R"({"status":"BEGIN","id":"571:53195829","ts_ms":1486500577125,"event_count":null,)"
      R"("data_collections":null})",
      Bare("c", "null", Row(R"("ep-43")", "100")),
      R"({"status":"END","id":"571:53195829","ts_ms":1486500577691,"event_count":1,)"
      R"("data_collections":[{"data_collection":"public.content","event_count":1}]})",
  };
  std::vector<TestRecord> records;
  for (const std::string& value : values) {
    TestRecord record;
    record.value = value;
    record.partition = 0;
    record.timestamp_ms = kBaseTs + static_cast<int64_t>(records.size());
    records.push_back(std::move(record));
  }
  ASSERT_TRUE(Produce(bootstrap(), "pg.mixed", records).ok());

  struct Run {
    std::vector<debezium::Op> ops;
    KafkaSourceStats stats;
    std::vector<DeadLetter> letters;
  };
  const auto run = [this](const std::string& job, debezium::DecoderOptions decoder_options) {
    auto dead_letters = weir::testing::CollectingDeadLetterQueue::Create();
    SourceOptions<debezium::Change<Content>> options;
    options.client.brokers = bootstrap();
    options.topics = {"pg.mixed"};
    options.bounded = true;
    options.deserializer = DebeziumDeserializer(ContentFields(), decoder_options);
    options.dead_letters = dead_letters;
    Pipeline pipeline(CheckpointedOptions(job));
    auto sink = weir::testing::CollectingSink<debezium::Change<Content>>::Create();
    auto source = Source(std::move(options));
    pipeline.Source(source).Uid("kafka").Sink(sink).Uid("out");
    EXPECT_TRUE(weir::testing::RunToCompletion(pipeline, absl::Seconds(20)).status.ok());
    Run result;
    for (const auto& change : sink->Values()) result.ops.push_back(change.op);
    result.stats = source->Stats();
    result.letters = dead_letters->Letters();
    return result;
  };

  const Run skipped = run("non-row-skip", {});
  EXPECT_THAT(skipped.ops, ElementsAreArray({debezium::Op::kCreate, debezium::Op::kCreate}));
  EXPECT_EQ(skipped.stats.skipped, 4);
  EXPECT_EQ(skipped.stats.dead_letters, 0);

  const Run mixed = run("non-row-mixed", {.messages = debezium::NonRowPolicy::kDeliver,
                                          .heartbeats = debezium::NonRowPolicy::kDeadLetter,
                                          .transactions = debezium::NonRowPolicy::kSkip});
  EXPECT_THAT(mixed.ops, ElementsAreArray({debezium::Op::kCreate, debezium::Op::kMessage,
                                           debezium::Op::kCreate}));
  EXPECT_EQ(mixed.stats.skipped, 2);
  ASSERT_EQ(mixed.letters.size(), 1u);
  EXPECT_EQ(mixed.letters[0].offset, 2);
  EXPECT_THAT(mixed.letters[0].error, HasSubstr("a heartbeat record, not a row change"));
}

TEST_F(KafkaSourceTest, DebeziumErrorsFailTheJobWithPolicyFail) {
  ASSERT_TRUE(broker_->CreateTopic("pg.strict", 1).ok());
  TestRecord ok;
  ok.value = Bare("c", "null", Row(R"("a")", "1"));
  ok.partition = 0;
  TestRecord bad;
  bad.value = Bare("c", "null", Row(R"("b")", R"("x")"));
  bad.partition = 0;
  ASSERT_TRUE(Produce(bootstrap(), "pg.strict", {ok, bad}).ok());
  SourceOptions<debezium::Change<Content>> options;
  options.client.brokers = bootstrap();
  options.topics = {"pg.strict"};
  options.bounded = true;
  options.deserializer = DebeziumDeserializer(ContentFields());
  options.on_error = ErrorPolicy::kFail;
  Pipeline pipeline;
  pipeline.Source(Source(std::move(options)))
      .Sink(weir::testing::CollectingSink<debezium::Change<Content>>::Create());
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(20));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument) << result.status;
  EXPECT_THAT(result.status.message(), HasSubstr("topic pg.strict partition 0 offset 1"));
  EXPECT_THAT(result.status.message(), HasSubstr("length_seconds"));
}

// The minimal source (brokers, topics, a deserializer) runs: without a
// dead-letter queue, the first record the deserializer rejects fails the
// job naming that record; the records before it arrive.
TEST_F(KafkaSourceTest, TheMinimalSourceRunsAndFailsOnABadRecordNamingIt) {
  ASSERT_TRUE(broker_->CreateTopic("minimal", 1).ok());
  ASSERT_TRUE(ProduceValues(bootstrap(), "minimal", {"1", "2", "three", "4"}).ok());
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  pipeline
      .Source(Source<int64_t>({.client = {.brokers = bootstrap()},
                               .topics = {"minimal"},
                               .deserializer = IntDeserializer(),
                               .bounded = true}))
      .Sink(sink);
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(20));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument) << result.status;
  EXPECT_THAT(result.status.message(), HasSubstr("topic minimal partition 0 offset 2"));
  EXPECT_THAT(result.status.message(), HasSubstr("not a number"));
  EXPECT_THAT(sink->Values(), ::testing::IsSubsetOf({int64_t{1}, int64_t{2}}));
}

// With a dead-letter queue and on_error unset, rejected records go to the
// queue and the job goes on.
TEST_F(KafkaSourceTest, WithADeadLetterQueueRejectedRecordsGoThereByDefault) {
  ASSERT_TRUE(broker_->CreateTopic("queued", 1).ok());
  ASSERT_TRUE(ProduceValues(bootstrap(), "queued", {"1", "two", "3"}).ok());
  auto dead_letters = weir::testing::CollectingDeadLetterQueue::Create();
  Pipeline pipeline;
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  pipeline
      .Source(Source<int64_t>({.client = {.brokers = bootstrap()},
                               .topics = {"queued"},
                               .deserializer = IntDeserializer(),
                               .bounded = true,
                               .dead_letters = dead_letters}))
      .Sink(sink);
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(20));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_THAT(Sorted(sink->Values()), ::testing::ElementsAre(1, 3));
  std::vector<DeadLetter> letters = dead_letters->Letters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].payload, "two");
}

// A dead-letter queue that accepts nothing (`fail_write`), or accepts
// letters but never makes them durable (`fail_flush`).
class FailingDeadLetterQueue final : public DeadLetterQueue {
 public:
  FailingDeadLetterQueue(bool fail_write, bool fail_flush)
      : fail_write_(fail_write), fail_flush_(fail_flush) {}
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> CreateWriter(const std::string&, int) override {
    return std::unique_ptr<DeadLetterWriter>(new Writer(this));
  }
  std::string Describe() const override { return "failing dead letters"; }

 private:
  class Writer final : public DeadLetterWriter {
   public:
    explicit Writer(FailingDeadLetterQueue* queue) : queue_(queue) {}
    absl::Status Write(DeadLetter) override {
      if (queue_->fail_write_) return absl::UnavailableError("dead-letter topic unreachable");
      return absl::OkStatus();
    }
    absl::Status Flush() override {
      if (queue_->fail_flush_) return absl::UnavailableError("dead letters not acknowledged");
      return absl::OkStatus();
    }

   private:
    FailingDeadLetterQueue* queue_;
  };

  const bool fail_write_;
  const bool fail_flush_;
};

// A rejected record whose dead letter cannot be written fails the job with
// the queue's code, naming the record; it does not count as dead-lettered.
TEST_F(KafkaSourceTest, FailingDeadLetterWriteFailsTheJobNamingTheRecord) {
  ASSERT_TRUE(broker_->CreateTopic("dlq-down", 1).ok());
  ASSERT_TRUE(ProduceValues(bootstrap(), "dlq-down", {"1", "two", "3"}).ok());
  SourceOptions<int64_t> options = IntOptions("dlq-down");
  options.on_error = std::nullopt;  // kDeadLetter, as a queue is set
  options.dead_letters =
      std::make_shared<FailingDeadLetterQueue>(/*fail_write=*/true, /*fail_flush=*/false);
  auto source = Source(std::move(options));
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  Pipeline pipeline;
  pipeline.Source(source).Sink(sink);
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(20));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable) << result.status;
  EXPECT_THAT(result.status.message(),
              HasSubstr("cannot write the dead letter for topic dlq-down partition 0 offset 1: "
                        "dead-letter topic unreachable"));
  EXPECT_EQ(source->Stats().dead_letters, 0);
  EXPECT_THAT(sink->Values(), ::testing::IsSubsetOf({int64_t{1}}));
}

// Dead letters are flushed before a checkpoint covers their records: while
// the queue cannot make them durable no checkpoint completes, so no offset
// past the rejected record is committed, and the job cannot end cleanly.
TEST_F(KafkaSourceTest, FailingDeadLetterFlushKeepsCheckpointsFromCompleting) {
  ASSERT_TRUE(broker_->CreateTopic("dlq-slow", 1).ok());
  ASSERT_TRUE(ProduceValues(bootstrap(), "dlq-slow", {"1", "two", "3"}).ok());
  PipelineOptions pipeline_options = CheckpointedOptions("dlq-slow");
  pipeline_options.checkpoints.interval = absl::Hours(1);  // only when triggered
  SourceOptions<int64_t> options = IntOptions("dlq-slow");
  options.bounded = false;
  options.group_id = "dlq-watchers";
  options.on_error = std::nullopt;
  options.dead_letters =
      std::make_shared<FailingDeadLetterQueue>(/*fail_write=*/false, /*fail_flush=*/true);
  auto source = Source(std::move(options));
  auto sink = weir::testing::CollectingSink<int64_t>::Create();
  Pipeline pipeline(pipeline_options);
  pipeline.Source(source).Uid("kafka").Sink(sink).Uid("out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(weir::testing::WaitFor([&] { return sink->size() == 2 || job->done(); }));
  ASSERT_FALSE(job->done()) << job->Wait();
  EXPECT_EQ(source->Stats().dead_letters, 1);
  absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();
  EXPECT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(), HasSubstr("dead letters not acknowledged"));
  EXPECT_EQ(job->last_completed_checkpoint(), 0);
  job->Stop();
  absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("dead letters not acknowledged"));
  EXPECT_EQ(job->last_completed_checkpoint(), 0);
  absl::StatusOr<std::vector<int64_t>> committed =
      CommittedOffsets(bootstrap(), "dlq-watchers", "dlq-slow", 1);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_THAT(*committed, ElementsAreArray({RD_KAFKA_OFFSET_INVALID}));
}

}  // namespace
}  // namespace weir::kafka::testing
