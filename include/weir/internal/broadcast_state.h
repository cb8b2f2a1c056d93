// Storage of broadcast state: typed maps, one copy per worker, written only
// by ProcessBroadcastElement (so every copy is the same). Internal.

#ifndef WEIR_INTERNAL_BROADCAST_STATE_H_
#define WEIR_INTERNAL_BROADCAST_STATE_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "weir/codec.h"
#include "weir/internal/state_table.h"

namespace weir::internal {

class BroadcastTableBase {
 public:
  virtual ~BroadcastTableBase() = default;
  virtual std::type_index type() const = 0;
  // [varint count][key][value]...
  virtual void Encode(std::string& out) const = 0;
  virtual bool Decode(std::string_view in) = 0;
};

template <class K, class V>
class BroadcastTable final : public BroadcastTableBase {
 public:
  std::type_index type() const override { return typeid(BroadcastTable<K, V>); }
  void Encode(std::string& out) const override {
    AppendVarint(out, map.size());
    for (const auto& [key, value] : map) {
      Codec<K>::Encode(key, out);
      Codec<V>::Encode(value, out);
    }
  }
  bool Decode(std::string_view in) override {
    uint64_t count;
    if (!ReadVarint(in, count)) return false;
    for (uint64_t idx = 0; idx < count; ++idx) {
      K key{};
      V value{};
      if (!Codec<K>::Decode(in, key) || !Codec<V>::Decode(in, value)) return false;
      map.insert_or_assign(std::move(key), std::move(value));
    }
    return in.empty();
  }
  absl::flat_hash_map<K, V> map;
};

class BroadcastStateStore {
 public:
  // The operator-state keys of broadcast tables start with this.
  static constexpr std::string_view kKeyPrefix = "broadcast/";

  template <class K, class V>
  BroadcastTable<K, V>* GetOrCreate(const std::string& name) {
    auto it = tables_.find(name);
    if (it != tables_.end()) {
      if (it->second->type() != std::type_index(typeid(BroadcastTable<K, V>))) {
        throw StateError("broadcast state '" + name + "' is used with two different types");
      }
      return static_cast<BroadcastTable<K, V>*>(it->second.get());
    }
    auto table = std::make_unique<BroadcastTable<K, V>>();
    if (auto pending = pending_.find(name); pending != pending_.end()) {
      if (!table->Decode(pending->second))
        throw StateError("broadcast state '" + name + "': undecodable snapshot");
      pending_.erase(pending);
    }
    auto* raw = table.get();
    tables_.emplace(name, std::move(table));
    return raw;
  }

  // Writes every table (restored ones not used yet included) into a
  // snapshot's operator state, as "broadcast/<table name>". One worker
  // writes them: every worker holds the same.
  void SnapshotInto(std::map<std::string, std::string>& operator_state) const {
    for (const auto& [name, bytes] : pending_) operator_state[Key(name)] = bytes;
    for (const auto& [name, table] : tables_) table->Encode(operator_state[Key(name)]);
  }
  // Takes the tables of a restored snapshot's operator state (any worker's);
  // each is decoded when first used.
  void RestoreFrom(const std::map<std::string, std::string>& operator_state) {
    for (auto it = operator_state.lower_bound(std::string(kKeyPrefix));
         it != operator_state.end() && it->first.starts_with(kKeyPrefix); ++it) {
      pending_[it->first.substr(kKeyPrefix.size())] = it->second;
    }
  }

 private:
  static std::string Key(const std::string& name) { return std::string(kKeyPrefix) + name; }
  absl::flat_hash_map<std::string, std::unique_ptr<BroadcastTableBase>> tables_;
  std::map<std::string, std::string> pending_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_BROADCAST_STATE_H_
