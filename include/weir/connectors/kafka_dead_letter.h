// A dead-letter queue on a Kafka topic: every DeadLetter becomes a message
// with the original key and payload bytes, the original headers, and weir's
// headers saying why and where from:
//
//   weir.error              the error message (names the field, the server's answer, ...)
//   weir.error.code         the absl status code name, e.g. "INVALID_ARGUMENT"
//   weir.stage              the operator or connector that rejected it, e.g. "kafka-source"
//   weir.source.topic       the topic it was read from        } only when known
//   weir.source.partition   its partition (decimal)           } (a letter from a
//   weir.source.offset      its offset (decimal)              }  Kafka source
//   weir.source.timestamp   its timestamp, ms since the epoch } has them all)
//   weir.source.<name>      each entry of DeadLetter::position, e.g. a
//                           PostgreSQL change's weir.source.slot, .lsn,
//                           .txid and .table
//
// Each writer (one per operator and worker) has its own idempotent producer
// (acks=all). Flush() returns once every letter written so far is
// acknowledged; a letter that cannot be delivered makes Write()/Flush() fail
// with a status naming the topic. Dead letters are at least once.
//
// Example:
//
//   std::shared_ptr<weir::DeadLetterQueue> dlq = weir::kafka::DeadLetterTopic(
//       {.client = {.brokers = "localhost:9092"}, .topic = "app.dlq"});
//   auto events = pipeline.Source(weir::kafka::Source<Event>({..., .dead_letters = dlq}));
//
// Thread-safety: DeadLetterTopic's queue is thread-safe; each writer is used
// from one worker's thread.

#ifndef WEIR_CONNECTORS_KAFKA_DEAD_LETTER_H_
#define WEIR_CONNECTORS_KAFKA_DEAD_LETTER_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "weir/connectors/kafka_client.h"
#include "weir/dead_letter.h"

namespace weir::kafka {

struct DeadLetterTopicOptions {
  // Brokers and librdkafka producer properties.
  ClientOptions client;
  // The dead-letter topic. Required (an empty topic is kInvalidArgument when
  // a writer is created, i.e. when the pipeline starts).
  std::string topic;
  // How long Flush() waits for acknowledgements before failing with
  // kUnavailable.
  // Default: 1 minute
  absl::Duration flush_timeout = absl::Minutes(1);
};

// A DeadLetterQueue writing to `options.topic`.
std::shared_ptr<DeadLetterQueue> DeadLetterTopic(DeadLetterTopicOptions options);

}  // namespace weir::kafka

#endif  // WEIR_CONNECTORS_KAFKA_DEAD_LETTER_H_
