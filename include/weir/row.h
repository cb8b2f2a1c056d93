// weir::Row: a table row whose columns are known only at run time.
//
// Replication jobs (a table mirrored into ClickHouse or DuckDB) learn a
// table's columns from the change events' schema, not from a C++ struct. A
// Row holds a shared, immutable RowSchema (column names, types, nullability,
// decimal precision and scale, time units, key columns) and one RowValue per
// column. Rows of one schema share it (one std::shared_ptr), so a Row is a
// pointer and a vector: cheap to move, and cheap to copy apart from its
// strings. Decimals are exact (the unscaled integer at the column's scale);
// times are integers in the column's unit, never rounded.
//
// Rows come from weir::debezium::RowDecoder (weir/formats/debezium_row.h),
// and go into the mirror sinks (weir/connectors/clickhouse_mirror.h,
// weir/connectors/duckdb_mirror.h). Codec<Row> stores them in keyed state.
//
// Example:
//
//   auto schema = weir::RowSchema::Create(
//       "orders", {{.name = "id", .type = weir::ColumnType::kInt64},
//                  {.name = "total", .type = weir::ColumnType::kDecimal, .nullable = true,
//                   .precision = 10, .scale = 2}},
//       /*key=*/{"id"});
//   if (!schema.ok()) return schema.status();
//   weir::Row row(*schema);
//   row.Set(0, int64_t{7});
//   row.Set(1, absl::int128{1250});              // 12.50
//   std::string text = row.ToString();           // {id=7, total=12.50}
//
// Thread-safety: a RowSchema is immutable and may be shared by threads; a Row
// is a value (one thread at a time).

#ifndef WEIR_ROW_H_
#define WEIR_ROW_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "weir/codec.h"

namespace weir {

// The type of a column, and which RowValue alternative holds its values.
enum class ColumnType : uint8_t {
  kBool,     // bool
  kInt8,     // int64_t, within int8's range
  kInt16,    // int64_t, within int16's range
  kInt32,    // int64_t, within int32's range
  kInt64,    // int64_t
  kUInt64,   // uint64_t (declared schemas only; Debezium sends UNSIGNED BIGINT as a decimal)
  kFloat32,  // double holding a float's value
  kFloat64,  // double
  // absl::int128: the unscaled value at `scale` (12.50 at scale 2 is 1250),
  // at most `precision` (1..38) digits.
  kDecimal,
  // std::string: the exact decimal text of a column without a fixed scale
  // (PostgreSQL NUMERIC without precision: io.debezium.data.VariableScaleDecimal).
  kDecimalText,
  kString,     // std::string (UTF-8 text, enums, UUIDs in canonical form)
  kJson,       // std::string: the JSON text as the database rendered it
  kBytes,      // std::string: the raw bytes (base64 decoded)
  kDate,       // int64_t: days since 1970-01-01
  kTime,       // int64_t: `unit`s since midnight
  kTimestamp,  // int64_t: `unit`s since 1970-01-01 00:00 UTC
};

// "bool", "int32", "decimal", "timestamp", ...
std::string_view ColumnTypeName(ColumnType type);

// The unit of kTime and kTimestamp values.
enum class RowTimeUnit : uint8_t { kMillis, kMicros, kNanos };

// One column of a RowSchema.
struct RowColumn {
  // Required.
  std::string name;
  // Default: kString
  ColumnType type = ColumnType::kString;
  // Whether the column may hold NULL.
  // Default: false
  bool nullable = false;
  // kDecimal only: total digits (1..38) and digits after the point (0..precision).
  // Default: 0, 0
  int32_t precision = 0;
  int32_t scale = 0;
  // kTime and kTimestamp only.
  // Default: kMicros
  RowTimeUnit unit = RowTimeUnit::kMicros;

  friend bool operator==(const RowColumn&, const RowColumn&) = default;
};

// The columns of a table and which of them form its primary key. Immutable;
// share it between rows with std::shared_ptr.
class RowSchema {
 public:
  // kInvalidArgument for an empty or duplicate column name, a key column that
  // is not a column or is nullable, or a decimal whose precision is not 1..38
  // or whose scale is not 0..precision.
  static absl::StatusOr<std::shared_ptr<const RowSchema>> Create(std::string table,
                                                                 std::vector<RowColumn> columns,
                                                                 std::vector<std::string> key);

  // The source table's name, as the decoder knew it (e.g. "public.orders").
  const std::string& table() const { return table_; }
  const std::vector<RowColumn>& columns() const { return columns_; }
  // Indexes into columns() of the primary key's columns, in key order.
  const std::vector<int>& key() const { return key_; }
  // The index of the column named `name`, or -1.
  int Find(std::string_view name) const;

  // Same table, columns and key.
  friend bool operator==(const RowSchema& a, const RowSchema& b) {
    return a.table_ == b.table_ && a.columns_ == b.columns_ && a.key_ == b.key_;
  }

 private:
  RowSchema() = default;
  std::string table_;
  std::vector<RowColumn> columns_;
  std::vector<int> key_;
};

// One value: NULL (std::monostate) or the alternative its ColumnType names.
using RowValue =
    std::variant<std::monostate, bool, int64_t, uint64_t, double, absl::int128, std::string>;

// The value as text: integers and decimals exactly ("12.50"), doubles as the
// shortest text that reads back the same, NULL as "NULL", times as numbers
// of their unit. For messages and tests.
std::string RowValueToString(const RowValue& value, const RowColumn& column);

// A row of a RowSchema: one RowValue per column.
class Row {
 public:
  // A row without schema or values (what Codec<Row> decodes into).
  Row() = default;
  // All values NULL.
  explicit Row(std::shared_ptr<const RowSchema> schema)
      : schema_(std::move(schema)), values_(schema_ ? schema_->columns().size() : 0) {}
  Row(std::shared_ptr<const RowSchema> schema, std::vector<RowValue> values)
      : schema_(std::move(schema)), values_(std::move(values)) {}

  const std::shared_ptr<const RowSchema>& schema_ptr() const { return schema_; }
  const RowSchema& schema() const { return *schema_; }
  bool has_schema() const { return schema_ != nullptr; }
  size_t size() const { return values_.size(); }

  const RowValue& value(size_t column_idx) const { return values_[column_idx]; }
  RowValue& value(size_t column_idx) { return values_[column_idx]; }
  const std::vector<RowValue>& values() const { return values_; }
  void Set(size_t column_idx, RowValue value) { values_[column_idx] = std::move(value); }
  bool is_null(size_t column_idx) const {
    return std::holds_alternative<std::monostate>(values_[column_idx]);
  }
  // The value of the column named `name`; nullptr when there is none.
  const RowValue* Find(std::string_view name) const;

  // "{id=7, total=12.50}".
  std::string ToString() const;

  // Equal schemas (by value) and equal values.
  friend bool operator==(const Row& a, const Row& b);

 private:
  std::shared_ptr<const RowSchema> schema_;
  std::vector<RowValue> values_;
};

namespace internal {
// Codec<Row>'s halves (lib/formats/row.cc).
void EncodeRow(const Row& row, std::string& out);
bool DecodeRow(std::string_view& in, Row& row);
// "-12.50" for -1250 at scale 2.
std::string ScaledInt128ToString(absl::int128 unscaled, int32_t scale);
}  // namespace internal

// A Row with its schema, so state holds rows of any table. Decoding keeps the
// last schemas it saw per thread and gives rows of an equal schema the same
// shared RowSchema. Not order-preserving (not for keys).
template <>
struct Codec<Row> {
  static void Encode(const Row& row, std::string& out) { internal::EncodeRow(row, out); }
  static bool Decode(std::string_view& in, Row& row) { return internal::DecodeRow(in, row); }
};

}  // namespace weir

#endif  // WEIR_ROW_H_
