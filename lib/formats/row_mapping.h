// What the mirror sinks share: a source RowSchema mapped onto its copy's
// columns (renames, exclusions), the copy's name, and the version that orders
// the changes of one row.

#ifndef WEIR_LIB_FORMATS_ROW_MAPPING_H_
#define WEIR_LIB_FORMATS_ROW_MAPPING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "weir/formats/debezium_row.h"
#include "weir/mirror.h"
#include "weir/row.h"

namespace weir::mirror::internal {

struct MappedColumn {
  // The copy's column name.
  std::string name;
  // The column's index in the source RowSchema.
  int source_idx = 0;
  RowColumn column;
  bool key = false;
};

struct MappedTable {
  std::string target;
  std::vector<MappedColumn> columns;
  // The copy's key column names, in key order.
  std::vector<std::string> key;
};

// The copy's name for `source_table`; nullopt when it is not mirrored
// (MirrorOptions::only_listed).
std::optional<std::string> TargetTable(std::string_view source_table, const MirrorOptions& options);

// `schema`'s columns as the copy has them. kInvalidArgument for a schema
// without a key, or a key column left out.
absl::StatusOr<MappedTable> MapSchema(const RowSchema& schema, std::string_view target,
                                      const MirrorOptions& options);

// The version of a change: the Kafka offset when the change came from Kafka
// (Debezium keys records by primary key, so one row's changes are in one
// partition, in commit order); else PostgreSQL's LSN (a snapshot row's
// minus one: the stream's first change may start at the snapshot's LSN);
// else MySQL's binlog position (file number, position, row); else 0.
uint64_t ChangeVersion(const debezium::RowChange& change);

// The DeadLetter for a change a mirror sink rejects.
DeadLetter MirrorDeadLetter(const debezium::RowChange& change, const absl::Status& error);

}  // namespace weir::mirror::internal

#endif  // WEIR_LIB_FORMATS_ROW_MAPPING_H_
