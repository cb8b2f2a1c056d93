// Change capture straight from PostgreSQL: CdcSource<T> reads a table's
// changes from logical replication (the `pgoutput` plugin over libpq's
// replication protocol) and yields the same debezium::Change<T> values, with
// the same debezium::Fields<T> declaration, as a Kafka source reading
// Debezium's topics (kafka_debezium.h). No Debezium, no Kafka Connect.
//
// The source owns a replication slot. With SnapshotMode::kInitial it first
// reads the tables (op kRead) in a snapshot exported by the slot's creation
// (cut into primary-key ranges read by `snapshot_workers` connections that
// all import that snapshot), then streams every change committed after it
// (ops kCreate, kUpdate, kDelete, kTruncate), with no gap and no duplicate. Event time is the
// commit time (source.ts_ms). The slot's confirmed LSN moves only after the
// oldest checkpoint a restore may pick covers it, so a restore always finds
// its WAL, and resumes at the checkpoint's LSN, skipping the rows of a
// transaction the checkpoint cut through that it already emitted. A thread
// per source answers the server's keepalives while the pipeline is
// backpressured, and reconnects (with backoff) when the server restarts.
//
// Example:
//
//   auto source = weir::postgres::CdcSource<Event>::Create(
//       {.connection = "host=db user=weir dbname=app",
//        .slot = "weir_events",
//        .publication = "weir_events",
//        .tables = {"public.events"}},
//       weir::debezium::Fields<Event>()
//           .Required("id", &Event::id)
//           .Required("event_ts", &Event::event_ts_ms, weir::debezium::EpochMillis()));
//   auto events = pipeline.Source(source).Uid("events");
//
// The server needs wal_level=logical, a user with the REPLICATION attribute
// (or superuser) and SELECT on the tables, and a publication covering them
// (created by the source when `create_publication` is set).
// docs/connectors.md lists what each column type becomes.
//
// A row that does not map into T (a required column NULL, NaN into a
// Decimal, an integer out of range, an unchanged TOAST value without an old
// row, ...) goes to the dead-letter queue when `dead_letters` is set, as on
// the Kafka source: the change as Debezium JSON with the columns' text
// values, the error naming the table and column, and the slot, LSN and
// transaction. Without a queue it fails the job with that error
// (CdcOptions::on_error overrides this).

#ifndef WEIR_CONNECTORS_POSTGRES_H_
#define WEIR_CONNECTORS_POSTGRES_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "weir/dead_letter.h"
#include "weir/formats/debezium.h"
#include "weir/source.h"

namespace weir::postgres {

// What the source reads before it streams changes.
enum class SnapshotMode {
  // The tables' rows (op kRead) when the slot is created, then the stream.
  kInitial,
  // Only the stream of changes committed after the slot was created.
  kNever,
  // Only the tables' rows; then the source ends (a temporary slot).
  kInitialOnly,
};

struct CdcOptions {
  // libpq connection string ("host=... port=... user=... dbname=...";
  // password, sslmode and the other libpq settings pass through). The
  // source adds replication=database for its replication connection.
  // Default: "" (required)
  std::string connection;
  // The logical replication slot, created (with the pgoutput plugin) when
  // missing. One slot feeds one source: a slot in use elsewhere is an error.
  // Default: "" (required)
  std::string slot;
  // The publication whose changes the slot streams.
  // Default: "" (required)
  std::string publication;
  // Create the publication (FOR TABLE `tables`) when it does not exist.
  // Without it a missing publication, or one that does not cover every
  // table, fails Start() naming it.
  // Default: false
  bool create_publication = false;
  // The tables, "schema.table" (or "table" for public.table). Changes of
  // other tables in the publication are ignored.
  // Default: {} (required)
  std::vector<std::string> tables;
  // Default: SnapshotMode::kInitial
  SnapshotMode snapshot = SnapshotMode::kInitial;
  // Rows per snapshot query: a chunk of a table cut into primary-key
  // ranges, or a cursor fetch of a table read whole.
  // Default: 2000
  int snapshot_chunk_rows = 2000;
  // Connections reading the snapshot in parallel, each importing the
  // slot's exported snapshot: tables with a primary key are cut into
  // key ranges of `snapshot_chunk_rows` rows that they share out; a table
  // without one (or with a key type that has no exact text form) is read
  // whole by one of them. 1 reads every table through the source's own
  // connection, one after the other. Held only while the snapshot runs;
  // none are opened when nothing could be read in parallel. Outside
  // [1, 64] Start() fails with kInvalidArgument.
  // Default: 4
  int snapshot_workers = 4;
  // The logical server name, source.name of each change (Debezium's topic
  // prefix).
  // Default: "postgres"
  std::string name = "postgres";
  // How often the source tells the server what it received and confirmed
  // (keep it well below the server's wal_sender_timeout).
  // Default: 1 s
  absl::Duration status_interval = absl::Seconds(1);
  // Bytes of received WAL messages buffered ahead of the pipeline; when
  // full the source stops reading (and keeps answering keepalives).
  // Default: 16 MiB
  size_t max_buffered_bytes = 16 << 20;
  // How long the source retries reconnecting to a server that went away
  // (restart, failover) before failing the job with kUnavailable.
  // Default: 2 minutes
  absl::Duration reconnect_timeout = absl::Minutes(2);
  // Changes emitted per poll at most; a checkpoint barrier goes between two
  // polls, so it may cut through a transaction (which a restore handles).
  // Default: 1024
  int max_changes_per_poll = 1024;
  // How long Start() waits for a slot that another connection holds (e.g.
  // the walsender of a crashed run, which the server has not reaped yet)
  // before failing with kUnavailable.
  // Default: 10 s
  absl::Duration slot_busy_timeout = absl::Seconds(10);
  // What a row that does not map into the record type does. Unset, it
  // follows `dead_letters`: written there when a queue is set, else the job
  // fails naming the table, column, LSN and transaction (as the Kafka
  // source's SourceOptions::on_error). kDeadLetter without a queue is
  // kInvalidArgument at Start().
  // Default: unset (kDeadLetter with `dead_letters`, kFail without)
  std::optional<ErrorPolicy> on_error;
  // Where rows that do not map go (stage "postgres-source"). With
  // checkpoints, a row's dead letter is written and flushed when the first
  // checkpoint that covers the row is taken (SnapshotState), so a restore
  // neither loses one nor writes again one its checkpoint covers; without
  // checkpoints, at once.
  // Default: none
  std::shared_ptr<DeadLetterQueue> dead_letters;
};

// Counters of a running source (thread-safe to read).
struct CdcSourceStats {
  int64_t snapshot_rows = 0;
  // Primary-key ranges the snapshot read (0 when it read tables whole).
  int64_t snapshot_chunks = 0;
  // Connections that imported the snapshot to read it in parallel.
  int64_t snapshot_readers = 0;
  // The most snapshot queries that ran at the same time.
  int64_t snapshot_max_parallel_reads = 0;
  int64_t changes = 0;
  // Rows received again after a reconnect or restore and skipped.
  int64_t skipped_replayed = 0;
  int64_t reconnects = 0;
  // The LSN last confirmed to the server (the slot's confirmed_flush_lsn).
  uint64_t confirmed_lsn = 0;
  // Rows that did not map, written to the dead-letter queue.
  int64_t dead_letters = 0;
};

namespace internal {

class CdcCore;
struct CdcCoreDeleter {
  void operator()(CdcCore* core) const;
};
using CdcCorePtr = std::unique_ptr<CdcCore, CdcCoreDeleter>;

struct CdcCounters {
  std::atomic<int64_t> snapshot_rows{0};
  std::atomic<int64_t> snapshot_chunks{0};
  std::atomic<int64_t> snapshot_readers{0};
  std::atomic<int64_t> snapshot_max_parallel_reads{0};
  std::atomic<int64_t> changes{0};
  std::atomic<int64_t> skipped_replayed{0};
  std::atomic<int64_t> reconnects{0};
  std::atomic<uint64_t> confirmed_lsn{0};
  std::atomic<int64_t> dead_letters{0};
};

inline CdcSourceStats StatsOf(const CdcCounters& counters) {
  return {.snapshot_rows = counters.snapshot_rows.load(),
          .snapshot_chunks = counters.snapshot_chunks.load(),
          .snapshot_readers = counters.snapshot_readers.load(),
          .snapshot_max_parallel_reads = counters.snapshot_max_parallel_reads.load(),
          .changes = counters.changes.load(),
          .skipped_replayed = counters.skipped_replayed.load(),
          .reconnects = counters.reconnects.load(),
          .confirmed_lsn = counters.confirmed_lsn.load(),
          .dead_letters = counters.dead_letters.load()};
}

// CdcOptions::on_error, or what it defaults to.
inline ErrorPolicy ErrorPolicyOf(const CdcOptions& options) {
  if (options.on_error.has_value()) return *options.on_error;
  return options.dead_letters != nullptr ? ErrorPolicy::kDeadLetter : ErrorPolicy::kFail;
}

// What NextChange learned besides the rows.
struct CdcChangeHeader {
  debezium::Op op = debezium::Op::kCreate;
  bool has_before = false;
  bool has_after = false;
  std::optional<int64_t> ts_ms;
  // The event time (commit time; for snapshot rows, the snapshot's time).
  int64_t event_time_ms = 0;
  // Set when the row did not map: its dead letter (the change rendered as
  // Debezium JSON, the error, the position); `before`/`after` are then
  // partly filled and not to be emitted. `rejected_at` names the position
  // for the error that fails the job under ErrorPolicy::kFail.
  std::optional<DeadLetter> rejected;
  std::string rejected_at;
};

// Checks the options and the server (reachable, credentials, wal_level,
// publication) and returns the one split, "postgres:<slot>".
absl::StatusOr<std::vector<SourceSplit>> DiscoverCdcSplits(
    const CdcOptions& options, const std::vector<debezium::internal::FieldSpec>& specs);
absl::StatusOr<CdcCorePtr> NewCdcCore(const CdcOptions& options,
                                      const std::vector<debezium::internal::FieldSpec>& specs,
                                      const SourceReaderContext& context,
                                      std::shared_ptr<CdcCounters> counters);
// The next change into `before`/`after` (default-constructed rows):
// kMoreAvailable with `header` set, kNothingAvailable (caught up for now)
// or kEndOfInput (kInitialOnly after the snapshot).
absl::StatusOr<PollResult> NextChange(CdcCore& core, void* before, void* after,
                                      CdcChangeHeader& header, debezium::SourceInfo& source);
std::string SnapshotCdc(CdcCore& core, int64_t checkpoint_id);
absl::Status CdcCheckpointComplete(CdcCore& core, int64_t checkpoint_id);
absl::Status CloseCdc(CdcCore& core);
// The source is reading its initial snapshot (which no checkpoint can cover).
bool CdcInSnapshot(const CdcCore& core);

// The writer of a reader's dead letters: null under ErrorPolicy::kFail.
inline absl::StatusOr<std::unique_ptr<DeadLetterWriter>> NewCdcDeadLetterWriter(
    const CdcOptions& options, const SourceReaderContext& context) {
  if (ErrorPolicyOf(options) != ErrorPolicy::kDeadLetter || options.dead_letters == nullptr) {
    return std::unique_ptr<DeadLetterWriter>();
  }
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer =
      options.dead_letters->CreateWriter(context.operator_name, context.worker_index);
  if (!writer.ok()) return writer.status();
  return CountDeadLetters(*std::move(writer), context.metrics);
}

// The reader of CdcSource<T> and RowCdcSource: `Record` is
// debezium::Change<T> or RowChange (members op, before, after, source, ts_ms).
//
// Dead letters. With checkpoints, a rejected row's letter waits in
// `pending_` until the next SnapshotState, which writes and flushes it
// before it returns the position past the row: the letter leaves with the
// checkpoint that covers its row. A restore resumes at a checkpoint's
// position, so the letters it covers are not made again, and those it does
// not cover were never written (a cancelled run drops them in Close), so
// the replay makes them once. Without checkpoints each letter is written at
// once.
template <class Record>
class CdcReader final : public SourceReader<Record> {
 public:
  CdcReader(CdcCorePtr core, int max_per_poll,
            std::unique_ptr<DeadLetterWriter> dead_letters = nullptr, bool checkpointing = false,
            std::shared_ptr<CdcCounters> counters = nullptr)
      : core_(std::move(core)),
        max_per_poll_(max_per_poll),
        dead_letters_(std::move(dead_letters)),
        checkpointing_(checkpointing),
        counters_(std::move(counters)) {}

  absl::StatusOr<PollResult> Poll(SourceOutput<Record>& output) override {
    if (core_ == nullptr) return PollResult::kNothingAvailable;
    for (int count = 0; count < max_per_poll_; ++count) {
      Record change;
      change.before.emplace();
      change.after.emplace();
      CdcChangeHeader header;
      absl::StatusOr<PollResult> result =
          NextChange(*core_, &*change.before, &*change.after, header, change.source);
      if (!result.ok()) return result.status();
      if (*result == PollResult::kEndOfInput) {
        // No run reads these rows again (kInitialOnly's slot is temporary).
        absl::Status written = WritePending();
        if (!written.ok()) return written;
        output.FinishSplit(0);
        return count > 0 ? PollResult::kMoreAvailable : PollResult::kEndOfInput;
      }
      if (*result == PollResult::kNothingAvailable) {
        if (count == 0) output.MarkIdle(0);
        return count > 0 ? PollResult::kMoreAvailable : PollResult::kNothingAvailable;
      }
      if (header.rejected.has_value()) {
        absl::Status status = Reject(header);
        if (!status.ok()) return status;
        continue;
      }
      change.op = header.op;
      change.ts_ms = header.ts_ms;
      if (!header.has_before) change.before.reset();
      if (!header.has_after) change.after.reset();
      output.Collect(0, std::move(change), header.event_time_ms);
    }
    return PollResult::kMoreAvailable;
  }

  absl::StatusOr<std::vector<std::string>> SnapshotState(int64_t checkpoint_id) override {
    if (core_ == nullptr) return std::vector<std::string>();
    // The letters of the rows this checkpoint covers are durable first.
    absl::Status status = WritePending();
    if (!status.ok()) return status;
    return std::vector<std::string>{SnapshotCdc(*core_, checkpoint_id)};
  }

  // The exported snapshot dies with the connection that took it, so a
  // restore could not resume one: checkpoints wait until it is read.
  bool ReadyForCheckpoint() const override { return core_ == nullptr || !CdcInSnapshot(*core_); }

  absl::Status NotifyCheckpointComplete(int64_t checkpoint_id) override {
    if (core_ == nullptr) return absl::OkStatus();
    return CdcCheckpointComplete(*core_, checkpoint_id);
  }

  // Letters still pending belong to rows no checkpoint covers: the slot has
  // not confirmed them, so the next run reads those rows again.
  absl::Status Close() override {
    if (core_ == nullptr) return absl::OkStatus();
    absl::Status status = dead_letters_ != nullptr ? dead_letters_->Flush() : absl::OkStatus();
    absl::Status closed = CloseCdc(*core_);
    return status.ok() ? closed : status;
  }

 private:
  absl::Status Reject(CdcChangeHeader& header) {
    if (dead_letters_ == nullptr) {
      return absl::Status(header.rejected->code,
                          absl::StrCat("cannot map the change at ", header.rejected_at, ": ",
                                       header.rejected->error));
    }
    pending_.push_back(*std::move(header.rejected));
    return checkpointing_ ? absl::OkStatus() : WritePending();
  }

  absl::Status WritePending() {
    if (dead_letters_ == nullptr) return absl::OkStatus();
    for (DeadLetter& letter : pending_) {
      absl::Status status = dead_letters_->Write(std::move(letter));
      if (!status.ok()) {
        return absl::Status(status.code(),
                            absl::StrCat("cannot write a dead letter: ", status.message()));
      }
      if (counters_ != nullptr) counters_->dead_letters.fetch_add(1, std::memory_order_relaxed);
    }
    pending_.clear();
    return dead_letters_->Flush();
  }

  CdcCorePtr core_;  // null on the workers without the split
  int max_per_poll_;
  std::unique_ptr<DeadLetterWriter> dead_letters_;  // null under ErrorPolicy::kFail
  bool checkpointing_;
  std::shared_ptr<CdcCounters> counters_;
  std::vector<DeadLetter> pending_;
};

}  // namespace internal

// A source of debezium::Change<T> read from PostgreSQL's logical
// replication. Thread-safety: as weir::Source; Stats() from any thread.
// Its one split runs on worker 0 (a slot has one reader).
template <class T>
class CdcSource final : public weir::Source<debezium::Change<T>> {
 public:
  static std::shared_ptr<CdcSource> Create(CdcOptions options, debezium::Fields<T> fields) {
    return std::shared_ptr<CdcSource>(new CdcSource(std::move(options), std::move(fields)));
  }

  // Errors (Start() fails with them): kInvalidArgument for bad options;
  // kUnauthenticated for rejected credentials; kUnavailable when the server
  // cannot be reached; kFailedPrecondition when wal_level is not logical;
  // kNotFound when the publication is missing (and not to be created) or a
  // table does not exist; kFailedPrecondition when the publication does not
  // cover a table; kInvalidArgument for ErrorPolicy::kDeadLetter without
  // a dead-letter queue.
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return internal::DiscoverCdcSplits(options_, fields_.specs());
  }

  // Errors: kUnavailable when the slot is active for another process;
  // kDataLoss on a restore when the slot is missing or its confirmed LSN is
  // beyond the checkpoint's (both name the slot and the LSNs).
  absl::StatusOr<std::unique_ptr<SourceReader<debezium::Change<T>>>> CreateReader(
      const SourceReaderContext& context) override {
    if (context.splits.empty()) {
      return std::unique_ptr<SourceReader<debezium::Change<T>>>(
          new internal::CdcReader<debezium::Change<T>>(nullptr, 0));
    }
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> dead_letters =
        internal::NewCdcDeadLetterWriter(options_, context);
    if (!dead_letters.ok()) return dead_letters.status();
    absl::StatusOr<internal::CdcCorePtr> core =
        internal::NewCdcCore(options_, fields_.specs(), context, counters_);
    if (!core.ok()) return core.status();
    return std::unique_ptr<SourceReader<debezium::Change<T>>>(
        new internal::CdcReader<debezium::Change<T>>(
            *std::move(core), options_.max_changes_per_poll, *std::move(dead_letters),
            context.checkpointing, counters_));
  }

  CdcSourceStats Stats() const { return internal::StatsOf(*counters_); }

 private:
  CdcSource(CdcOptions options, debezium::Fields<T> fields)
      : options_(std::move(options)), fields_(std::move(fields)) {}

  CdcOptions options_;
  debezium::Fields<T> fields_;
  std::shared_ptr<internal::CdcCounters> counters_ = std::make_shared<internal::CdcCounters>();
};

}  // namespace weir::postgres

#endif  // WEIR_CONNECTORS_POSTGRES_H_
