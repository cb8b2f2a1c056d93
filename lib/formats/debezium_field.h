// Converting one JSON column value into what its declaration asks for
// (weir::debezium::Fields): integers with range checks, floats, booleans,
// strings, UUIDs, Debezium times, exact decimals and raw JSON.

#ifndef WEIR_LIB_FORMATS_DEBEZIUM_FIELD_H_
#define WEIR_LIB_FORMATS_DEBEZIUM_FIELD_H_

#include <string_view>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "lib/formats/debezium_schema.h"
#include "lib/formats/decimal.h"
#include "simdjson.h"
#include "weir/formats/debezium.h"

namespace weir::debezium::internal {

// Converts `value` (not null) for `spec` into `out`. `column` is what the
// envelope's schema says about the column, or nullptr. The error message
// says why without naming the field (the caller adds it), e.g.
// `expected integer, got string "abc"`.
// Helpers the other sources of change events (lib/connectors/postgres/)
// share, so that a value converts the same from every source.
const char* TargetName(TargetKind kind);
bool IsIntegerTarget(TargetKind kind);
bool IsFloatTarget(TargetKind kind);
// Stores `value` for an integer target, checking the target's range.
absl::Status StoreInteger(absl::int128 value, TargetKind kind, FieldValue& out);
// Stores `value` for a float or double target (`shown` in errors).
absl::Status StoreFloat(double value, TargetKind kind, std::string_view shown, FieldValue& out);
// Stores an exact decimal for a Decimal() field (or a decimal column in an
// integer, float or string member): scaled into an integer, into a float
// only when exact, or as plain text (rescaled exactly to the field's scale).
absl::Status StoreDecimal(const FieldSpec& spec, weir::internal::DecimalNumber number,
                          FieldValue& out);
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, either case.
bool ParseUuid(std::string_view text, UuidBytes& bytes);

absl::Status ConvertField(const FieldSpec& spec, const ColumnSchema* column,
                          simdjson::ondemand::value& value, FieldValue& out);

// Reads an envelope's "source" block (lib/formats/debezium.cc).
absl::Status ReadSourceInfo(simdjson::ondemand::value& value, SourceInfo& source);

}  // namespace weir::debezium::internal

#endif  // WEIR_LIB_FORMATS_DEBEZIUM_FIELD_H_
