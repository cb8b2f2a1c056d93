#include "lib/formats/debezium_schema.h"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/status.h"
#include "lib/formats/json_reader.h"
#include "lib/formats/str_cat.h"
#include "simdjson.h"

namespace weir::debezium::internal {
namespace {

using weir::internal::Cat;

namespace ondemand = simdjson::ondemand;
using weir::internal::FieldKey;
using weir::internal::JsonError;
using weir::internal::ReadNull;
using weir::internal::ReadString;
using weir::internal::SkipValue;
using weir::internal::TypeOf;
using weir::internal::Unexpected;

// Envelope -> before/after -> columns; deeper structs (a column that is a
// struct, e.g. VariableScaleDecimal) are validated but not kept.
constexpr int kMaxSchemaLevels = 3;

struct SchemaNode {
  std::string type;
  std::string name;
  std::string field;
  std::optional<int32_t> scale;
  std::optional<int32_t> precision;
  bool optional = false;
  std::vector<SchemaNode> fields;
  // An array's element schema (at most one).
  std::vector<SchemaNode> items;
};

// Kafka Connect's JsonConverter writes "double"/"float" as well as
// "float64"/"float32"; one spelling for everything that reads the type.
void NormalizeType(std::string& type) {
  if (type == "double") {
    type = "float64";
  } else if (type == "float") {
    type = "float32";
  }
}

ColumnSchema ToColumn(const SchemaNode& node) {
  ColumnSchema column{node.type, node.name, node.scale, node.precision, node.optional, {}};
  for (const SchemaNode& item : node.items) column.items.push_back(ToColumn(item));
  return column;
}

absl::Status SchemaError(std::string_view what, const absl::Status& cause) {
  return weir::internal::Annotate(cause, Cat("schema: ", what));
}

absl::Status ReadParameters(ondemand::value& value, SchemaNode& node, int depth) {
  absl::StatusOr<bool> is_null = ReadNull(value);
  if (!is_null.ok() || *is_null) return is_null.status();
  ondemand::object object;
  if (value.get_object().get(object))
    return SchemaError("\"parameters\"", Unexpected("object", value));
  for (auto field_result : object) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    const bool is_precision = key == "connect.decimal.precision";
    if (key != "scale" && !is_precision) {
      if (absl::Status status = SkipValue(field.value(), depth + 1); !status.ok()) return status;
      continue;
    }
    // Kafka Connect writes parameters as strings ("2").
    absl::StatusOr<std::string_view> text = ReadString(field.value());
    if (!text.ok()) return SchemaError("\"scale\"", text.status());
    int32_t scale = 0;
    auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), scale);
    if (error != std::errc() || end != text->data() + text->size()) {
      return absl::InvalidArgumentError(
          Cat("schema: \"scale\" is not an int32: ", weir::internal::QuoteForError(*text)));
    }
    (is_precision ? node.precision : node.scale) = scale;
  }
  return absl::OkStatus();
}

absl::Status ReadNode(ondemand::object& object, int level, int depth, SchemaNode& node);

absl::Status ReadFields(ondemand::value& value, int level, int depth, SchemaNode& node) {
  absl::StatusOr<bool> is_null = ReadNull(value);
  if (!is_null.ok() || *is_null) return is_null.status();
  if (level >= kMaxSchemaLevels) return SkipValue(value, depth);
  ondemand::array array;
  if (value.get_array().get(array)) return SchemaError("\"fields\"", Unexpected("array", value));
  for (auto element_result : array) {
    if (auto error = element_result.error()) return JsonError(error);
    ondemand::value& element = element_result.value_unsafe();
    absl::StatusOr<ondemand::json_type> element_type = TypeOf(element);
    if (!element_type.ok()) return element_type.status();
    if (*element_type != ondemand::json_type::object) {
      return SchemaError("\"fields\" element", Unexpected("object", element));
    }
    ondemand::object child_object;
    if (auto error = element.get_object().get(child_object)) return JsonError(error);
    SchemaNode child;
    if (absl::Status status = ReadNode(child_object, level + 1, depth + 2, child); !status.ok()) {
      return status;
    }
    node.fields.push_back(std::move(child));
  }
  return absl::OkStatus();
}

absl::Status ReadNode(ondemand::object& object, int level, int depth, SchemaNode& node) {
  if (depth > weir::internal::kMaxJsonDepth) {
    return absl::InvalidArgumentError("schema: nested too deeply");
  }
  for (auto field_result : object) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    ondemand::value& value = field.value();
    std::string* text_member = nullptr;
    if (key == "type") {
      text_member = &node.type;
    } else if (key == "name") {
      text_member = &node.name;
    } else if (key == "field") {
      text_member = &node.field;
    }
    if (text_member != nullptr) {
      absl::StatusOr<bool> is_null = ReadNull(value);
      if (!is_null.ok()) return is_null.status();
      if (*is_null) continue;
      absl::StatusOr<std::string_view> text = ReadString(value);
      if (!text.ok()) return SchemaError(Cat("\"", key, "\""), text.status());
      text_member->assign(*text);
    } else if (key == "optional") {
      absl::StatusOr<bool> is_null = ReadNull(value);
      if (!is_null.ok()) return is_null.status();
      if (*is_null) continue;
      if (value.get_bool().get(node.optional)) {
        return SchemaError("\"optional\"", Unexpected("boolean", value));
      }
    } else if (key == "parameters") {
      if (absl::Status status = ReadParameters(value, node, depth + 1); !status.ok()) return status;
    } else if (key == "fields") {
      if (absl::Status status = ReadFields(value, level, depth + 1, node); !status.ok()) {
        return status;
      }
    } else if (key == "items" && level < kMaxSchemaLevels) {
      // An array column's element schema (arrays of arrays keep only the
      // outer level's type, which no declaration can take).
      absl::StatusOr<bool> is_null = ReadNull(value);
      if (!is_null.ok()) return is_null.status();
      if (*is_null) continue;
      ondemand::object items;
      if (value.get_object().get(items)) {
        return SchemaError("\"items\"", Unexpected("object", value));
      }
      SchemaNode item;
      if (absl::Status status = ReadNode(items, level + 1, depth + 2, item); !status.ok()) {
        return status;
      }
      node.items.clear();
      node.items.push_back(std::move(item));
    } else if (absl::Status status = SkipValue(value, depth + 1); !status.ok()) {
      return status;
    }
  }
  NormalizeType(node.type);
  return absl::OkStatus();
}

// The row schema inside an envelope schema: "after" (or "before").
const SchemaNode* RowNode(const SchemaNode& root, bool envelope) {
  if (!envelope) return &root;
  const SchemaNode* row = nullptr;
  for (const SchemaNode& child : root.fields) {
    if (child.field == "after") return &child;
    if (child.field == "before") row = &child;
  }
  return row;
}

}  // namespace

absl::Status ReadRowSchema(ondemand::object& schema, bool envelope,
                           std::vector<NamedColumnSchema>& columns, std::string* root_name) {
  SchemaNode root;
  if (absl::Status status = ReadNode(schema, 0, 1, root); !status.ok()) return status;
  if (root_name != nullptr) *root_name = root.name;
  columns.clear();
  const SchemaNode* row = RowNode(root, envelope);
  if (row == nullptr) return absl::OkStatus();
  for (const SchemaNode& column : row->fields) {
    columns.push_back({column.field, ToColumn(column)});
  }
  return absl::OkStatus();
}

absl::Status ResolveSchema(ondemand::object& schema, bool envelope,
                           const absl::flat_hash_map<std::string, int>& columns,
                           ResolvedSchema& resolved, std::string* root_name) {
  SchemaNode root;
  if (absl::Status status = ReadNode(schema, 0, 1, root); !status.ok()) return status;
  if (root_name != nullptr) *root_name = root.name;
  resolved.assign(columns.size(), std::nullopt);
  const SchemaNode* row = RowNode(root, envelope);
  if (row == nullptr) return absl::OkStatus();
  for (const SchemaNode& column : row->fields) {
    auto found = columns.find(column.field);
    if (found == columns.end()) continue;
    resolved[static_cast<size_t>(found->second)] = ToColumn(column);
  }
  return absl::OkStatus();
}

}  // namespace weir::debezium::internal
