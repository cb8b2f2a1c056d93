// KeyedStateBackend: the keyed state of one operator instance, its tables by
// name, the scope they are accessed in, and restored bytes waiting for their
// table's type. Internal.

#ifndef WEIR_INTERNAL_KEYED_STATE_BACKEND_H_
#define WEIR_INTERNAL_KEYED_STATE_BACKEND_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/codec.h"
#include "weir/internal/key_encoding.h"
#include "weir/internal/kv_store.h"
#include "weir/internal/state_tables.h"
#include "weir/time.h"

namespace weir::internal {

// The keyed state of one operator instance: its tables by name, the scope
// they are accessed in, and restored bytes waiting for their table's type.
class KeyedStateBackend {
 public:
  KeyedStateBackend(std::string operator_name, KvStore* store, size_t max_entries_per_table)
      : operator_name_(std::move(operator_name)),
        store_(store),
        max_entries_(max_entries_per_table) {}

  KeyScope& scope() { return scope_; }
  // The store behind the tables (RocksDB), or null (memory backend).
  KvStore* store() const { return store_; }
  // The job's key groups, handed to tables that compute a key's group
  // themselves (set_max_parallelism) when they are created.
  void set_max_parallelism(int max_parallelism) { max_parallelism_ = max_parallelism; }
  // Puts a store behind the tables (before any table is created).
  void set_store(KvStore* store, size_t max_entries_per_table) {
    store_ = store;
    max_entries_ = max_entries_per_table;
  }

  template <class Table>
  Table* GetOrCreate(const std::string& name, int64_t ttl_ms) {
    auto it = tables_.find(name);
    if (it != tables_.end()) {
      if (it->second->type() != std::type_index(typeid(Table))) {
        throw StateError("state '" + name + "' of operator '" + operator_name_ +
                         "' is used with two different kinds or types");
      }
      return static_cast<Table*>(it->second.get());
    }
    int store_table = -1;
    if (store_ != nullptr) {
      absl::StatusOr<int> opened = store_->OpenTable(name);
      if (!opened.ok()) throw StateError(std::string(opened.status().message()));
      store_table = *opened;
    }
    auto table = std::make_unique<Table>(name, ttl_ms, store_, store_table, max_entries_);
    Table* raw = table.get();
    if constexpr (requires { raw->set_max_parallelism(max_parallelism_); }) {
      raw->set_max_parallelism(max_parallelism_);
    }
    tables_.emplace(name, std::move(table));
    if (auto pending = pending_.find(name); pending != pending_.end()) {
      for (const KvPair& pair : pending->second) {
        absl::Status status = raw->Import(pair.first, pair.second);
        if (!status.ok()) throw StateError(std::string(status.message()));
      }
      pending_.erase(pending);
    }
    return raw;
  }

  // Restored pairs of table `name` (memory backend); imported when the table is first used.
  void AddRestored(const std::string& name, std::vector<KvPair> pairs) {
    auto& pending = pending_[name];
    for (KvPair& pair : pairs) pending.push_back(std::move(pair));
  }

  // Every table's live entries, plus restored ones not yet claimed, by table name.
  std::map<std::string, std::vector<KvPair>> Export(Timestamp now) const {
    std::map<std::string, std::vector<KvPair>> out;
    for (const auto& [name, table] : tables_) table->Export(out[name], now);
    for (const auto& [name, pairs] : pending_) {
      auto& into = out[name];
      into.insert(into.end(), pairs.begin(), pairs.end());
    }
    return out;
  }

  // RocksDB: writes every dirty entry to the store, one commit per table.
  // On failure, what was not committed stays dirty (StateTable::WriteBack).
  absl::Status WriteBack() {
    if (store_ == nullptr) return absl::OkStatus();
    for (auto& [name, table] : tables_) {
      if (absl::Status status = table->WriteBack(); !status.ok()) return status;
    }
    return absl::OkStatus();
  }

  // Replays: appends to `out` the key part ([kg][len][key]) of every key
  // with a value in table `name` whose key group is in [group_begin,
  // group_end), each once, in byte order. RocksDB writes the cache back
  // first and then scans its store, so a key may be listed whose value
  // expired (reading it finds nothing).
  absl::Status CollectKeys(const std::string& name, int group_begin, int group_end, Timestamp now,
                           std::vector<std::string>& out) {
    const size_t first = out.size();
    auto add = [&](std::string_view composite) {
      const int group = KeyGroupOfComposite(composite);
      if (group < group_begin || group >= group_end) return;
      std::string_view rest = composite.substr(2);
      uint64_t len = 0;
      if (!ReadVarint(rest, len) || rest.size() < len) {
        throw StateError("state '" + name + "' of operator '" + operator_name_ + "': bad key");
      }
      const size_t key_end = composite.size() - rest.size() + len;
      if (out.size() > first && out.back() == composite.substr(0, key_end)) return;
      out.emplace_back(composite.substr(0, key_end));
    };
    if (store_ != nullptr) {
      if (absl::Status status = WriteBack(); !status.ok()) return status;
      absl::StatusOr<int> table = store_->OpenTable(name);
      if (!table.ok()) return table.status();
      for (int group = group_begin; group < group_end; ++group) {
        const char prefix[2] = {static_cast<char>(group >> 8), static_cast<char>(group & 0xff)};
        absl::Status status =
            store_->Scan(*table, std::string_view(prefix, 2),
                         [&](std::string_view key, std::string_view) { add(key); });
        if (!status.ok()) return status;
      }
      return absl::OkStatus();
    }
    std::vector<KvPair> pairs;
    if (auto it = tables_.find(name); it != tables_.end()) it->second->Export(pairs, now);
    if (auto it = pending_.find(name); it != pending_.end()) {
      pairs.insert(pairs.end(), it->second.begin(), it->second.end());
    }
    std::sort(pairs.begin(), pairs.end(),
              [](const KvPair& a, const KvPair& b) { return a.first < b.first; });
    for (const KvPair& pair : pairs) add(pair.first);
    return absl::OkStatus();
  }

  std::vector<std::string> table_names() const {
    std::vector<std::string> names;
    for (const auto& [name, table] : tables_) names.push_back(name);
    return names;
  }

 private:
  std::string operator_name_;
  KvStore* store_;
  size_t max_entries_;
  int max_parallelism_ = 0;
  KeyScope scope_;
  absl::flat_hash_map<std::string, std::unique_ptr<StateTable>> tables_;
  std::map<std::string, std::vector<KvPair>> pending_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_KEYED_STATE_BACKEND_H_
