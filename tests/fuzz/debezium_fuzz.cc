// libFuzzer target for weir::debezium::Decoder: every input is one Kafka
// record value (or key) fed to decoders for the engagement pipeline's tables
// and to one that declares every supported type. Besides the sanitizers'
// checks it asserts what the API promises: decoding is deterministic (the
// second decode, which hits the schema cache, gives the same result), a
// successful change has the rows its op implies, errors carry the canonical
// codes, and decoded decimals and UUIDs are well formed.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/formats/debezium.h"

namespace {

namespace dbz = weir::debezium;

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "debezium_fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

struct Content {
  std::string id;
  std::string slug;
  std::string title;
  std::string content_type;
  std::optional<int32_t> length_seconds;
  int64_t publish_ts_ms = 0;
  bool operator==(const Content&) const = default;
};

struct Engagement {
  int64_t id = 0;
  std::string content_id;
  std::string user_id;
  std::string event_type;
  int64_t event_ts_ms = 0;
  std::optional<int32_t> duration_ms;
  std::string device;
  std::optional<std::string> raw_payload;
  bool operator==(const Engagement&) const = default;
};

// One column of every kind the decoder supports.
struct Everything {
  int8_t i8 = 0;
  int16_t i16 = 0;
  int32_t i32 = 0;
  int64_t i64 = 0;
  uint8_t u8 = 0;
  uint16_t u16 = 0;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  float f32 = 0;
  double f64 = 0;
  bool flag = false;
  std::string text;
  std::optional<int32_t> maybe;
  std::string uuid;
  std::array<uint8_t, 16> uuid_bytes{};
  int64_t ts_ms = 0;
  int64_t ts_us = 0;
  int64_t ts_ns = 0;
  int64_t date_ms = 0;
  int64_t time_us = 0;
  int64_t zoned_time_ms = 0;
  std::string json;
  int64_t cents = 0;
  int32_t small_cents = 0;
  std::string decimal_text;
  std::string decimal_text_scaled;
  double decimal_double = 0;
  float decimal_float = 0;
  int64_t string_mode = 0;
  std::optional<int64_t> maybe_ts;
  // Schemaless decimal modes, ISO time types and arrays.
  int64_t precise_cents = 0;
  std::string precise_text;
  double double_mode = 0;
  int64_t iso_date_ms = 0;
  int64_t iso_time_us = 0;
  int64_t iso_ts_us = 0;
  std::vector<std::string> tags;
  std::optional<std::vector<int32_t>> ints;
  std::vector<std::optional<int64_t>> nullable_cents;
  // NaN != NaN: compare the bytes of floating-point members instead.
  bool operator==(const Everything& other) const {
    return i8 == other.i8 && i16 == other.i16 && i32 == other.i32 && i64 == other.i64 &&
           u8 == other.u8 && u16 == other.u16 && u32 == other.u32 && u64 == other.u64 &&
           SameBits(f32, other.f32) && SameBits(f64, other.f64) && flag == other.flag &&
           text == other.text && maybe == other.maybe && uuid == other.uuid &&
           uuid_bytes == other.uuid_bytes && ts_ms == other.ts_ms && ts_us == other.ts_us &&
           ts_ns == other.ts_ns && date_ms == other.date_ms && time_us == other.time_us &&
           zoned_time_ms == other.zoned_time_ms && json == other.json && cents == other.cents &&
           small_cents == other.small_cents && decimal_text == other.decimal_text &&
           decimal_text_scaled == other.decimal_text_scaled &&
           SameBits(decimal_double, other.decimal_double) &&
           SameBits(decimal_float, other.decimal_float) && string_mode == other.string_mode &&
           maybe_ts == other.maybe_ts && precise_cents == other.precise_cents &&
           precise_text == other.precise_text && SameBits(double_mode, other.double_mode) &&
           iso_date_ms == other.iso_date_ms && iso_time_us == other.iso_time_us &&
           iso_ts_us == other.iso_ts_us && tags == other.tags && ints == other.ints &&
           nullable_cents == other.nullable_cents;
  }
  template <class F>
  static bool SameBits(F a, F b) {
    return std::string_view(reinterpret_cast<const char*>(&a), sizeof(F)) ==
           std::string_view(reinterpret_cast<const char*>(&b), sizeof(F));
  }
};

dbz::Fields<Content> ContentFields() {
  return dbz::Fields<Content>()
      .Required("id", &Content::id, dbz::Uuid())
      .Required("slug", &Content::slug)
      .Required("title", &Content::title)
      .Required("content_type", &Content::content_type)
      .Optional("length_seconds", &Content::length_seconds)
      .Required("publish_ts", &Content::publish_ts_ms, dbz::EpochMillis());
}

dbz::Fields<Engagement> EngagementFields() {
  return dbz::Fields<Engagement>()
      .Required("id", &Engagement::id)
      .Required("content_id", &Engagement::content_id, dbz::Uuid())
      .Required("user_id", &Engagement::user_id, dbz::Uuid())
      .Required("event_type", &Engagement::event_type)
      .Required("event_ts", &Engagement::event_ts_ms, dbz::EpochMillis())
      .Optional("duration_ms", &Engagement::duration_ms)
      .Required("device", &Engagement::device)
      .Optional("raw_payload", &Engagement::raw_payload, dbz::Json());
}

dbz::Fields<Everything> EverythingFields() {
  using dbz::TimeType;
  return dbz::Fields<Everything>()
      .Optional("i8", &Everything::i8)
      .Optional("i16", &Everything::i16)
      .Optional("i32", &Everything::i32)
      .Required("i64", &Everything::i64)
      .Optional("u8", &Everything::u8)
      .Optional("u16", &Everything::u16)
      .Optional("u32", &Everything::u32)
      .Optional("u64", &Everything::u64)
      .Optional("f32", &Everything::f32)
      .Optional("f64", &Everything::f64)
      .Optional("flag", &Everything::flag)
      .Optional("text", &Everything::text)
      .Optional("maybe", &Everything::maybe)
      .Optional("uuid", &Everything::uuid, dbz::Uuid())
      .Optional("uuid_bytes", &Everything::uuid_bytes, dbz::Uuid())
      .Optional("ts_ms", &Everything::ts_ms, dbz::EpochMillis())
      .Optional("ts_us", &Everything::ts_us, dbz::EpochMicros(TimeType::kMicroTimestamp))
      .Optional("ts_ns", &Everything::ts_ns, dbz::EpochNanos(TimeType::kNanoTimestamp))
      .Optional("date_ms", &Everything::date_ms, dbz::EpochMillis(TimeType::kDate))
      .Optional("time_us", &Everything::time_us, dbz::EpochMicros(TimeType::kMicroTime))
      .Optional("zoned_time_ms", &Everything::zoned_time_ms, dbz::EpochMillis(TimeType::kZonedTime))
      .Optional("json", &Everything::json, dbz::Json())
      .Optional("cents", &Everything::cents, dbz::Decimal(2))
      .Optional("small_cents", &Everything::small_cents, dbz::Decimal(2))
      .Optional("decimal_text", &Everything::decimal_text, dbz::Decimal())
      .Optional("decimal_text_scaled", &Everything::decimal_text_scaled, dbz::Decimal(3))
      .Optional("decimal_double", &Everything::decimal_double, dbz::Decimal())
      .Optional("decimal_float", &Everything::decimal_float, dbz::Decimal())
      .Optional("string_mode", &Everything::string_mode, dbz::Decimal(4, dbz::DecimalMode::kString))
      .Optional("maybe_ts", &Everything::maybe_ts, dbz::EpochMicros())
      .Optional("precise_cents", &Everything::precise_cents,
                dbz::Decimal(2).Mode(dbz::DecimalMode::kPrecise))
      .Optional("precise_text", &Everything::precise_text,
                dbz::Decimal(3).Mode(dbz::DecimalMode::kPrecise))
      .Optional("double_mode", &Everything::double_mode,
                dbz::Decimal().Mode(dbz::DecimalMode::kDouble))
      .Optional("iso_date_ms", &Everything::iso_date_ms, dbz::EpochMillis(TimeType::kIsoDate))
      .Optional("iso_time_us", &Everything::iso_time_us, dbz::EpochMicros(TimeType::kIsoTime))
      .Optional("iso_ts_us", &Everything::iso_ts_us, dbz::EpochMicros(TimeType::kIsoTimestamp))
      .Optional("tags", &Everything::tags)
      .Optional("ints", &Everything::ints)
      .Optional("nullable_cents", &Everything::nullable_cents,
                dbz::Decimal(2).Mode(dbz::DecimalMode::kString));
}

bool IsCanonicalError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kDataLoss;
}

bool IsPlainDecimal(std::string_view text) {
  if (!text.empty() && text.front() == '-') text.remove_prefix(1);
  if (text.empty()) return false;
  bool point = false;
  bool digits_after_point = false;
  for (size_t idx = 0; idx < text.size(); ++idx) {
    const char c = text[idx];
    if (c == '.') {
      if (point || idx == 0) return false;
      point = true;
    } else if (c < '0' || c > '9') {
      return false;
    } else if (point) {
      digits_after_point = true;
    }
  }
  return !point || digits_after_point;
}

bool IsCanonicalUuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (size_t idx = 0; idx < text.size(); ++idx) {
    const char c = text[idx];
    if (idx == 8 || idx == 13 || idx == 18 || idx == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

template <class T>
void CheckChange(const dbz::Change<T>& change) {
  switch (change.op) {
    case dbz::Op::kCreate:
    case dbz::Op::kRead:
    case dbz::Op::kUpdate:
      Check(change.after.has_value(), "c/r/u without after");
      Check(change.row() == &*change.after, "row() is after");
      break;
    case dbz::Op::kDelete:
      Check(!change.after.has_value(), "d with after");
      break;
    case dbz::Op::kTruncate:
    case dbz::Op::kTombstone:
    case dbz::Op::kHeartbeat:
      Check(!change.before.has_value() && !change.after.has_value(), "t/tombstone with a row");
      break;
    case dbz::Op::kMessage:
      Check(change.message.has_value(), "m has its message");
      Check(!change.before.has_value() && !change.after.has_value(), "m with a row");
      break;
    case dbz::Op::kTransaction:
      Check(change.transaction.has_value(), "transaction marker is set");
      Check(!change.before.has_value() && !change.after.has_value(), "marker with a row");
      break;
  }
  Check(change.message.has_value() == (change.op == dbz::Op::kMessage), "message only for m");
  Check(change.transaction.has_value() == (change.op == dbz::Op::kTransaction),
        "transaction only for markers");
}

void CheckRow(const Content& row) {
  if (!row.id.empty()) Check(IsCanonicalUuid(row.id), "content id is a canonical UUID");
}
void CheckRow(const Engagement& row) {
  if (!row.content_id.empty()) Check(IsCanonicalUuid(row.content_id), "canonical content_id");
}
void CheckRow(const Everything& row) {
  if (!row.uuid.empty()) Check(IsCanonicalUuid(row.uuid), "canonical uuid");
  if (!row.decimal_text.empty()) Check(IsPlainDecimal(row.decimal_text), "plain decimal text");
  if (!row.decimal_text_scaled.empty()) {
    Check(IsPlainDecimal(row.decimal_text_scaled), "plain scaled decimal text");
    const size_t point = row.decimal_text_scaled.find('.');
    Check(point != std::string::npos && row.decimal_text_scaled.size() - point - 1 == 3,
          "Decimal(3) text has 3 fractional digits");
  }
}

template <class T>
void Exercise(dbz::Decoder<T>& decoder, std::string_view input) {
  absl::StatusOr<dbz::Change<T>> first = decoder.Decode(input);
  absl::StatusOr<dbz::Change<T>> second = decoder.Decode(input);
  Check(first.ok() == second.ok(), "Decode is deterministic (ok)");
  if (first.ok()) {
    Check(*first == *second, "Decode is deterministic (value)");
    CheckChange(*first);
    if (first->before.has_value()) CheckRow(*first->before);
    if (first->after.has_value()) CheckRow(*first->after);
  } else {
    Check(first.status() == second.status(), "Decode is deterministic (status)");
    Check(IsCanonicalError(first.status()), "Decode error code");
  }

  absl::StatusOr<std::optional<T>> row = decoder.DecodeRow(input);
  absl::StatusOr<std::optional<T>> row_again = decoder.DecodeRow(input);
  Check(row.ok() == row_again.ok(), "DecodeRow is deterministic (ok)");
  if (row.ok()) {
    Check(*row == *row_again, "DecodeRow is deterministic (value)");
    if (row->has_value()) CheckRow(**row);
  } else {
    Check(row.status() == row_again.status(), "DecodeRow is deterministic (status)");
    Check(IsCanonicalError(row.status()), "DecodeRow error code");
  }
}

template <class T>
dbz::Decoder<T> MakeDecoder(const dbz::Fields<T>& fields, dbz::DecoderOptions options = {}) {
  absl::StatusOr<dbz::Decoder<T>> decoder = dbz::Decoder<T>::Create(fields, options);
  Check(decoder.ok(), "the fuzz declarations are valid");
  return *std::move(decoder);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Fresh decoders per input, so that a crash reproduces from its input alone.
  dbz::Decoder<Content> content = MakeDecoder(ContentFields());
  dbz::Decoder<Content> strict_content = MakeDecoder(ContentFields(), {.strict_before = true});
  dbz::Decoder<Engagement> engagement = MakeDecoder(EngagementFields());
  dbz::Decoder<Everything> everything = MakeDecoder(EverythingFields());
  dbz::Decoder<Everything> delivering =
      MakeDecoder(EverythingFields(), {.messages = dbz::NonRowPolicy::kDeliver,
                                       .heartbeats = dbz::NonRowPolicy::kDeliver,
                                       .transactions = dbz::NonRowPolicy::kDeadLetter});
  Exercise(content, input);
  Exercise(strict_content, input);
  Exercise(engagement, input);
  Exercise(everything, input);
  Exercise(delivering, input);
  return 0;
}
