#include "lib/connectors/postgres/snapshot_readers.h"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/connectors/postgres/connection.h"

namespace weir::postgres::internal {
namespace {

// A chunk's bounds go to the server as text and come back through the
// column type's input function; these kinds print exactly what they read
// (floats too, with extra_float_digits=3), so the ranges neither overlap
// nor leave gaps. Others (json, geometric, network, user-defined base
// types, arrays) are not cut.
bool HasExactText(const PgType& type) {
  if (type.is_array) return false;
  switch (type.kind) {
    case PgKind::kBool:
    case PgKind::kInteger:
    case PgKind::kFloat:
    case PgKind::kNumeric:
    case PgKind::kText:
    case PgKind::kUuid:
    case PgKind::kTimestampTz:
    case PgKind::kTimestamp:
    case PgKind::kDate:
    case PgKind::kTime:
    case PgKind::kBytea:
      return true;
    case PgKind::kJson:
    case PgKind::kOther:
      return false;
  }
  return false;
}

// ("a", "b")
std::string KeyList(const SnapshotTable& table) {
  std::vector<std::string> quoted;
  for (const std::string& column : table.key_columns) quoted.push_back(QuoteIdentifier(column));
  return absl::StrCat("(", absl::StrJoin(quoted, ", "), ")");
}

// ($1::bigint, $2::text), numbered from `first`.
std::string ParamList(const SnapshotTable& table, int first) {
  std::vector<std::string> params;
  for (size_t column = 0; column < table.key_types.size(); ++column) {
    params.push_back(
        absl::StrCat("$", first + static_cast<int>(column), "::", table.key_types[column]));
  }
  return absl::StrCat("(", absl::StrJoin(params, ", "), ")");
}

std::string OrderBy(const SnapshotTable& table) {
  std::vector<std::string> quoted;
  for (const std::string& column : table.key_columns) quoted.push_back(QuoteIdentifier(column));
  return quoted.empty() ? "ctid" : absl::StrJoin(quoted, ", ");
}

// "primary key (id) in (100, 200]", for errors.
std::string DescribeRange(const SnapshotTable& table,
                          const std::optional<std::vector<std::string>>& lower,
                          const std::optional<std::vector<std::string>>& upper) {
  return absl::StrCat(
      "primary key (", absl::StrJoin(table.key_columns, ", "), ") in ",
      lower.has_value() ? absl::StrCat("((", absl::StrJoin(*lower, ", "), ")") : "(start", ", ",
      upper.has_value() ? absl::StrCat("(", absl::StrJoin(*upper, ", "), ")]") : "end)");
}

}  // namespace

absl::StatusOr<std::vector<SnapshotTable>> PlanSnapshot(PGconn* conn,
                                                        const std::vector<TableName>& tables,
                                                        TypeResolver& types) {
  std::vector<SnapshotTable> plan;
  for (size_t index = 0; index < tables.size(); ++index) {
    SnapshotTable table;
    table.index = index;
    table.name = tables[index];
    absl::StatusOr<PgResult> key =
        Exec(conn,
             "SELECT a.attname, format_type(a.atttypid, NULL), a.atttypid FROM pg_index i "
             "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
             "WHERE i.indrelid = $1::regclass AND i.indisprimary "
             "ORDER BY array_position(i.indkey, a.attnum)",
             absl::StrCat("reading the primary key of table ", table.name.Display()),
             {table.name.Quoted()});
    if (!key.ok()) return key.status();
    for (int row = 0; row < PQntuples(key->get()); ++row) {
      const std::string column = PQgetvalue(key->get(), row, 0);
      const std::string type_name = PQgetvalue(key->get(), row, 1);
      uint32_t oid = 0;
      if (!absl::SimpleAtoi(PQgetvalue(key->get(), row, 2), &oid)) {
        return absl::InternalError(absl::StrCat("table ", table.name.Display(), ": column \"",
                                                column, "\" has an unreadable type OID"));
      }
      absl::StatusOr<PgType> type = types.Resolve(oid);
      if (!type.ok()) return type.status();
      if (!HasExactText(*type) && table.whole_table_reason.empty()) {
        table.whole_table_reason =
            absl::StrCat("its primary key column \"", column, "\" has type ", type_name,
                         ", whose text form cannot bound key ranges exactly");
      }
      table.key_columns.push_back(column);
      table.key_types.push_back(type_name);
    }
    if (table.key_columns.empty()) table.whole_table_reason = "it has no primary key";
    plan.push_back(std::move(table));
  }
  return plan;
}

absl::Status ImportSnapshot(PGconn* conn, const std::string& snapshot_name,
                            const std::vector<TableName>& tables, absl::Duration lock_timeout) {
  std::vector<std::string> statements = {
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
      absl::StrCat("SET TRANSACTION SNAPSHOT ", QuoteLiteral(snapshot_name))};
  if (lock_timeout > absl::ZeroDuration()) {
    statements.push_back(
        absl::StrCat("SET LOCAL lock_timeout = ", absl::ToInt64Milliseconds(lock_timeout)));
  }
  for (const std::string& sql : statements) {
    absl::StatusOr<PgResult> result = Exec(conn, sql, "starting the initial snapshot");
    if (!result.ok()) return result.status();
  }
  // TRUNCATE and table rewrites are not MVCC-safe: one committed after the
  // exported snapshot would show the snapshot an empty table. ACCESS SHARE
  // locks, held until the snapshot ends, make them wait instead.
  for (const TableName& table : tables) {
    absl::StatusOr<PgResult> locked =
        Exec(conn, absl::StrCat("LOCK TABLE ", table.Quoted(), " IN ACCESS SHARE MODE"),
             absl::StrCat("locking table ", table.Display(), " for the initial snapshot"));
    if (!locked.ok()) return locked.status();
  }
  if (lock_timeout > absl::ZeroDuration()) {
    absl::StatusOr<PgResult> reset =
        Exec(conn, "SET LOCAL lock_timeout = DEFAULT", "starting the initial snapshot");
    if (!reset.ok()) return reset.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<PgResult> TableCursor::Fetch(PGconn* conn, const SnapshotTable& table, int rows) {
  const std::string what = absl::StrCat("reading table ", table.name.Display());
  if (!open_) {
    absl::StatusOr<PgResult> declared =
        Exec(conn,
             absl::StrCat("DECLARE weir_snapshot NO SCROLL CURSOR FOR SELECT * FROM ",
                          table.name.Quoted(), " ORDER BY ", OrderBy(table)),
             what);
    if (!declared.ok()) return declared.status();
    open_ = true;
  }
  absl::StatusOr<PgResult> batch =
      Exec(conn, absl::StrCat("FETCH ", rows, " FROM weir_snapshot"), what);
  if (!batch.ok()) return batch.status();
  if (PQntuples(batch->get()) == 0) {
    absl::StatusOr<PgResult> closed = Exec(conn, "CLOSE weir_snapshot", "closing a cursor");
    if (!closed.ok()) return closed.status();
    open_ = false;
  }
  return batch;
}

absl::StatusOr<std::unique_ptr<SnapshotReaders>> SnapshotReaders::Start(
    Options options, std::vector<SnapshotTable> plan, std::shared_ptr<CdcCounters> counters) {
  std::unique_ptr<SnapshotReaders> readers(
      new SnapshotReaders(std::move(options), std::move(plan), std::move(counters)));
  const Options& opts = readers->options_;
  std::vector<TableName> tables;
  for (const SnapshotTable& table : readers->plan_) tables.push_back(table.name);
  // Every connection imports the snapshot now, while the exporting
  // replication connection is still idle in CREATE_REPLICATION_SLOT's
  // transaction (START_REPLICATION would end the export). A lock wait
  // here means a TRUNCATE or ALTER TABLE queued behind the source's own
  // lock, which it would never get: fail instead of waiting for ever.
  for (int idx = 0; idx < opts.workers; ++idx) {
    auto failed = [&](const absl::Status& status) {
      return absl::Status(status.code(), absl::StrCat("snapshot reader ", idx + 1, " of ",
                                                      opts.workers, ": ", status.message()));
    };
    auto reader = std::make_unique<Reader>();
    absl::StatusOr<PgConn> conn = Connect(opts.conninfo, /*replication=*/false);
    if (!conn.ok()) return failed(conn.status());
    reader->conn = *std::move(conn);
    absl::StatusOr<PgResult> named =
        Exec(reader->conn.get(),
             absl::StrCat("SET application_name = ", QuoteLiteral(opts.application_name)),
             "setting application_name");
    if (!named.ok()) return failed(named.status());
    absl::Status imported =
        ImportSnapshot(reader->conn.get(), opts.snapshot_name, tables, absl::Seconds(10));
    if (!imported.ok()) return failed(imported);
    reader->cancel.reset(PQgetCancel(reader->conn.get()));
    readers->readers_.push_back(std::move(reader));
  }
  readers->counters_->snapshot_readers.store(opts.workers, std::memory_order_relaxed);
  readers->running_ = opts.workers;
  for (const std::unique_ptr<Reader>& reader : readers->readers_) {
    Reader* raw_reader = reader.get();
    reader->thread = std::thread([raw = readers.get(), raw_reader] { raw->Run(*raw_reader); });
  }
  return readers;
}

SnapshotReaders::~SnapshotReaders() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  for (const std::unique_ptr<Reader>& reader : readers_) {
    // Interrupts a long query; a reader between queries sees stop_.
    char error[256];
    if (reader->cancel != nullptr) PQcancel(reader->cancel.get(), error, sizeof(error));
  }
  for (const std::unique_ptr<Reader>& reader : readers_) {
    if (reader->thread.joinable()) reader->thread.join();
  }
}

void SnapshotReaders::Run(Reader& reader) {
  absl::Status status;
  while (!stop_.load()) {
    Work work;
    absl::StatusOr<bool> claimed = Claim(reader.conn.get(), work);
    if (!claimed.ok()) {
      status = claimed.status();
      break;
    }
    if (!*claimed) break;
    status = work.whole_table ? ReadWholeTable(reader.conn.get(), work)
                              : ReadChunk(reader.conn.get(), work);
    if (!status.ok()) break;
  }
  if (status.ok() && !stop_.load()) {
    // Done: end this reader's transaction (its snapshot) now.
    absl::StatusOr<PgResult> done = Exec(reader.conn.get(), "COMMIT", "ending a snapshot reader");
    status = done.status();
  }
  reader.conn.reset();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
    // The first error stops the others; one after a stop is its echo.
    if (!status.ok() && !stop_.load()) {
      error_ = status;
      stop_ = true;
    }
  }
  space_.notify_all();
}

absl::StatusOr<bool> SnapshotReaders::Claim(PGconn* conn, Work& work) {
  std::lock_guard<std::mutex> lock(claim_mutex_);
  if (stop_.load() || next_table_ >= plan_.size()) return false;
  const SnapshotTable& table = plan_[next_table_];
  work.table = next_table_;
  if (!table.chunked()) {
    work.whole_table = true;
    ++next_table_;
    return true;
  }
  // The next chunk ends at the chunk_rows-th key after the previous one's
  // end. Only the key is read (an index scan); the rows are read outside
  // the lock, while the next claim runs.
  std::string sql = absl::StrCat("SELECT ", OrderBy(table), " FROM ", table.name.Quoted());
  if (next_lower_.has_value()) {
    absl::StrAppend(&sql, " WHERE ", KeyList(table), " > ", ParamList(table, 1));
  }
  absl::StrAppend(&sql, " ORDER BY ", OrderBy(table), " LIMIT 1 OFFSET ", options_.chunk_rows - 1);
  absl::StatusOr<PgResult> bound =
      Exec(conn, sql,
           absl::StrCat("cutting table ", table.name.Display(), " into chunks at ",
                        DescribeRange(table, next_lower_, std::nullopt)),
           next_lower_.value_or(std::vector<std::string>()));
  if (!bound.ok()) return bound.status();
  work.lower = next_lower_;
  if (PQntuples(bound->get()) == 1) {
    std::vector<std::string> upper;
    for (int column = 0; column < PQnfields(bound->get()); ++column) {
      upper.emplace_back(PQgetvalue(bound->get(), 0, column),
                         static_cast<size_t>(PQgetlength(bound->get(), 0, column)));
    }
    work.upper = upper;
    next_lower_ = std::move(upper);
  } else {
    ++next_table_;
    next_lower_.reset();
  }
  return true;
}

void SnapshotReaders::BeginRead() {
  const int64_t now_reading = reading_.fetch_add(1) + 1;
  int64_t peak = counters_->snapshot_max_parallel_reads.load();
  while (now_reading > peak &&
         !counters_->snapshot_max_parallel_reads.compare_exchange_weak(peak, now_reading)) {
  }
}

absl::Status SnapshotReaders::ReadChunk(PGconn* conn, const Work& work) {
  const SnapshotTable& table = plan_[work.table];
  std::string sql = absl::StrCat("SELECT * FROM ", table.name.Quoted());
  std::vector<std::string> params;
  std::vector<std::string> conditions;
  if (work.lower.has_value()) {
    conditions.push_back(absl::StrCat(KeyList(table), " > ", ParamList(table, 1)));
    params = *work.lower;
  }
  if (work.upper.has_value()) {
    conditions.push_back(absl::StrCat(
        KeyList(table), " <= ", ParamList(table, static_cast<int>(params.size()) + 1)));
    params.insert(params.end(), work.upper->begin(), work.upper->end());
  }
  if (!conditions.empty()) absl::StrAppend(&sql, " WHERE ", absl::StrJoin(conditions, " AND "));
  absl::StrAppend(&sql, " ORDER BY ", OrderBy(table));
  BeginRead();
  absl::StatusOr<PgResult> rows = Exec(conn, sql,
                                       absl::StrCat("reading table ", table.name.Display(), ", ",
                                                    DescribeRange(table, work.lower, work.upper)),
                                       params);
  reading_.fetch_sub(1);
  if (!rows.ok()) return rows.status();
  counters_->snapshot_chunks.fetch_add(1, std::memory_order_relaxed);
  if (PQntuples(rows->get()) > 0) Push({work.table, *std::move(rows)});
  return absl::OkStatus();
}

absl::Status SnapshotReaders::ReadWholeTable(PGconn* conn, const Work& work) {
  const SnapshotTable& table = plan_[work.table];
  TableCursor cursor;
  while (!stop_.load()) {
    BeginRead();
    absl::StatusOr<PgResult> rows = cursor.Fetch(conn, table, options_.chunk_rows);
    reading_.fetch_sub(1);
    if (!rows.ok()) return rows.status();
    if (PQntuples(rows->get()) == 0) break;
    if (!Push({work.table, *std::move(rows)})) break;
  }
  return absl::OkStatus();
}

bool SnapshotReaders::Push(Batch batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  // A couple of results per reader ahead of the worker, at most.
  const size_t capacity = 2 * static_cast<size_t>(options_.workers);
  space_.wait(lock, [&] { return stop_.load() || batches_.size() < capacity; });
  if (stop_.load()) return false;
  batches_.push_back(std::move(batch));
  return true;
}

absl::StatusOr<std::optional<SnapshotReaders::Batch>> SnapshotReaders::Next() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!error_.ok()) return error_;
  if (batches_.empty()) return std::optional<Batch>();
  Batch batch = std::move(batches_.front());
  batches_.pop_front();
  space_.notify_one();
  return std::optional<Batch>(std::move(batch));
}

bool SnapshotReaders::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_ == 0 && batches_.empty() && error_.ok();
}

}  // namespace weir::postgres::internal
