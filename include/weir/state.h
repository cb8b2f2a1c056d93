// Keyed state: ValueState, ListState and MapState, scoped to the current key
// (and a namespace, which windows use), obtained from a keyed context by a
// descriptor; and the StateBackend that holds it.
//
// State is checkpointed with the job and restored on restart, redistributed
// by key group when the parallelism changes.
//
// Example:
//
//   class Totals final : public weir::KeyedProcessFunction<uint64_t, Event, Total> {
//    public:
//     absl::Status ProcessElement(const Event& e, Context& ctx, weir::Collector<Total>& out)
//     override {
//       weir::ValueState<int64_t> count = ctx.GetState(kCount);
//       const int64_t* before = count.Get();  // null before the key's first Update
//       count.Update((before != nullptr ? *before : 0) + 1);
//       out.Collect(Total{ctx.current_key(), *count.Get()});
//       return absl::OkStatus();
//     }
//    private:
//     static inline const weir::ValueStateDescriptor<int64_t> kCount{"count"};
//   };
//
// Handles are cheap views; they always act on the key being processed.

#ifndef WEIR_STATE_H_
#define WEIR_STATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "weir/codec.h"
#include "weir/internal/broadcast_state.h"
#include "weir/internal/state_table.h"

namespace weir {

// Names a ValueState<T>. `ttl`: entries not written for this long read as
// absent and are cleaned up (zero: never expire).
template <class T>
struct ValueStateDescriptor {
  std::string name;
  absl::Duration ttl = absl::ZeroDuration();
};

template <class T>
struct ListStateDescriptor {
  std::string name;
  absl::Duration ttl = absl::ZeroDuration();
};

template <class K, class V>
struct MapStateDescriptor {
  std::string name;
  absl::Duration ttl = absl::ZeroDuration();
};

// Options of the RocksDB state backend.
struct RocksDbStateOptions {
  // All the memory keyed state may use, for every operator and worker of the
  // job together: one RocksDB block cache (which also accounts the write
  // buffers, through one write-buffer manager) and the in-memory write-back
  // caches in front of RocksDB. State beyond it lives on disk.
  // Default: 512 MiB
  size_t state_memory_limit = size_t{512} << 20;
  // The share of state_memory_limit for the write-back caches (hot keys cost
  // a hash-map update); the rest goes to RocksDB.
  // Default: 0.25
  double write_back_cache_share = 0.25;
};

// Where keyed state lives.
//
//   StateBackend::Memory()          typed hash maps; fastest; bounded by RAM
//   StateBackend::RocksDb("/var/lib/app/state")
//                                   one RocksDB instance per keyed operator and
//                                   worker under that directory (WAL off:
//                                   checkpoints give durability), a bounded
//                                   write-back cache in front
//
// Either way state is checkpointed to CheckpointOptions::storage; the local
// RocksDB directory is scratch space, wiped when a job starts.
class StateBackend {
 public:
  static StateBackend Memory() { return StateBackend(); }
  static StateBackend RocksDb(std::string dir, RocksDbStateOptions options = {}) {
    StateBackend backend;
    backend.rocksdb_ = true;
    backend.dir_ = std::move(dir);
    backend.options_ = options;
    return backend;
  }

  bool is_rocksdb() const { return rocksdb_; }
  const std::string& dir() const { return dir_; }
  const RocksDbStateOptions& rocksdb_options() const { return options_; }

 private:
  StateBackend() = default;
  bool rocksdb_ = false;
  std::string dir_;
  RocksDbStateOptions options_;
};

namespace internal {
// What state handles need from the operator: the backend and the current
// scope, brought up to date for the record being processed.
class StateAccess {
 public:
  virtual ~StateAccess() = default;
  virtual KeyedStateBackend& Backend() = 0;
  virtual KeyScope& Scope() = 0;
};
}  // namespace internal

// One value per key (and namespace).
template <class T>
class ValueState {
 public:
  ValueState(internal::ValueTable<T>* table, internal::StateAccess* access)
      : table_(table), access_(access) {}

  // The value, or nullptr before the key's first Update (or after Clear, or
  // once its TTL passed). Not a copy: valid until the next state call, so
  // copy what you need before touching other state.
  const T* Get() const { return table_->Get(access_->Scope()); }
  // The value for in-place update, or nullptr; valid until the next state call.
  T* Mutable() { return table_->Mutable(access_->Scope()); }
  void Update(T value) { table_->Put(access_->Scope(), std::move(value)); }
  void Clear() { table_->Remove(access_->Scope()); }

 private:
  internal::ValueTable<T>* table_;
  internal::StateAccess* access_;
};

// A list per key (and namespace).
template <class T>
class ListState {
 public:
  ListState(internal::ListTable<T>* table, internal::StateAccess* access)
      : table_(table), access_(access) {}

  // The elements (empty if none); valid until the next state call.
  const std::vector<T>& Get() const {
    static const std::vector<T> kEmpty;
    const std::vector<T>* items = table_->Get(access_->Scope(), false);
    return items ? *items : kEmpty;
  }
  void Add(T value) { table_->Get(access_->Scope(), true)->push_back(std::move(value)); }
  // The elements for in-place update (e.g. erasing a prefix); valid until
  // the next state call.
  std::vector<T>* Mutable() { return table_->Get(access_->Scope(), true); }
  void Update(std::vector<T> values) { *table_->Get(access_->Scope(), true) = std::move(values); }
  void Clear() { table_->Get(access_->Scope(), true)->clear(); }

 private:
  internal::ListTable<T>* table_;
  internal::StateAccess* access_;
};

// A map per key (and namespace). Iteration is in encoded-key order (numeric
// for integers, lexicographic for strings).
template <class K, class V>
class MapState {
 public:
  MapState(internal::MapTable<K, V>* table, internal::StateAccess* access)
      : table_(table), access_(access) {}

  const V* Find(const K& key) const {
    auto* entries = table_->Get(access_->Scope(), false);
    if (entries == nullptr) return nullptr;
    auto it = entries->find(Encode(key));
    return it == entries->end() || !it->second.value ? nullptr : &*it->second.value;
  }
  std::optional<V> Get(const K& key) const {
    const V* v = Find(key);
    return v ? std::optional<V>(*v) : std::nullopt;
  }
  bool Contains(const K& key) const { return Find(key) != nullptr; }
  // The value for in-place update, or nullptr; valid until the next state call.
  V* Mutable(const K& key) {
    internal::KeyScope& scope = access_->Scope();
    auto* entries = table_->Get(scope, false);
    if (entries == nullptr) return nullptr;
    auto it = entries->find(Encode(key));
    if (it == entries->end() || !it->second.value) return nullptr;
    it->second.dirty = true;
    it->second.expire_at = table_->Expiry(scope.now);
    return &*it->second.value;
  }
  void Put(const K& key, V value) {
    internal::KeyScope& scope = access_->Scope();
    auto& entry = (*table_->Get(scope, true))[Encode(key)];
    entry.value = std::move(value);
    entry.dirty = true;
    entry.expire_at = table_->Expiry(scope.now);
  }
  void Remove(const K& key) {
    auto* entries = table_->Get(access_->Scope(), false);
    if (entries == nullptr) return;
    auto it = entries->find(Encode(key));
    if (it == entries->end()) return;
    if (it->second.stored) {
      it->second.value.reset();
      it->second.dirty = true;
    } else {
      entries->erase(it);
    }
  }
  // Calls fn(key, value) for every entry, in key order.
  template <class F>
  void ForEach(F&& fn) const {
    auto* entries = table_->Get(access_->Scope(), false);
    if (entries == nullptr) return;
    for (const auto& [bytes, entry] : *entries) {
      if (!entry.value) continue;
      K key{};
      std::string_view in = bytes;
      if (!Codec<K>::Decode(in, key)) throw internal::StateError("map state: undecodable key");
      fn(static_cast<const K&>(key), *entry.value);
    }
  }
  std::vector<K> Keys() const {
    std::vector<K> keys;
    ForEach([&keys](const K& key, const V&) { keys.push_back(key); });
    return keys;
  }
  bool IsEmpty() const {
    bool empty = true;
    ForEach([&empty](const K&, const V&) { empty = false; });
    return empty;
  }
  void Clear() {
    auto* entries = table_->Get(access_->Scope(), false);
    if (entries == nullptr) return;
    for (auto it = entries->begin(); it != entries->end();) {
      if (it->second.stored) {
        it->second.value.reset();
        it->second.dirty = true;
        ++it;
      } else {
        it = entries->erase(it);
      }
    }
  }

 private:
  static std::string Encode(const K& key) {
    std::string bytes;
    Codec<K>::Encode(key, bytes);
    return bytes;
  }
  internal::MapTable<K, V>* table_;
  internal::StateAccess* access_;
};

// Broadcast state as ProcessElement sees it: read-only (every worker holds
// the same copy; only ProcessBroadcastElement writes it). Iteration order is
// unspecified.
template <class K, class V>
class ReadOnlyBroadcastState {
 public:
  explicit ReadOnlyBroadcastState(internal::BroadcastTable<K, V>* table) : table_(table) {}
  const V* Get(const K& key) const {
    auto it = table_->map.find(key);
    return it == table_->map.end() ? nullptr : &it->second;
  }
  bool Contains(const K& key) const { return table_->map.contains(key); }
  size_t size() const { return table_->map.size(); }
  template <class F>
  void ForEach(F&& fn) const {
    for (const auto& [key, value] : table_->map) fn(key, value);
  }

 protected:
  internal::BroadcastTable<K, V>* table_;
};

// Broadcast state as ProcessBroadcastElement sees it: writable. Update it
// the same way on every worker (from the broadcast element only).
template <class K, class V>
class BroadcastState : public ReadOnlyBroadcastState<K, V> {
 public:
  using ReadOnlyBroadcastState<K, V>::ReadOnlyBroadcastState;
  void Put(const K& key, V value) { this->table_->map.insert_or_assign(key, std::move(value)); }
  void Remove(const K& key) { this->table_->map.erase(key); }
  void Clear() { this->table_->map.clear(); }
};

namespace internal {
template <class K, class V>
BroadcastTable<K, V>* GetBroadcastTable(BroadcastStateStore& store,
                                        const MapStateDescriptor<K, V>& descriptor) {
  WEIR_REQUIRE_CODEC(K);
  WEIR_REQUIRE_CODEC(V);
  return store.template GetOrCreate<K, V>(descriptor.name);
}

// The state of `descriptor` in `access`'s backend.
template <class T>
ValueState<T> GetState(StateAccess& access, const ValueStateDescriptor<T>& descriptor) {
  WEIR_REQUIRE_CODEC(T);
  return ValueState<T>(access.Backend().template GetOrCreate<ValueTable<T>>(
                           descriptor.name, absl::ToInt64Milliseconds(descriptor.ttl)),
                       &access);
}
template <class T>
ListState<T> GetState(StateAccess& access, const ListStateDescriptor<T>& descriptor) {
  WEIR_REQUIRE_CODEC(T);
  return ListState<T>(access.Backend().template GetOrCreate<ListTable<T>>(
                          descriptor.name, absl::ToInt64Milliseconds(descriptor.ttl)),
                      &access);
}
template <class K, class V>
MapState<K, V> GetState(StateAccess& access, const MapStateDescriptor<K, V>& descriptor) {
  WEIR_REQUIRE_CODEC(K);
  WEIR_REQUIRE_CODEC(V);
  return MapState<K, V>(access.Backend().template GetOrCreate<MapTable<K, V>>(
                            descriptor.name, absl::ToInt64Milliseconds(descriptor.ttl)),
                        &access);
}
}  // namespace internal

}  // namespace weir

#endif  // WEIR_STATE_H_
