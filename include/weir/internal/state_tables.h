// The typed tables behind keyed state: ValueTable, NamespacedValueTable (window
// panes), ListTable and MapTable, on their StateTable base. Internal.
//
// Every state access goes through a typed, in-memory table keyed by the
// composite key (key_encoding.h), or, for window panes, by the typed (key,
// namespace) that stands for it. With the memory backend the table is the
// state. With RocksDB it is a bounded write-back cache: misses read the
// KvStore, dirty entries are written back at each checkpoint barrier and on
// eviction.

#ifndef WEIR_INTERNAL_STATE_TABLES_H_
#define WEIR_INTERNAL_STATE_TABLES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weir/codec.h"
#include "weir/internal/key_encoding.h"
#include "weir/internal/kv_store.h"
#include "weir/key.h"
#include "weir/time.h"

namespace weir::internal {

// The dirty entries of a table's cache (composite key -> slot with a `dirty`
// flag), in key order, to be written back: RocksDB inserts a sorted batch
// into its memtable (a skip list) next to the previous key, but searches
// from the top, missing the cache at every level, for each key in hash order.
template <class Slots>
std::vector<typename Slots::value_type*> DirtyInKeyOrder(Slots& slots) {
  std::vector<typename Slots::value_type*> dirty;
  for (auto& entry : slots) {
    if (entry.second.dirty) dirty.push_back(&entry);
  }
  std::sort(dirty.begin(), dirty.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  return dirty;
}

// A composite key held inline up to 24 bytes (an integer key with a
// timestamp namespace, as window panes have, takes 20): a lookup then reads
// the key from the slot it probes instead of from a separate heap block,
// one cache miss fewer per access. Longer keys go to the heap.
class InlineKey {
 public:
  explicit InlineKey(std::string_view bytes) : bytes_(bytes.begin(), bytes.end()) {}
  std::string_view view() const { return {bytes_.data(), bytes_.size()}; }
  // Byte order, as std::string and the KvStore compare.
  bool operator<(const InlineKey& other) const { return view() < other.view(); }

 private:
  absl::InlinedVector<char, 24> bytes_;
};
// Hash and equality of InlineKey that also take a string_view, so lookups
// need no InlineKey.
struct InlineKeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view bytes) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(bytes.data(), bytes.size()));
  }
  size_t operator()(const InlineKey& key) const { return (*this)(key.view()); }
};
struct InlineKeyEq {
  using is_transparent = void;
  static std::string_view View(std::string_view bytes) { return bytes; }
  static std::string_view View(const InlineKey& key) { return key.view(); }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return View(a) == View(b);
  }
};

class StateTable {
 public:
  StateTable(std::string name, int64_t ttl_ms, KvStore* store, int store_table, size_t max_entries)
      : name_(std::move(name)),
        ttl_ms_(ttl_ms),
        store_(store),
        store_table_(store_table),
        max_entries_(max_entries) {}
  virtual ~StateTable() = default;

  const std::string& name() const { return name_; }
  virtual std::type_index type() const = 0;
  // Live entries (memory backend snapshot), unsorted.
  virtual void Export(std::vector<KvPair>& out, Timestamp now) const = 0;
  // Restores one exported pair (memory backend).
  virtual absl::Status Import(std::string_view key, std::string_view value) = 0;
  // Writes dirty entries and deletions to the store and commits them. They
  // are marked clean (and tombstones forgotten) only once the commit
  // succeeded: after a failed one they stay dirty, for the next write-back,
  // so the cache never drops a value the store did not get.
  virtual absl::Status WriteBack() = 0;
  // Number of cached entries.
  virtual size_t size() const = 0;

 protected:
  Timestamp ExpiryFrom(Timestamp now) const { return ttl_ms_ > 0 ? now + ttl_ms_ : kMaxTimestamp; }
  [[noreturn]] void StoreFailed(const absl::Status& status) const {
    throw StateError("state '" + name_ + "': " + std::string(status.message()));
  }
  [[noreturn]] void Corrupt(std::string_view what) const {
    throw StateError("state '" + name_ + "': cannot decode " + std::string(what));
  }
  // Makes room in a full cache: writes every dirty entry back, commits, and
  // drops about a quarter of `slots` (arbitrary order; all clean by then).
  template <class Slots>
  void EvictFrom(Slots& slots) {
    absl::Status status = WriteBack();
    if (!status.ok()) StoreFailed(status);
    size_t drop = slots.size() / 4 + 1;
    for (auto it = slots.begin(); it != slots.end() && drop > 0; --drop) slots.erase(it++);
  }

  std::string name_;
  int64_t ttl_ms_;
  KvStore* store_;
  int store_table_;
  size_t max_entries_;
};

// ValueState<T> storage.
template <class T>
class ValueTable final : public StateTable {
 public:
  using StateTable::StateTable;
  std::type_index type() const override { return typeid(ValueTable<T>); }

  const T* Get(const KeyScope& scope) {
    Slot* slot = Find(scope);
    return slot && slot->value ? &*slot->value : nullptr;
  }
  T* Mutable(const KeyScope& scope) {
    Slot* slot = Find(scope);
    if (!slot || !slot->value) return nullptr;
    slot->dirty = true;
    slot->expire_at = ExpiryFrom(scope.now);
    return &*slot->value;
  }
  void Put(const KeyScope& scope, T value) {
    Slot& slot = Insert(scope.composite);
    slot.value = std::move(value);
    slot.dirty = true;
    slot.expire_at = ExpiryFrom(scope.now);
  }
  void Remove(const KeyScope& scope) {
    auto it = slots_.find(std::string_view(scope.composite));
    // Nothing to delete in the store: forget the key at once, so tables of
    // short-lived keys (window panes) do not fill the cache with tombstones.
    if (store_ == nullptr || (it != slots_.end() && !it->second.maybe_stored)) {
      if (it != slots_.end()) slots_.erase(it);
      return;
    }
    Slot& slot = it != slots_.end() ? it->second : Insert(scope.composite);
    slot.value.reset();
    slot.dirty = true;
  }

  void Export(std::vector<KvPair>& out, Timestamp now) const override {
    for (const auto& [key, slot] : slots_) {
      if (!slot.value || slot.expire_at <= now) continue;
      std::string value;
      AppendExpiry(value, slot.expire_at);
      Codec<T>::Encode(*slot.value, value);
      out.emplace_back(std::string(key.view()), std::move(value));
    }
  }
  absl::Status Import(std::string_view key, std::string_view value) override {
    Slot slot;
    if (!Decode(value, slot))
      return absl::DataLossError("state '" + name_ + "': undecodable value");
    slots_.insert_or_assign(InlineKey(key), std::move(slot));
    return absl::OkStatus();
  }
  absl::Status WriteBack() override {
    if (store_ == nullptr) return absl::OkStatus();
    const auto dirty = DirtyInKeyOrder(slots_);
    std::string value;
    for (auto* entry : dirty) {
      const std::string_view key = entry->first.view();
      const Slot& slot = entry->second;
      if (slot.value) {
        value.clear();
        AppendExpiry(value, slot.expire_at);
        Codec<T>::Encode(*slot.value, value);
        store_->Put(store_table_, key, value);
      } else {
        store_->Delete(store_table_, key);
      }
    }
    if (absl::Status status = store_->Commit(); !status.ok()) return status;
    for (auto* entry : dirty) {
      Slot& slot = entry->second;
      if (slot.value) {
        slot.dirty = false;
        slot.maybe_stored = true;
      } else {
        // The tombstone is stored: the slot is not needed any more (erasing
        // from an absl::flat_hash_map leaves pointers to other slots valid).
        slots_.erase(slots_.find(entry->first.view()));
      }
    }
    return absl::OkStatus();
  }
  size_t size() const override { return slots_.size(); }

 private:
  struct Slot {
    std::optional<T> value;  // nullopt: known absent (or deleted, when dirty)
    Timestamp expire_at = kMaxTimestamp;
    bool dirty = false;
    // The store may hold a value for this key, so removing it needs a
    // tombstone. False only when a read found nothing there and nothing was
    // written back since.
    bool maybe_stored = true;
  };

  bool Decode(std::string_view bytes, Slot& slot) const {
    slot.value.emplace();
    return ReadExpiry(bytes, slot.expire_at) && Codec<T>::Decode(bytes, *slot.value);
  }

  // The slot of the scope's key, loading it from the store on a miss; null
  // when absent. Expired values read as absent.
  Slot* Find(const KeyScope& scope) {
    auto it = slots_.find(std::string_view(scope.composite));
    if (it == slots_.end()) {
      if (store_ == nullptr) return nullptr;
      absl::StatusOr<std::optional<std::string>> bytes = store_->Get(store_table_, scope.composite);
      if (!bytes.ok()) StoreFailed(bytes.status());
      Slot& slot = Insert(scope.composite);
      if (*bytes && !Decode(**bytes, slot)) Corrupt("value");
      if (!*bytes) {
        slot.value.reset();
        slot.maybe_stored = false;
      }
      it = slots_.find(std::string_view(scope.composite));
    }
    Slot& slot = it->second;
    if (slot.value && slot.expire_at <= scope.now) {
      if (store_ == nullptr) {
        slots_.erase(it);
        return nullptr;
      }
      slot.value.reset();
      slot.dirty = true;
    }
    return &slot;
  }

  Slot& Insert(std::string_view composite) {
    auto it = slots_.find(composite);
    if (it != slots_.end()) return it->second;
    if (store_ != nullptr && slots_.size() >= max_entries_) EvictFrom(slots_);
    return slots_.emplace(InlineKey(composite), Slot()).first->second;
  }

  absl::flat_hash_map<InlineKey, Slot, InlineKeyHash, InlineKeyEq> slots_;
};

// Values scoped to (key, int64 namespace), keyed by the typed key: a window
// pane's accumulator is one lookup of a small slot (for W1, an integer key,
// the pane start and a 16-byte accumulator: 32 bytes; 40 with the write-back
// flags), with no key encoding or byte hashing per element.
//
// kWriteBack = false: the memory backend, the table is the state (no store).
// kWriteBack = true: RocksDB, the same kind of bounded write-back cache as
// ValueTable: a miss reads the store at the composite key that KeyScope
// builds for the key and namespace ([kg][len][key][len][namespace], the
// namespace encoded with Codec<int64_t>) and caches what it found, absence
// included; dirty values go back in composite key order at each barrier and
// when a full cache evicts; removing a value the store never held forgets it
// without a tombstone.
//
// Values are [expiry][value] as ValueTable writes them, and memory snapshots
// export the same pairs, so a checkpoint of either table restores into the
// other, on either backend, at any parallelism. No TTL (window state has none).
//
// Pointers returned by Get and Mutable stay valid until the next call that
// may insert a slot (Put; with a store also Get, Mutable and Remove of an
// uncached slot, which may evict).
template <class K, class T, bool kWriteBack>
class NamespacedValueTable final : public StateTable {
 public:
  using StateTable::StateTable;
  std::type_index type() const override { return typeid(NamespacedValueTable<K, T, kWriteBack>); }

  // The job's key groups: a composite key starts with its key's group,
  // computed from the key rather than kept per slot.
  void set_max_parallelism(int max_parallelism) { max_parallelism_ = max_parallelism; }

  // The value of (key, ns), or null. On a miss, reads the store (if any).
  const T* Get(const K& key, int64_t ns) {
    Entry* entry = Find(key, ns);
    return entry == nullptr ? nullptr : &entry->value;
  }
  // The value of (key, ns) to update in place (it will be written back), or null.
  T* Mutable(const K& key, int64_t ns) {
    Entry* entry = Find(key, ns);
    if (entry == nullptr) return nullptr;
    if constexpr (kWriteBack) entry->flags.dirty = true;
    return &entry->value;
  }
  void Put(const K& key, int64_t ns, T value) {
    Entry& entry = Insert(key, ns);
    entry.value = std::move(value);
    if constexpr (kWriteBack) {
      entry.flags.present = true;
      entry.flags.dirty = true;
    }
  }
  // Starts loading the slot of (key, ns) into the CPU cache.
  void Prefetch(const K& key, int64_t ns) const { slots_.prefetch(Ref{&key, ns}); }
  void Remove(const K& key, int64_t ns) {
    auto it = slots_.find(Ref{&key, ns});
    if constexpr (kWriteBack) {
      // Nothing to delete in the store: forget the value at once, so panes
      // that come and go leave no tombstones in the cache or in RocksDB.
      if (store_ != nullptr && (it == slots_.end() || it->second.flags.maybe_stored)) {
        Entry& entry = it != slots_.end() ? it->second : Insert(key, ns);
        entry.value = T{};  // what it holds (a vector's elements) is not needed
        entry.flags.present = false;
        entry.flags.dirty = true;
        return;
      }
    }
    if (it != slots_.end()) slots_.erase(it);
  }

  void Export(std::vector<KvPair>& out, Timestamp) const override {
    KeyScope scope;
    for (const auto& [slot, entry] : slots_) {
      if (!Present(entry)) continue;
      Compose(slot.key, slot.ns, scope);
      out.emplace_back(scope.composite, EncodeValue(entry.value));
    }
  }
  absl::Status Import(std::string_view key, std::string_view value) override {
    const auto bad = [&](const char* what) {
      return absl::DataLossError("state '" + name_ + "': undecodable " + what);
    };
    if (key.size() < 2) return bad("key");
    std::string_view rest = key.substr(2);
    uint64_t len = 0;
    Slot slot{};
    if (!ReadVarint(rest, len) || rest.size() < len) return bad("key");
    std::string_view key_bytes = rest.substr(0, len);
    rest.remove_prefix(len);
    if (!Codec<K>::Decode(key_bytes, slot.key) || !key_bytes.empty()) return bad("key");
    if (!ReadVarint(rest, len) || rest.size() != len) return bad("namespace");
    if (!Codec<int64_t>::Decode(rest, slot.ns) || !rest.empty()) return bad("namespace");
    Entry entry;
    if (!DecodeValue(value, entry.value)) return bad("value");
    if constexpr (kWriteBack) entry.flags.present = true;
    slots_.insert_or_assign(std::move(slot), std::move(entry));
    return absl::OkStatus();
  }
  absl::Status WriteBack() override {
    if constexpr (kWriteBack) {
      if (store_ == nullptr) return absl::OkStatus();
      // Composite keys sort differently from typed ones: encode, then sort.
      std::vector<std::pair<InlineKey, typename Slots::value_type*>> dirty;
      KeyScope scope;
      for (auto& entry : slots_) {
        if (!entry.second.flags.dirty) continue;
        Compose(entry.first.key, entry.first.ns, scope);
        dirty.emplace_back(InlineKey(scope.composite), &entry);
      }
      std::sort(dirty.begin(), dirty.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [composite, slot] : dirty) {
        if (slot->second.flags.present) {
          store_->Put(store_table_, composite.view(), EncodeValue(slot->second.value));
        } else {
          store_->Delete(store_table_, composite.view());
        }
      }
      if (absl::Status status = store_->Commit(); !status.ok()) return status;
      for (auto& [composite, slot] : dirty) {
        Flags& flags = slot->second.flags;
        if (flags.present) {
          flags.dirty = false;
          flags.maybe_stored = true;
        } else {
          // The tombstone is stored: the slot is not needed any more (erasing
          // from an absl::flat_hash_map leaves pointers to other slots valid).
          slots_.erase(slots_.find(Ref{&slot->first.key, slot->first.ns}));
        }
      }
    }
    return absl::OkStatus();
  }
  size_t size() const override { return slots_.size(); }

 private:
  struct Slot {
    K key;
    int64_t ns;
    bool operator==(const Slot&) const = default;
  };
  struct Flags {
    // False: known absent (a miss found nothing in the store) or, when
    // dirty, removed (a tombstone to write back).
    bool present = false;
    bool dirty = false;
    // The store may hold a value for this slot, so removing it needs a
    // tombstone. False only when a read found nothing there and nothing was
    // written back since.
    bool maybe_stored = true;
  };
  struct NoFlags {};
  struct Entry {
    T value{};
    // Takes no room without write-back.
    [[no_unique_address]] std::conditional_t<kWriteBack, Flags, NoFlags> flags;
  };
  // A lookup key that does not copy K (a string key would allocate).
  struct Ref {
    const K* key;
    int64_t ns;
  };
  struct Hash {
    using is_transparent = void;
    static size_t Of(const K& key, int64_t ns) {
      return Mix64(KeyTraits<K>::Hash(key) ^ (static_cast<uint64_t>(ns) * 0x9e3779b97f4a7c15ULL));
    }
    size_t operator()(const Slot& s) const { return Of(s.key, s.ns); }
    size_t operator()(const Ref& r) const { return Of(*r.key, r.ns); }
  };
  struct Eq {
    using is_transparent = void;
    static bool Same(const K& a, int64_t a_ns, const K& b, int64_t b_ns) {
      return a_ns == b_ns && a == b;
    }
    bool operator()(const Slot& a, const Slot& b) const { return Same(a.key, a.ns, b.key, b.ns); }
    bool operator()(const Slot& a, const Ref& b) const { return Same(a.key, a.ns, *b.key, b.ns); }
    bool operator()(const Ref& a, const Slot& b) const { return Same(*a.key, a.ns, b.key, b.ns); }
  };
  using Slots = absl::flat_hash_map<Slot, Entry, Hash, Eq>;

  static bool Present(const Entry& entry) {
    if constexpr (kWriteBack) {
      return entry.flags.present;
    } else {
      return true;
    }
  }

  // The present entry of (key, ns), loading it from the store on a miss; null when absent.
  Entry* Find(const K& key, int64_t ns) {
    auto it = slots_.find(Ref{&key, ns});
    if (it != slots_.end()) return Present(it->second) ? &it->second : nullptr;
    if constexpr (kWriteBack) {
      if (store_ != nullptr) return Load(key, ns);
    }
    return nullptr;
  }
  // A miss with a store behind: reads (key, ns) and caches the result, so
  // that a Put after a miss knows the store holds nothing to delete later.
  ABSL_ATTRIBUTE_NOINLINE Entry* Load(const K& key, int64_t ns) {
    Compose(key, ns, load_scope_);
    absl::StatusOr<std::optional<std::string>> bytes =
        store_->Get(store_table_, load_scope_.composite);
    if (!bytes.ok()) StoreFailed(bytes.status());
    Entry& entry = Insert(key, ns);
    if (!*bytes) {
      entry.flags.maybe_stored = false;
      return nullptr;
    }
    if (!DecodeValue(**bytes, entry.value)) Corrupt("value");
    entry.flags.present = true;
    return &entry;
  }
  // The slot of (key, ns), inserted if new (with a store: absent, maybe
  // stored; a full cache first writes back and drops a quarter of its slots).
  Entry& Insert(const K& key, int64_t ns) {
    auto it = slots_.find(Ref{&key, ns});
    if (it != slots_.end()) return it->second;
    if constexpr (kWriteBack) {
      if (store_ != nullptr && slots_.size() >= max_entries_) EvictFrom(slots_);
    } else if (store_ != nullptr) {
      throw StateError("state '" + name_ + "': a table without write-back over a store");
    }
    return slots_.try_emplace(Slot{key, ns}).first->second;
  }

  // Scopes `scope` to (key, ns) as a keyed operator and ScopedNamespace do,
  // so the composite key is the one ValueTable and the snapshots use.
  void Compose(const K& key, int64_t ns, KeyScope& scope) const {
    if (max_parallelism_ <= 0) throw StateError("state '" + name_ + "': no max parallelism");
    std::string key_bytes;
    Codec<K>::Encode(key, key_bytes);
    scope.SetKey(KeyGroupOf(key, max_parallelism_), key_bytes);
    scope.SetNamespaceTo(ns);
  }
  static std::string EncodeValue(const T& value) {
    std::string bytes;
    AppendExpiry(bytes, kMaxTimestamp);
    Codec<T>::Encode(value, bytes);
    return bytes;
  }
  // Ignores the expiry: the table has no TTL.
  static bool DecodeValue(std::string_view bytes, T& value) {
    Timestamp expire_at;
    return ReadExpiry(bytes, expire_at) && Codec<T>::Decode(bytes, value);
  }

  Slots slots_;
  int max_parallelism_ = 0;
  KeyScope load_scope_;  // scratch of Load
};

// ListState<T> storage: the list of a key is one value.
template <class T>
class ListTable final : public StateTable {
 public:
  using StateTable::StateTable;
  std::type_index type() const override { return typeid(ListTable<T>); }

  // The list of the scope's key (empty if none); marks it dirty when `for_write`.
  std::vector<T>* Get(const KeyScope& scope, bool for_write) {
    auto it = slots_.find(scope.composite);
    if (it == slots_.end()) {
      std::optional<std::string> bytes;
      if (store_ != nullptr) {
        absl::StatusOr<std::optional<std::string>> read =
            store_->Get(store_table_, scope.composite);
        if (!read.ok()) StoreFailed(read.status());
        bytes = *std::move(read);
      }
      if (!bytes && !for_write) return nullptr;
      Slot& slot = Insert(scope.composite);
      if (bytes && !Decode(*bytes, slot)) Corrupt("list");
      it = slots_.find(scope.composite);
    }
    Slot& slot = it->second;
    if (slot.expire_at <= scope.now) {
      slot.items.clear();
      slot.expire_at = kMaxTimestamp;
      slot.dirty = true;
    }
    if (for_write) {
      slot.dirty = true;
      slot.expire_at = ExpiryFrom(scope.now);
    }
    return &slot.items;
  }

  void Export(std::vector<KvPair>& out, Timestamp now) const override {
    for (const auto& [key, slot] : slots_) {
      if (slot.items.empty() || slot.expire_at <= now) continue;
      out.emplace_back(key, Encode(slot));
    }
  }
  absl::Status Import(std::string_view key, std::string_view value) override {
    Slot slot;
    if (!Decode(value, slot)) return absl::DataLossError("state '" + name_ + "': undecodable list");
    slots_[std::string(key)] = std::move(slot);
    return absl::OkStatus();
  }
  absl::Status WriteBack() override {
    if (store_ == nullptr) return absl::OkStatus();
    const auto dirty = DirtyInKeyOrder(slots_);
    for (auto* entry : dirty) {
      const std::string& key = entry->first;
      const Slot& slot = entry->second;
      if (slot.items.empty()) {
        store_->Delete(store_table_, key);
      } else {
        store_->Put(store_table_, key, Encode(slot));
      }
    }
    if (absl::Status status = store_->Commit(); !status.ok()) return status;
    for (auto* entry : dirty) entry->second.dirty = false;
    return absl::OkStatus();
  }
  size_t size() const override { return slots_.size(); }

 private:
  struct Slot {
    std::vector<T> items;
    Timestamp expire_at = kMaxTimestamp;
    bool dirty = false;
  };
  static std::string Encode(const Slot& slot) {
    std::string value;
    AppendExpiry(value, slot.expire_at);
    Codec<std::vector<T>>::Encode(slot.items, value);
    return value;
  }
  static bool Decode(std::string_view bytes, Slot& slot) {
    return ReadExpiry(bytes, slot.expire_at) && Codec<std::vector<T>>::Decode(bytes, slot.items);
  }
  Slot& Insert(const std::string& composite) {
    if (store_ != nullptr && slots_.size() >= max_entries_ && !slots_.contains(composite)) {
      EvictFrom(slots_);
    }
    return slots_[composite];
  }

  absl::flat_hash_map<std::string, Slot> slots_;
};

// MapState<UK, UV> storage: one entry per (composite, user key), stored as
// composite + encoded user key. A key's whole map is cached together.
template <class UK, class UV>
class MapTable final : public StateTable {
 public:
  using StateTable::StateTable;
  std::type_index type() const override { return typeid(MapTable<UK, UV>); }

  struct Entry {
    std::optional<UV> value;  // nullopt: deleted (until written back)
    Timestamp expire_at = kMaxTimestamp;
    bool dirty = false;
    // The store holds this entry (loaded from it, or written back): removing
    // it needs a tombstone until the next write-back. Entries the store never
    // saw are erased at once, so remove-heavy maps (window panes) stay small.
    bool stored = false;
  };
  // Encoded user key -> entry; byte order = user key order for built-in codecs.
  using Entries = std::map<std::string, Entry>;

  // The map of the scope's key; null if it has none and !for_write.
  Entries* Get(const KeyScope& scope, bool for_write) {
    auto it = slots_.find(scope.composite);
    if (it == slots_.end()) {
      Entries loaded;
      if (store_ != nullptr) {
        absl::Status status = store_->Scan(
            store_table_, scope.composite, [&](std::string_view key, std::string_view value) {
              Entry entry;
              entry.value.emplace();
              entry.stored = true;
              std::string_view bytes = value;
              if (!ReadExpiry(bytes, entry.expire_at) || !Codec<UV>::Decode(bytes, *entry.value)) {
                Corrupt("map entry");
              }
              if (entry.expire_at != kMaxTimestamp) may_expire_ = true;
              loaded.emplace(std::string(key.substr(scope.composite.size())), std::move(entry));
            });
        if (!status.ok()) StoreFailed(status);
      }
      if (loaded.empty() && !for_write) return nullptr;
      if (store_ != nullptr && slots_.size() >= max_entries_) EvictFrom(slots_);
      it = slots_.emplace(scope.composite, std::move(loaded)).first;
    }
    // Expired entries read as deleted.
    if (may_expire_) {
      for (auto& [user_key, entry] : it->second) {
        if (entry.value && entry.expire_at <= scope.now) {
          entry.value.reset();
          entry.dirty = true;
        }
      }
    }
    return &it->second;
  }

  Timestamp Expiry(Timestamp now) const { return ExpiryFrom(now); }

  void Export(std::vector<KvPair>& out, Timestamp now) const override {
    for (const auto& [key, entries] : slots_) {
      for (const auto& [user_key, entry] : entries) {
        if (!entry.value || entry.expire_at <= now) continue;
        std::string value;
        AppendExpiry(value, entry.expire_at);
        Codec<UV>::Encode(*entry.value, value);
        out.emplace_back(key + user_key, std::move(value));
      }
    }
  }
  absl::Status Import(std::string_view key, std::string_view value) override {
    // The composite is [kg 2B][varint][key][varint][ns]; the rest is the user key.
    std::string_view rest = key.substr(2);
    uint64_t len;
    if (!ReadVarint(rest, len) || rest.size() < len)
      return absl::DataLossError("state '" + name_ + "': bad key");
    rest.remove_prefix(len);
    if (!ReadVarint(rest, len) || rest.size() < len)
      return absl::DataLossError("state '" + name_ + "': bad key");
    rest.remove_prefix(len);
    const size_t composite_size = key.size() - rest.size();
    Entry entry;
    entry.value.emplace();
    std::string_view bytes = value;
    if (!ReadExpiry(bytes, entry.expire_at) || !Codec<UV>::Decode(bytes, *entry.value)) {
      return absl::DataLossError("state '" + name_ + "': undecodable map entry");
    }
    if (entry.expire_at != kMaxTimestamp) may_expire_ = true;
    slots_[std::string(key.substr(0, composite_size))][std::string(rest)] = std::move(entry);
    return absl::OkStatus();
  }
  absl::Status WriteBack() override {
    if (store_ == nullptr) return absl::OkStatus();
    for (const auto& [key, entries] : slots_) {
      for (const auto& [user_key, entry] : entries) {
        if (!entry.dirty) continue;
        const std::string full = key + user_key;
        if (entry.value) {
          std::string value;
          AppendExpiry(value, entry.expire_at);
          Codec<UV>::Encode(*entry.value, value);
          store_->Put(store_table_, full, value);
        } else {
          store_->Delete(store_table_, full);
        }
      }
    }
    if (absl::Status status = store_->Commit(); !status.ok()) return status;
    for (auto& [key, entries] : slots_) {
      for (auto it = entries.begin(); it != entries.end();) {
        Entry& entry = it->second;
        if (entry.dirty && entry.value) entry.stored = true;
        entry.dirty = false;
        // A deletion is stored: the tombstone is not needed any more.
        it = entry.value ? std::next(it) : entries.erase(it);
      }
    }
    return absl::OkStatus();
  }
  size_t size() const override { return slots_.size(); }

 private:
  absl::flat_hash_map<std::string, Entries> slots_;
  // False while every entry's expire_at is kMaxTimestamp (no TTL, and none
  // restored with an expiry): Get then skips its walk over the key's entries
  // looking for expired ones, a cache miss per entry on every access.
  bool may_expire_ = ttl_ms_ > 0;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_STATE_TABLES_H_
