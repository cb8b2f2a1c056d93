// Writes the engagement generator's rows into PostgreSQL, into the tables of
// schema.sql (created if missing), so that Debezium's PostgreSQL connector
// can capture them: content snapshots and creates become INSERTs, updates
// UPDATEs, deletes DELETEs (tombstones are Kafka-only), engagement events
// INSERTs with the generator's ids. Records are applied in their order, in
// transactions of up to `batch_records` records: consecutive inserts into a
// table go in one COPY, updates and deletes through prepared statements.
// Uses libpq.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<PostgresWriter>> writer =
//       PostgresWriter::Connect({.conninfo = "host=localhost dbname=app user=app"});
//   for (...) status = (*writer)->Append(generator.Next());
//   status = (*writer)->Finish();
//
// Thread-safety: one thread at a time.

#ifndef WEIR_EXAMPLES_ENGAGEMENT_POSTGRES_WRITER_H_
#define WEIR_EXAMPLES_ENGAGEMENT_POSTGRES_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "examples/engagement/generator.h"
#include "weir/sink.h"

// libpq's connection (libpq-fe.h), kept out of this header.
struct pg_conn;

namespace engagement {

struct PostgresWriterOptions {
  // libpq connection string: "host=... port=... dbname=... user=..." or a
  // postgresql:// URI. Required.
  std::string conninfo;
  // Empty both tables (TRUNCATE ... RESTART IDENTITY) before writing.
  // Default: false
  bool reset = false;
  // Records per transaction, at most.
  // Default: 5000
  int64_t batch_records = 5000;
  // A transaction commits at the latest this long after its first record was
  // appended (checked when records are appended).
  // Default: 200 ms
  absl::Duration max_linger = absl::Milliseconds(200);
};

class PostgresWriter {
 public:
  // Connects, creates the tables of schema.sql if missing and empties them
  // if `reset`. kUnavailable if the server cannot be reached,
  // kInvalidArgument for a bad connection string.
  static absl::StatusOr<std::unique_ptr<PostgresWriter>> Connect(PostgresWriterOptions options);
  ~PostgresWriter();
  PostgresWriter(const PostgresWriter&) = delete;
  PostgresWriter& operator=(const PostgresWriter&) = delete;

  // Buffers `record`; commits the buffer when it is full or old enough.
  absl::Status Append(const GeneratedRecord& record);
  // Commits what is buffered (one transaction).
  absl::Status Commit();
  // Commits, and moves engagement_events' id sequence past the ids written
  // (so the application's own inserts do not collide with them).
  absl::Status Finish();

  // Records committed so far (tombstones included, though they write nothing).
  int64_t committed() const { return committed_; }

 private:
  // A run of same-kind changes, applied in order.
  enum class Kind { kCopyContent, kCopyEvents, kUpdateContent, kDeleteContent };
  struct Segment {
    Kind kind;
    std::string copy_data;         // COPY text format, one line per row
    std::vector<Content> rows;     // updates
    std::vector<std::string> ids;  // deletes
  };

  PostgresWriter(PostgresWriterOptions options, pg_conn* conn);
  Segment& SegmentFor(Kind kind);
  absl::Status Exec(const char* sql, const char* what);
  absl::Status Copy(const char* sql, const std::string& data, const char* what);
  absl::Status Apply(const Segment& segment);

  PostgresWriterOptions options_;
  pg_conn* conn_;
  std::vector<Segment> segments_;
  int64_t buffered_ = 0;
  absl::Time first_buffered_;
  int64_t committed_ = 0;
};

// A weir sink writing through a PostgresWriter (parallelism 1: the records
// must be applied in the generator's order). Connects when the pipeline
// starts; Flush (end of input) calls Finish.
class PostgresSink final : public weir::Sink<GeneratedRecord> {
 public:
  explicit PostgresSink(PostgresWriterOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<weir::SinkWriter<GeneratedRecord>>> CreateWriter(
      const weir::SinkContext& context) override;

 private:
  PostgresWriterOptions options_;
};

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_POSTGRES_WRITER_H_
