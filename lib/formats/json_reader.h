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
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "simdjson.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// JSON's whitespace.
inline bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// True when one of the `n` bytes at `p` is a backslash. `p` must point into
// a document being parsed (PaddedJson): its buffer has SIMDJSON_PADDING
// readable bytes after the text, so whole 16-byte blocks are read (SSE2,
// which every x86-64 CPU has) and the bytes past the `n` are ignored.
inline bool HasBackslash(const char* p, size_t n) {
#if defined(__SSE2__)
  static_assert(simdjson::SIMDJSON_PADDING >= 16);
  const __m128i backslash = _mm_set1_epi8('\\');
  for (size_t pos = 0; pos < n; pos += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + pos));
    auto mask = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, backslash)));
    if (n - pos < 16) mask &= (uint32_t{1} << (n - pos)) - 1;
    if (mask != 0) return true;
  }
  return false;
#else
  return std::memchr(p, '\\', n) != nullptr;
#endif
}

// A field's key, unescaped. A key without a backslash (nearly every key) is
// its raw text in the message, with nothing copied: stage 1 has already
// checked its UTF-8 and that it holds no control character. Its closing
// quote is found back from the value's start (`"key"` ws `:` ws value), so
// no byte of it is scanned one at a time. A key with an escape is unescaped
// (and its escapes checked) by simdjson.
inline simdjson::error_code FieldKey(simdjson::ondemand::field& field, std::string_view& key) {
  const char* const raw = field.key().raw();
  const char* at = field.value().raw_json_token().data() - 1;
  while (at >= raw && IsJsonSpace(*at)) --at;
  if (at >= raw && *at == ':') {
    --at;
    while (at >= raw && IsJsonSpace(*at)) --at;
    if (at >= raw && *at == '"') {
      const auto size = static_cast<size_t>(at - raw);
      if (!HasBackslash(raw, size)) {
        key = std::string_view(raw, size);
        return simdjson::SUCCESS;
      }
    }
  }
  return field.unescaped_key().get(key);
}

// True (and the value read) when `value` is a valid null literal; false
// (nothing read) for any other type.
absl::StatusOr<bool> ReadNullLiteral(simdjson::ondemand::value& value);
inline absl::StatusOr<bool> ReadNull(simdjson::ondemand::value& value) {
  // Only a value starting with `n` can be null; anything else (malformed
  // too) is left to the reader of its type.
  if (value.raw_json_token().front() != 'n') return false;
  return ReadNullLiteral(value);
}

// The text of a number value (checked against JSON's number grammar).
absl::StatusOr<std::string_view> NumberText(simdjson::ondemand::value& value);

// Whether the 8 bytes at `at` are all ASCII digits, and if so their value
// (SWAR: one 64-bit load and three multiplications instead of 8 steps).
inline bool EightDigits(const char* at, uint64_t& value) {
  uint64_t chunk = 0;
  std::memcpy(&chunk, at, sizeof(chunk));
  // Every byte 0x30-0x39: its high nibble is 3, and adding 6 does not carry
  // it out of 0x3_.
  constexpr uint64_t kHigh = 0xF0F0F0F0F0F0F0F0;
  if ((chunk & kHigh) != 0x3030303030303030 ||
      ((chunk + 0x0606060606060606) & kHigh) != 0x3030303030303030) {
    return false;
  }
  chunk -= 0x3030303030303030;        // byte i = digit i (first digit lowest)
  chunk = chunk * 10 + (chunk >> 8);  // pairs: 2-digit numbers in bytes 0, 2, 4, 6
  constexpr uint64_t kPairMask = 0x000000FF000000FF;
  constexpr uint64_t kMul1 = 100 + (1000000ULL << 32);
  constexpr uint64_t kMul2 = 1 + (10000ULL << 32);
  value = (((chunk & kPairMask) * kMul1) + (((chunk >> 16) & kPairMask) * kMul2)) >> 32;
  return true;
}

// The common integer, done in one pass: an optional minus and 1-19 digits
// without a leading zero, then at most whitespace up to the next structural
// character, whose value fits an int64 (19 digits are checked against its
// range; 64-bit ids and hashes have 19). Anything else (longer, beyond
// int64, fractional, malformed, not a number) returns false and takes the
// general path, which says what is wrong.
inline bool ReadShortInteger(simdjson::ondemand::value& value, int64_t& out) {
  const std::string_view token = value.raw_json_token();
  const char* at = token.data();
  const char* const end = at + token.size();
  const bool negative = at != end && *at == '-';
  if (negative) ++at;
  const char* const digits = at;
  const char* const limit = end - at > 19 ? at + 19 : end;
  uint64_t result = 0;
  for (uint64_t eight = 0; limit - at >= 8 && EightDigits(at, eight); at += 8) {
    result = result * 100'000'000 + eight;
  }
  for (; at != limit; ++at) {
    const auto digit = static_cast<uint64_t>(static_cast<unsigned char>(*at) - '0');
    if (digit > 9) break;
    result = result * 10 + digit;
  }
  const size_t count = static_cast<size_t>(at - digits);
  if (count == 0 || (count > 1 && *digits == '0')) return false;
  // 19 digits stay below 10^19 < 2^64, so `result` has not wrapped; the
  // limit is 2^63 - 1, or 2^63 with a minus.
  constexpr uint64_t kMaxPositive = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (count == 19 && result > kMaxPositive + (negative ? 1 : 0)) return false;
  for (; at != end; ++at) {
    if (!IsJsonSpace(*at)) return false;
  }
  // Negated in unsigned arithmetic: -2^63 has no positive int64.
  out = static_cast<int64_t>(negative ? 0 - result : result);
  return true;
}

// A number without fraction or exponent; kInvalidArgument otherwise
// ("expected integer, got number 1.5"). Values beyond int128 are out of range.
absl::StatusOr<absl::int128> ReadInteger(simdjson::ondemand::value& value);

// An integer that fits int64.
absl::StatusOr<int64_t> ReadInt64(simdjson::ondemand::value& value);

// A string value, unescaped; valid until the parser parses the next document.
absl::StatusOr<std::string_view> UnescapeString(simdjson::ondemand::value& value);
inline absl::StatusOr<std::string_view> ReadString(simdjson::ondemand::value& value) {
  // A string without a backslash is its raw text in the message: stage 1
  // has checked its UTF-8 and that it holds no control character. Its token
  // runs to the next structural character, so the closing quote is its last
  // byte but whitespace. Others are unescaped (and their escapes checked) by
  // simdjson.
  const std::string_view token = value.raw_json_token();
  if (token.size() >= 2 && token.front() == '"') {
    size_t end = token.size();
    while (end > 2 && IsJsonSpace(token[end - 1])) --end;
    if (token[end - 1] == '"') {
      const std::string_view text = token.substr(1, end - 2);
      if (!HasBackslash(text.data(), text.size())) return text;
    }
  }
  return UnescapeString(value);
}

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
