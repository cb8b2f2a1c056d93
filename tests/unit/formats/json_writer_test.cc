#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "weir/formats/debezium.h"
#include "weir/formats/json.h"

namespace weir::json {
namespace {

TEST(JsonWriterTest, NestsContainersAndPlacesCommas) {
  std::string out;
  Writer json(out);
  json.BeginObject()
      .Member("id", int64_t{42})
      .Key("tags")
      .BeginArray()
      .String("a")
      .BeginObject()
      .EndObject()
      .BeginArray()
      .EndArray()
      .Int(-1)
      .EndArray()
      .Member("ok", true)
      .Member("pct", std::optional<double>())
      .Member("n", std::optional<int32_t>(7))
      .Key("raw")
      .Raw(R"({"a":[1,2]})")
      .EndObject();
  EXPECT_EQ(out, R"({"id":42,"tags":["a",{},[],-1],"ok":true,"pct":null,"n":7,"raw":{"a":[1,2]}})");
}

// A name given as a literal (json::Name, checked when compiled) and the
// same name given at run time (checked and escaped when written) give the
// same text: first and later members, nested objects, optionals, short
// and long names.
TEST(JsonWriterTest, LiteralNamesAreWrittenAsRuntimeNames) {
  const std::string long_name(37, 'n');
  std::string literal;
  Writer(literal)
      .BeginObject()
      .Member("id", int64_t{42})
      .Member("", "empty name")
      .Key("nested")
      .BeginObject()
      .Member("a", 1)
      .Member("pct", std::optional<double>())
      .EndObject()
      .Member("thirty_six_characters_name_12345678", true)
      .Member("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn", std::optional<int32_t>(7))
      .Key("x")
      .Raw("[]")
      .EndObject();
  std::string runtime;
  Writer(runtime)
      .BeginObject()
      .Member(std::string("id"), int64_t{42})
      .Member(std::string_view(""), "empty name")
      .Key(std::string("nested"))
      .BeginObject()
      .Member(std::string("a"), 1)
      .Member(std::string("pct"), std::optional<double>())
      .EndObject()
      .Member(std::string("thirty_six_characters_name_12345678"), true)
      .Member(long_name, std::optional<int32_t>(7))
      .Key(std::string_view("x"))
      .Raw("[]")
      .EndObject();
  EXPECT_EQ(literal, runtime);
  EXPECT_EQ(literal, R"({"id":42,"":"empty name","nested":{"a":1,"pct":null},)"
                     R"("thirty_six_characters_name_12345678":true,")" +
                         long_name + R"(":7,"x":[]})");

  static_assert(Name("slug").text() == "slug");
  // A name that needs escaping is escaped when given at run time (as a
  // literal it does not compile: json_name_needs_escaping.cc).
  std::string escaped;
  Writer(escaped).BeginObject().Member(std::string_view("a\"b"), 1).EndObject();
  EXPECT_EQ(escaped, R"({"a\"b":1})");
}

TEST(JsonWriterTest, EscapesStrings) {
  std::string out;
  AppendString(std::string("q\"b\\s/\n\r\t\b\f\x01\x1f\xc3\xa9", 15), out);
  EXPECT_EQ(out, "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0001\\u001f\xc3\xa9\"");
}

// Escapes one byte at a time, the obvious way: what AppendString (which
// skips 8 clean bytes at a time) must produce.
std::string ReferenceEscape(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\b') {
      out += "\\b";
    } else if (c == '\f') {
      out += "\\f";
    } else if (c < 0x20) {
      out += {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

TEST(JsonWriterTest, EscapesEveryPositionOfLongStrings) {
  // Each special byte (and bytes around the thresholds, and UTF-8) at every
  // position of strings of 0 to 40 bytes, alone and in pairs.
  const std::string specials = std::string("\"\\\n\x01\x1f\x00", 6) + " !#[]\x7f\x80\xc3\xff";
  for (size_t length = 0; length <= 40; ++length) {
    for (size_t at = 0; at < length; ++at) {
      for (const char special : specials) {
        std::string value(length, 'a');
        value[at] = special;
        value[length - 1 - at] = special;
        std::string out;
        AppendString(value, out);
        ASSERT_EQ(out, ReferenceEscape(value)) << "length " << length << " at " << at;
      }
    }
    std::string clean(length, 'x');
    std::string out;
    AppendString(clean, out);
    EXPECT_EQ(out, "\"" + clean + "\"");
  }
}

TEST(JsonWriterTest, EscapesAnyTwoBytesOfStringsAtTheReadWidthsEdges) {
  // Two different bytes to escape at any two positions, in strings whose
  // lengths straddle the widths AppendString reads at once (4, 8, 16 bytes,
  // with overlapping halves or blocks), appended after text already there.
  const std::string specials = std::string("\"\\\x1f", 3);
  for (const size_t length : {3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33}) {
    for (size_t first = 0; first < length; ++first) {
      for (size_t second = first + 1; second < length; ++second) {
        for (const char a : specials) {
          for (const char b : specials) {
            std::string value(length, 'a');
            value[first] = a;
            value[second] = b;
            std::string out = "[1,";
            AppendString(value, out);
            ASSERT_EQ(out, "[1," + ReferenceEscape(value))
                << "length " << length << " at " << first << " and " << second;
          }
        }
      }
    }
  }
}

TEST(JsonWriterTest, DoublesReadBackExactlyAndNonFiniteIsNull) {
  for (double value : {0.1, 1.0 / 3.0, 1e300, -2.5e-300, 600.0}) {
    std::string out;
    AppendDouble(value, out);
    EXPECT_EQ(std::stod(out), value) << out;
  }
  std::string out;
  AppendDouble(std::numeric_limits<double>::quiet_NaN(), out);
  out += ",";
  AppendDouble(-std::numeric_limits<double>::infinity(), out);
  EXPECT_EQ(out, "null,null");
}

std::string ToChars(double value) {
  char buffer[32];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string Appended(double value) {
  std::string out = "x";  // appends, after what is there
  AppendDouble(value, out);
  return out.substr(1);
}

// Short decimals (up to 3 decimals, below 10^12) take a path of their own;
// every double must still come out exactly as std::to_chars writes it: the
// same shortest digits, fixed or scientific alike.
TEST(JsonWriterTest, DoublesAreWrittenAsToCharsWritesThem) {
  std::vector<double> values = {0.001,
                                0.0015,
                                0.01,
                                0.1,
                                0.5,
                                1,
                                9.999,
                                10,
                                100,
                                1000,
                                10000,
                                100000,
                                123000,
                                1200000,
                                1e11,
                                1e11 + 1,
                                999999999999.999,
                                1e12,
                                1e12 + 0.5,
                                0.1 + 0.2,
                                1.0 / 3.0,
                                2.675,
                                5e-324,
                                1e300,
                                4503599627370496.5,
                                9007199254740993.0,
                                0.0,
                                -0.0};
  std::mt19937_64 rng(19);
  for (int round = 0; round < 400'000; ++round) {
    // m / 10^k for m of 1 to 15 digits, k of 0 to 4.
    const auto digits = static_cast<int>(rng() % 15) + 1;
    const uint64_t limit = static_cast<uint64_t>(std::pow(10.0, digits));
    const auto m = static_cast<double>(rng() % limit);
    const auto k = static_cast<int>(rng() % 5);
    values.push_back(m / std::pow(10.0, k));
    // m with trailing zeros, as an integer.
    values.push_back(static_cast<double>(rng() % 1000) *
                     std::pow(10.0, static_cast<int>(rng() % 11)));
    // Any bit pattern, and ratios such as a percentage.
    double any = 0;
    const uint64_t bits = rng();
    std::memcpy(&any, &bits, sizeof(any));
    if (std::isfinite(any)) values.push_back(any);
    values.push_back(static_cast<double>(rng() % 600'000) / 1000.0 /
                     static_cast<double>(rng() % 7200 + 1) * 100.0);
  }
  for (const double value : values) {
    for (const double signed_value : {value, -value}) {
      ASSERT_EQ(Appended(signed_value), ToChars(signed_value)) << signed_value;
    }
  }
}

TEST(JsonWriterTest, IntegersAreWrittenAsToCharsWritesThem) {
  std::vector<int64_t> values = {0,
                                 1,
                                 9,
                                 10,
                                 99,
                                 100,
                                 101,
                                 999,
                                 1000,
                                 12345678,
                                 1234567890123,
                                 std::numeric_limits<int64_t>::max(),
                                 std::numeric_limits<int64_t>::min()};
  for (int64_t power = 1; power <= 1'000'000'000'000'000'000; power *= 10) {
    values.push_back(power - 1);
    values.push_back(power);
    values.push_back(power + 1);
  }
  std::mt19937_64 rng(7);
  for (int round = 0; round < 100'000; ++round) {
    values.push_back(static_cast<int64_t>(rng() >> (rng() % 64)));
  }
  for (const int64_t value : values) {
    for (const int64_t signed_value :
         {value, value == std::numeric_limits<int64_t>::min() ? value : -value}) {
      std::string out = "x";
      AppendInt(signed_value, out);
      ASSERT_EQ(out, "x" + std::to_string(signed_value));
    }
    const auto unsigned_value = static_cast<uint64_t>(value);
    std::string out = "x";
    AppendUint(unsigned_value, out);
    ASSERT_EQ(out, "x" + std::to_string(unsigned_value));
  }
}

TEST(JsonWriterTest, IntegerExtremes) {
  std::string out;
  Writer json(out);
  json.BeginArray()
      .Int(std::numeric_limits<int64_t>::min())
      .Uint(std::numeric_limits<uint64_t>::max())
      .EndArray();
  EXPECT_EQ(out, "[-9223372036854775808,18446744073709551615]");
}

// What the writer produces, weir's own Debezium decoder reads back.
struct Row {
  int64_t id = 0;
  std::string text;
  std::optional<double> score;
  friend bool operator==(const Row&, const Row&) = default;
};

TEST(JsonWriterTest, RoundTripsThroughTheDebeziumDecoder) {
  const Row row{-7, std::string("tab\there \"quoted\" \x02 \xe2\x82\xac", 23), 0.1};
  std::string out;
  Writer json(out);
  json.BeginObject().Member("op", "c").Key("after").BeginObject();
  json.Member("id", row.id).Member("text", row.text).Member("score", row.score);
  json.EndObject().EndObject();
  auto decoder = debezium::Decoder<Row>::Create(debezium::Fields<Row>()
                                                    .Required("id", &Row::id)
                                                    .Required("text", &Row::text)
                                                    .Optional("score", &Row::score));
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  auto change = decoder->Decode(out);
  ASSERT_TRUE(change.ok()) << change.status() << " in " << out;
  ASSERT_TRUE(change->after.has_value());
  EXPECT_EQ(*change->after, row);
}

}  // namespace
}  // namespace weir::json
