// The state backends keyed-state tests run against, by name, for tests of
// keyed state (tests/unit/state) and of windows (tests/unit/window):
//
//   Memory           StateBackend::Memory()
//   RocksDb          StateBackend::RocksDb(dir): everything fits the write-back cache
//   RocksDbTinyCache StateBackend::RocksDb(dir) with write_back_cache_share = 0, i.e. the
//                    smallest cache (1024 entries per state table and worker): tests with
//                    more keys than that evict (write back) and miss (read RocksDB) all
//                    the time
//
// Example:
//
//   options.state_backend = test::MakeBackend(test::Backend::kRocksDbTinyCache, dir / "rocksdb");

#ifndef WEIR_TESTS_UNIT_STATE_TEST_BACKENDS_H_
#define WEIR_TESTS_UNIT_STATE_TEST_BACKENDS_H_

#include <cstddef>
#include <filesystem>
#include <ostream>
#include <string>

#include "weir/state.h"

namespace weir::test {

enum class Backend { kMemory, kRocksDb, kRocksDbTinyCache };

inline std::string BackendName(Backend backend) {
  switch (backend) {
    case Backend::kMemory:
      return "Memory";
    case Backend::kRocksDb:
      return "RocksDb";
    case Backend::kRocksDbTinyCache:
      return "RocksDbTinyCache";
  }
  return "?";
}

// Readable test parameters.
inline void PrintTo(Backend backend, std::ostream* os) { *os << BackendName(backend); }

// The backend; RocksDB keeps its instances under `dir`.
inline StateBackend MakeBackend(Backend backend, const std::filesystem::path& dir) {
  switch (backend) {
    case Backend::kMemory:
      break;
    case Backend::kRocksDb:
      return StateBackend::RocksDb(dir.string());
    case Backend::kRocksDbTinyCache:
      return StateBackend::RocksDb(
          dir.string(), {.state_memory_limit = size_t{16} << 20, .write_back_cache_share = 0});
  }
  return StateBackend::Memory();
}

}  // namespace weir::test

#endif  // WEIR_TESTS_UNIT_STATE_TEST_BACKENDS_H_
