// Options shared by every Kafka client weir creates (sources, sinks, the
// dead-letter topic): where the brokers are and librdkafka properties passed
// through unchanged.
//
// Example:
//
//   weir::kafka::ClientOptions client{
//       .brokers = "broker1:9092,broker2:9092",
//       .properties = {{"security.protocol", "SASL_SSL"}, {"sasl.mechanism", "PLAIN"}}};

#ifndef WEIR_CONNECTORS_KAFKA_CLIENT_H_
#define WEIR_CONNECTORS_KAFKA_CLIENT_H_

#include <map>
#include <string>

namespace weir::kafka {

struct ClientOptions {
  // bootstrap.servers. Required.
  std::string brokers;
  // Any librdkafka property (security.protocol, sasl.*, ssl.*, client.id,
  // ...), applied after weir's own defaults, so they win. An unknown property
  // or a bad value is a kInvalidArgument error when the pipeline starts.
  // Default: none
  std::map<std::string, std::string> properties;
  // Properties for consumers only (the Kafka source and its probes), applied
  // after `properties`: e.g. fetch.wait.max.ms, which a producer would
  // warn about (CONFWARN) if it were in `properties`.
  // Default: none
  std::map<std::string, std::string> consumer_properties;
  // Properties for producers only (the Kafka sink, dead-letter topics),
  // applied after `properties`: e.g. linger.ms, compression.type.
  // Default: none
  std::map<std::string, std::string> producer_properties;
};

}  // namespace weir::kafka

#endif  // WEIR_CONNECTORS_KAFKA_CLIENT_H_
