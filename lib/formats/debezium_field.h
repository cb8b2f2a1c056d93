// Converting one JSON column value into what its declaration asks for
// (weir::debezium::Fields): integers with range checks, floats, booleans,
// strings, UUIDs, Debezium times, exact decimals and raw JSON.

#ifndef WEIR_LIB_FORMATS_DEBEZIUM_FIELD_H_
#define WEIR_LIB_FORMATS_DEBEZIUM_FIELD_H_

#include "absl/status/status.h"
#include "lib/formats/debezium_schema.h"
#include "simdjson.h"
#include "weir/formats/debezium.h"

namespace weir::debezium::internal {

// Converts `value` (not null) for `spec` into `out`. `column` is what the
// envelope's schema says about the column, or nullptr. The error message
// says why without naming the field (the caller adds it), e.g.
// `expected integer, got string "abc"`.
absl::Status ConvertField(const FieldSpec& spec, const ColumnSchema* column,
                          simdjson::ondemand::value& value, FieldValue& out);

// Reads an envelope's "source" block (lib/formats/debezium.cc).
absl::Status ReadSourceInfo(simdjson::ondemand::value& value, SourceInfo& source);

}  // namespace weir::debezium::internal

#endif  // WEIR_LIB_FORMATS_DEBEZIUM_FIELD_H_
