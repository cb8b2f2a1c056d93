#include "lib/formats/row_mapping.h"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/formats/str_cat.h"

namespace weir::mirror::internal {

using weir::internal::Cat;

namespace {

const TableMapping* FindMapping(std::string_view source_table, const MirrorOptions& options) {
  const size_t dot = source_table.rfind('.');
  const std::string_view bare =
      dot == std::string_view::npos ? source_table : source_table.substr(dot + 1);
  for (const TableMapping& mapping : options.tables) {
    if (mapping.source == source_table || mapping.source == bare) return &mapping;
  }
  return nullptr;
}

}  // namespace

std::optional<std::string> TargetTable(std::string_view source_table,
                                       const MirrorOptions& options) {
  const TableMapping* mapping = FindMapping(source_table, options);
  if (mapping == nullptr && options.only_listed) return std::nullopt;
  if (mapping != nullptr && !mapping->target.empty()) return mapping->target;
  const size_t dot = source_table.rfind('.');
  return std::string(dot == std::string_view::npos ? source_table : source_table.substr(dot + 1));
}

absl::StatusOr<MappedTable> MapSchema(const RowSchema& schema, std::string_view target,
                                      const MirrorOptions& options) {
  const TableMapping* mapping = FindMapping(schema.table(), options);
  MappedTable mapped;
  mapped.target = std::string(target);
  if (schema.key().empty()) {
    return absl::InvalidArgumentError(
        Cat("table ", schema.table(),
            ": no primary key (the record key has no columns and none is declared); a mirror "
            "needs one to apply updates and deletes"));
  }
  for (size_t idx = 0; idx < schema.columns().size(); ++idx) {
    const RowColumn& column = schema.columns()[idx];
    bool key = false;
    for (int key_idx : schema.key()) key = key || key_idx == static_cast<int>(idx);
    std::string name = column.name;
    if (mapping != nullptr) {
      bool excluded = false;
      for (const std::string& exclude : mapping->exclude_columns) excluded |= exclude == name;
      if (excluded) {
        if (key) {
          return absl::InvalidArgumentError(
              Cat("table ", schema.table(), ": key column \"", name, "\" cannot be left out"));
        }
        continue;
      }
      for (const auto& [from, to] : mapping->rename_columns) {
        if (from == column.name) name = to;
      }
    }
    mapped.columns.push_back({name, static_cast<int>(idx), column, key});
  }
  for (int key_idx : schema.key()) {
    for (const MappedColumn& column : mapped.columns) {
      if (column.source_idx == key_idx) mapped.key.push_back(column.name);
    }
  }
  return mapped;
}

uint64_t ChangeVersion(const debezium::RowChange& change) {
  if (change.offset >= 0) return static_cast<uint64_t>(change.offset);
  if (change.source.lsn.has_value()) {
    // A snapshot row carries the slot's consistent LSN, where the first
    // streamed change may start: one less keeps it below that change.
    const uint64_t lsn = static_cast<uint64_t>(*change.source.lsn);
    const bool snapshot = change.op == debezium::Op::kRead && lsn > 0;
    return snapshot ? lsn - 1 : lsn;
  }
  if (change.source.pos.has_value()) {
    // mysql-bin.000042 -> 42: 20 bits of file number, 32 of position, 12 of row.
    uint64_t file_number = 0;
    const std::string& file = change.source.file;
    const size_t dot = file.rfind('.');
    if (dot != std::string::npos) {
      std::from_chars(file.data() + dot + 1, file.data() + file.size(), file_number);
    }
    return (file_number << 44) | (static_cast<uint64_t>(*change.source.pos) << 12) |
           static_cast<uint64_t>(change.source.row.value_or(0) & 0xfff);
  }
  return 0;
}

DeadLetter MirrorDeadLetter(const debezium::RowChange& change, const absl::Status& error) {
  DeadLetter letter;
  const Row* row = change.row();
  letter.payload = Cat(change.table, " op ", debezium::OpName(change.op), " ",
                       row != nullptr ? row->ToString() : std::string("{}"));
  letter.code = error.code();
  letter.error = std::string(error.message());
  letter.stage = "mirror";
  letter.topic = change.topic;
  letter.partition = change.offset >= 0 ? change.partition : -1;
  letter.offset = change.offset;
  letter.timestamp_ms = change.source.ts_ms > 0 ? change.source.ts_ms : -1;
  return letter;
}

}  // namespace weir::mirror::internal
