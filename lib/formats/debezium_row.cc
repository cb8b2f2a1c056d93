// RowDecoder (weir/formats/debezium_row.h).
//
// A record's schema text (value and key) is compiled once into a RowSchema
// and, per column, the FieldSpec that the typed decoder's ConvertField reads
// values with, so both decoders share one set of conversion rules (exact
// decimals, checked ranges, Debezium's time types). Records whose schema
// text is byte-identical share the compiled table.

#include "weir/formats/debezium_row.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "lib/common/status.h"
#include "lib/formats/debezium_field.h"
#include "lib/formats/debezium_schema.h"
#include "lib/formats/debezium_time.h"
#include "lib/formats/decimal.h"
#include "lib/formats/json_reader.h"
#include "lib/formats/str_cat.h"
#include "simdjson.h"

namespace weir::debezium {
namespace internal {
namespace {

namespace ondemand = simdjson::ondemand;
using weir::internal::Annotate;
using weir::internal::CaptureObjectOrNull;
using weir::internal::Cat;
using weir::internal::FieldKey;
using weir::internal::IsBlankOrNull;
using weir::internal::JsonError;
using weir::internal::ReadInt64;
using weir::internal::ReadNull;
using weir::internal::SkipValue;
using weir::internal::Unexpected;

constexpr std::string_view kDecimalName = "org.apache.kafka.connect.data.Decimal";
constexpr std::string_view kVariableScaleDecimalName = "io.debezium.data.VariableScaleDecimal";
constexpr size_t kMaxCachedSchemas = 256;

TimeUnit ToTimeUnit(RowTimeUnit unit) {
  switch (unit) {
    case RowTimeUnit::kMillis:
      return TimeUnit::kMillis;
    case RowTimeUnit::kMicros:
      return TimeUnit::kMicros;
    case RowTimeUnit::kNanos:
      return TimeUnit::kNanos;
  }
  return TimeUnit::kMicros;
}

// One column compiled for reading.
struct CompiledColumn {
  RowColumn column;
  FieldSpec spec;
  // What the record's schema says about it (nullopt: schemaless).
  std::optional<ColumnSchema> wire;
  // kBytes: base64 to decode.
  bool base64 = false;
  // kDate: the spec yields millis, kept as days.
  bool millis_to_days = false;
  // kDecimal: 10^precision, and whether a JSON string is base64 of the
  // unscaled value at the column's scale (Kafka Connect's Decimal), which is
  // read straight into the integer.
  absl::int128 decimal_limit = 0;
  bool base64_decimal = false;
};

struct CompiledTable {
  std::shared_ptr<const RowSchema> schema;
  std::vector<CompiledColumn> columns;
  absl::flat_hash_map<std::string, int> index;
};

// The column type a Kafka Connect schema stands for, in RowColumn terms.
absl::StatusOr<RowColumn> ColumnFromSchema(const std::string& field, const ColumnSchema& wire) {
  RowColumn column;
  column.name = field;
  column.nullable = wire.optional;
  const std::string& name = wire.name;
  if (wire.type == "int8" || wire.type == "int16" || wire.type == "int32" || wire.type == "int64") {
    const std::optional<TimeType> time = TimeTypeFromSchemaName(name);
    if (time == TimeType::kDate) {
      column.type = ColumnType::kDate;
    } else if (time == TimeType::kTime || time == TimeType::kMicroTime ||
               time == TimeType::kNanoTime) {
      column.type = ColumnType::kTime;
      column.unit = *time == TimeType::kTime        ? RowTimeUnit::kMillis
                    : *time == TimeType::kMicroTime ? RowTimeUnit::kMicros
                                                    : RowTimeUnit::kNanos;
    } else if (time == TimeType::kTimestamp || time == TimeType::kMicroTimestamp ||
               time == TimeType::kNanoTimestamp) {
      column.type = ColumnType::kTimestamp;
      column.unit = *time == TimeType::kTimestamp        ? RowTimeUnit::kMillis
                    : *time == TimeType::kMicroTimestamp ? RowTimeUnit::kMicros
                                                         : RowTimeUnit::kNanos;
    } else {
      // Plain integers, and integers with a meaning of their own that are
      // not points in time (io.debezium.time.Year, MicroDuration).
      column.type = wire.type == "int8"    ? ColumnType::kInt8
                    : wire.type == "int16" ? ColumnType::kInt16
                    : wire.type == "int32" ? ColumnType::kInt32
                                           : ColumnType::kInt64;
    }
  } else if (wire.type == "float32") {
    column.type = ColumnType::kFloat32;
  } else if (wire.type == "float64") {
    column.type = ColumnType::kFloat64;
  } else if (wire.type == "boolean") {
    column.type = ColumnType::kBool;
  } else if (wire.type == "string") {
    const std::optional<TimeType> time = TimeTypeFromSchemaName(name);
    if (time == TimeType::kZonedTimestamp || time == TimeType::kIsoTimestamp) {
      column.type = ColumnType::kTimestamp;
      column.unit = RowTimeUnit::kMicros;
    } else if (time == TimeType::kZonedTime || time == TimeType::kIsoTime) {
      column.type = ColumnType::kTime;
      column.unit = RowTimeUnit::kMicros;
    } else if (time == TimeType::kIsoDate) {
      column.type = ColumnType::kDate;
    } else if (name == "io.debezium.data.Json") {
      column.type = ColumnType::kJson;
    } else {
      column.type = ColumnType::kString;
    }
  } else if (wire.type == "bytes") {
    if (name == kDecimalName) {
      if (!wire.scale.has_value()) {
        return absl::InvalidArgumentError(Cat("column \"", field, "\": a Decimal without a scale"));
      }
      const int32_t precision = wire.precision.value_or(38);
      if (precision > 38 || *wire.scale < 0 || *wire.scale > precision) {
        column.type = ColumnType::kDecimalText;  // beyond 38 digits: exact text
      } else {
        column.type = ColumnType::kDecimal;
        column.precision = precision;
        column.scale = *wire.scale;
      }
    } else {
      column.type = ColumnType::kBytes;
    }
  } else if (wire.type == "struct" && name == kVariableScaleDecimalName) {
    column.type = ColumnType::kDecimalText;
  } else if (wire.type == "struct" || wire.type == "array" || wire.type == "map") {
    // Geometries, arrays, maps: their JSON text, which is exact.
    column.type = ColumnType::kJson;
  } else {
    return absl::InvalidArgumentError(
        Cat("column \"", field, "\": unsupported schema type \"", wire.type, "\""));
  }
  return column;
}

// The FieldSpec that ConvertField reads a column of `column`'s type with.
absl::StatusOr<CompiledColumn> Compile(const RowColumn& column,
                                       const std::optional<ColumnSchema>& wire,
                                       std::optional<DecimalMode> mode) {
  CompiledColumn compiled;
  compiled.column = column;
  compiled.wire = wire;
  FieldSpec& spec = compiled.spec;
  spec.name = column.name;
  spec.required = !column.nullable;
  switch (column.type) {
    case ColumnType::kBool:
      spec.target = TargetKind::kBool;
      break;
    case ColumnType::kInt8:
      spec.target = TargetKind::kInt8;
      break;
    case ColumnType::kInt16:
      spec.target = TargetKind::kInt16;
      break;
    case ColumnType::kInt32:
      spec.target = TargetKind::kInt32;
      break;
    case ColumnType::kInt64:
      spec.target = TargetKind::kInt64;
      break;
    case ColumnType::kUInt64:
      spec.target = TargetKind::kUInt64;
      if (wire.has_value() && wire->name == kDecimalName) {
        spec.semantic = Semantic::kDecimal;
        spec.decimal = Decimal(0);
      }
      break;
    case ColumnType::kFloat32:
      spec.target = TargetKind::kFloat;
      break;
    case ColumnType::kFloat64:
      spec.target = TargetKind::kDouble;
      break;
    case ColumnType::kDecimal:
    case ColumnType::kDecimalText:
      spec.target = TargetKind::kString;
      spec.semantic = Semantic::kDecimal;
      if (column.type == ColumnType::kDecimal) {
        spec.decimal.scale = column.scale;
        for (int32_t digit = 0; digit < column.precision; ++digit) {
          compiled.decimal_limit = compiled.decimal_limit == 0 ? 10 : compiled.decimal_limit * 10;
        }
        compiled.base64_decimal = wire.has_value()
                                      ? wire->name == kDecimalName && wire->scale == column.scale
                                      : mode == DecimalMode::kPrecise;
      }
      spec.decimal.mode = mode;
      break;
    case ColumnType::kString:
      spec.target = TargetKind::kString;
      if (wire.has_value() && wire->name == "io.debezium.data.Uuid")
        spec.semantic = Semantic::kUuid;
      break;
    case ColumnType::kJson:
      spec.target = TargetKind::kString;
      spec.semantic = Semantic::kJson;
      break;
    case ColumnType::kBytes:
      spec.target = TargetKind::kString;
      compiled.base64 = true;
      break;
    case ColumnType::kDate:
      spec.target = TargetKind::kInt64;
      spec.semantic = Semantic::kTime;
      spec.time = {TimeUnit::kMillis, TimeType::kDate};
      compiled.millis_to_days = true;
      break;
    case ColumnType::kTime:
      spec.target = TargetKind::kInt64;
      spec.semantic = Semantic::kTime;
      spec.time.unit = ToTimeUnit(column.unit);
      spec.time.type = column.unit == RowTimeUnit::kMillis   ? TimeType::kTime
                       : column.unit == RowTimeUnit::kMicros ? TimeType::kMicroTime
                                                             : TimeType::kNanoTime;
      break;
    case ColumnType::kTimestamp:
      spec.target = TargetKind::kInt64;
      spec.semantic = Semantic::kTime;
      spec.time.unit = ToTimeUnit(column.unit);
      spec.time.type = column.unit == RowTimeUnit::kMillis   ? TimeType::kTimestamp
                       : column.unit == RowTimeUnit::kMicros ? TimeType::kMicroTimestamp
                                                             : TimeType::kNanoTimestamp;
      break;
  }
  return compiled;
}

// Kafka Connect's Decimal bytes (base64 of the big-endian two's complement
// unscaled value) as an integer; nullopt when they are not base64 or longer
// than 16 bytes (the general path then reports it).
std::optional<absl::int128> Base64Decimal(std::string_view text, std::string& bytes) {
  bytes.clear();
  if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &bytes) || bytes.empty() ||
      bytes.size() > 16) {
    return std::nullopt;
  }
  absl::uint128 bits = (static_cast<uint8_t>(bytes[0]) & 0x80) != 0 ? ~absl::uint128(0) : 0;
  for (char byte : bytes) bits = (bits << 8) | static_cast<uint8_t>(byte);
  return static_cast<absl::int128>(bits);
}

}  // namespace

class RowDecoderCore {
 public:
  explicit RowDecoderCore(RowDecoderOptions options) : options_(std::move(options)) {}

  absl::StatusOr<RowChange> Decode(std::string_view key, std::string_view value,
                                   std::string_view topic);

 private:
  absl::Status Iterate(std::string_view inside, ondemand::document& document) {
    return json_.Iterate(inside, document);
  }

  const RowTable* FindDeclared(const SourceInfo& source, std::string_view topic) const;
  // The key's column names: from the key's schema, else its fields.
  absl::StatusOr<std::vector<std::string>> KeyColumns(std::string_view key);
  absl::StatusOr<const CompiledTable*> TableFromSchema(std::string_view schema_text,
                                                       const std::vector<std::string>& key,
                                                       const std::string& table,
                                                       const RowTable* declared);
  absl::StatusOr<const CompiledTable*> FindOrCompile(std::string_view schema_text,
                                                     const std::vector<std::string>& key,
                                                     const std::string& table,
                                                     const RowTable* declared);
  absl::StatusOr<const CompiledTable*> DeclaredTable(const RowTable& declared,
                                                     const std::string& table);
  absl::Status ReadRow(ondemand::object& object, const CompiledTable& table, bool lenient,
                       Row& row);
  absl::Status ConvertValue(const CompiledColumn& compiled, ondemand::value& value, RowValue& out);

  RowDecoderOptions options_;
  weir::internal::PaddedJson json_;
  // Compiled tables by "<key names>\n<table>\n<schema text>".
  absl::flat_hash_map<std::string, std::unique_ptr<CompiledTable>> tables_;
  absl::flat_hash_map<std::string, std::vector<std::string>> key_schemas_;
  std::string cache_key_;
  // The previous record's table (FindDeclared and the qualified name).
  bool last_source_valid_ = false;
  std::string last_namespace_;
  std::string last_source_table_;
  std::string last_topic_;
  const RowTable* last_declared_ = nullptr;
  std::string last_table_name_;
  // The table the previous record with a schema compiled to, and its inputs.
  const CompiledTable* last_table_ = nullptr;
  std::string last_schema_text_;
  std::vector<std::string> last_key_;
  FieldValue scratch_;
  std::string bytes_scratch_;
  std::vector<uint8_t> seen_;
};

const RowTable* RowDecoderCore::FindDeclared(const SourceInfo& source,
                                             std::string_view topic) const {
  const std::string qualified =
      Cat(source.schema.empty() ? source.db : source.schema, ".", source.table);
  for (const RowTable& declared : options_.tables) {
    if (declared.table == qualified || (!source.table.empty() && declared.table == source.table) ||
        (!topic.empty() && declared.table == topic)) {
      return &declared;
    }
  }
  return nullptr;
}

absl::StatusOr<std::vector<std::string>> RowDecoderCore::KeyColumns(std::string_view key) {
  std::vector<std::string> names;
  if (IsBlankOrNull(key)) return names;
  json_.Load(key);
  ondemand::document document;
  if (absl::Status status = Iterate(json_.whole(), document); !status.ok()) {
    return Annotate(status, "key");
  }
  ondemand::object top;
  if (document.get_object().get(top)) return absl::InvalidArgumentError("key: not a JSON object");
  std::optional<std::string_view> schema_text;
  std::vector<std::string> fields;
  bool wrapped = false;
  for (auto field_result : top) {
    if (auto error = field_result.error()) return Annotate(JsonError(error), "key");
    ondemand::field& field = field_result.value_unsafe();
    std::string_view name;
    if (auto error = FieldKey(field, name)) return Annotate(JsonError(error), "key");
    if (name == "schema") {
      wrapped = true;
      if (absl::Status status = CaptureObjectOrNull(field.value(), "schema", schema_text);
          !status.ok()) {
        return Annotate(status, "key");
      }
      continue;
    }
    if (name == "payload") wrapped = true;
    fields.emplace_back(name);
    if (absl::Status status = SkipValue(field.value(), 1); !status.ok()) {
      return Annotate(status, "key");
    }
  }
  if (!wrapped) return fields;
  if (!schema_text.has_value()) return names;
  auto cached = key_schemas_.find(weir::internal::ToAbsl(*schema_text));
  if (cached != key_schemas_.end()) return cached->second;
  const std::string text(*schema_text);
  if (absl::Status status = Iterate(*schema_text, document); !status.ok()) {
    return Annotate(status, "key");
  }
  ondemand::object schema;
  if (auto error = document.get_object().get(schema)) return Annotate(JsonError(error), "key");
  std::vector<NamedColumnSchema> columns;
  if (absl::Status status = ReadRowSchema(schema, false, columns); !status.ok()) {
    return Annotate(status, "key");
  }
  for (NamedColumnSchema& column : columns) names.push_back(std::move(column.field));
  if (key_schemas_.size() >= kMaxCachedSchemas) key_schemas_.clear();
  key_schemas_.emplace(text, names);
  return names;
}

absl::StatusOr<const CompiledTable*> RowDecoderCore::TableFromSchema(
    std::string_view schema_text, const std::vector<std::string>& key, const std::string& table,
    const RowTable* declared) {
  // Consecutive records of one table carry the same schema text: no lookup.
  if (last_table_ != nullptr && schema_text == last_schema_text_ && key == last_key_ &&
      table == last_table_->schema->table()) {
    return last_table_;
  }
  absl::StatusOr<const CompiledTable*> found = FindOrCompile(schema_text, key, table, declared);
  if (!found.ok()) return found.status();
  last_table_ = *found;
  last_schema_text_.assign(schema_text);
  last_key_ = key;
  return last_table_;
}

absl::StatusOr<const CompiledTable*> RowDecoderCore::FindOrCompile(
    std::string_view schema_text, const std::vector<std::string>& key, const std::string& table,
    const RowTable* declared) {
  cache_key_.clear();
  for (const std::string& name : key) cache_key_.append(name).push_back('\0');
  cache_key_.append("\n").append(table).append("\n").append(schema_text);
  auto cached = tables_.find(cache_key_);
  if (cached != tables_.end()) return cached->second.get();

  ondemand::document document;
  if (absl::Status status = Iterate(schema_text, document); !status.ok()) return status;
  ondemand::object schema;
  if (auto error = document.get_object().get(schema)) return JsonError(error);
  std::vector<NamedColumnSchema> wire_columns;
  if (absl::Status status = ReadRowSchema(schema, true, wire_columns); !status.ok()) return status;
  auto compiled = std::make_unique<CompiledTable>();
  std::vector<RowColumn> columns;
  for (const NamedColumnSchema& wire : wire_columns) {
    absl::StatusOr<RowColumn> column = ColumnFromSchema(wire.field, wire.column);
    if (!column.ok()) return column.status();
    std::optional<DecimalMode> mode;
    if (declared != nullptr) {
      mode = declared->decimal_mode;
      for (const RowColumn& override_column : declared->columns) {
        if (override_column.name == wire.field) {
          const bool nullable = column->nullable;
          *column = override_column;
          column->nullable = nullable;  // the schema knows
        }
      }
    }
    absl::StatusOr<CompiledColumn> compiled_column = Compile(*column, wire.column, mode);
    if (!compiled_column.ok()) return compiled_column.status();
    compiled->index.emplace(wire.field, static_cast<int>(compiled->columns.size()));
    compiled->columns.push_back(*std::move(compiled_column));
    columns.push_back(*std::move(column));
  }
  std::vector<std::string> key_names = key;
  if (key_names.empty() && declared != nullptr) key_names = declared->key;
  for (const std::string& name : key_names) {
    // A key column is never NULL, whatever "optional" the value schema says.
    for (RowColumn& column : columns) {
      if (column.name == name) column.nullable = false;
    }
  }
  absl::StatusOr<std::shared_ptr<const RowSchema>> row_schema =
      RowSchema::Create(table, std::move(columns), std::move(key_names));
  if (!row_schema.ok()) return row_schema.status();
  compiled->schema = *std::move(row_schema);
  if (tables_.size() >= kMaxCachedSchemas) {
    tables_.clear();
    last_table_ = nullptr;
  }
  return tables_.emplace(cache_key_, std::move(compiled)).first->second.get();
}

absl::StatusOr<const CompiledTable*> RowDecoderCore::DeclaredTable(const RowTable& declared,
                                                                   const std::string& table) {
  cache_key_ = Cat("declared\n", declared.table, "\n", table);
  auto cached = tables_.find(cache_key_);
  if (cached != tables_.end()) return cached->second.get();
  auto compiled = std::make_unique<CompiledTable>();
  for (const RowColumn& column : declared.columns) {
    absl::StatusOr<CompiledColumn> compiled_column =
        Compile(column, std::nullopt, declared.decimal_mode);
    if (!compiled_column.ok()) return compiled_column.status();
    compiled->index.emplace(column.name, static_cast<int>(compiled->columns.size()));
    compiled->columns.push_back(*std::move(compiled_column));
  }
  absl::StatusOr<std::shared_ptr<const RowSchema>> row_schema =
      RowSchema::Create(table, declared.columns, declared.key);
  if (!row_schema.ok()) return row_schema.status();
  compiled->schema = *std::move(row_schema);
  return tables_.emplace(cache_key_, std::move(compiled)).first->second.get();
}

absl::Status RowDecoderCore::ConvertValue(const CompiledColumn& compiled, ondemand::value& value,
                                          RowValue& out) {
  absl::StatusOr<ondemand::json_type> json_type = weir::internal::TypeOf(value);
  if (!json_type.ok()) return json_type.status();
  if (compiled.base64_decimal && *json_type == ondemand::json_type::string) {
    std::string_view text;
    if (auto error = value.get_string().get(text)) return JsonError(error);
    if (std::optional<absl::int128> unscaled = Base64Decimal(text, bytes_scratch_)) {
      if (*unscaled >= compiled.decimal_limit || *unscaled <= -compiled.decimal_limit) {
        return absl::InvalidArgumentError(
            Cat("decimal ", weir::internal::ScaledInt128ToString(*unscaled, compiled.column.scale),
                " has more than ", compiled.column.precision, " digits (Decimal(",
                compiled.column.precision, ",", compiled.column.scale, "))"));
      }
      out = *unscaled;
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(Cat("precise decimal ", weir::internal::QuoteForError(text),
                                          " is not base64 of at most 16 bytes"));
  }
  const ColumnSchema* wire = compiled.wire.has_value() ? &*compiled.wire : nullptr;
  if (absl::Status status = ConvertField(compiled.spec, wire, value, scratch_); !status.ok()) {
    return status;
  }
  const RowColumn& column = compiled.column;
  switch (column.type) {
    case ColumnType::kBool:
      out = scratch_.bool_value;
      return absl::OkStatus();
    case ColumnType::kUInt64:
      out = scratch_.uint_value;
      return absl::OkStatus();
    case ColumnType::kFloat32:
    case ColumnType::kFloat64:
      out = scratch_.double_value;
      return absl::OkStatus();
    case ColumnType::kDecimal: {
      absl::StatusOr<weir::internal::DecimalNumber> number =
          weir::internal::ParseDecimalText(scratch_.string_value);
      if (!number.ok()) return number.status();
      absl::StatusOr<absl::int128> scaled =
          weir::internal::DecimalToScaledInt(*number, column.scale);
      if (!scaled.ok()) return scaled.status();
      const absl::int128 limit = compiled.decimal_limit;
      if (*scaled >= limit || *scaled <= -limit) {
        return absl::InvalidArgumentError(Cat("decimal ", scratch_.string_value, " has more than ",
                                              column.precision, " digits (Decimal(",
                                              column.precision, ",", column.scale, "))"));
      }
      out = *scaled;
      return absl::OkStatus();
    }
    case ColumnType::kBytes: {
      std::string bytes;
      if (!absl::Base64Unescape(scratch_.string_value, &bytes)) {
        return absl::InvalidArgumentError(
            Cat("bytes ", weir::internal::QuoteForError(scratch_.string_value), " are not base64"));
      }
      out = std::move(bytes);
      return absl::OkStatus();
    }
    case ColumnType::kDecimalText:
    case ColumnType::kString:
    case ColumnType::kJson:
      out = std::move(scratch_.string_value);
      return absl::OkStatus();
    case ColumnType::kDate: {
      constexpr int64_t kDayMillis = 86'400'000;
      const int64_t millis = scratch_.int_value;
      if (millis % kDayMillis != 0) {
        return absl::InvalidArgumentError(Cat("date ", millis, " ms is not a midnight"));
      }
      out = millis / kDayMillis;
      return absl::OkStatus();
    }
    default:
      out = scratch_.int_value;
      return absl::OkStatus();
  }
}

absl::Status RowDecoderCore::ReadRow(ondemand::object& object, const CompiledTable& table,
                                     bool lenient, Row& row) {
  row = Row(table.schema);
  seen_.assign(table.columns.size(), 0);
  const std::string& placeholder = options_.unavailable_value_placeholder;
  for (auto field_result : object) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view name;
    if (auto error = FieldKey(field, name)) return JsonError(error);
    ondemand::value& value = field.value();
    auto found = table.index.find(weir::internal::ToAbsl(name));
    if (found == table.index.end()) {
      return Annotate(absl::InvalidArgumentError("not a column of the table's schema"),
                      Cat("field \"", name, "\""));
    }
    const size_t idx = static_cast<size_t>(found->second);
    const CompiledColumn& compiled = table.columns[idx];
    seen_[idx] = 1;
    absl::StatusOr<bool> is_null = ReadNull(value);
    if (!is_null.ok()) return is_null.status();
    if (*is_null) {
      if (!compiled.column.nullable && !lenient) {
        return Annotate(absl::InvalidArgumentError("null, but the column is not nullable"),
                        Cat("field \"", name, "\""));
      }
      continue;
    }
    if (!placeholder.empty()) {
      std::string_view token = value.raw_json_token();
      while (!token.empty() && token.back() != '"') token.remove_suffix(1);
      if (token.size() >= 2 && token.front() == '"' &&
          token.substr(1, token.size() - 2) == placeholder) {
        return Annotate(absl::InvalidArgumentError(
                            "the value is Debezium's placeholder for an unchanged TOASTed "
                            "column; set REPLICA IDENTITY FULL on the table to receive it"),
                        Cat("field \"", name, "\""));
      }
    }
    if (absl::Status status = ConvertValue(compiled, value, row.value(idx)); !status.ok()) {
      return Annotate(status, Cat("field \"", name, "\""));
    }
  }
  if (!lenient) {
    for (size_t idx = 0; idx < seen_.size(); ++idx) {
      if (seen_[idx] == 0 && !table.columns[idx].column.nullable) {
        return Annotate(absl::InvalidArgumentError("required, but missing"),
                        Cat("field \"", table.columns[idx].column.name, "\""));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RowChange> RowDecoderCore::Decode(std::string_view key, std::string_view value,
                                                 std::string_view topic) {
  RowChange change;
  if (IsBlankOrNull(value)) return change;  // a tombstone
  absl::StatusOr<std::vector<std::string>> key_columns = KeyColumns(key);
  if (!key_columns.ok()) return key_columns.status();

  ondemand::document document;
  ondemand::object top;
  if (absl::Status status = json_.LoadObject(value, "not a Debezium change event", document, top);
      !status.ok()) {
    return status;
  }
  // The envelope's fields: op, the rows (their text: decoding them needs the
  // table), source and ts_ms.
  std::optional<std::string_view> before_text;
  std::optional<std::string_view> after_text;
  std::optional<std::string> op_text;
  bool saw_status = false;
  bool saw_id = false;
  const auto envelope_field = [&](std::string_view name,
                                  ondemand::value& field_value) -> absl::Status {
    if (name == "op") {
      absl::StatusOr<std::string_view> text = weir::internal::ReadString(field_value);
      if (!text.ok()) return Annotate(text.status(), "field \"op\"");
      op_text.emplace(*text);
      return absl::OkStatus();
    }
    if (name == "before" || name == "after") {
      return CaptureObjectOrNull(field_value, name, name == "before" ? before_text : after_text);
    }
    if (name == "source") return ReadSourceInfo(field_value, change.source);
    if (name == "ts_ms") {
      absl::StatusOr<bool> is_null = ReadNull(field_value);
      if (!is_null.ok()) return is_null.status();
      if (!*is_null) {
        absl::StatusOr<int64_t> ts = ReadInt64(field_value);
        if (!ts.ok()) return Annotate(ts.status(), "field \"ts_ms\"");
        change.ts_ms = *ts;
      }
      return absl::OkStatus();
    }
    if (name == "status") saw_status = true;
    if (name == "id") saw_id = true;
    return SkipValue(field_value, 2);
  };
  // JsonConverter with schemas writes {"schema": ..., "payload": ...}; without,
  // the envelope itself. The first key tells which: a bare envelope is read
  // in this one pass.
  std::optional<std::string_view> schema_text;
  std::optional<std::string_view> payload_text;
  bool wrapped = false;
  bool first = true;
  for (auto field_result : top) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view name;
    if (auto error = FieldKey(field, name)) return JsonError(error);
    if (first) wrapped = name == "schema" || name == "payload";
    first = false;
    if (!wrapped) {
      if (absl::Status status = envelope_field(name, field.value()); !status.ok()) return status;
    } else if (name == "schema" || name == "payload") {
      if (absl::Status status = CaptureObjectOrNull(field.value(), name,
                                                    name == "schema" ? schema_text : payload_text);
          !status.ok()) {
        return status;
      }
    } else if (absl::Status status = SkipValue(field.value(), 1); !status.ok()) {
      return status;
    }
  }
  if (absl::Status status = weir::internal::CheckDocumentEnd(document); !status.ok()) {
    return status;
  }
  if (wrapped) {
    if (!payload_text.has_value()) return change;  // {"schema":..., "payload":null}
    if (absl::Status status = Iterate(*payload_text, document); !status.ok()) return status;
    ondemand::object envelope;
    if (auto error = document.get_object().get(envelope)) return JsonError(error);
    for (auto field_result : envelope) {
      if (auto error = field_result.error()) return JsonError(error);
      ondemand::field& field = field_result.value_unsafe();
      std::string_view name;
      if (auto error = FieldKey(field, name)) return JsonError(error);
      if (absl::Status status = envelope_field(name, field.value()); !status.ok()) return status;
    }
  }
  // Records that are not row changes, which a topic prefix can take in
  // (<prefix>.transaction) or a routing transform mix in: returned with
  // their op, for the caller to skip (as the sinks and the Kafka
  // deserializer do).
  if (!op_text.has_value()) {
    if (saw_status && saw_id && !before_text.has_value() && !after_text.has_value()) {
      change.op = Op::kTransaction;
      return change;
    }
    if (change.ts_ms.has_value() && !before_text.has_value() && !after_text.has_value() &&
        change.source == SourceInfo()) {
      change.op = Op::kHeartbeat;
      return change;
    }
    return absl::InvalidArgumentError("not a Debezium row change: no \"op\" field");
  }
  if (*op_text == "m") {
    change.op = Op::kMessage;
    return change;
  }
  if (*op_text == "c") {
    change.op = Op::kCreate;
  } else if (*op_text == "u") {
    change.op = Op::kUpdate;
  } else if (*op_text == "d") {
    change.op = Op::kDelete;
  } else if (*op_text == "r") {
    change.op = Op::kRead;
  } else if (*op_text == "t") {
    change.op = Op::kTruncate;
  } else {
    return absl::InvalidArgumentError(Cat("field \"op\": ", weir::internal::QuoteForError(*op_text),
                                          " is not a row change (c, u, d, r or t)"));
  }
  // The table and its declaration, computed once per run of records of one table.
  const std::string& namespace_name =
      change.source.schema.empty() ? change.source.db : change.source.schema;
  if (!last_source_valid_ || namespace_name != last_namespace_ ||
      change.source.table != last_source_table_ || topic != last_topic_) {
    last_declared_ = FindDeclared(change.source, topic);
    if (!change.source.table.empty()) {
      last_table_name_ = Cat(namespace_name, ".", change.source.table);
    } else if (last_declared_ != nullptr) {
      last_table_name_ = last_declared_->table;
    } else {
      last_table_name_ = std::string(topic);
    }
    last_namespace_ = namespace_name;
    last_source_table_ = change.source.table;
    last_topic_.assign(topic);
    last_source_valid_ = true;
  }
  const RowTable* declared = last_declared_;
  change.table = last_table_name_;
  const auto table_error = [&](const absl::Status& status) {
    return Annotate(status, Cat("table ", change.table));
  };
  switch (change.op) {
    case Op::kCreate:
    case Op::kUpdate:
    case Op::kRead:
      if (!after_text.has_value()) {
        return table_error(
            absl::InvalidArgumentError(Cat("op \"", *op_text, "\" without an \"after\" row")));
      }
      break;
    case Op::kDelete:
      if (after_text.has_value()) {
        return table_error(absl::InvalidArgumentError("op \"d\" with an \"after\" row"));
      }
      break;
    default:
      if (before_text.has_value() || after_text.has_value()) {
        return table_error(absl::InvalidArgumentError("op \"t\" with a row"));
      }
      break;
  }

  const CompiledTable* table = nullptr;
  if (schema_text.has_value()) {
    absl::StatusOr<const CompiledTable*> compiled =
        TableFromSchema(*schema_text, *key_columns, change.table, declared);
    if (!compiled.ok()) return table_error(Annotate(compiled.status(), "schema"));
    table = *compiled;
  } else if (declared != nullptr && !declared->columns.empty()) {
    absl::StatusOr<const CompiledTable*> compiled = DeclaredTable(*declared, change.table);
    if (!compiled.ok()) return table_error(compiled.status());
    table = *compiled;
  } else if (change.op != Op::kTruncate) {
    return table_error(absl::InvalidArgumentError(
        "the record has no schema (schemas.enable=false) and no RowTable declares the table's "
        "columns"));
  }
  const std::pair<std::optional<std::string_view>*, std::optional<Row>*> rows[] = {
      {&before_text, &change.before}, {&after_text, &change.after}};
  for (const auto& [text, row] : rows) {
    if (!text->has_value()) continue;
    if (absl::Status status = Iterate(**text, document); !status.ok()) return status;
    ondemand::object object;
    if (auto error = document.get_object().get(object)) return JsonError(error);
    row->emplace();
    const bool is_before = text == &before_text;
    if (absl::Status status = ReadRow(object, *table, /*lenient=*/is_before, **row); !status.ok()) {
      return table_error(Annotate(status, is_before ? "before" : "after"));
    }
  }
  if (change.op == Op::kDelete && !change.before.has_value()) {
    return table_error(absl::InvalidArgumentError("op \"d\" without a \"before\" row"));
  }
  change.topic = std::string(topic);
  return change;
}

void RowDecoderCoreDeleter::operator()(RowDecoderCore* core) const { delete core; }

}  // namespace internal

absl::StatusOr<RowDecoder> RowDecoder::Create(RowDecoderOptions options) {
  for (const RowTable& table : options.tables) {
    if (table.table.empty()) {
      return absl::InvalidArgumentError("RowDecoderOptions: a RowTable without a table name");
    }
    // The declared schema must be valid on its own (names, decimals, key).
    absl::StatusOr<std::shared_ptr<const RowSchema>> schema = RowSchema::Create(
        table.table, table.columns, table.columns.empty() ? std::vector<std::string>() : table.key);
    if (!schema.ok()) return weir::internal::Annotate(schema.status(), "RowDecoderOptions");
  }
  return RowDecoder(std::unique_ptr<internal::RowDecoderCore, internal::RowDecoderCoreDeleter>(
      new internal::RowDecoderCore(std::move(options))));
}

absl::StatusOr<RowChange> RowDecoder::Decode(std::string_view key, std::string_view value,
                                             std::string_view topic) {
  return core_->Decode(key, value, topic);
}

}  // namespace weir::debezium
