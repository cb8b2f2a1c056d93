// weir::kafka::DeadLetterTopic against librdkafka's mock cluster: each letter
// becomes a message with the original key, payload bytes and headers, plus
// weir's headers; delivery failures name the topic.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"
#include "weir/connectors/kafka_dead_letter.h"

namespace weir::kafka::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

class DeadLetterTopicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker = KafkaTestBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    ASSERT_TRUE(broker_->CreateTopic("app.dlq", 1).ok());
  }

  std::unique_ptr<KafkaTestBroker> broker_;
};

TEST_F(DeadLetterTopicTest, KeepsBytesAndHeadersAndAddsWeirHeaders) {
  std::shared_ptr<DeadLetterQueue> queue =
      DeadLetterTopic({.client = {.brokers = broker_->bootstrap()}, .topic = "app.dlq"});
  EXPECT_THAT(queue->Describe(), HasSubstr("app.dlq"));
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer = queue->CreateWriter("decode", 1);
  ASSERT_TRUE(writer.ok()) << writer.status();

  DeadLetter letter;
  letter.payload = std::string("{\"id\": \0\xff broken", 16);
  letter.key = std::string("k\0ey", 4);
  letter.headers = {{"trace", "abc"}, {"binary", std::string("\x01\x00", 2)}};
  letter.code = absl::StatusCode::kInvalidArgument;
  letter.error = "field 'id': expected an integer";
  letter.stage = "kafka-source";
  letter.topic = "events";
  letter.partition = 3;
  letter.offset = 42;
  letter.timestamp_ms = 1'700'000'000'123;
  ASSERT_TRUE((*writer)->Write(letter).ok());

  DeadLetter bare;  // no key, no origin: no weir.source.* headers
  bare.payload = "x";
  bare.code = absl::StatusCode::kUnavailable;
  bare.error = "webhook answered 503";
  bare.stage = "http-sink";
  ASSERT_TRUE((*writer)->Write(bare).ok());

  DeadLetter row;  // from a database's change log: its position as headers
  row.payload = "{}";
  row.code = absl::StatusCode::kInvalidArgument;
  row.error = "after: field \"price\" (table public.items): is NULL";
  row.stage = "postgres-source";
  row.position = {{"slot", "weir_slot"}, {"lsn", "0/16B3748"}, {"table", "public.items"}};
  ASSERT_TRUE((*writer)->Write(row).ok());
  ASSERT_TRUE((*writer)->Flush().ok());

  absl::StatusOr<std::vector<ReadMessage>> messages =
      ReadTopic(broker_->bootstrap(), "app.dlq", 1, /*read_committed=*/false);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), 3u);
  const ReadMessage& first = (*messages)[0];
  EXPECT_EQ(first.value, letter.payload);
  EXPECT_TRUE(first.has_key);
  EXPECT_EQ(first.key, letter.key);
  EXPECT_THAT(first.headers,
              ElementsAre(Pair("trace", "abc"), Pair("binary", std::string("\x01\x00", 2)),
                          Pair("weir.error", "field 'id': expected an integer"),
                          Pair("weir.error.code", "INVALID_ARGUMENT"),
                          Pair("weir.stage", "kafka-source"), Pair("weir.source.topic", "events"),
                          Pair("weir.source.partition", "3"), Pair("weir.source.offset", "42"),
                          Pair("weir.source.timestamp", "1700000000123")));
  const ReadMessage& second = (*messages)[1];
  EXPECT_EQ(second.value, "x");
  EXPECT_FALSE(second.has_key);
  EXPECT_THAT(second.headers,
              ElementsAre(Pair("weir.error", "webhook answered 503"),
                          Pair("weir.error.code", "UNAVAILABLE"), Pair("weir.stage", "http-sink")));
  EXPECT_THAT(
      (*messages)[2].headers,
      ElementsAre(Pair("weir.error", row.error), Pair("weir.error.code", "INVALID_ARGUMENT"),
                  Pair("weir.stage", "postgres-source"), Pair("weir.source.slot", "weir_slot"),
                  Pair("weir.source.lsn", "0/16B3748"), Pair("weir.source.table", "public.items")));
}

TEST_F(DeadLetterTopicTest, UndeliverableLetterFailsFlushNamingTheTopic) {
  std::shared_ptr<DeadLetterQueue> queue = DeadLetterTopic(
      {.client = {.brokers = broker_->bootstrap(), .properties = {{"message.timeout.ms", "1000"}}},
       .topic = "app.dlq",
       .flush_timeout = absl::Seconds(20)});
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer = queue->CreateWriter("decode", 0);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(broker_->mock()->SetBrokerDown(1).ok());
  DeadLetter letter;
  letter.payload = "lost?";
  letter.stage = "kafka-source";
  ASSERT_TRUE((*writer)->Write(letter).ok());
  absl::Status status = (*writer)->Flush();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("app.dlq"));
  ASSERT_TRUE(broker_->mock()->SetBrokerUp(1).ok());
}

TEST_F(DeadLetterTopicTest, BadConfigurationIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> no_topic =
      DeadLetterTopic({.client = {.brokers = broker_->bootstrap()}})->CreateWriter("decode", 0);
  EXPECT_EQ(no_topic.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> bad_property =
      DeadLetterTopic(
          {.client = {.brokers = broker_->bootstrap(), .properties = {{"no.such.property", "1"}}},
           .topic = "app.dlq"})
          ->CreateWriter("decode", 0);
  EXPECT_EQ(bad_property.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weir::kafka::testing
