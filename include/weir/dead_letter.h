// Dead letters: records a connector or format could not process, kept with
// their original bytes and the reason, instead of being dropped or failing
// the job.
//
// A DeadLetterQueue is a factory of per-worker DeadLetterWriters. Connectors
// that can reject records (the Kafka source's deserializer, the HTTP sink
// after its retries) take a std::shared_ptr<DeadLetterQueue> in their options
// and write a DeadLetter per rejected record. A writer's letters must be
// durable once Flush() returns OK; connectors call Flush() before the
// checkpoint that covers the rejected record completes (in SnapshotState or
// PreCommit), so a dead letter is never lost (it may be written twice after a
// crash: dead letters are at-least-once).
//
// Implementations: weir::kafka::DeadLetterTopic (connectors/kafka.h) and
// weir::testing::CollectingDeadLetterQueue (testing.h).
//
// Example:
//
//   auto dlq = weir::kafka::DeadLetterTopic({.client = {.brokers = brokers}, .topic = "app.dlq"});
//   auto events = pipeline.Source(weir::kafka::Source<Event>({..., .dead_letters = dlq}));

#ifndef WEIR_DEAD_LETTER_H_
#define WEIR_DEAD_LETTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace weir {

// One rejected record.
struct DeadLetter {
  // The record's bytes as they arrived (e.g. the Kafka message value), or
  // the serialized record a sink could not deliver.
  std::string payload;
  // The record's key bytes, if it had one.
  std::string key;
  // The record's own headers (e.g. Kafka headers), kept as they were.
  std::vector<std::pair<std::string, std::string>> headers;
  // Why it was rejected: the status code and its message (which names the
  // field or the server's answer).
  absl::StatusCode code = absl::StatusCode::kUnknown;
  std::string error;
  // Where it came from: the operator or connector that rejected it
  // ("kafka-source", "http-sink", ...), and for Kafka input the topic,
  // partition and offset (-1 when not applicable).
  std::string stage;
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  // Event or broker timestamp in ms since the epoch, -1 if unknown.
  int64_t timestamp_ms = -1;
};

// What a rejected record does to the job.
enum class ErrorPolicy {
  // Write it to the dead-letter queue and continue (the default).
  kDeadLetter,
  // Fail the job with the record's error.
  kFail,
};

// Writes the dead letters of one worker. Called only from that worker's thread.
class DeadLetterWriter {
 public:
  virtual ~DeadLetterWriter() = default;
  // Queues `letter`; may send it asynchronously. A non-OK status means the
  // letter could not be accepted (the caller fails the job).
  virtual absl::Status Write(DeadLetter letter) = 0;
  // Returns once every letter written so far is durable.
  virtual absl::Status Flush() = 0;
};

// A factory of writers, shared by the connectors that use it. Thread-safe.
class DeadLetterQueue {
 public:
  virtual ~DeadLetterQueue() = default;
  // A writer for worker `worker_index` of the operator `operator_name`.
  virtual absl::StatusOr<std::unique_ptr<DeadLetterWriter>> CreateWriter(
      const std::string& operator_name, int worker_index) = 0;
  // Where the letters go (e.g. "kafka topic app.dlq"), for logs and errors.
  virtual std::string Describe() const = 0;
};

}  // namespace weir

#endif  // WEIR_DEAD_LETTER_H_
