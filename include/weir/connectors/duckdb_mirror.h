// DuckDB mirror sink: whole tables copied from Debezium change events
// (debezium::RowChange, weir/formats/debezium_row.h) into a DuckDB file,
// exactly once, through DuckDB's C API (libduckdb; optional component
// weir::duckdb, see docs/mirror.md for installing it).
//
// Each source table becomes a table with the source's columns, exact types
// (DECIMAL(P,S), UBIGINT, DATE, TIME, TIMESTAMP, BLOB, ...), NULL where the
// source allows it, and PRIMARY KEY on the source's key. A checkpoint's
// changes are collapsed per row (the last change of each key wins; a
// truncate empties the table first) and applied in one DuckDB transaction
// (INSERT OR REPLACE, DELETE) together with a row of the table
// `_weir_mirror_checkpoints` (sink uid, worker, checkpoint id):
//
// - at the checkpoint barrier (PreCommit) the changes are written to a
//   staging file beside the database (fsync'ed), whose name is the
//   committable;
// - once the checkpoint is complete (Commit), the staging file is applied
//   unless the checkpoint table says it was, and removed;
// - a restore re-commits the restored checkpoint's staging files (the
//   runtime calls Commit again) and removes those of newer checkpoints,
//   whose records the sources replay.
//
// So the file holds every complete checkpoint's changes once: a restore
// never applies a checkpoint twice nor skips one. Without checkpoints, the
// changes are applied at the end of input.
//
// Schema changes as for ClickHouse (clickhouse_mirror.h): new columns are
// added (ALTER TABLE ADD COLUMN), a change the copy cannot follow fails the
// job or dead-letters the table's records (mirror::OnIncompatible). Writers
// of one process share the database; their transactions are serialized.
//
// Thread-safety: the sink is shared by the workers; each worker's writer is
// called from that worker's thread only. Query() may be called from any thread.
//
// Example:
//
//   changes.Sink(weir::duckdb::MirrorSink({.path = "/var/lib/app/mirror.duckdb"}))
//       .Uid("duckdb-mirror");

#ifndef WEIR_CONNECTORS_DUCKDB_MIRROR_H_
#define WEIR_CONNECTORS_DUCKDB_MIRROR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "weir/formats/debezium_row.h"
#include "weir/mirror.h"
#include "weir/sink.h"

namespace weir::duckdb {

struct MirrorSinkOptions {
  // The database file (created when missing; required).
  std::string path;
  // Tables, renames, and the schema change policy.
  // Default: every table under its own name; incompatible changes fail the job
  mirror::MirrorOptions mirror;
  // Where staged checkpoints wait for their checkpoint to complete.
  // Default: "<path>.weir-staging"
  std::string staging_dir;
};

// Counts of all writers of a sink.
struct MirrorStats {
  std::atomic<int64_t> changes{0};  // changes received
  std::atomic<int64_t> checkpoints_applied{0};
  std::atomic<int64_t> checkpoints_skipped{0};  // already in the file (a restore)
  std::atomic<int64_t> rows_upserted{0};
  std::atomic<int64_t> rows_deleted{0};
  std::atomic<int64_t> columns_added{0};
  std::atomic<int64_t> dead_letters{0};
};

// The sink (see the top of this file).
std::shared_ptr<weir::Sink<debezium::RowChange>> MirrorSink(
    MirrorSinkOptions options, std::shared_ptr<MirrorStats> stats = nullptr);

// Runs `sql` on the database at `path` (sharing the open database with the
// sinks of this process) and returns the rows, each value as DuckDB casts it
// to VARCHAR (nullopt for NULL). For tests, status lines and tools.
absl::StatusOr<std::vector<std::vector<std::optional<std::string>>>> Query(std::string_view path,
                                                                           std::string_view sql);

// The version of libduckdb in use, e.g. "v1.4.4".
std::string LibraryVersion();

}  // namespace weir::duckdb

#endif  // WEIR_CONNECTORS_DUCKDB_MIRROR_H_
