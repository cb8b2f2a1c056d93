// Debezium change events from Kafka: DebeziumDeserializer decodes each
// record's JSON into weir::debezium::Change<Row> for a Kafka source. It lives
// apart from kafka_source.h so that Kafka users who read no Debezium do not
// compile its decoder.
//
// Example:
//
//   #include "weir/connectors/kafka_debezium.h"
//
//   auto source = weir::kafka::Source<weir::debezium::Change<Event>>({
//       .client = {.brokers = "localhost:9092"},
//       .topics = {"pg.public.events"},
//       .deserializer = weir::kafka::DebeziumDeserializer(
//           weir::debezium::Fields<Event>().Required("id", &Event::id)),
//       .dead_letters = dead_letters});

#ifndef WEIR_CONNECTORS_KAFKA_DEBEZIUM_H_
#define WEIR_CONNECTORS_KAFKA_DEBEZIUM_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "weir/connectors/kafka_source.h"
#include "weir/formats/debezium.h"
#include "weir/formats/debezium_row.h"

namespace weir::kafka {

// Debezium JSON change events (include/weir/formats/debezium.h) decoded into
// debezium::Change<Row>, one Decoder per worker. A null value is a tombstone
// (Op::kTombstone). Messages, heartbeats and transaction markers follow
// `options` (by default they are skipped and counted in
// KafkaSourceStats::skipped). A bad field declaration fails Start() with
// kInvalidArgument.
template <class Row>
DeserializerFactory<debezium::Change<Row>> DebeziumDeserializer(
    debezium::Fields<Row> fields, debezium::DecoderOptions options = {}) {
  class DebeziumAdapter final : public Deserializer<debezium::Change<Row>> {
   public:
    explicit DebeziumAdapter(debezium::Decoder<Row> decoder) : decoder_(std::move(decoder)) {}
    absl::StatusOr<debezium::Change<Row>> Deserialize(const KafkaRecord& record) override {
      if (!record.has_value) return decoder_.Decode(std::string_view());
      return decoder_.Decode(record.value);
    }
    absl::Status DeserializeInto(const KafkaRecord& record, debezium::Change<Row>& out) override {
      return decoder_.DecodeInto(record.has_value ? record.value : std::string_view(), out);
    }
    bool Skips(const debezium::Change<Row>& change) override { return decoder_.Skips(change); }
    bool ReadsHeaders() const override { return false; }

   private:
    debezium::Decoder<Row> decoder_;
  };
  return [fields = std::move(fields), options = std::move(options)]()
             -> absl::StatusOr<std::unique_ptr<Deserializer<debezium::Change<Row>>>> {
    absl::StatusOr<debezium::Decoder<Row>> decoder =
        debezium::Decoder<Row>::Create(fields, options);
    if (!decoder.ok()) return decoder.status();
    return std::unique_ptr<Deserializer<debezium::Change<Row>>>(
        new DebeziumAdapter(*std::move(decoder)));
  };
}

// Debezium JSON change events decoded into debezium::RowChange (dynamic
// rows: weir/formats/debezium_row.h), one RowDecoder per worker. The record's
// key gives the primary key's columns; its topic, partition and offset go into
// the change (the offset orders one row's changes: mirror sinks use it as the
// version). Tombstones, transaction markers, heartbeats and logical decoding
// messages are skipped and counted (KafkaSourceStats::skipped).
inline DeserializerFactory<debezium::RowChange> DebeziumRowDeserializer(
    debezium::RowDecoderOptions options = {}) {
  class RowAdapter final : public Deserializer<debezium::RowChange> {
   public:
    explicit RowAdapter(debezium::RowDecoder decoder) : decoder_(std::move(decoder)) {}
    absl::StatusOr<debezium::RowChange> Deserialize(const KafkaRecord& record) override {
      absl::StatusOr<debezium::RowChange> change = decoder_.Decode(
          record.key, record.has_value ? record.value : std::string_view(), record.topic);
      if (!change.ok()) return change.status();
      change->topic = std::string(record.topic);
      change->partition = record.partition;
      change->offset = record.offset;
      return change;
    }
    bool Skips(const debezium::RowChange& change) override {
      return change.op == debezium::Op::kTombstone || !debezium::IsRowOp(change.op);
    }
    bool ReadsHeaders() const override { return false; }

   private:
    debezium::RowDecoder decoder_;
  };
  return [options = std::move(
              options)]() -> absl::StatusOr<std::unique_ptr<Deserializer<debezium::RowChange>>> {
    absl::StatusOr<debezium::RowDecoder> decoder = debezium::RowDecoder::Create(options);
    if (!decoder.ok()) return decoder.status();
    return std::unique_ptr<Deserializer<debezium::RowChange>>(new RowAdapter(*std::move(decoder)));
  };
}

}  // namespace weir::kafka

#endif  // WEIR_CONNECTORS_KAFKA_DEBEZIUM_H_
