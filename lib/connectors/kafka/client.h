// librdkafka handles owned by unique_ptrs, configuration built from
// ClientOptions, and error translation to absl::Status. Every Kafka
// connector creates its clients through here.

#ifndef WEIR_LIB_CONNECTORS_KAFKA_CLIENT_H_
#define WEIR_LIB_CONNECTORS_KAFKA_CLIENT_H_

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weir/connectors/kafka_client.h"

namespace weir::kafka::internal {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
// rd_kafka_destroy (after the caller closed/flushed as appropriate).
struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct TopicPartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* message) const { rd_kafka_message_destroy(message); }
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* error) const { rd_kafka_error_destroy(error); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* metadata) const {
    rd_kafka_metadata_destroy(metadata);
  }
};

using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using TopicPartitionListPtr =
    std::unique_ptr<rd_kafka_topic_partition_list_t, TopicPartitionListDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

// rd_kafka_conf_new + rd_kafka_conf_set: bootstrap.servers from
// options.brokers, then `defaults`, then options.properties (so the user's
// properties win). `what` names the client in errors ("kafka source
// 'events'"). Unknown property or invalid value -> kInvalidArgument.
// librdkafka's own log lines go to weir's log ("weir: librdkafka <client>
// <facility>: ..."), not straight to stderr.
absl::StatusOr<ConfPtr> MakeConf(const ClientOptions& options,
                                 const std::map<std::string, std::string>& defaults,
                                 absl::string_view what);
// The same for a client of `type`: then options.consumer_properties or
// options.producer_properties, after options.properties.
absl::StatusOr<ConfPtr> MakeConf(const ClientOptions& options,
                                 const std::map<std::string, std::string>& defaults,
                                 absl::string_view what, rd_kafka_type_t type);

// rd_kafka_new. Takes ownership of `conf` (also on failure).
absl::StatusOr<HandlePtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf, absl::string_view what);

// Maps a librdkafka error code to a canonical status code: transport,
// broker and timeout errors -> kUnavailable, authentication/authorization ->
// kPermissionDenied / kUnauthenticated, unknown topic -> kNotFound, fencing ->
// kAborted, invalid configuration -> kInvalidArgument, the rest -> kInternal.
absl::StatusCode ToStatusCode(rd_kafka_resp_err_t err);

// A status `what: <librdkafka's message> (<error name>)` with ToStatusCode's code.
absl::Status ToStatus(rd_kafka_resp_err_t err, absl::string_view what);
// Same for an rd_kafka_error_t (does not destroy it).
absl::Status ToStatus(const rd_kafka_error_t* error, absl::string_view what);

}  // namespace weir::kafka::internal

#endif  // WEIR_LIB_CONNECTORS_KAFKA_CLIENT_H_
