// The messages of PostgreSQL's `pgoutput` logical decoding plugin (protocol
// version 1), parsed from the bytes of a replication stream's XLogData.
// PostgreSQL's documentation, "Logical Replication Message Formats", is the
// reference. Pure functions: no server, no libpq.

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_PGOUTPUT_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_PGOUTPUT_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weir::postgres::internal {

// An LSN as PostgreSQL prints it ("16/B374D848").
std::string LsnToString(uint64_t lsn);
// Parses "16/B374D848"; kInvalidArgument for anything else.
absl::StatusOr<uint64_t> ParseLsn(absl::string_view text);

// PostgreSQL timestamps count microseconds from 2000-01-01 00:00 UTC.
inline constexpr int64_t kPostgresEpochMicros = 946684800LL * 1000000;

// One column of a tuple.
struct TupleColumn {
  enum class Kind : uint8_t {
    kNull,       // 'n'
    kUnchanged,  // 'u': an unchanged TOASTed value the message does not carry
    kText,       // 't': the value in the type's text format
    kBinary,     // 'b': the value in binary format (not requested by weir)
  };
  Kind kind = Kind::kNull;
  std::string value;
};
using Tuple = std::vector<TupleColumn>;

struct BeginMessage {
  uint64_t final_lsn = 0;      // the LSN of the commit record
  int64_t commit_time_us = 0;  // since the PostgreSQL epoch
  uint32_t xid = 0;
};
struct CommitMessage {
  uint8_t flags = 0;
  uint64_t commit_lsn = 0;
  uint64_t end_lsn = 0;  // the end of the commit record: where to resume after it
  int64_t commit_time_us = 0;
};
struct RelationColumn {
  bool key = false;  // part of the replica identity
  std::string name;
  uint32_t type_oid = 0;
  int32_t type_modifier = -1;
};
struct RelationMessage {
  uint32_t relation_id = 0;
  std::string schema;
  std::string table;
  char replica_identity = 'd';  // d(efault), n(othing), f(ull), i(ndex)
  std::vector<RelationColumn> columns;
};
struct TypeMessage {
  uint32_t type_oid = 0;
  std::string schema;
  std::string name;
};
struct InsertMessage {
  uint32_t relation_id = 0;
  Tuple new_tuple;
};
struct UpdateMessage {
  uint32_t relation_id = 0;
  // 'K' (key columns only), 'O' (the whole old row, REPLICA IDENTITY FULL)
  // or 0 (no old tuple: the key did not change).
  char old_kind = 0;
  Tuple old_tuple;
  Tuple new_tuple;
};
struct DeleteMessage {
  uint32_t relation_id = 0;
  char old_kind = 'K';
  Tuple old_tuple;
};
struct TruncateMessage {
  uint8_t options = 0;  // 1: CASCADE, 2: RESTART IDENTITY
  std::vector<uint32_t> relation_ids;
};
// Origin ('O') and logical decoding messages ('M'), which weir skips.
struct IgnoredMessage {
  char tag = 0;
};

using PgOutputMessage =
    std::variant<BeginMessage, CommitMessage, RelationMessage, TypeMessage, InsertMessage,
                 UpdateMessage, DeleteMessage, TruncateMessage, IgnoredMessage>;

// Parses one pgoutput message. kDataLoss when the bytes are truncated or
// malformed, naming the message and what is wrong.
absl::StatusOr<PgOutputMessage> ParsePgOutput(absl::string_view bytes);

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_PGOUTPUT_H_
