// The change-capture source's core, CdcCore: what CdcSource<T> and
// RowCdcSource (include/weir/connectors/postgres.h, postgres_rows.h) drive
// through the functions of their internal namespace. Its parts live in
// cdc_core.cc (the slot, the stream, positions and confirmation),
// initial_snapshot.cc (the snapshot) and start_checks.cc (what Start()
// checks before any reader exists).

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_CDC_CORE_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_CDC_CORE_H_

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "lib/connectors/postgres/connection.h"
#include "lib/connectors/postgres/pgoutput.h"
#include "lib/connectors/postgres/rejected_row.h"
#include "lib/connectors/postgres/snapshot_readers.h"
#include "lib/connectors/postgres/table_name.h"
#include "lib/connectors/postgres/text_value.h"
#include "lib/connectors/postgres/wal_stream.h"
#include "weir/connectors/postgres.h"
#include "weir/connectors/postgres_rows.h"
#include "weir/metrics.h"

namespace weir::postgres::internal {

// A text field of a result, "" for NULL.
inline std::string Value(const PgResult& result, int row, int column) {
  return PQgetisnull(result.get(), row, column) ? "" : PQgetvalue(result.get(), row, column);
}

// What a checkpoint holds for the source's one split (cdc_core.cc has the
// text form).
struct Position {
  bool snapshot_phase = false;
  uint64_t done_lsn = 0;
  uint64_t tx_final_lsn = 0;  // 0: no transaction cut through
  int64_t tx_rows = 0;

  std::string Encode() const;
  static absl::StatusOr<Position> Decode(const std::string& text);
};

// A relation as the latest Relation message described it.
struct Relation {
  TableName name;
  bool wanted = false;
  std::vector<RelationColumn> columns;
  std::vector<PgType> types;
  // For each declared field, its column index, or -1.
  std::vector<int> field_columns;
};

// A column of a RowChange, described from its type.
ColumnValue DescribeColumn(std::string name, const PgType& type);

class CdcCore {
 public:
  // `raw`: rows are std::vector<ColumnValue> (RowCdcSource), not a T of `specs`.
  CdcCore(CdcOptions options, std::vector<debezium::internal::FieldSpec> specs,
          std::shared_ptr<CdcCounters> counters, bool raw)
      : raw_(raw),
        options_(std::move(options)),
        specs_(std::move(specs)),
        counters_(std::move(counters)),
        types_([this](uint32_t oid) { return LookupType(oid); }) {
    for (const std::string& table : options_.tables) {
      wanted_.push_back(SplitTableName(table));
    }
  }

  absl::Status Init(const SourceReaderContext& context);
  absl::StatusOr<PollResult> Next(void* before, void* after, CdcChangeHeader& header,
                                  debezium::SourceInfo& source);
  std::string Snapshot(int64_t checkpoint_id);
  absl::Status CheckpointComplete(int64_t checkpoint_id);
  // Reading the initial snapshot: no checkpoint may be taken (see
  // CdcReader::ReadyForCheckpoint).
  bool in_snapshot() const { return in_snapshot_; }
  absl::Status Close() {
    snapshot_readers_.reset();
    if (stream_ != nullptr) stream_->Stop();
    return absl::OkStatus();
  }

 private:
  // What pg_replication_slots says about the slot.
  struct SlotInfo {
    bool exists = false;
    uint64_t confirmed = 0;  // confirmed_flush_lsn
  };

  // The steps of Init.
  void RegisterMetrics(MetricGroup& group);
  // Waits up to slot_busy_timeout for a slot another connection holds.
  absl::StatusOr<SlotInfo> LookUpSlot();
  // Restores the position of a checkpoint; kDataLoss when the slot no
  // longer holds what it needs.
  absl::Status Resume(const Position& restored, const SlotInfo& slot);
  // Without a checkpoint: creates the slot (and the snapshot) or resumes it.
  absl::Status StartFresh(PGconn* replication, const SlotInfo& slot);
  absl::Status CreateSlotAndSnapshot(PGconn* replication, bool snapshot, bool temporary);

  absl::StatusOr<PgTypeRow> LookupType(uint32_t oid);
  absl::Status CreateSlot(PGconn* replication, bool export_snapshot, bool temporary,
                          std::string& snapshot_name, uint64_t& consistent_lsn);
  // Imports the exported snapshot (the replication connection must still
  // be idle), plans it and starts the parallel readers when they can help.
  absl::Status BeginSnapshot(const std::string& snapshot_name);
  absl::StatusOr<PollResult> NextSnapshotRow(void* after, CdcChangeHeader& header,
                                             debezium::SourceInfo& source);
  // The next rows into snapshot_batch_: true when there are some, false
  // when none are ready yet or the snapshot has ended (in_snapshot_ false).
  absl::StatusOr<bool> NextSnapshotBatch();
  absl::Status EndSnapshot();
  absl::StatusOr<bool> Apply(const WalStream::Item& item, void* before, void* after,
                             CdcChangeHeader& header, debezium::SourceInfo& source);
  absl::Status OnRelation(RelationMessage message);
  // Fills `row` from `tuple` (`fallback`: the old tuple, for unchanged
  // TOAST values). `image` names it in errors ("before"/"after").
  absl::Status FillRow(const Relation& relation, const Tuple& tuple, const Tuple* fallback,
                       bool key_only, const char* image, void* row);
  absl::Status FillSnapshotRow(void* row);
  void SetSnapshotSource(debezium::SourceInfo& source) const;
  // The current snapshot row as received, for its dead letter.
  RawRow RawSnapshotRow() const;
  // Sets `header` to reject the change described (its dead letter, where it
  // was): the row did not map for `error`.
  void Reject(absl::Status error, debezium::Op op, const RawRow* before, const RawRow* after,
              const debezium::SourceInfo& source, CdcChangeHeader& header) const;
  // Counts a row change of the current transaction; false when a replay
  // already emitted it.
  bool CountRow();
  void SetSource(debezium::SourceInfo& source, const Relation* relation, uint64_t lsn) const;
  void Confirm(uint64_t lsn);
  // Copies the counters into the job's metrics (when it has them).
  void PublishMetrics();

  bool raw_;
  CdcOptions options_;
  std::vector<debezium::internal::FieldSpec> specs_;
  std::shared_ptr<CdcCounters> counters_;
  std::vector<TableName> wanted_;
  TypeResolver types_;
  std::string db_;
  bool checkpointing_ = false;
  int retained_ = 1;
  bool restored_ = false;

  PgConn sql_;  // metadata queries and the snapshot's transaction
  std::unique_ptr<WalStream> stream_;
  absl::flat_hash_map<uint32_t, Relation> relations_;

  // The snapshot: how each table is read, the parallel readers (null when
  // sql_ reads the tables one after the other through `snapshot_cursor_`),
  // and the batch being emitted, of table snapshot_plan_[snapshot_table_].
  bool in_snapshot_ = false;
  bool end_after_snapshot_ = false;
  bool ended_ = false;
  std::vector<SnapshotTable> snapshot_plan_;
  std::unique_ptr<SnapshotReaders> snapshot_readers_;
  TableCursor snapshot_cursor_;
  size_t snapshot_table_ = 0;
  PgResult snapshot_batch_;
  int snapshot_row_ = 0;
  std::vector<PgType> snapshot_types_;
  std::vector<int> snapshot_field_columns_;
  int64_t snapshot_time_ms_ = 0;
  uint64_t consistent_lsn_ = 0;

  // The stream position (see the file comment).
  uint64_t done_lsn_ = 0;
  bool in_tx_ = false;
  bool skipping_tx_ = false;
  uint64_t tx_final_lsn_ = 0;
  uint32_t tx_xid_ = 0;
  int64_t tx_commit_ms_ = 0;
  int64_t tx_rows_ = 0;
  uint64_t skip_final_lsn_ = 0;
  int64_t skip_rows_ = 0;
  std::deque<uint32_t> pending_truncates_;
  uint64_t truncate_lsn_ = 0;

  // The job's metrics (SourceReaderContext::metrics), labelled with the
  // slot; null outside a job.
  struct Metrics {
    Counter* snapshot_rows = nullptr;
    Counter* snapshot_chunks = nullptr;
    Counter* changes = nullptr;
    Counter* skipped_replayed = nullptr;
    Counter* reconnects = nullptr;
    Gauge* confirmed_lsn = nullptr;
    Gauge* commit_lag_ms = nullptr;
    CdcSourceStats published;
  };
  std::unique_ptr<Metrics> metrics_;
  int publish_countdown_ = 0;

  // Checkpoints taken (id -> LSN) and the LSNs of the completed ones, oldest first.
  std::map<int64_t, uint64_t> taken_;
  std::deque<uint64_t> completed_;
};

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_CDC_CORE_H_
