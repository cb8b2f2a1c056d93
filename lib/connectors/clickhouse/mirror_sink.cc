// The ClickHouse mirror sink (weir/connectors/clickhouse_mirror.h).
//
// Each writer keeps, per target table, the columns the ClickHouse table has
// (read from system.columns, or created), the source schema its buffered
// rows follow, and a RowBinary buffer. A row of a schema it has not seen is
// checked against the table first: new columns are added (after the
// buffered rows are inserted, since the INSERT names the columns), a column
// whose type differs makes the table incompatible.

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/common/http_client.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/connectors/clickhouse/clickhouse_http.h"
#include "lib/formats/row_mapping.h"
#include "lib/formats/str_cat.h"
#include "weir/connectors/clickhouse_mirror.h"

namespace weir::clickhouse {
namespace {

using weir::internal::Cat;
using weir::mirror::internal::MappedColumn;
using weir::mirror::internal::MappedTable;

// The ClickHouse type of a source column, without Nullable.
std::string BaseType(const RowColumn& column, bool datetime64) {
  switch (column.type) {
    case ColumnType::kBool:
      return "UInt8";
    case ColumnType::kInt8:
      return "Int8";
    case ColumnType::kInt16:
      return "Int16";
    case ColumnType::kInt32:
      return "Int32";
    case ColumnType::kInt64:
    case ColumnType::kTime:
      return "Int64";
    case ColumnType::kUInt64:
      return "UInt64";
    case ColumnType::kFloat32:
      return "Float32";
    case ColumnType::kFloat64:
      return "Float64";
    case ColumnType::kDecimal:
      return Cat("Decimal(", column.precision, ", ", column.scale, ")");
    case ColumnType::kDecimalText:
    case ColumnType::kString:
    case ColumnType::kJson:
    case ColumnType::kBytes:
      return "String";
    case ColumnType::kDate:
      return "Date";
    case ColumnType::kTimestamp:
      if (!datetime64) return "Int64";
      return Cat("DateTime64(",
                 column.unit == RowTimeUnit::kMillis   ? 3
                 : column.unit == RowTimeUnit::kMicros ? 6
                                                       : 9,
                 ", 'UTC')");
  }
  return "String";
}

std::string FullType(const MappedColumn& mapped, bool datetime64) {
  const std::string base = BaseType(mapped.column, datetime64);
  return mapped.column.nullable && !mapped.key ? Cat("Nullable(", base, ")") : base;
}

// One column of the INSERT: where its value comes from and how it is encoded.
struct InsertColumn {
  std::string name;
  int source_idx = 0;
  RowColumn column;
  bool nullable = false;  // the ClickHouse column is Nullable
};

void AppendLe(uint64_t value, size_t bytes, std::string& out) {
  for (size_t idx = 0; idx < bytes; ++idx) out.push_back(static_cast<char>(value >> (8 * idx)));
}

// Appends `value` (NULL: the type's default) in RowBinary.
absl::Status AppendValue(const InsertColumn& insert, const RowValue& value, std::string& out) {
  const bool is_null = std::holds_alternative<std::monostate>(value);
  if (insert.nullable) {
    out.push_back(is_null ? 1 : 0);
    if (is_null) return absl::OkStatus();
  }
  const RowColumn& column = insert.column;
  switch (column.type) {
    case ColumnType::kBool:
      out.push_back(!is_null && std::get<bool>(value) ? 1 : 0);
      return absl::OkStatus();
    case ColumnType::kInt8:
    case ColumnType::kInt16:
    case ColumnType::kInt32:
    case ColumnType::kInt64:
    case ColumnType::kTime:
    case ColumnType::kTimestamp: {
      const int64_t held = is_null ? 0 : std::get<int64_t>(value);
      const size_t bytes = column.type == ColumnType::kInt8    ? 1
                           : column.type == ColumnType::kInt16 ? 2
                           : column.type == ColumnType::kInt32 ? 4
                                                               : 8;
      AppendLe(static_cast<uint64_t>(held), bytes, out);
      return absl::OkStatus();
    }
    case ColumnType::kUInt64:
      AppendLe(is_null ? 0 : std::get<uint64_t>(value), 8, out);
      return absl::OkStatus();
    case ColumnType::kFloat32: {
      const float held = is_null ? 0.0f : static_cast<float>(std::get<double>(value));
      uint32_t bits = 0;
      std::memcpy(&bits, &held, sizeof(bits));
      AppendLe(bits, 4, out);
      return absl::OkStatus();
    }
    case ColumnType::kFloat64: {
      const double held = is_null ? 0.0 : std::get<double>(value);
      uint64_t bits = 0;
      std::memcpy(&bits, &held, sizeof(bits));
      AppendLe(bits, 8, out);
      return absl::OkStatus();
    }
    case ColumnType::kDecimal: {
      const absl::int128 held = is_null ? 0 : std::get<absl::int128>(value);
      const auto bits = static_cast<absl::uint128>(held);
      if (column.precision <= 9) {
        AppendLe(absl::Uint128Low64(bits), 4, out);
      } else if (column.precision <= 18) {
        AppendLe(absl::Uint128Low64(bits), 8, out);
      } else {
        AppendLe(absl::Uint128Low64(bits), 8, out);
        AppendLe(absl::Uint128High64(bits), 8, out);
      }
      return absl::OkStatus();
    }
    case ColumnType::kDecimalText:
    case ColumnType::kString:
    case ColumnType::kJson:
    case ColumnType::kBytes: {
      static const std::string kEmpty;
      const std::string& held = is_null ? kEmpty : std::get<std::string>(value);
      internal::AppendVarUInt(held.size(), out);
      out.append(held);
      return absl::OkStatus();
    }
    case ColumnType::kDate: {
      const int64_t days = is_null ? 0 : std::get<int64_t>(value);
      if (days < 0 || days > 65535) {
        return absl::OutOfRangeError(Cat("column \"", insert.name, "\": date ", days,
                                         " (days since 1970) is outside ClickHouse's Date range"));
      }
      AppendLe(static_cast<uint64_t>(days), 2, out);
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown column type");
}

// What the writer knows about one target table.
struct TableState {
  std::string name;
  bool loaded = false;  // `columns` reflects the server
  bool exists = false;
  // The server's columns, name -> type, and its sorting key, in order.
  std::vector<std::pair<std::string, std::string>> columns;
  std::vector<std::string> sorting_key;
  // The schema the buffered rows follow, and their INSERT columns.
  std::shared_ptr<const RowSchema> schema;
  std::vector<InsertColumn> insert;
  std::string buffer;
  size_t rows = 0;
  // Set when the table became incompatible (OnIncompatible::kDeadLetter).
  std::optional<absl::Status> failed;
};

class MirrorWriter final : public SinkWriter<debezium::RowChange> {
 public:
  MirrorWriter(std::shared_ptr<const MirrorSinkOptions> options, std::shared_ptr<MirrorStats> stats,
               std::unique_ptr<weir::internal::HttpClient> client,
               std::unique_ptr<DeadLetterWriter> dead_letters, std::string operator_name)
      : options_(std::move(options)),
        stats_(std::move(stats)),
        client_(std::move(client)),
        dead_letters_(std::move(dead_letters)),
        operator_name_(std::move(operator_name)) {}

  absl::Status Start() {
    absl::StatusOr<std::string> version = Run("SELECT version()");
    if (!version.ok()) return version.status();
    int major = 0;
    const std::vector<std::string> parts = absl::StrSplit(*version, '.');
    if (!parts.empty() && absl::SimpleAtoi(parts[0], &major)) datetime64_ = major >= 20;
    return absl::OkStatus();
  }

  absl::Status Write(std::span<debezium::RowChange> changes, std::span<const Timestamp>) override {
    for (debezium::RowChange& change : changes) {
      if (absl::Status status = Apply(change); !status.ok()) {
        return weir::internal::Annotate(status, Cat("clickhouse mirror '", operator_name_, "'"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    for (auto& [name, table] : tables_) {
      if (absl::Status status = Insert(table); !status.ok()) return status;
    }
    if (dead_letters_) return dead_letters_->Flush();
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<std::string> Run(std::string_view sql) {
    const absl::string_view text(sql.data(), sql.size());
    return internal::SendToClickHouse(
        *client_, options_->connection,
        {.url = internal::ClickHouseUrl(options_->connection, ""), .body = text},
        Cat("clickhouse mirror: \"", sql.substr(0, 100), sql.size() > 100 ? "...\"" : "\""));
  }

  std::string Quote(std::string_view name) const {
    return internal::QuoteIdentifier(absl::string_view(name.data(), name.size()));
  }

  absl::Status DeadLetterOrFail(const debezium::RowChange& change, const absl::Status& error) {
    if (!dead_letters_) return error;
    if (stats_) stats_->dead_letters.fetch_add(1, std::memory_order_relaxed);
    return dead_letters_->Write(mirror::internal::MirrorDeadLetter(change, error));
  }

  absl::Status Apply(const debezium::RowChange& change) {
    if (change.op == debezium::Op::kTombstone || !debezium::IsRowOp(change.op)) {
      return absl::OkStatus();
    }
    if (last_state_ == nullptr || change.table != last_source_) {
      std::optional<std::string> target =
          mirror::internal::TargetTable(change.table, options_->mirror);
      last_source_ = change.table;
      last_skipped_ = !target.has_value();
      if (target.has_value()) {
        last_state_ = &tables_[*target];
        last_state_->name = *target;
      }
    }
    if (last_skipped_) return absl::OkStatus();
    TableState& table = *last_state_;
    if (table.failed.has_value()) return DeadLetterOrFail(change, *table.failed);
    if (change.op == debezium::Op::kTruncate) return Truncate(table);
    const Row* row = change.row();
    if (row == nullptr || !row->has_schema()) {
      return absl::InvalidArgumentError(Cat("table ", change.table, ": a change without a row"));
    }
    if (row->schema_ptr() != table.schema) {
      absl::Status adopted = Adopt(table, row->schema_ptr());
      if (!adopted.ok()) {
        if (adopted.code() != absl::StatusCode::kFailedPrecondition) return adopted;
        if (options_->mirror.on_incompatible == mirror::OnIncompatible::kFail || !dead_letters_) {
          return adopted;
        }
        weir::internal::Log(Cat("clickhouse mirror: ", adopted.message(),
                                "; the table's records go to the dead letters"));
        table.failed = adopted;
        table.schema = nullptr;
        return DeadLetterOrFail(change, adopted);
      }
    }
    const size_t mark = table.buffer.size();
    const bool deleted = change.op == debezium::Op::kDelete;
    for (const InsertColumn& insert : table.insert) {
      absl::Status status =
          AppendValue(insert, row->value(static_cast<size_t>(insert.source_idx)), table.buffer);
      if (!status.ok()) {
        table.buffer.resize(mark);
        return DeadLetterOrFail(change,
                                weir::internal::Annotate(status, Cat("table ", change.table)));
      }
    }
    AppendLe(mirror::internal::ChangeVersion(change), 8, table.buffer);
    table.buffer.push_back(deleted ? 1 : 0);
    ++table.rows;
    if (stats_) (deleted ? stats_->deletes : stats_->rows).fetch_add(1, std::memory_order_relaxed);
    if (table.rows >= options_->max_batch_rows) return Insert(table);
    return absl::OkStatus();
  }

  absl::Status Insert(TableState& table) {
    if (table.rows == 0) return absl::OkStatus();
    std::vector<std::string> names;
    for (const InsertColumn& insert : table.insert) names.push_back(Quote(insert.name));
    names.push_back(Quote(options_->version_column));
    names.push_back(Quote(options_->deleted_column));
    const std::string query = Cat("INSERT INTO ", Quote(table.name), " (",
                                  absl::StrJoin(names, ", "), ") FORMAT RowBinary");
    absl::StatusOr<std::string> answer = internal::SendToClickHouse(
        *client_, options_->connection,
        {.url = internal::ClickHouseUrl(options_->connection, query), .body = table.buffer},
        Cat("clickhouse mirror: insert into ", table.name));
    if (!answer.ok()) return answer.status();
    table.buffer.clear();
    table.rows = 0;
    return absl::OkStatus();
  }

  absl::Status Truncate(TableState& table) {
    if (absl::Status status = Insert(table); !status.ok()) return status;
    if (!table.loaded) {
      if (absl::Status status = Load(table); !status.ok()) return status;
    }
    if (stats_) stats_->truncates.fetch_add(1, std::memory_order_relaxed);
    if (!table.exists) return absl::OkStatus();
    return Run(Cat("TRUNCATE TABLE ", Quote(table.name))).status();
  }

  absl::Status Load(TableState& table) {
    const std::string query =
        Cat("SELECT name, type, is_in_sorting_key FROM system.columns WHERE database = '",
            options_->connection.database, "' AND table = '", table.name, "' FORMAT TSV");
    absl::StatusOr<std::string> answer = Run(query);
    if (!answer.ok()) return answer.status();
    table.columns.clear();
    table.sorting_key.clear();
    for (absl::string_view line : absl::StrSplit(*answer, '\n', absl::SkipEmpty())) {
      std::vector<std::string> fields = absl::StrSplit(line, '\t');
      if (fields.size() != 3) continue;
      if (fields[2] == "1") table.sorting_key.push_back(fields[0]);
      table.columns.emplace_back(std::move(fields[0]), std::move(fields[1]));
    }
    table.exists = !table.columns.empty();
    table.loaded = true;
    return absl::OkStatus();
  }

  const std::string* ServerType(const TableState& table, std::string_view name) const {
    for (const auto& [column, type] : table.columns) {
      if (column == name) return &type;
    }
    return nullptr;
  }

  absl::Status CreateTable(TableState& table, const MappedTable& mapped) {
    std::vector<std::string> columns;
    for (const MappedColumn& column : mapped.columns) {
      columns.push_back(Cat(Quote(column.name), " ", FullType(column, datetime64_)));
    }
    columns.push_back(Cat(Quote(options_->version_column), " UInt64"));
    columns.push_back(Cat(Quote(options_->deleted_column), " UInt8"));
    std::vector<std::string> key;
    for (const std::string& name : mapped.key) key.push_back(Quote(name));
    const std::string create =
        Cat("CREATE TABLE IF NOT EXISTS ", Quote(table.name), " (", absl::StrJoin(columns, ", "),
            ") ENGINE = ReplacingMergeTree(", Quote(options_->version_column), ") ORDER BY (",
            absl::StrJoin(key, ", "), ")");
    if (absl::Status status = Run(create).status(); !status.ok()) return status;
    if (stats_) stats_->tables_created.fetch_add(1, std::memory_order_relaxed);
    return Load(table);
  }

  absl::Status CreateView(const TableState& table) {
    std::vector<std::string> columns;
    for (const auto& [name, type] : table.columns) {
      if (name == options_->version_column || name == options_->deleted_column) continue;
      columns.push_back(Quote(name));
    }
    const std::string view = Quote(Cat(table.name, options_->view_suffix));
    if (absl::Status status = Run(Cat("DROP TABLE IF EXISTS ", view)).status(); !status.ok()) {
      return status;
    }
    return Run(Cat("CREATE VIEW IF NOT EXISTS ", view, " AS SELECT ", absl::StrJoin(columns, ", "),
                   " FROM ", Quote(table.name), " FINAL WHERE ", Quote(options_->deleted_column),
                   " = 0"))
        .status();
  }

  // Makes `table` ready for rows of `schema`: created, or checked and
  // extended. kFailedPrecondition when the table cannot take them.
  absl::Status Adopt(TableState& table, const std::shared_ptr<const RowSchema>& schema) {
    absl::StatusOr<MappedTable> mapped =
        mirror::internal::MapSchema(*schema, table.name, options_->mirror);
    if (!mapped.ok()) return absl::FailedPreconditionError(mapped.status().message());
    if (absl::Status status = Insert(table); !status.ok()) return status;
    if (!table.loaded) {
      if (absl::Status status = Load(table); !status.ok()) return status;
    }
    bool changed = false;
    if (!table.exists) {
      if (absl::Status status = CreateTable(table, *mapped); !status.ok()) return status;
      changed = true;
    } else {
      if (table.sorting_key != mapped->key) {
        return absl::FailedPreconditionError(
            Cat("table ", schema->table(), ": the primary key (", absl::StrJoin(mapped->key, ", "),
                ") is not the key of ClickHouse table ", table.name, " (",
                absl::StrJoin(table.sorting_key, ", "), ")"));
      }
      for (const MappedColumn& column : mapped->columns) {
        const std::string wanted = FullType(column, datetime64_);
        const std::string* existing = ServerType(table, column.name);
        if (existing == nullptr) {
          // New columns go before the version and delete flag columns.
          std::string previous;
          for (const auto& [name, type] : table.columns) {
            if (name == options_->version_column) break;
            previous = name;
          }
          absl::Status status =
              Run(Cat("ALTER TABLE ", Quote(table.name), " ADD COLUMN ", Quote(column.name), " ",
                      wanted, " AFTER ", Quote(previous)))
                  .status();
          // Another writer may have added it meanwhile: the server decides.
          if (absl::Status reload = Load(table); !reload.ok()) return reload;
          if (ServerType(table, column.name) == nullptr) return status;
          if (stats_) stats_->columns_added.fetch_add(1, std::memory_order_relaxed);
          changed = true;
          continue;
        }
        // A NOT NULL source column fits a Nullable copy.
        if (*existing != wanted && *existing != Cat("Nullable(", wanted, ")")) {
          return absl::FailedPreconditionError(
              Cat("table ", schema->table(), ": column \"", column.column.name, "\" is now ",
                  wanted, ", but ClickHouse table ", table.name, " has ", *existing));
        }
      }
    }
    if (changed || !view_checked_[table.name]) {
      if (absl::Status status = CreateView(table); !status.ok()) return status;
      view_checked_[table.name] = true;
    }
    table.insert.clear();
    for (const MappedColumn& column : mapped->columns) {
      const std::string* existing = ServerType(table, column.name);
      table.insert.push_back({column.name, column.source_idx, column.column,
                              existing != nullptr && existing->starts_with("Nullable(")});
    }
    table.schema = schema;
    return absl::OkStatus();
  }

  // Shared with the sink: a writer may outlive it.
  std::shared_ptr<const MirrorSinkOptions> options_;
  std::shared_ptr<MirrorStats> stats_;
  std::unique_ptr<weir::internal::HttpClient> client_;
  std::unique_ptr<DeadLetterWriter> dead_letters_;
  std::string operator_name_;
  bool datetime64_ = false;
  // std::map: `last_state_` points into it.
  std::map<std::string, TableState> tables_;
  // The previous change's source table and where it goes.
  std::string last_source_;
  TableState* last_state_ = nullptr;
  bool last_skipped_ = false;
  absl::flat_hash_map<std::string, bool> view_checked_;
};

class ClickHouseMirrorSink final : public weir::Sink<debezium::RowChange> {
 public:
  ClickHouseMirrorSink(MirrorSinkOptions options, std::shared_ptr<MirrorStats> stats)
      : options_(std::make_shared<const MirrorSinkOptions>(std::move(options))),
        stats_(std::move(stats)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<debezium::RowChange>>> CreateWriter(
      const SinkContext& context) override {
    if (absl::Status valid =
            internal::ValidateConnection(options_->connection, "clickhouse mirror");
        !valid.ok()) {
      return valid;
    }
    if (options_->mirror.on_incompatible == mirror::OnIncompatible::kDeadLetter &&
        !options_->mirror.dead_letters) {
      return absl::InvalidArgumentError(
          "clickhouse mirror: OnIncompatible::kDeadLetter needs mirror.dead_letters");
    }
    absl::StatusOr<std::unique_ptr<weir::internal::HttpClient>> client =
        weir::internal::HttpClient::Create();
    if (!client.ok()) return client.status();
    std::unique_ptr<DeadLetterWriter> dead_letters;
    if (options_->mirror.dead_letters) {
      absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer =
          options_->mirror.dead_letters->CreateWriter(context.operator_name, context.worker_index);
      if (!writer.ok()) return writer.status();
      dead_letters = CountDeadLetters(*std::move(writer), context.metrics);
    }
    auto writer = std::make_unique<MirrorWriter>(options_, stats_, *std::move(client),
                                                 std::move(dead_letters), context.operator_name);
    if (absl::Status status = writer->Start(); !status.ok()) return status;
    return std::unique_ptr<SinkWriter<debezium::RowChange>>(std::move(writer));
  }

 private:
  std::shared_ptr<const MirrorSinkOptions> options_;
  std::shared_ptr<MirrorStats> stats_;
};

}  // namespace

std::shared_ptr<weir::Sink<debezium::RowChange>> MirrorSink(MirrorSinkOptions options,
                                                            std::shared_ptr<MirrorStats> stats) {
  return std::make_shared<ClickHouseMirrorSink>(std::move(options), std::move(stats));
}

}  // namespace weir::clickhouse
