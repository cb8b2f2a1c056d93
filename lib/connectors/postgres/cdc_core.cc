// CdcCore (cdc_core.h): the slot, pgoutput messages turned into rows, the
// position kept in checkpoints and the LSN confirmed to the server.
//
// Position. `done_lsn_` is where a restart resumes: the end of the last
// transaction whose rows were all emitted (or a keepalive's position when
// no transaction was pending). A checkpoint taken in the middle of a
// transaction also records that transaction's commit LSN and how many of
// its rows were emitted; a restore (and a reconnect) skips every
// transaction that commits before `done_lsn_` and that many rows of the one
// cut through, so nothing is emitted twice.

#include "lib/connectors/postgres/cdc_core.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/connectors/postgres/connection.h"
#include "lib/connectors/postgres/pgoutput.h"
#include "lib/connectors/postgres/text_value.h"
#include "lib/connectors/postgres/wal_stream.h"
#include "lib/formats/debezium_field.h"
#include "weir/connectors/postgres.h"
#include "weir/connectors/postgres_rows.h"

namespace weir::postgres::internal {

using debezium::Op;
using debezium::internal::FieldSpec;

ColumnValue DescribeColumn(std::string name, const PgType& type) {
  ColumnValue column;
  column.name = std::move(name);
  column.type = type.name;
  column.is_array = type.is_array;
  column.size = type.size;
  switch (type.kind) {
    case PgKind::kBool:
      column.kind = ColumnKind::kBool;
      break;
    case PgKind::kInteger:
      column.kind = ColumnKind::kInteger;
      break;
    case PgKind::kFloat:
      column.kind = ColumnKind::kFloat;
      break;
    case PgKind::kNumeric:
      column.kind = ColumnKind::kNumeric;
      break;
    case PgKind::kText:
      column.kind = ColumnKind::kText;
      break;
    case PgKind::kUuid:
      column.kind = ColumnKind::kUuid;
      break;
    case PgKind::kJson:
      column.kind = ColumnKind::kJson;
      break;
    case PgKind::kTimestampTz:
      column.kind = ColumnKind::kTimestampTz;
      break;
    case PgKind::kTimestamp:
      column.kind = ColumnKind::kTimestamp;
      break;
    case PgKind::kDate:
      column.kind = ColumnKind::kDate;
      break;
    case PgKind::kTime:
      column.kind = ColumnKind::kTime;
      break;
    case PgKind::kBytea:
      column.kind = ColumnKind::kBytea;
      break;
    case PgKind::kOther:
      column.kind = ColumnKind::kOther;
      break;
  }
  return column;
}

std::string Position::Encode() const {
  return absl::StrCat("v1 lsn=", done_lsn, " tx=", tx_final_lsn, " rows=", tx_rows,
                      " phase=", snapshot_phase ? "snapshot" : "stream");
}

absl::StatusOr<Position> Position::Decode(const std::string& text) {
  Position position;
  std::vector<std::string> parts = absl::StrSplit(text, ' ');
  bool ok = parts.size() == 5 && parts[0] == "v1";
  for (size_t idx = 1; ok && idx < parts.size(); ++idx) {
    std::pair<std::string, std::string> kv = absl::StrSplit(parts[idx], '=');
    if (kv.first == "lsn") {
      ok = absl::SimpleAtoi(kv.second, &position.done_lsn);
    } else if (kv.first == "tx") {
      ok = absl::SimpleAtoi(kv.second, &position.tx_final_lsn);
    } else if (kv.first == "rows") {
      ok = absl::SimpleAtoi(kv.second, &position.tx_rows);
    } else if (kv.first == "phase") {
      position.snapshot_phase = kv.second == "snapshot";
    } else {
      ok = false;
    }
  }
  if (!ok) {
    return absl::DataLossError(
        absl::StrCat("postgres source: unreadable checkpoint position \"", text, "\""));
  }
  return position;
}

void CdcCoreDeleter::operator()(CdcCore* core) const { delete core; }

absl::StatusOr<PgTypeRow> CdcCore::LookupType(uint32_t oid) {
  absl::StatusOr<PgResult> result =
      Exec(sql_.get(),
           "SELECT typtype, typcategory, typbasetype, typelem, format_type(oid, NULL) "
           "FROM pg_type WHERE oid = $1",
           "looking up a column type", {std::to_string(oid)});
  if (!result.ok()) return result.status();
  if (PQntuples(result->get()) != 1) {
    return absl::NotFoundError(absl::StrCat("no type with OID ", oid));
  }
  PgTypeRow row;
  row.typtype = Value(*result, 0, 0)[0];
  row.typcategory = Value(*result, 0, 1)[0];
  absl::SimpleAtoi(Value(*result, 0, 2), &row.typbasetype);
  absl::SimpleAtoi(Value(*result, 0, 3), &row.typelem);
  row.name = Value(*result, 0, 4);
  return row;
}

absl::Status CdcCore::CreateSlot(PGconn* replication, bool export_snapshot, bool temporary,
                                 std::string& snapshot_name, uint64_t& consistent_lsn) {
  const std::string sql = absl::StrCat(
      "CREATE_REPLICATION_SLOT ", QuoteIdentifier(options_.slot), temporary ? " TEMPORARY" : "",
      " LOGICAL pgoutput (SNAPSHOT '", export_snapshot ? "export" : "nothing", "')");
  absl::StatusOr<PgResult> result =
      Exec(replication, sql, absl::StrCat("creating replication slot \"", options_.slot, "\""));
  if (!result.ok()) return result.status();
  absl::StatusOr<uint64_t> lsn = ParseLsn(Value(*result, 0, 1));
  if (!lsn.ok()) return lsn.status();
  consistent_lsn = *lsn;
  snapshot_name = Value(*result, 0, 2);
  return absl::OkStatus();
}

void CdcCore::RegisterMetrics(MetricGroup& group) {
  const MetricLabels labels = {{"slot", options_.slot}};
  metrics_ = std::make_unique<Metrics>();
  metrics_->snapshot_rows = &group.AddCounter("weir_postgres_snapshot_rows_total",
                                              "Rows read by the initial snapshot", labels);
  metrics_->snapshot_chunks = &group.AddCounter(
      "weir_postgres_snapshot_chunks_total",
      "Primary-key ranges read by the initial snapshot's parallel readers", labels);
  metrics_->changes = &group.AddCounter("weir_postgres_changes_total",
                                        "Changes emitted from the replication stream", labels);
  metrics_->skipped_replayed =
      &group.AddCounter("weir_postgres_replayed_skipped_total",
                        "Changes received again after a restore or reconnect and skipped", labels);
  metrics_->reconnects = &group.AddCounter("weir_postgres_reconnects_total",
                                           "Replication connections re-established", labels);
  metrics_->confirmed_lsn = &group.AddGauge(
      "weir_postgres_confirmed_lsn", "The LSN confirmed to the server (the slot's flush)", labels);
  metrics_->commit_lag_ms = &group.AddGauge(
      "weir_postgres_commit_lag_ms",
      "Milliseconds between the commit of the last emitted change and its emission", labels);
}

absl::StatusOr<CdcCore::SlotInfo> CdcCore::LookUpSlot() {
  // A crashed run's walsender may hold the slot until the server notices.
  const absl::Time busy_deadline = absl::Now() + options_.slot_busy_timeout;
  while (true) {
    absl::StatusOr<PgResult> slot =
        Exec(sql_.get(),
             "SELECT active, active_pid, confirmed_flush_lsn, plugin FROM pg_replication_slots "
             "WHERE slot_name = $1",
             "looking up the replication slot", {options_.slot});
    if (!slot.ok()) return slot.status();
    SlotInfo info;
    info.exists = PQntuples(slot->get()) == 1;
    if (!info.exists) return info;
    if (Value(*slot, 0, 0) == "t") {
      if (absl::Now() < busy_deadline) {
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
      return absl::UnavailableError(absl::StrCat(
          "replication slot \"", options_.slot, "\" is active for process ", Value(*slot, 0, 1),
          " (waited ", absl::FormatDuration(options_.slot_busy_timeout),
          "); one slot feeds one source"));
    }
    if (Value(*slot, 0, 3) != "pgoutput") {
      return absl::FailedPreconditionError(absl::StrCat("replication slot \"", options_.slot,
                                                        "\" uses the plugin ", Value(*slot, 0, 3),
                                                        ", not pgoutput"));
    }
    absl::StatusOr<uint64_t> lsn = ParseLsn(Value(*slot, 0, 2));
    if (lsn.ok()) info.confirmed = *lsn;
    return info;
  }
}

absl::Status CdcCore::Resume(const Position& restored, const SlotInfo& slot) {
  restored_ = true;
  if (!slot.exists) {
    return absl::DataLossError(absl::StrCat(
        "replication slot \"", options_.slot,
        "\" does not exist, and the checkpoint being restored resumes at LSN ",
        LsnToString(restored.done_lsn),
        " (confirmed LSN: none); the changes since then are gone. Take a new snapshot: start "
        "without the checkpoint"));
  }
  if (slot.confirmed > restored.done_lsn) {
    return absl::DataLossError(absl::StrCat(
        "replication slot \"", options_.slot, "\" has confirmed LSN ", LsnToString(slot.confirmed),
        ", beyond the checkpoint's LSN ", LsnToString(restored.done_lsn),
        ": the server no longer holds the changes in between (was the slot used by another "
        "consumer?)"));
  }
  done_lsn_ = restored.done_lsn;
  skip_final_lsn_ = restored.tx_final_lsn;
  skip_rows_ = restored.tx_rows;
  return absl::OkStatus();
}

absl::Status CdcCore::StartFresh(PGconn* replication, const SlotInfo& slot) {
  if (options_.snapshot == SnapshotMode::kInitialOnly) {
    end_after_snapshot_ = true;
    return CreateSlotAndSnapshot(replication, /*snapshot=*/true, /*temporary=*/true);
  }
  if (!slot.exists) {
    return CreateSlotAndSnapshot(replication, options_.snapshot == SnapshotMode::kInitial,
                                 /*temporary=*/false);
  }
  if (checkpointing_ && options_.snapshot == SnapshotMode::kInitial) {
    // A job with checkpoints that restores none has committed nothing of
    // what this slot's earlier reader emitted (a run killed before its first
    // checkpoint, whose snapshot rows went nowhere): take the snapshot again,
    // from a new slot, as Debezium does when it finds no offsets.
    weir::internal::Log(absl::StrCat("postgres source: slot \"", options_.slot,
                                     "\" exists but no checkpoint was restored; dropping it and "
                                     "taking the initial snapshot"));
    absl::StatusOr<PgResult> dropped = Exec(sql_.get(), "SELECT pg_drop_replication_slot($1)",
                                            "dropping the slot", {options_.slot});
    if (!dropped.ok()) return dropped.status();
    return CreateSlotAndSnapshot(replication, /*snapshot=*/true, /*temporary=*/false);
  }
  // A slot without a checkpoint: resume where it is (no snapshot).
  weir::internal::Log(absl::StrCat("postgres source: resuming existing slot \"", options_.slot,
                                   "\" at its confirmed LSN ", LsnToString(slot.confirmed),
                                   " without a snapshot (drop the slot to take one)"));
  done_lsn_ = slot.confirmed;
  return absl::OkStatus();
}

absl::Status CdcCore::CreateSlotAndSnapshot(PGconn* replication, bool snapshot, bool temporary) {
  std::string snapshot_name;
  absl::Status created =
      CreateSlot(replication, snapshot, temporary, snapshot_name, consistent_lsn_);
  if (!created.ok()) return created;
  done_lsn_ = consistent_lsn_;
  // Importing the snapshot (in the SQL connection's transaction, and the
  // parallel readers' ones) keeps it alive once the replication connection
  // moves on to START_REPLICATION; until then it is idle, as exporting needs.
  return snapshot ? BeginSnapshot(snapshot_name) : absl::OkStatus();
}

absl::Status CdcCore::Init(const SourceReaderContext& context) {
  checkpointing_ = context.checkpointing;
  retained_ = std::max(1, context.checkpoints_retained);
  if (context.metrics != nullptr) RegisterMetrics(*context.metrics);
  std::optional<Position> restored;
  if (!context.splits.empty() && context.splits[0].state.has_value()) {
    absl::StatusOr<Position> position = Position::Decode(*context.splits[0].state);
    if (!position.ok()) return position.status();
    restored = *position;
  }
  absl::StatusOr<PgConn> sql = Connect(options_.connection, /*replication=*/false);
  if (!sql.ok()) return sql.status();
  sql_ = *std::move(sql);
  db_ = PQdb(sql_.get());
  absl::StatusOr<SlotInfo> slot = LookUpSlot();
  if (!slot.ok()) return slot.status();
  absl::StatusOr<PgConn> replication = Connect(options_.connection, /*replication=*/true);
  if (!replication.ok()) return replication.status();

  if (restored.has_value() && restored->snapshot_phase) {
    // The exported snapshot died with the run that took it: start over
    // (the snapshot's rows are emitted again, as reads).
    weir::internal::Log(
        absl::StrCat("postgres source: the checkpoint was taken during the initial snapshot; "
                     "dropping slot \"",
                     options_.slot, "\" and taking the snapshot again"));
    if (slot->exists) {
      absl::StatusOr<PgResult> dropped = Exec(sql_.get(), "SELECT pg_drop_replication_slot($1)",
                                              "dropping the slot", {options_.slot});
      if (!dropped.ok()) return dropped.status();
    }
    restored.reset();
    *slot = SlotInfo();
  }
  absl::Status positioned =
      restored.has_value() ? Resume(*restored, *slot) : StartFresh(replication->get(), *slot);
  if (!positioned.ok()) return positioned;
  if (end_after_snapshot_) {
    replication->reset();  // the snapshot is imported: the temporary slot may go
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<WalStream>> stream =
      WalStream::Start({.conninfo = options_.connection,
                        .slot = options_.slot,
                        .publication = options_.publication,
                        .status_interval = options_.status_interval,
                        .max_buffered_bytes = options_.max_buffered_bytes,
                        .reconnect_timeout = options_.reconnect_timeout},
                       *std::move(replication), done_lsn_);
  if (!stream.ok()) return stream.status();
  stream_ = *std::move(stream);
  return absl::OkStatus();
}

void CdcCore::SetSource(debezium::SourceInfo& source, const Relation* relation,
                        uint64_t lsn) const {
  source.version = "weir";
  source.connector = "postgresql";
  source.name = options_.name;
  source.db = db_;
  if (relation != nullptr) {
    source.schema = relation->name.schema;
    source.table = relation->name.table;
  }
  source.snapshot = "false";
  source.ts_ms = tx_commit_ms_;
  source.lsn = static_cast<int64_t>(lsn);
  source.tx_id = tx_xid_;
}

absl::Status CdcCore::FillRow(const Relation& relation, const Tuple& tuple, const Tuple* fallback,
                              bool key_only, const char* image, void* row) {
  if (raw_) {
    auto& columns = *static_cast<std::vector<ColumnValue>*>(row);
    for (size_t column = 0; column < relation.columns.size() && column < tuple.size(); ++column) {
      const TupleColumn* value = &tuple[column];
      if (value->kind == TupleColumn::Kind::kUnchanged && fallback != nullptr &&
          column < fallback->size() && (*fallback)[column].kind == TupleColumn::Kind::kText) {
        value = &(*fallback)[column];
      }
      ColumnValue out = DescribeColumn(relation.columns[column].name, relation.types[column]);
      out.key = relation.columns[column].key;
      out.type_modifier = relation.columns[column].type_modifier;
      switch (value->kind) {
        case TupleColumn::Kind::kNull:
          out.state = ColumnValue::State::kNull;
          break;
        case TupleColumn::Kind::kUnchanged:
          out.state = ColumnValue::State::kUnchanged;
          break;
        case TupleColumn::Kind::kText:
          out.state = ColumnValue::State::kValue;
          out.text = value->value;
          break;
        case TupleColumn::Kind::kBinary:
          return absl::InvalidArgumentError(absl::StrCat(image, ": column \"", out.name,
                                                         "\" (table ", relation.name.Display(),
                                                         "): a value in binary format"));
      }
      columns.push_back(std::move(out));
    }
    (void)key_only;
    return absl::OkStatus();
  }
  for (size_t field = 0; field < specs_.size(); ++field) {
    const FieldSpec& spec = specs_[field];
    const int column = relation.field_columns[field];
    const bool required = spec.required && !key_only;
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(image, ": field \"", spec.name, "\" (table ",
                                                     relation.name.Display(), "): ", why));
    };
    if (column < 0 || static_cast<size_t>(column) >= tuple.size()) {
      if (required) return fail("the table has no such column");
      continue;
    }
    const TupleColumn* value = &tuple[static_cast<size_t>(column)];
    if (value->kind == TupleColumn::Kind::kUnchanged && fallback != nullptr &&
        static_cast<size_t>(column) < fallback->size() &&
        (*fallback)[static_cast<size_t>(column)].kind == TupleColumn::Kind::kText) {
      value = &(*fallback)[static_cast<size_t>(column)];
    }
    switch (value->kind) {
      case TupleColumn::Kind::kNull:
        if (required) return fail("is NULL");
        if (!key_only) spec.clear(row);
        break;
      case TupleColumn::Kind::kUnchanged:
        if (required) {
          return fail(
              "an unchanged TOASTed value the change does not carry (set REPLICA IDENTITY FULL "
              "on the table, or declare the field Optional)");
        }
        spec.clear(row);
        break;
      case TupleColumn::Kind::kBinary:
        return fail("a value in binary format");
      case TupleColumn::Kind::kText: {
        absl::Status status =
            AssignText(spec, relation.types[static_cast<size_t>(column)], value->value, row);
        if (!status.ok()) return fail(status.message());
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CdcCore::OnRelation(RelationMessage message) {
  Relation relation;
  relation.name = {message.schema, message.table};
  for (const TableName& wanted : wanted_) {
    if (wanted.schema == message.schema && wanted.table == message.table) relation.wanted = true;
  }
  for (const RelationColumn& column : message.columns) {
    absl::StatusOr<PgType> type = types_.Resolve(column.type_oid);
    if (!type.ok()) return type.status();
    relation.types.push_back(*type);
  }
  relation.columns = std::move(message.columns);
  for (const FieldSpec& spec : specs_) {
    int index = -1;
    for (size_t column = 0; column < relation.columns.size(); ++column) {
      if (relation.columns[column].name == spec.name) index = static_cast<int>(column);
    }
    relation.field_columns.push_back(index);
  }
  relations_[message.relation_id] = std::move(relation);
  return absl::OkStatus();
}

namespace {

// `tuple` as received, with unchanged TOAST values from `fallback` (the old
// row) where it has them.
RawRow RawRowOf(const Relation& relation, const Tuple& tuple, const Tuple* fallback) {
  RawRow row;
  for (size_t column = 0; column < relation.columns.size() && column < tuple.size(); ++column) {
    const TupleColumn* value = &tuple[column];
    if (value->kind == TupleColumn::Kind::kUnchanged && fallback != nullptr &&
        column < fallback->size() && (*fallback)[column].kind == TupleColumn::Kind::kText) {
      value = &(*fallback)[column];
    }
    RawColumn raw{.name = relation.columns[column].name, .key = relation.columns[column].key};
    switch (value->kind) {
      case TupleColumn::Kind::kNull:
        break;
      case TupleColumn::Kind::kUnchanged:
        raw.text = kUnavailableValue;
        break;
      case TupleColumn::Kind::kText:
      case TupleColumn::Kind::kBinary:
        raw.text = value->value;
        break;
    }
    row.push_back(std::move(raw));
  }
  return row;
}

}  // namespace

void CdcCore::Reject(absl::Status error, Op op, const RawRow* before, const RawRow* after,
                     const debezium::SourceInfo& source, CdcChangeHeader& header) const {
  const RejectedChange change{.op = op,
                              .before = before,
                              .after = after,
                              .source = &source,
                              .ts_ms = absl::ToUnixMillis(absl::Now()),
                              .slot = options_.slot,
                              .error = std::move(error)};
  header.op = op;
  header.rejected = RejectedLetter(change);
  header.rejected_at = RejectedAt(change);
}

bool CdcCore::CountRow() {
  ++tx_rows_;
  if (tx_final_lsn_ == skip_final_lsn_ && tx_rows_ <= skip_rows_) {
    counters_->skipped_replayed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

absl::StatusOr<bool> CdcCore::Apply(const WalStream::Item& item, void* before, void* after,
                                    CdcChangeHeader& header, debezium::SourceInfo& source) {
  absl::StatusOr<PgOutputMessage> parsed = ParsePgOutput(item.data);
  if (!parsed.ok()) return parsed.status();
  PgOutputMessage& message = *parsed;
  if (auto* begin = std::get_if<BeginMessage>(&message)) {
    in_tx_ = true;
    tx_final_lsn_ = begin->final_lsn;
    tx_xid_ = begin->xid;
    tx_commit_ms_ = (begin->commit_time_us + kPostgresEpochMicros) / 1000;
    tx_rows_ = 0;
    skipping_tx_ = begin->final_lsn < done_lsn_;
    return false;
  }
  if (auto* commit = std::get_if<CommitMessage>(&message)) {
    in_tx_ = false;
    if (!skipping_tx_) {
      done_lsn_ = std::max(done_lsn_, commit->end_lsn);
      if (skip_final_lsn_ != 0 && tx_final_lsn_ >= skip_final_lsn_) skip_final_lsn_ = 0;
      if (!checkpointing_) Confirm(done_lsn_);
    }
    skipping_tx_ = false;
    return false;
  }
  if (auto* relation = std::get_if<RelationMessage>(&message)) {
    absl::Status status = OnRelation(std::move(*relation));
    if (!status.ok()) return status;
    return false;
  }
  if (auto* type = std::get_if<TypeMessage>(&message)) {
    types_.Forget(type->type_oid);
    return false;
  }
  if (std::holds_alternative<IgnoredMessage>(message)) return false;
  if (skipping_tx_) {
    counters_->skipped_replayed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  auto relation_of = [&](uint32_t id) -> absl::StatusOr<const Relation*> {
    auto it = relations_.find(id);
    if (it == relations_.end()) {
      return absl::DataLossError(
          absl::StrCat("pgoutput: a change of relation ", id, " before its Relation message"));
    }
    return &it->second;
  };
  if (auto* truncate = std::get_if<TruncateMessage>(&message)) {
    for (uint32_t id : truncate->relation_ids) pending_truncates_.push_back(id);
    truncate_lsn_ = item.lsn;
    return false;
  }
  uint32_t relation_id = 0;
  if (auto* insert = std::get_if<InsertMessage>(&message)) relation_id = insert->relation_id;
  if (auto* update = std::get_if<UpdateMessage>(&message)) relation_id = update->relation_id;
  if (auto* del = std::get_if<DeleteMessage>(&message)) relation_id = del->relation_id;
  absl::StatusOr<const Relation*> relation = relation_of(relation_id);
  if (!relation.ok()) return relation.status();
  if (!(*relation)->wanted) return false;
  if (!CountRow()) return false;

  absl::Status status;
  if (auto* insert = std::get_if<InsertMessage>(&message)) {
    header.op = Op::kCreate;
    header.has_after = true;
    status = FillRow(**relation, insert->new_tuple, nullptr, false, "after", after);
  } else if (auto* update = std::get_if<UpdateMessage>(&message)) {
    header.op = Op::kUpdate;
    header.has_after = true;
    const Tuple* old = update->old_kind == 'O' ? &update->old_tuple : nullptr;
    status = FillRow(**relation, update->new_tuple, old, false, "after", after);
    if (status.ok() && update->old_kind != 0) {
      header.has_before = true;
      status = FillRow(**relation, update->old_tuple, nullptr, update->old_kind == 'K', "before",
                       before);
    }
  } else if (auto* del = std::get_if<DeleteMessage>(&message)) {
    header.op = Op::kDelete;
    header.has_before = true;
    status = FillRow(**relation, del->old_tuple, nullptr, del->old_kind == 'K', "before", before);
  }
  SetSource(source, *relation, item.lsn);
  if (!status.ok()) {
    // The row (counted above, so a replay skips it like an emitted one)
    // becomes a dead letter with everything the message carried.
    std::optional<RawRow> old_row;
    std::optional<RawRow> new_row;
    if (auto* insert = std::get_if<InsertMessage>(&message)) {
      new_row = RawRowOf(**relation, insert->new_tuple, nullptr);
    } else if (auto* update = std::get_if<UpdateMessage>(&message)) {
      const Tuple* old = update->old_kind == 'O' ? &update->old_tuple : nullptr;
      new_row = RawRowOf(**relation, update->new_tuple, old);
      if (update->old_kind != 0) old_row = RawRowOf(**relation, update->old_tuple, nullptr);
    } else if (auto* del = std::get_if<DeleteMessage>(&message)) {
      old_row = RawRowOf(**relation, del->old_tuple, nullptr);
    }
    Reject(std::move(status), header.op, old_row ? &*old_row : nullptr,
           new_row ? &*new_row : nullptr, source, header);
    header.event_time_ms = tx_commit_ms_;
    return true;
  }
  header.event_time_ms = tx_commit_ms_;
  header.ts_ms = absl::ToUnixMillis(absl::Now());
  counters_->changes.fetch_add(1, std::memory_order_relaxed);
  return true;
}

absl::StatusOr<PollResult> CdcCore::Next(void* before, void* after, CdcChangeHeader& header,
                                         debezium::SourceInfo& source) {
  if (ended_) return PollResult::kEndOfInput;
  if (in_snapshot_) {
    // The stream waits for the snapshot's last row: its first change
    // commits after the snapshot, and may touch a row not yet read.
    absl::StatusOr<PollResult> row = NextSnapshotRow(after, header, source);
    if (!row.ok() || *row != PollResult::kNothingAvailable || in_snapshot_) return row;
  }
  counters_->reconnects.store(stream_->reconnects(), std::memory_order_relaxed);
  if (--publish_countdown_ <= 0) {
    publish_countdown_ = 256;
    PublishMetrics();
  }
  while (true) {
    if (!pending_truncates_.empty()) {
      const uint32_t id = pending_truncates_.front();
      pending_truncates_.pop_front();
      auto it = relations_.find(id);
      if (it == relations_.end() || !it->second.wanted || !CountRow()) continue;
      header.op = Op::kTruncate;
      header.event_time_ms = tx_commit_ms_;
      header.ts_ms = absl::ToUnixMillis(absl::Now());
      SetSource(source, &it->second, truncate_lsn_);
      counters_->changes.fetch_add(1, std::memory_order_relaxed);
      return PollResult::kMoreAvailable;
    }
    absl::StatusOr<std::optional<WalStream::Item>> item = stream_->Next();
    if (!item.ok()) return item.status();
    if (!item->has_value()) {
      PublishMetrics();
      return PollResult::kNothingAvailable;
    }
    switch ((*item)->kind) {
      case WalStream::Item::Kind::kKeepalive:
        // Nothing pending before this position: an idle slot may advance.
        if (!in_tx_ && (*item)->lsn > done_lsn_) {
          done_lsn_ = (*item)->lsn;
          if (!checkpointing_) Confirm(done_lsn_);
        }
        continue;
      case WalStream::Item::Kind::kRestarted:
        // The server resends from the slot's confirmed LSN: skip what was
        // emitted, including the rows of the transaction cut off.
        if (in_tx_ && !skipping_tx_) {
          skip_final_lsn_ = tx_final_lsn_;
          skip_rows_ = tx_rows_;
        }
        in_tx_ = false;
        skipping_tx_ = false;
        continue;
      case WalStream::Item::Kind::kData: {
        absl::StatusOr<bool> produced = Apply(**item, before, after, header, source);
        if (!produced.ok()) return produced.status();
        if (*produced) return PollResult::kMoreAvailable;
        continue;
      }
    }
  }
}

std::string CdcCore::Snapshot(int64_t checkpoint_id) {
  Position position;
  position.snapshot_phase = in_snapshot_;
  position.done_lsn = done_lsn_;
  if (in_tx_ && !skipping_tx_) {
    position.tx_final_lsn = tx_final_lsn_;
    position.tx_rows = tx_rows_;
  } else if (skip_final_lsn_ != 0) {
    position.tx_final_lsn = skip_final_lsn_;
    position.tx_rows = skip_rows_;
  }
  taken_[checkpoint_id] = done_lsn_;
  return position.Encode();
}

void CdcCore::PublishMetrics() {
  if (metrics_ == nullptr) return;
  const CdcSourceStats now = StatsOf(*counters_);
  CdcSourceStats& published = metrics_->published;
  metrics_->snapshot_rows->Increment(now.snapshot_rows - published.snapshot_rows);
  metrics_->snapshot_chunks->Increment(now.snapshot_chunks - published.snapshot_chunks);
  metrics_->changes->Increment(now.changes - published.changes);
  metrics_->skipped_replayed->Increment(now.skipped_replayed - published.skipped_replayed);
  metrics_->reconnects->Increment(now.reconnects - published.reconnects);
  metrics_->confirmed_lsn->Set(static_cast<double>(now.confirmed_lsn));
  if (now.changes > published.changes && tx_commit_ms_ > 0) {
    metrics_->commit_lag_ms->Set(
        static_cast<double>(absl::ToUnixMillis(absl::Now()) - tx_commit_ms_));
  }
  published = now;
}

void CdcCore::Confirm(uint64_t lsn) {
  if (stream_ == nullptr) return;
  stream_->Confirm(lsn);
  counters_->confirmed_lsn.store(stream_->confirmed(), std::memory_order_relaxed);
}

absl::Status CdcCore::CheckpointComplete(int64_t checkpoint_id) {
  auto it = taken_.find(checkpoint_id);
  if (it == taken_.end()) return absl::OkStatus();
  completed_.push_back(it->second);
  taken_.erase(taken_.begin(), std::next(it));
  while (completed_.size() > static_cast<size_t>(retained_)) completed_.pop_front();
  // The oldest checkpoint a restore may still pick: the oldest of the last
  // `retained_` completed. After a restore, older checkpoints of the run
  // before count too, so wait until this run completed `retained_` of its own.
  if (!restored_ || completed_.size() == static_cast<size_t>(retained_)) {
    Confirm(completed_.front());
  }
  return absl::OkStatus();
}

absl::StatusOr<CdcCorePtr> NewCdcCore(const CdcOptions& options,
                                      const std::vector<FieldSpec>& specs,
                                      const SourceReaderContext& context,
                                      std::shared_ptr<CdcCounters> counters) {
  CdcCorePtr core(new CdcCore(options, specs, std::move(counters), /*raw=*/false));
  absl::Status status = core->Init(context);
  if (!status.ok()) return status;
  return core;
}

absl::StatusOr<CdcCorePtr> NewRowCdcCore(const CdcOptions& options,
                                         const SourceReaderContext& context,
                                         std::shared_ptr<CdcCounters> counters) {
  CdcCorePtr core(new CdcCore(options, {}, std::move(counters), /*raw=*/true));
  absl::Status status = core->Init(context);
  if (!status.ok()) return status;
  return core;
}

absl::StatusOr<PollResult> NextChange(CdcCore& core, void* before, void* after,
                                      CdcChangeHeader& header, debezium::SourceInfo& source) {
  return core.Next(before, after, header, source);
}

std::string SnapshotCdc(CdcCore& core, int64_t checkpoint_id) {
  return core.Snapshot(checkpoint_id);
}

absl::Status CdcCheckpointComplete(CdcCore& core, int64_t checkpoint_id) {
  return core.CheckpointComplete(checkpoint_id);
}

absl::Status CloseCdc(CdcCore& core) { return core.Close(); }

bool CdcInSnapshot(const CdcCore& core) { return core.in_snapshot(); }

}  // namespace weir::postgres::internal
