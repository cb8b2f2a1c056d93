// RowChange (weir/connectors/postgres_rows.h) as Debezium's PostgreSQL
// connector writes it through Kafka Connect's JsonConverter: the envelope
// (before, after, source, op, ts_ms), with or without its schema, and the
// key (the primary key's columns). Column types follow Debezium's defaults
// with decimal.handling.mode=string and time.precision.mode=adaptive:
// integers as int16/32/64, numeric as a string, timestamptz as
// io.debezium.time.ZonedTimestamp, timestamp as MicroTimestamp, date as
// Date, time as MicroTime, uuid/json with their io.debezium.data names,
// bytea as base64 bytes, arrays as arrays; an unchanged TOASTed value as
// Debezium's placeholder "__debezium_unavailable_value".

#ifndef WEIR_TOOLS_CAPTURE_DEBEZIUM_JSON_H_
#define WEIR_TOOLS_CAPTURE_DEBEZIUM_JSON_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "weir/connectors/postgres_rows.h"

namespace weir::capture {

// The topic of a change: "<prefix>.<schema>.<table>".
std::string TopicOf(const std::string& prefix, const postgres::RowChange& change);

// The record value. `with_schema`: {"schema": ..., "payload": ...}
// (schemas.enable=true), else the bare payload. kInvalidArgument for a
// value that is not in the text format expected of its type.
absl::StatusOr<std::string> EncodeValue(const postgres::RowChange& change, const std::string& topic,
                                        bool with_schema);

// The record key: the primary key's columns of the row (`after`, or
// `before` for a delete); empty for a truncate (no key).
absl::StatusOr<std::string> EncodeKey(const postgres::RowChange& change, const std::string& topic,
                                      bool with_schema);

// EncodeValue and EncodeKey with the schemas of each topic built once and
// reused while its columns stay the same (names, types, keys); a Relation
// change (ALTER TABLE) builds them again. One per worker.
class Encoder {
 public:
  explicit Encoder(bool with_schema) : with_schema_(with_schema) {}
  absl::StatusOr<std::string> Value(const postgres::RowChange& change, const std::string& topic);
  absl::StatusOr<std::string> Key(const postgres::RowChange& change, const std::string& topic);

 private:
  struct Schemas {
    std::vector<postgres::ColumnValue> shape;  // columns without their values
    std::string value;
    std::string key;
  };
  const Schemas& SchemasOf(const postgres::RowChange& change, const std::string& topic);

  bool with_schema_;
  absl::flat_hash_map<std::string, Schemas> cache_;
};

}  // namespace weir::capture

#endif  // WEIR_TOOLS_CAPTURE_DEBEZIUM_JSON_H_
