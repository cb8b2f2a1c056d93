// PostgreSQL column values in their text format (what pgoutput protocol 1
// and a text-mode SELECT send) converted into the members a
// debezium::Fields<T> declaration names, with the same results as the
// Debezium JSON path: exact decimals, ranges checked, times in the declared
// unit, UUIDs canonical, JSON as the server rendered it, arrays element by
// element. Needs the session settings TimeZone=UTC and DateStyle=ISO.

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_TEXT_VALUE_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_TEXT_VALUE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weir/formats/debezium.h"

namespace weir::postgres::internal {

// What weir converts a type as: a domain as its base type, an enum as text.
enum class PgKind : uint8_t {
  kBool,
  kInteger,
  kFloat,
  kNumeric,
  kText,
  kUuid,
  kJson,
  kTimestampTz,
  kTimestamp,
  kDate,
  kTime,
  kBytea,
  kOther,  // anything else: its text, into a std::string member only
};

struct PgType {
  PgKind kind = PgKind::kOther;
  bool is_array = false;  // then `kind` is the element's
  std::string name;       // for errors, e.g. "numeric[]"
  int size = 0;           // integers and floats: bytes (2, 4, 8)
};

// A row of pg_type, for the types that are not built in.
struct PgTypeRow {
  char typtype = 'b';  // b(ase), d(omain), e(num), c(omposite), ...
  char typcategory = 'U';
  uint32_t typbasetype = 0;
  uint32_t typelem = 0;
  std::string name;
};

// Resolves type OIDs to PgType: built-in types from a table, others through
// `lookup` (a pg_type query), cached.
class TypeResolver {
 public:
  using Lookup = std::function<absl::StatusOr<PgTypeRow>(uint32_t oid)>;
  explicit TypeResolver(Lookup lookup) : lookup_(std::move(lookup)) {}
  absl::StatusOr<PgType> Resolve(uint32_t oid);
  // Forgets the cached user types (after a Type message: a type changed).
  void Forget(uint32_t oid) { cache_.erase(oid); }

 private:
  absl::StatusOr<PgType> ResolveDepth(uint32_t oid, int depth);
  Lookup lookup_;
  absl::flat_hash_map<uint32_t, PgType> cache_;
};

// The built-in type `oid`, or nullopt.
std::optional<PgType> BuiltinType(uint32_t oid);

// Converts the text `text` of a column of type `type` for `spec` into the
// row at `row` (a T*): assigns the member (for arrays, each element). The
// error says why without naming the column (the caller adds it).
absl::Status AssignText(const debezium::internal::FieldSpec& spec, const PgType& type,
                        absl::string_view text, void* row);

// Parses a one-dimensional array literal ("{1,2,NULL,\"a b\"}") into its
// elements (nullopt for NULL).
absl::StatusOr<std::vector<std::optional<std::string>>> ParseArrayText(absl::string_view text);

// "2024-03-01 09:30:00.123456+00" (TimeZone=UTC, DateStyle=ISO) as
// microseconds since the epoch; without an offset the value is read as UTC.
absl::StatusOr<int64_t> ParseTimestampMicros(absl::string_view text);
// "2024-03-01" as days since the epoch.
absl::StatusOr<int64_t> ParseDateDays(absl::string_view text);
// "09:30:00.25" as microseconds past midnight.
absl::StatusOr<int64_t> ParseTimeMicros(absl::string_view text);

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_TEXT_VALUE_H_
