// CdcCore's initial snapshot: the tables read in the snapshot the slot
// exported (REPEATABLE READ, SET TRANSACTION SNAPSHOT), as op-"r" rows.
// With snapshot_workers > 1, SnapshotReaders (snapshot_readers.h) read
// primary-key ranges on connections of their own, each importing the same
// snapshot; this worker converts and emits what they fetched. Otherwise the
// source's own connection reads each table through a cursor. Either way the
// stream starts only after the last snapshot row, from the slot's
// consistent point, so the two neither overlap nor leave a gap.

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/connectors/postgres/cdc_core.h"

namespace weir::postgres::internal {

using debezium::Op;
using debezium::internal::FieldSpec;

absl::Status CdcCore::BeginSnapshot(const std::string& snapshot_name) {
  absl::Status imported = ImportSnapshot(sql_.get(), snapshot_name, wanted_, absl::ZeroDuration());
  if (!imported.ok()) return imported;
  absl::StatusOr<std::vector<SnapshotTable>> plan = PlanSnapshot(sql_.get(), wanted_, types_);
  if (!plan.ok()) return plan.status();
  snapshot_plan_ = *std::move(plan);
  in_snapshot_ = true;
  snapshot_table_ = 0;
  snapshot_time_ms_ = absl::ToUnixMillis(absl::Now());
  if (options_.snapshot_workers <= 1) return absl::OkStatus();
  // Readers that would find work: all of them when a table is cut into
  // key ranges, else one per table read whole.
  int useful = 0;
  for (const SnapshotTable& table : snapshot_plan_) {
    useful += table.chunked() ? options_.snapshot_workers : 1;
    if (!table.chunked()) {
      weir::internal::Log(absl::StrCat("postgres source: one connection reads table ",
                                       table.name.Display(), " whole: ", table.whole_table_reason));
    }
  }
  useful = std::min(useful, options_.snapshot_workers);
  if (useful <= 1) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<SnapshotReaders>> readers =
      SnapshotReaders::Start({.conninfo = options_.connection,
                              .snapshot_name = snapshot_name,
                              .application_name = absl::StrCat("weir-snapshot:", options_.slot),
                              .workers = useful,
                              .chunk_rows = options_.snapshot_chunk_rows},
                             snapshot_plan_, counters_);
  if (!readers.ok()) return readers.status();
  snapshot_readers_ = *std::move(readers);
  return absl::OkStatus();
}

absl::Status CdcCore::FillSnapshotRow(void* row) {
  const TableName& name = snapshot_plan_[snapshot_table_].name;
  if (raw_) {
    auto& columns = *static_cast<std::vector<ColumnValue>*>(row);
    for (int column = 0; column < PQnfields(snapshot_batch_.get()); ++column) {
      ColumnValue out = DescribeColumn(PQfname(snapshot_batch_.get(), column),
                                       snapshot_types_[static_cast<size_t>(column)]);
      const std::vector<std::string>& keys = snapshot_plan_[snapshot_table_].key_columns;
      out.key = std::find(keys.begin(), keys.end(), out.name) != keys.end();
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

absl::Status CdcCore::EndSnapshot() {
  snapshot_readers_.reset();
  snapshot_batch_.reset();
  absl::StatusOr<PgResult> done = Exec(sql_.get(), "COMMIT", "ending the initial snapshot");
  if (!done.ok()) return done.status();
  in_snapshot_ = false;
  if (end_after_snapshot_) ended_ = true;
  return absl::OkStatus();
}

absl::StatusOr<bool> CdcCore::NextSnapshotBatch() {
  if (snapshot_readers_ != nullptr) {
    absl::StatusOr<std::optional<SnapshotReaders::Batch>> batch = snapshot_readers_->Next();
    if (!batch.ok()) return batch.status();
    if (batch->has_value()) {
      snapshot_table_ = (*batch)->table;
      snapshot_batch_ = std::move((*batch)->rows);
      return true;
    }
    if (!snapshot_readers_->done()) return false;
  } else {
    while (snapshot_table_ < snapshot_plan_.size()) {
      absl::StatusOr<PgResult> batch = snapshot_cursor_.Fetch(
          sql_.get(), snapshot_plan_[snapshot_table_], options_.snapshot_chunk_rows);
      if (!batch.ok()) return batch.status();
      if (PQntuples(batch->get()) > 0) {
        snapshot_batch_ = *std::move(batch);
        return true;
      }
      ++snapshot_table_;
    }
  }
  absl::Status ended = EndSnapshot();
  if (!ended.ok()) return ended;
  return false;
}

absl::StatusOr<PollResult> CdcCore::NextSnapshotRow(void* after, CdcChangeHeader& header,
                                                    debezium::SourceInfo& source) {
  while (snapshot_batch_ == nullptr || snapshot_row_ >= PQntuples(snapshot_batch_.get())) {
    snapshot_batch_.reset();
    absl::StatusOr<bool> fetched = NextSnapshotBatch();
    if (!fetched.ok()) return fetched.status();
    if (!in_snapshot_) return ended_ ? PollResult::kEndOfInput : PollResult::kNothingAvailable;
    if (!*fetched) return PollResult::kNothingAvailable;
    snapshot_row_ = 0;
    snapshot_types_.clear();
    snapshot_field_columns_.clear();
    for (int column = 0; column < PQnfields(snapshot_batch_.get()); ++column) {
      absl::StatusOr<PgType> type = types_.Resolve(PQftype(snapshot_batch_.get(), column));
      if (!type.ok()) return type.status();
      snapshot_types_.push_back(*type);
    }
    for (const FieldSpec& spec : specs_) {
      snapshot_field_columns_.push_back(
          PQfnumber(snapshot_batch_.get(), QuoteIdentifier(spec.name).c_str()));
    }
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
  source.schema = snapshot_plan_[snapshot_table_].name.schema;
  source.table = snapshot_plan_[snapshot_table_].name.table;
  source.snapshot = "true";
  source.ts_ms = snapshot_time_ms_;
  source.lsn = static_cast<int64_t>(consistent_lsn_);
}

RawRow CdcCore::RawSnapshotRow() const {
  RawRow row;
  const std::vector<std::string>& keys = snapshot_plan_[snapshot_table_].key_columns;
  const PGresult* batch = snapshot_batch_.get();
  for (int column = 0; column < PQnfields(batch); ++column) {
    RawColumn raw{.name = PQfname(batch, column)};
    raw.key = std::find(keys.begin(), keys.end(), raw.name) != keys.end();
    if (!PQgetisnull(batch, snapshot_row_, column)) {
      raw.text.emplace(PQgetvalue(batch, snapshot_row_, column),
                       PQgetlength(batch, snapshot_row_, column));
    }
    row.push_back(std::move(raw));
  }
  return row;
}

}  // namespace weir::postgres::internal
