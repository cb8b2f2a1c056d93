#include "tools/capture/debezium_json.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/connectors/postgres/text_value.h"
#include "weir/formats/json.h"

namespace weir::capture {
namespace {

using postgres::ColumnKind;
using postgres::ColumnValue;
using postgres::RowChange;

constexpr std::string_view kUnavailable = "__debezium_unavailable_value";

// The Kafka Connect schema of one value of `column` (an array's element
// when `element`).
void WriteValueSchema(const ColumnValue& column, json::Writer& out) {
  const char* type = "string";
  const char* name = nullptr;
  switch (column.kind) {
    case ColumnKind::kBool:
      type = "boolean";
      break;
    case ColumnKind::kInteger:
      type = column.size == 2 ? "int16" : column.size == 8 ? "int64" : "int32";
      break;
    case ColumnKind::kFloat:
      type = column.size == 4 ? "float" : "double";
      break;
    case ColumnKind::kUuid:
      name = "io.debezium.data.Uuid";
      break;
    case ColumnKind::kJson:
      name = "io.debezium.data.Json";
      break;
    case ColumnKind::kTimestampTz:
      name = "io.debezium.time.ZonedTimestamp";
      break;
    case ColumnKind::kTimestamp:
      type = "int64";
      name = "io.debezium.time.MicroTimestamp";
      break;
    case ColumnKind::kDate:
      type = "int32";
      name = "io.debezium.time.Date";
      break;
    case ColumnKind::kTime:
      type = "int64";
      name = "io.debezium.time.MicroTime";
      break;
    case ColumnKind::kBytea:
      type = "bytes";
      break;
    case ColumnKind::kNumeric:  // decimal.handling.mode=string
    case ColumnKind::kText:
    case ColumnKind::kOther:
      break;
  }
  out.Key("type").String(type);
  if (name != nullptr) out.Key("name").String(name).Key("version").Int(1);
}

void WriteFieldSchema(const ColumnValue& column, json::Writer& out) {
  out.BeginObject();
  if (column.is_array) {
    out.Key("type").String("array").Key("items").BeginObject();
    WriteValueSchema(column, out);
    out.Key("optional").Bool(true).EndObject();
  } else {
    WriteValueSchema(column, out);
  }
  out.Key("optional").Bool(!column.key).Key("field").String(column.name).EndObject();
}

void WriteRowSchema(const std::vector<ColumnValue>& columns, const std::string& name,
                    const char* field, bool keys_only, json::Writer& out) {
  out.BeginObject().Key("type").String("struct").Key("fields").BeginArray();
  for (const ColumnValue& column : columns) {
    if (!keys_only || column.key) WriteFieldSchema(column, out);
  }
  out.EndArray().Key("optional").Bool(field != nullptr).Key("name").String(name);
  if (field != nullptr) out.Key("field").String(field);
  out.EndObject();
}

absl::Status WriteScalar(const ColumnValue& column, std::string_view text, json::Writer& out) {
  const absl::string_view view(text.data(), text.size());
  auto bad = [&](const absl::Status& status) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", column.name, "\": ", status.message()));
  };
  switch (column.kind) {
    case ColumnKind::kBool:
      out.Bool(text == "t");
      return absl::OkStatus();
    case ColumnKind::kInteger:
      out.Raw(text);
      return absl::OkStatus();
    case ColumnKind::kFloat:
      // JsonConverter writes the non-finite doubles as strings.
      if (text == "NaN" || text == "Infinity" || text == "-Infinity") {
        out.String(text);
      } else {
        out.Raw(text);
      }
      return absl::OkStatus();
    case ColumnKind::kTimestampTz: {
      absl::StatusOr<int64_t> micros = postgres::internal::ParseTimestampMicros(view);
      if (!micros.ok()) return bad(micros.status());
      out.String(absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(*micros),
                                  absl::UTCTimeZone()));
      return absl::OkStatus();
    }
    case ColumnKind::kTimestamp: {
      absl::StatusOr<int64_t> micros = postgres::internal::ParseTimestampMicros(view);
      if (!micros.ok()) return bad(micros.status());
      out.Int(*micros);
      return absl::OkStatus();
    }
    case ColumnKind::kDate: {
      absl::StatusOr<int64_t> days = postgres::internal::ParseDateDays(view);
      if (!days.ok()) return bad(days.status());
      out.Int(*days);
      return absl::OkStatus();
    }
    case ColumnKind::kTime: {
      absl::StatusOr<int64_t> micros = postgres::internal::ParseTimeMicros(view);
      if (!micros.ok()) return bad(micros.status());
      out.Int(*micros);
      return absl::OkStatus();
    }
    case ColumnKind::kBytea: {
      if (text.size() < 2 || text.substr(0, 2) != "\\x") {
        return bad(absl::InvalidArgumentError("bytea not in hex format"));
      }
      out.String(absl::Base64Escape(
          absl::HexStringToBytes(absl::string_view(text.data() + 2, text.size() - 2))));
      return absl::OkStatus();
    }
    case ColumnKind::kNumeric:
    case ColumnKind::kText:
    case ColumnKind::kUuid:
    case ColumnKind::kJson:
    case ColumnKind::kOther:
      out.String(text);
      return absl::OkStatus();
  }
  return absl::InternalError("unknown column kind");
}

absl::Status WriteColumn(const ColumnValue& column, json::Writer& out) {
  if (column.state == ColumnValue::State::kNull) {
    out.Null();
    return absl::OkStatus();
  }
  if (column.state == ColumnValue::State::kUnchanged) {
    out.String(kUnavailable);
    return absl::OkStatus();
  }
  if (!column.is_array) return WriteScalar(column, column.text, out);
  absl::StatusOr<std::vector<std::optional<std::string>>> elements =
      postgres::internal::ParseArrayText(column.text);
  if (!elements.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", column.name, "\": ", elements.status().message()));
  }
  out.BeginArray();
  for (const std::optional<std::string>& element : *elements) {
    if (!element.has_value()) {
      out.Null();
      continue;
    }
    absl::Status status = WriteScalar(column, *element, out);
    if (!status.ok()) return status;
  }
  out.EndArray();
  return absl::OkStatus();
}

absl::Status WriteRow(const std::optional<std::vector<ColumnValue>>& row, bool keys_only,
                      json::Writer& out) {
  if (!row.has_value()) {
    out.Null();
    return absl::OkStatus();
  }
  out.BeginObject();
  for (const ColumnValue& column : *row) {
    if (keys_only && !column.key) continue;
    out.Key(column.name);
    absl::Status status = WriteColumn(column, out);
    if (!status.ok()) return status;
  }
  out.EndObject();
  return absl::OkStatus();
}

void WriteSourceSchema(json::Writer& out) {
  out.BeginObject().Key("type").String("struct").Key("fields").BeginArray();
  auto field = [&](const char* type, const char* name, bool optional) {
    out.BeginObject()
        .Key("type")
        .String(type)
        .Key("optional")
        .Bool(optional)
        .Key("field")
        .String(name)
        .EndObject();
  };
  field("string", "version", false);
  field("string", "connector", false);
  field("string", "name", false);
  field("int64", "ts_ms", false);
  field("string", "snapshot", true);
  field("string", "db", false);
  field("string", "schema", false);
  field("string", "table", false);
  field("int64", "txId", true);
  field("int64", "lsn", true);
  out.EndArray()
      .Key("optional")
      .Bool(false)
      .Key("name")
      .String("io.debezium.connector.postgresql.Source")
      .Key("field")
      .String("source")
      .EndObject();
}

const std::vector<ColumnValue>* ColumnsOf(const RowChange& change) {
  if (change.after.has_value()) return &*change.after;
  if (change.before.has_value()) return &*change.before;
  return nullptr;
}

}  // namespace

std::string TopicOf(const std::string& prefix, const RowChange& change) {
  return absl::StrCat(prefix, ".", change.source.schema, ".", change.source.table);
}

namespace {

// The envelope's schema for rows of `columns`.
std::string ValueSchema(const std::vector<ColumnValue>& columns, const std::string& topic) {
  std::string text;
  json::Writer out(text);
  out.BeginObject().Key("type").String("struct").Key("fields").BeginArray();
  WriteRowSchema(columns, topic + ".Value", "before", false, out);
  WriteRowSchema(columns, topic + ".Value", "after", false, out);
  WriteSourceSchema(out);
  out.BeginObject()
      .Key("type")
      .String("string")
      .Key("optional")
      .Bool(false)
      .Key("field")
      .String("op")
      .EndObject();
  out.BeginObject()
      .Key("type")
      .String("int64")
      .Key("optional")
      .Bool(true)
      .Key("field")
      .String("ts_ms")
      .EndObject();
  out.EndArray().Key("optional").Bool(false).Key("name").String(topic + ".Envelope").EndObject();
  return text;
}

std::string KeySchema(const std::vector<ColumnValue>& columns, const std::string& topic) {
  std::string text;
  json::Writer out(text);
  WriteRowSchema(columns, topic + ".Key", nullptr, true, out);
  return text;
}

bool HasKey(const std::vector<ColumnValue>* columns) {
  if (columns == nullptr) return false;
  for (const ColumnValue& column : *columns) {
    if (column.key) return true;
  }
  return false;
}

// The value, `schema` (JSON text, or empty for none) and the payload.
absl::StatusOr<std::string> WriteValue(const RowChange& change, const std::string& schema) {
  std::string text;
  json::Writer out(text);
  out.BeginObject();
  if (!schema.empty()) {
    out.Key("schema").Raw(schema);
    out.Key("payload").BeginObject();
  }
  out.Key("before");
  absl::Status status = WriteRow(change.before, false, out);
  if (!status.ok()) return status;
  out.Key("after");
  status = WriteRow(change.after, false, out);
  if (!status.ok()) return status;
  out.Key("source");
  debezium::WritePostgresSource(change.source, out);
  out.Key("op").String(debezium::OpName(change.op));
  out.Key("ts_ms").Optional(change.ts_ms);
  out.EndObject();
  if (!schema.empty()) out.EndObject();
  return text;
}

absl::StatusOr<std::string> WriteKey(const RowChange& change, const std::string& schema) {
  const std::vector<ColumnValue>* columns = ColumnsOf(change);
  if (!HasKey(columns)) return std::string();  // a truncate, or a table without a key
  std::string text;
  json::Writer out(text);
  if (!schema.empty()) out.BeginObject().Key("schema").Raw(schema).Key("payload");
  absl::Status status = WriteRow(*columns, true, out);
  if (!status.ok()) return status;
  if (!schema.empty()) out.EndObject();
  return text;
}

bool SameShape(const std::vector<ColumnValue>& a, const std::vector<ColumnValue>& b) {
  if (a.size() != b.size()) return false;
  for (size_t idx = 0; idx < a.size(); ++idx) {
    if (a[idx].name != b[idx].name || a[idx].kind != b[idx].kind || a[idx].size != b[idx].size ||
        a[idx].is_array != b[idx].is_array || a[idx].key != b[idx].key) {
      return false;
    }
  }
  return true;
}

const std::vector<ColumnValue>& NoColumns() {
  static const std::vector<ColumnValue>* const kNone = new std::vector<ColumnValue>();
  return *kNone;
}

}  // namespace

absl::StatusOr<std::string> EncodeValue(const RowChange& change, const std::string& topic,
                                        bool with_schema) {
  const std::vector<ColumnValue>* columns = ColumnsOf(change);
  return WriteValue(change,
                    with_schema ? ValueSchema(columns ? *columns : NoColumns(), topic) : "");
}

absl::StatusOr<std::string> EncodeKey(const RowChange& change, const std::string& topic,
                                      bool with_schema) {
  const std::vector<ColumnValue>* columns = ColumnsOf(change);
  if (!HasKey(columns)) return std::string();
  return WriteKey(change, with_schema ? KeySchema(*columns, topic) : "");
}

const Encoder::Schemas& Encoder::SchemasOf(const RowChange& change, const std::string& topic) {
  const std::vector<ColumnValue>& columns =
      ColumnsOf(change) != nullptr ? *ColumnsOf(change) : NoColumns();
  Schemas& schemas = cache_[topic];
  if (schemas.value.empty() || !SameShape(schemas.shape, columns)) {
    schemas.shape = columns;
    for (ColumnValue& column : schemas.shape) column.text.clear();
    schemas.value = ValueSchema(columns, topic);
    schemas.key = KeySchema(columns, topic);
  }
  return schemas;
}

absl::StatusOr<std::string> Encoder::Value(const RowChange& change, const std::string& topic) {
  if (!with_schema_) return WriteValue(change, "");
  // A truncate has no columns: its schema is not cached over the rows'.
  if (ColumnsOf(change) == nullptr) return EncodeValue(change, topic, true);
  return WriteValue(change, SchemasOf(change, topic).value);
}

absl::StatusOr<std::string> Encoder::Key(const RowChange& change, const std::string& topic) {
  if (!HasKey(ColumnsOf(change))) return std::string();
  if (!with_schema_) return WriteKey(change, "");
  return WriteKey(change, SchemasOf(change, topic).key);
}

}  // namespace weir::capture
