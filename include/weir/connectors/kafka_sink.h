// A Kafka sink: writes each record to a topic through librdkafka, at least
// once (idempotent producer, flushed at every checkpoint) or exactly once
// (transactions committed when the checkpoint that covers them completes).
//
// The record becomes the message's value through a serializer; a key
// extractor, a headers function and a partitioner are optional (default:
// librdkafka's partitioner, which hashes the key). A `tombstone` predicate
// marks records written with a null value.
//
// Example:
//
//   weir::kafka::SinkOptions<Enriched> options{
//       .client = {.brokers = "localhost:9092"},
//       .topic = "engagement.outbox",
//       .serializer = [](const Enriched& e, std::string& out) {
//         out = e.ToJson();
//         return absl::OkStatus();
//       },
//       .key = [](const Enriched& e) { return std::to_string(e.content_id); },
//       .guarantee = weir::kafka::DeliveryGuarantee::kExactlyOnce};
//   enriched.Sink(weir::kafka::Sink<Enriched>(options)).Name("outbox").Uid("outbox");
//
// The contract (docs/architecture.md, "Kafka sink and dead-letter topic",
// has how it is kept):
// - At least once (the default): PreCommit(n) waits until every message
//   written so far is acknowledged; an undeliverable message fails the job
//   naming the topic and partition. A restart writes the records after the
//   last complete checkpoint again: duplicates, never loss.
// - Exactly once: requires checkpoint storage. Records of a complete
//   checkpoint are committed exactly once, provided the job restarts with the
//   same job name, sink uid and parallelism (they derive the transactional
//   ids `<job_name>-<sink uid>-<worker>-<slot>`, or `transactional_id_prefix`)
//   within transaction.timeout.ms. A zombie of an earlier run is fenced
//   (kAborted). A transaction the restart finds aborted although its
//   checkpoint completed is written again from the log; if retention removed
//   its records, the restore fails with kDataLoss naming the partition and
//   offsets. (One whose first record retention removed cannot be checked:
//   it counts as committed.) Start() rejects a transaction timeout not above the checkpoint
//   interval + timeout (kInvalidArgument). Within a partition, a worker's
//   records keep their order; repaired ones come after later records.
//
// Thread-safety: one writer per worker, used from that worker's thread only.

#ifndef WEIR_CONNECTORS_KAFKA_SINK_H_
#define WEIR_CONNECTORS_KAFKA_SINK_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "weir/connectors/kafka_client.h"
#include "weir/sink.h"
#include "weir/time.h"

namespace weir::kafka {

// What a restart may do to the records a sink wrote.
enum class DeliveryGuarantee {
  // Flushed at each checkpoint: nothing lost, records after the last
  // complete checkpoint written again after a restart.
  kAtLeastOnce,
  // Kafka transactions committed when their checkpoint completes.
  kExactlyOnce,
};

// Turns a record into the bytes of a message value. Called on the worker's
// thread. Return a non-OK status to fail the job: the job's error keeps its
// code and message and names the sink, the topic and the record (its key
// when SinkOptions::key is set, and its event time). There is no dead-letter
// path for records that cannot be serialized.
template <class T>
using Serializer = std::function<absl::Status(const T& record, std::string& value)>;

// A record's message key (SinkOptions::key): any callable taking `const T&`
// that returns the key as a std::string, or as text the record (or
// something else outliving the call) holds: a `const std::string&`, a
// std::string_view. The sink reads such a key where it is, with no copy; a
// std::string is made per record, as the callable says.
template <class T>
class KeyFunction {
 public:
  KeyFunction() = default;
  KeyFunction(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): no key, as `= nullptr`
  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, KeyFunction> &&
           std::is_invocable_v<F&, const T&> &&
           std::is_convertible_v<std::invoke_result_t<F&, const T&>, std::string_view>)
      KeyFunction(F key) {  // NOLINT(google-explicit-constructor): assigned from a lambda
    using Result = std::invoke_result_t<F&, const T&>;
    if constexpr (std::is_lvalue_reference_v<Result> ||
                  std::is_same_v<std::remove_cv_t<Result>, std::string_view> ||
                  std::is_pointer_v<Result>) {
      // Text that outlives the call: read where it is.
      call_ = [key = std::move(key)](const T& record, std::string&) -> std::string_view {
        return std::string_view(key(record));
      };
    } else if constexpr (std::is_same_v<std::remove_cvref_t<Result>, std::string>) {
      // A key made per record lives in the caller's string until the next.
      call_ = [key = std::move(key)](const T& record, std::string& made) -> std::string_view {
        made = key(record);
        return made;
      };
    } else {
      // Another type that owns its text: copied out before it goes.
      call_ = [key = std::move(key)](const T& record, std::string& made) -> std::string_view {
        const std::remove_cvref_t<Result> held = key(record);
        made.assign(std::string_view(held));
        return made;
      };
    }
  }

  explicit operator bool() const { return static_cast<bool>(call_); }
  // The key of `record`: a view of the record's text, or of `made`, which
  // holds a key the callable returned by value.
  std::string_view operator()(const T& record, std::string& made) const {
    return call_(record, made);
  }

 private:
  std::function<std::string_view(const T&, std::string&)> call_;
};

template <class T>
struct SinkOptions {
  // Brokers and librdkafka producer properties (they win over weir's
  // defaults: enable.idempotence, acks=all, linger.ms=5, and for exactly
  // once transactional.id and transaction.timeout.ms).
  ClientOptions client;
  // The topic written to. Required.
  std::string topic;
  // The message value. Required, except for std::string records (then the
  // record is the value).
  // Default: none
  Serializer<T> serializer;
  // The message key; an empty string means no key (null). A key the record
  // holds is best returned by reference or as a view (see KeyFunction):
  // `[](const Enriched& e) -> const std::string& { return e.content_id; }`
  // writes it without copying it.
  // Default: no key
  KeyFunction<T> key;
  // Records for which this returns true are written with a null value (a
  // tombstone: on a compacted topic it deletes the key, as Debezium writes
  // after a delete); the serializer is not called for them. Key, headers,
  // partition and timestamp are set as for any record.
  // Default: none (every message has the serializer's value)
  std::function<bool(const T&)> tombstone;
  // Headers added to each message.
  // Default: none
  std::function<void(const T&, std::vector<std::pair<std::string, std::string>>& headers)> headers;
  // The partition of a record, given its key and the topic's partition count.
  // Default: librdkafka's partitioner (property `partitioner`, by key)
  std::function<int32_t(const T&, const std::string& key, int32_t partitions)> partitioner;
  // Use the record's event timestamp as the message timestamp (CreateTime).
  // Default: false (the time it is produced)
  bool event_time_as_timestamp = false;
  // Default: kAtLeastOnce
  DeliveryGuarantee guarantee = DeliveryGuarantee::kAtLeastOnce;
  // Exactly once: transactional ids are `<prefix>-<worker>-<slot>`.
  // Default: "<job_name>-<sink uid>" (SinkContext::operator_uid)
  std::string transactional_id_prefix;
  // Exactly once: transactional producers per worker. One holds the open
  // transaction, the others transactions of checkpoints not yet complete;
  // a worker needing more (checkpoints failing in a row) fails the job with
  // kResourceExhausted.
  // Default: 4
  int transaction_pool_size = 4;
  // Exactly once: transaction.timeout.ms. Must exceed the checkpoint
  // interval + checkpoint timeout, and be at most the broker's
  // transaction.max.timeout.ms.
  // Default: 15 minutes
  absl::Duration transaction_timeout = absl::Minutes(15);
  // How long a flush (checkpoint, end of input) or a transaction operation
  // may take before the job fails with kUnavailable / kDeadlineExceeded.
  // Default: 5 minutes
  absl::Duration flush_timeout = absl::Minutes(5);
};

namespace internal {

// Transactional ids that a writer of one sink fenced and that no writer of
// it has used since (lib/connectors/kafka/sink.cc). The writers of a run
// share it, so a restore at a lower parallelism fences each vanished id
// once rather than once per worker.
class FencedTransactionalIds;
std::shared_ptr<FencedTransactionalIds> NewFencedTransactionalIds();

// The part of SinkOptions that does not depend on the record type.
struct SinkConfig {
  ClientOptions client;
  std::string topic;
  DeliveryGuarantee guarantee = DeliveryGuarantee::kAtLeastOnce;
  std::string transactional_id_prefix;
  int transaction_pool_size = 4;
  absl::Duration transaction_timeout = absl::Minutes(15);
  absl::Duration flush_timeout = absl::Minutes(5);
  // Whether records carry a partition chosen by a user partitioner.
  bool custom_partitioner = false;
  // Names the writer in errors; empty: "kafka sink '<operator>' (worker <i>)".
  std::string description;
  // Shared by the sink's writers; null: each writer keeps its own.
  std::shared_ptr<FencedTransactionalIds> fenced;
};

// One serialized record.
struct SinkRecord {
  std::string_view key;  // empty: null key
  std::string_view value;
  bool null_value = false;  // true: a tombstone (value is ignored)
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;  // may be null
  int32_t partition = -1;                                                     // -1: librdkafka's
  int64_t timestamp_ms = 0;                                                   // 0: now
};

// The untyped producer side of a writer (lib/connectors/kafka/sink.cc).
class SinkCore {
 public:
  virtual ~SinkCore() = default;
  // The topic's partition count (known after creation).
  virtual int32_t partitions() const = 0;
  virtual absl::Status Produce(const SinkRecord& record) = 0;
  // After each Write batch: serves delivery reports, reports a failed delivery.
  virtual absl::Status AfterBatch() = 0;
  virtual absl::Status Flush() = 0;
  virtual absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) = 0;
  // SinkWriter::PreCommitAsync (exactly once: the transaction's producer is
  // flushed on the core's own thread while records go to the next one).
  virtual bool PreCommitAsync(int64_t checkpoint_id,
                              std::function<void(absl::StatusOr<std::string>)>& done) = 0;
  virtual absl::Status Commit(int64_t checkpoint_id, const std::string& committable) = 0;
  virtual absl::Status Close() = 0;
};

// `status`, from the serializer of the record with `key` (empty: none) and
// event time `timestamp`, with the topic and the record named in its message.
absl::Status SerializerError(const absl::Status& status, const std::string& topic,
                             std::string_view key, Timestamp timestamp);

// Validates `config` against `context` and creates the producer(s)
// (kInvalidArgument for bad configuration, kUnavailable when the brokers
// cannot be reached).
absl::StatusOr<std::unique_ptr<SinkCore>> NewSinkCore(const SinkConfig& config,
                                                      const SinkContext& context);

}  // namespace internal

// The sink. Create it with kafka::Sink<T>(options) and pass it to Stream::Sink.
template <class T>
class KafkaSink final : public weir::Sink<T> {
 public:
  explicit KafkaSink(SinkOptions<T> options) : options_(std::move(options)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(const SinkContext& context) override {
    if (!options_.serializer && !std::is_same_v<T, std::string>) {
      return absl::InvalidArgumentError("kafka sink '" + context.operator_name +
                                        "': SinkOptions.serializer is required");
    }
    internal::SinkConfig config{.client = options_.client,
                                .topic = options_.topic,
                                .guarantee = options_.guarantee,
                                .transactional_id_prefix = options_.transactional_id_prefix,
                                .transaction_pool_size = options_.transaction_pool_size,
                                .transaction_timeout = options_.transaction_timeout,
                                .flush_timeout = options_.flush_timeout,
                                .custom_partitioner = static_cast<bool>(options_.partitioner),
                                .fenced = fenced_};
    absl::StatusOr<std::unique_ptr<internal::SinkCore>> core =
        internal::NewSinkCore(config, context);
    if (!core.ok()) return core.status();
    return std::unique_ptr<SinkWriter<T>>(new Writer(&options_, *std::move(core)));
  }

 private:
  class Writer final : public SinkWriter<T> {
   public:
    Writer(const SinkOptions<T>* options, std::unique_ptr<internal::SinkCore> core)
        : options_(options), core_(std::move(core)) {}

    absl::Status Write(std::span<T> values, std::span<const Timestamp> timestamps) override {
      for (size_t idx = 0; idx < values.size(); ++idx) {
        const T& value = values[idx];
        internal::SinkRecord record;
        // The key first: a serializer error names the record by it.
        if (options_->key) record.key = options_->key(value, key_);
        if (options_->tombstone && options_->tombstone(value)) {
          record.null_value = true;
        } else if (options_->serializer) {
          value_.clear();
          absl::Status status = options_->serializer(value, value_);
          if (!status.ok()) {
            return internal::SerializerError(status, options_->topic, record.key, timestamps[idx]);
          }
          record.value = value_;
        } else if constexpr (std::is_same_v<T, std::string>) {
          record.value = value;
        }
        if (options_->headers) {
          headers_.clear();
          options_->headers(value, headers_);
          record.headers = &headers_;
        }
        if (options_->partitioner) {
          // The partitioner takes a std::string: a key read in place is copied
          // into one kept from record to record.
          if (record.key.data() != key_.data()) key_.assign(record.key);
          record.partition = options_->partitioner(value, key_, core_->partitions());
        }
        if (options_->event_time_as_timestamp) record.timestamp_ms = timestamps[idx];
        absl::Status status = core_->Produce(record);
        if (!status.ok()) return status;
      }
      return core_->AfterBatch();
    }
    // Serializes (or, for std::string records, has librdkafka copy) each
    // value during Write.
    bool ReadsOnly() const override { return true; }
    absl::Status Flush() override { return core_->Flush(); }
    absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
      return core_->PreCommit(checkpoint_id);
    }
    bool PreCommitAsync(int64_t checkpoint_id,
                        typename weir::SinkWriter<T>::PreCommitDone& done) override {
      return core_->PreCommitAsync(checkpoint_id, done);
    }
    absl::Status Commit(int64_t checkpoint_id, const std::string& committable) override {
      return core_->Commit(checkpoint_id, committable);
    }
    absl::Status Close() override { return core_->Close(); }

   private:
    const SinkOptions<T>* options_;  // owned by the Sink, which outlives its writers
    std::unique_ptr<internal::SinkCore> core_;
    std::string key_;
    std::string value_;
    std::vector<std::pair<std::string, std::string>> headers_;
  };

  SinkOptions<T> options_;
  std::shared_ptr<internal::FencedTransactionalIds> fenced_ = internal::NewFencedTransactionalIds();
};

// Creates a Kafka sink (see SinkOptions). Configuration errors are reported
// when the pipeline starts.
template <class T>
std::shared_ptr<KafkaSink<T>> Sink(SinkOptions<T> options) {
  return std::make_shared<KafkaSink<T>>(std::move(options));
}

}  // namespace weir::kafka

#endif  // WEIR_CONNECTORS_KAFKA_SINK_H_
