// Rejected rows as dead letters (rejected_row.h). Values stay PostgreSQL's
// text, not converted: the letter must hold exactly what the server sent,
// including what did not convert.

#include "lib/connectors/postgres/rejected_row.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/connectors/postgres/pgoutput.h"
#include "weir/formats/json.h"

namespace weir::postgres::internal {
namespace {

void WriteRow(json::Writer& json, const RawRow* row) {
  if (row == nullptr) {
    json.Null();
    return;
  }
  json.BeginObject();
  for (const RawColumn& column : *row) json.Member(column.name, column.text);
  json.EndObject();
}

// The key columns of the row the change is about (`after`, else `before`).
std::string KeyJson(const RejectedChange& change) {
  const RawRow* row = change.after != nullptr ? change.after : change.before;
  if (row == nullptr) return "";
  std::string key;
  json::Writer json(key);
  json.BeginObject();
  for (const RawColumn& column : *row) {
    if (column.key) json.Member(column.name, column.text);
  }
  json.EndObject();
  return key;
}

std::string TableOf(const debezium::SourceInfo& source) {
  return absl::StrCat(source.schema, ".", source.table);
}

}  // namespace

DeadLetter RejectedLetter(const RejectedChange& change) {
  const debezium::SourceInfo& source = *change.source;
  DeadLetter letter;
  json::Writer json(letter.payload);
  json.BeginObject().Key("before");
  WriteRow(json, change.before);
  json.Key("after");
  WriteRow(json, change.after);
  json.Key("source");
  debezium::WritePostgresSource(source, json);
  json.Member("op", std::string(debezium::OpName(change.op)))
      .Member("ts_ms", change.ts_ms)
      .EndObject();
  letter.key = KeyJson(change);
  letter.code = change.error.code();
  letter.error = std::string(change.error.message());
  letter.stage = "postgres-source";
  letter.topic = absl::StrCat(source.name, ".", source.schema, ".", source.table);
  letter.timestamp_ms = source.ts_ms;
  letter.position.emplace_back("slot", change.slot);
  if (source.lsn.has_value()) {
    letter.position.emplace_back("lsn", LsnToString(static_cast<uint64_t>(*source.lsn)));
  }
  if (source.tx_id.has_value()) letter.position.emplace_back("txid", absl::StrCat(*source.tx_id));
  letter.position.emplace_back("table", TableOf(source));
  return letter;
}

std::string RejectedAt(const RejectedChange& change) {
  const debezium::SourceInfo& source = *change.source;
  std::string at = absl::StrCat("slot ", change.slot);
  if (source.lsn.has_value()) {
    absl::StrAppend(&at, ", LSN ", LsnToString(static_cast<uint64_t>(*source.lsn)));
  }
  if (source.tx_id.has_value()) absl::StrAppend(&at, ", txid ", *source.tx_id);
  absl::StrAppend(&at, ", table ", TableOf(source));
  return at;
}

}  // namespace weir::postgres::internal
