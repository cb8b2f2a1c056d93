// Small helpers over simdjson's On-Demand API shared by the JSON formats:
// error mapping, strict validation of values a decoder does not use, number
// tokens and the descriptions of values in error messages.
//
// On-Demand parses lazily and skips unused values without validating them;
// decoders call SkipValue instead, so a malformed message is rejected even
// when the damage is in a field nobody reads.

#ifndef WEIR_LIB_FORMATS_JSON_READER_H_
#define WEIR_LIB_FORMATS_JSON_READER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "simdjson.h"

namespace weir::internal {

// Deeper JSON is rejected (Debezium events nest about five levels).
inline constexpr int kMaxJsonDepth = 64;

// kDataLoss for malformed JSON (including INCORRECT_TYPE: callers check a
// value's type before they read it), kInvalidArgument for numbers out of
// range and nesting beyond kMaxJsonDepth.
absl::Status JsonError(simdjson::error_code error);

// Reads `value` and everything inside it, validating it; `depth` is its
// nesting level (the root is 0).
absl::Status SkipValue(simdjson::ondemand::value& value, int depth);

absl::StatusOr<simdjson::ondemand::json_type> TypeOf(simdjson::ondemand::value& value);

// True (and the value read) when `value` is a valid null literal; false
// (nothing read) for any other type.
absl::StatusOr<bool> ReadNull(simdjson::ondemand::value& value);

// The text of a number value (checked against JSON's number grammar).
absl::StatusOr<std::string_view> NumberText(simdjson::ondemand::value& value);

// A number without fraction or exponent; kInvalidArgument otherwise
// ("expected integer, got number 1.5"). Values beyond int128 are out of range.
absl::StatusOr<absl::int128> ReadInteger(simdjson::ondemand::value& value);

// An integer that fits int64.
absl::StatusOr<int64_t> ReadInt64(simdjson::ondemand::value& value);

// A string value, unescaped; valid until the parser parses the next document.
absl::StatusOr<std::string_view> ReadString(simdjson::ondemand::value& value);

// `string "abc"`, `number 1.5`, `boolean true`, `null`, `object`, `array`;
// reads the value.
std::string Describe(simdjson::ondemand::value& value);

// kInvalidArgument "expected <what>, got <Describe(value)>".
absl::Status Unexpected(std::string_view what, simdjson::ondemand::value& value);

// kDataLoss when anything but whitespace follows the document's root value
// (call after reading the root completely).
absl::Status CheckDocumentEnd(simdjson::ondemand::document& document);

// `text` quoted and escaped for an error message, cut after 48 bytes.
std::string QuoteForError(std::string_view text);

}  // namespace weir::internal

#endif  // WEIR_LIB_FORMATS_JSON_READER_H_
