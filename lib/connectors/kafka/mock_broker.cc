#include "lib/connectors/kafka/mock_broker.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace weir::kafka::internal {

absl::StatusOr<std::unique_ptr<MockBroker>> MockBroker::Start(int brokers) {
  if (brokers < 1) return absl::InvalidArgumentError("mock broker: need at least one broker");
  // The mock cluster needs an rd_kafka_t for its bookkeeping: a producer
  // without bootstrap servers, so it never tries to connect anywhere.
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[256];
  if (rd_kafka_conf_set(conf.get(), "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
    return absl::InternalError(absl::StrCat("mock broker: ", errstr));
  }
  absl::StatusOr<HandlePtr> handle = MakeHandle(RD_KAFKA_PRODUCER, std::move(conf), "mock broker");
  if (!handle.ok()) return handle.status();
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(handle->get(), brokers);
  if (cluster == nullptr) {
    return absl::UnavailableError("mock broker: rd_kafka_mock_cluster_new failed");
  }
  return std::unique_ptr<MockBroker>(new MockBroker(std::move(*handle), cluster));
}

MockBroker::MockBroker(HandlePtr handle, rd_kafka_mock_cluster_t* cluster)
    : handle_(std::move(handle)),
      cluster_(cluster),
      bootstrap_(rd_kafka_mock_cluster_bootstraps(cluster)) {}

MockBroker::~MockBroker() {
  rd_kafka_mock_cluster_destroy(cluster_);
  handle_.reset();
}

absl::Status MockBroker::CreateTopic(const std::string& topic, int partitions) {
  if (partitions < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("mock broker: topic ", topic, " needs at least one partition"));
  }
  return ToStatus(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1),
                  absl::StrCat("mock broker: create topic ", topic));
}

absl::Status MockBroker::SetBrokerDown(int32_t broker_id) {
  return ToStatus(rd_kafka_mock_broker_set_down(cluster_, broker_id), "mock broker: set down");
}

absl::Status MockBroker::SetBrokerUp(int32_t broker_id) {
  return ToStatus(rd_kafka_mock_broker_set_up(cluster_, broker_id), "mock broker: set up");
}

void MockBroker::PushRequestErrors(int16_t api_key, int count, rd_kafka_resp_err_t error) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count), error);
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, errors.size(), errors.data());
}

}  // namespace weir::kafka::internal
