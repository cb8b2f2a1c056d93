// weir::Codec: round trips of every built-in codec, order preservation (the
// encoded bytes compare like the values: MapState iterates and RocksDB sorts
// by them), exact consumption (values decode one after another from one
// buffer) and rejection of malformed input.

#include "weir/codec.h"

#include <google/protobuf/timestamp.pb.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace weir::codec_test {
struct Visit {
  std::string page;
  std::optional<int32_t> seconds;
  double score = 0;
  std::vector<std::string> tags;
  bool operator==(const Visit&) const = default;
};
}  // namespace weir::codec_test

template <>
struct weir::Codec<weir::codec_test::Visit>
    : weir::MemberCodec<weir::codec_test::Visit, &weir::codec_test::Visit::page,
                        &weir::codec_test::Visit::seconds, &weir::codec_test::Visit::score,
                        &weir::codec_test::Visit::tags> {};

namespace weir {
namespace {

template <class T>
std::string Encode(const T& value) {
  std::string out;
  Codec<T>::Encode(value, out);
  return out;
}

// Decodes a T that must use up all of `bytes`.
template <class T>
std::optional<T> DecodeAll(std::string_view bytes) {
  T value{};
  if (!Codec<T>::Decode(bytes, value) || !bytes.empty()) return std::nullopt;
  return value;
}

// -1, 0 or 1 as unsigned bytes compare (memcmp, which is what RocksDB's
// default comparator and std::map<std::string> do).
int CompareBytes(const std::string& a, const std::string& b) {
  const int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  if (c != 0) return c < 0 ? -1 : 1;
  return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

template <class T>
int CompareValues(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

// Every pair of `values` encodes to bytes that compare like the values.
template <class T>
void ExpectOrderPreserved(const std::vector<T>& values) {
  std::vector<std::string> encoded;
  for (const T& value : values) encoded.push_back(Encode(value));
  for (size_t lhs = 0; lhs < values.size(); ++lhs) {
    for (size_t rhs = 0; rhs < values.size(); ++rhs) {
      ASSERT_EQ(CompareBytes(encoded[lhs], encoded[rhs]), CompareValues(values[lhs], values[rhs]))
          << "values #" << lhs << " and #" << rhs << " of " << values.size();
    }
  }
}

template <class T>
void ExpectRoundTrip(const T& value) {
  const std::string bytes = Encode(value);
  std::optional<T> decoded = DecodeAll<T>(bytes);
  ASSERT_TRUE(decoded.has_value()) << "undecodable encoding of size " << bytes.size();
  EXPECT_TRUE(*decoded == value);
}

// Every proper prefix of a value's encoding is rejected (the codec never
// reads past its input and notices the missing bytes).
template <class T>
void ExpectTruncationRejected(const T& value) {
  const std::string bytes = Encode(value);
  for (size_t size = 0; size < bytes.size(); ++size) {
    T out{};
    std::string_view in(bytes.data(), size);
    EXPECT_FALSE(Codec<T>::Decode(in, out))
        << "accepted a prefix of " << size << " of " << bytes.size() << " bytes";
  }
}

// ---------------------------------------------------------------------------
// Integers.

template <class T>
class IntegerCodecTest : public ::testing::Test {};
using IntegerTypes = ::testing::Types<int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t,
                                      int64_t, uint64_t, char, signed char, unsigned char>;
TYPED_TEST_SUITE(IntegerCodecTest, IntegerTypes);

template <class T>
std::vector<T> SomeIntegers(uint64_t seed) {
  using L = std::numeric_limits<T>;
  std::vector<T> values = {L::min(),          static_cast<T>(L::min() + 1), static_cast<T>(0),
                           static_cast<T>(1), static_cast<T>(L::max() - 1), L::max()};
  if constexpr (std::is_signed_v<T>) values.push_back(static_cast<T>(-1));
  std::mt19937_64 rng(seed);
  for (int idx = 0; idx < 60; ++idx) values.push_back(static_cast<T>(rng()));
  return values;
}

TYPED_TEST(IntegerCodecTest, RoundTripsInFixedSize) {
  for (TypeParam value : SomeIntegers<TypeParam>(1)) {
    EXPECT_EQ(Encode(value).size(), sizeof(TypeParam));
    ExpectRoundTrip(value);
  }
}

TYPED_TEST(IntegerCodecTest, ByteOrderIsNumericOrder) {
  ExpectOrderPreserved(SomeIntegers<TypeParam>(2));
}

TYPED_TEST(IntegerCodecTest, TruncatedInputIsRejected) {
  ExpectTruncationRejected(std::numeric_limits<TypeParam>::max());
}

enum class Color : int16_t { kRed = -3, kGreen = 0, kBlue = 7 };
enum Plain : uint8_t { kA = 1, kB = 200 };

TEST(CodecTest, EnumsUseTheirUnderlyingType) {
  for (Color color : {Color::kRed, Color::kGreen, Color::kBlue}) {
    EXPECT_EQ(Encode(color).size(), sizeof(int16_t));
    ExpectRoundTrip(color);
  }
  ExpectOrderPreserved(std::vector<Color>{Color::kRed, Color::kGreen, Color::kBlue});
  ExpectRoundTrip(kB);
  ExpectOrderPreserved(std::vector<Plain>{kA, kB});
}

TEST(CodecTest, Bool) {
  ExpectRoundTrip(true);
  ExpectRoundTrip(false);
  ExpectOrderPreserved(std::vector<bool>{false, true});
  EXPECT_FALSE(DecodeAll<bool>(std::string(1, '\2')).has_value());
  EXPECT_FALSE(DecodeAll<bool>("").has_value());
}

// ---------------------------------------------------------------------------
// Floating point.

template <class T>
class FloatCodecTest : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(FloatCodecTest, FloatTypes);

template <class T>
std::vector<T> SomeFloats(uint64_t seed) {
  using L = std::numeric_limits<T>;
  std::vector<T> values = {
      -L::infinity(),  L::lowest(), T(-1e10), T(-1), T(-0.5), -L::denorm_min(), T(0),
      L::denorm_min(), L::min(),    T(0.5),   T(1),  T(1e10), L::max(),         L::infinity()};
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-1e6, 1e6);
  for (int idx = 0; idx < 60; ++idx) values.push_back(static_cast<T>(dist(rng)));
  return values;
}

TYPED_TEST(FloatCodecTest, RoundTripsBitExactly) {
  using L = std::numeric_limits<TypeParam>;
  for (TypeParam value : SomeFloats<TypeParam>(3)) {
    EXPECT_EQ(Encode(value).size(), sizeof(TypeParam));
    ExpectRoundTrip(value);
  }
  // -0.0 keeps its sign; NaN stays NaN.
  std::optional<TypeParam> zero = DecodeAll<TypeParam>(Encode(TypeParam(-0.0)));
  ASSERT_TRUE(zero.has_value());
  EXPECT_TRUE(std::signbit(*zero));
  std::optional<TypeParam> nan = DecodeAll<TypeParam>(Encode(L::quiet_NaN()));
  ASSERT_TRUE(nan.has_value());
  EXPECT_TRUE(std::isnan(*nan));
}

TYPED_TEST(FloatCodecTest, ByteOrderIsNumericOrderIncludingNegativesAndInfinities) {
  ExpectOrderPreserved(SomeFloats<TypeParam>(4));
  // -0.0 == 0.0 numerically; its encoding sorts just below +0.0's.
  EXPECT_LT(CompareBytes(Encode(TypeParam(-0.0)), Encode(TypeParam(0.0))), 0);
  EXPECT_LT(
      CompareBytes(Encode(-std::numeric_limits<TypeParam>::denorm_min()), Encode(TypeParam(-0.0))),
      0);
}

TYPED_TEST(FloatCodecTest, TruncatedInputIsRejected) { ExpectTruncationRejected(TypeParam(1.5)); }

// ---------------------------------------------------------------------------
// Strings.

std::vector<std::string> SomeStrings(uint64_t seed) {
  std::vector<std::string> values = {"",
                                     std::string(1, '\0'),
                                     std::string(2, '\0'),
                                     std::string("\0a", 2),
                                     std::string("a\0", 2),
                                     std::string("a\0b", 3),
                                     "a",
                                     "aa",
                                     "ab",
                                     "b",
                                     std::string(1, '\x01'),
                                     std::string(1, '\xff'),
                                     std::string("\xff\0", 2),
                                     std::string(127, 'x'),
                                     std::string(128, 'x'),
                                     std::string(300, 'x'),
                                     "y"};
  // Random strings over a small alphabet (so prefixes and shared heads are
  // common), with zero bytes, of lengths around the varint boundaries.
  std::mt19937_64 rng(seed);
  const std::string alphabet("\0\1ab\xfe\xff", 6);
  for (int idx = 0; idx < 80; ++idx) {
    const size_t size = std::vector<size_t>{0, 1, 2, 3, 5, 126, 127, 128, 129, 1000}[rng() % 10];
    std::string value;
    for (size_t pos = 0; pos < size; ++pos) value.push_back(alphabet[rng() % alphabet.size()]);
    values.push_back(std::move(value));
  }
  return values;
}

TEST(CodecTest, StringsRoundTripIncludingZeroBytes) {
  for (const std::string& value : SomeStrings(5)) ExpectRoundTrip(value);
}

// MapState<std::string, V> iterates in lexicographic order because of this.
TEST(CodecTest, StringByteOrderIsLexicographicOrder) { ExpectOrderPreserved(SomeStrings(6)); }

TEST(CodecTest, TruncatedStringsAreRejected) {
  ExpectTruncationRejected(std::string("abc"));
  ExpectTruncationRejected(std::string("a\0b\0", 4));
  ExpectTruncationRejected(std::string(200, 'z'));
}

TEST(CodecTest, ByteArrays) {
  const std::array<uint8_t, 4> value = {0, 1, 0xfe, 0xff};
  EXPECT_EQ(Encode(value).size(), 4u);
  ExpectRoundTrip(value);
  ExpectOrderPreserved(std::vector<std::array<uint8_t, 2>>{{0, 0}, {0, 1}, {1, 0}, {0xff, 0}});
  ExpectTruncationRejected(value);
}

// ---------------------------------------------------------------------------
// Composites.

TEST(CodecTest, OptionalRoundTripsAndSortsAbsentFirst) {
  ExpectRoundTrip(std::optional<int64_t>());
  ExpectRoundTrip(std::optional<int64_t>(-5));
  ExpectRoundTrip(std::optional<std::string>(""));
  ExpectRoundTrip(std::optional<std::optional<int32_t>>(std::optional<int32_t>()));
  ExpectOrderPreserved(std::vector<std::optional<int32_t>>{std::nullopt, -7, 0, 7});
  ExpectTruncationRejected(std::optional<int64_t>(1));
}

TEST(CodecTest, PairRoundTripsAndSortsByFirstThenSecond) {
  ExpectRoundTrip(std::pair<int64_t, std::string>(-1, "x"));
  ExpectRoundTrip(std::pair<std::string, double>("", -2.5));
  ExpectOrderPreserved(std::vector<std::pair<int32_t, int32_t>>{{-1, 5}, {-1, 6}, {0, -9}, {3, 0}});
  // Strings are self-delimiting, so a pair of strings sorts like the pair.
  ExpectOrderPreserved(std::vector<std::pair<std::string, std::string>>{
      {"", "z"}, {"a", ""}, {"a", "b"}, {"ab", ""}, {std::string("a\0", 2), "q"}, {"b", ""}});
  ExpectTruncationRejected(std::pair<int32_t, std::string>(1, "abc"));
}

TEST(CodecTest, VectorRoundTrips) {
  ExpectRoundTrip(std::vector<int32_t>());
  ExpectRoundTrip(std::vector<int32_t>{-1, 0, 1});
  ExpectRoundTrip(std::vector<std::string>{"", "a", std::string(300, 'q')});
  ExpectRoundTrip(
      std::vector<std::pair<int64_t, std::optional<std::string>>>{{1, std::nullopt}, {2, "two"}});
  std::vector<uint8_t> large(1000);
  for (size_t idx = 0; idx < large.size(); ++idx) large[idx] = static_cast<uint8_t>(idx * 7);
  ExpectRoundTrip(large);
  // std::vector<bool> has no bool& elements to decode into.
  ExpectRoundTrip(std::vector<bool>{true, false, false, true});
  ExpectTruncationRejected(std::vector<int16_t>{1, 2, 3});
  ExpectTruncationRejected(std::vector<std::string>{"ab", "cd"});
}

TEST(CodecTest, ProtobufMessages) {
  google::protobuf::Timestamp value;
  value.set_seconds(1'700'000'000);
  value.set_nanos(123);
  const std::string bytes = Encode(value);
  std::optional<google::protobuf::Timestamp> decoded =
      DecodeAll<google::protobuf::Timestamp>(bytes);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->seconds(), 1'700'000'000);
  EXPECT_EQ(decoded->nanos(), 123);
  ExpectTruncationRejected(value);
  // A length that claims more bytes than there are, and bytes that are not a message.
  EXPECT_FALSE(DecodeAll<google::protobuf::Timestamp>("\x05\x08").has_value());
  EXPECT_FALSE(DecodeAll<google::protobuf::Timestamp>(std::string("\x02\xff\xff", 3)).has_value());
}

// A user type with its own specialization, built from the built-in ones.
struct Point {
  double x = 0;
  double y = 0;
  bool operator==(const Point&) const = default;
};

}  // namespace

template <>
struct Codec<Point> {
  static void Encode(const Point& p, std::string& out) {
    Codec<double>::Encode(p.x, out);
    Codec<double>::Encode(p.y, out);
  }
  static bool Decode(std::string_view& in, Point& p) {
    return Codec<double>::Decode(in, p.x) && Codec<double>::Decode(in, p.y);
  }
};

namespace {

TEST(CodecTest, UserSpecializationsComposeWithBuiltIns) {
  static_assert(kHasCodec<Point>);
  static_assert(kHasCodec<std::vector<std::optional<Point>>>);
  ExpectRoundTrip(Point{-1.5, 2});
  ExpectRoundTrip(std::vector<std::optional<Point>>{Point{1, 2}, std::nullopt, Point{}});
}

// Types without a codec are detected (the state API turns this into a
// static_assert with the WEIR_REQUIRE_CODEC message).
struct NoCodec {};
static_assert(!kHasCodec<NoCodec>);
static_assert(!kHasCodec<std::vector<NoCodec>>);
static_assert(!kHasCodec<std::optional<NoCodec>>);
static_assert(!kHasCodec<std::pair<int, NoCodec>>);

// ---------------------------------------------------------------------------
// Several values in one buffer, and malformed input.

TEST(CodecTest, ValuesDecodeOneAfterAnotherFromOneBuffer) {
  std::string bytes;
  Codec<int32_t>::Encode(-7, bytes);
  Codec<std::string>::Encode(std::string("a\0b", 3), bytes);
  Codec<double>::Encode(2.5, bytes);
  Codec<std::vector<int64_t>>::Encode({1, 2}, bytes);
  Codec<std::optional<std::string>>::Encode(std::nullopt, bytes);
  Codec<uint8_t>::Encode(9, bytes);

  std::string_view in(bytes);
  int32_t i = 0;
  std::string s;
  double d = 0;
  std::vector<int64_t> v;
  std::optional<std::string> o = "set";
  uint8_t u = 0;
  ASSERT_TRUE(Codec<int32_t>::Decode(in, i));
  ASSERT_TRUE(Codec<std::string>::Decode(in, s));
  ASSERT_TRUE(Codec<double>::Decode(in, d));
  ASSERT_TRUE(Codec<std::vector<int64_t>>::Decode(in, v));
  ASSERT_TRUE(Codec<std::optional<std::string>>::Decode(in, o));
  ASSERT_TRUE(Codec<uint8_t>::Decode(in, u));
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(i, -7);
  EXPECT_EQ(s, std::string("a\0b", 3));
  EXPECT_EQ(d, 2.5);
  EXPECT_EQ(v, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(o, std::nullopt);
  EXPECT_EQ(u, 9);
}

TEST(CodecTest, MalformedInputIsRejected) {
  // An optional's presence byte is 0 or 1.
  EXPECT_FALSE(DecodeAll<std::optional<int8_t>>(std::string(1, '\x02')).has_value());
  EXPECT_FALSE(DecodeAll<std::optional<int8_t>>(std::string("\xff\x80", 2)).has_value());
  // A vector claiming more elements than there are bytes; a varint that never ends.
  EXPECT_FALSE(DecodeAll<std::vector<int32_t>>("\x7f").has_value());
  EXPECT_FALSE(DecodeAll<std::vector<int32_t>>(std::string(11, '\xff')).has_value());
  EXPECT_FALSE(DecodeAll<std::vector<std::string>>(std::string(12, '\x80')).has_value());
  // Strings: no terminator, or a zero byte followed by something that is
  // neither an escaped zero nor the terminator.
  EXPECT_FALSE(DecodeAll<std::string>("abc").has_value());
  EXPECT_FALSE(DecodeAll<std::string>(std::string("ab\0", 3)).has_value());
  EXPECT_FALSE(DecodeAll<std::string>(std::string("ab\0\x07", 4)).has_value());
  // A pair whose second half is missing.
  EXPECT_FALSE((DecodeAll<std::pair<int32_t, int32_t>>(Encode(int32_t{1})).has_value()));
  // Nothing at all.
  EXPECT_FALSE(DecodeAll<int64_t>("").has_value());
  EXPECT_FALSE(DecodeAll<double>("").has_value());
  EXPECT_FALSE(DecodeAll<std::string>("").has_value());
}

TEST(CodecTest, MemberCodecRoundTripsAStructAndRejectsTruncation) {
  const codec_test::Visit visit{"intro \0 page", std::nullopt, -2.5, {"a", "", "c"}};
  static_assert(kHasCodec<codec_test::Visit>);
  const std::string bytes = Encode(visit);
  EXPECT_EQ(DecodeAll<codec_test::Visit>(bytes), visit);
  const codec_test::Visit other{"intro \0 page", 42, -2.5, {}};
  EXPECT_EQ(DecodeAll<codec_test::Visit>(Encode(other)), other);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(DecodeAll<codec_test::Visit>(bytes.substr(0, cut)).has_value()) << cut;
  }
}

}  // namespace
}  // namespace weir
