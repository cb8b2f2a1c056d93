# Finds DuckDB's C API: duckdb.h and libduckdb. Debian has no package;
# .ci/setup-duckdb installs both (one DuckDB release, from npm) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/weir/duckdb, the default of WEIR_DUCKDB_DIR.
#
# Sets DuckDB_FOUND, DuckDB_LIBRARY_DIR and the imported target DuckDB::duckdb.
# Optional: without it weir builds without weir::duckdb, and the DuckDB
# tests are not built (the "not proved" line of .ci/test names them).
set(_weir_duckdb_default "$ENV{WEIR_DUCKDB_DIR}")
if(NOT _weir_duckdb_default)
  if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
    set(_weir_duckdb_default "$ENV{XDG_CACHE_HOME}/weir/duckdb")
  else()
    set(_weir_duckdb_default "$ENV{HOME}/.cache/weir/duckdb")
  endif()
endif()
set(WEIR_DUCKDB_DIR "${_weir_duckdb_default}" CACHE PATH
    "Where .ci/setup-duckdb installed DuckDB (include/duckdb.h, lib/libduckdb.so)")

find_path(DuckDB_INCLUDE_DIR duckdb.h HINTS "${WEIR_DUCKDB_DIR}/include" NO_CACHE)
find_library(DuckDB_LIBRARY duckdb HINTS "${WEIR_DUCKDB_DIR}/lib" NO_CACHE)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(DuckDB REQUIRED_VARS DuckDB_LIBRARY DuckDB_INCLUDE_DIR)

if(DuckDB_FOUND AND NOT TARGET DuckDB::duckdb)
  get_filename_component(DuckDB_LIBRARY_DIR "${DuckDB_LIBRARY}" DIRECTORY)
  add_library(DuckDB::duckdb SHARED IMPORTED)
  set_target_properties(DuckDB::duckdb PROPERTIES
    IMPORTED_LOCATION "${DuckDB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${DuckDB_INCLUDE_DIR}")
endif()
