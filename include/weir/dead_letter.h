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
// weir::testing::CollectingDeadLetterQueue (testing.h). Connectors taking
// one: the Kafka source, the PostgreSQL change source (connectors/
// postgres.h) and the webhook sink.
//
// Records a pipeline's own functions reject (a join that found no row, a
// value out of range) become DeadLetters in a side output, which
// DeadLetterSink writes to a queue: flushed at every checkpoint barrier, so
// they are as durable as the connectors' dead letters.
//
// Example:
//
//   auto dlq = weir::kafka::DeadLetterTopic({.client = {.brokers = brokers}, .topic = "app.dlq"});
//   auto events = pipeline.Source(weir::kafka::Source<Event>({..., .dead_letters = dlq}));

#ifndef WEIR_DEAD_LETTER_H_
#define WEIR_DEAD_LETTER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/sink.h"

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
  // Where in a database's change log it came from, for input not read from
  // Kafka, as (name, value) pairs; e.g. a PostgreSQL change source gives
  // "slot", "lsn" (as 0/16B3748), "txid" and "table" ("schema.table").
  std::vector<std::pair<std::string, std::string>> position;
};

// What a rejected record does to the job.
enum class ErrorPolicy {
  // Write it to the dead-letter queue and continue.
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

class MetricGroup;

// Wraps `writer` so that every letter it accepts counts in the counter
// weir_dead_letters_total of `metrics` (the connector's SourceReaderContext
// or SinkContext metrics). Returns `writer` unchanged when `metrics` is null.
// Connectors call it on the writers they create.
std::unique_ptr<DeadLetterWriter> CountDeadLetters(std::unique_ptr<DeadLetterWriter> writer,
                                                   MetricGroup* metrics);

// A sink writing a stream of DeadLetters to `queue` (one writer per worker,
// flushed at each checkpoint barrier and at the end of input).
//
// Example:
//
//   enriched.SideOutput(kRejected).Sink(weir::DeadLetterSink(dlq)).Uid("dead-letters");
class DeadLetterSink final : public Sink<DeadLetter> {
 public:
  explicit DeadLetterSink(std::shared_ptr<DeadLetterQueue> queue) : queue_(std::move(queue)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<DeadLetter>>> CreateWriter(
      const SinkContext& context) override {
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer =
        queue_->CreateWriter(context.operator_name, context.worker_index);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<SinkWriter<DeadLetter>>(new Writer(std::move(*writer)));
  }

 private:
  class Writer final : public SinkWriter<DeadLetter> {
   public:
    explicit Writer(std::unique_ptr<DeadLetterWriter> writer) : writer_(std::move(writer)) {}
    absl::Status Write(std::span<DeadLetter> letters, std::span<const Timestamp>) override {
      for (DeadLetter& letter : letters) {
        absl::Status status = writer_->Write(std::move(letter));
        if (!status.ok()) return status;
      }
      return absl::OkStatus();
    }
    absl::Status Flush() override { return writer_->Flush(); }

   private:
    std::unique_ptr<DeadLetterWriter> writer_;
  };

  std::shared_ptr<DeadLetterQueue> queue_;
};

}  // namespace weir

#endif  // WEIR_DEAD_LETTER_H_
