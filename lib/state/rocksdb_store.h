// The RocksDB state backend: one RocksDB instance per keyed operator and
// worker (a column family per state), all sharing one block cache and one
// write-buffer manager sized from RocksDbStateOptions::state_memory_limit.

#ifndef WEIR_LIB_STATE_ROCKSDB_STORE_H_
#define WEIR_LIB_STATE_ROCKSDB_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "weir/internal/checkpointing.h"
#include "weir/state.h"

namespace weir::internal {

// Creates a factory whose instances live under `dir`/<job>/ (wiped now).
absl::StatusOr<std::unique_ptr<StateStoreFactory>> NewRocksDbStoreFactory(
    const std::string& dir, const std::string& job_name, int parallelism,
    const RocksDbStateOptions& options);

}  // namespace weir::internal

#endif  // WEIR_LIB_STATE_ROCKSDB_STORE_H_
