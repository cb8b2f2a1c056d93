// weir::Row: schema checks, text, and Codec<Row>.
//
// The codec writes the schema in front of the values. Decoding interns
// schemas per thread (the last few encodings seen), so the rows of a state
// read back share one RowSchema as the rows that were written did.

#include "weir/row.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/formats/str_cat.h"
#include "weir/formats/json.h"

namespace weir {

using weir::internal::Cat;

std::string_view ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kBool:
      return "bool";
    case ColumnType::kInt8:
      return "int8";
    case ColumnType::kInt16:
      return "int16";
    case ColumnType::kInt32:
      return "int32";
    case ColumnType::kInt64:
      return "int64";
    case ColumnType::kUInt64:
      return "uint64";
    case ColumnType::kFloat32:
      return "float32";
    case ColumnType::kFloat64:
      return "float64";
    case ColumnType::kDecimal:
      return "decimal";
    case ColumnType::kDecimalText:
      return "decimal text";
    case ColumnType::kString:
      return "string";
    case ColumnType::kJson:
      return "json";
    case ColumnType::kBytes:
      return "bytes";
    case ColumnType::kDate:
      return "date";
    case ColumnType::kTime:
      return "time";
    case ColumnType::kTimestamp:
      return "timestamp";
  }
  return "?";
}

absl::StatusOr<std::shared_ptr<const RowSchema>> RowSchema::Create(std::string table,
                                                                   std::vector<RowColumn> columns,
                                                                   std::vector<std::string> key) {
  absl::flat_hash_set<std::string> names;
  for (const RowColumn& column : columns) {
    if (column.name.empty()) {
      return absl::InvalidArgumentError(Cat("table ", table, ": a column without a name"));
    }
    if (!names.insert(column.name).second) {
      return absl::InvalidArgumentError(
          Cat("table ", table, ": column \"", column.name, "\" appears twice"));
    }
    if (column.type == ColumnType::kDecimal &&
        (column.precision < 1 || column.precision > 38 || column.scale < 0 ||
         column.scale > column.precision)) {
      return absl::InvalidArgumentError(Cat(
          "table ", table, ": column \"", column.name, "\": decimal precision ", column.precision,
          " and scale ", column.scale, " are not within 1..38 and 0..precision"));
    }
  }
  std::shared_ptr<RowSchema> schema(new RowSchema());
  schema->table_ = std::move(table);
  schema->columns_ = std::move(columns);
  for (const std::string& name : key) {
    const int idx = schema->Find(name);
    if (idx < 0) {
      return absl::InvalidArgumentError(
          Cat("table ", schema->table_, ": key column \"", name, "\" is not a column"));
    }
    if (schema->columns_[static_cast<size_t>(idx)].nullable) {
      return absl::InvalidArgumentError(
          Cat("table ", schema->table_, ": key column \"", name, "\" is nullable"));
    }
    schema->key_.push_back(idx);
  }
  return std::shared_ptr<const RowSchema>(std::move(schema));
}

int RowSchema::Find(std::string_view name) const {
  for (size_t idx = 0; idx < columns_.size(); ++idx) {
    if (columns_[idx].name == name) return static_cast<int>(idx);
  }
  return -1;
}

namespace {

std::string Int128Digits(absl::uint128 magnitude) {
  if (magnitude == 0) return "0";
  std::string digits;
  while (magnitude != 0) {
    digits.push_back(static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  }
  return std::string(digits.rbegin(), digits.rend());
}

}  // namespace

namespace internal {

std::string ScaledInt128ToString(absl::int128 unscaled, int32_t scale) {
  const bool negative = unscaled < 0;
  const absl::uint128 magnitude = negative ? absl::uint128(0) - static_cast<absl::uint128>(unscaled)
                                           : static_cast<absl::uint128>(unscaled);
  std::string digits = Int128Digits(magnitude);
  if (scale > 0) {
    if (digits.size() <= static_cast<size_t>(scale)) {
      digits.insert(0, static_cast<size_t>(scale) + 1 - digits.size(), '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale), 1, '.');
  }
  if (negative) digits.insert(0, 1, '-');
  return digits;
}

}  // namespace internal

std::string RowValueToString(const RowValue& value, const RowColumn& column) {
  return std::visit(
      [&](const auto& held) -> std::string {
        using V = std::decay_t<decltype(held)>;
        if constexpr (std::is_same_v<V, std::monostate>) {
          return "NULL";
        } else if constexpr (std::is_same_v<V, bool>) {
          return held ? "true" : "false";
        } else if constexpr (std::is_same_v<V, double>) {
          std::string out;
          json::AppendDouble(held, out);
          return out;
        } else if constexpr (std::is_same_v<V, absl::int128>) {
          return internal::ScaledInt128ToString(held, column.scale);
        } else if constexpr (std::is_same_v<V, std::string>) {
          return held;
        } else {
          return Cat(held);
        }
      },
      value);
}

const RowValue* Row::Find(std::string_view name) const {
  if (!schema_) return nullptr;
  const int idx = schema_->Find(name);
  return idx < 0 ? nullptr : &values_[static_cast<size_t>(idx)];
}

std::string Row::ToString() const {
  std::string out = "{";
  for (size_t idx = 0; idx < values_.size(); ++idx) {
    if (idx > 0) out.append(", ");
    if (schema_ && idx < schema_->columns().size()) {
      const RowColumn& column = schema_->columns()[idx];
      out.append(column.name).append("=").append(RowValueToString(values_[idx], column));
    } else {
      out.append(RowValueToString(values_[idx], RowColumn{}));
    }
  }
  out.append("}");
  return out;
}

bool operator==(const Row& a, const Row& b) {
  if (a.schema_ != b.schema_) {
    if (!a.schema_ || !b.schema_ || !(*a.schema_ == *b.schema_)) return false;
  }
  return a.values_ == b.values_;
}

namespace internal {
namespace {

constexpr uint8_t kRowCodecVersion = 1;

void EncodeSchema(const RowSchema& schema, std::string& out) {
  Codec<std::string>::Encode(schema.table(), out);
  AppendVarint(out, schema.columns().size());
  for (const RowColumn& column : schema.columns()) {
    Codec<std::string>::Encode(column.name, out);
    out.push_back(static_cast<char>(column.type));
    out.push_back(static_cast<char>(column.nullable ? 1 : 0));
    out.push_back(static_cast<char>(column.precision));
    out.push_back(static_cast<char>(column.scale));
    out.push_back(static_cast<char>(column.unit));
  }
  AppendVarint(out, schema.key().size());
  for (int idx : schema.key()) AppendVarint(out, static_cast<uint64_t>(idx));
}

bool DecodeSchema(std::string_view& in, std::shared_ptr<const RowSchema>& schema) {
  std::string table;
  uint64_t count = 0;
  if (!Codec<std::string>::Decode(in, table) || !ReadVarint(in, count) || count > in.size()) {
    return false;
  }
  std::vector<RowColumn> columns(count);
  for (RowColumn& column : columns) {
    if (!Codec<std::string>::Decode(in, column.name) || in.size() < 5) return false;
    const auto type = static_cast<uint8_t>(in[0]);
    const auto unit = static_cast<uint8_t>(in[4]);
    if (type > static_cast<uint8_t>(ColumnType::kTimestamp) ||
        unit > static_cast<uint8_t>(RowTimeUnit::kNanos) || static_cast<uint8_t>(in[1]) > 1) {
      return false;
    }
    column.type = static_cast<ColumnType>(type);
    column.nullable = in[1] == 1;
    column.precision = static_cast<int8_t>(in[2]);
    column.scale = static_cast<int8_t>(in[3]);
    column.unit = static_cast<RowTimeUnit>(unit);
    in.remove_prefix(5);
  }
  uint64_t key_count = 0;
  if (!ReadVarint(in, key_count) || key_count > count) return false;
  std::vector<std::string> key;
  for (uint64_t idx = 0; idx < key_count; ++idx) {
    uint64_t column_idx = 0;
    if (!ReadVarint(in, column_idx) || column_idx >= count) return false;
    key.push_back(columns[column_idx].name);
  }
  absl::StatusOr<std::shared_ptr<const RowSchema>> created =
      RowSchema::Create(std::move(table), std::move(columns), std::move(key));
  if (!created.ok()) return false;
  schema = *std::move(created);
  return true;
}

// The schemas this thread decoded last, by their encoding.
struct SchemaCache {
  static constexpr size_t kSlots = 8;
  std::array<std::pair<std::string, std::shared_ptr<const RowSchema>>, kSlots> slots;
  size_t next = 0;
};

bool DecodeValue(std::string_view& in, ColumnType type, RowValue& value) {
  if (in.empty()) return false;
  const auto tag = static_cast<uint8_t>(in[0]);
  in.remove_prefix(1);
  if (tag == 0) {
    value = std::monostate();
    return true;
  }
  switch (type) {
    case ColumnType::kBool: {
      bool held = false;
      if (!Codec<bool>::Decode(in, held)) return false;
      value = held;
      return true;
    }
    case ColumnType::kUInt64: {
      uint64_t held = 0;
      if (!Codec<uint64_t>::Decode(in, held)) return false;
      value = held;
      return true;
    }
    case ColumnType::kFloat32:
    case ColumnType::kFloat64: {
      double held = 0;
      if (!Codec<double>::Decode(in, held)) return false;
      value = held;
      return true;
    }
    case ColumnType::kDecimal: {
      uint64_t high = 0;
      uint64_t low = 0;
      if (!Codec<uint64_t>::Decode(in, high) || !Codec<uint64_t>::Decode(in, low)) return false;
      value = static_cast<absl::int128>(absl::MakeUint128(high, low));
      return true;
    }
    case ColumnType::kDecimalText:
    case ColumnType::kString:
    case ColumnType::kJson:
    case ColumnType::kBytes: {
      std::string held;
      if (!Codec<std::string>::Decode(in, held)) return false;
      value = std::move(held);
      return true;
    }
    default: {
      int64_t held = 0;
      if (!Codec<int64_t>::Decode(in, held)) return false;
      value = held;
      return true;
    }
  }
}

}  // namespace

void EncodeRow(const Row& row, std::string& out) {
  out.push_back(static_cast<char>(kRowCodecVersion));
  if (!row.has_schema()) {
    out.push_back(0);
    return;
  }
  out.push_back(1);
  std::string schema;
  EncodeSchema(row.schema(), schema);
  AppendVarint(out, schema.size());
  out.append(schema);
  const std::vector<RowColumn>& columns = row.schema().columns();
  for (size_t idx = 0; idx < columns.size(); ++idx) {
    const RowValue& value = row.value(idx);
    if (std::holds_alternative<std::monostate>(value)) {
      out.push_back(0);
      continue;
    }
    out.push_back(1);
    std::visit(
        [&](const auto& held) {
          using V = std::decay_t<decltype(held)>;
          if constexpr (std::is_same_v<V, absl::int128>) {
            const auto bits = static_cast<absl::uint128>(held);
            Codec<uint64_t>::Encode(absl::Uint128High64(bits), out);
            Codec<uint64_t>::Encode(absl::Uint128Low64(bits), out);
          } else if constexpr (!std::is_same_v<V, std::monostate>) {
            Codec<V>::Encode(held, out);
          }
        },
        value);
  }
}

bool DecodeRow(std::string_view& in, Row& row) {
  thread_local SchemaCache cache;
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kRowCodecVersion) return false;
  const bool has_schema = in[1] == 1;
  if (static_cast<uint8_t>(in[1]) > 1) return false;
  in.remove_prefix(2);
  if (!has_schema) {
    row = Row();
    return true;
  }
  uint64_t schema_size = 0;
  if (!ReadVarint(in, schema_size) || schema_size > in.size()) return false;
  const std::string_view schema_bytes = in.substr(0, schema_size);
  in.remove_prefix(schema_size);
  std::shared_ptr<const RowSchema> schema;
  for (const auto& [bytes, cached] : cache.slots) {
    if (cached && bytes == schema_bytes) {
      schema = cached;
      break;
    }
  }
  if (!schema) {
    std::string_view reader = schema_bytes;
    if (!DecodeSchema(reader, schema) || !reader.empty()) return false;
    cache.slots[cache.next] = {std::string(schema_bytes), schema};
    cache.next = (cache.next + 1) % SchemaCache::kSlots;
  }
  std::vector<RowValue> values(schema->columns().size());
  for (size_t idx = 0; idx < values.size(); ++idx) {
    if (!DecodeValue(in, schema->columns()[idx].type, values[idx])) return false;
  }
  row = Row(std::move(schema), std::move(values));
  return true;
}

}  // namespace internal
}  // namespace weir
