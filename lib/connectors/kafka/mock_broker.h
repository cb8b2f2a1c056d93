// A Kafka broker on loopback for tests, benchmarks and the demo, hosted by
// librdkafka's mock cluster (rdkafka_mock.h): clients talk to it over the
// real Kafka protocol. Used by the weir-kafka-dev program and the test
// fixtures.
//
// Limit: the mock cluster in Debian's librdkafka (2.0.2) keeps only about the
// last 5 MiB (or 100,000 message sets) per partition and silently advances
// the log start offset past older data. Size data to stay under it (more
// partitions, or consume while producing). kRetentionNote says so.

#ifndef WEIR_LIB_CONNECTORS_KAFKA_MOCK_BROKER_H_
#define WEIR_LIB_CONNECTORS_KAFKA_MOCK_BROKER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/connectors/kafka/client.h"

// After rdkafka.h (client.h), as it requires.
#include <librdkafka/rdkafka_mock.h>  // NOLINT(build/include_order)

namespace weir::kafka::internal {

inline constexpr const char kRetentionNote[] =
    "librdkafka's mock cluster keeps only about the last 5 MiB (or 100,000 message sets) per "
    "partition and silently advances the log start offset past older data";

class MockBroker {
 public:
  // rd_kafka_mock_cluster_new with `brokers` brokers, each listening on an
  // ephemeral port on 127.0.0.1.
  static absl::StatusOr<std::unique_ptr<MockBroker>> Start(int brokers = 1);
  ~MockBroker();
  MockBroker(const MockBroker&) = delete;
  MockBroker& operator=(const MockBroker&) = delete;

  // bootstrap.servers for clients (rd_kafka_mock_cluster_bootstraps).
  const std::string& bootstrap() const { return bootstrap_; }

  // rd_kafka_mock_topic_create (replication factor 1).
  absl::Status CreateTopic(const std::string& topic, int partitions);

  // Fault injection (rd_kafka_mock_broker_set_down/up; broker_id -1 = all).
  absl::Status SetBrokerDown(int32_t broker_id);
  absl::Status SetBrokerUp(int32_t broker_id);
  // The next `count` requests of Kafka API `api_key` (e.g. 0 = Produce,
  // 1 = Fetch) fail with `error` (rd_kafka_mock_push_request_errors).
  void PushRequestErrors(int16_t api_key, int count, rd_kafka_resp_err_t error);

  // The cluster itself, for other rd_kafka_mock_* calls.
  rd_kafka_mock_cluster_t* cluster() const { return cluster_; }

 private:
  MockBroker(HandlePtr handle, rd_kafka_mock_cluster_t* cluster);

  HandlePtr handle_;  // the client instance the mock cluster belongs to
  rd_kafka_mock_cluster_t* cluster_;
  std::string bootstrap_;
};

}  // namespace weir::kafka::internal

#endif  // WEIR_LIB_CONNECTORS_KAFKA_MOCK_BROKER_H_
