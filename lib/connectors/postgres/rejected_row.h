// A row change CdcCore could not map into the record type, as a dead letter:
// the change rendered as a Debezium JSON envelope whose column values are
// PostgreSQL's text, the error, and where in the slot's stream it was.

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_REJECTED_ROW_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_REJECTED_ROW_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "weir/dead_letter.h"
#include "weir/formats/debezium.h"

namespace weir::postgres::internal {

// One column of a rejected row as received: its text value, or none for
// NULL. An unchanged TOAST value the change does not carry is Debezium's
// placeholder, kUnavailableValue.
struct RawColumn {
  std::string name;
  std::optional<std::string> text;
  bool key = false;  // part of the replica identity (the primary key)
};
using RawRow = std::vector<RawColumn>;

// What Debezium writes for an unchanged TOAST value it does not have
// (unavailable.value.placeholder).
inline constexpr char kUnavailableValue[] = "__debezium_unavailable_value";

// A rejected change: `before`/`after` as received (null when the change has
// no such image), `source` as the change would have had it, `error` why it
// did not map.
struct RejectedChange {
  debezium::Op op = debezium::Op::kCreate;
  const RawRow* before = nullptr;
  const RawRow* after = nullptr;
  const debezium::SourceInfo* source = nullptr;
  int64_t ts_ms = 0;
  std::string slot;
  absl::Status error;
};

// The dead letter of `change`: payload {"before", "after", "source", "op",
// "ts_ms"}, key the key columns as a JSON object, stage "postgres-source",
// topic "<name>.<schema>.<table>" (Debezium's topic for the table),
// timestamp the commit time, position slot/lsn/txid/table.
DeadLetter RejectedLetter(const RejectedChange& change);

// "slot s, LSN 0/16B3748, txid 735, table public.items", for the error that
// fails the job under ErrorPolicy::kFail.
std::string RejectedAt(const RejectedChange& change);

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_REJECTED_ROW_H_
