// ToMirrorChange (weir/connectors/postgres_mirror.h): RowCdcSource's columns,
// described by the Relation message and valued in PostgreSQL's text format,
// as a weir::Row of the mirror sinks.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/connectors/postgres/text_value.h"
#include "lib/formats/decimal.h"
#include "weir/connectors/postgres_mirror.h"
#include "weir/formats/json.h"

namespace weir::postgres {

namespace {

// PostgreSQL's VARHDRSZ: numeric's type modifier is ((P << 16) | S) + 4.
constexpr int32_t kVarHeaderSize = 4;
constexpr int32_t kMaxDecimalPrecision = 38;

RowColumn DescribeRowColumn(const ColumnValue& value) {
  RowColumn column;
  column.name = value.name;
  column.nullable = !value.key;
  if (value.is_array) {
    column.type = ColumnType::kJson;
    return column;
  }
  switch (value.kind) {
    case ColumnKind::kBool:
      column.type = ColumnType::kBool;
      break;
    case ColumnKind::kInteger:
      column.type = value.size == 2                          ? ColumnType::kInt16
                    : value.size == 4 && value.type != "oid" ? ColumnType::kInt32
                                                             : ColumnType::kInt64;
      break;
    case ColumnKind::kFloat:
      column.type = value.size == 4 ? ColumnType::kFloat32 : ColumnType::kFloat64;
      break;
    case ColumnKind::kNumeric: {
      column.type = ColumnType::kDecimalText;
      if (value.type_modifier >= kVarHeaderSize) {
        const int32_t modifier = value.type_modifier - kVarHeaderSize;
        const int32_t precision = (modifier >> 16) & 0xffff;
        // PostgreSQL 15 allows a negative scale: 11 bits, signed.
        const int32_t scale = ((modifier & 0x7ff) ^ 1024) - 1024;
        if (precision >= 1 && precision <= kMaxDecimalPrecision && scale >= 0 &&
            scale <= precision) {
          column.type = ColumnType::kDecimal;
          column.precision = precision;
          column.scale = scale;
        }
      }
      break;
    }
    case ColumnKind::kJson:
      column.type = ColumnType::kJson;
      break;
    case ColumnKind::kTimestampTz:
    case ColumnKind::kTimestamp:
      column.type = ColumnType::kTimestamp;
      column.unit = RowTimeUnit::kMicros;
      break;
    case ColumnKind::kDate:
      column.type = ColumnType::kDate;
      break;
    case ColumnKind::kTime:
      column.type = ColumnType::kTime;
      column.unit = RowTimeUnit::kMicros;
      break;
    case ColumnKind::kBytea:
      column.type = ColumnType::kBytes;
      break;
    case ColumnKind::kText:
    case ColumnKind::kUuid:
    case ColumnKind::kOther:
      column.type = ColumnType::kString;
      break;
  }
  return column;
}

// "{1,2,NULL}" as the JSON array [1,2,null]: numbers (finite ones) and
// booleans bare, JSON elements as they are, everything else a string.
absl::StatusOr<std::string> ArrayToJson(const ColumnValue& value) {
  absl::StatusOr<std::vector<std::optional<std::string>>> elements =
      internal::ParseArrayText(value.text);
  if (!elements.ok()) return elements.status();
  std::string json;
  json::Writer writer(json);
  writer.BeginArray();
  for (const std::optional<std::string>& element : *elements) {
    double number = 0;
    if (!element.has_value()) {
      writer.Null();
    } else if (value.kind == ColumnKind::kBool) {
      writer.Bool(*element == "t");
    } else if (value.kind == ColumnKind::kJson) {
      writer.Raw(*element);
    } else if ((value.kind == ColumnKind::kInteger || value.kind == ColumnKind::kFloat ||
                value.kind == ColumnKind::kNumeric) &&
               absl::SimpleAtod(*element, &number) && std::isfinite(number)) {
      writer.Raw(*element);  // the exact digits, not the double
    } else {
      writer.String(*element);
    }
  }
  writer.EndArray();
  return json;
}

absl::StatusOr<RowValue> ConvertValue(const ColumnValue& value, const RowColumn& column) {
  const std::string& text = value.text;
  if (value.is_array) {
    absl::StatusOr<std::string> json = ArrayToJson(value);
    if (!json.ok()) return json.status();
    return RowValue(*std::move(json));
  }
  switch (column.type) {
    case ColumnType::kBool:
      if (text == "t") return RowValue(true);
      if (text == "f") return RowValue(false);
      return absl::InvalidArgumentError(absl::StrCat("not a boolean: \"", text, "\""));
    case ColumnType::kInt16:
    case ColumnType::kInt32:
    case ColumnType::kInt64: {
      int64_t number = 0;
      if (!absl::SimpleAtoi(text, &number)) {
        return absl::InvalidArgumentError(absl::StrCat("not an integer: \"", text, "\""));
      }
      return RowValue(number);
    }
    case ColumnType::kFloat32:
    case ColumnType::kFloat64: {
      // strtod reads NaN, Infinity and -Infinity as PostgreSQL writes them.
      char* end = nullptr;
      const double number = column.type == ColumnType::kFloat32
                                ? static_cast<double>(std::strtof(text.c_str(), &end))
                                : std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size()) {
        return absl::InvalidArgumentError(absl::StrCat("not a number: \"", text, "\""));
      }
      return RowValue(number);
    }
    case ColumnType::kDecimal:
    case ColumnType::kDecimalText: {
      absl::StatusOr<weir::internal::DecimalNumber> number = weir::internal::ParseDecimalText(text);
      if (!number.ok()) return number.status();
      if (column.type == ColumnType::kDecimalText) return RowValue(text);
      absl::StatusOr<absl::int128> unscaled =
          weir::internal::DecimalToScaledInt(*number, column.scale);
      if (!unscaled.ok()) return unscaled.status();
      return RowValue(*unscaled);
    }
    case ColumnType::kTimestamp: {
      absl::StatusOr<int64_t> micros = internal::ParseTimestampMicros(text);
      if (!micros.ok()) return micros.status();
      return RowValue(*micros);
    }
    case ColumnType::kDate: {
      absl::StatusOr<int64_t> days = internal::ParseDateDays(text);
      if (!days.ok()) return days.status();
      return RowValue(*days);
    }
    case ColumnType::kTime: {
      absl::StatusOr<int64_t> micros = internal::ParseTimeMicros(text);
      if (!micros.ok()) return micros.status();
      return RowValue(*micros);
    }
    case ColumnType::kBytes: {
      // "\x0a1b..." (bytea_output=hex, which the source sets).
      if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) {
        return absl::InvalidArgumentError("bytea not in hex format (bytea_output=hex)");
      }
      for (const char c : absl::string_view(text).substr(2)) {
        if (!absl::ascii_isxdigit(c)) return absl::InvalidArgumentError("malformed bytea");
      }
      return RowValue(absl::HexStringToBytes(absl::string_view(text).substr(2)));
    }
    default:
      return RowValue(text);
  }
}

// The schemas this thread made, per table, with the column descriptions they
// came from: the rows of one Relation message share one.
struct CachedSchema {
  std::vector<ColumnValue> columns;  // name, type, kind, key, modifier; no values
  std::shared_ptr<const RowSchema> schema;
};

bool SameLayout(const std::vector<ColumnValue>& columns, const std::vector<ColumnValue>& cached) {
  if (columns.size() != cached.size()) return false;
  for (size_t column_idx = 0; column_idx < columns.size(); ++column_idx) {
    const ColumnValue& a = columns[column_idx];
    const ColumnValue& b = cached[column_idx];
    if (a.name != b.name || a.type != b.type || a.kind != b.kind || a.is_array != b.is_array ||
        a.size != b.size || a.key != b.key || a.type_modifier != b.type_modifier) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::shared_ptr<const RowSchema>> SchemaOf(const std::string& table,
                                                          const std::vector<ColumnValue>& columns) {
  thread_local std::map<std::string, CachedSchema> cache;
  auto it = cache.find(table);
  if (it != cache.end() && SameLayout(columns, it->second.columns)) return it->second.schema;
  std::vector<RowColumn> row_columns;
  std::vector<std::string> key;
  CachedSchema cached;
  for (const ColumnValue& value : columns) {
    row_columns.push_back(DescribeRowColumn(value));
    if (value.key) key.push_back(value.name);
    ColumnValue layout = value;
    layout.text.clear();
    cached.columns.push_back(std::move(layout));
  }
  absl::StatusOr<std::shared_ptr<const RowSchema>> schema =
      RowSchema::Create(table, std::move(row_columns), std::move(key));
  if (!schema.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("table ", table, ": ", schema.status().message()));
  }
  cached.schema = *schema;
  cache[table] = std::move(cached);
  return *schema;
}

absl::StatusOr<Row> ToRow(const std::string& table, const char* image,
                          const std::vector<ColumnValue>& columns) {
  absl::StatusOr<std::shared_ptr<const RowSchema>> schema = SchemaOf(table, columns);
  if (!schema.ok()) return schema.status();
  Row row(*schema);
  for (size_t column_idx = 0; column_idx < columns.size(); ++column_idx) {
    const ColumnValue& value = columns[column_idx];
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("table ", table, ": ", image, ": column \"",
                                                     value.name, "\" (", value.type, "): ", why));
    };
    switch (value.state) {
      case ColumnValue::State::kNull:
        if (value.key && absl::string_view(image) == "after") return fail("a key column is NULL");
        break;
      case ColumnValue::State::kUnchanged:
        return fail("an unchanged TOASTed value the change does not carry");
      case ColumnValue::State::kValue: {
        absl::StatusOr<RowValue> converted = ConvertValue(value, (*schema)->columns()[column_idx]);
        if (!converted.ok()) return fail(converted.status().message());
        row.Set(column_idx, *std::move(converted));
        break;
      }
    }
  }
  return row;
}

}  // namespace

absl::StatusOr<debezium::RowChange> ToMirrorChange(const RowChange& change) {
  debezium::RowChange out;
  out.op = change.op;
  out.source = change.source;
  out.ts_ms = change.ts_ms;
  out.table = absl::StrCat(change.source.schema, ".", change.source.table);
  if (change.before.has_value()) {
    absl::StatusOr<Row> before = ToRow(out.table, "before", *change.before);
    if (!before.ok()) return before.status();
    out.before = *std::move(before);
  }
  if (change.after.has_value()) {
    absl::StatusOr<Row> after = ToRow(out.table, "after", *change.after);
    if (!after.ok()) return after.status();
    out.after = *std::move(after);
  }
  return out;
}

absl::Status ToMirrorChanges(const RowChange& change, Collector<debezium::RowChange>& out) {
  absl::StatusOr<debezium::RowChange> mapped = ToMirrorChange(change);
  if (!mapped.ok()) return mapped.status();
  bool key_changed = false;
  if (mapped->op == debezium::Op::kUpdate && mapped->before.has_value() &&
      mapped->after.has_value()) {
    for (const int key_idx : mapped->after->schema().key()) {
      const size_t column_idx = static_cast<size_t>(key_idx);
      key_changed = key_changed || column_idx >= mapped->before->size() ||
                    mapped->before->value(column_idx) != mapped->after->value(column_idx);
    }
  }
  if (!key_changed) {
    out.Collect(*std::move(mapped));
    return absl::OkStatus();
  }
  debezium::RowChange removed = *mapped;
  removed.op = debezium::Op::kDelete;
  removed.after.reset();
  out.Collect(std::move(removed));
  mapped->op = debezium::Op::kCreate;
  mapped->before.reset();
  out.Collect(*std::move(mapped));
  return absl::OkStatus();
}

}  // namespace weir::postgres
