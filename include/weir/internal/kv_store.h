// KvStore: the byte-level store behind the typed state tables (RocksDB), and
// what goes with it: snapshot files, KV pairs, StateError. Internal.

#ifndef WEIR_INTERNAL_KV_STORE_H_
#define WEIR_INTERNAL_KV_STORE_H_

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace weir::internal {

// Raised by state access when the backing store fails (e.g. a RocksDB I/O
// error); the operator fails with it.
class StateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A local file of a snapshot, to be uploaded under storage's shared/ folder.
struct SnapshotFile {
  // The state table the file holds (an SST of composite key -> value), or
  // "rocksdb:<file name>" for a file of a RocksDB instance's checkpoint.
  std::string table;
  std::string local_path;
  // Name under shared/. Files with the same name are identical (incremental
  // snapshots upload each name once).
  std::string shared_name;
};

// A byte-level store behind the typed tables (RocksDB). Tables are column
// families. Writes are buffered until Commit().
class KvStore {
 public:
  virtual ~KvStore() = default;
  // Writes a consistent copy of everything committed into `staging_dir` and
  // lists its files.
  virtual absl::Status Snapshot(const std::string& staging_dir,
                                std::vector<SnapshotFile>& files) = 0;
  // The handle of the table `name` (created on first use).
  virtual absl::StatusOr<int> OpenTable(const std::string& name) = 0;
  virtual absl::StatusOr<std::optional<std::string>> Get(int table, std::string_view key) = 0;
  // Calls fn(key, value) for keys starting with `prefix`, in key order.
  virtual absl::Status Scan(int table, std::string_view prefix,
                            const std::function<void(std::string_view, std::string_view)>& fn) = 0;
  virtual void Put(int table, std::string_view key, std::string_view value) = 0;
  virtual void Delete(int table, std::string_view key) = 0;
  // Writes what Put/Delete buffered, atomically. The buffer is emptied
  // either way: after a failure the caller writes again what it still needs.
  virtual absl::Status Commit() = 0;
};

// A KV pair of a snapshot.
using KvPair = std::pair<std::string, std::string>;

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_KV_STORE_H_
