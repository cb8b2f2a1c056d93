// Mirroring PostgreSQL tables without Debezium or Kafka: ToMirrorChange(s) turns
// a change of RowCdcSource (postgres_rows.h) into the debezium::RowChange that
// the mirror sinks take (clickhouse_mirror.h, duckdb_mirror.h), its
// weir::Row typed from the columns of PostgreSQL's Relation message (or, for
// snapshot rows, of the snapshot query's result).
//
// Example:
//
//   auto source = weir::postgres::RowCdcSource::Create(
//       {.connection = "host=db user=weir dbname=app",
//        .slot = "weir_mirror",
//        .publication = "weir_mirror",
//        .create_publication = true,
//        .tables = {"public.orders", "public.customers"}});
//   auto changes = pipeline.Source(source).Uid("capture").FlatMap<weir::debezium::RowChange>(
//       weir::postgres::ToMirrorChanges);
//   changes.Sink(weir::clickhouse::MirrorSink({.connection = {.url = "http://127.0.0.1:8123"}}))
//       .Uid("clickhouse-mirror");
//
// Types (docs/mirror.md has the table): smallint/integer/bigint are
// kInt16/kInt32/kInt64 (oid kInt64); real and double precision kFloat32 and
// kFloat64; numeric(P,S) with P <= 38 kDecimal(P,S) from the type modifier,
// exactly (numeric without a precision, or P > 38, kDecimalText); boolean
// kBool; json/jsonb kJson; bytea kBytes; date kDate; time kTime (µs);
// timestamp and timestamptz kTimestamp (µs, UTC); text, varchar, uuid, enums
// and every other type kString with PostgreSQL's text; one-dimensional arrays
// kJson (a JSON array: numbers and booleans bare, the rest as strings).
//
// Keys and nullability: the key is the replica identity's columns (the
// primary key under REPLICA IDENTITY DEFAULT), never nullable. pgoutput does
// not say which columns are NOT NULL, so every other column is nullable.
//
// The version that orders a row's changes in the sinks is source.lsn: the
// LSN of the change's WAL record (snapshot rows: the slot's consistent LSN,
// which the sinks count as one less); docs/mirror.md says why that orders
// them.

#ifndef WEIR_CONNECTORS_POSTGRES_MIRROR_H_
#define WEIR_CONNECTORS_POSTGRES_MIRROR_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/connectors/postgres_rows.h"
#include "weir/formats/debezium_row.h"
#include "weir/functions.h"

namespace weir::postgres {

// The change as the mirror sinks take it: op, source and ts_ms copied, the
// table "schema.table", offset -1 (not from Kafka). Rows of one table and
// one column layout share a RowSchema (kept per thread); a new Relation
// message (ADD or DROP COLUMN) gives a new one.
//
// Errors: kInvalidArgument naming the table and the column for a value that
// does not fit its type (NaN in a numeric(P,S), an infinite date), and for
// an unchanged TOASTed value the change does not carry (an update that left
// a large value untouched, under REPLICA IDENTITY DEFAULT: FULL would make
// every column part of the key).
//
// Thread-safety: thread-safe.
absl::StatusOr<debezium::RowChange> ToMirrorChange(const RowChange& change);

// ToMirrorChange for FlatMap, which also splits an update that changed the
// row's key into a delete of the old key and a create of the new one, as
// Debezium does (the sinks apply an update to its new key only). Prefer it:
//
//   pipeline.Source(source).FlatMap<weir::debezium::RowChange>(
//       weir::postgres::ToMirrorChanges);
//
// Errors and thread-safety: as ToMirrorChange.
absl::Status ToMirrorChanges(const RowChange& change, Collector<debezium::RowChange>& out);

}  // namespace weir::postgres

#endif  // WEIR_CONNECTORS_POSTGRES_MIRROR_H_
