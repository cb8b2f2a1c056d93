// A Kafka broker for tests and benches: librdkafka's mock cluster, either
// in-process (fault injection through mock()) or as a weir-kafka-dev child
// process (killed when the fixture is destroyed), or a real broker given by
// WEIR_TEST_KAFKA_BROKERS (FromEnvironment(); see docs/testing.md); plus a
// plain librdkafka producer to fill topics and a helper that reads a topic's
// watermarks.
//
// The mock cluster keeps only about the last 5 MiB per partition (see
// lib/connectors/kafka/mock_broker.h): size test data to fit.
//
// Example:
//   absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker = KafkaTestBroker::Start();
//   ASSERT_TRUE(broker.ok()) << broker.status();
//   ASSERT_TRUE((*broker)->CreateTopic("events", 4).ok());
//   ASSERT_TRUE(ProduceNumbered((*broker)->bootstrap(), "events", 1000, 4).ok());
//   (*broker)->mock()->PushRequestErrors(1, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);

#ifndef WEIR_TESTS_UNIT_CONNECTORS_KAFKA_KAFKA_TEST_BROKER_H_
#define WEIR_TESTS_UNIT_CONNECTORS_KAFKA_KAFKA_TEST_BROKER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/connectors/kafka/mock_broker.h"

namespace weir::kafka::testing {

class KafkaTestBroker {
 public:
  // An in-process mock cluster with `brokers` brokers on 127.0.0.1.
  static absl::StatusOr<std::unique_ptr<KafkaTestBroker>> Start(int brokers = 1);

  // The broker at $WEIR_TEST_KAFKA_BROKERS (bootstrap.servers, e.g.
  // 127.0.0.1:9092) when that is set, else Start(). A real broker has no
  // mock(): tests that inject faults skip on it. Tests that use it name
  // their topics uniquely (with the process id): topics outlive the run.
  static absl::StatusOr<std::unique_ptr<KafkaTestBroker>> FromEnvironment();

  // `program` (the weir-kafka-dev binary) as a child process, with `topics`
  // ("name:partitions") created at start. Waits (up to 30 s) for its first
  // stdout line, the bootstrap address. mock() is nullptr and CreateTopic is
  // kUnimplemented for a child process: give its topics here.
  static absl::StatusOr<std::unique_ptr<KafkaTestBroker>> StartChildProcess(
      const std::string& program, const std::vector<std::string>& topics);

  KafkaTestBroker(const KafkaTestBroker&) = delete;
  KafkaTestBroker& operator=(const KafkaTestBroker&) = delete;
  // Destroys the mock cluster, or stops the child (SIGTERM, then SIGKILL).
  ~KafkaTestBroker();

  // bootstrap.servers for clients.
  const std::string& bootstrap() const { return bootstrap_; }

  // Creates `topic` with `partitions` partitions: in the in-process
  // cluster, or on a real broker with the Admin API (CreateTopics, the
  // broker's default replication factor). kUnimplemented for a child process.
  absl::Status CreateTopic(const std::string& topic, int partitions);

  // The in-process cluster for fault injection; nullptr for a child process
  // or a real broker.
  internal::MockBroker* mock() const { return mock_.get(); }

 private:
  KafkaTestBroker() = default;

  std::unique_ptr<internal::MockBroker> mock_;
  pid_t child_ = -1;
  int child_stdout_ = -1;
  bool external_ = false;  // a real broker (FromEnvironment)
  std::string bootstrap_;
};

// One record to produce.
struct TestRecord {
  std::string key;  // empty: no key
  // std::nullopt: a null value (a tombstone).
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::string>> headers;
  // -1: librdkafka's partitioner.
  int32_t partition = -1;
  // Broker timestamp (CreateTime) in ms; 0: now.
  int64_t timestamp_ms = 0;
};

// Produces `records` to `topic` with a plain librdkafka producer (acks=all,
// idempotence off) and waits until every one is acknowledged (up to 30 s).
absl::Status Produce(const std::string& bootstrap, const std::string& topic,
                     const std::vector<TestRecord>& records);

// Produces records `first`..`first + count - 1`: record i has value and key
// std::to_string(i), goes to partition i % partitions and has timestamp
// `timestamp_base_ms + i` (so timestamps grow within each partition).
absl::Status ProduceNumbered(const std::string& bootstrap, const std::string& topic, int64_t count,
                             int partitions, int64_t first = 0,
                             int64_t timestamp_base_ms = 1'700'000'000'000);

// Produces `count` records built by `make(i)` in batches (for large data
// sets: the records are not all held in memory).
absl::Status ProduceGenerated(const std::string& bootstrap, const std::string& topic, int64_t count,
                              const std::function<TestRecord(int64_t)>& make);

// The low and high watermark of topic/partition (rd_kafka_query_watermark_offsets).
absl::StatusOr<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string& bootstrap,
                                                            const std::string& topic,
                                                            int32_t partition);

// Fills topic/partition with more than the in-process mock cluster keeps
// (kRetentionNote), so its log start moves past every record written before
// the call; returns the new log start. Mock cluster only: a real broker keeps
// what its retention settings say.
absl::StatusOr<int64_t> OverflowPartition(const std::string& bootstrap, const std::string& topic,
                                          int32_t partition);

// The offset committed by consumer group `group` for each partition
// 0..partitions-1 of `topic` (-1001 = RD_KAFKA_OFFSET_INVALID: none).
absl::StatusOr<std::vector<int64_t>> CommittedOffsets(const std::string& bootstrap,
                                                      const std::string& group,
                                                      const std::string& topic, int partitions);

}  // namespace weir::kafka::testing

#endif  // WEIR_TESTS_UNIT_CONNECTORS_KAFKA_KAFKA_TEST_BROKER_H_
