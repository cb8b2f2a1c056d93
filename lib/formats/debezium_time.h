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

// `value` as sent for `type` (days, millis, micros or nanos; not a Zoned
// type) in `unit`. kInvalidArgument when it overflows int64.
absl::StatusOr<int64_t> ConvertIntegerTime(int64_t value, TimeType type, TimeUnit unit);

// An ISO-8601 date-time with offset, as Debezium's ZonedTimestamp sends it
// ("2024-03-01T09:30:00.123456Z", "2024-03-01T10:30:00+01:00"), in `unit`
// since the epoch.
absl::StatusOr<int64_t> ParseZonedTimestamp(std::string_view text, TimeUnit unit);

// An ISO-8601 time with offset (ZonedTime: "09:30:00.5Z"), in `unit` since
// midnight UTC.
absl::StatusOr<int64_t> ParseZonedTime(std::string_view text, TimeUnit unit);

}  // namespace weir::debezium::internal

#endif  // WEIR_LIB_FORMATS_DEBEZIUM_TIME_H_
