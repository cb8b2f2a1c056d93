// Debezium's temporal types (io.debezium.time.*, and Kafka Connect's
// Date/Time/Timestamp) converted to a count of a TimeUnit since the epoch
// (or since midnight for times of day), flooring finer values.

#ifndef WEIR_LIB_FORMATS_DEBEZIUM_TIME_H_
#define WEIR_LIB_FORMATS_DEBEZIUM_TIME_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "weir/formats/debezium.h"

namespace weir::debezium::internal {

// The TimeType a schema's logical name stands for ("io.debezium.time.Date",
// "org.apache.kafka.connect.data.Timestamp", ...), or nullopt.
std::optional<TimeType> TimeTypeFromSchemaName(std::string_view name);

// What a TimeType denotes.
enum class TimeKind : uint8_t { kDate, kTimeOfDay, kTimestamp };
TimeKind KindOf(TimeType type);
// Whether the type is sent as an ISO-8601 string (Zoned*, Iso*).
bool IsStringTime(TimeType type);

// The kind of ISO-8601 text `text` looks like: a time of day starts with
// "HH:", a date is a year, '-', month, '-', day with no 'T' (or space) after
// it, and anything else is read (and validated) as a date-time.
TimeKind KindOfText(std::string_view text);

// `value` as sent for `type` (days, millis, micros or nanos; not a string
// type) in `unit`. kInvalidArgument when it overflows int64.
absl::StatusOr<int64_t> ConvertIntegerTime(int64_t value, TimeType type, TimeUnit unit);

// An ISO-8601 date-time with offset, as Debezium's ZonedTimestamp sends it
// ("2024-03-01T09:30:00.123456Z", "2024-03-01T10:30:00+01:00"), in `unit`
// since the epoch. With `utc_if_no_offset` (IsoTimestamp) a missing offset
// means UTC; otherwise it is an error.
absl::StatusOr<int64_t> ParseZonedTimestamp(std::string_view text, TimeUnit unit,
                                            bool utc_if_no_offset = false);

// An ISO-8601 time with offset (ZonedTime: "09:30:00.5Z"), in `unit` since
// midnight UTC; `utc_if_no_offset` as above (IsoTime).
absl::StatusOr<int64_t> ParseZonedTime(std::string_view text, TimeUnit unit,
                                       bool utc_if_no_offset = false);

// An ISO-8601 date, optionally followed by "Z" (IsoDate: "2017-09-15Z"), as
// `unit` since the epoch at midnight UTC.
absl::StatusOr<int64_t> ParseIsoDate(std::string_view text, TimeUnit unit);

}  // namespace weir::debezium::internal

#endif  // WEIR_LIB_FORMATS_DEBEZIUM_TIME_H_
