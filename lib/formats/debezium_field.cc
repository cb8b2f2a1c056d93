#include "lib/formats/debezium_field.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "lib/common/status.h"
#include "lib/formats/debezium_schema.h"
#include "lib/formats/debezium_time.h"
#include "lib/formats/decimal.h"
#include "lib/formats/json_reader.h"
#include "lib/formats/str_cat.h"
#include "simdjson.h"
#include "weir/formats/debezium.h"

namespace weir::debezium::internal {
namespace {

using weir::internal::Cat;

namespace ondemand = simdjson::ondemand;
using weir::internal::DecimalNumber;
using weir::internal::Describe;
using weir::internal::FieldKey;
using weir::internal::JsonError;
using weir::internal::NumberText;
using weir::internal::QuoteForError;
using weir::internal::ReadInt64;
using weir::internal::ReadInteger;
using weir::internal::ReadString;
using weir::internal::SkipValue;
using weir::internal::TypeOf;
using weir::internal::Unexpected;

constexpr std::string_view kDecimalName = "org.apache.kafka.connect.data.Decimal";
constexpr std::string_view kVariableScaleDecimalName = "io.debezium.data.VariableScaleDecimal";

// Values of columns nest at most this deep below the row.
constexpr int kColumnDepth = 3;

}  // namespace

const char* TargetName(TargetKind kind) {
  switch (kind) {
    case TargetKind::kInt8:
      return "int8";
    case TargetKind::kInt16:
      return "int16";
    case TargetKind::kInt32:
      return "int32";
    case TargetKind::kInt64:
      return "int64";
    case TargetKind::kUInt8:
      return "uint8";
    case TargetKind::kUInt16:
      return "uint16";
    case TargetKind::kUInt32:
      return "uint32";
    case TargetKind::kUInt64:
      return "uint64";
    case TargetKind::kFloat:
      return "float";
    case TargetKind::kDouble:
      return "double";
    case TargetKind::kBool:
      return "bool";
    case TargetKind::kString:
      return "string";
    case TargetKind::kUuidBytes:
      return "uuid bytes";
  }
  return "?";
}

bool IsIntegerTarget(TargetKind kind) {
  switch (kind) {
    case TargetKind::kInt8:
    case TargetKind::kInt16:
    case TargetKind::kInt32:
    case TargetKind::kInt64:
    case TargetKind::kUInt8:
    case TargetKind::kUInt16:
    case TargetKind::kUInt32:
    case TargetKind::kUInt64:
      return true;
    default:
      return false;
  }
}

bool IsFloatTarget(TargetKind kind) {
  return kind == TargetKind::kFloat || kind == TargetKind::kDouble;
}

namespace {

std::string Int128ToString(absl::int128 value) {
  if (value == 0) return "0";
  const bool negative = value < 0;
  absl::uint128 magnitude = negative ? -absl::uint128(value) : absl::uint128(value);
  std::string digits;
  while (magnitude != 0) {
    digits.push_back(static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  }
  if (negative) digits.push_back('-');
  return std::string(digits.rbegin(), digits.rend());
}

template <class I>
bool InRange(absl::int128 value) {
  return value >= absl::int128(std::numeric_limits<I>::min()) &&
         value <= absl::int128(std::numeric_limits<I>::max());
}

}  // namespace

// Stores `value` for an integer target, checking the target's range.
absl::Status StoreInteger(absl::int128 value, TargetKind kind, FieldValue& out) {
  bool fits = false;
  switch (kind) {
    case TargetKind::kInt8:
      fits = InRange<int8_t>(value);
      break;
    case TargetKind::kInt16:
      fits = InRange<int16_t>(value);
      break;
    case TargetKind::kInt32:
      fits = InRange<int32_t>(value);
      break;
    case TargetKind::kInt64:
      fits = InRange<int64_t>(value);
      break;
    case TargetKind::kUInt8:
      fits = InRange<uint8_t>(value);
      break;
    case TargetKind::kUInt16:
      fits = InRange<uint16_t>(value);
      break;
    case TargetKind::kUInt32:
      fits = InRange<uint32_t>(value);
      break;
    case TargetKind::kUInt64:
      fits = InRange<uint64_t>(value);
      break;
    default:
      return absl::InternalError("not an integer target");
  }
  if (!fits) {
    return absl::InvalidArgumentError(
        Cat(Int128ToString(value), " out of range for ", TargetName(kind)));
  }
  if (kind == TargetKind::kUInt8 || kind == TargetKind::kUInt16 || kind == TargetKind::kUInt32 ||
      kind == TargetKind::kUInt64) {
    out.uint_value = static_cast<uint64_t>(value);
  } else {
    out.int_value = static_cast<int64_t>(value);
  }
  return absl::OkStatus();
}

namespace {

// The non-finite values Kafka Connect's JsonConverter writes as strings for
// doubles, and those Debezium writes for NUMERIC NaN and infinities with
// decimal.handling.mode=string.
std::optional<double> NonFinite(std::string_view text) {
  if (text == "NaN" || text == "NAN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "Infinity" || text == "POSITIVE_INFINITY") {
    return std::numeric_limits<double>::infinity();
  }
  if (text == "-Infinity" || text == "NEGATIVE_INFINITY") {
    return -std::numeric_limits<double>::infinity();
  }
  return std::nullopt;
}

}  // namespace

absl::Status StoreFloat(double value, TargetKind kind, std::string_view shown, FieldValue& out) {
  if (kind == TargetKind::kFloat && std::isfinite(value) &&
      std::fabs(value) > static_cast<double>(std::numeric_limits<float>::max())) {
    return absl::InvalidArgumentError(Cat(shown, " out of range for float"));
  }
  out.double_value = value;
  return absl::OkStatus();
}

namespace {

absl::Status ConvertFloat(TargetKind kind, ondemand::value& value, FieldValue& out) {
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  if (*type == ondemand::json_type::string) {
    std::string_view text;
    if (auto error = value.get_string().get(text)) return JsonError(error);
    if (std::optional<double> special = NonFinite(text)) {
      out.double_value = *special;
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(Cat("expected number, got string ", QuoteForError(text)));
  }
  if (*type != ondemand::json_type::number) return Unexpected("number", value);
  absl::StatusOr<std::string_view> text = NumberText(value);
  if (!text.ok()) return text.status();
  double parsed = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), parsed);
  if (error == std::errc::result_out_of_range) {
    return absl::InvalidArgumentError(
        Cat("number ", QuoteForError(*text), " out of range for ", TargetName(kind)));
  }
  if (error != std::errc() || end != text->data() + text->size()) {
    return absl::DataLossError(Cat("malformed number ", QuoteForError(*text)));
  }
  return StoreFloat(parsed, kind, *text, out);
}

absl::Status ConvertAuto(TargetKind kind, ondemand::value& value, FieldValue& out) {
  if (IsIntegerTarget(kind)) {
    if (int64_t fast = 0; weir::internal::ReadShortInteger(value, fast)) {
      return StoreInteger(fast, kind, out);
    }
    absl::StatusOr<absl::int128> integer = ReadInteger(value);
    if (!integer.ok()) return integer.status();
    return StoreInteger(*integer, kind, out);
  }
  if (IsFloatTarget(kind)) return ConvertFloat(kind, value, out);
  if (kind == TargetKind::kBool) {
    absl::StatusOr<ondemand::json_type> type = TypeOf(value);
    if (!type.ok()) return type.status();
    if (*type != ondemand::json_type::boolean) return Unexpected("boolean", value);
    if (auto error = value.get_bool().get(out.bool_value)) return JsonError(error);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string_view> text = ReadString(value);
  if (!text.ok()) return text.status();
  out.string_value.assign(*text);
  return absl::OkStatus();
}

}  // namespace

namespace {

// A hex digit's value (either case), 0xff for any other byte.
constexpr std::array<uint8_t, 256> kHexValues = [] {
  std::array<uint8_t, 256> table{};
  table.fill(0xff);
  for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[c] = static_cast<uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[c] = static_cast<uint8_t>(c - 'A' + 10);
  return table;
}();

// Where each byte's two digits start in xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
constexpr std::array<uint8_t, 16> kUuidDigits = {0,  2,  4,  6,  9,  11, 14, 16,
                                                 19, 21, 24, 26, 28, 30, 32, 34};

}  // namespace

// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, either case. Two UUIDs per
// engagement event: a table lookup per digit and no early exit keep this
// free of unpredictable branches.
bool ParseUuid(std::string_view text, UuidBytes& bytes) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-') {
    return false;
  }
  const auto* digits = reinterpret_cast<const unsigned char*>(text.data());
  uint8_t invalid = 0;
  for (size_t idx = 0; idx < bytes.size(); ++idx) {
    const uint8_t high = kHexValues[digits[kUuidDigits[idx]]];
    const uint8_t low = kHexValues[digits[kUuidDigits[idx] + 1]];
    invalid |= static_cast<uint8_t>(high | low);
    bytes[idx] = static_cast<uint8_t>((high << 4) | (low & 0xf));
  }
  return (invalid & 0xf0) == 0;
}

namespace {

absl::Status ConvertUuid(TargetKind kind, ondemand::value& value, FieldValue& out) {
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  if (*type != ondemand::json_type::string) return Unexpected("UUID string", value);
  std::string_view text;
  if (auto error = value.get_string().get(text)) return JsonError(error);
  if (!ParseUuid(text, out.uuid_bytes)) {
    return absl::InvalidArgumentError(Cat(QuoteForError(text), " is not a UUID"));
  }
  if (kind == TargetKind::kString) {
    // The canonical (lower-case) text, written in place.
    static constexpr char kHex[] = "0123456789abcdef";
    out.string_value.resize(36);
    char* canonical = out.string_value.data();
    for (size_t idx = 0; idx < out.uuid_bytes.size(); ++idx) {
      if (idx == 4 || idx == 6 || idx == 8 || idx == 10) *canonical++ = '-';
      *canonical++ = kHex[out.uuid_bytes[idx] >> 4];
      *canonical++ = kHex[out.uuid_bytes[idx] & 0xf];
    }
  }
  return absl::OkStatus();
}

std::string_view TrimTrailingSpace(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                           text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// io.debezium.data.Json is a string holding JSON text. A JSON value that is
// not a string (a converter that embeds it) is kept as its raw text.
absl::Status ConvertJson(ondemand::value& value, FieldValue& out) {
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  if (*type == ondemand::json_type::string) {
    std::string_view text;
    if (auto error = value.get_string().get(text)) return JsonError(error);
    out.string_value.assign(text);
    return absl::OkStatus();
  }
  const std::string_view token = value.raw_json_token();
  if (absl::Status status = SkipValue(value, kColumnDepth); !status.ok()) return status;
  if (*type != ondemand::json_type::object && *type != ondemand::json_type::array) {
    out.string_value.assign(TrimTrailingSpace(token));
    return absl::OkStatus();
  }
  // A container ends where the next token starts.
  const char* end = nullptr;
  if (auto error = value.current_location().get(end)) return JsonError(error);
  out.string_value.assign(TrimTrailingSpace(std::string_view(token.data(), end - token.data())));
  return absl::OkStatus();
}

const char* KindName(TimeKind kind) {
  switch (kind) {
    case TimeKind::kDate:
      return "a date";
    case TimeKind::kTimeOfDay:
      return "a time of day";
    case TimeKind::kTimestamp:
      return "a date-time";
  }
  return "?";
}

absl::Status ConvertTime(const FieldSpec& spec, const ColumnSchema* column, ondemand::value& value,
                         FieldValue& out) {
  std::optional<TimeType> wire = spec.time.type;
  if (column != nullptr && !column->name.empty()) {
    std::optional<TimeType> named = TimeTypeFromSchemaName(column->name);
    if (!named.has_value()) {
      // A duration (MicroDuration, Interval) or a year is no point in time:
      // reading its number as one would give a wrong value.
      return absl::InvalidArgumentError(
          Cat("the column's logical type ", column->name, " is not a date, time or timestamp"));
    }
    wire = named;
  }
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  absl::StatusOr<int64_t> converted;
  if (*type == ondemand::json_type::string && (!wire.has_value() || IsStringTime(*wire))) {
    std::string_view text;
    if (auto error = value.get_string().get(text)) return JsonError(error);
    const TimeKind kind = KindOfText(text);
    if (wire.has_value() && KindOf(*wire) != kind) {
      return absl::InvalidArgumentError(Cat("expected ", KindName(KindOf(*wire)), ", got ",
                                            KindName(kind), " ", QuoteForError(text)));
    }
    // Iso* values of columns without a time zone are UTC; any other string
    // without an offset has an unknown zone.
    const bool iso =
        wire.has_value() && (*wire == TimeType::kIsoDate || *wire == TimeType::kIsoTime ||
                             *wire == TimeType::kIsoTimestamp);
    switch (kind) {
      case TimeKind::kDate:
        converted = ParseIsoDate(text, spec.time.unit);
        break;
      case TimeKind::kTimeOfDay:
        converted = ParseZonedTime(text, spec.time.unit, iso);
        break;
      case TimeKind::kTimestamp:
        converted = ParseZonedTimestamp(text, spec.time.unit, iso);
        break;
    }
  } else if (*type == ondemand::json_type::number && wire.has_value() && !IsStringTime(*wire)) {
    absl::StatusOr<int64_t> integer = ReadInt64(value);
    if (!integer.ok()) return integer.status();
    converted = ConvertIntegerTime(*integer, *wire, spec.time.unit);
  } else if (*type == ondemand::json_type::number && !wire.has_value()) {
    return absl::InvalidArgumentError(Cat("an integer time (", Describe(value),
                                          ") without a schema: declare its Debezium type, e.g. "
                                          "EpochMicros(TimeType::kMicroTimestamp)"));
  } else {
    return Unexpected(wire.has_value() && IsStringTime(*wire) ? "ISO-8601 string" : "integer",
                      value);
  }
  if (!converted.ok()) return converted.status();
  out.int_value = *converted;
  return absl::OkStatus();
}

absl::StatusOr<DecimalNumber> DecodeBase64Decimal(std::string_view text, int64_t scale) {
  std::string bytes;
  if (!absl::Base64Unescape(weir::internal::ToAbsl(text), &bytes)) {
    return absl::InvalidArgumentError(
        Cat("precise decimal ", QuoteForError(text), " is not base64"));
  }
  return weir::internal::DecimalFromUnscaledBytes(bytes, scale);
}

// io.debezium.data.VariableScaleDecimal: {"scale": 2, "value": "<base64>"}.
absl::StatusOr<DecimalNumber> ReadVariableScaleDecimal(ondemand::value& value) {
  ondemand::object object;
  if (value.get_object().get(object)) return Unexpected("VariableScaleDecimal object", value);
  std::optional<int64_t> scale;
  std::optional<std::string> base64;
  for (auto field_result : object) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    if (key == "scale") {
      absl::StatusOr<int64_t> read = ReadInt64(field.value());
      if (!read.ok()) {
        return weir::internal::Annotate(read.status(), "\"scale\"");
      }
      scale = *read;
    } else if (key == "value") {
      absl::StatusOr<std::string_view> read = ReadString(field.value());
      if (!read.ok()) {
        return weir::internal::Annotate(read.status(), "\"value\"");
      }
      base64.emplace(*read);
    } else if (absl::Status status = SkipValue(field.value(), kColumnDepth); !status.ok()) {
      return status;
    }
  }
  if (!scale.has_value() || !base64.has_value()) {
    return absl::InvalidArgumentError("VariableScaleDecimal needs both \"scale\" and \"value\"");
  }
  return DecodeBase64Decimal(*base64, *scale);
}

enum class DecimalEncoding { kUnknown, kBytes, kNumber, kText, kVariableScale };

const char* ModeName(DecimalMode mode) {
  switch (mode) {
    case DecimalMode::kPrecise:
      return "kPrecise";
    case DecimalMode::kDouble:
      return "kDouble";
    case DecimalMode::kString:
      return "kString";
  }
  return "?";
}

// The encoding a schemaless value has under the declared mode, which
// fixes the JSON type each mode may send.
absl::StatusOr<DecimalEncoding> SchemalessEncoding(const FieldSpec& spec, ondemand::json_type type,
                                                   ondemand::value& value) {
  if (!spec.decimal.mode.has_value()) {
    return absl::InvalidArgumentError(Cat(
        "a decimal without a schema (", Describe(value),
        ") is ambiguous: \"1000\" is both base64 and decimal text; declare the connector's "
        "decimal.handling.mode: Decimal(...).Mode(DecimalMode::kPrecise) for base64 bytes or "
        "Decimal(...).Mode(DecimalMode::kString) for decimal strings (or kDouble for numbers)"));
  }
  const DecimalMode mode = *spec.decimal.mode;
  switch (mode) {
    case DecimalMode::kPrecise:
      if (type == ondemand::json_type::string) return DecimalEncoding::kBytes;
      if (type == ondemand::json_type::object) return DecimalEncoding::kVariableScale;
      if (type == ondemand::json_type::number) return DecimalEncoding::kNumber;  // NUMERIC format
      break;
    case DecimalMode::kString:
      if (type == ondemand::json_type::string) return DecimalEncoding::kText;
      break;
    case DecimalMode::kDouble:
      // JsonConverter writes non-finite doubles as strings.
      if (type == ondemand::json_type::number || type == ondemand::json_type::string) {
        return DecimalEncoding::kNumber;
      }
      break;
  }
  return absl::InvalidArgumentError(Cat("a decimal declared Mode(DecimalMode::", ModeName(mode),
                                        ") cannot be ", Describe(value)));
}

absl::Status ConvertDecimal(const FieldSpec& spec, const ColumnSchema* column,
                            ondemand::value& value, FieldValue& out) {
  DecimalEncoding encoding = DecimalEncoding::kUnknown;
  std::optional<int64_t> bytes_scale = spec.decimal.scale;
  if (column != nullptr) {
    if (column->name == kDecimalName) {
      encoding = DecimalEncoding::kBytes;
      if (column->scale.has_value()) bytes_scale = column->scale;
    } else if (column->name == kVariableScaleDecimalName) {
      encoding = DecimalEncoding::kVariableScale;
    } else if (column->type == "string") {
      encoding = DecimalEncoding::kText;
    } else if (column->type == "float64" || column->type == "float32" ||
               column->type.starts_with("int")) {
      encoding = DecimalEncoding::kNumber;
    } else {
      return absl::InvalidArgumentError(
          Cat("a decimal cannot be read from a column of schema type \"", column->type, "\"",
              column->name.empty() ? "" : Cat(" (", column->name, ")")));
    }
  }
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  if (encoding == DecimalEncoding::kUnknown) {
    absl::StatusOr<DecimalEncoding> schemaless = SchemalessEncoding(spec, *type, value);
    if (!schemaless.ok()) return schemaless.status();
    encoding = *schemaless;
  }
  // JsonConverter's decimal.format=NUMERIC sends a Decimal as a JSON number.
  if (encoding == DecimalEncoding::kBytes && *type == ondemand::json_type::number) {
    encoding = DecimalEncoding::kNumber;
  }

  absl::StatusOr<DecimalNumber> number;
  switch (encoding) {
    case DecimalEncoding::kBytes: {
      if (*type != ondemand::json_type::string) {
        return Unexpected("base64 decimal bytes or a number", value);
      }
      std::string_view text;
      if (auto error = value.get_string().get(text)) return JsonError(error);
      if (!bytes_scale.has_value()) {
        return absl::InvalidArgumentError(
            "precise decimal without a scale: the schema has no \"scale\" parameter; declare "
            "Decimal(scale)");
      }
      number = DecodeBase64Decimal(text, *bytes_scale);
      break;
    }
    case DecimalEncoding::kText:
    case DecimalEncoding::kNumber: {
      std::string_view text;
      if (*type == ondemand::json_type::string) {
        if (auto error = value.get_string().get(text)) return JsonError(error);
        if (std::optional<double> special = NonFinite(text)) {
          if (IsFloatTarget(spec.target)) {
            out.double_value = *special;
            return absl::OkStatus();
          }
          return absl::InvalidArgumentError(
              Cat(QuoteForError(text),
                  " is not a finite decimal: it has no exact value in an integer or string member "
                  "(declare the member double or float to receive it)"));
        }
        // Doubles are JSON numbers; only the non-finite ones are strings.
        if (encoding == DecimalEncoding::kNumber) return Unexpected("number", value);
      } else if (*type == ondemand::json_type::number) {
        absl::StatusOr<std::string_view> token = NumberText(value);
        if (!token.ok()) return token.status();
        text = *token;
      } else {
        return Unexpected(encoding == DecimalEncoding::kText ? "decimal string" : "number", value);
      }
      number = weir::internal::ParseDecimalText(text);
      break;
    }
    case DecimalEncoding::kVariableScale:
      if (*type != ondemand::json_type::object) {
        return Unexpected("VariableScaleDecimal object", value);
      }
      number = ReadVariableScaleDecimal(value);
      break;
    case DecimalEncoding::kUnknown:
      break;
  }
  if (!number.ok()) return number.status();
  return StoreDecimal(spec, *std::move(number), out);
}

}  // namespace

absl::Status StoreDecimal(const FieldSpec& spec, weir::internal::DecimalNumber number,
                          FieldValue& out) {
  if (IsIntegerTarget(spec.target)) {
    // Create() guarantees the scale of integer targets.
    absl::StatusOr<absl::int128> scaled =
        weir::internal::DecimalToScaledInt(number, spec.decimal.scale.value_or(0));
    if (!scaled.ok()) return scaled.status();
    if (!StoreInteger(*scaled, spec.target, out).ok()) {
      return absl::InvalidArgumentError(Cat("decimal ", weir::internal::DecimalToString(number),
                                            " out of range for ", TargetName(spec.target),
                                            " at scale ", spec.decimal.scale.value_or(0)));
    }
    return absl::OkStatus();
  }
  if (IsFloatTarget(spec.target)) {
    absl::StatusOr<double> converted =
        weir::internal::DecimalToBinaryFloat(number, spec.target == TargetKind::kFloat);
    if (!converted.ok()) return converted.status();
    out.double_value = *converted;
    return absl::OkStatus();
  }
  if (spec.decimal.scale.has_value()) {
    absl::StatusOr<weir::internal::DecimalNumber> rescaled =
        weir::internal::RescaleDecimal(number, *spec.decimal.scale);
    if (!rescaled.ok()) return rescaled.status();
    number = *std::move(rescaled);
  }
  out.string_value = weir::internal::DecimalToString(number);
  return absl::OkStatus();
}

absl::Status ConvertField(const FieldSpec& spec, const ColumnSchema* column, ondemand::value& value,
                          FieldValue& out) {
  switch (spec.semantic) {
    case Semantic::kAuto:
      if (column != nullptr &&
          (column->name == kDecimalName || column->name == kVariableScaleDecimalName)) {
        // The schema says decimal: its base64 text in a string member, or a
        // number read into a double, would be a different value.
        if (!IsIntegerTarget(spec.target) && !IsFloatTarget(spec.target) &&
            spec.target != TargetKind::kString) {
          return absl::InvalidArgumentError(
              Cat("a decimal column cannot go into a ", TargetName(spec.target), " member"));
        }
        return ConvertDecimal(spec, column, value, out);
      }
      return ConvertAuto(spec.target, value, out);
    case Semantic::kUuid:
      return ConvertUuid(spec.target, value, out);
    case Semantic::kJson:
      return ConvertJson(value, out);
    case Semantic::kTime:
      return ConvertTime(spec, column, value, out);
    case Semantic::kDecimal:
      return ConvertDecimal(spec, column, value, out);
  }
  return absl::InternalError("unknown field semantic");
}

}  // namespace weir::debezium::internal
