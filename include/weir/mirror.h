// Mirroring tables: which source tables go where, under which names, and what
// happens when a source table changes in a way its copy cannot follow. Shared
// by the mirror sinks (weir/connectors/clickhouse_mirror.h,
// weir/connectors/duckdb_mirror.h), which take debezium::RowChange records
// (weir/formats/debezium_row.h).
//
// Example:
//
//   weir::mirror::MirrorOptions mirror{
//       .tables = {{.source = "public.orders", .target = "orders_copy",
//                   .rename_columns = {{"total", "total_eur"}},
//                   .exclude_columns = {"secret"}}},
//       .on_incompatible = weir::mirror::OnIncompatible::kDeadLetter,
//       .dead_letters = dlq};
//
// What "incompatible" means: a column's type changed (e.g. a decimal's scale,
// an integer narrowed or widened), a column became nullable, or the primary
// key changed. A new column is compatible: the copy gets it (ALTER TABLE ...
// ADD COLUMN); a dropped column stays in the copy and gets its default in
// new rows.

#ifndef WEIR_MIRROR_H_
#define WEIR_MIRROR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weir/dead_letter.h"

namespace weir::mirror {

// One source table's copy.
struct TableMapping {
  // The source table: "schema.table" (PostgreSQL), "db.table" (MySQL), or the
  // bare table name (required).
  std::string source;
  // The copy's name. Default: the source table's name after its last '.'.
  std::string target;
  // Source column -> the copy's column name.
  // Default: none
  std::vector<std::pair<std::string, std::string>> rename_columns;
  // Source columns the copy does not have (not key columns).
  // Default: none
  std::vector<std::string> exclude_columns;
};

// What a sink does when a table's new schema does not fit its copy.
enum class OnIncompatible {
  // The job fails, naming the table and the column.
  kFail,
  // The table stops: this record and every later one of the table go to
  // `dead_letters` (stage "mirror", the error names the column); the other
  // tables go on. A restart tries the table again.
  kDeadLetter,
};

struct MirrorOptions {
  // Default: none (every table under its own name)
  std::vector<TableMapping> tables;
  // Only the tables in `tables` are mirrored; changes of others are skipped.
  // Default: false
  bool only_listed = false;
  // Default: kFail
  OnIncompatible on_incompatible = OnIncompatible::kFail;
  // Where kDeadLetter sends records, and where values a copy cannot hold
  // (a date before 1970 in ClickHouse's Date) go under either policy
  // (without a queue they fail the job).
  // Default: none
  std::shared_ptr<DeadLetterQueue> dead_letters;
};

}  // namespace weir::mirror

#endif  // WEIR_MIRROR_H_
