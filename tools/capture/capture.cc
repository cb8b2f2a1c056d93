#include "tools/capture/capture.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tools/capture/debezium_json.h"
#include "weir/functions.h"

namespace weir::capture {

absl::StatusOr<std::shared_ptr<postgres::RowCdcSource>> AddCapture(Pipeline& pipeline,
                                                                   const CaptureOptions& options) {
  if (options.source.tables.empty()) {
    return absl::InvalidArgumentError("weir-capture: no tables");
  }
  auto source = postgres::RowCdcSource::Create(options.source);
  const std::string prefix = options.prefix;
  auto records =
      pipeline.Source(source)
          .Name("postgres")
          .Uid("postgres")
          .FlatMap<CaptureRecord>([prefix, encoder = Encoder(options.with_schema)](
                                      const postgres::RowChange& change,
                                      Collector<CaptureRecord>& out) mutable -> absl::Status {
            CaptureRecord record;
            record.topic = TopicOf(prefix, change);
            absl::StatusOr<std::string> key = encoder.Key(change, record.topic);
            if (!key.ok()) return key.status();
            absl::StatusOr<std::string> value = encoder.Value(change, record.topic);
            if (!value.ok()) return value.status();
            record.key = *key;
            record.value = *std::move(value);
            out.Collect(record);
            if (change.op == debezium::Op::kDelete && !record.key.empty()) {
              // Debezium's tombstone, so that log compaction drops the key.
              record.tombstone = true;
              record.value.clear();
              out.Collect(std::move(record));
            }
            return absl::OkStatus();
          })
          .Name("debezium-json")
          .Uid("debezium-json");
  for (const std::string& table : options.source.tables) {
    const std::string qualified = table.find('.') == std::string::npos ? "public." + table : table;
    const std::string topic = absl::StrCat(prefix, ".", qualified);
    kafka::SinkOptions<CaptureRecord> sink;
    sink.client = options.kafka;
    sink.topic = topic;
    sink.serializer = [](const CaptureRecord& record, std::string& out) {
      out = record.value;
      return absl::OkStatus();
    };
    sink.key = [](const CaptureRecord& record) { return record.key; };
    sink.tombstone = [](const CaptureRecord& record) { return record.tombstone; };
    sink.guarantee = options.exactly_once ? kafka::DeliveryGuarantee::kExactlyOnce
                                          : kafka::DeliveryGuarantee::kAtLeastOnce;
    records.Filter([topic](const CaptureRecord& record) { return record.topic == topic; })
        .Name("topic " + topic)
        .Uid("filter:" + topic)
        .Sink(kafka::Sink<CaptureRecord>(std::move(sink)))
        .Name(topic)
        .Uid("kafka:" + topic);
  }
  return source;
}

}  // namespace weir::capture
