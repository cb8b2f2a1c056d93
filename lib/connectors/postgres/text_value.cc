#include "lib/connectors/postgres/text_value.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "lib/formats/debezium_field.h"
#include "lib/formats/decimal.h"

namespace weir::postgres::internal {
namespace {

using debezium::TimeUnit;
using debezium::internal::FieldSpec;
using debezium::internal::FieldValue;
using debezium::internal::IsFloatTarget;
using debezium::internal::IsIntegerTarget;
using debezium::internal::Semantic;
using debezium::internal::TargetKind;
using debezium::internal::TargetName;

std::string Quote(absl::string_view text) {
  if (text.size() > 64) return absl::StrCat("\"", absl::CEscape(text.substr(0, 64)), "...\"");
  return absl::StrCat("\"", absl::CEscape(text), "\"");
}

absl::Status Mismatch(const PgType& type, TargetKind target, absl::string_view hint = "") {
  return absl::InvalidArgumentError(absl::StrCat("a ", type.name, " column cannot go into a ",
                                                 TargetName(target), " member", hint));
}

// Microseconds to `unit`, flooring.
int64_t FromMicros(int64_t micros, TimeUnit unit) {
  auto floor_div = [](int64_t value, int64_t by) {
    int64_t q = value / by;
    if ((value % by != 0) && ((value < 0) != (by < 0))) --q;
    return q;
  };
  switch (unit) {
    case TimeUnit::kSeconds:
      return floor_div(micros, 1000000);
    case TimeUnit::kMillis:
      return floor_div(micros, 1000);
    case TimeUnit::kMicros:
      return micros;
    case TimeUnit::kNanos:
      return micros * 1000;
  }
  return micros;
}

bool ReadDigits(absl::string_view& text, size_t count, int64_t& value) {
  if (text.size() < count) return false;
  value = 0;
  for (size_t idx = 0; idx < count; ++idx) {
    if (!absl::ascii_isdigit(text[idx])) return false;
    value = value * 10 + (text[idx] - '0');
  }
  text.remove_prefix(count);
  return true;
}

// "YYYY-MM-DD" (a year of 4 or more digits) as days since the epoch.
bool ParseDate(absl::string_view& text, int64_t& days) {
  size_t year_digits = 0;
  while (year_digits < text.size() && absl::ascii_isdigit(text[year_digits])) ++year_digits;
  int64_t year = 0;
  int64_t month = 0;
  int64_t day = 0;
  if (year_digits < 4 || !ReadDigits(text, year_digits, year) || text.empty() || text[0] != '-')
    return false;
  text.remove_prefix(1);
  if (!ReadDigits(text, 2, month) || text.empty() || text[0] != '-') return false;
  text.remove_prefix(1);
  if (!ReadDigits(text, 2, day)) return false;
  const absl::CivilDay civil(year, static_cast<int>(month), static_cast<int>(day));
  days = civil - absl::CivilDay(1970, 1, 1);
  return true;
}

// "HH:MM:SS[.ffffff]" as microseconds past midnight.
bool ParseTimeOfDay(absl::string_view& text, int64_t& micros) {
  int64_t hour = 0;
  int64_t minute = 0;
  int64_t second = 0;
  if (!ReadDigits(text, 2, hour) || text.empty() || text[0] != ':') return false;
  text.remove_prefix(1);
  if (!ReadDigits(text, 2, minute) || text.empty() || text[0] != ':') return false;
  text.remove_prefix(1);
  if (!ReadDigits(text, 2, second)) return false;
  int64_t fraction = 0;
  if (!text.empty() && text[0] == '.') {
    text.remove_prefix(1);
    int64_t scale = 100000;
    size_t digits = 0;
    while (!text.empty() && absl::ascii_isdigit(text[0])) {
      if (digits++ < 6) fraction += (text[0] - '0') * scale;
      scale /= 10;
      text.remove_prefix(1);
    }
    if (digits == 0) return false;
  }
  micros = ((hour * 60 + minute) * 60 + second) * 1000000 + fraction;
  return true;
}

// "+HH[:MM[:SS]]" or "-HH..." as seconds east of UTC.
bool ParseOffset(absl::string_view& text, int64_t& seconds) {
  if (text.empty() || (text[0] != '+' && text[0] != '-')) return false;
  const int64_t sign = text[0] == '-' ? -1 : 1;
  text.remove_prefix(1);
  int64_t hours = 0;
  int64_t minutes = 0;
  int64_t secs = 0;
  if (!ReadDigits(text, 2, hours)) return false;
  if (!text.empty() && text[0] == ':') {
    text.remove_prefix(1);
    if (!ReadDigits(text, 2, minutes)) return false;
    if (!text.empty() && text[0] == ':') {
      text.remove_prefix(1);
      if (!ReadDigits(text, 2, secs)) return false;
    }
  }
  seconds = sign * (hours * 3600 + minutes * 60 + secs);
  return true;
}

absl::StatusOr<int64_t> TimeMicros(absl::string_view text) {
  absl::string_view rest = text;
  int64_t micros = 0;
  if (!ParseTimeOfDay(rest, micros) || !rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("not a time of day: ", Quote(text)));
  }
  return micros;
}

absl::StatusOr<int64_t> DateDays(absl::string_view text) {
  absl::string_view rest = text;
  int64_t days = 0;
  if (!ParseDate(rest, days) || !rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("not a date weir can represent: ", Quote(text),
                                                   " (infinity and BC dates have no epoch value)"));
  }
  return days;
}

absl::Status ConvertTime(const FieldSpec& spec, const PgType& type, absl::string_view text,
                         FieldValue& out) {
  if (!IsIntegerTarget(spec.target)) return Mismatch(type, spec.target);
  absl::StatusOr<int64_t> micros;
  switch (type.kind) {
    case PgKind::kTimestampTz:
    case PgKind::kTimestamp:
      micros = ParseTimestampMicros(text);
      break;
    case PgKind::kDate: {
      absl::StatusOr<int64_t> days = DateDays(text);
      if (!days.ok()) return days.status();
      micros = *days * 86400LL * 1000000;
      break;
    }
    case PgKind::kTime:
      micros = TimeMicros(text);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("a ", type.name,
                       " column is not a point in time (EpochMillis() and the like need "
                       "timestamptz, timestamp, date or time)"));
  }
  if (!micros.ok()) return micros.status();
  out.int_value = FromMicros(*micros, spec.time.unit);
  return absl::OkStatus();
}

std::optional<double> NonFiniteText(absl::string_view text) {
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "Infinity") return std::numeric_limits<double>::infinity();
  if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

absl::Status ConvertDecimal(const FieldSpec& spec, const PgType& type, absl::string_view text,
                            FieldValue& out) {
  if (std::optional<double> special = NonFiniteText(text)) {
    if (IsFloatTarget(spec.target)) {
      out.double_value = *special;
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        Quote(text), " is not a finite decimal: it has no exact value in a ",
        TargetName(spec.target), " member (declare the member double or float to receive it)"));
  }
  if (!IsIntegerTarget(spec.target) && !IsFloatTarget(spec.target) &&
      spec.target != TargetKind::kString) {
    return Mismatch(type, spec.target);
  }
  absl::StatusOr<weir::internal::DecimalNumber> number =
      weir::internal::ParseDecimalText(std::string_view(text.data(), text.size()));
  if (!number.ok()) return number.status();
  return debezium::internal::StoreDecimal(spec, *std::move(number), out);
}

absl::Status ConvertFloatText(TargetKind target, absl::string_view text, FieldValue& out) {
  if (std::optional<double> special = NonFiniteText(text)) {
    out.double_value = *special;
    return absl::OkStatus();
  }
  double parsed = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (error != std::errc() || end != text.data() + text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("not a number: ", Quote(text)));
  }
  return debezium::internal::StoreFloat(parsed, target, std::string_view(text.data(), text.size()),
                                        out);
}

absl::Status ConvertAuto(const FieldSpec& spec, const PgType& type, absl::string_view text,
                         FieldValue& out) {
  const TargetKind target = spec.target;
  switch (type.kind) {
    case PgKind::kBool:
      if (target != TargetKind::kBool) return Mismatch(type, target);
      if (text != "t" && text != "f") {
        return absl::InvalidArgumentError(absl::StrCat("not a boolean: ", Quote(text)));
      }
      out.bool_value = text == "t";
      return absl::OkStatus();
    case PgKind::kInteger: {
      if (IsFloatTarget(target)) return ConvertFloatText(target, text, out);
      if (!IsIntegerTarget(target)) return Mismatch(type, target);
      int64_t value = 0;
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (error != std::errc() || end != text.data() + text.size()) {
        return absl::InvalidArgumentError(absl::StrCat("not an integer: ", Quote(text)));
      }
      return debezium::internal::StoreInteger(value, target, out);
    }
    case PgKind::kFloat:
      if (!IsFloatTarget(target)) return Mismatch(type, target);
      return ConvertFloatText(target, text, out);
    case PgKind::kNumeric:
      return ConvertDecimal(spec, type, text, out);
    case PgKind::kBytea: {
      if (target != TargetKind::kString) return Mismatch(type, target);
      // "\x0a1b...": as Kafka Connect's JsonConverter sends bytes (base64).
      if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bytea not in hex format (bytea_output=hex): ", Quote(text)));
      }
      for (char c : text.substr(2)) {
        if (!absl::ascii_isxdigit(c)) {
          return absl::InvalidArgumentError(absl::StrCat("malformed bytea: ", Quote(text)));
        }
      }
      const std::string bytes = absl::HexStringToBytes(text.substr(2));
      out.string_value = absl::Base64Escape(bytes);
      return absl::OkStatus();
    }
    case PgKind::kTimestampTz:
    case PgKind::kTimestamp:
    case PgKind::kDate:
    case PgKind::kTime:
      if (target != TargetKind::kString) {
        return Mismatch(type, target, " (declare it with EpochMillis() or another unit)");
      }
      out.string_value.assign(text.data(), text.size());
      return absl::OkStatus();
    case PgKind::kUuid:
    case PgKind::kJson:
    case PgKind::kText:
    case PgKind::kOther:
      if (target != TargetKind::kString) return Mismatch(type, target);
      out.string_value.assign(text.data(), text.size());
      return absl::OkStatus();
  }
  return absl::InternalError("unknown kind");
}

absl::Status ConvertScalar(const FieldSpec& spec, const PgType& type, absl::string_view text,
                           FieldValue& out) {
  switch (spec.semantic) {
    case Semantic::kAuto:
      return ConvertAuto(spec, type, text, out);
    case Semantic::kUuid: {
      if (type.kind != PgKind::kUuid && type.kind != PgKind::kText) {
        return absl::InvalidArgumentError(
            absl::StrCat("Uuid() needs a uuid or text column, not ", type.name));
      }
      debezium::internal::UuidBytes bytes{};
      if (!debezium::internal::ParseUuid(std::string_view(text.data(), text.size()), bytes)) {
        return absl::InvalidArgumentError(absl::StrCat("not a UUID: ", Quote(text)));
      }
      if (spec.target == TargetKind::kUuidBytes) {
        out.uuid_bytes = bytes;
      } else {
        out.string_value = absl::AsciiStrToLower(text);
      }
      return absl::OkStatus();
    }
    case Semantic::kJson:
      if (type.kind != PgKind::kJson && type.kind != PgKind::kText) {
        return absl::InvalidArgumentError(
            absl::StrCat("Json() needs a json, jsonb or text column, not ", type.name));
      }
      out.string_value.assign(text.data(), text.size());
      return absl::OkStatus();
    case Semantic::kTime:
      return ConvertTime(spec, type, text, out);
    case Semantic::kDecimal:
      if (type.kind != PgKind::kNumeric && type.kind != PgKind::kInteger &&
          type.kind != PgKind::kFloat) {
        return absl::InvalidArgumentError(
            absl::StrCat("Decimal() needs a numeric column, not ", type.name));
      }
      return ConvertDecimal(spec, type, text, out);
  }
  return absl::InternalError("unknown field semantic");
}

}  // namespace

std::optional<PgType> BuiltinType(uint32_t oid) {
  struct Entry {
    uint32_t oid;
    PgKind kind;
    bool is_array;
    const char* name;
  };
  static constexpr Entry kTypes[] = {
      {16, PgKind::kBool, false, "boolean"},
      {20, PgKind::kInteger, false, "bigint"},
      {21, PgKind::kInteger, false, "smallint"},
      {23, PgKind::kInteger, false, "integer"},
      {26, PgKind::kInteger, false, "oid"},
      {700, PgKind::kFloat, false, "real"},
      {701, PgKind::kFloat, false, "double precision"},
      {1700, PgKind::kNumeric, false, "numeric"},
      {25, PgKind::kText, false, "text"},
      {1043, PgKind::kText, false, "varchar"},
      {1042, PgKind::kText, false, "char"},
      {19, PgKind::kText, false, "name"},
      {18, PgKind::kText, false, "\"char\""},
      {2950, PgKind::kUuid, false, "uuid"},
      {114, PgKind::kJson, false, "json"},
      {3802, PgKind::kJson, false, "jsonb"},
      {1184, PgKind::kTimestampTz, false, "timestamptz"},
      {1114, PgKind::kTimestamp, false, "timestamp"},
      {1082, PgKind::kDate, false, "date"},
      {1083, PgKind::kTime, false, "time"},
      {17, PgKind::kBytea, false, "bytea"},
      {1000, PgKind::kBool, true, "boolean[]"},
      {1005, PgKind::kInteger, true, "smallint[]"},
      {1007, PgKind::kInteger, true, "integer[]"},
      {1016, PgKind::kInteger, true, "bigint[]"},
      {1021, PgKind::kFloat, true, "real[]"},
      {1022, PgKind::kFloat, true, "double precision[]"},
      {1231, PgKind::kNumeric, true, "numeric[]"},
      {1009, PgKind::kText, true, "text[]"},
      {1015, PgKind::kText, true, "varchar[]"},
      {1014, PgKind::kText, true, "char[]"},
      {2951, PgKind::kUuid, true, "uuid[]"},
      {199, PgKind::kJson, true, "json[]"},
      {3807, PgKind::kJson, true, "jsonb[]"},
      {1185, PgKind::kTimestampTz, true, "timestamptz[]"},
      {1115, PgKind::kTimestamp, true, "timestamp[]"},
      {1182, PgKind::kDate, true, "date[]"},
      {1183, PgKind::kTime, true, "time[]"},
      {1001, PgKind::kBytea, true, "bytea[]"},
  };
  for (const Entry& entry : kTypes) {
    if (entry.oid == oid) {
      int size = 0;
      switch (oid) {
        case 21:
        case 1005:
          size = 2;
          break;
        case 23:
        case 26:
        case 700:
        case 1007:
        case 1021:
          size = 4;
          break;
        case 20:
        case 701:
        case 1016:
        case 1022:
          size = 8;
          break;
        default:
          break;
      }
      return PgType{entry.kind, entry.is_array, entry.name, size};
    }
  }
  return std::nullopt;
}

absl::StatusOr<PgType> TypeResolver::Resolve(uint32_t oid) { return ResolveDepth(oid, 0); }

absl::StatusOr<PgType> TypeResolver::ResolveDepth(uint32_t oid, int depth) {
  if (std::optional<PgType> builtin = BuiltinType(oid)) return *builtin;
  if (auto it = cache_.find(oid); it != cache_.end()) return it->second;
  if (depth > 16) return absl::InvalidArgumentError("type nesting too deep");
  absl::StatusOr<PgTypeRow> row = lookup_(oid);
  if (!row.ok()) return row.status();
  PgType type;
  type.name = row->name;
  if (row->typtype == 'e') {
    type.kind = PgKind::kText;
  } else if (row->typtype == 'd') {
    absl::StatusOr<PgType> base = ResolveDepth(row->typbasetype, depth + 1);
    if (!base.ok()) return base.status();
    type.kind = base->kind;
    type.is_array = base->is_array;
    type.size = base->size;
  } else if (row->typcategory == 'A' && row->typelem != 0) {
    absl::StatusOr<PgType> element = ResolveDepth(row->typelem, depth + 1);
    if (!element.ok()) return element.status();
    if (element->is_array) return absl::InvalidArgumentError("arrays of arrays");
    type.kind = element->kind;
    type.is_array = true;
    type.size = element->size;
  }
  cache_[oid] = type;
  return type;
}

absl::StatusOr<std::vector<std::optional<std::string>>> ParseArrayText(absl::string_view text) {
  auto malformed = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("array ", Quote(text), ": ", why));
  };
  if (text.size() < 2 || text.front() != '{' || text.back() != '}') {
    return malformed("expected {...} (arrays with explicit bounds are not supported)");
  }
  std::vector<std::optional<std::string>> elements;
  absl::string_view body = text.substr(1, text.size() - 2);
  if (body.empty()) return elements;
  size_t pos = 0;
  while (true) {
    while (pos < body.size() && body[pos] == ' ') ++pos;
    if (pos < body.size() && body[pos] == '{') return malformed("multi-dimensional arrays");
    std::string element;
    bool quoted = false;
    if (pos < body.size() && body[pos] == '"') {
      quoted = true;
      ++pos;
      while (pos < body.size() && body[pos] != '"') {
        if (body[pos] == '\\' && pos + 1 < body.size()) ++pos;
        element.push_back(body[pos++]);
      }
      if (pos >= body.size()) return malformed("unterminated quote");
      ++pos;
    } else {
      while (pos < body.size() && body[pos] != ',') element.push_back(body[pos++]);
      while (!element.empty() && element.back() == ' ') element.pop_back();
    }
    if (!quoted && absl::EqualsIgnoreCase(element, "NULL")) {
      elements.emplace_back(std::nullopt);
    } else {
      elements.emplace_back(std::move(element));
    }
    while (pos < body.size() && body[pos] == ' ') ++pos;
    if (pos == body.size()) break;
    if (body[pos] != ',') return malformed("expected ','");
    ++pos;
  }
  return elements;
}

absl::StatusOr<int64_t> ParseTimestampMicros(absl::string_view text) {
  absl::string_view rest = text;
  int64_t days = 0;
  int64_t time = 0;
  int64_t offset = 0;
  bool ok = ParseDate(rest, days) && !rest.empty() && rest[0] == ' ';
  if (ok) {
    rest.remove_prefix(1);
    ok = ParseTimeOfDay(rest, time);
  }
  if (ok && !rest.empty()) ok = ParseOffset(rest, offset) && rest.empty();
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a timestamp weir can represent: ", Quote(text),
                     " (infinity and BC timestamps have no epoch value)"));
  }
  return (days * 86400 - offset) * 1000000 + time;
}

absl::StatusOr<int64_t> ParseDateDays(absl::string_view text) { return DateDays(text); }

absl::StatusOr<int64_t> ParseTimeMicros(absl::string_view text) { return TimeMicros(text); }

absl::Status AssignText(const FieldSpec& spec, const PgType& type, absl::string_view text,
                        void* row) {
  FieldValue value;
  if (!type.is_array) {
    if (spec.is_array) {
      return absl::InvalidArgumentError(
          absl::StrCat("a ", type.name, " column cannot go into a std::vector member"));
    }
    absl::Status status = ConvertScalar(spec, type, text, value);
    if (!status.ok()) return status;
    spec.assign(row, value);
    return absl::OkStatus();
  }
  if (!spec.is_array) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", type.name, " column needs a std::vector member"));
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> elements = ParseArrayText(text);
  if (!elements.ok()) return elements.status();
  PgType element_type = type;
  element_type.is_array = false;
  spec.begin_array(row);
  for (size_t idx = 0; idx < elements->size(); ++idx) {
    const std::optional<std::string>& element = (*elements)[idx];
    if (!element.has_value()) {
      if (!spec.nullable_elements) {
        return absl::InvalidArgumentError(absl::StrCat(
            "element ", idx, " is NULL (declare std::vector<std::optional<...>> to receive it)"));
      }
      spec.append_null(row);
      continue;
    }
    value = FieldValue();
    absl::Status status = ConvertScalar(spec, element_type, *element, value);
    if (!status.ok())
      return absl::Status(status.code(), absl::StrCat("element ", idx, ": ", status.message()));
    spec.assign(row, value);
  }
  return absl::OkStatus();
}

}  // namespace weir::postgres::internal
