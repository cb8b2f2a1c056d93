// Codec<T>: how values (and keys) are turned into bytes for state and
// checkpoints.
//
// Built in: integral types, bool, enums, float and double (order-preserving
// big-endian encodings, so integer keys sort numerically in RocksDB),
// std::string (order-preserving too: strings sort lexicographically),
// std::optional<T>, std::pair<A, B>, std::vector<T>,
// std::array<uint8_t, N>, and protobuf messages (any type with
// SerializeToString and ParseFromArray). For anything else, specialize:
//
//   template <>
//   struct weir::Codec<Point> {
//     static void Encode(const Point& p, std::string& out) {
//       weir::Codec<double>::Encode(p.x, out);
//       weir::Codec<double>::Encode(p.y, out);
//     }
//     static bool Decode(std::string_view& in, Point& p) {
//       return weir::Codec<double>::Decode(in, p.x) && weir::Codec<double>::Decode(in, p.y);
//     }
//   };
//
// or, for a struct, list its members (see MemberCodec below):
//
//   template <>
//   struct weir::Codec<Point> : weir::MemberCodec<Point, &Point::x, &Point::y> {};
//
// Encode appends to `out`; Decode consumes its bytes from the front of `in`
// and returns false on malformed input.

#ifndef WEIR_CODEC_H_
#define WEIR_CODEC_H_

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace weir {

template <class T, class Enable = void>
struct Codec;

namespace internal {

inline void AppendVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

inline bool ReadVarint(std::string_view& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

template <class U>
void AppendBigEndian(std::string& out, U value) {
  static_assert(std::is_unsigned_v<U>);
  char bytes[sizeof(U)];
  for (size_t idx = 0; idx < sizeof(U); ++idx) {
    bytes[idx] = static_cast<char>(value >> (8 * (sizeof(U) - 1 - idx)));
  }
  out.append(bytes, sizeof(U));
}

template <class U>
bool ReadBigEndian(std::string_view& in, U& value) {
  static_assert(std::is_unsigned_v<U>);
  if (in.size() < sizeof(U)) return false;
  value = 0;
  for (size_t idx = 0; idx < sizeof(U); ++idx) value = (value << 8) | static_cast<uint8_t>(in[idx]);
  in.remove_prefix(sizeof(U));
  return true;
}

template <class T, class = void>
struct IsProtobufMessage : std::false_type {};
template <class T>
struct IsProtobufMessage<
    T,
    std::void_t<decltype(std::declval<const T&>().SerializeToString(std::declval<std::string*>())),
                decltype(std::declval<T&>().ParseFromArray(std::declval<const void*>(), 0))>>
    : std::true_type {};

}  // namespace internal

// True when Codec<T> exists.
template <class T, class = void>
inline constexpr bool kHasCodec = false;
template <class T>
inline constexpr bool kHasCodec<T, std::void_t<decltype(Codec<T>::Encode(
                                       std::declval<const T&>(), std::declval<std::string&>()))>> =
    true;

// Integers (and enums): big-endian, sign bit flipped, so byte order = numeric order.
template <class T>
struct Codec<
    T, std::enable_if_t<(std::is_integral_v<T> && !std::is_same_v<T, bool>) || std::is_enum_v<T>>> {
  using Raw =
      std::conditional_t<std::is_enum_v<T>, std::underlying_type<T>, std::type_identity<T>>::type;
  using U = std::make_unsigned_t<Raw>;
  static constexpr U kFlip = std::is_signed_v<Raw> ? U{1} << (sizeof(U) * 8 - 1) : U{0};
  static void Encode(const T& value, std::string& out) {
    internal::AppendBigEndian<U>(out, static_cast<U>(static_cast<Raw>(value)) ^ kFlip);
  }
  static bool Decode(std::string_view& in, T& value) {
    U raw;
    if (!internal::ReadBigEndian<U>(in, raw)) return false;
    value = static_cast<T>(static_cast<Raw>(raw ^ kFlip));
    return true;
  }
};

template <>
struct Codec<bool> {
  static void Encode(const bool& value, std::string& out) { out.push_back(value ? 1 : 0); }
  static bool Decode(std::string_view& in, bool& value) {
    if (in.empty() || static_cast<uint8_t>(in[0]) > 1) return false;
    value = in[0] == 1;
    in.remove_prefix(1);
    return true;
  }
};

// IEEE floating point, order-preserving (negative numbers sort below positive ones).
template <class T>
struct Codec<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  using U = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  static constexpr U kSign = U{1} << (sizeof(U) * 8 - 1);
  static void Encode(const T& value, std::string& out) {
    U bits = std::bit_cast<U>(value);
    bits = (bits & kSign) ? ~bits : bits | kSign;
    internal::AppendBigEndian<U>(out, bits);
  }
  static bool Decode(std::string_view& in, T& value) {
    U bits;
    if (!internal::ReadBigEndian<U>(in, bits)) return false;
    bits = (bits & kSign) ? bits & ~kSign : ~bits;
    value = std::bit_cast<T>(bits);
    return true;
  }
};

// Order-preserving, self-delimiting bytes: each zero byte becomes 00 FF and
// the string ends with 00 01, so encodings compare like the strings
// (lexicographically, as MapState promises) also inside pairs. (A length
// prefix would sort by length first.)
template <>
struct Codec<std::string> {
  static void Encode(const std::string& value, std::string& out) {
    std::string_view rest = value;
    for (size_t zero = rest.find('\0'); zero != std::string_view::npos; zero = rest.find('\0')) {
      out.append(rest.data(), zero);
      out.append("\0\xff", 2);
      rest.remove_prefix(zero + 1);
    }
    out.append(rest);
    out.append("\0\x01", 2);
  }
  static bool Decode(std::string_view& in, std::string& value) {
    value.clear();
    std::string_view rest = in;
    for (size_t zero = rest.find('\0'); zero != std::string_view::npos; zero = rest.find('\0')) {
      if (zero + 1 == rest.size()) return false;
      value.append(rest.data(), zero);
      const char next = rest[zero + 1];
      rest.remove_prefix(zero + 2);
      if (next == '\x01') {
        in = rest;
        return true;
      }
      if (next != '\xff') return false;
      value.push_back('\0');
    }
    return false;  // no terminator
  }
};

template <size_t N>
struct Codec<std::array<uint8_t, N>> {
  static void Encode(const std::array<uint8_t, N>& value, std::string& out) {
    out.append(reinterpret_cast<const char*>(value.data()), N);
  }
  static bool Decode(std::string_view& in, std::array<uint8_t, N>& value) {
    if (in.size() < N) return false;
    std::memcpy(value.data(), in.data(), N);
    in.remove_prefix(N);
    return true;
  }
};

template <class T>
struct Codec<std::optional<T>, std::enable_if_t<kHasCodec<T>>> {
  static void Encode(const std::optional<T>& value, std::string& out) {
    out.push_back(value.has_value() ? 1 : 0);
    if (value) Codec<T>::Encode(*value, out);
  }
  static bool Decode(std::string_view& in, std::optional<T>& value) {
    if (in.empty() || static_cast<uint8_t>(in[0]) > 1) return false;
    const bool present = in[0] == 1;
    in.remove_prefix(1);
    if (!present) {
      value.reset();
      return true;
    }
    value.emplace();
    return Codec<T>::Decode(in, *value);
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>, std::enable_if_t<kHasCodec<A> && kHasCodec<B>>> {
  static void Encode(const std::pair<A, B>& value, std::string& out) {
    Codec<A>::Encode(value.first, out);
    Codec<B>::Encode(value.second, out);
  }
  static bool Decode(std::string_view& in, std::pair<A, B>& value) {
    return Codec<A>::Decode(in, value.first) && Codec<B>::Decode(in, value.second);
  }
};

template <class T>
struct Codec<std::vector<T>, std::enable_if_t<kHasCodec<T>>> {
  static void Encode(const std::vector<T>& value, std::string& out) {
    internal::AppendVarint(out, value.size());
    for (const T& item : value) Codec<T>::Encode(item, out);
  }
  static bool Decode(std::string_view& in, std::vector<T>& value) {
    uint64_t size;
    if (!internal::ReadVarint(in, size) || size > in.size()) return false;
    value.clear();
    value.reserve(size);
    for (uint64_t idx = 0; idx < size; ++idx) {
      T item{};  // not value.back(): std::vector<bool> has no bool& to decode into
      if (!Codec<T>::Decode(in, item)) return false;
      value.push_back(std::move(item));
    }
    return true;
  }
};

// Protobuf messages (detected by their SerializeToString / ParseFromArray).
template <class T>
struct Codec<T, std::enable_if_t<internal::IsProtobufMessage<T>::value>> {
  static void Encode(const T& value, std::string& out) {
    std::string bytes;
    value.SerializeToString(&bytes);
    internal::AppendVarint(out, bytes.size());
    out.append(bytes);
  }
  static bool Decode(std::string_view& in, T& value) {
    uint64_t size;
    if (!internal::ReadVarint(in, size) || in.size() < size) return false;
    const bool ok = value.ParseFromArray(in.data(), static_cast<int>(size));
    in.remove_prefix(size);
    return ok;
  }
};

// A codec for a struct from the members to store, in order: each member is
// encoded with its own Codec. Derive the specialization from it:
//
//   template <>
//   struct weir::Codec<Point> : weir::MemberCodec<Point, &Point::x, &Point::y> {};
//
// Changing the member list changes the encoding: state and checkpoints
// written with the old list cannot be read with the new one.
template <class T, auto... Members>
struct MemberCodec {
  static_assert(sizeof...(Members) > 0, "weir::MemberCodec: list at least one member");
  static void Encode(const T& value, std::string& out) {
    (Codec<std::remove_cvref_t<decltype(value.*Members)>>::Encode(value.*Members, out), ...);
  }
  static bool Decode(std::string_view& in, T& value) {
    return (Codec<std::remove_cvref_t<decltype(value.*Members)>>::Decode(in, value.*Members) &&
            ...);
  }
};

// The message every state and checkpoint path shows when a Codec is missing.
#define WEIR_REQUIRE_CODEC(T)                                                                     \
  static_assert(::weir::kHasCodec<T>,                                                             \
                "weir: no weir::Codec<T> for this type. Built in: integers, bool, enums, float, " \
                "double, std::string, std::optional/pair/vector of those, protobuf messages. "    \
                "Otherwise specialize `template <> struct weir::Codec<T> { static void "          \
                "Encode(const T&, std::string& out); static bool Decode(std::string_view& in, "   \
                "T& out); };`")

}  // namespace weir

#endif  // WEIR_CODEC_H_
