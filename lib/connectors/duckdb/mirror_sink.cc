// The DuckDB mirror sink (weir/connectors/duckdb_mirror.h).
//
// Between barriers a writer keeps, per target table, the last change of each
// key (a truncate drops what came before it): applying a checkpoint then
// touches each row once. The rows go through DuckDB's appender into a
// temporary staging table and from there into the table with one INSERT OR
// REPLACE and one DELETE per schema, which is two orders of magnitude
// faster than a prepared statement per row.
// Schema decisions (compatible or not) are taken when a change arrives, so
// a dead letter is written before the checkpoint that covers its record;
// the DDL runs when the checkpoint is applied, in its transaction.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
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
#include "duckdb.h"
#include "lib/common/log.h"
#include "lib/common/status.h"
#include "lib/formats/row_mapping.h"
#include "lib/formats/str_cat.h"
#include "weir/codec.h"
#include "weir/connectors/duckdb_mirror.h"

namespace weir::duckdb {
namespace {

using weir::internal::Cat;
using weir::mirror::internal::MappedColumn;
using weir::mirror::internal::MappedTable;

constexpr std::string_view kCheckpointTable = "_weir_mirror_checkpoints";

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

std::string QuoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

// The DuckDB type of a column, as duckdb_columns() spells it.
std::string DuckDbType(const RowColumn& column) {
  switch (column.type) {
    case ColumnType::kBool:
      return "BOOLEAN";
    case ColumnType::kInt8:
      return "TINYINT";
    case ColumnType::kInt16:
      return "SMALLINT";
    case ColumnType::kInt32:
      return "INTEGER";
    case ColumnType::kInt64:
      return "BIGINT";
    case ColumnType::kUInt64:
      return "UBIGINT";
    case ColumnType::kFloat32:
      return "FLOAT";
    case ColumnType::kFloat64:
      return "DOUBLE";
    case ColumnType::kDecimal:
      return Cat("DECIMAL(", column.precision, ",", column.scale, ")");
    case ColumnType::kDecimalText:
    case ColumnType::kString:
    case ColumnType::kJson:
      return "VARCHAR";
    case ColumnType::kBytes:
      return "BLOB";
    case ColumnType::kDate:
      return "DATE";
    case ColumnType::kTime:
      return column.unit == RowTimeUnit::kNanos ? "BIGINT" : "TIME";
    case ColumnType::kTimestamp:
      return column.unit == RowTimeUnit::kNanos ? "BIGINT" : "TIMESTAMP";
  }
  return "VARCHAR";
}

// ---------------------------------------------------------------------------
// The open databases of this process, shared by writers and Query().
// ---------------------------------------------------------------------------

struct Database {
  duckdb_database handle = nullptr;
  // Serializes the writers' transactions (and DDL) on this database.
  std::mutex mutex;
  ~Database() {
    if (handle != nullptr) duckdb_close(&handle);
  }
};

absl::StatusOr<std::shared_ptr<Database>> OpenDatabase(std::string_view path) {
  static std::mutex registry_mutex;
  static std::map<std::string, std::weak_ptr<Database>> registry;
  // A file by its absolute path, so that two spellings share one database;
  // ":memory:" (DuckDB's in-memory database) as it is.
  std::error_code error;
  std::string key(path);
  if (path != ":memory:") {
    std::filesystem::path absolute = std::filesystem::absolute(key, error);
    if (!error) key = absolute.lexically_normal().string();
  }
  std::lock_guard<std::mutex> lock(registry_mutex);
  if (std::shared_ptr<Database> open = registry[key].lock()) return open;
  auto database = std::make_shared<Database>();
  char* message = nullptr;
  if (duckdb_open_ext(key.c_str(), &database->handle, nullptr, &message) != DuckDBSuccess) {
    std::string text = message != nullptr ? message : "unknown error";
    if (message != nullptr) duckdb_free(message);
    database->handle = nullptr;
    return absl::UnavailableError(Cat("duckdb: cannot open ", key, ": ", text));
  }
  registry[key] = database;
  return database;
}

// A connection with its destroy function.
struct ConnectionCloser {
  void operator()(duckdb_connection connection) const { duckdb_disconnect(&connection); }
};
using Connection = std::unique_ptr<std::remove_pointer_t<duckdb_connection>, ConnectionCloser>;

absl::StatusOr<Connection> Connect(Database& database) {
  duckdb_connection connection = nullptr;
  if (duckdb_connect(database.handle, &connection) != DuckDBSuccess) {
    return absl::UnavailableError("duckdb: cannot connect");
  }
  return Connection(connection);
}

// A result that is destroyed with its scope.
class Result {
 public:
  Result() { std::memset(&result_, 0, sizeof(result_)); }
  ~Result() { duckdb_destroy_result(&result_); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  duckdb_result* get() { return &result_; }

 private:
  duckdb_result result_;
};

absl::Status Run(duckdb_connection connection, const std::string& sql) {
  Result result;
  if (duckdb_query(connection, sql.c_str(), result.get()) != DuckDBSuccess) {
    const char* error = duckdb_result_error(result.get());
    return absl::InternalError(
        Cat("duckdb: ", error != nullptr ? error : "error", " (in: ", sql.substr(0, 200), ")"));
  }
  return absl::OkStatus();
}

using TextRows = std::vector<std::vector<std::optional<std::string>>>;

absl::StatusOr<TextRows> Fetch(duckdb_connection connection, const std::string& sql) {
  Result result;
  if (duckdb_query(connection, sql.c_str(), result.get()) != DuckDBSuccess) {
    const char* error = duckdb_result_error(result.get());
    return absl::InternalError(
        Cat("duckdb: ", error != nullptr ? error : "error", " (in: ", sql.substr(0, 200), ")"));
  }
  TextRows rows;
  const idx_t columns = duckdb_column_count(result.get());
  const idx_t count = duckdb_row_count(result.get());
  for (idx_t row_idx = 0; row_idx < count; ++row_idx) {
    std::vector<std::optional<std::string>>& row = rows.emplace_back();
    for (idx_t column_idx = 0; column_idx < columns; ++column_idx) {
      if (duckdb_value_is_null(result.get(), column_idx, row_idx)) {
        row.emplace_back();
        continue;
      }
      char* text = duckdb_value_varchar(result.get(), column_idx, row_idx);
      row.emplace_back(text != nullptr ? text : "");
      if (text != nullptr) duckdb_free(text);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------
// Pending changes and their staging files
// ---------------------------------------------------------------------------

struct PendingRow {
  bool deleted = false;
  Row row;
};

struct PendingTable {
  // Empty the table before applying `rows`.
  bool truncate = false;
  // Key text -> the key's last change.
  absl::flat_hash_map<std::string, PendingRow> rows;
};

using Pending = std::map<std::string, PendingTable>;

std::string KeyText(const Row& row) {
  std::string key;
  for (int idx : row.schema().key()) {
    const size_t column_idx = static_cast<size_t>(idx);
    key.append(RowValueToString(row.value(column_idx), row.schema().columns()[column_idx]));
    key.push_back('\x1f');
  }
  return key;
}

std::string EncodePending(const Pending& pending) {
  std::string out;
  weir::internal::AppendVarint(out, pending.size());
  for (const auto& [name, table] : pending) {
    Codec<std::string>::Encode(name, out);
    out.push_back(table.truncate ? 1 : 0);
    weir::internal::AppendVarint(out, table.rows.size());
    for (const auto& [key, row] : table.rows) {
      out.push_back(row.deleted ? 1 : 0);
      Codec<Row>::Encode(row.row, out);
    }
  }
  return out;
}

bool DecodePending(std::string_view in, Pending& pending) {
  uint64_t tables = 0;
  if (!weir::internal::ReadVarint(in, tables)) return false;
  for (uint64_t table_idx = 0; table_idx < tables; ++table_idx) {
    std::string name;
    uint64_t rows = 0;
    if (!Codec<std::string>::Decode(in, name) || in.empty()) return false;
    PendingTable& table = pending[name];
    table.truncate = in[0] == 1;
    in.remove_prefix(1);
    if (!weir::internal::ReadVarint(in, rows)) return false;
    for (uint64_t row_idx = 0; row_idx < rows; ++row_idx) {
      if (in.empty()) return false;
      PendingRow row;
      row.deleted = in[0] == 1;
      in.remove_prefix(1);
      if (!Codec<Row>::Decode(in, row.row) || !row.row.has_schema()) return false;
      table.rows.emplace(KeyText(row.row), std::move(row));
    }
  }
  return in.empty();
}

absl::Status WriteFileDurably(const std::string& path, const std::string& contents) {
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(Cat("duckdb mirror: cannot create ", temp));
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n <= 0) {
      ::close(fd);
      return absl::UnavailableError(Cat("duckdb mirror: cannot write ", temp));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return absl::UnavailableError(Cat("duckdb mirror: cannot sync ", temp));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(Cat("duckdb mirror: cannot rename ", temp));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------

// What a writer knows about a target table's columns: the database's, and
// those it will add.
struct TablePlan {
  bool loaded = false;
  bool exists = false;
  // name -> (type, nullable)
  std::map<std::string, std::pair<std::string, bool>> columns;
  std::vector<std::string> key;
  std::shared_ptr<const RowSchema> schema;  // the last schema found compatible
  std::optional<absl::Status> failed;
};

class MirrorWriter final : public SinkWriter<debezium::RowChange> {
 public:
  MirrorWriter(std::shared_ptr<const MirrorSinkOptions> options, std::shared_ptr<MirrorStats> stats,
               std::shared_ptr<Database> database, Connection connection,
               std::unique_ptr<DeadLetterWriter> dead_letters, const SinkContext& context)
      : options_(std::move(options)),
        stats_(std::move(stats)),
        database_(std::move(database)),
        connection_(std::move(connection)),
        dead_letters_(std::move(dead_letters)),
        uid_(context.operator_uid),
        worker_(context.worker_index),
        checkpointing_(context.checkpointing) {}

  // Creates the checkpoint table and removes staging files of checkpoints
  // newer than the restored one (their records come again).
  absl::Status Start(int64_t restored_checkpoint) {
    std::lock_guard<std::mutex> lock(database_->mutex);
    if (absl::Status status = Run(
            connection_.get(),
            Cat("CREATE TABLE IF NOT EXISTS ", QuoteIdentifier(kCheckpointTable),
                " (sink VARCHAR NOT NULL, worker INTEGER NOT NULL, checkpoint_id BIGINT NOT NULL, "
                "applied_at TIMESTAMP NOT NULL, PRIMARY KEY (sink, worker))"));
        !status.ok()) {
      return status;
    }
    std::error_code error;
    std::filesystem::create_directories(StagingDir(), error);
    if (error) {
      return absl::UnavailableError(Cat("duckdb mirror: cannot create ", StagingDir()));
    }
    const std::string prefix = StagingPrefix(worker_);
    for (const auto& entry : std::filesystem::directory_iterator(StagingDir(), error)) {
      const std::string name = entry.path().filename().string();
      int64_t id = 0;
      if (!name.starts_with(prefix) || !name.ends_with(".changes") ||
          !absl::SimpleAtoi(name.substr(prefix.size(), name.size() - prefix.size() - 8), &id)) {
        continue;
      }
      if (id > restored_checkpoint) std::filesystem::remove(entry.path(), error);
    }
    return absl::OkStatus();
  }

  absl::Status Write(std::span<debezium::RowChange> changes, std::span<const Timestamp>) override {
    for (debezium::RowChange& change : changes) {
      if (absl::Status status = Take(change); !status.ok()) {
        return weir::internal::Annotate(status, Cat("duckdb mirror '", uid_, "'"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    if (dead_letters_) {
      if (absl::Status status = dead_letters_->Flush(); !status.ok()) return status;
    }
    if (checkpointing_) return absl::OkStatus();  // the final checkpoint applies them
    Pending pending = std::move(pending_);
    pending_.clear();
    std::lock_guard<std::mutex> lock(database_->mutex);
    return Transaction(pending, std::nullopt);
  }

  absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
    if (dead_letters_) {
      if (absl::Status status = dead_letters_->Flush(); !status.ok()) return status;
    }
    if (pending_.empty()) return std::string();
    const std::string path =
        Cat(StagingDir(), "/", StagingPrefix(worker_), checkpoint_id, ".changes");
    if (absl::Status status = WriteFileDurably(path, EncodePending(pending_)); !status.ok()) {
      return status;
    }
    pending_.clear();
    return Cat(worker_, ":", path);
  }

  absl::Status Commit(int64_t checkpoint_id, const std::string& committable) override {
    if (committable.empty()) return absl::OkStatus();
    const size_t colon = committable.find(':');
    int worker = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(committable.substr(0, colon), &worker)) {
      return absl::DataLossError(Cat("duckdb mirror: bad committable \"", committable, "\""));
    }
    const std::string path = committable.substr(colon + 1);
    std::lock_guard<std::mutex> lock(database_->mutex);
    absl::StatusOr<TextRows> applied = Fetch(
        connection_.get(), Cat("SELECT checkpoint_id FROM ", QuoteIdentifier(kCheckpointTable),
                               " WHERE sink = ", QuoteLiteral(uid_), " AND worker = ", worker));
    if (!applied.ok()) return applied.status();
    int64_t last = 0;
    if (!applied->empty() && (*applied)[0][0].has_value()) {
      (void)absl::SimpleAtoi(*(*applied)[0][0], &last);
    }
    std::error_code error;
    if (last >= checkpoint_id) {
      // Applied before a crash; the restore commits it again.
      std::filesystem::remove(path, error);
      if (stats_) stats_->checkpoints_skipped.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::DataLossError(Cat("duckdb mirror '", uid_, "': checkpoint ", checkpoint_id,
                                     " is complete but its staged changes ", path,
                                     " are gone, and the database has only checkpoint ", last));
    }
    std::stringstream contents;
    contents << in.rdbuf();
    Pending pending;
    if (!DecodePending(contents.str(), pending)) {
      return absl::DataLossError(Cat("duckdb mirror: staged changes ", path, " are corrupt"));
    }
    if (absl::Status status = Transaction(pending, std::make_pair(worker, checkpoint_id));
        !status.ok()) {
      return weir::internal::Annotate(
          status, Cat("duckdb mirror '", uid_, "': checkpoint ", checkpoint_id));
    }
    std::filesystem::remove(path, error);
    if (stats_) stats_->checkpoints_applied.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

 private:
  std::string StagingDir() const {
    return options_->staging_dir.empty() ? Cat(options_->path, ".weir-staging")
                                         : options_->staging_dir;
  }
  std::string StagingPrefix(int worker) const {
    std::string uid;
    for (char c : uid_) uid.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
    return Cat(uid, ".w", worker, ".c");
  }

  absl::Status DeadLetterOrFail(const debezium::RowChange& change, const absl::Status& error) {
    if (!dead_letters_) return error;
    if (stats_) stats_->dead_letters.fetch_add(1, std::memory_order_relaxed);
    return dead_letters_->Write(mirror::internal::MirrorDeadLetter(change, error));
  }

  absl::Status Load(const std::string& table, TablePlan& plan) {
    std::lock_guard<std::mutex> lock(database_->mutex);
    absl::StatusOr<TextRows> columns =
        Fetch(connection_.get(),
              Cat("SELECT column_name, data_type, is_nullable FROM duckdb_columns() WHERE "
                  "schema_name = 'main' AND table_name = ",
                  QuoteLiteral(table), " ORDER BY column_index"));
    if (!columns.ok()) return columns.status();
    plan.columns.clear();
    for (const auto& row : *columns) {
      plan.columns[row[0].value_or("")] = {row[1].value_or(""), row[2].value_or("") == "true"};
    }
    absl::StatusOr<TextRows> key = Fetch(
        connection_.get(),
        Cat("SELECT array_to_string(constraint_column_names, chr(31)) FROM duckdb_constraints() "
            "WHERE schema_name = 'main' AND table_name = ",
            QuoteLiteral(table), " AND constraint_type = 'PRIMARY KEY'"));
    if (!key.ok()) return key.status();
    plan.key.clear();
    if (!key->empty() && (*key)[0][0].has_value()) {
      plan.key = absl::StrSplit(*(*key)[0][0], '\x1f', absl::SkipEmpty());
    }
    plan.exists = !plan.columns.empty();
    plan.loaded = true;
    return absl::OkStatus();
  }

  // Whether rows of `schema` fit `plan` (adding columns to the plan);
  // kFailedPrecondition when they do not.
  absl::Status Check(const std::string& table, TablePlan& plan, const RowSchema& schema) {
    absl::StatusOr<MappedTable> mapped =
        mirror::internal::MapSchema(schema, table, options_->mirror);
    if (!mapped.ok()) return absl::FailedPreconditionError(mapped.status().message());
    if (!plan.loaded) {
      if (absl::Status status = Load(table, plan); !status.ok()) return status;
    }
    if (!plan.exists) {
      plan.exists = true;
      plan.key = mapped->key;
      for (const MappedColumn& column : mapped->columns) {
        plan.columns[column.name] = {DuckDbType(column.column), column.column.nullable};
      }
      return absl::OkStatus();
    }
    if (plan.key != mapped->key) {
      return absl::FailedPreconditionError(Cat(
          "table ", schema.table(), ": the primary key (", absl::StrJoin(mapped->key, ", "),
          ") is not the key of DuckDB table ", table, " (", absl::StrJoin(plan.key, ", "), ")"));
    }
    for (const MappedColumn& column : mapped->columns) {
      const std::string wanted = DuckDbType(column.column);
      auto existing = plan.columns.find(column.name);
      if (existing == plan.columns.end()) {
        plan.columns[column.name] = {wanted, true};
        continue;
      }
      if (existing->second.first != wanted) {
        return absl::FailedPreconditionError(
            Cat("table ", schema.table(), ": column \"", column.column.name, "\" is now ", wanted,
                ", but DuckDB table ", table, " has ", existing->second.first));
      }
      if (column.column.nullable && !existing->second.second) {
        return absl::FailedPreconditionError(
            Cat("table ", schema.table(), ": column \"", column.column.name,
                "\" is now nullable, but DuckDB table ", table, " has it NOT NULL"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Take(debezium::RowChange& change) {
    if (change.op == debezium::Op::kTombstone || !debezium::IsRowOp(change.op)) {
      return absl::OkStatus();
    }
    std::optional<std::string> target =
        mirror::internal::TargetTable(change.table, options_->mirror);
    if (!target.has_value()) return absl::OkStatus();
    if (stats_) stats_->changes.fetch_add(1, std::memory_order_relaxed);
    TablePlan& plan = plans_[*target];
    if (plan.failed.has_value()) return DeadLetterOrFail(change, *plan.failed);
    PendingTable& pending = pending_[*target];
    if (change.op == debezium::Op::kTruncate) {
      pending.truncate = true;
      pending.rows.clear();
      return absl::OkStatus();
    }
    const bool deleted = change.op == debezium::Op::kDelete;
    std::optional<Row>& source = deleted ? change.before : change.after;
    if (!source.has_value() || !source->has_schema()) {
      return absl::InvalidArgumentError(Cat("table ", change.table, ": a change without a row"));
    }
    if (source->schema_ptr() != plan.schema) {
      absl::Status checked = Check(*target, plan, source->schema());
      if (!checked.ok()) {
        if (checked.code() != absl::StatusCode::kFailedPrecondition ||
            options_->mirror.on_incompatible == mirror::OnIncompatible::kFail || !dead_letters_) {
          return checked;
        }
        weir::internal::Log(Cat("duckdb mirror: ", checked.message(),
                                "; the table's records go to the dead letters"));
        plan.failed = checked;
        return DeadLetterOrFail(change, checked);
      }
      plan.schema = source->schema_ptr();
    }
    std::string key = KeyText(*source);
    pending.rows.insert_or_assign(std::move(key), PendingRow{deleted, *std::move(source)});
    return absl::OkStatus();
  }

  // Applies `pending` in one transaction, with the checkpoint row
  // (worker, checkpoint id) when given. The caller holds the database lock.
  absl::Status Transaction(const Pending& pending,
                           std::optional<std::pair<int, int64_t>> checkpoint) {
    if (absl::Status status = Run(connection_.get(), "BEGIN TRANSACTION"); !status.ok()) {
      return status;
    }
    absl::Status status = Apply(pending);
    if (status.ok() && checkpoint.has_value()) {
      status =
          Run(connection_.get(), Cat("INSERT OR REPLACE INTO ", QuoteIdentifier(kCheckpointTable),
                                     " VALUES (", QuoteLiteral(uid_), ", ", checkpoint->first, ", ",
                                     checkpoint->second, ", now()::TIMESTAMP)"));
    }
    if (status.ok()) status = Run(connection_.get(), "COMMIT");
    if (!status.ok()) {
      (void)Run(connection_.get(), "ROLLBACK");
      return status;
    }
    return absl::OkStatus();
  }

  // The table exists with every column of `mapped` (inside the transaction).
  absl::Status Ensure(const std::string& table, const MappedTable& mapped) {
    std::vector<std::string> columns;
    for (const MappedColumn& column : mapped.columns) {
      columns.push_back(Cat(QuoteIdentifier(column.name), " ", DuckDbType(column.column),
                            column.column.nullable ? "" : " NOT NULL"));
    }
    std::vector<std::string> key;
    for (const std::string& name : mapped.key) key.push_back(QuoteIdentifier(name));
    if (absl::Status status =
            Run(connection_.get(), Cat("CREATE TABLE IF NOT EXISTS ", QuoteIdentifier(table), " (",
                                       absl::StrJoin(columns, ", "), ", PRIMARY KEY (",
                                       absl::StrJoin(key, ", "), "))"));
        !status.ok()) {
      return status;
    }
    absl::StatusOr<TextRows> existing =
        Fetch(connection_.get(), Cat("SELECT column_name FROM duckdb_columns() WHERE schema_name = "
                                     "'main' AND table_name = ",
                                     QuoteLiteral(table)));
    if (!existing.ok()) return existing.status();
    for (const MappedColumn& column : mapped.columns) {
      bool found = false;
      for (const auto& row : *existing) found = found || row[0] == column.name;
      if (found) continue;
      if (absl::Status status = Run(
              connection_.get(), Cat("ALTER TABLE ", QuoteIdentifier(table), " ADD COLUMN ",
                                     QuoteIdentifier(column.name), " ", DuckDbType(column.column)));
          !status.ok()) {
        return status;
      }
      if (stats_) stats_->columns_added.fetch_add(1, std::memory_order_relaxed);
    }
    return absl::OkStatus();
  }

  absl::Status Apply(const Pending& pending) {
    // DDL first: DuckDB refuses to commit a transaction that altered a table
    // after changing its rows.
    for (const auto& [table, changes] : pending) {
      absl::flat_hash_map<const RowSchema*, bool> ensured;
      for (const auto& [key, change] : changes.rows) {
        if (!ensured.emplace(&change.row.schema(), true).second) continue;
        absl::StatusOr<MappedTable> mapped =
            mirror::internal::MapSchema(change.row.schema(), table, options_->mirror);
        if (!mapped.ok()) return mapped.status();
        if (absl::Status status = Ensure(table, *mapped); !status.ok()) return status;
      }
    }
    for (const auto& [table, changes] : pending) {
      if (changes.truncate) {
        absl::StatusOr<TextRows> exists = Fetch(
            connection_.get(), Cat("SELECT 1 FROM duckdb_tables() WHERE schema_name = 'main' AND "
                                   "table_name = ",
                                   QuoteLiteral(table)));
        if (!exists.ok()) return exists.status();
        if (!exists->empty()) {
          if (absl::Status status =
                  Run(connection_.get(), Cat("DELETE FROM ", QuoteIdentifier(table)));
              !status.ok()) {
            return status;
          }
        }
      }
      // The rows of one checkpoint may follow several schemas: each group
      // goes through the appender into a staging table, then into the table
      // with two statements.
      absl::flat_hash_map<const RowSchema*, std::vector<const PendingRow*>> groups;
      for (const auto& [key, change] : changes.rows) {
        groups[&change.row.schema()].push_back(&change);
      }
      for (const auto& [schema, rows] : groups) {
        absl::StatusOr<MappedTable> mapped =
            mirror::internal::MapSchema(*schema, table, options_->mirror);
        if (!mapped.ok()) return mapped.status();
        if (absl::Status status = ApplyGroup(table, *mapped, rows); !status.ok()) return status;
      }
    }
    return absl::OkStatus();
  }

  absl::Status AppendValue(duckdb_appender appender, const RowColumn& column,
                           const RowValue& value) {
    duckdb_state state = DuckDBSuccess;
    if (std::holds_alternative<std::monostate>(value)) {
      state = duckdb_append_null(appender);
    } else {
      switch (column.type) {
        case ColumnType::kBool:
          state = duckdb_append_bool(appender, std::get<bool>(value));
          break;
        case ColumnType::kInt8:
          state = duckdb_append_int8(appender, static_cast<int8_t>(std::get<int64_t>(value)));
          break;
        case ColumnType::kInt16:
          state = duckdb_append_int16(appender, static_cast<int16_t>(std::get<int64_t>(value)));
          break;
        case ColumnType::kInt32:
          state = duckdb_append_int32(appender, static_cast<int32_t>(std::get<int64_t>(value)));
          break;
        case ColumnType::kInt64:
          state = duckdb_append_int64(appender, std::get<int64_t>(value));
          break;
        case ColumnType::kUInt64:
          state = duckdb_append_uint64(appender, std::get<uint64_t>(value));
          break;
        case ColumnType::kFloat32:
          state = duckdb_append_float(appender, static_cast<float>(std::get<double>(value)));
          break;
        case ColumnType::kFloat64:
          state = duckdb_append_double(appender, std::get<double>(value));
          break;
        case ColumnType::kDecimal: {
          const absl::int128 unscaled = std::get<absl::int128>(value);
          duckdb_decimal decimal;
          decimal.width = static_cast<uint8_t>(column.precision);
          decimal.scale = static_cast<uint8_t>(column.scale);
          decimal.value.lower = absl::Int128Low64(unscaled);
          decimal.value.upper = absl::Int128High64(unscaled);
          duckdb_value boxed = duckdb_create_decimal(decimal);
          state = duckdb_append_value(appender, boxed);
          duckdb_destroy_value(&boxed);
          break;
        }
        case ColumnType::kDecimalText:
        case ColumnType::kString:
        case ColumnType::kJson: {
          const std::string& text = std::get<std::string>(value);
          state = duckdb_append_varchar_length(appender, text.data(), text.size());
          break;
        }
        case ColumnType::kBytes: {
          const std::string& bytes = std::get<std::string>(value);
          state = duckdb_append_blob(appender, bytes.data(), bytes.size());
          break;
        }
        case ColumnType::kDate: {
          duckdb_date date;
          date.days = static_cast<int32_t>(std::get<int64_t>(value));
          state = duckdb_append_date(appender, date);
          break;
        }
        case ColumnType::kTime:
        case ColumnType::kTimestamp: {
          int64_t ticks = std::get<int64_t>(value);
          if (column.unit == RowTimeUnit::kNanos) {
            state = duckdb_append_int64(appender, ticks);
            break;
          }
          if (column.unit == RowTimeUnit::kMillis) ticks *= 1000;
          if (column.type == ColumnType::kTime) {
            duckdb_time time;
            time.micros = ticks;
            state = duckdb_append_time(appender, time);
          } else {
            duckdb_timestamp timestamp;
            timestamp.micros = ticks;
            state = duckdb_append_timestamp(appender, timestamp);
          }
          break;
        }
      }
    }
    if (state != DuckDBSuccess) {
      const char* error = duckdb_appender_error(appender);
      return absl::InvalidArgumentError(Cat("column \"", column.name, "\": DuckDB refused ",
                                            RowValueToString(value, column), ": ",
                                            error != nullptr ? error : "append failed"));
    }
    return absl::OkStatus();
  }

  // Upserts and deletes `rows` (all of one schema) through a staging table.
  absl::Status ApplyGroup(const std::string& table, const MappedTable& mapped,
                          const std::vector<const PendingRow*>& rows) {
    constexpr std::string_view kStage = "_weir_mirror_stage";
    constexpr std::string_view kDeletedColumn = "_weir_deleted";
    std::vector<std::string> definitions;
    std::vector<std::string> names;
    for (const MappedColumn& column : mapped.columns) {
      definitions.push_back(Cat(QuoteIdentifier(column.name), " ", DuckDbType(column.column)));
      names.push_back(QuoteIdentifier(column.name));
    }
    definitions.push_back(Cat(QuoteIdentifier(kDeletedColumn), " BOOLEAN"));
    if (absl::Status status =
            Run(connection_.get(), Cat("CREATE OR REPLACE TEMP TABLE ", QuoteIdentifier(kStage),
                                       " (", absl::StrJoin(definitions, ", "), ")"));
        !status.ok()) {
      return status;
    }
    duckdb_appender appender = nullptr;
    if (duckdb_appender_create_ext(connection_.get(), "temp", "main", std::string(kStage).c_str(),
                                   &appender) != DuckDBSuccess) {
      const char* error = duckdb_appender_error(appender);
      absl::Status status = absl::InternalError(
          Cat("duckdb: cannot append to the staging table: ", error != nullptr ? error : "?"));
      duckdb_appender_destroy(&appender);
      return status;
    }
    absl::Status status;
    int64_t deletes = 0;
    for (const PendingRow* row : rows) {
      for (const MappedColumn& column : mapped.columns) {
        // A delete needs only the key; its other values may be NULL
        // whatever the column says (REPLICA IDENTITY DEFAULT).
        static const RowValue kNull;
        const RowValue& value = row->deleted && !column.key
                                    ? kNull
                                    : row->row.value(static_cast<size_t>(column.source_idx));
        status.Update(AppendValue(appender, column.column, value));
      }
      if (duckdb_append_bool(appender, row->deleted) != DuckDBSuccess ||
          duckdb_appender_end_row(appender) != DuckDBSuccess) {
        const char* error = duckdb_appender_error(appender);
        status.Update(absl::InternalError(Cat("duckdb: ", error != nullptr ? error : "append")));
      }
      if (!status.ok()) break;
      deletes += row->deleted ? 1 : 0;
    }
    if (status.ok() && duckdb_appender_close(appender) != DuckDBSuccess) {
      const char* error = duckdb_appender_error(appender);
      status = absl::InternalError(Cat("duckdb: ", error != nullptr ? error : "append"));
    }
    duckdb_appender_destroy(&appender);
    if (!status.ok()) return status;
    const std::string stage = Cat("temp.main.", QuoteIdentifier(kStage));
    if (deletes < static_cast<int64_t>(rows.size())) {
      if (absl::Status upserted =
              Run(connection_.get(),
                  Cat("INSERT OR REPLACE INTO ", QuoteIdentifier(table), " (",
                      absl::StrJoin(names, ", "), ") SELECT ", absl::StrJoin(names, ", "), " FROM ",
                      stage, " WHERE NOT ", QuoteIdentifier(kDeletedColumn)));
          !upserted.ok()) {
        return upserted;
      }
    }
    if (deletes > 0) {
      std::vector<std::string> conditions;
      for (const std::string& key : mapped.key) {
        conditions.push_back(Cat("t.", QuoteIdentifier(key), " = s.", QuoteIdentifier(key)));
      }
      if (absl::Status removed =
              Run(connection_.get(), Cat("DELETE FROM ", QuoteIdentifier(table), " AS t USING ",
                                         stage, " AS s WHERE s.", QuoteIdentifier(kDeletedColumn),
                                         " AND ", absl::StrJoin(conditions, " AND ")));
          !removed.ok()) {
        return removed;
      }
    }
    if (stats_) {
      stats_->rows_upserted.fetch_add(static_cast<int64_t>(rows.size()) - deletes,
                                      std::memory_order_relaxed);
      stats_->rows_deleted.fetch_add(deletes, std::memory_order_relaxed);
    }
    return absl::OkStatus();
  }

  std::shared_ptr<const MirrorSinkOptions> options_;
  std::shared_ptr<MirrorStats> stats_;
  std::shared_ptr<Database> database_;
  Connection connection_;
  std::unique_ptr<DeadLetterWriter> dead_letters_;
  std::string uid_;
  int worker_ = 0;
  bool checkpointing_ = false;
  std::map<std::string, TablePlan> plans_;
  Pending pending_;
};

class DuckDbMirrorSink final : public weir::Sink<debezium::RowChange> {
 public:
  DuckDbMirrorSink(MirrorSinkOptions options, std::shared_ptr<MirrorStats> stats)
      : options_(std::make_shared<const MirrorSinkOptions>(std::move(options))),
        stats_(std::move(stats)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<debezium::RowChange>>> CreateWriter(
      const SinkContext& context) override {
    if (options_->path.empty()) {
      return absl::InvalidArgumentError("duckdb mirror: MirrorSinkOptions::path is required");
    }
    if (options_->mirror.on_incompatible == mirror::OnIncompatible::kDeadLetter &&
        !options_->mirror.dead_letters) {
      return absl::InvalidArgumentError(
          "duckdb mirror: OnIncompatible::kDeadLetter needs mirror.dead_letters");
    }
    absl::StatusOr<std::shared_ptr<Database>> database = OpenDatabase(options_->path);
    if (!database.ok()) return database.status();
    absl::StatusOr<Connection> connection = Connect(**database);
    if (!connection.ok()) return connection.status();
    std::unique_ptr<DeadLetterWriter> dead_letters;
    if (options_->mirror.dead_letters) {
      absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer =
          options_->mirror.dead_letters->CreateWriter(context.operator_name, context.worker_index);
      if (!writer.ok()) return writer.status();
      dead_letters = CountDeadLetters(*std::move(writer), context.metrics);
    }
    auto writer =
        std::make_unique<MirrorWriter>(options_, stats_, *std::move(database),
                                       *std::move(connection), std::move(dead_letters), context);
    if (absl::Status status = writer->Start(context.restored_checkpoint); !status.ok()) {
      return status;
    }
    return std::unique_ptr<SinkWriter<debezium::RowChange>>(std::move(writer));
  }

 private:
  std::shared_ptr<const MirrorSinkOptions> options_;
  std::shared_ptr<MirrorStats> stats_;
};

}  // namespace

std::shared_ptr<weir::Sink<debezium::RowChange>> MirrorSink(MirrorSinkOptions options,
                                                            std::shared_ptr<MirrorStats> stats) {
  return std::make_shared<DuckDbMirrorSink>(std::move(options), std::move(stats));
}

absl::StatusOr<std::vector<std::vector<std::optional<std::string>>>> Query(std::string_view path,
                                                                           std::string_view sql) {
  absl::StatusOr<std::shared_ptr<Database>> database = OpenDatabase(path);
  if (!database.ok()) return database.status();
  absl::StatusOr<Connection> connection = Connect(**database);
  if (!connection.ok()) return connection.status();
  std::lock_guard<std::mutex> lock((*database)->mutex);
  return Fetch(connection->get(), std::string(sql));
}

std::string LibraryVersion() { return duckdb_library_version(); }

}  // namespace weir::duckdb
