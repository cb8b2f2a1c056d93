// CdcCore's initial snapshot: the tables read in the snapshot the slot
// exported (REPEATABLE READ, SET TRANSACTION SNAPSHOT), through a cursor in
// primary-key order, a chunk at a time, as op-"r" rows.

#include <libpq-fe.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/connectors/postgres/cdc_core.h"

namespace weir::postgres::internal {

using debezium::Op;
using debezium::internal::FieldSpec;

absl::Status CdcCore::BeginSnapshot(const std::string& snapshot_name) {
  for (const std::string& sql :
       {std::string("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        absl::StrCat("SET TRANSACTION SNAPSHOT ", QuoteLiteral(snapshot_name))}) {
    absl::StatusOr<PgResult> result = Exec(sql_.get(), sql, "starting the initial snapshot");
    if (!result.ok()) return result.status();
  }
  // TRUNCATE and table rewrites are not MVCC-safe: one committed after the
  // exported snapshot would show the snapshot an empty table. ACCESS SHARE
  // locks, held until the snapshot ends, make them wait instead.
  for (const TableName& table : wanted_) {
    absl::StatusOr<PgResult> locked =
        Exec(sql_.get(),
             absl::StrCat("LOCK TABLE ", QuoteIdentifier(table.schema), ".",
                          QuoteIdentifier(table.table), " IN ACCESS SHARE MODE"),
             absl::StrCat("locking table ", table.Display(), " for the initial snapshot"));
    if (!locked.ok()) return locked.status();
  }
  in_snapshot_ = true;
  snapshot_table_ = 0;
  snapshot_time_ms_ = absl::ToUnixMillis(absl::Now());
  return absl::OkStatus();
}

absl::Status CdcCore::FillSnapshotRow(void* row) {
  const TableName& name = wanted_[snapshot_table_];
  if (raw_) {
    auto& columns = *static_cast<std::vector<ColumnValue>*>(row);
    for (int column = 0; column < PQnfields(snapshot_batch_.get()); ++column) {
      ColumnValue out = DescribeColumn(PQfname(snapshot_batch_.get(), column),
                                       snapshot_types_[static_cast<size_t>(column)]);
      out.key =
          std::find(snapshot_keys_.begin(), snapshot_keys_.end(), out.name) != snapshot_keys_.end();
      out.type_modifier = PQfmod(snapshot_batch_.get(), column);
      if (PQgetisnull(snapshot_batch_.get(), snapshot_row_, column)) {
        out.state = ColumnValue::State::kNull;
      } else {
        out.state = ColumnValue::State::kValue;
        out.text.assign(PQgetvalue(snapshot_batch_.get(), snapshot_row_, column),
                        PQgetlength(snapshot_batch_.get(), snapshot_row_, column));
      }
      columns.push_back(std::move(out));
    }
    return absl::OkStatus();
  }
  for (size_t field = 0; field < specs_.size(); ++field) {
    const FieldSpec& spec = specs_[field];
    const int column = snapshot_field_columns_[field];
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("after: field \"", spec.name, "\" (table ", name.Display(), "): ", why));
    };
    if (column < 0) {
      if (spec.required) return fail("the table has no such column");
      continue;
    }
    if (PQgetisnull(snapshot_batch_.get(), snapshot_row_, column)) {
      if (spec.required) return fail("is NULL");
      spec.clear(row);
      continue;
    }
    absl::Status status =
        AssignText(spec, snapshot_types_[static_cast<size_t>(column)],
                   absl::string_view(PQgetvalue(snapshot_batch_.get(), snapshot_row_, column),
                                     PQgetlength(snapshot_batch_.get(), snapshot_row_, column)),
                   row);
    if (!status.ok()) return fail(status.message());
  }
  return absl::OkStatus();
}

absl::StatusOr<PollResult> CdcCore::NextSnapshotRow(void* after, CdcChangeHeader& header,
                                                    debezium::SourceInfo& source) {
  while (snapshot_batch_ == nullptr || snapshot_row_ >= PQntuples(snapshot_batch_.get())) {
    if (snapshot_table_ >= wanted_.size()) {
      absl::StatusOr<PgResult> done = Exec(sql_.get(), "COMMIT", "ending the initial snapshot");
      if (!done.ok()) return done.status();
      in_snapshot_ = false;
      snapshot_batch_.reset();
      if (end_after_snapshot_) {
        ended_ = true;
        return PollResult::kEndOfInput;
      }
      return PollResult::kNothingAvailable;
    }
    const TableName& name = wanted_[snapshot_table_];
    if (!cursor_open_) {
      // A cursor in primary-key order (ctid order for a table without one).
      absl::StatusOr<PgResult> key =
          Exec(sql_.get(),
               "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
               "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisprimary "
               "ORDER BY array_position(i.indkey, a.attnum)",
               "reading the primary key",
               {absl::StrCat(QuoteIdentifier(name.schema), ".", QuoteIdentifier(name.table))});
      if (!key.ok()) return key.status();
      snapshot_keys_.clear();
      std::string order;
      for (int row = 0; row < PQntuples(key->get()); ++row) {
        snapshot_keys_.push_back(Value(*key, row, 0));
        absl::StrAppend(&order, row > 0 ? ", " : "", QuoteIdentifier(snapshot_keys_.back()));
      }
      if (order.empty()) order = "ctid";
      absl::StatusOr<PgResult> declared =
          Exec(sql_.get(),
               absl::StrCat("DECLARE weir_snapshot NO SCROLL CURSOR FOR SELECT * FROM ",
                            QuoteIdentifier(name.schema), ".", QuoteIdentifier(name.table),
                            " ORDER BY ", order),
               absl::StrCat("reading table ", name.Display()));
      if (!declared.ok()) return declared.status();
      cursor_open_ = true;
    }
    absl::StatusOr<PgResult> batch = Exec(
        sql_.get(), absl::StrCat("FETCH ", options_.snapshot_chunk_rows, " FROM weir_snapshot"),
        absl::StrCat("reading table ", name.Display()));
    if (!batch.ok()) return batch.status();
    snapshot_row_ = 0;
    if (PQntuples(batch->get()) == 0) {
      absl::StatusOr<PgResult> closed = Exec(sql_.get(), "CLOSE weir_snapshot", "closing a cursor");
      if (!closed.ok()) return closed.status();
      cursor_open_ = false;
      snapshot_batch_.reset();
      ++snapshot_table_;
      continue;
    }
    snapshot_types_.clear();
    snapshot_field_columns_.clear();
    for (int column = 0; column < PQnfields(batch->get()); ++column) {
      absl::StatusOr<PgType> type = types_.Resolve(PQftype(batch->get(), column));
      if (!type.ok()) return type.status();
      snapshot_types_.push_back(*type);
    }
    for (const FieldSpec& spec : specs_) {
      snapshot_field_columns_.push_back(
          PQfnumber(batch->get(), QuoteIdentifier(spec.name).c_str()));
    }
    snapshot_batch_ = *std::move(batch);
  }
  absl::Status status = FillSnapshotRow(after);
  if (!status.ok()) {
    const RawRow row = RawSnapshotRow();
    ++snapshot_row_;
    SetSnapshotSource(source);
    Reject(std::move(status), Op::kRead, nullptr, &row, source, header);
    header.event_time_ms = snapshot_time_ms_;
    return PollResult::kMoreAvailable;
  }
  ++snapshot_row_;
  header.op = Op::kRead;
  header.has_after = true;
  header.event_time_ms = snapshot_time_ms_;
  header.ts_ms = absl::ToUnixMillis(absl::Now());
  SetSnapshotSource(source);
  counters_->snapshot_rows.fetch_add(1, std::memory_order_relaxed);
  return PollResult::kMoreAvailable;
}

void CdcCore::SetSnapshotSource(debezium::SourceInfo& source) const {
  source.version = "weir";
  source.connector = "postgresql";
  source.name = options_.name;
  source.db = db_;
  source.schema = wanted_[snapshot_table_].schema;
  source.table = wanted_[snapshot_table_].table;
  source.snapshot = "true";
  source.ts_ms = snapshot_time_ms_;
  source.lsn = static_cast<int64_t>(consistent_lsn_);
}

RawRow CdcCore::RawSnapshotRow() const {
  RawRow row;
  const PGresult* batch = snapshot_batch_.get();
  for (int column = 0; column < PQnfields(batch); ++column) {
    RawColumn raw{.name = PQfname(batch, column)};
    raw.key =
        std::find(snapshot_keys_.begin(), snapshot_keys_.end(), raw.name) != snapshot_keys_.end();
    if (!PQgetisnull(batch, snapshot_row_, column)) {
      raw.text.emplace(PQgetvalue(batch, snapshot_row_, column),
                       PQgetlength(batch, snapshot_row_, column));
    }
    row.push_back(std::move(raw));
  }
  return row;
}

}  // namespace weir::postgres::internal
