#include "lib/formats/decimal.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/formats/str_cat.h"

namespace weir::internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Shown in error messages; long values are cut.
std::string Shown(const DecimalNumber& number) {
  std::string text = DecimalToString(number);
  if (text.size() > 48) text = Cat(text.substr(0, 45), "...");
  return text;
}

// Drops trailing zero digits (adjusting the scale) so that equal values
// compare equal.
DecimalNumber Normalized(DecimalNumber number) {
  size_t zeros = 0;
  while (zeros < number.digits.size() && number.digits[number.digits.size() - 1 - zeros] == '0') {
    ++zeros;
  }
  number.digits.resize(number.digits.size() - zeros);
  number.scale -= static_cast<int64_t>(zeros);
  if (number.digits.empty()) {
    number.negative = false;
    number.scale = 0;
  }
  return number;
}

}  // namespace

absl::StatusOr<DecimalNumber> ParseDecimalText(std::string_view text) {
  const std::string_view original = text;
  auto invalid = [original] {
    std::string shown(original.substr(0, 48));
    return absl::InvalidArgumentError(Cat("\"", shown, "\" is not a finite decimal number"));
  };
  DecimalNumber number;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    number.negative = text.front() == '-';
    text.remove_prefix(1);
  }
  std::string digits;
  int64_t fraction_digits = 0;
  bool any_digit = false;
  size_t pos = 0;
  for (; pos < text.size() && IsDigit(text[pos]); ++pos) {
    any_digit = true;
    if (digits.empty() && text[pos] == '0') continue;  // leading zero
    if (digits.size() >= kMaxDecimalDigits) {
      return absl::InvalidArgumentError(
          Cat("decimal has more than ", kMaxDecimalDigits, " digits"));
    }
    digits.push_back(text[pos]);
  }
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    for (; pos < text.size() && IsDigit(text[pos]); ++pos) {
      any_digit = true;
      ++fraction_digits;
      if (fraction_digits > kMaxDecimalScale) {
        return absl::InvalidArgumentError(
            Cat("decimal has more than ", kMaxDecimalScale, " fractional digits"));
      }
      if (digits.empty() && text[pos] == '0') continue;
      if (digits.size() >= kMaxDecimalDigits) {
        return absl::InvalidArgumentError(
            Cat("decimal has more than ", kMaxDecimalDigits, " digits"));
      }
      digits.push_back(text[pos]);
    }
  }
  if (!any_digit) return invalid();
  int64_t exponent = 0;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    bool negative_exponent = false;
    if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) {
      negative_exponent = text[pos] == '-';
      ++pos;
    }
    if (pos >= text.size() || !IsDigit(text[pos])) return invalid();
    for (; pos < text.size() && IsDigit(text[pos]); ++pos) {
      exponent = exponent * 10 + (text[pos] - '0');
      if (exponent > kMaxDecimalScale) {
        return absl::InvalidArgumentError(Cat("decimal exponent beyond +-", kMaxDecimalScale));
      }
    }
    if (negative_exponent) exponent = -exponent;
  }
  if (pos != text.size()) return invalid();
  number.digits = std::move(digits);
  number.scale = fraction_digits - exponent;
  if (number.digits.empty()) {
    number.negative = false;
  }
  return number;
}

absl::StatusOr<DecimalNumber> DecimalFromUnscaledBytes(std::string_view bytes, int64_t scale) {
  if (bytes.empty()) return absl::InvalidArgumentError("decimal has no bytes");
  if (bytes.size() > kMaxDecimalBytes) {
    return absl::InvalidArgumentError(
        Cat("decimal has ", bytes.size(), " bytes; at most ", kMaxDecimalBytes));
  }
  if (scale > kMaxDecimalScale || scale < -kMaxDecimalScale) {
    return absl::InvalidArgumentError(Cat("decimal scale ", scale, " out of range"));
  }
  DecimalNumber number;
  number.scale = scale;
  std::vector<uint8_t> magnitude(bytes.begin(), bytes.end());
  number.negative = (magnitude[0] & 0x80) != 0;
  if (number.negative) {
    // Two's complement: magnitude = ~bytes + 1.
    for (uint8_t& byte : magnitude) byte = static_cast<uint8_t>(~byte);
    for (size_t idx = magnitude.size(); idx-- > 0;) {
      if (++magnitude[idx] != 0) break;
    }
  }
  // Base 256 -> base 10^9 limbs (least significant first).
  std::vector<uint32_t> limbs;
  for (uint8_t byte : magnitude) {
    uint64_t carry = byte;
    for (uint32_t& limb : limbs) {
      const uint64_t value = static_cast<uint64_t>(limb) * 256 + carry;
      limb = static_cast<uint32_t>(value % 1'000'000'000);
      carry = value / 1'000'000'000;
    }
    while (carry != 0) {
      limbs.push_back(static_cast<uint32_t>(carry % 1'000'000'000));
      carry /= 1'000'000'000;
    }
  }
  while (!limbs.empty() && limbs.back() == 0) limbs.pop_back();
  if (limbs.empty()) {
    number.negative = false;
    return number;
  }
  std::string digits = std::to_string(limbs.back());
  for (size_t idx = limbs.size() - 1; idx-- > 0;) {
    std::string limb = std::to_string(limbs[idx]);
    digits.append(9 - limb.size(), '0');
    digits += limb;
  }
  number.digits = std::move(digits);
  return number;
}

absl::StatusOr<DecimalNumber> RescaleDecimal(const DecimalNumber& number, int64_t scale) {
  DecimalNumber result = number;
  result.scale = scale;
  if (number.digits.empty()) return result;
  const int64_t shift = scale - number.scale;
  if (shift >= 0) {
    if (static_cast<int64_t>(number.digits.size()) + shift >
        static_cast<int64_t>(kMaxDecimalDigits)) {
      return absl::InvalidArgumentError(Cat("decimal ", Shown(number), " at scale ", scale,
                                            " has more than ", kMaxDecimalDigits, " digits"));
    }
    result.digits.append(static_cast<size_t>(shift), '0');
    return result;
  }
  const uint64_t drop = static_cast<uint64_t>(-shift);
  const auto inexact = [&] {
    return absl::InvalidArgumentError(
        Cat("decimal ", Shown(number), " does not fit scale ", scale, " without rounding"));
  };
  if (drop >= number.digits.size()) return inexact();  // the leading digit is not zero
  for (size_t idx = number.digits.size() - drop; idx < number.digits.size(); ++idx) {
    if (number.digits[idx] != '0') return inexact();
  }
  result.digits.resize(number.digits.size() - drop);
  return result;
}

absl::StatusOr<absl::int128> DecimalToScaledInt(const DecimalNumber& number, int64_t scale) {
  absl::StatusOr<DecimalNumber> rescaled = RescaleDecimal(number, scale);
  if (!rescaled.ok()) return rescaled.status();
  const std::string& digits = rescaled->digits;
  // int128 holds every 38-digit number.
  if (digits.size() > 38) {
    return absl::InvalidArgumentError(Cat("decimal ", Shown(number), " out of range"));
  }
  absl::int128 value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  return rescaled->negative ? -value : value;
}

absl::StatusOr<double> DecimalToBinaryFloat(const DecimalNumber& number, bool single_precision) {
  const char* type_name = single_precision ? "float" : "double";
  if (number.digits.empty()) return number.negative ? -0.0 : 0.0;
  // from_chars reads digits and exponent exactly and rounds once.
  const std::string text = Cat(number.negative ? "-" : "", number.digits, "e", -number.scale);
  double value = 0;
  std::string shortest(64, '\0');
  std::to_chars_result written;
  if (single_precision) {
    float narrow = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), narrow);
    if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(narrow)) {
      return absl::InvalidArgumentError(
          Cat("decimal ", Shown(number), " out of range for ", type_name));
    }
    value = narrow;
    written = std::to_chars(shortest.data(), shortest.data() + shortest.size(), narrow);
  } else {
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
      return absl::InvalidArgumentError(
          Cat("decimal ", Shown(number), " out of range for ", type_name));
    }
    written = std::to_chars(shortest.data(), shortest.data() + shortest.size(), value);
  }
  if (written.ec != std::errc()) {
    return absl::InternalError("to_chars failed");
  }
  shortest.resize(static_cast<size_t>(written.ptr - shortest.data()));
  absl::StatusOr<DecimalNumber> back = ParseDecimalText(shortest);
  if (!back.ok()) return back.status();
  const DecimalNumber want = Normalized(number);
  const DecimalNumber got = Normalized(*std::move(back));
  if (want.digits != got.digits || want.scale != got.scale || want.negative != got.negative) {
    return absl::InvalidArgumentError(Cat("decimal ", Shown(number), " is not exact as a ",
                                          type_name, " (nearest is ", shortest, ")"));
  }
  return value;
}

std::string DecimalToString(const DecimalNumber& number) {
  std::string out;
  if (number.negative && !number.digits.empty()) out.push_back('-');
  const std::string& digits = number.digits.empty() ? std::string("0") : number.digits;
  if (number.scale <= 0) {
    out += digits;
    if (!number.digits.empty()) out.append(static_cast<size_t>(-number.scale), '0');
    return out;
  }
  const size_t scale = static_cast<size_t>(number.scale);
  if (number.digits.empty()) {
    out += "0.";
    out.append(scale, '0');
  } else if (digits.size() > scale) {
    out.append(digits, 0, digits.size() - scale);
    out.push_back('.');
    out.append(digits, digits.size() - scale, std::string::npos);
  } else {
    out += "0.";
    out.append(scale - digits.size(), '0');
    out += digits;
  }
  return out;
}

}  // namespace weir::internal
