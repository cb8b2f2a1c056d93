// The initial snapshot's plan and its parallel readers. PlanSnapshot decides
// per table how it is read: a table whose primary key the readers can range
// over is cut into key-range chunks (`snapshot_chunk_rows` rows each); any
// other table is read whole, through a cursor, by one reader. SnapshotReaders
// runs `snapshot_workers` threads, each on its own connection that imported
// the slot's exported snapshot, claiming chunks (and whole tables) from the
// plan and handing the results to the worker that converts and emits them.

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_SNAPSHOT_READERS_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_SNAPSHOT_READERS_H_

#include <libpq-fe.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/connectors/postgres/connection.h"
#include "lib/connectors/postgres/table_name.h"
#include "lib/connectors/postgres/text_value.h"
#include "weir/connectors/postgres.h"

namespace weir::postgres::internal {

// How the snapshot reads one table.
struct SnapshotTable {
  // The table's place in CdcOptions::tables.
  size_t index = 0;
  TableName name;
  // The primary key's columns in index order (empty without one), and the
  // type of each (format_type, for casting chunk bounds).
  std::vector<std::string> key_columns;
  std::vector<std::string> key_types;
  // Empty: cut into primary-key ranges. Otherwise why one reader reads the
  // whole table (no primary key, or a key type without an exact text form).
  std::string whole_table_reason;

  bool chunked() const { return whole_table_reason.empty(); }
};

// The plan of every table, looked up on `conn` (in the snapshot), with the
// key columns' types resolved through `types`.
absl::StatusOr<std::vector<SnapshotTable>> PlanSnapshot(PGconn* conn,
                                                        const std::vector<TableName>& tables,
                                                        TypeResolver& types);

// BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT
// `snapshot_name`; LOCK TABLE ... IN ACCESS SHARE MODE for each table (held
// until the transaction ends). A lock that waits longer than `lock_timeout`
// (none when zero) fails, naming the table.
absl::Status ImportSnapshot(PGconn* conn, const std::string& snapshot_name,
                            const std::vector<TableName>& tables, absl::Duration lock_timeout);

// Reads one table whole through a cursor in primary-key order (ctid order
// without a key): each Fetch returns up to `rows` rows, and a result with no
// rows once the table is exhausted (the cursor is then closed).
class TableCursor {
 public:
  absl::StatusOr<PgResult> Fetch(PGconn* conn, const SnapshotTable& table, int rows);

 private:
  bool open_ = false;
};

// Reader threads of one snapshot. Thread-safety: Next and the destructor
// from the worker's thread; the counters are atomics.
class SnapshotReaders {
 public:
  struct Options {
    std::string conninfo;
    // The name SET TRANSACTION SNAPSHOT takes: importable only while the
    // exporting replication connection is idle, so Start imports it on
    // every connection before it returns.
    std::string snapshot_name;
    // The readers' application_name (pg_stat_activity), e.g. "weir-snapshot:<slot>".
    std::string application_name;
    int workers = 2;
    int chunk_rows = 2000;
  };
  // Rows of one table, as a reader fetched them.
  struct Batch {
    size_t table = 0;  // index into the plan
    PgResult rows;
  };

  // Opens `options.workers` connections, imports the snapshot and locks the
  // tables on each, then starts the threads.
  static absl::StatusOr<std::unique_ptr<SnapshotReaders>> Start(
      Options options, std::vector<SnapshotTable> plan, std::shared_ptr<CdcCounters> counters);
  ~SnapshotReaders();
  SnapshotReaders(const SnapshotReaders&) = delete;
  SnapshotReaders& operator=(const SnapshotReaders&) = delete;

  // The next batch, without waiting: nullopt when none is ready yet. After
  // the last batch, `done()` is true. A reader's error is returned from then on.
  absl::StatusOr<std::optional<Batch>> Next();
  bool done() const;

 private:
  // A piece of work a reader claimed: a key range of a table (bounds
  // exclusive below, inclusive above; nullopt: unbounded), or a whole table.
  struct Work {
    size_t table = 0;
    bool whole_table = false;
    std::optional<std::vector<std::string>> lower;
    std::optional<std::vector<std::string>> upper;
  };
  struct Reader {
    PgConn conn;
    std::unique_ptr<PGcancel, void (*)(PGcancel*)> cancel{nullptr, PQfreeCancel};
    std::thread thread;
  };

  SnapshotReaders(Options options, std::vector<SnapshotTable> plan,
                  std::shared_ptr<CdcCounters> counters)
      : options_(std::move(options)), plan_(std::move(plan)), counters_(std::move(counters)) {}
  void Run(Reader& reader);
  // Claims the next piece of work (running the query that finds a chunk's
  // upper bound on `conn`); false when the plan is exhausted.
  absl::StatusOr<bool> Claim(PGconn* conn, Work& work);
  absl::Status ReadChunk(PGconn* conn, const Work& work);
  absl::Status ReadWholeTable(PGconn* conn, const Work& work);
  // Counts a query of rows (a chunk, a cursor fetch) as running, until
  // reading_ is decremented; keeps the peak in the counters.
  void BeginRead();
  // Hands a batch to the worker; false when stopping.
  bool Push(Batch batch);

  Options options_;
  const std::vector<SnapshotTable> plan_;
  std::shared_ptr<CdcCounters> counters_;
  std::vector<std::unique_ptr<Reader>> readers_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reading_{0};

  // The plan's cursor: the next table, and the bound the next chunk of it starts after.
  std::mutex claim_mutex_;
  size_t next_table_ = 0;
  std::optional<std::vector<std::string>> next_lower_;

  mutable std::mutex mutex_;
  std::condition_variable space_;
  std::deque<Batch> batches_;
  int running_ = 0;  // readers not finished
  absl::Status error_;
};

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_SNAPSHOT_READERS_H_
