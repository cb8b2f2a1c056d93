#include "lib/formats/debezium_time.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "lib/formats/str_cat.h"
#include "weir/formats/debezium.h"

namespace weir::debezium::internal {
namespace {

using weir::internal::Cat;

constexpr int64_t kSecondsPerDay = 86'400;

int64_t PerSecond(TimeUnit unit) {
  switch (unit) {
    case TimeUnit::kSeconds:
      return 1;
    case TimeUnit::kMillis:
      return 1'000;
    case TimeUnit::kMicros:
      return 1'000'000;
    case TimeUnit::kNanos:
      return 1'000'000'000;
  }
  return 1;
}

int64_t FloorDiv(int64_t value, int64_t divisor) {
  int64_t quotient = value / divisor;
  if (value % divisor != 0 && value < 0) --quotient;
  return quotient;
}

absl::Status Overflow() { return absl::InvalidArgumentError("time value overflows int64"); }

// `value` counted `from` per second, counted `to` per second (floored).
absl::StatusOr<int64_t> Rescale(int64_t value, int64_t from, int64_t to) {
  if (to >= from) {
    int64_t out = 0;
    if (__builtin_mul_overflow(value, to / from, &out)) return Overflow();
    return out;
  }
  return FloorDiv(value, from / to);
}

// seconds + nanos/1e9 in `unit`, floored (nanos is in [0, 1e9)).
absl::StatusOr<int64_t> FromSecondsAndNanos(int64_t seconds, int64_t nanos, TimeUnit unit) {
  const int64_t per_second = PerSecond(unit);
  int64_t out = 0;
  if (__builtin_mul_overflow(seconds, per_second, &out) ||
      __builtin_add_overflow(out, nanos / (1'000'000'000 / per_second), &out)) {
    return Overflow();
  }
  return out;
}

bool IsLeapYear(int64_t year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil).
int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146'097 + day_of_era - 719'468;
}

// A forward-only reader over the text.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool AtEnd() const { return pos_ == text_.size(); }
  bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  bool Accept(char c) {
    if (!Peek(c)) return false;
    ++pos_;
    return true;
  }
  bool PeekDigit() const { return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; }
  // Reads between `min` and `max` digits.
  bool Digits(int min, int max, int64_t& value, int* count = nullptr) {
    value = 0;
    int read = 0;
    while (read < max && PeekDigit()) {
      value = value * 10 + (text_[pos_++] - '0');
      ++read;
    }
    if (count != nullptr) *count = read;
    return read >= min;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

// HH:MM[:SS[.fffffffff]] -> seconds of day and nanos.
bool ReadTimeOfDay(Cursor& cursor, int64_t& seconds_of_day, int64_t& nanos) {
  int64_t hour = 0, minute = 0, second = 0;
  if (!cursor.Digits(2, 2, hour) || !cursor.Accept(':') || !cursor.Digits(2, 2, minute)) {
    return false;
  }
  nanos = 0;
  if (cursor.Accept(':')) {
    if (!cursor.Digits(2, 2, second)) return false;
    if (cursor.Accept('.') || cursor.Accept(',')) {
      int count = 0;
      if (!cursor.Digits(1, 9, nanos, &count)) return false;
      for (int idx = count; idx < 9; ++idx) nanos *= 10;
      if (cursor.PeekDigit()) return false;  // more than nanoseconds
    }
  }
  if (hour > 23 || minute > 59 || second > 59) return false;
  seconds_of_day = hour * 3600 + minute * 60 + second;
  return true;
}

// Z | (+|-)HH[[:]MM[[:]SS]] -> seconds east of UTC.
bool ReadOffset(Cursor& cursor, int64_t& offset_seconds) {
  if (cursor.Accept('Z') || cursor.Accept('z')) {
    offset_seconds = 0;
    return true;
  }
  int sign = 0;
  if (cursor.Accept('+')) {
    sign = 1;
  } else if (cursor.Accept('-')) {
    sign = -1;
  } else {
    return false;
  }
  int64_t hours = 0, minutes = 0, seconds = 0;
  if (!cursor.Digits(2, 2, hours)) return false;
  const bool colon = cursor.Accept(':');
  if (colon || cursor.PeekDigit()) {
    if (!cursor.Digits(2, 2, minutes)) return false;
    if ((colon && cursor.Accept(':')) || (!colon && cursor.PeekDigit())) {
      if (!cursor.Digits(2, 2, seconds)) return false;
    }
  }
  if (hours > 18 || minutes > 59 || seconds > 59) return false;
  offset_seconds = sign * (hours * 3600 + minutes * 60 + seconds);
  return true;
}

std::string Quoted(std::string_view text) {
  return Cat("\"", absl::CHexEscape(weir::internal::ToAbsl(text.substr(0, 48))),
             text.size() > 48 ? "...\"" : "\"");
}

}  // namespace

std::optional<TimeType> TimeTypeFromSchemaName(std::string_view name) {
  if (name == "io.debezium.time.Date" || name == "org.apache.kafka.connect.data.Date") {
    return TimeType::kDate;
  }
  if (name == "io.debezium.time.Time" || name == "org.apache.kafka.connect.data.Time") {
    return TimeType::kTime;
  }
  if (name == "io.debezium.time.MicroTime") return TimeType::kMicroTime;
  if (name == "io.debezium.time.NanoTime") return TimeType::kNanoTime;
  if (name == "io.debezium.time.Timestamp" || name == "org.apache.kafka.connect.data.Timestamp") {
    return TimeType::kTimestamp;
  }
  if (name == "io.debezium.time.MicroTimestamp") return TimeType::kMicroTimestamp;
  if (name == "io.debezium.time.NanoTimestamp") return TimeType::kNanoTimestamp;
  if (name == "io.debezium.time.ZonedTimestamp") return TimeType::kZonedTimestamp;
  if (name == "io.debezium.time.ZonedTime") return TimeType::kZonedTime;
  if (name == "io.debezium.time.IsoDate") return TimeType::kIsoDate;
  if (name == "io.debezium.time.IsoTime") return TimeType::kIsoTime;
  if (name == "io.debezium.time.IsoTimestamp") return TimeType::kIsoTimestamp;
  return std::nullopt;
}

TimeKind KindOf(TimeType type) {
  switch (type) {
    case TimeType::kDate:
    case TimeType::kIsoDate:
      return TimeKind::kDate;
    case TimeType::kTime:
    case TimeType::kMicroTime:
    case TimeType::kNanoTime:
    case TimeType::kZonedTime:
    case TimeType::kIsoTime:
      return TimeKind::kTimeOfDay;
    case TimeType::kTimestamp:
    case TimeType::kMicroTimestamp:
    case TimeType::kNanoTimestamp:
    case TimeType::kZonedTimestamp:
    case TimeType::kIsoTimestamp:
      return TimeKind::kTimestamp;
  }
  return TimeKind::kTimestamp;
}

bool IsStringTime(TimeType type) {
  return type == TimeType::kZonedTimestamp || type == TimeType::kZonedTime ||
         type == TimeType::kIsoDate || type == TimeType::kIsoTime ||
         type == TimeType::kIsoTimestamp;
}

TimeKind KindOfText(std::string_view text) {
  const auto digit = [text](size_t pos) {
    return pos < text.size() && text[pos] >= '0' && text[pos] <= '9';
  };
  if (digit(0) && digit(1) && text.size() > 2 && text[2] == ':') return TimeKind::kTimeOfDay;
  size_t pos = 0;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
  size_t digits = 0;
  while (digit(pos)) {
    ++pos;
    ++digits;
  }
  if (digits < 4 || pos >= text.size() || text[pos] != '-') return TimeKind::kTimestamp;
  // YYYY-MM-DD, then 'T', 't' or ' ' for a date-time.
  pos += 6;
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    return TimeKind::kTimestamp;
  }
  return TimeKind::kDate;
}

absl::StatusOr<int64_t> ConvertIntegerTime(int64_t value, TimeType type, TimeUnit unit) {
  const int64_t to = PerSecond(unit);
  switch (type) {
    case TimeType::kDate: {
      int64_t seconds = 0;
      if (__builtin_mul_overflow(value, kSecondsPerDay, &seconds)) return Overflow();
      return Rescale(seconds, 1, to);
    }
    case TimeType::kTime:
    case TimeType::kTimestamp:
      return Rescale(value, 1'000, to);
    case TimeType::kMicroTime:
    case TimeType::kMicroTimestamp:
      return Rescale(value, 1'000'000, to);
    case TimeType::kNanoTime:
    case TimeType::kNanoTimestamp:
      return Rescale(value, 1'000'000'000, to);
    case TimeType::kZonedTimestamp:
    case TimeType::kZonedTime:
    case TimeType::kIsoDate:
    case TimeType::kIsoTime:
    case TimeType::kIsoTimestamp:
      break;
  }
  return absl::InvalidArgumentError("zoned and ISO time types are ISO-8601 strings, not integers");
}

namespace {

// [+-]YYYY[YYYYY]-MM-DD -> days since the epoch.
bool ReadDate(Cursor& cursor, int64_t& days) {
  int64_t year = 0, month = 0, day = 0;
  int year_sign = 1;
  bool signed_year = false;
  if (cursor.Accept('+')) {
    signed_year = true;
  } else if (cursor.Accept('-')) {
    signed_year = true;
    year_sign = -1;
  }
  int year_digits = 0;
  if (!cursor.Digits(4, 9, year, &year_digits)) return false;
  if (year_digits > 4 && !signed_year) return false;  // ISO-8601: >4 digits need a sign
  year *= year_sign;
  if (!cursor.Accept('-') || !cursor.Digits(2, 2, month) || !cursor.Accept('-') ||
      !cursor.Digits(2, 2, day)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, static_cast<int>(month))) {
    return false;
  }
  // |days| < 4e11 for 9-digit years, so callers stay far from overflow.
  days = DaysFromCivil(year, static_cast<int>(month), static_cast<int>(day));
  return true;
}

// An offset, or none (then 0) when `optional` and the text ends.
bool ReadOffsetOrEnd(Cursor& cursor, bool optional, int64_t& offset_seconds) {
  if (optional && cursor.AtEnd()) {
    offset_seconds = 0;
    return true;
  }
  return ReadOffset(cursor, offset_seconds);
}

}  // namespace

absl::StatusOr<int64_t> ParseZonedTimestamp(std::string_view text, TimeUnit unit,
                                            bool utc_if_no_offset) {
  if (text == "infinity" || text == "+infinity" || text == "-infinity") {
    return absl::InvalidArgumentError(
        Cat("infinite timestamp ", Quoted(text), " has no epoch value"));
  }
  Cursor cursor(text);
  int64_t days = 0, seconds_of_day = 0, nanos = 0, offset = 0;
  if (!ReadDate(cursor, days) ||
      !(cursor.Accept('T') || cursor.Accept('t') || cursor.Accept(' ')) ||
      !ReadTimeOfDay(cursor, seconds_of_day, nanos) ||
      !ReadOffsetOrEnd(cursor, utc_if_no_offset, offset) || !cursor.AtEnd()) {
    return absl::InvalidArgumentError(
        Cat(Quoted(text), " is not an ISO-8601 timestamp", utc_if_no_offset ? "" : " with offset"));
  }
  const int64_t seconds = days * kSecondsPerDay + seconds_of_day - offset;
  return FromSecondsAndNanos(seconds, nanos, unit);
}

absl::StatusOr<int64_t> ParseIsoDate(std::string_view text, TimeUnit unit) {
  if (text == "infinity" || text == "+infinity" || text == "-infinity") {
    return absl::InvalidArgumentError(Cat("infinite date ", Quoted(text), " has no epoch value"));
  }
  Cursor cursor(text);
  int64_t days = 0;
  if (!ReadDate(cursor, days) || !(cursor.AtEnd() || cursor.Accept('Z') || cursor.Accept('z')) ||
      !cursor.AtEnd()) {
    return absl::InvalidArgumentError(Cat(Quoted(text), " is not an ISO-8601 date"));
  }
  return ConvertIntegerTime(days, TimeType::kDate, unit);
}

absl::StatusOr<int64_t> ParseZonedTime(std::string_view text, TimeUnit unit,
                                       bool utc_if_no_offset) {
  Cursor cursor(text);
  int64_t seconds_of_day = 0, nanos = 0, offset = 0;
  if (!ReadTimeOfDay(cursor, seconds_of_day, nanos) ||
      !ReadOffsetOrEnd(cursor, utc_if_no_offset, offset) || !cursor.AtEnd()) {
    return absl::InvalidArgumentError(
        Cat(Quoted(text), " is not an ISO-8601 time", utc_if_no_offset ? "" : " with offset"));
  }
  int64_t utc = (seconds_of_day - offset) % kSecondsPerDay;
  if (utc < 0) utc += kSecondsPerDay;
  return FromSecondsAndNanos(utc, nanos, unit);
}

}  // namespace weir::debezium::internal
