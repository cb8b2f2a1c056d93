// A table of the change-capture source as CdcOptions::tables names it
// ("schema.table", or "table" for public.table).

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_TABLE_NAME_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_TABLE_NAME_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "lib/connectors/postgres/connection.h"

namespace weir::postgres::internal {

struct TableName {
  std::string schema;
  std::string table;
  // schema.table, for messages.
  std::string Display() const { return absl::StrCat(schema, ".", table); }
  // "schema"."table", for SQL.
  std::string Quoted() const {
    return absl::StrCat(QuoteIdentifier(schema), ".", QuoteIdentifier(table));
  }
};

inline TableName SplitTableName(const std::string& name) {
  const size_t dot = name.find('.');
  if (dot == std::string::npos) return {"public", name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_TABLE_NAME_H_
