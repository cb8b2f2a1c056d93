// Column values in PostgreSQL's text format converted for Fields<T>
// declarations: no server needed.

#include "lib/connectors/postgres/text_value.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/formats/debezium.h"

namespace weir::postgres::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Row {
  int64_t cents = 0;
  int32_t small = 0;
  double ratio = 0;
  std::string text;
  std::array<uint8_t, 16> uuid{};
  int64_t ts = 0;
  bool flag = false;
  std::vector<std::string> tags;
  std::vector<std::optional<int32_t>> numbers;
};

const debezium::internal::FieldSpec& Spec(const debezium::Fields<Row>& fields, size_t index) {
  return fields.specs()[index];
}

PgType Type(uint32_t oid) { return *BuiltinType(oid); }

TEST(TextValueTest, NumericExactIntoScaledIntegerStringAndDouble) {
  auto fields = debezium::Fields<Row>()
                    .Required("cents", &Row::cents, debezium::Decimal(2))
                    .Required("text", &Row::text, debezium::Decimal())
                    .Required("ratio", &Row::ratio, debezium::Decimal());
  Row row;
  ASSERT_TRUE(AssignText(Spec(fields, 0), Type(1700), "12.34", &row).ok());
  EXPECT_EQ(row.cents, 1234);
  EXPECT_THAT(AssignText(Spec(fields, 0), Type(1700), "1.005", &row).message(), HasSubstr("1.005"));
  ASSERT_TRUE(AssignText(Spec(fields, 1), Type(1700), "-0.50", &row).ok());
  EXPECT_EQ(row.text, "-0.50");
  ASSERT_TRUE(AssignText(Spec(fields, 2), Type(1700), "0.1", &row).ok());
  EXPECT_EQ(row.ratio, 0.1);
  // NaN and infinities: only a double receives them.
  absl::Status nan = AssignText(Spec(fields, 0), Type(1700), "NaN", &row);
  EXPECT_EQ(nan.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nan.message(), HasSubstr("not a finite decimal"));
  ASSERT_TRUE(AssignText(Spec(fields, 2), Type(1700), "-Infinity", &row).ok());
  EXPECT_TRUE(std::isinf(row.ratio) && row.ratio < 0);
}

TEST(TextValueTest, IntegersWithRangeChecks) {
  auto fields = debezium::Fields<Row>().Required("small", &Row::small);
  Row row;
  ASSERT_TRUE(AssignText(Spec(fields, 0), Type(23), "-2147483648", &row).ok());
  EXPECT_EQ(row.small, INT32_MIN);
  EXPECT_THAT(AssignText(Spec(fields, 0), Type(20), "2147483648", &row).message(),
              HasSubstr("out of range"));
  EXPECT_THAT(AssignText(Spec(fields, 0), Type(25), "1", &row).message(),
              HasSubstr("text column cannot go into a int32"));
}

TEST(TextValueTest, BoolFloatUuidBytea) {
  auto fields = debezium::Fields<Row>()
                    .Required("flag", &Row::flag)
                    .Required("ratio", &Row::ratio)
                    .Required("uuid", &Row::uuid, debezium::Uuid())
                    .Required("text", &Row::text);
  Row row;
  ASSERT_TRUE(AssignText(Spec(fields, 0), Type(16), "t", &row).ok());
  EXPECT_TRUE(row.flag);
  ASSERT_TRUE(AssignText(Spec(fields, 1), Type(701), "1.5e-10", &row).ok());
  EXPECT_EQ(row.ratio, 1.5e-10);
  ASSERT_TRUE(AssignText(Spec(fields, 1), Type(700), "NaN", &row).ok());
  EXPECT_TRUE(std::isnan(row.ratio));
  ASSERT_TRUE(
      AssignText(Spec(fields, 2), Type(2950), "6f1b0c2e-0000-4000-8000-00000000ffff", &row).ok());
  EXPECT_EQ(row.uuid[0], 0x6f);
  EXPECT_EQ(row.uuid[15], 0xff);
  // bytea as Kafka Connect's JsonConverter sends bytes: base64.
  ASSERT_TRUE(AssignText(Spec(fields, 3), Type(17), "\\x00ff10", &row).ok());
  EXPECT_EQ(row.text, "AP8Q");
}

TEST(TextValueTest, TimesInTheDeclaredUnit) {
  auto millis = debezium::Fields<Row>().Required("ts", &Row::ts, debezium::EpochMillis());
  auto micros = debezium::Fields<Row>().Required("ts", &Row::ts, debezium::EpochMicros());
  Row row;
  ASSERT_TRUE(AssignText(Spec(millis, 0), Type(1184), "2024-03-01 09:30:00.123456+00", &row).ok());
  EXPECT_EQ(row.ts, 1709285400123);
  ASSERT_TRUE(AssignText(Spec(micros, 0), Type(1184), "2024-03-01 10:30:00.5+01", &row).ok());
  EXPECT_EQ(row.ts, 1709285400500000);
  ASSERT_TRUE(AssignText(Spec(micros, 0), Type(1114), "1969-12-31 23:59:59.999999", &row).ok());
  EXPECT_EQ(row.ts, -1);
  ASSERT_TRUE(AssignText(Spec(millis, 0), Type(1114), "1969-12-31 23:59:59.9999", &row).ok());
  EXPECT_EQ(row.ts, -1);  // floored
  ASSERT_TRUE(AssignText(Spec(millis, 0), Type(1082), "2024-03-01", &row).ok());
  EXPECT_EQ(row.ts, 1709251200000);
  ASSERT_TRUE(AssignText(Spec(micros, 0), Type(1083), "09:30:00.25", &row).ok());
  EXPECT_EQ(row.ts, 34200250000);
  EXPECT_THAT(AssignText(Spec(millis, 0), Type(1184), "infinity", &row).message(),
              HasSubstr("infinity"));
  EXPECT_THAT(AssignText(Spec(millis, 0), Type(25), "x", &row).message(),
              HasSubstr("not a point in time"));
}

TEST(TextValueTest, Arrays) {
  auto fields = debezium::Fields<Row>()
                    .Required("tags", &Row::tags)
                    .Required("numbers", &Row::numbers)
                    .Required("text", &Row::text);
  Row row;
  ASSERT_TRUE(AssignText(Spec(fields, 0), Type(1009), R"({a,"b c","q\"d",""})", &row).ok());
  EXPECT_THAT(row.tags, ElementsAre("a", "b c", "q\"d", ""));
  ASSERT_TRUE(AssignText(Spec(fields, 1), Type(1007), "{1,NULL,-3}", &row).ok());
  EXPECT_THAT(row.numbers, ElementsAre(1, std::nullopt, -3));
  ASSERT_TRUE(AssignText(Spec(fields, 1), Type(1007), "{}", &row).ok());
  EXPECT_TRUE(row.numbers.empty());
  EXPECT_THAT(AssignText(Spec(fields, 0), Type(1009), "{a,NULL}", &row).message(),
              HasSubstr("element 1 is NULL"));
  EXPECT_THAT(AssignText(Spec(fields, 1), Type(1007), "{{1,2},{3,4}}", &row).message(),
              HasSubstr("multi-dimensional"));
  EXPECT_THAT(AssignText(Spec(fields, 2), Type(1009), "{a}", &row).message(),
              HasSubstr("std::vector"));
}

TEST(TextValueTest, DomainsEnumsAndArraysOfThemResolveThroughPgType) {
  int lookups = 0;
  TypeResolver resolver([&](uint32_t oid) -> absl::StatusOr<PgTypeRow> {
    ++lookups;
    switch (oid) {
      case 50000:  // CREATE DOMAIN price AS numeric(10,2)
        return PgTypeRow{'d', 'N', 1700, 0, "price"};
      case 50001:  // CREATE TYPE mood AS ENUM (...)
        return PgTypeRow{'e', 'E', 0, 0, "mood"};
      case 50002:  // mood[]
        return PgTypeRow{'b', 'A', 0, 50001, "mood[]"};
      default:
        return absl::NotFoundError("no such type");
    }
  });
  absl::StatusOr<PgType> price = resolver.Resolve(50000);
  ASSERT_TRUE(price.ok());
  EXPECT_EQ(price->kind, PgKind::kNumeric);
  absl::StatusOr<PgType> moods = resolver.Resolve(50002);
  ASSERT_TRUE(moods.ok());
  EXPECT_EQ(moods->kind, PgKind::kText);
  EXPECT_TRUE(moods->is_array);
  ASSERT_TRUE(resolver.Resolve(50000).ok());
  EXPECT_EQ(lookups, 3);  // cached
  EXPECT_FALSE(resolver.Resolve(1).ok());
}

}  // namespace
}  // namespace weir::postgres::internal
