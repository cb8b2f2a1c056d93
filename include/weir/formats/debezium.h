// Debezium change events (JSON) decoded into typed C++ values.
//
// Debezium's connectors (PostgreSQL, MySQL, ...) publish one Kafka record per
// row change. Its value is an *envelope*: the operation (`op`: c = create,
// u = update, d = delete, r = read during a snapshot, t = truncate), the row
// before and after the change, where it came from (`source`: connector,
// database, schema, table, LSN, transaction id, commit time) and when
// Debezium processed it (`ts_ms`). With Kafka Connect's JsonConverter and
// `schemas.enable=true` the envelope is wrapped as {"schema": ..., "payload":
// ...}; with `schemas.enable=false` it is the bare payload. A delete is
// followed by a *tombstone*: a record whose value is null (for log
// compaction). This file decodes all of them.
//
// You declare which columns you need and the C++ member each goes into; the
// decoder maps every change event onto a weir::debezium::Change<T>. Columns
// you did not declare are ignored, so a new column never breaks a running
// job; an Optional column that is missing (e.g. dropped) keeps the member's
// default. Types follow Debezium's mapping: integers, floats, booleans and
// strings as themselves, UUIDs (io.debezium.data.Uuid) as canonical strings
// or 16 bytes, `io.debezium.time.*` values converted to epoch millis/micros,
// decimals in every `decimal.handling.mode` converted *exactly* (a value that
// the target cannot hold without rounding is an error, never a silent
// rounding), JSON/JSONB (io.debezium.data.Json) as raw JSON text, and
// nullable columns as std::optional.
//
// Example:
//
//   struct Content {
//     std::string id;                         // UUID
//     std::string slug;
//     std::optional<int32_t> length_seconds;  // NULL-able column
//     int64_t publish_ts_ms = 0;              // TIMESTAMPTZ
//   };
//
//   auto decoder = weir::debezium::Decoder<Content>::Create(
//       weir::debezium::Fields<Content>()
//           .Required("id", &Content::id, weir::debezium::Uuid())
//           .Required("slug", &Content::slug)
//           .Optional("length_seconds", &Content::length_seconds)
//           .Required("publish_ts", &Content::publish_ts_ms, weir::debezium::EpochMillis()));
//   if (!decoder.ok()) return decoder.status();        // a bad declaration
//   absl::StatusOr<weir::debezium::Change<Content>> change = decoder->Decode(kafka_value);
//   if (!change.ok()) return change.status();          // e.g. to a dead-letter topic
//   switch (change->op) {
//     case weir::debezium::Op::kCreate:
//     case weir::debezium::Op::kUpdate:
//     case weir::debezium::Op::kRead:
//       Upsert(*change->after);
//       break;
//     case weir::debezium::Op::kDelete:
//       if (change->before) Forget(change->before->id);  // key columns are always there
//       break;
//     case weir::debezium::Op::kTruncate:
//       ForgetAll();
//       break;
//     case weir::debezium::Op::kTombstone:                // Kafka log compaction marker
//       break;
//     default:  // messages, heartbeats, transaction markers (DecoderOptions)
//       break;
//   }
//
// Without a schema in the record (schemas.enable=false) decimals need their
// decimal.handling.mode declared (Decimal(2).Mode(DecimalMode::kString)):
// "1000" is valid base64 and valid decimal text, so it is never guessed.
// docs/debezium.md lists each connector setting and what weir needs for it.
//
// Errors: kDataLoss when the bytes are not valid JSON (truncated, bad UTF-8,
// trailing garbage); kInvalidArgument when the JSON is not a change event or
// does not fit the declaration (missing "op", a missing required field, a
// wrong type, a value out of range or that would lose precision). Messages
// name the field and say why, e.g.
//   after: field "duration_ms": expected integer, got string "abc"

#ifndef WEIR_FORMATS_DEBEZIUM_H_
#define WEIR_FORMATS_DEBEZIUM_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/formats/json.h"

namespace weir::debezium {

// ---------------------------------------------------------------------------
// The decoded event
// ---------------------------------------------------------------------------

// What happened to the row (Debezium's `op`), or kTombstone for the null
// value that follows a delete.
enum class Op : uint8_t {
  kCreate,     // "c": INSERT; `after` is set
  kUpdate,     // "u": UPDATE; `after` is set, `before` depends on REPLICA IDENTITY
  kDelete,     // "d": DELETE; `before` holds the row (or its key), `after` is empty
  kRead,       // "r": a row read by a snapshot; `after` is set
  kTruncate,   // "t": TRUNCATE of the whole table; neither row is set
  kTombstone,  // null/empty Kafka value after a delete; nothing is set
  // Records that are not row changes (see DecoderOptions for what happens
  // to each; by default they are decoded but not delivered by a source):
  kMessage,      // "m": pg_logical_emit_message(); `message` is set
  kHeartbeat,    // a heartbeat record ({"ts_ms": ...}); only `ts_ms` is set
  kTransaction,  // a transaction BEGIN/END record; `transaction` is set
};

// "c", "u", "d", "r", "t", "tombstone", "m", "heartbeat" or "transaction".
std::string_view OpName(Op op);

// Whether `op` is one of the row operations (c, u, d, r, t) or a tombstone,
// as opposed to a message, heartbeat or transaction record.
constexpr bool IsRowOp(Op op) {
  return op != Op::kMessage && op != Op::kHeartbeat && op != Op::kTransaction;
}

// A logical decoding message (op "m"), written with PostgreSQL's
// pg_logical_emit_message(transactional, prefix, content).
struct LogicalMessage {
  std::string prefix;
  // The content as the record carries it: with Kafka Connect's JsonConverter
  // (bytes as base64) this is base64 text; weir does not guess the encoding
  // (it depends on the connector's binary.handling.mode).
  std::string content;

  friend bool operator==(const LogicalMessage&, const LogicalMessage&) = default;
};

// A transaction metadata record (provide.transaction.metadata=true), from the
// connector's "<prefix>.transaction" topic.
struct TransactionMarker {
  enum class Status : uint8_t { kBegin, kEnd };
  Status status = Status::kBegin;
  // The transaction's id, e.g. "571:53195829" (PostgreSQL: txId:LSN).
  std::string id;
  // END only: the number of change events of the transaction, in total and
  // per table ("db.schema.table" -> count).
  std::optional<int64_t> event_count;
  std::vector<std::pair<std::string, int64_t>> data_collections;

  friend bool operator==(const TransactionMarker&, const TransactionMarker&) = default;
};

// Where a change came from (the envelope's `source` block). Fields a
// connector does not send stay empty; unknown fields are ignored.
struct SourceInfo {
  std::string version;    // Debezium version, e.g. "2.5.0.Final"
  std::string connector;  // "postgresql", "mysql", ...
  std::string name;       // the connector's topic prefix (logical server name)
  std::string db;
  std::string schema;
  std::string table;
  // "true", "false", "first", "last", "incremental" (booleans are rendered
  // as "true"/"false"), or empty when absent.
  std::string snapshot;
  // When the change was made in the database (commit time), epoch millis.
  // Usually the best event time for a change.
  int64_t ts_ms = 0;
  // PostgreSQL: the LSN of the change and its transaction id.
  std::optional<int64_t> lsn;
  std::optional<int64_t> tx_id;
  // MySQL: the binlog file and position of the event, the row's index in
  // it, the GTID of its transaction (when GTIDs are on) and the server id.
  std::string file;
  std::optional<int64_t> pos;
  std::optional<int64_t> row;
  std::string gtid;
  std::optional<int64_t> server_id;

  friend bool operator==(const SourceInfo&, const SourceInfo&) = default;
};

// Writes `source` as the `source` block of Debezium's PostgreSQL connector:
// version, connector, name, ts_ms, snapshot, db, schema, table, txId and lsn
// (null when absent). For output that Debezium's consumers read.
void WritePostgresSource(const SourceInfo& source, json::Writer& out);

// One decoded change event for a row type T.
template <class T>
struct Change {
  Op op = Op::kTombstone;
  // The row before the change: set for deletes, and for updates when the
  // table's REPLICA IDENTITY provides it. With REPLICA IDENTITY DEFAULT it
  // holds only the key columns; the other members keep their defaults (see
  // DecoderOptions::strict_before).
  std::optional<T> before;
  // The row after the change: set for creates, updates and snapshot reads.
  std::optional<T> after;
  SourceInfo source;
  // When Debezium processed the event (epoch millis), if the envelope says.
  // For a heartbeat, the heartbeat's time; for a transaction marker, the
  // transaction's commit time.
  std::optional<int64_t> ts_ms;
  // Set for Op::kMessage.
  std::optional<LogicalMessage> message;
  // Set for Op::kTransaction.
  std::optional<TransactionMarker> transaction;

  bool is_tombstone() const { return op == Op::kTombstone; }

  // The row the event is about: `after` for creates, updates and reads,
  // `before` for deletes; nullptr for truncates, tombstones and deletes
  // without a before image.
  const T* row() const {
    if (after.has_value()) return &*after;
    if (before.has_value()) return &*before;
    return nullptr;
  }

  friend bool operator==(const Change&, const Change&) = default;
};

// ---------------------------------------------------------------------------
// Declaring fields
// ---------------------------------------------------------------------------

// Debezium's temporal types, for values that are plain integers on the wire
// (their meaning comes from the schema's `name`, e.g.
// "io.debezium.time.MicroTimestamp").
enum class TimeType : uint8_t {
  kDate,            // io.debezium.time.Date: days since the epoch (int32)
  kTime,            // io.debezium.time.Time: millis past midnight (int32)
  kMicroTime,       // io.debezium.time.MicroTime: micros past midnight (int64)
  kNanoTime,        // io.debezium.time.NanoTime: nanos past midnight (int64)
  kTimestamp,       // io.debezium.time.Timestamp: epoch millis (int64)
  kMicroTimestamp,  // io.debezium.time.MicroTimestamp: epoch micros (int64)
  kNanoTimestamp,   // io.debezium.time.NanoTimestamp: epoch nanos (int64)
  kZonedTimestamp,  // io.debezium.time.ZonedTimestamp: ISO-8601 string with offset
  kZonedTime,       // io.debezium.time.ZonedTime: ISO-8601 time with offset
  // time.precision.mode=isostring (Debezium 3.x): ISO-8601 strings; without
  // an offset they are UTC, as Debezium renders columns without a time zone.
  kIsoDate,       // io.debezium.time.IsoDate: "2017-09-15Z"
  kIsoTime,       // io.debezium.time.IsoTime: "04:05:11.789Z"
  kIsoTimestamp,  // io.debezium.time.IsoTimestamp: "2017-09-15T04:05:11.789Z"
};

// The unit a time member holds.
enum class TimeUnit : uint8_t { kSeconds, kMillis, kMicros, kNanos };

// Debezium's `decimal.handling.mode`.
enum class DecimalMode : uint8_t {
  kPrecise,  // bytes: base64 of the big-endian two's-complement unscaled value
  kDouble,   // a JSON number
  kString,   // a JSON string such as "12.50"
};

// Type descriptors: the optional third argument of Fields<T>::Required and
// Optional. Without one, the member's C++ type decides (integers, float,
// double, bool, std::string).

// A UUID column (io.debezium.data.Uuid, "6f1b...-..."). Into std::string (the
// canonical lower-case form) or std::array<uint8_t, 16>.
struct Uuid {};

// A JSON/JSONB column (io.debezium.data.Json). Into std::string: the JSON
// text as the database rendered it, not re-serialized.
struct Json {};

// A temporal column into an int64_t member holding `unit` since the epoch
// (or since midnight, for time-of-day types). The wire type comes from the
// schema when the envelope has one, else from `type`. Integers need a wire
// type (a schema, or `type`): their unit cannot be seen in the number.
// Strings are ISO-8601: a date ("2017-09-15", days at midnight UTC), a time
// of day ("04:05:11.789Z") or a date-time ("2017-09-15T04:05:11Z"); the
// string must be of the kind the wire type names (a date for kDate/kIsoDate,
// a time for the time-of-day types, a date-time for the timestamps). A
// string without an offset is accepted only for the Iso* types (they are
// UTC); elsewhere its zone is unknown and it is an error. A column whose
// schema names a logical type that is not a point in time or a time of day
// (io.debezium.time.MicroDuration, Year, ...) is an error. Finer values are
// floored to `unit` (PostgreSQL keeps microseconds; an event time in millis
// drops them).
struct EpochTime {
  TimeUnit unit = TimeUnit::kMillis;
  std::optional<TimeType> type;
};
inline EpochTime EpochSeconds(std::optional<TimeType> type = std::nullopt) {
  return {TimeUnit::kSeconds, type};
}
inline EpochTime EpochMillis(std::optional<TimeType> type = std::nullopt) {
  return {TimeUnit::kMillis, type};
}
inline EpochTime EpochMicros(std::optional<TimeType> type = std::nullopt) {
  return {TimeUnit::kMicros, type};
}
inline EpochTime EpochNanos(std::optional<TimeType> type = std::nullopt) {
  return {TimeUnit::kNanos, type};
}

// A DECIMAL/NUMERIC column, decoded exactly, into:
// - an integer member holding the value in units of 10^-scale (scale 2:
//   12.34 -> 1234, "cents"); `scale` is required. A value with more
//   fractional digits than `scale` (1.005 at scale 2), or out of the
//   member's range, is an error.
// - std::string: the decimal in plain notation ("-12.50"); with a `scale`,
//   rescaled exactly to it.
// - double/float: only when the value converts without loss, i.e. the
//   target's shortest representation is the same decimal (0.1 is fine;
//   0.12345678901234567 into a double is not).
// The wire encoding comes from the schema when the envelope has one
// (org.apache.kafka.connect.data.Decimal = precise, with the schema's scale:
// base64 bytes, or a JSON number with JsonConverter's decimal.format=NUMERIC;
// float64/double = double; string = string; io.debezium.data.
// VariableScaleDecimal structs carry their own scale). A declared `mode` is
// then not consulted.
//
// Without a schema (value.converter.schemas.enable=false) the encoding
// cannot be told from the value: "1000" is valid base64 *and* valid decimal
// text, with different values. So a schemaless decimal needs `mode`; without
// one, decoding it is an error (kInvalidArgument naming the field) on the
// first record that holds it, never a guess. With a mode:
// - kPrecise: base64 strings (at `scale`, required), VariableScaleDecimal
//   objects, and JSON numbers (decimal.format=NUMERIC);
// - kString: decimal strings;
// - kDouble: JSON numbers.
// Numbers are always read exactly from their text, never through a double.
// Debezium's non-finite values ("NaN", "Infinity", "-Infinity", and in string
// mode "NAN", "POSITIVE_INFINITY", "NEGATIVE_INFINITY") decode into double
// and float members; into an integer or string member they are an error.
struct Decimal {
  Decimal() = default;
  explicit Decimal(int32_t scale_in, std::optional<DecimalMode> mode_in = std::nullopt)
      : scale(scale_in), mode(mode_in) {}
  Decimal& Mode(DecimalMode mode_in) {
    mode = mode_in;
    return *this;
  }
  std::optional<int32_t> scale;
  std::optional<DecimalMode> mode;
};

namespace internal {

// Users never name anything in this namespace.

struct Auto {};
using UuidBytes = std::array<uint8_t, 16>;

enum class TargetKind : uint8_t {
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kFloat,
  kDouble,
  kBool,
  kString,
  kUuidBytes,
};

enum class Semantic : uint8_t { kAuto, kUuid, kJson, kTime, kDecimal };

// One converted value on its way into a member; which field is meaningful
// depends on the TargetKind.
struct FieldValue {
  int64_t int_value = 0;    // signed integers and time members
  uint64_t uint_value = 0;  // unsigned integers
  double double_value = 0;  // float and double
  bool bool_value = false;
  std::string string_value;
  UuidBytes uuid_bytes{};
};

// One declared field, type-erased.
struct FieldSpec {
  std::string name;
  bool required = false;
  TargetKind target = TargetKind::kInt64;
  Semantic semantic = Semantic::kAuto;
  EpochTime time;
  Decimal decimal;
  // Moves the converted value into the member of the row at `row` (a T*).
  std::function<void(void* row, FieldValue& value)> assign;
  // Called for an explicit null in an Optional field: resets a
  // std::optional member (other members keep their default).
  std::function<void(void* row)> clear;
  // std::vector members (Debezium's `array` columns): `target` and the
  // descriptor apply to each element, `assign` appends one, `begin_array`
  // empties (or, in a std::optional, creates) the vector and `append_null`
  // appends std::nullopt to a vector of std::optional elements.
  bool is_array = false;
  bool nullable_elements = false;
  std::function<void(void* row)> begin_array;
  std::function<void(void* row)> append_null;
};

template <class M>
struct MemberTraits {
  using Value = M;
  static constexpr bool kIsOptional = false;
};
template <class V>
struct MemberTraits<std::optional<V>> {
  using Value = V;
  static constexpr bool kIsOptional = true;
};

template <class M>
struct ArrayTraits {
  static constexpr bool kIsArray = false;
  static constexpr bool kNullableElements = false;
  using Element = M;
};
template <class E>
struct ArrayTraits<std::vector<E>> {
  static constexpr bool kIsArray = true;
  static constexpr bool kNullableElements = MemberTraits<E>::kIsOptional;
  using Element = typename MemberTraits<E>::Value;
};

template <class V>
inline constexpr bool kIsInteger =
    std::is_integral_v<V> && !std::is_same_v<V, bool> && !std::is_same_v<V, char> &&
    !std::is_same_v<V, wchar_t> && !std::is_same_v<V, char8_t> && !std::is_same_v<V, char16_t> &&
    !std::is_same_v<V, char32_t>;
template <class V>
inline constexpr bool kIsFloat = std::is_same_v<V, float> || std::is_same_v<V, double>;

template <class V>
constexpr TargetKind TargetKindOf() {
  if constexpr (kIsInteger<V>) {
    constexpr bool kSigned = std::is_signed_v<V>;
    if constexpr (sizeof(V) == 1) return kSigned ? TargetKind::kInt8 : TargetKind::kUInt8;
    if constexpr (sizeof(V) == 2) return kSigned ? TargetKind::kInt16 : TargetKind::kUInt16;
    if constexpr (sizeof(V) == 4) return kSigned ? TargetKind::kInt32 : TargetKind::kUInt32;
    if constexpr (sizeof(V) == 8) return kSigned ? TargetKind::kInt64 : TargetKind::kUInt64;
  } else if constexpr (std::is_same_v<V, float>) {
    return TargetKind::kFloat;
  } else if constexpr (std::is_same_v<V, double>) {
    return TargetKind::kDouble;
  } else if constexpr (std::is_same_v<V, bool>) {
    return TargetKind::kBool;
  } else if constexpr (std::is_same_v<V, std::string>) {
    return TargetKind::kString;
  } else if constexpr (std::is_same_v<V, UuidBytes>) {
    return TargetKind::kUuidBytes;
  }
  return TargetKind::kInt64;
}

template <class V>
V TakeValue(FieldValue& value) {
  if constexpr (kIsInteger<V> && std::is_signed_v<V>) {
    return static_cast<V>(value.int_value);
  } else if constexpr (kIsInteger<V>) {
    return static_cast<V>(value.uint_value);
  } else if constexpr (kIsFloat<V>) {
    return static_cast<V>(value.double_value);
  } else if constexpr (std::is_same_v<V, bool>) {
    return value.bool_value;
  } else if constexpr (std::is_same_v<V, std::string>) {
    return std::move(value.string_value);
  } else {
    return value.uuid_bytes;
  }
}

template <class V>
inline constexpr bool kAutoMember = (kIsInteger<V> && sizeof(V) <= 8) || kIsFloat<V> ||
                                    std::is_same_v<V, bool> || std::is_same_v<V, std::string>;

// Checks a member type against a descriptor at compile time, listing what
// the descriptor accepts.
template <class V, class Type>
constexpr void CheckMember() {
  if constexpr (std::is_same_v<Type, Auto>) {
    static_assert(kAutoMember<V>,
                  "weir::debezium::Fields: without a type descriptor the member must be an "
                  "integer (int8_t..int64_t, uint8_t..uint64_t), float, double, bool, "
                  "std::string, or std::optional of one, or a std::vector of those (array "
                  "columns); for UUIDs, times, decimals and JSON pass Uuid(), "
                  "EpochMillis()/EpochMicros(), Decimal(scale) or Json()");
  } else if constexpr (std::is_same_v<Type, Uuid>) {
    static_assert(std::is_same_v<V, std::string> || std::is_same_v<V, UuidBytes>,
                  "weir::debezium::Uuid(): the member must be std::string, "
                  "std::array<uint8_t, 16>, or std::optional of one");
  } else if constexpr (std::is_same_v<Type, Json>) {
    static_assert(std::is_same_v<V, std::string>,
                  "weir::debezium::Json(): the member must be std::string or "
                  "std::optional<std::string>");
  } else if constexpr (std::is_same_v<Type, EpochTime>) {
    static_assert(kIsInteger<V> && std::is_signed_v<V> && sizeof(V) == 8,
                  "weir::debezium::EpochMillis()/EpochMicros()/...: the member must be int64_t "
                  "or std::optional<int64_t>");
  } else if constexpr (std::is_same_v<Type, Decimal>) {
    static_assert(
        (kIsInteger<V> && sizeof(V) <= 8) || kIsFloat<V> || std::is_same_v<V, std::string>,
        "weir::debezium::Decimal(): the member must be an integer (scaled units), "
        "double, float, std::string, or std::optional of one");
  } else {
    static_assert(!sizeof(Type),
                  "weir::debezium::Fields: the type descriptor must be one of Uuid(), Json(), "
                  "EpochSeconds()/EpochMillis()/EpochMicros()/EpochNanos(), Decimal(...)");
  }
}

// The part of the decoder that parses JSON (lib/formats/); opaque here so
// that no simdjson type appears in the public headers.
class DecoderCore;
struct DecoderCoreDeleter {
  void operator()(DecoderCore* core) const;
};
using DecoderCorePtr = std::unique_ptr<DecoderCore, DecoderCoreDeleter>;

}  // namespace internal

// The declarative field list for a row type T: column name -> member, with
// an optional type descriptor. T must be default-constructible; members not
// set by the event keep the value T{} gives them.
//
//   Fields<Event>()
//       .Required("id", &Event::id)
//       .Required("content_id", &Event::content_id, Uuid())
//       .Required("event_ts", &Event::event_ts_ms, EpochMillis())
//       .Optional("duration_ms", &Event::duration_ms)        // std::optional<int32_t>
//       .Optional("raw_payload", &Event::raw_payload, Json());
template <class T>
class Fields {
 public:
  // A column the row must have, with a non-null value. (In `before` images
  // this is relaxed unless DecoderOptions::strict_before is set.)
  template <class M, class Type = internal::Auto>
  Fields& Required(std::string name, M T::*member, Type type = Type()) & {
    Add(true, std::move(name), member, std::move(type));
    return *this;
  }
  template <class M, class Type = internal::Auto>
  Fields&& Required(std::string name, M T::*member, Type type = Type()) && {
    Add(true, std::move(name), member, std::move(type));
    return std::move(*this);
  }

  // A column that may be missing (e.g. not yet added, or dropped) or null:
  // then the member keeps its default (std::nullopt for std::optional).
  template <class M, class Type = internal::Auto>
  Fields& Optional(std::string name, M T::*member, Type type = Type()) & {
    Add(false, std::move(name), member, std::move(type));
    return *this;
  }
  template <class M, class Type = internal::Auto>
  Fields&& Optional(std::string name, M T::*member, Type type = Type()) && {
    Add(false, std::move(name), member, std::move(type));
    return std::move(*this);
  }

  const std::vector<internal::FieldSpec>& specs() const { return specs_; }

 private:
  template <class M, class Type>
  void Add(bool required, std::string name, M T::*member, [[maybe_unused]] Type type) {
    using Traits = internal::MemberTraits<M>;
    using Array = internal::ArrayTraits<typename Traits::Value>;
    // The type one JSON value goes into: the member's, or its elements'.
    using V = typename Array::Element;
    internal::CheckMember<V, Type>();
    internal::FieldSpec spec;
    spec.name = std::move(name);
    spec.required = required;
    spec.target = internal::TargetKindOf<V>();
    if constexpr (std::is_same_v<Type, Uuid>) {
      spec.semantic = internal::Semantic::kUuid;
    } else if constexpr (std::is_same_v<Type, Json>) {
      spec.semantic = internal::Semantic::kJson;
    } else if constexpr (std::is_same_v<Type, EpochTime>) {
      spec.semantic = internal::Semantic::kTime;
      spec.time = type;
    } else if constexpr (std::is_same_v<Type, Decimal>) {
      spec.semantic = internal::Semantic::kDecimal;
      spec.decimal = type;
    }
    if constexpr (Array::kIsArray) {
      // The vector inside the member (which may be a std::optional).
      static constexpr auto kVector = [](void* row, M T::*m) -> auto& {
        if constexpr (Traits::kIsOptional) {
          return *(static_cast<T*>(row)->*m);
        } else {
          return static_cast<T*>(row)->*m;
        }
      };
      spec.is_array = true;
      spec.nullable_elements = Array::kNullableElements;
      spec.begin_array = [member](void* row) {
        if constexpr (Traits::kIsOptional) {
          (static_cast<T*>(row)->*member).emplace();
        } else {
          (static_cast<T*>(row)->*member).clear();
        }
      };
      spec.assign = [member](void* row, internal::FieldValue& value) {
        kVector(row, member).push_back(internal::TakeValue<V>(value));
      };
      if constexpr (Array::kNullableElements) {
        spec.append_null = [member](void* row) { kVector(row, member).emplace_back(std::nullopt); };
      } else {
        spec.append_null = [](void*) {};
      }
    } else {
      spec.assign = [member](void* row, internal::FieldValue& value) {
        static_cast<T*>(row)->*member = internal::TakeValue<V>(value);
      };
    }
    if constexpr (Traits::kIsOptional) {
      spec.clear = [member](void* row) { (static_cast<T*>(row)->*member).reset(); };
    } else {
      spec.clear = [](void*) {};
    }
    specs_.push_back(std::move(spec));
  }

  std::vector<internal::FieldSpec> specs_;
};

// What happens to a record that is not a row change (DecoderOptions).
enum class NonRowPolicy : uint8_t {
  // Decode() returns it (op kMessage, kHeartbeat or kTransaction), and
  // Decoder::Skips() says true for it: sources (kafka::DebeziumDeserializer)
  // drop it and count it (KafkaSourceStats::skipped).
  kSkip,
  // Decode() fails with kInvalidArgument saying what the record is, so a
  // source sends it to its dead-letter queue (or fails, per its ErrorPolicy).
  kDeadLetter,
  // Decode() returns it and sources deliver it like a row change.
  kDeliver,
};

// How a Decoder treats what the declaration does not settle.
struct DecoderOptions {
  // Whether Required fields must be present (and non-null) in `before`
  // images too. PostgreSQL sends only the key columns in `before` unless the
  // table has REPLICA IDENTITY FULL, so by default missing or null required
  // columns in `before` keep their defaults. Type errors are errors either
  // way.
  // Default: false
  bool strict_before = false;

  // What Debezium's PostgreSQL connector sends instead of an unchanged
  // TOASTed column it could not read (its `unavailable.value.placeholder`;
  // binary columns get the placeholder's bytes, i.e. base64 in JSON). A
  // declared field holding it is an error naming the field rather than a
  // bogus value; REPLICA IDENTITY FULL on the table makes the connector
  // send the real value. Empty: no check.
  // Default: "__debezium_unavailable_value"
  std::string unavailable_value_placeholder = "__debezium_unavailable_value";

  // What the decoder does with records that are not row changes, which
  // Debezium writes to their own topics by default but which a topic
  // subscription or a routing transform can interleave with row changes:
  // - logical decoding messages (op "m", pg_logical_emit_message()),
  // - heartbeats (heartbeat.interval.ms; a payload of only "ts_ms"),
  // - transaction metadata (provide.transaction.metadata; BEGIN/END records
  //   with "status" and "id").
  // Default: NonRowPolicy::kSkip for each
  NonRowPolicy messages = NonRowPolicy::kSkip;
  NonRowPolicy heartbeats = NonRowPolicy::kSkip;
  NonRowPolicy transactions = NonRowPolicy::kSkip;
};

namespace internal {

// What Decoder<T>::Decode learns besides the rows.
struct ChangeHeader {
  Op op = Op::kTombstone;
  bool has_before = false;
  bool has_after = false;
  std::optional<int64_t> ts_ms;
  std::optional<LogicalMessage> message;
  std::optional<TransactionMarker> transaction;
};

absl::StatusOr<DecoderCorePtr> NewDecoderCore(const std::vector<FieldSpec>& specs,
                                              const DecoderOptions& options);
// `before` and `after` point at default-constructed rows.
absl::Status DecodeChangeInto(DecoderCore& core, std::string_view json, void* before, void* after,
                              ChangeHeader& header, SourceInfo& source);
absl::Status DecodeRowInto(DecoderCore& core, std::string_view json, void* row, bool& is_null);
bool Skips(const DecoderCore& core, Op op);

}  // namespace internal

// Decodes Debezium JSON change events into Change<T>.
//
// Thread-safety: not thread-safe (it reuses a parser and remembers the last
// schema it saw); use one per source reader / worker. Movable.
template <class T>
class Decoder {
 public:
  static_assert(std::is_default_constructible_v<T>,
                "weir::debezium::Decoder<T>: T must be default-constructible");

  // kInvalidArgument for a declaration that cannot work: an empty or
  // duplicate column name, or Decimal() into an integer member without a
  // scale.
  static absl::StatusOr<Decoder> Create(const Fields<T>& fields, DecoderOptions options = {}) {
    absl::StatusOr<internal::DecoderCorePtr> core =
        internal::NewDecoderCore(fields.specs(), options);
    if (!core.ok()) return core.status();
    return Decoder(*std::move(core));
  }

  // Decodes one Kafka record value: an envelope with or without the
  // schema/payload wrapper. Empty input, `null`, or a null payload is a
  // tombstone (op == Op::kTombstone), not an error.
  absl::StatusOr<Change<T>> Decode(std::string_view json) {
    // Decoded in place: one object returned on every path, so no copy or
    // move of the change is made on the way out.
    absl::StatusOr<Change<T>> result(absl::in_place);
    if (absl::Status status = DecodeInto(json, *result); !status.ok()) result = std::move(status);
    return result;
  }

  // Decode into `change`, which must be default-constructed (as in a
  // batch's new slot); on an error its contents are unspecified.
  absl::Status DecodeInto(std::string_view json, Change<T>& change) {
    change.before.emplace();
    change.after.emplace();
    internal::ChangeHeader header;
    absl::Status status = internal::DecodeChangeInto(*core_, json, &*change.before, &*change.after,
                                                     header, change.source);
    if (!status.ok()) return status;
    change.op = header.op;
    change.ts_ms = header.ts_ms;
    change.message = std::move(header.message);
    change.transaction = std::move(header.transaction);
    if (!header.has_before) change.before.reset();
    if (!header.has_after) change.after.reset();
    return absl::OkStatus();
  }

  // Whether `change` is a record DecoderOptions says to skip (a message,
  // heartbeat or transaction marker whose policy is NonRowPolicy::kSkip).
  bool Skips(const Change<T>& change) const { return internal::Skips(*core_, change.op); }

  // Decodes a bare row (with or without the schema/payload wrapper): a Kafka
  // record key such as {"id": "..."}, or a value flattened by Debezium's
  // ExtractNewRecordState transform. std::nullopt for empty input or null.
  absl::StatusOr<std::optional<T>> DecodeRow(std::string_view json) {
    std::optional<T> row(std::in_place);
    bool is_null = false;
    absl::Status status = internal::DecodeRowInto(*core_, json, &*row, is_null);
    if (!status.ok()) return status;
    if (is_null) row.reset();
    return row;
  }

 private:
  explicit Decoder(internal::DecoderCorePtr core) : core_(std::move(core)) {}

  internal::DecoderCorePtr core_;
};

}  // namespace weir::debezium

#endif  // WEIR_FORMATS_DEBEZIUM_H_
