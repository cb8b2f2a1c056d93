// Kafka connectors: the source (kafka_source.h) and the options every Kafka
// client shares (kafka_client.h), plus the sink and the dead-letter topic.
// Debezium change events are decoded by kafka_debezium.h, included on its
// own.
//
// Example:
//
//   #include "weir/connectors/kafka.h"
//
//   auto source = weir::kafka::Source<std::string>({
//       .client = {.brokers = "localhost:9092"},
//       .topics = {"events"},
//       .deserializer = weir::kafka::StringDeserializer()});

#ifndef WEIR_CONNECTORS_KAFKA_H_
#define WEIR_CONNECTORS_KAFKA_H_

#include "weir/connectors/kafka_client.h"
#include "weir/connectors/kafka_dead_letter.h"
#include "weir/connectors/kafka_sink.h"
#include "weir/connectors/kafka_source.h"

#endif  // WEIR_CONNECTORS_KAFKA_H_
