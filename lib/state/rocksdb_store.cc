#include "lib/state/rocksdb_store.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "rocksdb/cache.h"
#include "rocksdb/compaction_filter.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"

namespace weir::internal {

namespace fs = std::filesystem;

namespace {

absl::Status FromRocks(const rocksdb::Status& status, std::string_view what) {
  if (status.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat("RocksDB ", absl::string_view(what.data(), what.size()),
                                           ": ", status.ToString());
  if (status.IsCorruption()) return absl::DataLossError(message);
  if (status.IsIOError()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

// Drops values whose TTL has passed (values start with their expiry, see
// AppendExpiry), so expired state is cleaned up on disk too.
class TtlCompactionFilter final : public rocksdb::CompactionFilter {
 public:
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
              bool*) const override {
    std::string_view bytes(value.data(), value.size());
    Timestamp expire_at;
    if (!ReadExpiry(bytes, expire_at)) return false;
    return expire_at != kMaxTimestamp && expire_at <= absl::ToUnixMillis(absl::Now());
  }
  const char* Name() const override { return "weir.ttl"; }
};

// Resources every instance of the job shares.
struct Shared {
  std::shared_ptr<rocksdb::Cache> cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers;
  TtlCompactionFilter ttl_filter;
  std::string root;

  rocksdb::Options DbOptions() const {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    options.write_buffer_manager = write_buffers;
    options.max_open_files = 256;
    options.IncreaseParallelism(2);
    ApplyCf(options);
    return options;
  }
  void ApplyCf(rocksdb::ColumnFamilyOptions& options) const {
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.cache_index_and_filter_blocks = true;
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    options.compaction_filter = &ttl_filter;
    options.write_buffer_size = 16 << 20;
  }
  rocksdb::ColumnFamilyOptions CfOptions() const {
    rocksdb::ColumnFamilyOptions options;
    ApplyCf(options);
    return options;
  }
};

class RocksDbStore final : public KvStore {
 public:
  RocksDbStore(std::shared_ptr<Shared> shared, std::string path)
      : shared_(std::move(shared)), path_(std::move(path)) {}
  ~RocksDbStore() override {
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
    handles_.clear();
    db_.reset();
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  // Opens (creating or reopening) the instance at path_ with all its column families.
  absl::Status Open() {
    rocksdb::Options options = shared_->DbOptions();
    std::vector<std::string> names;
    if (!rocksdb::DB::ListColumnFamilies(options, path_, &names).ok())
      names = {rocksdb::kDefaultColumnFamilyName};
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names) descriptors.emplace_back(name, shared_->CfOptions());
    rocksdb::DB* db = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    absl::Status status =
        FromRocks(rocksdb::DB::Open(options, path_, descriptors, &handles, &db), "open");
    if (!status.ok()) return status;
    db_.reset(db);
    for (size_t idx = 0; idx < names.size(); ++idx) {
      if (names[idx] == rocksdb::kDefaultColumnFamilyName) {
        db_->DestroyColumnFamilyHandle(handles[idx]);
        continue;
      }
      tables_[names[idx]] = static_cast<int>(handles_.size());
      handles_.push_back(handles[idx]);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int> OpenTable(const std::string& name) override {
    if (auto it = tables_.find(name); it != tables_.end()) return it->second;
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    absl::Status status =
        FromRocks(db_->CreateColumnFamily(shared_->CfOptions(), name, &handle), "create " + name);
    if (!status.ok()) return status;
    tables_[name] = static_cast<int>(handles_.size());
    handles_.push_back(handle);
    return tables_[name];
  }

  absl::StatusOr<std::optional<std::string>> Get(int table, std::string_view key) override {
    std::string value;
    rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), handles_[table],
                                      rocksdb::Slice(key.data(), key.size()), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    if (!status.ok()) return FromRocks(status, "get");
    return std::optional<std::string>(std::move(value));
  }

  absl::Status Scan(int table, std::string_view prefix,
                    const std::function<void(std::string_view, std::string_view)>& fn) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[table]));
    const rocksdb::Slice start(prefix.data(), prefix.size());
    for (it->Seek(start); it->Valid() && it->key().starts_with(start); it->Next()) {
      fn(std::string_view(it->key().data(), it->key().size()),
         std::string_view(it->value().data(), it->value().size()));
    }
    return FromRocks(it->status(), "scan");
  }

  void Put(int table, std::string_view key, std::string_view value) override {
    batch_.Put(handles_[table], rocksdb::Slice(key.data(), key.size()),
               rocksdb::Slice(value.data(), value.size()));
  }
  void Delete(int table, std::string_view key) override {
    batch_.Delete(handles_[table], rocksdb::Slice(key.data(), key.size()));
  }
  absl::Status Commit() override {
    if (batch_.Count() == 0) return absl::OkStatus();
    rocksdb::WriteOptions options;
    options.disableWAL = true;  // checkpoints give durability
    absl::Status status = FromRocks(db_->Write(options, &batch_), "write");
    batch_.Clear();
    return status;
  }

  // Flush + rocksdb::Checkpoint (hard links). SST files are immutable and
  // named after the instance identity and file number, so a file already in
  // storage is not uploaded again (incremental snapshots).
  absl::Status Snapshot(const std::string& staging_dir, std::vector<SnapshotFile>& files) override {
    absl::Status status = Commit();
    if (!status.ok()) return status;
    rocksdb::FlushOptions flush;
    flush.wait = true;
    if (!handles_.empty()) {
      status = FromRocks(db_->Flush(flush, handles_), "flush");
      if (!status.ok()) return status;
    }
    std::string identity;
    status = FromRocks(db_->GetDbIdentity(identity), "identity");
    if (!status.ok()) return status;
    const std::string dir = absl::StrCat(staging_dir, "/rocksdb-", RandomFileName(""));
    rocksdb::Checkpoint* raw = nullptr;
    status = FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint");
    if (!status.ok()) return status;
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    status = FromRocks(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0), "checkpoint");
    if (!status.ok()) return status;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      const bool immutable = name.size() > 4 && name.compare(name.size() - 4, 4, ".sst") == 0;
      files.push_back(
          SnapshotFile{"rocksdb:" + name, entry.path().string(),
                       immutable ? absl::StrCat(identity, "-", name) : RandomFileName("-" + name)});
    }
    return absl::OkStatus();
  }

  // Copies the key groups [begin, end) of every column family of the
  // instance at `path` (opened read-only) into this one.
  absl::Status CopyRange(const std::string& path, int begin, int end) {
    rocksdb::Options options = shared_->DbOptions();
    options.create_if_missing = false;
    std::vector<std::string> names;
    absl::Status status =
        FromRocks(rocksdb::DB::ListColumnFamilies(options, path, &names), "list column families");
    if (!status.ok()) return status;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names) descriptors.emplace_back(name, shared_->CfOptions());
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    status = FromRocks(rocksdb::DB::OpenForReadOnly(options, path, descriptors, &handles, &raw),
                       "open snapshot");
    if (!status.ok()) return status;
    std::unique_ptr<rocksdb::DB> old(raw);
    const std::string start = {static_cast<char>(begin >> 8), static_cast<char>(begin & 0xff)};
    for (size_t idx = 0; idx < names.size() && status.ok(); ++idx) {
      if (names[idx] == rocksdb::kDefaultColumnFamilyName) continue;
      absl::StatusOr<int> table = OpenTable(names[idx]);
      if (!table.ok()) {
        status = table.status();
        break;
      }
      std::unique_ptr<rocksdb::Iterator> it(old->NewIterator(rocksdb::ReadOptions(), handles[idx]));
      size_t pending = 0;
      for (it->Seek(start); it->Valid(); it->Next()) {
        if (KeyGroupOfComposite(std::string_view(it->key().data(), it->key().size())) >= end) break;
        Put(*table, std::string_view(it->key().data(), it->key().size()),
            std::string_view(it->value().data(), it->value().size()));
        if (++pending == 4096) {
          status = Commit();
          pending = 0;
          if (!status.ok()) break;
        }
      }
      if (status.ok()) status = FromRocks(it->status(), "read snapshot");
      if (status.ok()) status = Commit();
    }
    for (auto* handle : handles) old->DestroyColumnFamilyHandle(handle);
    return status;
  }

  // Puts pairs of a memory-backend snapshot table into column family `table`.
  absl::Status Import(const std::string& table, const std::vector<KvPair>& pairs) {
    absl::StatusOr<int> handle = OpenTable(table);
    if (!handle.ok()) return handle.status();
    for (const KvPair& pair : pairs) Put(*handle, pair.first, pair.second);
    return Commit();
  }

 private:
  std::shared_ptr<Shared> shared_;
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::map<std::string, int> tables_;
  rocksdb::WriteBatch batch_;
};

// Rebuilds the directory of a snapshotted instance from its downloaded files.
absl::Status Materialize(const OperatorSnapshot& snapshot, const RestoredState& restored,
                         const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  for (const SnapshotFile& file : snapshot.files) {
    if (file.table.rfind("rocksdb:", 0) != 0) continue;
    const fs::path target = fs::path(dir) / file.table.substr(std::string("rocksdb:").size());
    fs::create_hard_link(restored.LocalPath(file), target, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(restored.LocalPath(file), target, fs::copy_options::overwrite_existing, ec);
    }
    if (ec)
      return absl::InternalError(
          absl::StrCat("cannot restore ", target.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

std::string SafeName(const std::string& name) {
  std::string out;
  for (char c : name)
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_');
  return out;
}

class RocksDbStoreFactory final : public StateStoreFactory {
 public:
  RocksDbStoreFactory(std::shared_ptr<Shared> shared, size_t max_entries)
      : shared_(std::move(shared)), max_entries_(max_entries) {}

  absl::StatusOr<std::unique_ptr<KvStore>> Create(
      const std::string& operator_uid, int worker, int begin, int end,
      const std::vector<const OperatorSnapshot*>& restore_from,
      const RestoredState* restored) override {
    const std::string path = absl::StrCat(shared_->root, "/", SafeName(operator_uid), "-w", worker,
                                          "-", RandomFileName(""));
    std::vector<const OperatorSnapshot*> overlapping;
    for (const OperatorSnapshot* snapshot : restore_from) {
      if (snapshot->key_group_end > begin && snapshot->key_group_begin < end)
        overlapping.push_back(snapshot);
    }
    auto has_rocksdb_files = [](const OperatorSnapshot* snapshot) {
      return std::any_of(snapshot->files.begin(), snapshot->files.end(),
                         [](const SnapshotFile& f) { return f.table.rfind("rocksdb:", 0) == 0; });
    };
    // Same key groups as when the snapshot was taken: reopen its files as they are.
    if (overlapping.size() == 1 && overlapping[0]->key_group_begin == begin &&
        overlapping[0]->key_group_end == end && has_rocksdb_files(overlapping[0])) {
      absl::Status status = Materialize(*overlapping[0], *restored, path);
      if (!status.ok()) return status;
      auto store = std::make_unique<RocksDbStore>(shared_, path);
      status = store->Open();
      if (!status.ok()) return status;
      return std::unique_ptr<KvStore>(std::move(store));
    }
    auto store = std::make_unique<RocksDbStore>(shared_, path);
    absl::Status status = store->Open();
    if (!status.ok()) return status;
    // Another parallelism: copy our key-group range out of each old instance.
    for (const OperatorSnapshot* snapshot : overlapping) {
      if (has_rocksdb_files(snapshot)) {
        const std::string dir = path + "-restore-" + RandomFileName("");
        status = Materialize(*snapshot, *restored, dir);
        if (status.ok()) status = store->CopyRange(dir, begin, end);
        std::error_code ec;
        fs::remove_all(dir, ec);
        if (!status.ok()) return status;
        continue;
      }
      for (const SnapshotFile& file : snapshot->files) {
        if (file.table == "__timers") continue;  // restored by the operator
        std::vector<KvPair> pairs;
        status = ReadSstFile(restored->LocalPath(file), begin, end, pairs);
        if (status.ok()) status = store->Import(file.table, pairs);
        if (!status.ok()) return status;
      }
    }
    return std::unique_ptr<KvStore>(std::move(store));
  }

  size_t max_cached_entries_per_table() const override { return max_entries_; }

 private:
  std::shared_ptr<Shared> shared_;
  size_t max_entries_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StateStoreFactory>> NewRocksDbStoreFactory(
    const std::string& dir, const std::string& job_name, int parallelism,
    const RocksDbStateOptions& options) {
  if (dir.empty()) return absl::InvalidArgumentError("StateBackend::RocksDb needs a directory");
  if (options.write_back_cache_share < 0 || options.write_back_cache_share >= 1) {
    return absl::InvalidArgumentError(
        "RocksDbStateOptions.write_back_cache_share must be in [0, 1)");
  }
  auto shared = std::make_shared<Shared>();
  shared->root = absl::StrCat(dir, "/", SafeName(job_name));
  std::error_code ec;
  fs::remove_all(shared->root, ec);  // scratch: state comes from checkpoints
  fs::create_directories(shared->root, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create ", shared->root, ": ", ec.message()));
  const size_t limit = std::max<size_t>(options.state_memory_limit, size_t{16} << 20);
  const auto cache_bytes =
      static_cast<size_t>(static_cast<double>(limit) * options.write_back_cache_share);
  const size_t rocksdb_bytes = limit - cache_bytes;
  shared->cache = rocksdb::NewLRUCache(rocksdb_bytes);
  // Memtables are charged to the block cache: RocksDB as a whole stays within rocksdb_bytes.
  shared->write_buffers =
      std::make_shared<rocksdb::WriteBufferManager>(rocksdb_bytes / 2, shared->cache);
  // About 128 bytes per cached entry, a few state tables per worker.
  const size_t max_entries =
      std::max<size_t>(1024, cache_bytes / 128 / static_cast<size_t>(parallelism * 4));
  return std::unique_ptr<StateStoreFactory>(
      new RocksDbStoreFactory(std::move(shared), max_entries));
}

}  // namespace weir::internal
