// weir::kafka::DeadLetterTopic (include/weir/connectors/kafka_dead_letter.h):
// dead letters produced to a Kafka topic through the Kafka sink's
// at-least-once producer (lib/connectors/kafka/sink.cc), so delivery,
// flushing and error reporting are the sink's.

#ifndef WEIR_LIB_CONNECTORS_KAFKA_DEAD_LETTER_TOPIC_H_
#define WEIR_LIB_CONNECTORS_KAFKA_DEAD_LETTER_TOPIC_H_

#include <string>
#include <utility>
#include <vector>

#include "weir/connectors/kafka_dead_letter.h"

namespace weir::kafka::internal {

// The headers a dead letter's message carries: the letter's own, then weir's
// (see the public header).
std::vector<std::pair<std::string, std::string>> DeadLetterHeaders(const DeadLetter& letter);

}  // namespace weir::kafka::internal

#endif  // WEIR_LIB_CONNECTORS_KAFKA_DEAD_LETTER_TOPIC_H_
