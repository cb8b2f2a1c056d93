// The Kafka Connect schema that JsonConverter puts beside a Debezium
// payload ({"schema": ..., "payload": ...}), reduced to what decoding the
// declared columns needs: each column's type, logical name (e.g.
// "io.debezium.time.ZonedTimestamp") and decimal scale.

#ifndef WEIR_LIB_FORMATS_DEBEZIUM_SCHEMA_H_
#define WEIR_LIB_FORMATS_DEBEZIUM_SCHEMA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "simdjson.h"

namespace weir::debezium::internal {

struct ColumnSchema {
  // Kafka Connect type: "int32", "int64", "float64", "boolean", "string",
  // "bytes", "struct", "array", ... JsonConverter's other spellings of the
  // float types ("double", "float") are stored as "float64" and "float32".
  std::string type;
  // The logical type's name, or empty.
  std::string name;
  // parameters.scale of org.apache.kafka.connect.data.Decimal.
  std::optional<int32_t> scale;
  // parameters."connect.decimal.precision" (Debezium adds it to decimals).
  std::optional<int32_t> precision;
  // The schema's "optional" (the column is nullable).
  bool optional = false;
  // For "array": the elements' schema (one entry), if the schema gives it.
  std::vector<ColumnSchema> items;
};

// What the schema says about each declared column, by declaration index;
// nullopt for a column the schema does not have.
using ResolvedSchema = std::vector<std::optional<ColumnSchema>>;

// Reads the schema object `schema`. With `envelope`, the row schema is the
// one of the envelope's "after" (or "before") field; otherwise `schema`
// describes the row itself. `columns` maps declared column names to their
// index. kInvalidArgument/kDataLoss for a malformed schema.
// The root schema's logical name (e.g. "io.debezium.connector.common.
// Heartbeat") goes into `root_name` when it is not null.
absl::Status ResolveSchema(simdjson::ondemand::object& schema, bool envelope,
                           const absl::flat_hash_map<std::string, int>& columns,
                           ResolvedSchema& resolved, std::string* root_name = nullptr);

// A column of a row schema with its name, in the schema's order.
struct NamedColumnSchema {
  std::string field;
  ColumnSchema column;
};

// Reads every column of the row schema in `schema` (an envelope's "after"
// or "before" when `envelope`, else the row's own schema), in order. Sets
// `root_name` (the schema's logical name, e.g. "server.public.orders.
// Envelope") when it is not null.
absl::Status ReadRowSchema(simdjson::ondemand::object& schema, bool envelope,
                           std::vector<NamedColumnSchema>& columns,
                           std::string* root_name = nullptr);

}  // namespace weir::debezium::internal

#endif  // WEIR_LIB_FORMATS_DEBEZIUM_SCHEMA_H_
