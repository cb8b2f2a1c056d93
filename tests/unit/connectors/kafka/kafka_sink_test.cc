// weir::kafka::Sink against a broker on loopback (librdkafka's mock cluster,
// in-process, so faults can be injected; or a real broker given by
// WEIR_TEST_KAFKA_BROKERS, see docs/testing.md).
//
// The mock cluster of librdkafka 2.0.2 accepts the whole transactional
// protocol but implements no isolation: read_committed consumers also see
// records of open and aborted transactions, and init_transactions does not
// fence older producers. So what needs isolation ("exactly once": no
// duplicate, nothing of an aborted transaction visible) is a test case of
// its own, which skips (GTEST_SKIP, counted by ctest) unless
// BrokerIsolatesTransactions() says the broker has it; its sibling case
// checks on any broker what can be checked there ("nothing lost").

#include "weir/connectors/kafka_sink.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/connectors/kafka/sink.h"
#include "lib/connectors/kafka/sink_recovery.h"
#include "tests/support/wait_for.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"
#include "tests/unit/window/scripted_source.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir::kafka::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kPartitions = 4;
constexpr char kNeedsMock[] =
    "injects faults into librdkafka's in-process mock cluster, which WEIR_TEST_KAFKA_BROKERS "
    "replaces";

constexpr char kNeedsMockRetention[] =
    "removes records through the retention of librdkafka's in-process mock cluster, which "
    "WEIR_TEST_KAFKA_BROKERS replaces";

std::vector<int64_t> Numbers(int64_t n) {
  std::vector<int64_t> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = i;
  return values;
}

class KafkaSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');    // parameterized tests: "Name/1"
    topic_ = absl::StrCat("out-", name, "-", getpid());  // unique on an external broker
    root_ = std::filesystem::temp_directory_path() /
            absl::StrCat("weir-kafka-sink-test-", getpid(), "-", name);
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker = KafkaTestBroker::FromEnvironment();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    bootstrap_ = broker_->bootstrap();
    absl::Status created = broker_->CreateTopic(topic_, kPartitions);
    ASSERT_TRUE(created.ok()) << created;
    created = broker_->CreateTopic(topic_ + "-probe", 1);
    ASSERT_TRUE(created.ok()) << created;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Whether the broker hides aborted transactions from read_committed
  // readers (the probe ends a transaction of its own).
  bool Isolates() {
    absl::StatusOr<bool> isolates = BrokerIsolatesTransactions(bootstrap_, topic_ + "-probe");
    EXPECT_TRUE(isolates.ok()) << isolates.status();
    return isolates.ok() && *isolates;
  }

  SinkOptions<int64_t> Options(DeliveryGuarantee guarantee) {
    SinkOptions<int64_t> options;
    options.client = {.brokers = bootstrap_};
    options.topic = topic_;
    options.serializer = [](const int64_t& value, std::string& out) {
      out = std::to_string(value);
      return absl::OkStatus();
    };
    options.key = [](const int64_t& value) { return absl::StrCat("k", value); };
    options.headers = [](const int64_t& value,
                         std::vector<std::pair<std::string, std::string>>& headers) {
      headers.emplace_back("parity", value % 2 == 0 ? "even" : "odd");
    };
    options.guarantee = guarantee;
    options.flush_timeout = absl::Seconds(20);
    return options;
  }

  PipelineOptions JobOptions(int parallelism, bool checkpoints) {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.job_name = "sink-test";
    if (checkpoints) {
      options.checkpoints.interval = absl::Milliseconds(100);
      options.checkpoints.timeout = absl::Seconds(20);
      options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    }
    return options;
  }

  // value -> how many times it is in the topic.
  std::map<int64_t, int> Counts(bool read_committed) {
    absl::StatusOr<std::vector<ReadMessage>> messages =
        ReadTopic(bootstrap_, topic_, kPartitions, read_committed);
    EXPECT_TRUE(messages.ok()) << messages.status();
    std::map<int64_t, int> counts;
    if (!messages.ok()) return counts;
    for (const ReadMessage& message : *messages) ++counts[std::stoll(message.value)];
    return counts;
  }

  static void ExpectEachOnce(const std::map<int64_t, int>& counts, int64_t n) {
    ASSERT_EQ(static_cast<int64_t>(counts.size()), n);
    for (const auto& [value, count] : counts) {
      ASSERT_EQ(count, 1) << "value " << value;
      ASSERT_LT(value, n);
    }
  }
  static void ExpectEachAtLeastOnce(const std::map<int64_t, int>& counts, int64_t n) {
    ASSERT_EQ(static_cast<int64_t>(counts.size()), n);
    for (const auto& [value, count] : counts) ASSERT_LT(value, n);
  }

  // An exactly-once job whose only checkpoint is the one the test triggers:
  // every record reaches the broker before it, each is there once after it.
  // `hidden_until_commit`: also checks that read_committed readers see none
  // before the checkpoint completes (needs transaction isolation).
  void RunCommitOnCheckpoint(bool hidden_until_commit);

  // A run at parallelism 2 cancelled after its third checkpoint (an open
  // transaction and perhaps a pre-committed one left behind), then a run
  // that restores it and reads to the end.
  void CancelAndRestart();

  // A producer of a killed run left a transaction open under one of the
  // sink's ids (with the record -1, which the job never writes); then a job
  // writes 0..999 exactly once. Returns what read_committed readers see.
  std::map<int64_t, int> RunAfterADanglingTransaction();

  std::unique_ptr<KafkaTestBroker> broker_;
  std::string bootstrap_;
  std::string topic_;
  std::filesystem::path root_;
};

// The records 0..n-1, each with its value as event time.
std::vector<weir::testing::TimestampedValue<int64_t>> TimestampedNumbers(int64_t n) {
  std::vector<weir::testing::TimestampedValue<int64_t>> records;
  for (int64_t value : Numbers(n)) records.push_back({value, value});
  return records;
}

TEST_F(KafkaSinkTest, AtLeastOnceDeliversEveryRecordWithKeyAndHeaders) {
  constexpr int64_t kRecords = 20000;
  weir::Pipeline pipeline(JobOptions(2, false));
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(kRecords)))
      .Uid("numbers")
      .Sink(Sink<int64_t>(Options(DeliveryGuarantee::kAtLeastOnce)))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  absl::StatusOr<std::vector<ReadMessage>> messages =
      ReadTopic(bootstrap_, topic_, kPartitions, /*read_committed=*/false);
  ASSERT_TRUE(messages.ok()) << messages.status();
  std::map<int64_t, int> counts;
  for (const ReadMessage& message : *messages) {
    const int64_t value = std::stoll(message.value);
    ++counts[value];
    ASSERT_EQ(message.key, absl::StrCat("k", value));
    ASSERT_EQ(message.headers.size(), 1u);
    EXPECT_EQ(message.headers[0].first, "parity");
    EXPECT_EQ(message.headers[0].second, value % 2 == 0 ? "even" : "odd");
  }
  // The idempotent producer writes no duplicates when nothing fails.
  ExpectEachOnce(counts, kRecords);
}

// The writer serializes during Write and keeps nothing of the batch, so it
// says it only reads: a stream's other consumers then share its batches.
// librdkafka's own log lines go through weir's log, and a consumer-only
// property in consumer_properties never reaches the sink's producer (which
// would warn about it at every start).
TEST_F(KafkaSinkTest, ConsumerPropertiesStayOutOfProducersAndLibrdkafkaLogsThroughWeir) {
  for (const bool split : {false, true}) {
    SCOPED_TRACE(split ? "consumer_properties" : "properties");
    SinkOptions<int64_t> options = Options(DeliveryGuarantee::kAtLeastOnce);
    (split ? options.client.consumer_properties : options.client.properties)["fetch.wait.max.ms"] =
        "10";
    weir::Pipeline pipeline(JobOptions(1, false));
    pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(10)))
        .Sink(Sink<int64_t>(options))
        .Uid("kafka-out");
    ::testing::internal::CaptureStderr();
    weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(result.status.ok()) << result.status;
    if (split) {
      EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr("fetch.wait.max.ms"))) << log;
    } else {
      // The warning, and in weir's format ("weir: librdkafka <client> CONFWARN: ...").
      EXPECT_THAT(log,
                  ::testing::ContainsRegex("weir: librdkafka [^ ]+ CONFWARN: .*fetch.wait.max.ms"))
          << log;
    }
  }
}

TEST_F(KafkaSinkTest, TheWriterOnlyReadsItsInput) {
  auto sink = Sink<int64_t>(Options(DeliveryGuarantee::kAtLeastOnce));
  absl::StatusOr<std::unique_ptr<weir::SinkWriter<int64_t>>> writer =
      sink->CreateWriter({.operator_name = "kafka-out", .job_name = "reads-only"});
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE((*writer)->ReadsOnly());
}

// SinkOptions::key: a key the record holds is read where it is; one made
// per record lives in the writer's string.
TEST(KafkaSinkKeyTest, KeysHeldByTheRecordAreReadInPlace) {
  struct Record {
    std::string id;
    int number = 0;
  };
  const Record record{.id = "a-key-longer-than-the-small-string-buffer", .number = 7};
  std::string made;

  KeyFunction<Record> by_reference = [](const Record& r) -> const std::string& { return r.id; };
  std::string_view key = by_reference(record, made);
  EXPECT_EQ(key, record.id);
  EXPECT_EQ(key.data(), record.id.data());  // not a copy
  EXPECT_TRUE(made.empty());

  KeyFunction<Record> as_view = [](const Record& r) { return std::string_view(r.id).substr(0, 5); };
  key = as_view(record, made);
  EXPECT_EQ(key, "a-key");
  EXPECT_EQ(key.data(), record.id.data());

  KeyFunction<Record> literal = [](const Record&) { return "fixed"; };
  EXPECT_EQ(literal(record, made), "fixed");

  KeyFunction<Record> by_value = [](const Record& r) { return absl::StrCat("n", r.number); };
  key = by_value(record, made);
  EXPECT_EQ(key, "n7");
  EXPECT_EQ(key.data(), made.data());

  KeyFunction<Record> by_const_value = [](const Record& r) -> const std::string { return r.id; };
  key = by_const_value(record, made);
  EXPECT_EQ(key, record.id);
  EXPECT_EQ(key.data(), made.data());

  KeyFunction<Record> none;
  EXPECT_FALSE(none);
  EXPECT_TRUE(by_value);
  none = nullptr;
  EXPECT_FALSE(none);
}

// Keys read in place reach the broker and the partitioner as they are.
TEST_F(KafkaSinkTest, KeysReadInPlaceAreWrittenAndPartitioned) {
  weir::Pipeline pipeline(JobOptions(1, false));
  std::vector<std::string> records;
  for (int i = 0; i < 200; ++i) records.push_back(absl::StrCat(std::string(i % 23, 'k'), ":", i));
  SinkOptions<std::string> options;
  options.client = {.brokers = bootstrap_};
  options.topic = topic_;
  options.key = [](const std::string& value) {
    return std::string_view(value).substr(0, value.find(':'));
  };
  options.partitioner = [](const std::string&, const std::string& key, int32_t partitions) {
    return static_cast<int32_t>(key.size() % static_cast<size_t>(partitions));
  };
  pipeline.Source(weir::testing::VectorSource<std::string>::Create(records))
      .Uid("strings")
      .Sink(Sink<std::string>(options))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  absl::StatusOr<std::vector<ReadMessage>> messages =
      ReadTopic(bootstrap_, topic_, kPartitions, false);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), records.size());
  for (const ReadMessage& message : *messages) {
    const size_t colon = message.value.find(':');
    ASSERT_NE(colon, std::string::npos) << message.value;
    const int i = std::stoi(message.value.substr(colon + 1));
    // An empty key is no key.
    EXPECT_EQ(message.has_key, i % 23 != 0) << message.value;
    EXPECT_EQ(message.key, std::string(static_cast<size_t>(i % 23), 'k'));
    EXPECT_EQ(message.partition, (i % 23) % kPartitions) << message.value;
  }
}

TEST_F(KafkaSinkTest, CustomPartitionerEventTimestampsAndStringRecords) {
  weir::Pipeline pipeline(JobOptions(1, false));
  std::vector<weir::testing::TimestampedValue<std::string>> records;
  for (int i = 0; i < 100; ++i) records.push_back({std::to_string(i), 1'700'000'000'000 + i});
  SinkOptions<std::string> options;
  options.client = {.brokers = bootstrap_};
  options.topic = topic_;  // no serializer: a std::string record is the value
  options.partitioner = [](const std::string& value, const std::string&, int32_t partitions) {
    return static_cast<int32_t>(std::stoi(value) % partitions);
  };
  options.event_time_as_timestamp = true;
  pipeline.Source(weir::testing::VectorSource<std::string>::Create(records))
      .Uid("numbers")
      .Sink(Sink<std::string>(options));
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  absl::StatusOr<std::vector<ReadMessage>> messages =
      ReadTopic(bootstrap_, topic_, kPartitions, false);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), 100u);
  for (const ReadMessage& message : *messages) {
    const int value = std::stoi(message.value);
    EXPECT_EQ(message.partition, value % kPartitions);
    EXPECT_FALSE(message.has_key);
    EXPECT_EQ(message.timestamp_ms, 1'700'000'000'000 + value);
  }
}

// SinkOptions::tombstone: null values (not empty ones), with key and
// headers, in order with the other records of their key.
TEST_F(KafkaSinkTest, TombstonesHaveANullValueAndKeepTheirKeyAndOrder) {
  constexpr int64_t kRecords = 3000;
  weir::Pipeline pipeline(JobOptions(1, false));
  SinkOptions<int64_t> options = Options(DeliveryGuarantee::kAtLeastOnce);
  options.key = [](const int64_t& value) { return absl::StrCat("k", value % 100); };
  options.serializer = [](const int64_t& value, std::string& out) {
    out = value % 7 == 0 ? "" : std::to_string(value);  // an empty value is not a tombstone
    return absl::OkStatus();
  };
  options.tombstone = [](const int64_t& value) { return value % 3 == 0; };
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(kRecords)))
      .Uid("numbers")
      .Sink(Sink<int64_t>(options))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  absl::StatusOr<std::vector<ReadMessage>> messages =
      ReadTopic(bootstrap_, topic_, kPartitions, /*read_committed=*/false);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), static_cast<size_t>(kRecords));
  // Per key, the records in the order written: tombstones as "null".
  std::map<std::string, std::vector<std::string>> by_key;
  for (const ReadMessage& message : *messages) {
    ASSERT_EQ(message.headers.size(), 1u);
    by_key[message.key].push_back(message.has_value ? "[" + message.value + "]" : "null");
  }
  std::map<std::string, std::vector<std::string>> expected;
  for (int64_t value = 0; value < kRecords; ++value) {
    expected[absl::StrCat("k", value % 100)].push_back(value % 3 == 0 ? "null"
                                                       : value % 7 == 0
                                                           ? "[]"
                                                           : "[" + std::to_string(value) + "]");
  }
  EXPECT_EQ(by_key, expected);
}

// SinkOptions::serializer: an error fails the job (the sink has no
// dead-letter path for it) with the serializer's code and message, naming the
// sink, the topic and the record (key and event time).
TEST_F(KafkaSinkTest, SerializerErrorFailsTheJobNamingTheRecord) {
  SinkOptions<int64_t> options = Options(DeliveryGuarantee::kAtLeastOnce);
  options.serializer = [](const int64_t& value, std::string& out) {
    if (value == 7) return absl::InvalidArgumentError("seven has no encoding");
    out = std::to_string(value);
    return absl::OkStatus();
  };
  std::vector<weir::testing::TimestampedValue<int64_t>> records;
  for (int64_t value : Numbers(100)) records.push_back({value, 1'700'000'000'000 + value});
  weir::Pipeline pipeline(JobOptions(1, false));
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(std::move(records)))
      .Uid("numbers")
      .Sink(Sink<int64_t>(options))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument) << result.status;
  EXPECT_THAT(result.status.message(), HasSubstr("kafka-out")) << result.status;
  EXPECT_THAT(
      result.status.message(),
      HasSubstr(absl::StrCat("cannot serialize the record with key \"k7\" and event time ",
                             1'700'000'000'007, " for topic ", topic_, ": seven has no encoding")))
      << result.status;
}

TEST_F(KafkaSinkTest, ExactlyOnceCommitsWhenTheCheckpointCompletes) {
  RunCommitOnCheckpoint(/*hidden_until_commit=*/false);
}

TEST_F(KafkaSinkTest, ExactlyOnceHidesRecordsUntilTheCheckpointCompletes) {
  if (!Isolates()) GTEST_SKIP() << kNeedsTransactionIsolation;
  RunCommitOnCheckpoint(/*hidden_until_commit=*/true);
}

void KafkaSinkTest::RunCommitOnCheckpoint(bool hidden_until_commit) {
  constexpr int64_t kRecords = 5000;
  PipelineOptions pipeline_options = JobOptions(2, true);
  pipeline_options.checkpoints.interval = absl::ZeroDuration();  // only the one we trigger
  weir::Pipeline pipeline(pipeline_options);
  weir::testing::VectorSourceOptions source_options;
  source_options.unbounded = true;
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(kRecords), source_options))
      .Uid("numbers")
      .Sink(Sink<int64_t>(Options(DeliveryGuarantee::kExactlyOnce)))
      .Uid("kafka-out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  // Every record reaches the broker inside open transactions...
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Counts(false).size() < kRecords && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(Counts(false).size(), static_cast<size_t>(kRecords));
  // ... and none is visible to read_committed before the checkpoint completes.
  if (hidden_until_commit) {
    EXPECT_TRUE(Counts(true).empty());
  }

  absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  // Commit(n) runs on the workers right after completion.
  const absl::Time commit_deadline = absl::Now() + absl::Seconds(10);
  while (Counts(true).size() < kRecords && absl::Now() < commit_deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ExpectEachOnce(Counts(true), kRecords);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  ExpectEachOnce(Counts(true), kRecords);
}

// Stopped mid-stream (Stop(): final checkpoint) and restarted from the
// checkpoint: every record once, at parallelism 1 and 2.
// (parallelism of the first run, parallelism of the restart): going from 2 to
// 1 hands worker 1's committables to worker 0, which fences worker 1's ids.
class KafkaSinkRestartTest : public KafkaSinkTest,
                             public ::testing::WithParamInterface<std::pair<int, int>> {};

TEST_P(KafkaSinkRestartTest, StopAndRestartWritesEveryRecordOnce) {
  constexpr int64_t kRecords = 8000;
  const auto build = [&](int parallelism, double rate) {
    auto pipeline = std::make_unique<weir::Pipeline>(JobOptions(parallelism, true));
    weir::testing::VectorSourceOptions source_options;
    source_options.records_per_poll = 64;
    source_options.records_per_second = rate;
    pipeline
        ->Source(weir::testing::VectorSource<int64_t>::Create(Numbers(kRecords), source_options))
        .Uid("numbers")
        .Sink(Sink<int64_t>(Options(DeliveryGuarantee::kExactlyOnce)))
        .Uid("kafka-out");
    return pipeline;
  };
  {
    // 4 splits: about 2000 records/s, so the input lasts ~4 s, long enough
    // for two checkpoints even when the machine is loaded.
    auto pipeline = build(GetParam().first, 500);
    absl::StatusOr<JobHandle> job = pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (job->last_completed_checkpoint() < 2 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_FALSE(job->done()) << "the job ended before it could be stopped";
    job->Stop();
    ASSERT_TRUE(job->Wait().ok());
  }
  const size_t first_run = Counts(true).size();
  EXPECT_GT(first_run, 0u);
  EXPECT_LT(first_run, static_cast<size_t>(kRecords));
  auto pipeline = build(GetParam().second, 0);
  weir::testing::JobResult result = weir::testing::RunToCompletion(*pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ExpectEachOnce(Counts(true), kRecords);
}

INSTANTIATE_TEST_SUITE_P(Parallelism, KafkaSinkRestartTest,
                         ::testing::Values(std::pair{1, 1}, std::pair{2, 2}, std::pair{2, 1}),
                         [](const ::testing::TestParamInfo<std::pair<int, int>>& param_info) {
                           return absl::StrCat("P", param_info.param.first, "ThenP",
                                               param_info.param.second);
                         });

// A crash (Cancel(): no final checkpoint) leaves an open transaction and
// perhaps a pre-committed one; the restart aborts the first (records written
// again) and commits or repairs the second. Nothing is lost on any broker;
// the aborted copies are hidden only where the broker isolates transactions.
constexpr int64_t kCancelledRecords = 8000;

TEST_F(KafkaSinkTest, CancelledRunRestartsWithoutLoss) {
  CancelAndRestart();
  ExpectEachAtLeastOnce(Counts(true), kCancelledRecords);
}

TEST_F(KafkaSinkTest, CancelledRunRestartsWithoutDuplicates) {
  if (!Isolates()) GTEST_SKIP() << kNeedsTransactionIsolation;
  CancelAndRestart();
  ExpectEachOnce(Counts(true), kCancelledRecords);
}

void KafkaSinkTest::CancelAndRestart() {
  constexpr int64_t kRecords = kCancelledRecords;
  // The input is released step by step and the checkpoint taken on demand,
  // so that what the crash leaves open does not depend on the machine's
  // speed.
  const auto build = [&](std::shared_ptr<weir::Source<int64_t>> numbers) {
    PipelineOptions options = JobOptions(2, true);
    options.checkpoints.interval = absl::ZeroDuration();  // only the one triggered
    auto pipeline = std::make_unique<weir::Pipeline>(options);
    pipeline->Source(std::move(numbers))
        .Uid("numbers")
        .Sink(Sink<int64_t>(Options(DeliveryGuarantee::kExactlyOnce)))
        .Uid("kafka-out");
    return pipeline;
  };
  const auto numbers = [](bool bounded, size_t released) {
    return weir::testing::ScriptedSource<int64_t>::Create(
        TimestampedNumbers(kRecords), {.records_per_poll = 64, .bounded = bounded}, released);
  };
  {
    auto source = numbers(/*bounded=*/false, kRecords / 2);  // cannot end before the crash
    auto pipeline = build(source);
    absl::StatusOr<JobHandle> job = pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    // Half the records in a committed transaction...
    ASSERT_TRUE(weir::testing::WaitFor([&] { return Counts(false).size() == kRecords / 2; }));
    absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    // ... and a quarter more at the broker in an open one.
    source->Release(kRecords * 3 / 4);
    ASSERT_TRUE(weir::testing::WaitFor([&] { return Counts(false).size() == kRecords * 3 / 4; }));
    ASSERT_FALSE(job->done());
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }
  auto pipeline = build(numbers(/*bounded=*/true, kRecords));
  weir::testing::JobResult result = weir::testing::RunToCompletion(*pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
}

// A killed run left a transaction open under one of the sink's ids: the next
// run's init_transactions aborts it, so read_committed consumers neither
// wait for it (on any broker: the job's records are all there) nor see it
// (where the broker isolates transactions).
TEST_F(KafkaSinkTest, DanglingTransactionOfAKilledRunDoesNotHoldTheNextRunBack) {
  std::map<int64_t, int> counts = RunAfterADanglingTransaction();
  counts.erase(-1);  // the zombie's record: visible where transactions are not isolated
  ExpectEachOnce(counts, 1000);
}

TEST_F(KafkaSinkTest, DanglingTransactionOfAKilledRunIsAbortedOnStart) {
  if (!Isolates()) GTEST_SKIP() << kNeedsTransactionIsolation;
  std::map<int64_t, int> counts = RunAfterADanglingTransaction();
  EXPECT_FALSE(counts.contains(-1));
  ExpectEachOnce(counts, 1000);
}

std::map<int64_t, int> KafkaSinkTest::RunAfterADanglingTransaction() {
  {
    using namespace weir::kafka::internal;  // NOLINT(build/namespaces)
    absl::StatusOr<ConfPtr> conf = MakeConf(
        {.brokers = bootstrap_}, {{"transactional.id", "sink-test-kafka-out-0-1"}}, "zombie");
    EXPECT_TRUE(conf.ok()) << conf.status();
    if (!conf.ok()) return {};
    absl::StatusOr<HandlePtr> zombie = MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "zombie");
    EXPECT_TRUE(zombie.ok()) << zombie.status();
    if (!zombie.ok()) return {};
    ErrorPtr error(rd_kafka_init_transactions(zombie->get(), 10000));
    EXPECT_EQ(error, nullptr);
    error.reset(rd_kafka_begin_transaction(zombie->get()));
    EXPECT_EQ(error, nullptr);
    static const char kValue[] = "-1";  // never written by the job
    EXPECT_EQ(
        rd_kafka_producev(zombie->get(), RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_VALUE(const_cast<char*>(kValue), 2),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(rd_kafka_flush(zombie->get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    // Destroyed without commit or abort: the transaction stays open.
    rd_kafka_purge(zombie->get(), RD_KAFKA_PURGE_F_QUEUE);
  }
  weir::Pipeline pipeline(JobOptions(1, true));
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(1000)))
      .Uid("numbers")
      .Sink(Sink<int64_t>(Options(DeliveryGuarantee::kExactlyOnce)))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  EXPECT_TRUE(result.status.ok()) << result.status;
  return Counts(true);  // must reach the end: nothing holds the last stable offset back
}

TEST_F(KafkaSinkTest, ProduceErrorsAreRetried) {
  constexpr int64_t kRecords = 5000;
  if (broker_->mock() == nullptr) GTEST_SKIP() << kNeedsMock;
  // Retriable errors on the next Produce requests: librdkafka retries them
  // (idempotently), the job does not notice.
  broker_->mock()->PushRequestErrors(0, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
  for (DeliveryGuarantee guarantee :
       {DeliveryGuarantee::kAtLeastOnce, DeliveryGuarantee::kExactlyOnce}) {
    std::filesystem::remove_all(root_ / "checkpoints");
    weir::Pipeline pipeline(JobOptions(2, guarantee == DeliveryGuarantee::kExactlyOnce));
    pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(kRecords)))
        .Uid("numbers")
        .Sink(Sink<int64_t>(Options(guarantee)))
        .Uid("kafka-out");
    weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
    ASSERT_TRUE(result.status.ok()) << result.status;
    if (guarantee == DeliveryGuarantee::kAtLeastOnce) {
      ExpectEachOnce(Counts(false), kRecords);
      broker_->mock()->PushRequestErrors(0, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    }
  }
  std::map<int64_t, int> counts = Counts(false);
  ASSERT_EQ(counts.size(), static_cast<size_t>(kRecords));
  for (const auto& [value, count] : counts) ASSERT_EQ(count, 2) << value;
}

// The broker answers the first commit (EndTxn) with an error that makes the
// transaction abortable, after its checkpoint completed: the sink aborts it
// and writes its records again (read back from the log) into the next
// transaction, the same repair a restart does after a crash between the
// checkpoint and the commit.
TEST_F(KafkaSinkTest, AbortedCommitOfACompleteCheckpointIsRepaired) {
  constexpr int64_t kRecords = 4000;
  if (broker_->mock() == nullptr) GTEST_SKIP() << kNeedsMock;
  const bool isolates = Isolates();  // before the error injection: the probe ends a transaction
  broker_->mock()->PushRequestErrors(/*EndTxn=*/26, 1, RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID);
  // Two workers write to the same partitions, so the failed transaction's
  // records are interleaved with the other worker's: the repair must pick
  // exactly its own (worker w writes the values with value % 2 == w).
  weir::Pipeline pipeline(JobOptions(2, true));
  weir::testing::VectorSourceOptions source_options;
  source_options.records_per_poll = 64;
  source_options.records_per_second = 1000;
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(kRecords), source_options))
      .Uid("numbers")
      .Sink(Sink<int64_t>(Options(DeliveryGuarantee::kExactlyOnce)))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::map<int64_t, int> counts = Counts(true);
  if (isolates) {
    ExpectEachOnce(counts, kRecords);
    return;
  }
  // The mock keeps showing the aborted transaction: its records appear twice,
  // all others once, none is missing.
  ExpectEachAtLeastOnce(counts, kRecords);
  std::map<int64_t, int64_t> repaired_by_parity;
  for (const auto& [value, count] : counts) {
    ASSERT_LE(count, 2) << value;
    if (count == 2) ++repaired_by_parity[value % 2];
  }
  ASSERT_EQ(repaired_by_parity.size(), 1u) << "records of both workers were written again";
  EXPECT_GT(repaired_by_parity.begin()->second, 0);
}

// The broker goes down for 2 s mid-stream (checkpoints keep being attempted
// meanwhile): librdkafka retries, the job finishes, nothing is lost; with
// both guarantees (the second run writes every record a second time).
TEST_F(KafkaSinkTest, BrokerDownForAWhileRecovers) {
  constexpr int64_t kRecords = 3000;
  if (broker_->mock() == nullptr) GTEST_SKIP() << kNeedsMock;
  int run = 0;
  for (DeliveryGuarantee guarantee :
       {DeliveryGuarantee::kAtLeastOnce, DeliveryGuarantee::kExactlyOnce}) {
    ++run;
    std::filesystem::remove_all(root_ / "checkpoints");
    SinkOptions<int64_t> options = Options(guarantee);
    // librdkafka's reconnect backoff grows to 10 s by default: keep the test short.
    options.client.properties["reconnect.backoff.max.ms"] = "500";
    weir::Pipeline pipeline(JobOptions(2, true));
    weir::testing::VectorSourceOptions source_options;
    source_options.records_per_poll = 64;
    source_options.records_per_second = 500;  // 4 splits: about 1.5 s of input
    pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(kRecords), source_options))
        .Uid("numbers")
        .Sink(Sink<int64_t>(options))
        .Uid("kafka-out");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    absl::SleepFor(absl::Milliseconds(300));
    ASSERT_TRUE(broker_->mock()->SetBrokerDown(1).ok());
    absl::SleepFor(absl::Seconds(2));
    ASSERT_TRUE(broker_->mock()->SetBrokerUp(1).ok());
    const absl::Time deadline = absl::Now() + absl::Seconds(40);
    while (!job->done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    ASSERT_TRUE(job->done());
    ASSERT_TRUE(job->Wait().ok()) << job->Wait();
    std::map<int64_t, int> counts = Counts(false);
    ASSERT_EQ(counts.size(), static_cast<size_t>(kRecords));
    for (const auto& [value, count] : counts) ASSERT_GE(count, run) << value;
  }
}

TEST_F(KafkaSinkTest, UndeliverableRecordsFailTheJobNamingTheTopic) {
  if (broker_->mock() == nullptr) GTEST_SKIP() << kNeedsMock;
  ASSERT_TRUE(broker_->mock()->SetBrokerDown(1).ok());
  weir::Pipeline pipeline(JobOptions(1, false));
  SinkOptions<int64_t> options = Options(DeliveryGuarantee::kAtLeastOnce);
  options.client.properties["message.timeout.ms"] = "1000";
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(100)))
      .Uid("numbers")
      .Sink(Sink<int64_t>(options))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline, absl::Seconds(30));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable) << result.status;
  EXPECT_THAT(result.status.message(), HasSubstr(topic_));
  EXPECT_THAT(result.status.message(), HasSubstr("kafka-out"));
  ASSERT_TRUE(broker_->mock()->SetBrokerUp(1).ok());
}

// Wraps the Kafka sink to play a process that dies between a checkpoint's
// manifest and its commits: once `drop_commits` is set, Commit does nothing
// and Close leaves the writer's producers as they are, their transactions
// open (as a killed process leaves them; a live zombie, even). The writers
// are kept in `zombies` until the test ends. Every committable the writers
// hand to a checkpoint is kept in `committables`, by checkpoint.
struct CrashBeforeCommit {
  std::atomic<bool> drop_commits = false;
  std::mutex mu;
  std::vector<std::unique_ptr<SinkWriter<int64_t>>> zombies;
  std::map<int64_t, std::vector<std::string>> committables;
};

class CrashingSink final : public weir::Sink<int64_t> {
 public:
  CrashingSink(std::shared_ptr<weir::Sink<int64_t>> inner, CrashBeforeCommit* crash)
      : inner_(std::move(inner)), crash_(crash) {}
  absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> CreateWriter(
      const SinkContext& context) override {
    absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> writer = inner_->CreateWriter(context);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<SinkWriter<int64_t>>(new Writer(*std::move(writer), crash_));
  }

 private:
  class Writer final : public SinkWriter<int64_t> {
   public:
    Writer(std::unique_ptr<SinkWriter<int64_t>> inner, CrashBeforeCommit* crash)
        : inner_(std::move(inner)), crash_(crash) {}
    absl::Status Write(std::span<int64_t> values, std::span<const Timestamp> timestamps) override {
      return inner_->Write(values, timestamps);
    }
    absl::Status Flush() override { return inner_->Flush(); }
    absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
      absl::StatusOr<std::string> committable = inner_->PreCommit(checkpoint_id);
      if (committable.ok()) {
        std::lock_guard<std::mutex> lock(crash_->mu);
        crash_->committables[checkpoint_id].push_back(*committable);
      }
      return committable;
    }
    absl::Status Commit(int64_t checkpoint_id, const std::string& committable) override {
      if (crash_->drop_commits) return absl::OkStatus();
      return inner_->Commit(checkpoint_id, committable);
    }
    absl::Status Close() override {
      if (!crash_->drop_commits) return inner_->Close();
      std::lock_guard<std::mutex> lock(crash_->mu);
      crash_->zombies.push_back(std::move(inner_));
      return absl::OkStatus();
    }

   private:
    std::unique_ptr<SinkWriter<int64_t>> inner_;
    CrashBeforeCommit* crash_;
  };

  std::shared_ptr<weir::Sink<int64_t>> inner_;  // outlives the zombies
  CrashBeforeCommit* crash_;
};

// Records the sink's transactional-id events (see SetSinkEventHookForTesting).
class SinkEvents {
 public:
  SinkEvents() {
    internal::SetSinkEventHookForTesting(
        [this](absl::string_view event, const std::string& transactional_id) {
          std::lock_guard<std::mutex> lock(mu_);
          events_.emplace_back(std::string(event), transactional_id);
        });
  }
  ~SinkEvents() { internal::SetSinkEventHookForTesting(nullptr); }
  std::vector<std::pair<std::string, std::string>> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> events_;
};

// Transactional ids outlive runs (a restart fences the ids of the run
// before and checks its transactions), so they follow the sink's uid:
// renaming the sink (its display name) keeps them; another uid is another
// sink, with ids of its own.
TEST_F(KafkaSinkTest, TransactionalIdsFollowTheUidNotTheDisplayName) {
  SinkEvents events;
  const auto run = [&](const std::string& name, const std::string& uid,
                       const std::string& storage) {
    PipelineOptions options = JobOptions(1, true);
    options.checkpoints.storage_uri = "file://" + (root_ / storage).string();
    weir::Pipeline pipeline(options);
    pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(100)))
        .Uid("numbers")
        .Sink(Sink<int64_t>(Options(DeliveryGuarantee::kExactlyOnce)))
        .Name(name)
        .Uid(uid);
    weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
    EXPECT_TRUE(result.status.ok()) << result.status;
  };
  const auto initialized = [&] {
    std::set<std::string> ids;
    for (const auto& [event, id] : events.events()) {
      if (event == "init_transactions") ids.insert(id);
    }
    return ids;
  };
  const std::set<std::string> outbox = {"sink-test-outbox-0-0", "sink-test-outbox-0-1",
                                        "sink-test-outbox-0-2", "sink-test-outbox-0-3"};
  run("to kafka", "outbox", "checkpoints");
  EXPECT_EQ(initialized(), outbox);
  run("renamed", "outbox", "checkpoints");  // restores the first run's checkpoint
  EXPECT_EQ(initialized(), outbox);
  run("renamed", "outbox-v2", "checkpoints-v2");
  std::set<std::string> both = outbox;
  for (int slot = 0; slot < 4; ++slot) both.insert(absl::StrCat("sink-test-outbox-v2-0-", slot));
  EXPECT_EQ(initialized(), both);
  ExpectEachAtLeastOnce(Counts(false), 100);
}

// SinkOptions::transactional_id_prefix takes the place of
// "<job_name>-<sink uid>" in every id a writer uses: its pool's
// (`<prefix>-<worker>-<slot>`), and on a restore at a lower parallelism the
// vanished workers' ids it fences, which the checkpoint's committables name.
TEST_F(KafkaSinkTest, TransactionalIdsCarryTheConfiguredPrefix) {
  SinkEvents events;
  SinkOptions<int64_t> options = Options(DeliveryGuarantee::kExactlyOnce);
  options.transactional_id_prefix = "orders-outbox";
  options.transaction_pool_size = 3;
  for (const int parallelism : {2, 1}) {  // the second run restores the first's checkpoint
    weir::Pipeline pipeline(JobOptions(parallelism, true));
    pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(1000)))
        .Uid("numbers")
        .Sink(Sink<int64_t>(options))
        .Uid("kafka-out");
    weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
    ASSERT_TRUE(result.status.ok()) << result.status;
  }
  std::set<std::string> expected;
  for (int worker = 0; worker < 2; ++worker) {
    for (int slot = 0; slot < 3; ++slot)
      expected.insert(absl::StrCat("orders-outbox-", worker, "-", slot));
  }
  std::set<std::string> used;
  int fenced_on_restore = 0;
  for (const auto& [event, id] : events.events()) {
    used.insert(id);
    if (event == "init_transactions" && id.starts_with("orders-outbox-1-")) ++fenced_on_restore;
  }
  EXPECT_EQ(used, expected);
  // Worker 1's ids: its pool in the first run, fenced by the restore.
  EXPECT_EQ(fenced_on_restore, 6);
  ExpectEachAtLeastOnce(Counts(false), 1000);
}

// A source whose every snapshot fails, so that every checkpoint fails, while
// its barriers still flow: the sinks downstream pre-commit checkpoints that
// never complete.
class CheckpointDecliningSource final : public weir::Source<int64_t> {
 public:
  explicit CheckpointDecliningSource(std::shared_ptr<weir::Source<int64_t>> inner)
      : inner_(std::move(inner)) {}
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return inner_->DiscoverSplits();
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int64_t>>> CreateReader(
      const SourceReaderContext& context) override {
    absl::StatusOr<std::unique_ptr<SourceReader<int64_t>>> reader = inner_->CreateReader(context);
    if (!reader.ok()) return reader.status();
    return std::unique_ptr<SourceReader<int64_t>>(new Reader(*std::move(reader)));
  }

 private:
  class Reader final : public SourceReader<int64_t> {
   public:
    explicit Reader(std::unique_ptr<SourceReader<int64_t>> inner) : inner_(std::move(inner)) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<int64_t>& output) override {
      return inner_->Poll(output);
    }
    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t checkpoint_id) override {
      return absl::UnavailableError(absl::StrCat("the test declines checkpoint ", checkpoint_id));
    }

   private:
    std::unique_ptr<SourceReader<int64_t>> inner_;
  };

  std::shared_ptr<weir::Source<int64_t>> inner_;
};

// SinkOptions::transaction_pool_size: a worker's pool holds the open
// transaction and one per pre-committed checkpoint not complete yet. With a
// pool of 2, two checkpoints failing in a row leave no producer for the
// records after the second: the job fails with kResourceExhausted, and not
// earlier.
TEST_F(KafkaSinkTest, TransactionPoolExhaustedByFailingCheckpointsIsResourceExhausted) {
  PipelineOptions pipeline_options = JobOptions(1, true);
  pipeline_options.checkpoints.interval = absl::ZeroDuration();  // only the ones triggered
  weir::Pipeline pipeline(pipeline_options);
  auto numbers = weir::testing::ScriptedSource<int64_t>::Create(
      TimestampedNumbers(300), {.records_per_poll = 64, .bounded = false}, /*released=*/100);
  SinkOptions<int64_t> options = Options(DeliveryGuarantee::kExactlyOnce);
  options.transaction_pool_size = 2;
  pipeline.Source(std::make_shared<CheckpointDecliningSource>(numbers))
      .Uid("numbers")
      .Sink(Sink<int64_t>(options))
      .Uid("kafka-out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // 0..99 in the first producer's transaction, pre-committed for checkpoint 1,
  // which fails.
  ASSERT_TRUE(weir::testing::WaitFor([&] { return Counts(false).size() == 100; }));
  EXPECT_FALSE(job->TriggerCheckpoint().ok());
  // 100..199 in the second producer's: the pool still suffices.
  numbers->Release(200);
  ASSERT_TRUE(weir::testing::WaitFor([&] { return Counts(false).size() == 200; }));
  ASSERT_FALSE(job->done()) << job->Wait();
  EXPECT_FALSE(job->TriggerCheckpoint().ok());
  // Both producers now hold transactions of checkpoints not complete.
  numbers->Release(300);
  ASSERT_TRUE(weir::testing::WaitFor([&] { return job->done(); }));
  const absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("transaction_pool_size")) << status;
  EXPECT_EQ(Counts(false).size(), 200u);
}

// A run with `first`'s options dies after checkpoint 2's manifest, before
// its commits (and with records of later transactions in flight); a run with
// `second`'s restores it. Returns how long the restored run took.
absl::Duration CrashAfterCheckpoint2AndRestore(int64_t records, const SinkOptions<int64_t>& options,
                                               const PipelineOptions& first,
                                               const PipelineOptions& second,
                                               CrashBeforeCommit& crash) {
  {
    PipelineOptions crash_options = first;
    crash_options.checkpoints.interval = absl::ZeroDuration();  // only the ones triggered here
    weir::Pipeline pipeline(crash_options);
    weir::testing::VectorSourceOptions source_options;
    source_options.records_per_poll = 16;
    source_options.records_per_second = 250;
    pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(records), source_options))
        .Uid("numbers")
        .Sink(std::make_shared<CrashingSink>(Sink<int64_t>(options), &crash))
        .Uid("kafka-out");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return absl::ZeroDuration();
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_TRUE(job->TriggerCheckpoint().ok());
    absl::SleepFor(absl::Milliseconds(300));
    crash.drop_commits = true;
    absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();  // complete, never committed
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    absl::SleepFor(absl::Milliseconds(200));  // records of transactions in no checkpoint
    EXPECT_FALSE(job->done()) << "the input ended before the crash";
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }
  weir::Pipeline pipeline(second);
  pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(records)))
      .Uid("numbers")
      .Sink(Sink<int64_t>(options))
      .Uid("kafka-out");
  const absl::Time start = absl::Now();
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(result.status.ok()) << result.status << " after " << took;
  return took;
}

// Restoring at a lower parallelism initializes (fences) every transactional
// id of the vanished workers' pools before it checks any restored
// transaction: their open transactions would otherwise hold back the last
// stable offset, and the check would wait for the transaction timeout.
TEST_F(KafkaSinkTest, LowerParallelismFencesVanishedIdsBeforeTheFirstCheck) {
  constexpr int64_t kRecords = 8000;
  SinkEvents events;
  CrashBeforeCommit crash;
  CrashAfterCheckpoint2AndRestore(kRecords, Options(DeliveryGuarantee::kExactlyOnce),
                                  JobOptions(4, true), JobOptions(2, true), crash);
  std::vector<std::pair<std::string, std::string>> seen = events.events();
  // The restored run's events: from the first id of the new pools on.
  auto restored = std::find(
      seen.begin(), seen.end(),
      std::pair<std::string, std::string>("init_transactions", "sink-test-kafka-out-0-0"));
  restored = std::find(
      restored + 1, seen.end(),
      std::pair<std::string, std::string>("init_transactions", "sink-test-kafka-out-0-0"));
  ASSERT_NE(restored, seen.end()) << "no second run";
  auto first_check =
      std::find_if(restored, seen.end(), [](const auto& e) { return e.first == "check"; });
  ASSERT_NE(first_check, seen.end()) << "the restore checked no transaction";
  std::set<std::string> fenced_before_check;
  for (auto it = restored; it != first_check; ++it) {
    if (it->first == "init_transactions") fenced_before_check.insert(it->second);
  }
  for (int worker = 2; worker < 4; ++worker) {
    for (int slot = 0; slot < 4; ++slot) {
      const std::string id = absl::StrCat("sink-test-kafka-out-", worker, "-", slot);
      EXPECT_TRUE(fenced_before_check.contains(id))
          << id << " was not fenced before the first check (of " << first_check->second << ")";
    }
  }
  // Nothing lost; exactly once is LowerParallelismRestoreAfterACrashBeforeCommitIsPrompt's.
  ExpectEachAtLeastOnce(Counts(true), kRecords);
}

// Where transactions are isolated: the same crash, the restore is prompt
// instead of waiting for the vanished workers' open transactions
// (transaction.timeout.ms) while checking its own, and every record is
// there exactly once.
TEST_F(KafkaSinkTest, LowerParallelismRestoreAfterACrashBeforeCommitIsPrompt) {
  if (!Isolates()) GTEST_SKIP() << kNeedsTransactionIsolation;
  constexpr int64_t kRecords = 8000;
  SinkOptions<int64_t> options = Options(DeliveryGuarantee::kExactlyOnce);
  options.flush_timeout = absl::Seconds(60);  // a stalled check fails only after this
  CrashBeforeCommit crash;
  const absl::Duration took = CrashAfterCheckpoint2AndRestore(
      kRecords, options, JobOptions(4, true), JobOptions(2, true), crash);
  EXPECT_LT(took, absl::Seconds(20));
  ExpectEachOnce(Counts(true), kRecords);
}

// The restore-time repair, with the broker's abort injected
// (SetRestoredTransactionAbortHookForTesting): librdkafka's mock cluster
// shows aborted transactions to read_committed readers, so a restore on it
// finds every transaction committed. A run dies between checkpoint 2 and its
// commits; the restore takes checkpoint 2's transactions for aborted, reads
// their records back from the log and writes them again. The aborted
// originals stay visible on the mock: each record of checkpoint 2's
// transactions is there twice (with its key and headers), each of
// checkpoint 1's once, none is missing.
TEST_F(KafkaSinkTest, RestoredTransactionFoundAbortedIsWrittenAgain) {
  if (broker_->mock() == nullptr) GTEST_SKIP() << kNeedsMock;
  constexpr int64_t kRecords = 4000;
  internal::SetRestoredTransactionAbortHookForTesting([](const std::string&) { return true; });
  CrashBeforeCommit crash;
  ::testing::internal::CaptureStderr();
  CrashAfterCheckpoint2AndRestore(kRecords, Options(DeliveryGuarantee::kExactlyOnce),
                                  JobOptions(2, true), JobOptions(2, true), crash);
  const std::string log = ::testing::internal::GetCapturedStderr();
  internal::SetRestoredTransactionAbortHookForTesting(nullptr);

  absl::StatusOr<std::vector<ReadMessage>> messages =
      ReadTopic(bootstrap_, topic_, kPartitions, /*read_committed=*/true);
  ASSERT_TRUE(messages.ok()) << messages.status();
  std::map<std::pair<int32_t, int64_t>, int64_t> value_at;  // (partition, offset) -> value
  std::map<int64_t, int> counts;
  for (const ReadMessage& message : *messages) {
    const int64_t value = std::stoll(message.value);
    value_at[{message.partition, message.offset}] = value;
    ++counts[value];
    ASSERT_EQ(message.key, absl::StrCat("k", value));  // the repair keeps keys and headers
    ASSERT_EQ(message.headers.size(), 1u) << value;
    EXPECT_EQ(message.headers[0].second, value % 2 == 0 ? "even" : "odd") << value;
  }
  // The values of each checkpoint's transactions, from its committables.
  ASSERT_EQ(crash.committables.size(), 2u);
  std::vector<std::set<int64_t>> written_for(2);
  int repaired_transactions = 0;
  int checkpoint_index = 0;
  for (const auto& [checkpoint_id, committables] : crash.committables) {
    for (const std::string& text : committables) {
      absl::StatusOr<internal::TransactionCommittable> committable =
          internal::DecodeCommittable(text);
      ASSERT_TRUE(committable.ok()) << committable.status();
      if (checkpoint_index == 1 && committable->has_transaction()) ++repaired_transactions;
      for (const auto& [partition, runs] : committable->partitions) {
        for (const auto& [first, last] : runs) {
          for (int64_t offset = first; offset <= last; ++offset) {
            auto it = value_at.find({partition, offset});
            ASSERT_NE(it, value_at.end()) << "partition " << partition << " offset " << offset;
            written_for[checkpoint_index].insert(it->second);
          }
        }
      }
    }
    ++checkpoint_index;
  }
  ASSERT_FALSE(written_for[1].empty()) << "checkpoint 2 covers no transaction";
  ASSERT_GT(repaired_transactions, 0);

  ExpectEachAtLeastOnce(counts, kRecords);
  for (int64_t value : written_for[0]) EXPECT_EQ(counts[value], 1) << "checkpoint 1: " << value;
  for (int64_t value : written_for[1]) EXPECT_EQ(counts[value], 2) << "checkpoint 2: " << value;
  for (const auto& [value, count] : counts) ASSERT_LE(count, 2) << value;
  // One log line per repaired transaction, with its record count.
  int logged = 0;
  int64_t logged_records = 0;
  static const std::regex kRepairLine(
      "was aborted although the checkpoint completed[^\\n]*writing its ([0-9]+) records again");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), kRepairLine);
       it != std::sregex_iterator(); ++it) {
    ++logged;
    logged_records += std::stoll((*it)[1].str());
  }
  EXPECT_EQ(logged, repaired_transactions) << log;
  EXPECT_EQ(logged_records, static_cast<int64_t>(written_for[1].size())) << log;
}

// Removes the restored-transaction abort hook when the test ends.
class InjectRestoredTransactionAborts {
 public:
  InjectRestoredTransactionAborts() {
    internal::SetRestoredTransactionAbortHookForTesting([](const std::string&) { return true; });
  }
  ~InjectRestoredTransactionAborts() {
    internal::SetRestoredTransactionAbortHookForTesting(nullptr);
  }
};

// The repair of a restored transaction found aborted (injected, as in
// RestoredTransactionFoundAbortedIsWrittenAgain) reads its records back from
// the log; when retention has removed them, the restore fails with kDataLoss
// naming the transaction, the topic, the partition and the offsets, rather
// than going on without them. A run dies after checkpoint 1's manifest,
// before its commit; the mock's retention then passes the transaction's
// records (all in partition 0).
TEST_F(KafkaSinkTest, RepairOfRecordsRetentionRemovedIsDataLoss) {
  if (broker_->mock() == nullptr) GTEST_SKIP() << kNeedsMockRetention;
  SinkOptions<int64_t> options = Options(DeliveryGuarantee::kExactlyOnce);
  options.partitioner = [](const int64_t&, const std::string&, int32_t) { return 0; };
  PipelineOptions pipeline_options = JobOptions(1, true);
  pipeline_options.checkpoints.interval = absl::ZeroDuration();  // only the one triggered
  CrashBeforeCommit crash;
  {
    auto numbers = weir::testing::ScriptedSource<int64_t>::Create(
        TimestampedNumbers(200), {.records_per_poll = 64, .bounded = false}, /*released=*/100);
    weir::Pipeline pipeline(pipeline_options);
    pipeline.Source(numbers)
        .Uid("numbers")
        .Sink(std::make_shared<CrashingSink>(Sink<int64_t>(options), &crash))
        .Uid("kafka-out");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(weir::testing::WaitFor([&] { return Counts(false).size() == 100; }));
    crash.drop_commits = true;
    absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();  // complete, never committed
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }
  ASSERT_EQ(crash.committables.size(), 1u);
  ASSERT_EQ(crash.committables.begin()->second.size(), 1u);
  absl::StatusOr<internal::TransactionCommittable> committable =
      internal::DecodeCommittable(crash.committables.begin()->second.front());
  ASSERT_TRUE(committable.ok()) << committable.status();
  ASSERT_EQ(committable->partitions.size(), 1u);
  ASSERT_TRUE(committable->partitions.contains(0));
  const internal::OffsetRuns& runs = committable->partitions.at(0);
  absl::StatusOr<int64_t> log_start = OverflowPartition(bootstrap_, topic_, 0);
  ASSERT_TRUE(log_start.ok()) << log_start.status();
  ASSERT_GT(*log_start, runs.back().second);

  InjectRestoredTransactionAborts aborts;
  weir::Pipeline pipeline(pipeline_options);
  pipeline
      .Source(weir::testing::ScriptedSource<int64_t>::Create(TimestampedNumbers(200),
                                                             {.records_per_poll = 64}))
      .Uid("numbers")
      .Sink(Sink<int64_t>(options))
      .Uid("kafka-out");
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kDataLoss) << result.status;
  EXPECT_THAT(result.status.message(), HasSubstr(committable->transactional_id)) << result.status;
  std::string offsets;
  for (const auto& [first, last] : runs) {
    absl::StrAppend(&offsets, offsets.empty() ? "" : ",", first, "-", last);
  }
  EXPECT_THAT(result.status.message(),
              HasSubstr(absl::StrCat("offsets ", offsets, " of ", topic_, " [0]")))
      << result.status;
}

TEST_F(KafkaSinkTest, BadConfigurationIsInvalidArgumentAtStart) {
  const auto start = [&](SinkOptions<int64_t> options, bool checkpoints) {
    weir::Pipeline pipeline(JobOptions(1, checkpoints));
    pipeline.Source(weir::testing::VectorSource<int64_t>::Create(Numbers(10)))
        .Uid("numbers")
        .Sink(Sink<int64_t>(std::move(options)))
        .Uid("kafka-out");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    if (job.ok()) {
      job->Cancel();
      (void)job->Wait();
      return absl::OkStatus();
    }
    return job.status();
  };
  SinkOptions<int64_t> unknown_property = Options(DeliveryGuarantee::kAtLeastOnce);
  unknown_property.client.properties["no.such.property"] = "1";
  absl::Status status = start(unknown_property, false);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("no.such.property"));

  SinkOptions<int64_t> no_topic = Options(DeliveryGuarantee::kAtLeastOnce);
  no_topic.topic.clear();
  EXPECT_EQ(start(no_topic, false).code(), absl::StatusCode::kInvalidArgument);

  SinkOptions<int64_t> no_serializer = Options(DeliveryGuarantee::kAtLeastOnce);
  no_serializer.serializer = nullptr;
  EXPECT_EQ(start(no_serializer, false).code(), absl::StatusCode::kInvalidArgument);

  status = start(Options(DeliveryGuarantee::kExactlyOnce), /*checkpoints=*/false);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("checkpoint"));

  SinkOptions<int64_t> short_timeout = Options(DeliveryGuarantee::kExactlyOnce);
  short_timeout.transaction_timeout = absl::Seconds(10);  // checkpoint timeout is 20 s
  status = start(short_timeout, true);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("transaction timeout"));

  SinkOptions<int64_t> own_id = Options(DeliveryGuarantee::kExactlyOnce);
  own_id.client.properties["transactional.id"] = "mine";
  EXPECT_EQ(start(own_id, true).code(), absl::StatusCode::kInvalidArgument);

  SinkOptions<int64_t> tiny_pool = Options(DeliveryGuarantee::kExactlyOnce);
  tiny_pool.transaction_pool_size = 1;
  EXPECT_EQ(start(tiny_pool, true).code(), absl::StatusCode::kInvalidArgument);

  // And the valid one starts.
  EXPECT_TRUE(start(Options(DeliveryGuarantee::kExactlyOnce), true).ok());
}

}  // namespace
}  // namespace weir::kafka::testing
