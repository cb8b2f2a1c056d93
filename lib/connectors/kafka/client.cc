#include "lib/connectors/kafka/client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"

namespace weir::kafka::internal {
namespace {

absl::Status SetProperty(rd_kafka_conf_t* conf, const std::string& name, const std::string& value,
                         absl::string_view what) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": librdkafka property ", name, "=", value, ": ", errstr));
  }
  return absl::OkStatus();
}

void LogThroughWeir(const rd_kafka_t* rk, int level, const char* facility, const char* line) {
  (void)level;
  weir::internal::Log("librdkafka ", rd_kafka_name(rk), " ", facility, ": ", line);
}

}  // namespace

absl::StatusOr<ConfPtr> MakeConf(const ClientOptions& options,
                                 const std::map<std::string, std::string>& defaults,
                                 absl::string_view what, rd_kafka_type_t type) {
  absl::StatusOr<ConfPtr> conf = MakeConf(options, defaults, what);
  if (!conf.ok()) return conf;
  const auto& own =
      type == RD_KAFKA_PRODUCER ? options.producer_properties : options.consumer_properties;
  for (const auto& [name, value] : own) {
    absl::Status status = SetProperty(conf->get(), name, value, what);
    if (!status.ok()) return status;
  }
  return conf;
}

absl::StatusOr<ConfPtr> MakeConf(const ClientOptions& options,
                                 const std::map<std::string, std::string>& defaults,
                                 absl::string_view what) {
  if (options.brokers.empty() && !options.properties.contains("bootstrap.servers")) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no brokers given"));
  }
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &LogThroughWeir);
  if (!options.brokers.empty()) {
    absl::Status status = SetProperty(conf.get(), "bootstrap.servers", options.brokers, what);
    if (!status.ok()) return status;
  }
  for (const auto& [name, value] : defaults) {
    absl::Status status = SetProperty(conf.get(), name, value, what);
    if (!status.ok()) return status;
  }
  for (const auto& [name, value] : options.properties) {
    absl::Status status = SetProperty(conf.get(), name, value, what);
    if (!status.ok()) return status;
  }
  return conf;
}

absl::StatusOr<HandlePtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf, absl::string_view what) {
  char errstr[512];
  // rd_kafka_new takes ownership of the conf only on success.
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof(errstr));
  if (rk == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot create client: ", errstr));
  }
  (void)conf.release();
  return HandlePtr(rk);
}

absl::StatusCode ToStatusCode(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return absl::StatusCode::kOk;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
      return absl::StatusCode::kUnavailable;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
      return absl::StatusCode::kUnauthenticated;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
      return absl::StatusCode::kPermissionDenied;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return absl::StatusCode::kNotFound;
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
      return absl::StatusCode::kAborted;
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
      return absl::StatusCode::kDataLoss;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE:
    case RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status ToStatus(rd_kafka_resp_err_t err, absl::string_view what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  return absl::Status(ToStatusCode(err), absl::StrCat(what, ": ", rd_kafka_err2str(err), " (",
                                                      rd_kafka_err2name(err), ")"));
}

absl::Status ToStatus(const rd_kafka_error_t* error, absl::string_view what) {
  if (error == nullptr) return absl::OkStatus();
  const rd_kafka_resp_err_t err = rd_kafka_error_code(error);
  return absl::Status(ToStatusCode(err), absl::StrCat(what, ": ", rd_kafka_error_string(error),
                                                      " (", rd_kafka_error_name(error), ")"));
}

}  // namespace weir::kafka::internal
