// Links weir::duckdb from an installed weir and opens a database in memory.
#include <cstdio>

#include "weir/connectors/duckdb_mirror.h"

int main() {
  auto rows = weir::duckdb::Query(":memory:", "SELECT 40 + 2");
  if (!rows.ok() || rows->size() != 1 || (*rows)[0][0] != "42") return 1;
  std::printf("weir::duckdb on libduckdb %s\n", weir::duckdb::LibraryVersion().c_str());
  return 0;
}
