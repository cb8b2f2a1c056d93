// Debezium change events decoded into weir::Row: for jobs that do not know a
// table's columns at compile time (mirroring whole tables).
//
// RowDecoder reads what Kafka Connect's JsonConverter writes for Debezium's
// PostgreSQL and MySQL connectors. With `schemas.enable=true` every column's
// type comes from the record's schema: integers, floats, booleans, strings,
// UUIDs, JSON, bytes (base64 on the wire), decimals
// (org.apache.kafka.connect.data.Decimal with its precision and scale,
// io.debezium.data.VariableScaleDecimal as exact text), dates, times and
// timestamps in the unit the schema names (io.debezium.time.* and
// org.apache.kafka.connect.data.*; ZonedTimestamp in microseconds UTC), and
// nullability from "optional". The primary key is the record key's columns.
//
// Two things a schema cannot say are declared per table (RowTable):
// - decimals sent in `decimal.handling.mode=string` or `double` (the schema
//   says "string"/"double"): declare the column kDecimal with its precision
//   and scale, and it is read exactly from the text (or the number's text);
// - the whole schema of schemaless records (`schemas.enable=false`): every
//   column, the key, and the decimal mode.
//
// Example:
//
//   auto decoder = weir::debezium::RowDecoder::Create(
//       {.tables = {{.table = "shop.orders",        // MySQL: db.table; PostgreSQL: schema.table
//                    .columns = {{.name = "total", .type = weir::ColumnType::kDecimal,
//                                 .nullable = true, .precision = 10, .scale = 2}},
//                    .decimal_mode = weir::debezium::DecimalMode::kString}}});
//   absl::StatusOr<weir::debezium::RowChange> change = decoder->Decode(key_json, value_json);
//   if (!change.ok()) return change.status();   // names the table and the field
//   if (const weir::Row* row = change->row()) Use(*row);
//
// Errors: kDataLoss for bytes that are not JSON; kInvalidArgument for a
// record that is no change event or whose value does not fit its column
// (out of range, more digits than the decimal's precision, a string where a
// number belongs): the message names the table and the field, e.g.
//   table shop.orders: after: field "total": decimal 123456789.5 has more than 10 digits
// A value is exact or an error, never rounded.

#ifndef WEIR_FORMATS_DEBEZIUM_ROW_H_
#define WEIR_FORMATS_DEBEZIUM_ROW_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "weir/formats/debezium.h"
#include "weir/row.h"

namespace weir::debezium {

// One decoded change of a table row.
struct RowChange {
  // kCreate, kUpdate, kRead, kDelete, kTruncate or kTombstone; or, for
  // records that are not row changes and carry nothing else here,
  // kTransaction (BEGIN/END markers), kHeartbeat or kMessage.
  Op op = Op::kTombstone;
  // As in Change<T>: `before` for deletes (with REPLICA IDENTITY DEFAULT only
  // the key columns are set; the others are NULL whatever their type says),
  // `after` for creates, updates and reads.
  std::optional<Row> before;
  std::optional<Row> after;
  SourceInfo source;
  std::optional<int64_t> ts_ms;
  // The table the change belongs to: "schema.table" (PostgreSQL) or
  // "db.table" (MySQL) from `source`, else the declared table it matched.
  std::string table;
  // Where the record was read (set by kafka::DebeziumRowDeserializer): the
  // partition's offset orders the changes of one row, since Debezium keys
  // records by the primary key. -1 when unknown.
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;

  // `after`, else `before`; nullptr for truncates and tombstones.
  const Row* row() const {
    if (after.has_value()) return &*after;
    if (before.has_value()) return &*before;
    return nullptr;
  }
};

// What is declared about one table.
struct RowTable {
  // Which records: matched against "schema.table"/"db.table", the bare table
  // name, and the Kafka topic (required).
  std::string table;
  // Records with a schema: columns to read as the declared type instead of
  // the schema's (decimals in string or double mode). Records without one:
  // every column, in order; undeclared fields are an error.
  // Default: none
  std::vector<RowColumn> columns;
  // The primary key's columns, when records have no key schema (schemaless).
  // Default: the record key's fields
  std::vector<std::string> key;
  // The connector's decimal.handling.mode, needed by schemaless decimal
  // columns: "1000" is base64 (precise) and decimal text (string) at once.
  // Default: none (a schemaless decimal column is an error naming it)
  std::optional<DecimalMode> decimal_mode;
};

struct RowDecoderOptions {
  // Default: none
  std::vector<RowTable> tables;
  // As DecoderOptions::unavailable_value_placeholder: a value equal to it is
  // an error naming the field.
  // Default: "__debezium_unavailable_value"
  std::string unavailable_value_placeholder = "__debezium_unavailable_value";
};

namespace internal {
class RowDecoderCore;
struct RowDecoderCoreDeleter {
  void operator()(RowDecoderCore* core) const;
};
}  // namespace internal

// Decodes Debezium JSON into RowChange. Rows of records with the same schema
// share one RowSchema.
//
// Thread-safety: not thread-safe (it reuses a parser and caches schemas);
// one per worker. Movable.
class RowDecoder {
 public:
  // kInvalidArgument for a declaration that cannot work (a table without a
  // name, a bad decimal precision, a key column that is not declared).
  static absl::StatusOr<RowDecoder> Create(RowDecoderOptions options = {});

  // Decodes one Kafka record: its key (the primary key; may be empty) and its
  // value (the envelope, with or without schema/payload; empty or null is a
  // tombstone). `topic` helps to match a declared table. Transaction
  // markers, heartbeats and logical decoding messages come back with only
  // their op set (see debezium::IsRowOp).
  absl::StatusOr<RowChange> Decode(std::string_view key, std::string_view value,
                                   std::string_view topic = {});

 private:
  explicit RowDecoder(
      std::unique_ptr<internal::RowDecoderCore, internal::RowDecoderCoreDeleter> core)
      : core_(std::move(core)) {}
  std::unique_ptr<internal::RowDecoderCore, internal::RowDecoderCoreDeleter> core_;
};

}  // namespace weir::debezium

#endif  // WEIR_FORMATS_DEBEZIUM_ROW_H_
