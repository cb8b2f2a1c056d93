// pgoutput messages decoded from golden bytes, built here field by field
// after PostgreSQL's "Logical Replication Message Formats" (protocol 1): no
// server needed.

#include "lib/connectors/postgres/pgoutput.h"

#include <cstdint>
#include <string>
#include <variant>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weir::postgres::internal {
namespace {

using ::testing::HasSubstr;

// Big-endian bytes of a message.
class Bytes {
 public:
  explicit Bytes(char tag) { bytes_.push_back(tag); }
  Bytes& U8(uint8_t value) {
    bytes_.push_back(static_cast<char>(value));
    return *this;
  }
  Bytes& U16(uint16_t value) { return Big(value, 2); }
  Bytes& U32(uint32_t value) { return Big(value, 4); }
  Bytes& U64(uint64_t value) { return Big(value, 8); }
  Bytes& Str(const std::string& value) {
    bytes_ += value;
    bytes_.push_back('\0');
    return *this;
  }
  Bytes& Text(const std::string& value) {
    U8('t');
    U32(static_cast<uint32_t>(value.size()));
    bytes_ += value;
    return *this;
  }
  const std::string& str() const { return bytes_; }

 private:
  Bytes& Big(uint64_t value, int size) {
    for (int shift = (size - 1) * 8; shift >= 0; shift -= 8) {
      bytes_.push_back(static_cast<char>(value >> shift));
    }
    return *this;
  }
  std::string bytes_;
};

template <class M>
M Parse(const Bytes& bytes) {
  absl::StatusOr<PgOutputMessage> message = ParsePgOutput(bytes.str());
  EXPECT_TRUE(message.ok()) << message.status();
  if (!message.ok() || !std::holds_alternative<M>(*message)) {
    ADD_FAILURE() << "wrong message kind";
    return M();
  }
  return std::get<M>(*message);
}

TEST(PgOutputTest, Begin) {
  const auto begin =
      Parse<BeginMessage>(Bytes('B').U64(0x16B374D848ULL).U64(757382400000000ULL).U32(571));
  EXPECT_EQ(begin.final_lsn, 0x16B374D848ULL);
  EXPECT_EQ(begin.commit_time_us, 757382400000000LL);
  EXPECT_EQ(begin.xid, 571u);
}

TEST(PgOutputTest, Commit) {
  const auto commit = Parse<CommitMessage>(Bytes('C').U8(0).U64(100).U64(180).U64(42));
  EXPECT_EQ(commit.commit_lsn, 100u);
  EXPECT_EQ(commit.end_lsn, 180u);
  EXPECT_EQ(commit.commit_time_us, 42);
}

TEST(PgOutputTest, Relation) {
  const auto relation = Parse<RelationMessage>(Bytes('R')
                                                   .U32(16385)
                                                   .Str("public")
                                                   .Str("items")
                                                   .U8('f')
                                                   .U16(2)
                                                   .U8(1)
                                                   .Str("id")
                                                   .U32(20)
                                                   .U32(0xFFFFFFFF)
                                                   .U8(0)
                                                   .Str("price")
                                                   .U32(1700)
                                                   .U32((10 << 16 | 2) + 4));
  EXPECT_EQ(relation.relation_id, 16385u);
  EXPECT_EQ(relation.schema, "public");
  EXPECT_EQ(relation.table, "items");
  EXPECT_EQ(relation.replica_identity, 'f');
  ASSERT_EQ(relation.columns.size(), 2u);
  EXPECT_TRUE(relation.columns[0].key);
  EXPECT_EQ(relation.columns[0].name, "id");
  EXPECT_EQ(relation.columns[0].type_oid, 20u);
  EXPECT_EQ(relation.columns[0].type_modifier, -1);
  EXPECT_FALSE(relation.columns[1].key);
  EXPECT_EQ(relation.columns[1].type_oid, 1700u);
}

TEST(PgOutputTest, Type) {
  const auto type = Parse<TypeMessage>(Bytes('Y').U32(16400).Str("public").Str("mood"));
  EXPECT_EQ(type.type_oid, 16400u);
  EXPECT_EQ(type.schema, "public");
  EXPECT_EQ(type.name, "mood");
}

TEST(PgOutputTest, InsertWithEveryColumnKind) {
  const auto insert = Parse<InsertMessage>(
      Bytes('I').U32(7).U8('N').U16(4).Text("42").U8('n').U8('u').U8('b').U32(2).U8(0xAB).U8(0xCD));
  EXPECT_EQ(insert.relation_id, 7u);
  ASSERT_EQ(insert.new_tuple.size(), 4u);
  EXPECT_EQ(insert.new_tuple[0].kind, TupleColumn::Kind::kText);
  EXPECT_EQ(insert.new_tuple[0].value, "42");
  EXPECT_EQ(insert.new_tuple[1].kind, TupleColumn::Kind::kNull);
  EXPECT_EQ(insert.new_tuple[2].kind, TupleColumn::Kind::kUnchanged);
  EXPECT_EQ(insert.new_tuple[3].kind, TupleColumn::Kind::kBinary);
  EXPECT_EQ(insert.new_tuple[3].value, "\xAB\xCD");
}

TEST(PgOutputTest, UpdateWithoutOldTuple) {
  const auto update = Parse<UpdateMessage>(Bytes('U').U32(7).U8('N').U16(1).Text("x"));
  EXPECT_EQ(update.old_kind, 0);
  EXPECT_TRUE(update.old_tuple.empty());
  ASSERT_EQ(update.new_tuple.size(), 1u);
  EXPECT_EQ(update.new_tuple[0].value, "x");
}

TEST(PgOutputTest, UpdateWithKeyAndWithOldRow) {
  for (char kind : {'K', 'O'}) {
    const auto update = Parse<UpdateMessage>(
        Bytes('U').U32(7).U8(kind).U16(2).Text("1").U8('n').U8('N').U16(2).Text("2").Text("b"));
    EXPECT_EQ(update.old_kind, kind);
    ASSERT_EQ(update.old_tuple.size(), 2u);
    EXPECT_EQ(update.old_tuple[0].value, "1");
    EXPECT_EQ(update.old_tuple[1].kind, TupleColumn::Kind::kNull);
    ASSERT_EQ(update.new_tuple.size(), 2u);
    EXPECT_EQ(update.new_tuple[1].value, "b");
  }
}

TEST(PgOutputTest, Delete) {
  const auto del = Parse<DeleteMessage>(Bytes('D').U32(9).U8('K').U16(1).Text("5"));
  EXPECT_EQ(del.relation_id, 9u);
  EXPECT_EQ(del.old_kind, 'K');
  ASSERT_EQ(del.old_tuple.size(), 1u);
  EXPECT_EQ(del.old_tuple[0].value, "5");
}

TEST(PgOutputTest, Truncate) {
  const auto truncate = Parse<TruncateMessage>(Bytes('T').U32(2).U8(1).U32(10).U32(11));
  EXPECT_EQ(truncate.options, 1);
  EXPECT_THAT(truncate.relation_ids, ::testing::ElementsAre(10u, 11u));
}

TEST(PgOutputTest, OriginAndMessagesAreIgnored) {
  EXPECT_EQ(Parse<IgnoredMessage>(Bytes('O').U64(1).Str("origin")).tag, 'O');
}

TEST(PgOutputTest, MalformedMessagesAreDataLoss) {
  absl::StatusOr<PgOutputMessage> truncated = ParsePgOutput(Bytes('B').U64(1).str());
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.status().message(), HasSubstr("Begin"));
  absl::StatusOr<PgOutputMessage> trailing =
      ParsePgOutput(Bytes('C').U8(0).U64(1).U64(2).U64(3).U8(9).str());
  EXPECT_EQ(trailing.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(trailing.status().message(), HasSubstr("left over"));
  absl::StatusOr<PgOutputMessage> bad_kind =
      ParsePgOutput(Bytes('I').U32(1).U8('N').U16(1).U8('x').str());
  EXPECT_THAT(bad_kind.status().message(), HasSubstr("unknown kind"));
  absl::StatusOr<PgOutputMessage> unknown = ParsePgOutput(Bytes('Z').str());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParsePgOutput("").status().code(), absl::StatusCode::kDataLoss);
}

TEST(PgOutputTest, Lsn) {
  EXPECT_EQ(LsnToString(0x16B374D848ULL), "16/B374D848");
  absl::StatusOr<uint64_t> lsn = ParseLsn("16/B374D848");
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0x16B374D848ULL);
  EXPECT_FALSE(ParseLsn("16B374D848").ok());
  EXPECT_FALSE(ParseLsn("/1").ok());
}

}  // namespace
}  // namespace weir::postgres::internal
