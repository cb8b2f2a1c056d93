// Keys and key groups: how KeyBy routes a record to the worker that owns its
// key.
//
// A key is hashed with a hash that is stable across processes and builds (not
// absl::Hash, which is seeded per process), reduced to one of
// `max_parallelism` key groups, and each worker owns a contiguous range of key
// groups. Keyed state is stored per key group, so a job can later be restored
// with a different parallelism.
//
// Built-in key types: integral types, enums, std::string, std::array<uint8_t,
// N> (e.g. UUIDs), and std::pair / std::tuple of key types. For your own type,
// specialize weir::KeyTraits:
//
//   template <>
//   struct weir::KeyTraits<UserId> {
//     static uint64_t Hash(const UserId& id) { return weir::KeyTraits<uint64_t>::Hash(id.value); }
//   };
//
// Keys must also be copyable, equality-comparable and hashable with
// absl::Hash (for in-memory maps).

#ifndef WEIR_KEY_H_
#define WEIR_KEY_H_

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace weir {

namespace internal {

// MurmurHash3's 64-bit finalizer: a bijective mix with full avalanche.
constexpr uint64_t Mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// A stable 64-bit hash of a byte string (8 bytes per step, then Mix64).
inline uint64_t HashBytes(std::string_view bytes) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (bytes.size() * 0x100000001b3ULL);
  size_t pos = 0;
  for (; pos + 8 <= bytes.size(); pos += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, bytes.data() + pos, 8);
    h = Mix64(h ^ chunk) * 0x100000001b3ULL;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + pos, bytes.size() - pos);
  return Mix64(h ^ tail);
}

constexpr uint64_t CombineHashes(uint64_t seed, uint64_t h) {
  return Mix64(seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

}  // namespace internal

// The stable hash of a key type. Specialize it for your own key types; the
// primary template is deliberately undefined.
template <class K, class Enable = void>
struct KeyTraits;

template <class K>
struct KeyTraits<K, std::enable_if_t<std::is_integral_v<K> || std::is_enum_v<K>>> {
  static uint64_t Hash(const K& key) {
    return internal::Mix64(static_cast<uint64_t>(key) ^ 0x2545f4914f6cdd1dULL);
  }
};

template <>
struct KeyTraits<std::string> {
  static uint64_t Hash(const std::string& key) { return internal::HashBytes(key); }
};

template <size_t N>
struct KeyTraits<std::array<uint8_t, N>> {
  static uint64_t Hash(const std::array<uint8_t, N>& key) {
    return internal::HashBytes(
        std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  }
};

template <class A, class B>
struct KeyTraits<std::pair<A, B>> {
  static uint64_t Hash(const std::pair<A, B>& key) {
    return internal::CombineHashes(KeyTraits<A>::Hash(key.first), KeyTraits<B>::Hash(key.second));
  }
};

template <class... Ts>
struct KeyTraits<std::tuple<Ts...>> {
  static uint64_t Hash(const std::tuple<Ts...>& key) {
    uint64_t h = 0x51ed270b27f4a3c5ULL;
    std::apply(
        [&h](const Ts&... parts) {
          ((h = internal::CombineHashes(h, KeyTraits<Ts>::Hash(parts))), ...);
        },
        key);
    return h;
  }
};

// True when weir knows how to hash K.
template <class K, class = void>
inline constexpr bool kHasKeyTraits = false;
template <class K>
inline constexpr bool
    kHasKeyTraits<K, std::void_t<decltype(KeyTraits<K>::Hash(std::declval<const K&>()))>> = true;

namespace internal {
// x > 0 is a power of two. (Not std::has_single_bit: without -mpopcnt that is
// a call into libgcc.)
constexpr bool IsPowerOfTwo(uint64_t x) { return (x & (x - 1)) == 0; }
}  // namespace internal

// The key group of a key hash: in [0, max_parallelism).
//
// Both functions run once per record on every KeyBy. With a max_parallelism
// that is a power of two (the default, 128) they take a mask and a shift
// instead of a 64-bit division each, with the same results.
inline int KeyGroupForHash(uint64_t hash, int max_parallelism) {
  const uint64_t mixed = internal::Mix64(hash);
  const auto groups = static_cast<uint64_t>(max_parallelism);
  if (internal::IsPowerOfTwo(groups)) return static_cast<int>(mixed & (groups - 1));
  return static_cast<int>(mixed % groups);
}

// The worker that owns a key group (Flink's assignment: contiguous ranges).
inline int WorkerForKeyGroup(int key_group, int max_parallelism, int parallelism) {
  const auto product = static_cast<uint64_t>(key_group) * static_cast<uint64_t>(parallelism);
  const auto groups = static_cast<uint64_t>(max_parallelism);
  if (internal::IsPowerOfTwo(groups)) return static_cast<int>(product >> std::countr_zero(groups));
  return static_cast<int>(product / groups);
}

// The key group of a key.
template <class K>
inline int KeyGroupOf(const K& key, int max_parallelism) {
  return KeyGroupForHash(KeyTraits<K>::Hash(key), max_parallelism);
}

namespace internal {

// WorkerForKeyGroup(KeyGroupForHash(hash, ...), ...) with what does not
// change from record to record (the mask and the shift) worked out once: a
// KeyBy's route runs it for every record.
class KeyGroupRouter {
 public:
  KeyGroupRouter(int max_parallelism, int parallelism)
      : groups_(static_cast<uint64_t>(max_parallelism)),
        parallelism_(static_cast<uint64_t>(parallelism)),
        power_of_two_(IsPowerOfTwo(groups_)),
        shift_(power_of_two_ ? std::countr_zero(groups_) : 0) {}

  int WorkerForHash(uint64_t hash) const {
    const uint64_t mixed = Mix64(hash);
    if (power_of_two_) return static_cast<int>(((mixed & (groups_ - 1)) * parallelism_) >> shift_);
    return static_cast<int>((mixed % groups_) * parallelism_ / groups_);
  }

 private:
  uint64_t groups_;
  uint64_t parallelism_;
  bool power_of_two_;
  int shift_;
};

}  // namespace internal

}  // namespace weir

#endif  // WEIR_KEY_H_
