#include "lib/connectors/postgres/pgoutput.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace weir::postgres::internal {
namespace {

// Reads the big-endian fields of one message, remembering the first error.
class Reader {
 public:
  Reader(absl::string_view bytes, const char* message) : bytes_(bytes), message_(message) {}

  template <class U>
  U Int() {
    U value = 0;
    if (!Need(sizeof(U))) return 0;
    for (size_t idx = 0; idx < sizeof(U); ++idx) {
      value = static_cast<U>((static_cast<uint64_t>(value) << 8) |
                             static_cast<uint8_t>(bytes_[pos_ + idx]));
    }
    pos_ += sizeof(U);
    return value;
  }
  uint8_t Byte() { return Int<uint8_t>(); }
  // A NUL-terminated string.
  std::string String() {
    if (!ok_) return "";
    const size_t end = bytes_.find('\0', pos_);
    if (end == absl::string_view::npos) {
      Fail("a string without its terminating NUL");
      return "";
    }
    std::string value(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return value;
  }
  std::string Bytes(size_t size) {
    if (!Need(size)) return "";
    std::string value(bytes_.substr(pos_, size));
    pos_ += size;
    return value;
  }
  Tuple TupleData() {
    Tuple tuple;
    const uint16_t columns = Int<uint16_t>();
    tuple.reserve(columns);
    for (uint16_t idx = 0; ok_ && idx < columns; ++idx) {
      TupleColumn column;
      const char kind = static_cast<char>(Byte());
      switch (kind) {
        case 'n':
          column.kind = TupleColumn::Kind::kNull;
          break;
        case 'u':
          column.kind = TupleColumn::Kind::kUnchanged;
          break;
        case 't':
        case 'b': {
          column.kind = kind == 't' ? TupleColumn::Kind::kText : TupleColumn::Kind::kBinary;
          const int32_t size = Int<int32_t>();
          if (size < 0) {
            Fail(absl::StrCat("column ", idx, " has a negative length"));
            break;
          }
          column.value = Bytes(static_cast<size_t>(size));
          break;
        }
        default:
          if (ok_) Fail(absl::StrFormat("column %d has the unknown kind 0x%02x", idx, kind));
          break;
      }
      tuple.push_back(std::move(column));
    }
    return tuple;
  }
  void Fail(std::string why) {
    if (!ok_) return;
    ok_ = false;
    error_ = std::move(why);
  }
  // OK when every byte was read, exactly.
  absl::Status Done() {
    if (ok_ && pos_ != bytes_.size()) {
      Fail(absl::StrCat(bytes_.size() - pos_, " bytes left over"));
    }
    if (ok_) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat("malformed pgoutput ", message_, " message (",
                                            bytes_.size(), " bytes): ", error_));
  }

 private:
  bool Need(size_t size) {
    if (!ok_) return false;
    if (bytes_.size() - pos_ < size) {
      Fail(absl::StrCat("truncated at byte ", pos_));
      return false;
    }
    return true;
  }

  absl::string_view bytes_;
  const char* message_;
  size_t pos_ = 1;  // after the tag
  bool ok_ = true;
  std::string error_;
};

template <class M>
absl::StatusOr<PgOutputMessage> Finish(Reader& reader, M message) {
  absl::Status status = reader.Done();
  if (!status.ok()) return status;
  return PgOutputMessage(std::move(message));
}

// The old tuple of an Update or Delete: 'K' or 'O' and the tuple.
void ReadOldTuple(Reader& reader, char kind, char& old_kind, Tuple& old_tuple) {
  old_kind = kind;
  old_tuple = reader.TupleData();
}

}  // namespace

std::string LsnToString(uint64_t lsn) {
  return absl::StrFormat("%X/%X", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

absl::StatusOr<uint64_t> ParseLsn(absl::string_view text) {
  const size_t slash = text.find('/');
  uint32_t high = 0;
  uint32_t low = 0;
  if (slash == absl::string_view::npos || slash == 0 || slash + 1 == text.size() ||
      !absl::SimpleHexAtoi(text.substr(0, slash), &high) ||
      !absl::SimpleHexAtoi(text.substr(slash + 1), &low)) {
    return absl::InvalidArgumentError(absl::StrCat("not an LSN: \"", text, "\""));
  }
  return (static_cast<uint64_t>(high) << 32) | low;
}

absl::StatusOr<PgOutputMessage> ParsePgOutput(absl::string_view bytes) {
  if (bytes.empty()) return absl::DataLossError("empty pgoutput message");
  const char tag = bytes[0];
  switch (tag) {
    case 'B': {
      Reader reader(bytes, "Begin");
      BeginMessage message;
      message.final_lsn = reader.Int<uint64_t>();
      message.commit_time_us = reader.Int<int64_t>();
      message.xid = reader.Int<uint32_t>();
      return Finish(reader, message);
    }
    case 'C': {
      Reader reader(bytes, "Commit");
      CommitMessage message;
      message.flags = reader.Byte();
      message.commit_lsn = reader.Int<uint64_t>();
      message.end_lsn = reader.Int<uint64_t>();
      message.commit_time_us = reader.Int<int64_t>();
      return Finish(reader, message);
    }
    case 'R': {
      Reader reader(bytes, "Relation");
      RelationMessage message;
      message.relation_id = reader.Int<uint32_t>();
      message.schema = reader.String();
      message.table = reader.String();
      message.replica_identity = static_cast<char>(reader.Byte());
      const uint16_t columns = reader.Int<uint16_t>();
      for (uint16_t idx = 0; idx < columns; ++idx) {
        RelationColumn column;
        column.key = (reader.Byte() & 1) != 0;
        column.name = reader.String();
        column.type_oid = reader.Int<uint32_t>();
        column.type_modifier = reader.Int<int32_t>();
        message.columns.push_back(std::move(column));
      }
      return Finish(reader, std::move(message));
    }
    case 'Y': {
      Reader reader(bytes, "Type");
      TypeMessage message;
      message.type_oid = reader.Int<uint32_t>();
      message.schema = reader.String();
      message.name = reader.String();
      return Finish(reader, std::move(message));
    }
    case 'I': {
      Reader reader(bytes, "Insert");
      InsertMessage message;
      message.relation_id = reader.Int<uint32_t>();
      const char marker = static_cast<char>(reader.Byte());
      if (marker != 'N') reader.Fail(absl::StrFormat("expected 'N', got 0x%02x", marker));
      message.new_tuple = reader.TupleData();
      return Finish(reader, std::move(message));
    }
    case 'U': {
      Reader reader(bytes, "Update");
      UpdateMessage message;
      message.relation_id = reader.Int<uint32_t>();
      char marker = static_cast<char>(reader.Byte());
      if (marker == 'K' || marker == 'O') {
        ReadOldTuple(reader, marker, message.old_kind, message.old_tuple);
        marker = static_cast<char>(reader.Byte());
      }
      if (marker != 'N') reader.Fail(absl::StrFormat("expected 'N', got 0x%02x", marker));
      message.new_tuple = reader.TupleData();
      return Finish(reader, std::move(message));
    }
    case 'D': {
      Reader reader(bytes, "Delete");
      DeleteMessage message;
      message.relation_id = reader.Int<uint32_t>();
      const char marker = static_cast<char>(reader.Byte());
      if (marker != 'K' && marker != 'O') {
        reader.Fail(absl::StrFormat("expected 'K' or 'O', got 0x%02x", marker));
      }
      ReadOldTuple(reader, marker, message.old_kind, message.old_tuple);
      return Finish(reader, std::move(message));
    }
    case 'T': {
      Reader reader(bytes, "Truncate");
      TruncateMessage message;
      const uint32_t count = reader.Int<uint32_t>();
      message.options = reader.Byte();
      for (uint32_t idx = 0; idx < count && idx < bytes.size(); ++idx) {
        message.relation_ids.push_back(reader.Int<uint32_t>());
      }
      return Finish(reader, std::move(message));
    }
    case 'O':
    case 'M':
      return PgOutputMessage(IgnoredMessage{tag});
    default:
      return absl::DataLossError(absl::StrFormat(
          "unknown pgoutput message tag 0x%02x (%d bytes); weir reads protocol version 1", tag,
          bytes.size()));
  }
}

}  // namespace weir::postgres::internal
