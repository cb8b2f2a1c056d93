// The engagement-generator program against a Kafka broker on loopback
// (librdkafka's mock cluster, in-process so faults can be injected; the
// program runs as a child process): the topics hold exactly the
// ChangeGenerator's records for the seed (keys, values, tombstones, per-key
// order), GENERATION_RATE and BURST_MODE pace the run, delivery failures and
// unreachable brokers fail it with a clear message, SIGTERM flushes.

#include <signal.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "examples/engagement/generator.h"
#include "examples/engagement/tests/generator_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"

namespace engagement::testing {
namespace {

using ::testing::HasSubstr;
using weir::kafka::testing::KafkaTestBroker;
using weir::kafka::testing::ReadMessage;
using weir::kafka::testing::ReadTopic;

constexpr int kContentPartitions = 3;
constexpr int kEventPartitions = 4;
constexpr char kStartTime[] = "--start-time=1795564800000";

// Per key, its values in order (nullopt: a tombstone).
using KeyedLog = std::map<std::string, std::vector<std::optional<std::string>>>;

class GeneratorKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker = KafkaTestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    ASSERT_TRUE(broker_->CreateTopic(ContentTopic(), kContentPartitions).ok());
    ASSERT_TRUE(broker_->CreateTopic(EventsTopic(), kEventPartitions).ok());
  }

  std::string ContentTopic() const { return prefix_ + ".public.content"; }
  std::string EventsTopic() const { return prefix_ + ".public.engagement_events"; }

  std::vector<ReadMessage> Read(const std::string& topic, int partitions) {
    absl::StatusOr<std::vector<ReadMessage>> messages =
        ReadTopic(broker_->bootstrap(), topic, partitions, /*read_committed=*/false);
    EXPECT_TRUE(messages.ok()) << messages.status();
    return messages.ok() ? *std::move(messages) : std::vector<ReadMessage>();
  }

  // Every message of both topics (content first).
  std::vector<ReadMessage> ReadAll() {
    std::vector<ReadMessage> all = Read(ContentTopic(), kContentPartitions);
    std::vector<ReadMessage> events = Read(EventsTopic(), kEventPartitions);
    all.insert(all.end(), events.begin(), events.end());
    return all;
  }

  // The topic's messages by key, checking that each key stays in one
  // partition (so its order is the partition's order).
  static KeyedLog ByKey(const std::vector<ReadMessage>& messages) {
    KeyedLog log;
    std::map<std::string, int32_t> partition_of;
    for (const ReadMessage& message : messages) {
      auto [it, inserted] = partition_of.emplace(message.key, message.partition);
      EXPECT_EQ(it->second, message.partition) << "key " << message.key << " in two partitions";
      log[message.key].push_back(message.has_value ? std::optional<std::string>(message.value)
                                                   : std::nullopt);
    }
    return log;
  }

  static KeyedLog Expected(const std::vector<GeneratedRecord>& records, const std::string& topic) {
    KeyedLog log;
    for (const GeneratedRecord& record : records) {
      if (record.topic == topic) log[record.key].push_back(record.value);
    }
    return log;
  }

  // Checks that the topics hold exactly `records`.
  void ExpectTopicsHold(const std::vector<GeneratedRecord>& records) {
    const std::vector<ReadMessage> content = Read(ContentTopic(), kContentPartitions);
    const std::vector<ReadMessage> events = Read(EventsTopic(), kEventPartitions);
    EXPECT_EQ(content.size() + events.size(), records.size());
    const KeyedLog content_log = ByKey(content);
    const KeyedLog expected_content = Expected(records, ContentTopic());
    EXPECT_EQ(content_log.size(), expected_content.size());
    EXPECT_TRUE(content_log == expected_content) << "the content topic differs";
    const KeyedLog events_log = ByKey(events);
    const KeyedLog expected_events = Expected(records, EventsTopic());
    EXPECT_EQ(events_log.size(), expected_events.size());
    EXPECT_TRUE(events_log == expected_events) << "the engagement_events topic differs";
  }

  std::vector<std::string> Args(std::vector<std::string> more) const {
    std::vector<std::string> args = {"--brokers=" + broker_->bootstrap(),
                                     "--topic-prefix=" + prefix_, kStartTime,
                                     "--status-interval=0.5"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }

  std::unique_ptr<KafkaTestBroker> broker_;
  std::string prefix_ = "gen";
};

// --with-schema or not.
class GeneratorKafkaRecordsTest : public GeneratorKafkaTest,
                                  public ::testing::WithParamInterface<bool> {};

TEST_P(GeneratorKafkaRecordsTest, TopicsHoldExactlyTheGeneratorsRecordsForTheSeed) {
  // Many content changes, so that a short run has creates, updates, deletes
  // and tombstones; ~3000 records stay far below the mock's 5 MiB per
  // partition even with the schema.
  std::vector<std::string> args =
      Args({"--seed=5", "--initial-contents=100", "--content-change-share=0.05", "--total=3000",
            "--rate=max"});
  if (GetParam()) args.push_back("--with-schema");
  const GeneratorRun run = RunGeneratorProgram(args);
  ASSERT_EQ(run.exit_code, 0) << run.log;
  const std::vector<GeneratedRecord> expected = ExpectedRecords(args, {});
  ASSERT_EQ(expected.size(), 3000u);
  int deletes = 0;
  int tombstones = 0;
  for (const GeneratedRecord& record : expected) {
    deletes += record.op == weir::debezium::Op::kDelete;
    tombstones += !record.value.has_value();
  }
  ASSERT_GT(deletes, 0);
  ASSERT_EQ(tombstones, deletes);
  ExpectTopicsHold(expected);
  EXPECT_THAT(run.log, HasSubstr("done: 3000 records"));
  EXPECT_THAT(run.log, HasSubstr("Kafka acknowledged all"));
}

INSTANTIATE_TEST_SUITE_P(Envelopes, GeneratorKafkaRecordsTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "WithSchema" : "Bare";
                         });

// The produce times (CreateTime) of all messages, sorted, relative to the first.
std::vector<int64_t> RelativeTimestamps(const std::vector<ReadMessage>& messages) {
  std::vector<int64_t> times;
  for (const ReadMessage& message : messages) times.push_back(message.timestamp_ms);
  std::sort(times.begin(), times.end());
  const int64_t first = times.empty() ? 0 : times.front();
  for (int64_t& time : times) time -= first;
  return times;
}

// The pacing itself is tested on a hand-stepped clock (generator_app_test.cc);
// here the program runs on the real clock on a machine that may be busy, so
// only what no delay can break is asserted: the variables reach the pacer
// (the log says so), and the pacer never lets a record out early, which puts
// a lower bound on the run's wall time. A delay only makes the run longer.
TEST_F(GeneratorKafkaTest, GenerationRateFromTheEnvironmentPacesTheRun) {
  // 60,000 per minute = 1000/s: the 2100th record is due 2.1 s after the
  // first poll (the schedule starts there, inside the run).
  const std::vector<std::string> args = Args({"--initial-contents=100", "--total=2100"});
  const GeneratorRun run = RunGeneratorProgram(args, {{"GENERATION_RATE", "60000"}});
  ASSERT_EQ(run.exit_code, 0) << run.log;
  const std::vector<int64_t> times = RelativeTimestamps(ReadAll());
  ASSERT_EQ(times.size(), 2100u);
  std::printf("2100 records at GENERATION_RATE=60000 (1000/s): run took %s, spanned %lld ms\n",
              absl::FormatDuration(run.took).c_str(), static_cast<long long>(times.back()));
  EXPECT_THAT(run.log, HasSubstr("rate 60000/min (1000/s)"));
  // Less a rounding error far below 1 ms; unpaced, the run takes a fraction
  // of this.
  EXPECT_GE(run.took, absl::Milliseconds(2099));
}

TEST_F(GeneratorKafkaTest, BurstModeFromTheEnvironmentAddsBurstsOnTopOfTheRate) {
  // 500/s plus 2000 records at once every second. By time t < 2 s after the
  // first poll at most 500 t + 2000 < 3000 records are due, so the 3500th
  // goes out at 2 s or later, in a poll that has counted both bursts.
  // Without bursts it would be due at 7 s.
  const std::vector<std::string> args = Args({"--initial-contents=100", "--total=3500"});
  const GeneratorRun run = RunGeneratorProgram(args, {{"GENERATION_RATE", "30000"},
                                                      {"BURST_MODE", "true"},
                                                      {"BURST_COUNT", "2000"},
                                                      {"BURST_INTERVAL_SECONDS", "1"}});
  ASSERT_EQ(run.exit_code, 0) << run.log;
  const std::vector<int64_t> times = RelativeTimestamps(ReadAll());
  ASSERT_EQ(times.size(), 3500u);
  std::printf("3500 records at 500/s with bursts of 2000 every 1 s: run took %s, spanned %lld ms\n",
              absl::FormatDuration(run.took).c_str(), static_cast<long long>(times.back()));
  EXPECT_THAT(run.log, HasSubstr("bursts of 2000 every 1s"));
  EXPECT_GE(run.took, absl::Seconds(2));
  // The summary counts the bursts begun: 2, or more if the machine was so
  // slow that the run outlasted 3 s.
  const size_t done = run.log.find("done: 3500 records");
  ASSERT_NE(done, std::string::npos) << run.log;
  const std::string summary = run.log.substr(done, run.log.find('\n', done) - done);
  const size_t bursts_at = summary.find(" bursts");
  ASSERT_NE(bursts_at, std::string::npos) << summary;
  const size_t number_at = summary.rfind(' ', bursts_at - 1) + 1;
  int bursts = 0;
  ASSERT_TRUE(absl::SimpleAtoi(summary.substr(number_at, bursts_at - number_at), &bursts))
      << summary;
  EXPECT_GE(bursts, 2) << summary;
}

// Records the program has delivered so far, from the topics' high watermarks.
int64_t Delivered(const std::string& bootstrap, const std::string& content_topic,
                  const std::string& events_topic) {
  int64_t total = 0;
  for (const auto& [topic, partitions] :
       {std::pair(content_topic, kContentPartitions), std::pair(events_topic, kEventPartitions)}) {
    for (int partition = 0; partition < partitions; ++partition) {
      absl::StatusOr<std::pair<int64_t, int64_t>> marks =
          weir::kafka::testing::QueryWatermarks(bootstrap, topic, partition);
      if (marks.ok()) total += marks->second;
    }
  }
  return total;
}

TEST_F(GeneratorKafkaTest, SigtermStopsAfterFlushingEverythingSent) {
  const std::vector<std::string> gen_args =
      Args({"--seed=8", "--initial-contents=50", "--content-change-share=0.05", "--duration=60s"});
  absl::StatusOr<std::unique_ptr<GeneratorProcess>> process =
      GeneratorProcess::Start(gen_args, {{"GENERATION_RATE", "120000"}});
  ASSERT_TRUE(process.ok()) << process.status();
  // Stop it once it is well under way (it would run for a minute).
  ASSERT_TRUE(weir::testing::WaitFor([&] {
    return Delivered(broker_->bootstrap(), ContentTopic(), EventsTopic()) > 100;
  })) << (*process)->Log();
  (*process)->Signal(SIGTERM);
  const GeneratorRun run = (*process)->Wait(absl::Seconds(60));
  ASSERT_EQ(run.exit_code, 0) << run.log;
  EXPECT_THAT(run.log, HasSubstr("stopping"));
  // Exactly the first N records of the sequence, N what was sent.
  const size_t sent = ReadAll().size();
  ASSERT_GT(sent, 100u);
  EXPECT_THAT(run.log, HasSubstr(absl::StrCat("done: ", sent, " records")));
  std::vector<std::string> expected_args = gen_args;
  expected_args.push_back(absl::StrCat("--total=", sent));
  ExpectTopicsHold(ExpectedRecords(expected_args, {{"GENERATION_RATE", "120000"}}));
}

TEST_F(GeneratorKafkaTest, DeliveryFailureFailsTheRunNamingTheTopic) {
  absl::StatusOr<std::unique_ptr<GeneratorProcess>> process = GeneratorProcess::Start(
      Args({"--rate=60000", "--duration=60s", "--kafka-property=message.timeout.ms=1000"}));
  ASSERT_TRUE(process.ok()) << process.status();
  // The broker goes down once the program is producing (not while it
  // connects, which fails differently).
  ASSERT_TRUE(weir::testing::WaitFor([&] {
    return Delivered(broker_->bootstrap(), ContentTopic(), EventsTopic()) > 0;
  })) << (*process)->Log();
  ASSERT_TRUE(broker_->mock()->SetBrokerDown(1).ok());
  // A run that hung instead of failing is killed at the deadline (exit code
  // -1); the run would otherwise last its 60 s and end with code 0.
  const GeneratorRun run = (*process)->Wait(absl::Seconds(50));
  ASSERT_TRUE(broker_->mock()->SetBrokerUp(1).ok());
  EXPECT_EQ(run.exit_code, 1) << run.log;
  EXPECT_THAT(run.log, HasSubstr("error: UNAVAILABLE"));
  EXPECT_THAT(run.log, HasSubstr("delivery to " + prefix_ + ".public."));
  std::printf("the run failed %s after it started\n", absl::FormatDuration(run.took).c_str());
}

TEST_F(GeneratorKafkaTest, UnreachableOrMissingBrokersFailWithAClearMessage) {
  absl::StatusOr<int> port = weir::testing::FreeLoopbackPort();
  ASSERT_TRUE(port.ok());
  // A run that hangs instead of giving up after --connect-timeout is killed
  // at the deadline (exit code -1).
  GeneratorRun run = RunGeneratorProgram(
      {absl::StrCat("--brokers=127.0.0.1:", *port), "--connect-timeout=2s", "--total=10"}, {},
      absl::Seconds(60));
  EXPECT_EQ(run.exit_code, 1) << run.log;
  EXPECT_THAT(run.log, HasSubstr("cannot reach the Kafka brokers at 127.0.0.1:"));

  run = RunGeneratorProgram({"--total=10"});
  EXPECT_EQ(run.exit_code, 2) << run.log;
  EXPECT_THAT(run.log, HasSubstr("KAFKA_BROKERS"));
  EXPECT_THAT(run.log, HasSubstr("weir-kafka-dev engagement.public.content:4"));

  run = RunGeneratorProgram({"--total=10"}, {{"GENERATION_RATE", "lots"}, {"KAFKA_BROKERS", "x"}});
  EXPECT_EQ(run.exit_code, 2) << run.log;
  EXPECT_THAT(run.log, HasSubstr("GENERATION_RATE"));

  run = RunGeneratorProgram({"--help"});
  EXPECT_EQ(run.exit_code, 0) << run.log;
  EXPECT_THAT(run.log, HasSubstr("BURST_MODE"));
}

}  // namespace
}  // namespace engagement::testing
