# Finds weir's dependencies, all from Debian packages (installed by .ci/setup)
# except the optional DuckDB (.ci/setup-duckdb). Nothing is vendored or
# downloaded by the build.
find_package(Threads REQUIRED)
find_package(absl REQUIRED)
find_package(fmt REQUIRED)
find_package(Protobuf REQUIRED)
find_package(ZLIB REQUIRED)       # crc32 of checkpoint files
find_package(simdjson REQUIRED)
find_package(CURL REQUIRED)      # S3 checkpoint storage (libcurl's SigV4 signing)
find_package(OpenSSL REQUIRED)   # SHA-256 payload hashes for S3 requests
find_package(PkgConfig REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
pkg_check_modules(ROCKSDB REQUIRED IMPORTED_TARGET rocksdb)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(CPP_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)  # the metrics endpoint
# Optional: the DuckDB mirror sink (weir_duckdb). Not a Debian package:
# .ci/setup-duckdb installs it from npm (cmake/FindDuckDB.cmake).
find_package(DuckDB)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)  # change capture from PostgreSQL

if(WEIR_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(WEIR_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
