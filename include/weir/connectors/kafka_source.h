// The Kafka source: reads topics with librdkafka, one consumer per worker.
//
// Splits are topic partitions, assigned to workers by weir (manual
// assignment with rd_kafka_assign, no consumer-group rebalancing), so a
// worker may read several partitions or none (more workers than partitions
// is fine). Each partition's next offset is stored in every checkpoint and
// restored on restart; after a checkpoint completes (never before) the
// offsets it covers are committed to `group_id` so lag tools see progress.
//
// Watermarks are per partition; a partition that has caught up with its
// high watermark is marked idle at once, so a quiet partition never holds
// back event time.
//
// Event time: without a timestamp assigner a record's event time is its
// broker timestamp. A Debezium pipeline should assign the data's own time
// (source.ts_ms, or a column) and return weir::kNoTimestamp for records that
// have none (tombstones, heartbeats): they then carry their partition's
// latest event time and move no watermark. Falling back to the broker
// timestamp mixes the wall clock into the data's clock, and a replay of old
// data then sees its watermark jump to now.
//
// Records are turned into T by a Deserializer that sees the key, value,
// headers, topic, partition, offset and broker timestamp (DeserializeWith,
// StringDeserializer; Debezium JSON: kafka_debezium.h). A record it rejects
// goes to the dead-letter queue when `dead_letters` is set, else fails the
// job naming the record (SourceOptions::on_error overrides this).
//
// Data loss is never silent: when the broker no longer holds the next offset
// a partition needs (retention passed it, or a restored checkpoint is older
// than the log start), the job fails with kDataLoss naming the partition and
// the missing offsets, unless `on_data_loss` resets the position (logged and
// counted in KafkaSource::Stats()).
//
// Example:
//
//   auto source = weir::kafka::Source<View>({
//       .client = {.brokers = "localhost:9092"},
//       .topics = {"views"},
//       .group_id = "view-counts",
//       .deserializer = weir::kafka::DeserializeWith<View>(ParseView)});
//   auto views = pipeline.Source(source, weir::WatermarkStrategy<View>::BoundedOutOfOrderness(
//                                            absl::Seconds(5)))
//                    .Name("views")   // logs, errors, metrics
//                    .Uid("views");   // the offsets in checkpoints

#ifndef WEIR_CONNECTORS_KAFKA_SOURCE_H_
#define WEIR_CONNECTORS_KAFKA_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "weir/connectors/kafka_client.h"
#include "weir/dead_letter.h"
#include "weir/source.h"
#include "weir/time.h"

namespace weir::kafka {

// One Kafka record as the deserializer sees it. The views are valid only
// during the Deserialize call.
struct KafkaRecord {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  // The broker timestamp (CreateTime or LogAppendTime), ms since the epoch;
  // -1 when the record has none.
  int64_t timestamp_ms = -1;
  // Empty when the record has no key.
  std::string_view key;
  // False for a null value (a tombstone).
  bool has_value = false;
  std::string_view value;
  // The record's headers in order (a name may repeat). Empty when the
  // deserializer says it does not read them (Deserializer::ReadsHeaders).
  std::span<const std::pair<std::string_view, std::string_view>> headers;
};

// Turns Kafka records into T. One instance per worker, called only from that
// worker's thread, so it may keep reusable state (a parser).
template <class T>
class Deserializer {
 public:
  virtual ~Deserializer() = default;
  // The value for `record`, or an error naming what is wrong (the record
  // then goes to the dead-letter queue or fails the job, per ErrorPolicy).
  virtual absl::StatusOr<T> Deserialize(const KafkaRecord& record) = 0;
  // Deserialize into `out`, a default-constructed T, in place. The source
  // calls this one when T is default-constructible and move-assignable
  // (else Deserialize); the default moves Deserialize's value into `out`. A
  // deserializer that can build its value in place overrides it (the
  // Debezium ones do), which saves a move of each value.
  virtual absl::Status DeserializeInto(const KafkaRecord& record, T& out) {
    absl::StatusOr<T> value = Deserialize(record);
    if (!value.ok()) return value.status();
    if constexpr (std::is_move_assignable_v<T>) {
      out = *std::move(value);
      return absl::OkStatus();
    } else {
      return absl::FailedPreconditionError("DeserializeInto needs a move-assignable T");
    }
  }
  // Whether Deserialize reads record.headers. When false the source leaves
  // them unparsed (librdkafka parses a record's headers on request, with an
  // allocation per record even when it has none) and passes an empty span;
  // a record that goes to the dead-letter queue still carries its headers.
  // Default: true. The built-in Debezium and string deserializers say false.
  virtual bool ReadsHeaders() const { return true; }
  // Whether `value`, just returned by Deserialize, is dropped instead of
  // emitted; each drop is counted in KafkaSourceStats::skipped. Default: never.
  virtual bool Skips(const T& value) {
    (void)value;
    return false;
  }
};

// Creates one Deserializer per worker; called when the job starts (an error
// fails Start(); so does a null deserializer, with kInvalidArgument).
template <class T>
using DeserializerFactory = std::function<absl::StatusOr<std::unique_ptr<Deserializer<T>>>()>;

// A deserializer from a function; `fn` is copied into every worker.
template <class T>
DeserializerFactory<T> DeserializeWith(
    std::function<absl::StatusOr<T>(const KafkaRecord& record)> fn) {
  class FunctionDeserializer final : public Deserializer<T> {
   public:
    explicit FunctionDeserializer(std::function<absl::StatusOr<T>(const KafkaRecord&)> f)
        : fn_(std::move(f)) {}
    absl::StatusOr<T> Deserialize(const KafkaRecord& record) override { return fn_(record); }

   private:
    std::function<absl::StatusOr<T>(const KafkaRecord&)> fn_;
  };
  return [fn = std::move(fn)]() -> absl::StatusOr<std::unique_ptr<Deserializer<T>>> {
    return std::unique_ptr<Deserializer<T>>(new FunctionDeserializer(fn));
  };
}

// The record value as a std::string (empty for a null value).
inline DeserializerFactory<std::string> StringDeserializer() {
  class StringValue final : public Deserializer<std::string> {
   public:
    absl::StatusOr<std::string> Deserialize(const KafkaRecord& record) override {
      return std::string(record.value);
    }
    bool ReadsHeaders() const override { return false; }
  };
  return []() -> absl::StatusOr<std::unique_ptr<Deserializer<std::string>>> {
    return std::unique_ptr<Deserializer<std::string>>(new StringValue());
  };
}

// Where each partition starts when the job does not restore a checkpoint.
struct StartingOffsets {
  enum class Kind {
    kEarliest,   // the log start of each partition
    kLatest,     // the high watermark when the job starts (only new records)
    kCommitted,  // the offsets committed by `group_id`; `fallback` where none
    kTimestamp,  // the first record with timestamp >= timestamp_ms (or the end)
    kOffsets,    // `offsets` per partition; `fallback` for partitions not listed
  };
  static StartingOffsets Earliest() { return {}; }
  static StartingOffsets Latest() {
    StartingOffsets s;
    s.kind = Kind::kLatest;
    return s;
  }
  static StartingOffsets Committed(Kind fallback = Kind::kEarliest) {
    StartingOffsets s;
    s.kind = Kind::kCommitted;
    s.fallback = fallback;
    return s;
  }
  static StartingOffsets FromTimestamp(Timestamp timestamp_ms) {
    StartingOffsets s;
    s.kind = Kind::kTimestamp;
    s.timestamp_ms = timestamp_ms;
    return s;
  }
  // `offsets`: topic -> partition -> offset.
  static StartingOffsets Explicit(std::map<std::string, std::map<int32_t, int64_t>> offsets,
                                  Kind fallback = Kind::kEarliest) {
    StartingOffsets s;
    s.kind = Kind::kOffsets;
    s.offsets = std::move(offsets);
    s.fallback = fallback;
    return s;
  }

  Kind kind = Kind::kEarliest;
  Timestamp timestamp_ms = 0;
  std::map<std::string, std::map<int32_t, int64_t>> offsets;
  // kEarliest or kLatest.
  Kind fallback = Kind::kEarliest;
};

// What happens when the broker no longer holds the offset a partition needs.
enum class DataLossPolicy {
  // Fail the job with kDataLoss naming the partition and the missing range.
  kFail,
  // Continue from the partition's log start (logged and counted).
  kResetToEarliest,
  // Continue from the partition's high watermark (logged and counted).
  kResetToLatest,
};

// Counters of one KafkaSource over all its workers.
struct KafkaSourceStats {
  int64_t records = 0;          // records deserialized and emitted
  int64_t dead_letters = 0;     // records written to the dead-letter queue
  int64_t offset_resets = 0;    // positions reset under a DataLossPolicy
  int64_t skipped_offsets = 0;  // offsets skipped by those resets
  int64_t skipped = 0;          // records the deserializer said to drop (Deserializer::Skips)
};

template <class T>
struct SourceOptions {
  // Brokers and librdkafka properties (security.protocol, sasl.*, ssl.*,
  // fetch.*, ...), passed through to every consumer. weir sets
  // enable.auto.commit=false and auto.offset.reset=error itself.
  ClientOptions client;
  // The topics to read; each must exist when the job starts. Required.
  std::vector<std::string> topics;
  // The consumer group whose committed offsets StartingOffsets::Committed()
  // reads and to which offsets are committed after each checkpoint.
  // Default: "" (no group: nothing is committed, and
  // StartingOffsets::Committed() fails Start() with kInvalidArgument)
  std::string group_id;
  // Creates each worker's deserializer. Required: Start() fails with
  // kInvalidArgument without one.
  DeserializerFactory<T> deserializer;
  // Default: StartingOffsets::Earliest()
  StartingOffsets starting_offsets;
  // Bounded: read each partition up to the high watermark it had when the
  // job started, then end (kEndOfInput). Unbounded: run until Stop().
  // Default: false
  bool bounded = false;
  // Default: DataLossPolicy::kFail
  DataLossPolicy on_data_loss = DataLossPolicy::kFail;
  // What a record the deserializer rejects does. Unset, it follows
  // `dead_letters`: written there when a queue is set, else the job fails
  // naming the record (so a source without a queue runs, and loses nothing).
  // kDeadLetter without a queue is an error at Start().
  // Default: unset (kDeadLetter with `dead_letters`, kFail without)
  std::optional<ErrorPolicy> on_error;
  // Where rejected records go; flushed before each checkpoint covers them.
  // Default: none
  std::shared_ptr<DeadLetterQueue> dead_letters;
  // How long the brokers may stay unreachable (while librdkafka retries,
  // logging each outage) before the job fails with kUnavailable; also the
  // timeout of the metadata and offset requests at start.
  // Default: 60 seconds
  absl::Duration unavailable_timeout = absl::Seconds(60);
  // Most records handed to the pipeline per poll of one worker.
  // Default: 2048
  int max_records_per_poll = 2048;
};

namespace internal {

// The non-template part of the source (lib/connectors/kafka/source_core.cc),
// behind an opaque pointer so that no librdkafka type appears here.

// SourceOptions<T> without T.
struct ConsumerSettings {
  ClientOptions client;
  std::vector<std::string> topics;
  std::string group_id;
  StartingOffsets starting_offsets;
  bool bounded = false;
  DataLossPolicy on_data_loss = DataLossPolicy::kFail;
  absl::Duration unavailable_timeout = absl::Seconds(60);
  int max_records_per_poll = 2048;
};

// Shared by the readers of one source.
struct SourceCounters {
  std::atomic<int64_t> records{0};
  std::atomic<int64_t> dead_letters{0};
  std::atomic<int64_t> offset_resets{0};
  std::atomic<int64_t> skipped_offsets{0};
  std::atomic<int64_t> skipped{0};
};

// Receives what a consumer poll found, in order.
class RecordHandler {
 public:
  virtual ~RecordHandler() = default;
  // A record of split `split` (an index into the reader's splits).
  virtual absl::Status OnRecord(int split, const KafkaRecord& record) = 0;
  // Whether OnRecord's records carry their headers (else CurrentRecordHeaders
  // reads them when needed).
  virtual bool ReadsHeaders() const = 0;
  // Split `split` has caught up with its high watermark.
  virtual void OnCaughtUp(int split) = 0;
  // Split `split` reached its end offset (bounded mode).
  virtual void OnFinished(int split) = 0;
};

class ConsumerCore;
struct ConsumerCoreDeleter {
  void operator()(ConsumerCore* core) const;
};
using ConsumerCorePtr = std::unique_ptr<ConsumerCore, ConsumerCoreDeleter>;

// Checks the settings and lists every partition of every topic as a split
// ("topic:partition"). kNotFound for a missing topic, kUnavailable when the
// brokers cannot be reached within unavailable_timeout.
absl::StatusOr<std::vector<SourceSplit>> DiscoverKafkaSplits(const ConsumerSettings& settings);
// A consumer for one worker's splits, positioned (restored state, or the
// starting offsets) and assigned.
absl::StatusOr<ConsumerCorePtr> NewConsumerCore(const ConsumerSettings& settings,
                                                const SourceReaderContext& context,
                                                SourceCounters& counters);
// Hands up to max_records_per_poll records to `handler`.
absl::StatusOr<PollResult> PollConsumer(ConsumerCore& core, RecordHandler& handler);
// The headers of the record `core` is handing to its handler; empty outside
// RecordHandler::OnRecord. Valid until OnRecord returns.
std::span<const std::pair<std::string_view, std::string_view>> CurrentRecordHeaders(
    ConsumerCore& core);
// Each split's next offset, remembered for CommitCheckpoint.
std::vector<std::string> SnapshotPositions(ConsumerCore& core, int64_t checkpoint_id);
// Commits the offsets snapshotted for `checkpoint_id` to the group (if any).
absl::Status CommitCheckpoint(ConsumerCore& core, int64_t checkpoint_id);
absl::Status CloseConsumer(ConsumerCore& core);

}  // namespace internal

// A Kafka source of T. Create it with kafka::Source<T>(options).
// Thread-safety: as weir::Source; Stats() may be called from any thread.
template <class T>
class KafkaSource final : public weir::Source<T> {
 public:
  explicit KafkaSource(SourceOptions<T> options) : options_(std::move(options)) {}

  // SourceOptions::on_error, or what it defaults to.
  ErrorPolicy ErrorPolicyOf() const {
    if (options_.on_error.has_value()) return *options_.on_error;
    return options_.dead_letters != nullptr ? ErrorPolicy::kDeadLetter : ErrorPolicy::kFail;
  }

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    if (!options_.deserializer) {
      return absl::InvalidArgumentError("kafka source: no deserializer");
    }
    if (ErrorPolicyOf() == ErrorPolicy::kDeadLetter && options_.dead_letters == nullptr) {
      return absl::InvalidArgumentError(
          "kafka source: on_error is ErrorPolicy::kDeadLetter but no dead_letters queue is set "
          "(set one, or choose ErrorPolicy::kFail)");
    }
    return internal::DiscoverKafkaSplits(Settings());
  }

  absl::StatusOr<std::unique_ptr<SourceReader<T>>> CreateReader(
      const SourceReaderContext& context) override {
    absl::StatusOr<std::unique_ptr<Deserializer<T>>> deserializer = options_.deserializer();
    if (!deserializer.ok()) return deserializer.status();
    if (*deserializer == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("kafka source '", context.operator_name,
                                                     "': the deserializer factory returned null"));
    }
    std::unique_ptr<DeadLetterWriter> dead_letters;
    if (ErrorPolicyOf() == ErrorPolicy::kDeadLetter) {
      absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer =
          options_.dead_letters->CreateWriter(context.operator_name, context.worker_index);
      if (!writer.ok()) return writer.status();
      dead_letters = CountDeadLetters(*std::move(writer), context.metrics);
    }
    absl::StatusOr<internal::ConsumerCorePtr> core =
        internal::NewConsumerCore(Settings(), context, *counters_);
    if (!core.ok()) return core.status();
    return std::unique_ptr<SourceReader<T>>(new Reader(*std::move(core), *std::move(deserializer),
                                                       std::move(dead_letters), ErrorPolicyOf(),
                                                       counters_));
  }

  KafkaSourceStats Stats() const {
    return {counters_->records.load(), counters_->dead_letters.load(),
            counters_->offset_resets.load(), counters_->skipped_offsets.load(),
            counters_->skipped.load()};
  }

 private:
  internal::ConsumerSettings Settings() const {
    return {options_.client,
            options_.topics,
            options_.group_id,
            options_.starting_offsets,
            options_.bounded,
            options_.on_data_loss,
            options_.unavailable_timeout,
            options_.max_records_per_poll};
  }

  class Reader final : public SourceReader<T>, private internal::RecordHandler {
   public:
    Reader(internal::ConsumerCorePtr core, std::unique_ptr<Deserializer<T>> deserializer,
           std::unique_ptr<DeadLetterWriter> dead_letters, ErrorPolicy policy,
           std::shared_ptr<internal::SourceCounters> counters)
        : core_(std::move(core)),
          deserializer_(std::move(deserializer)),
          dead_letters_(std::move(dead_letters)),
          policy_(policy),
          counters_(std::move(counters)) {}

    absl::StatusOr<PollResult> Poll(SourceOutput<T>& output) override {
      output_ = &output;
      emitted_ = 0;
      absl::StatusOr<PollResult> result = internal::PollConsumer(*core_, *this);
      output_ = nullptr;
      if (emitted_ > 0) counters_->records.fetch_add(emitted_, std::memory_order_relaxed);
      return result;
    }

    absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t checkpoint_id) override {
      // Dead letters of records this checkpoint covers must be durable first.
      if (dead_letters_ != nullptr) {
        absl::Status status = dead_letters_->Flush();
        if (!status.ok()) return status;
      }
      return internal::SnapshotPositions(*core_, checkpoint_id);
    }

    absl::Status NotifyCheckpointComplete(int64_t checkpoint_id) override {
      return internal::CommitCheckpoint(*core_, checkpoint_id);
    }

    absl::Status Close() override {
      absl::Status status = absl::OkStatus();
      if (dead_letters_ != nullptr) status = dead_letters_->Flush();
      absl::Status closed = internal::CloseConsumer(*core_);
      return status.ok() ? closed : status;
    }

   private:
    absl::Status OnRecord(int split, const KafkaRecord& record) override {
      absl::Status error = absl::OkStatus();
      bool skipped = false;
      bool emitted = false;
      if constexpr (std::is_default_constructible_v<T> && std::is_move_assignable_v<T>) {
        emitted = output_->CollectInPlace(split, record.timestamp_ms, [&](T& value) {
          error = deserializer_->DeserializeInto(record, value);
          skipped = error.ok() && deserializer_->Skips(value);
          return error.ok() && !skipped;
        });
      } else {
        // A T without a default constructor cannot be built in place.
        absl::StatusOr<T> value = deserializer_->Deserialize(record);
        error = value.status();
        skipped = value.ok() && deserializer_->Skips(*value);
        if (value.ok() && !skipped) {
          output_->Collect(split, *std::move(value), record.timestamp_ms);
          emitted = true;
        }
      }
      if (emitted) {
        ++emitted_;
        return absl::OkStatus();
      }
      if (skipped) {
        counters_->skipped.fetch_add(1, std::memory_order_relaxed);
        return absl::OkStatus();
      }
      const std::string where =
          absl::StrCat("topic ", absl::string_view(record.topic.data(), record.topic.size()),
                       " partition ", record.partition, " offset ", record.offset);
      if (policy_ == ErrorPolicy::kFail) {
        return absl::Status(error.code(), absl::StrCat("cannot deserialize the record at ", where,
                                                       ": ", error.message()));
      }
      DeadLetter letter;
      if (record.has_value) letter.payload.assign(record.value);
      letter.key.assign(record.key);
      for (const auto& [name, header_value] : deserializer_->ReadsHeaders()
                                                  ? record.headers
                                                  : internal::CurrentRecordHeaders(*core_)) {
        letter.headers.emplace_back(std::string(name), std::string(header_value));
      }
      letter.code = error.code();
      letter.error = std::string(error.message());
      letter.stage = "kafka-source";
      letter.topic.assign(record.topic);
      letter.partition = record.partition;
      letter.offset = record.offset;
      letter.timestamp_ms = record.timestamp_ms;
      absl::Status status = dead_letters_->Write(std::move(letter));
      if (!status.ok()) {
        return absl::Status(status.code(), absl::StrCat("cannot write the dead letter for ", where,
                                                        ": ", status.message()));
      }
      counters_->dead_letters.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    bool ReadsHeaders() const override { return deserializer_->ReadsHeaders(); }
    void OnCaughtUp(int split) override { output_->MarkIdle(split); }
    void OnFinished(int split) override { output_->FinishSplit(split); }

    internal::ConsumerCorePtr core_;
    std::unique_ptr<Deserializer<T>> deserializer_;
    std::unique_ptr<DeadLetterWriter> dead_letters_;
    ErrorPolicy policy_;
    std::shared_ptr<internal::SourceCounters> counters_;
    SourceOutput<T>* output_ = nullptr;
    int64_t emitted_ = 0;
  };

  SourceOptions<T> options_;
  std::shared_ptr<internal::SourceCounters> counters_ =
      std::make_shared<internal::SourceCounters>();
};

// Creates a Kafka source (see SourceOptions). Configuration errors are
// reported when the pipeline starts.
template <class T>
std::shared_ptr<KafkaSource<T>> Source(SourceOptions<T> options) {
  return std::make_shared<KafkaSource<T>>(std::move(options));
}

}  // namespace weir::kafka

#endif  // WEIR_CONNECTORS_KAFKA_SOURCE_H_
