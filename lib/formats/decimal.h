// Exact decimal numbers for the formats: parsed from text ("12.50",
// "1.2E+3") or from Kafka Connect's Decimal bytes (big-endian two's
// complement of the unscaled value), rescaled without rounding, and
// converted to integers, doubles and text only when nothing is lost.

#ifndef WEIR_LIB_FORMATS_DECIMAL_H_
#define WEIR_LIB_FORMATS_DECIMAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace weir::internal {

// Bounds that keep hostile input cheap; far beyond what databases send
// (PostgreSQL's NUMERIC with a declared precision has at most 1000 digits).
inline constexpr size_t kMaxDecimalDigits = 4096;
// 1700 bytes hold at most 4094 decimal digits.
inline constexpr size_t kMaxDecimalBytes = 1700;
inline constexpr int64_t kMaxDecimalScale = 10000;

// (-1)^negative * digits * 10^-scale, exactly.
struct DecimalNumber {
  bool negative = false;
  // ASCII digits without leading zeros; empty for zero.
  std::string digits;
  // May be negative (1.2E+3 is digits "12", scale -2).
  int64_t scale = 0;
};

// Parses "-12.50", "+3", ".5", "1.0E20" (JSON numbers and BigDecimal text).
// kInvalidArgument for anything else, including NaN and Infinity.
absl::StatusOr<DecimalNumber> ParseDecimalText(std::string_view text);

// The value of Kafka Connect's Decimal logical type: `bytes` is the
// big-endian two's-complement unscaled value.
absl::StatusOr<DecimalNumber> DecimalFromUnscaledBytes(std::string_view bytes, int64_t scale);

// The same value with exactly `scale` fractional digits; kInvalidArgument
// when that would drop a non-zero digit (1.005 at scale 2) or the result
// would have more than kMaxDecimalDigits digits.
absl::StatusOr<DecimalNumber> RescaleDecimal(const DecimalNumber& number, int64_t scale);

// The value in units of 10^-scale (scale 2: 12.34 -> 1234), exactly.
// kInvalidArgument when it has more fractional digits than `scale` or does
// not fit an int128.
absl::StatusOr<absl::int128> DecimalToScaledInt(const DecimalNumber& number, int64_t scale);

// The double (or float) that is this decimal, when the conversion loses
// nothing: the target's shortest representation is the same decimal.
absl::StatusOr<double> DecimalToBinaryFloat(const DecimalNumber& number, bool single_precision);

// Plain notation with `scale` fractional digits ("-12.50", "0.005", "1200").
std::string DecimalToString(const DecimalNumber& number);

}  // namespace weir::internal

#endif  // WEIR_LIB_FORMATS_DECIMAL_H_
