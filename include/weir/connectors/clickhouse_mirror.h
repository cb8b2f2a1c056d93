// ClickHouse mirror sink: whole tables copied from Debezium change events
// (debezium::RowChange, weir/formats/debezium_row.h) into ClickHouse, with
// their schema taken from the changes.
//
// For each source table the sink creates, from the first schema it sees:
//
//   CREATE TABLE IF NOT EXISTS `orders` (`id` Int64, `total` Nullable(Decimal(10, 2)), ...,
//                                        `_version` UInt64, `_is_deleted` UInt8)
//   ENGINE = ReplacingMergeTree(`_version`) ORDER BY (`id`)
//   CREATE VIEW `orders_live` AS SELECT `id`, `total`, ... FROM `orders` FINAL
//                                WHERE `_is_deleted` = 0
//
// Every change is one inserted row (RowBinary): creates, updates and reads
// with `_is_deleted` = 0, deletes with the key (and whatever the before
// image holds) and `_is_deleted` = 1. ReplacingMergeTree keeps the row with
// the highest `_version` per key; the view shows the live table. The version
// is the change's Kafka offset (Debezium keys records by primary key, so the
// changes of one row are in one partition in commit order; replays after a
// restart carry the same offsets, so they collapse), else PostgreSQL's LSN,
// else MySQL's binlog position (see docs/mirror.md for why).
//
// Types: Bool -> UInt8, integers -> Int8..Int64/UInt64, floats, decimals ->
// Decimal(P, S) (exact; RowBinary carries the unscaled integer), strings,
// JSON, bytes and variable-scale decimals -> String, dates -> Date (a date
// outside 1970..2148 is a dead letter), times of day -> Int64 in the
// column's unit, timestamps -> DateTime64(3|6|9, 'UTC') on ClickHouse 20.1+
// and Int64 in the column's unit (ms/us/ns since the epoch) on older servers
// such as Debian's 18.16. Nullable where the source is; key columns never.
//
// Schema changes: a new source column is added (ALTER TABLE ... ADD COLUMN,
// and the view is created again); a change the copy cannot follow (type,
// nullability, key) fails the job or dead-letters the table's records
// (mirror::OnIncompatible). A truncate inserts what came before it, then
// empties the copy (TRUNCATE TABLE).
//
// Exactly once by idempotence: every table's rows are inserted at each
// checkpoint barrier (and when a batch is full); a replay after a crash
// inserts the same rows with the same versions.
//
// Thread-safety: the sink is shared by the workers; each worker's writer is
// called from that worker's thread only. Writers of several workers may
// write to one table (its versions order the rows).
//
// Example:
//
//   changes.Sink(weir::clickhouse::MirrorSink(
//                    {.connection = {.url = "http://127.0.0.1:8123", .database = "mirror"},
//                     .mirror = {.on_incompatible = weir::mirror::OnIncompatible::kDeadLetter,
//                                .dead_letters = dlq}}))
//       .Uid("clickhouse-mirror");

#ifndef WEIR_CONNECTORS_CLICKHOUSE_MIRROR_H_
#define WEIR_CONNECTORS_CLICKHOUSE_MIRROR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "weir/connectors/clickhouse.h"
#include "weir/formats/debezium_row.h"
#include "weir/mirror.h"
#include "weir/sink.h"

namespace weir::clickhouse {

struct MirrorSinkOptions {
  // The server and the database the tables go into (which must exist).
  // Default: see ConnectionOptions
  ConnectionOptions connection;
  // Tables, renames, and the schema change policy.
  // Default: every table under its own name; incompatible changes fail the job
  mirror::MirrorOptions mirror;
  // The live view's name: the table's name and this suffix.
  // Default: "_live"
  std::string view_suffix = "_live";
  // The version and delete flag columns the sink adds.
  // Default: "_version", "_is_deleted"
  std::string version_column = "_version";
  std::string deleted_column = "_is_deleted";
  // A table's rows are inserted when it has buffered this many (and at
  // every checkpoint barrier and the end of input).
  // Default: 100,000
  size_t max_batch_rows = 100'000;
};

// Counts of one writer, for status lines and tests.
struct MirrorStats {
  std::atomic<int64_t> rows{0};
  std::atomic<int64_t> deletes{0};
  std::atomic<int64_t> truncates{0};
  std::atomic<int64_t> tables_created{0};
  std::atomic<int64_t> columns_added{0};
  std::atomic<int64_t> dead_letters{0};
};

// The sink (see the top of this file). `stats`, when given, counts what all
// writers did.
std::shared_ptr<weir::Sink<debezium::RowChange>> MirrorSink(
    MirrorSinkOptions options, std::shared_ptr<MirrorStats> stats = nullptr);

}  // namespace weir::clickhouse

#endif  // WEIR_CONNECTORS_CLICKHOUSE_MIRROR_H_
