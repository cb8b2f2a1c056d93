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
#include <optional>
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

// Whether `json` is empty or the literal null (surrounding whitespace aside):
// a Kafka tombstone.
bool IsBlankOrNull(std::string_view json);

// Reads an object's raw text into `text`, or leaves it empty for null (the
// "schema" and "payload" members of JsonConverter's wrapper, an envelope's
// rows); any other value is kInvalidArgument `field "<what>": expected object
// or null, got ...`.
absl::Status CaptureObjectOrNull(simdjson::ondemand::value& value, std::string_view what,
                                 std::optional<std::string_view>& text);

// A message copied into a buffer with the padding simdjson reads past the
// end, and the parser that reads it. Views into the buffer (a nested object's
// raw text) can be parsed again without another copy. Not thread-safe.
class PaddedJson {
 public:
  // Copies `json` in; the previous message's views become invalid.
  void Load(std::string_view json);
  // The whole message last loaded.
  std::string_view whole() const { return std::string_view(buffer_.data(), length_); }
  // Starts parsing `inside` (whole() or a view into it) as a document.
  absl::Status Iterate(std::string_view inside, simdjson::ondemand::document& document);
  // Load(json), then its top level as an object in `top` (read through
  // `document`, which must outlive it); kInvalidArgument "<what>: expected a
  // JSON object" when it is another value.
  absl::Status LoadObject(std::string_view json, std::string_view what,
                          simdjson::ondemand::document& document, simdjson::ondemand::object& top);

 private:
  simdjson::ondemand::parser parser_;
  std::string buffer_;
  size_t length_ = 0;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_FORMATS_JSON_READER_H_
