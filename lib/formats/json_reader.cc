#include "lib/formats/json_reader.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "lib/common/status.h"
#include "lib/formats/str_cat.h"
#include "simdjson.h"

namespace weir::internal {
namespace {

namespace ondemand = simdjson::ondemand;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view text) {
  size_t pos = 0;
  const size_t size = text.size();
  if (pos < size && text[pos] == '-') ++pos;
  if (pos >= size) return false;
  if (text[pos] == '0') {
    ++pos;
  } else if (IsDigit(text[pos])) {
    while (pos < size && IsDigit(text[pos])) ++pos;
  } else {
    return false;
  }
  if (pos < size && text[pos] == '.') {
    ++pos;
    if (pos >= size || !IsDigit(text[pos])) return false;
    while (pos < size && IsDigit(text[pos])) ++pos;
  }
  if (pos < size && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    if (pos < size && (text[pos] == '+' || text[pos] == '-')) ++pos;
    if (pos >= size || !IsDigit(text[pos])) return false;
    while (pos < size && IsDigit(text[pos])) ++pos;
  }
  return pos == size;
}

std::string_view TrimTrailingSpace(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                           text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

absl::Status JsonError(simdjson::error_code error) {
  switch (error) {
    case simdjson::NUMBER_OUT_OF_RANGE:
    case simdjson::NO_SUCH_FIELD:
    case simdjson::INDEX_OUT_OF_BOUNDS:
      return absl::InvalidArgumentError(simdjson::error_message(error));
    case simdjson::DEPTH_ERROR:
      return absl::InvalidArgumentError(Cat("JSON nested deeper than ", kMaxJsonDepth, " levels"));
    case simdjson::INCORRECT_TYPE:
      // Callers check a value's type before reading it, so this is a bad
      // literal such as `tru`.
      return absl::DataLossError("malformed JSON: invalid literal");
    default:
      return absl::DataLossError(Cat("malformed JSON: ", simdjson::error_message(error)));
  }
}

absl::Status SkipValue(ondemand::value& value, int depth) {
  if (depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError(Cat("JSON nested deeper than ", kMaxJsonDepth, " levels"));
  }
  ondemand::json_type type;
  if (auto error = value.type().get(type)) return JsonError(error);
  switch (type) {
    case ondemand::json_type::object: {
      ondemand::object object;
      if (auto error = value.get_object().get(object)) return JsonError(error);
      for (auto field_result : object) {
        if (auto error = field_result.error()) return JsonError(error);
        ondemand::field& field = field_result.value_unsafe();
        std::string_view key;
        if (auto error = FieldKey(field, key)) return JsonError(error);
        if (absl::Status status = SkipValue(field.value(), depth + 1); !status.ok()) return status;
      }
      return absl::OkStatus();
    }
    case ondemand::json_type::array: {
      ondemand::array array;
      if (auto error = value.get_array().get(array)) return JsonError(error);
      for (auto element_result : array) {
        if (auto error = element_result.error()) return JsonError(error);
        ondemand::value& element = element_result.value_unsafe();
        if (absl::Status status = SkipValue(element, depth + 1); !status.ok()) return status;
      }
      return absl::OkStatus();
    }
    case ondemand::json_type::string:
      return ReadString(value).status();
    case ondemand::json_type::number:
      return NumberText(value).status();
    case ondemand::json_type::boolean: {
      bool flag = false;
      if (auto error = value.get_bool().get(flag)) return JsonError(error);
      return absl::OkStatus();
    }
    case ondemand::json_type::null:
      return ReadNull(value).status();
  }
  return absl::DataLossError("malformed JSON: unknown value type");
}

absl::StatusOr<ondemand::json_type> TypeOf(ondemand::value& value) {
  ondemand::json_type type;
  if (auto error = value.type().get(type)) return JsonError(error);
  return type;
}

absl::StatusOr<bool> ReadNullLiteral(ondemand::value& value) {
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  if (*type != ondemand::json_type::null) return false;
  bool is_null = false;
  if (auto error = value.is_null().get(is_null)) return JsonError(error);
  if (!is_null) return absl::DataLossError("malformed JSON: invalid literal");
  return true;
}

absl::StatusOr<std::string_view> NumberText(ondemand::value& value) {
  const std::string_view text = TrimTrailingSpace(value.raw_json_token());
  if (!IsJsonNumber(text)) {
    return absl::DataLossError(Cat("malformed JSON: invalid number ", QuoteForError(text)));
  }
  return text;
}

absl::StatusOr<absl::int128> ReadInteger(ondemand::value& value) {
  if (int64_t fast = 0; ReadShortInteger(value, fast)) return absl::int128(fast);
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  if (*type != ondemand::json_type::number) return Unexpected("integer", value);
  absl::StatusOr<std::string_view> text = NumberText(value);
  if (!text.ok()) return text.status();
  std::string_view digits = *text;
  const bool negative = !digits.empty() && digits.front() == '-';
  if (negative) digits.remove_prefix(1);
  for (char c : digits) {
    if (!IsDigit(c)) {
      return absl::InvalidArgumentError(Cat("expected integer, got number ", *text));
    }
  }
  // 38 digits always fit an int128.
  if (digits.size() > 38) {
    return absl::InvalidArgumentError(Cat("integer ", QuoteForError(*text), " out of range"));
  }
  absl::int128 result = 0;
  for (char c : digits) result = result * 10 + (c - '0');
  return negative ? -result : result;
}

absl::StatusOr<int64_t> ReadInt64(ondemand::value& value) {
  if (int64_t fast = 0; ReadShortInteger(value, fast)) return fast;
  absl::StatusOr<absl::int128> integer = ReadInteger(value);
  if (!integer.ok()) return integer.status();
  if (*integer > std::numeric_limits<int64_t>::max() ||
      *integer < std::numeric_limits<int64_t>::min()) {
    return absl::InvalidArgumentError("integer out of range for int64");
  }
  return static_cast<int64_t>(*integer);
}

absl::StatusOr<std::string_view> UnescapeString(ondemand::value& value) {
  absl::StatusOr<ondemand::json_type> type = TypeOf(value);
  if (!type.ok()) return type.status();
  if (*type != ondemand::json_type::string) return Unexpected("string", value);
  std::string_view text;
  if (auto error = value.get_string().get(text)) return JsonError(error);
  return text;
}

std::string Describe(ondemand::value& value) {
  ondemand::json_type type;
  if (value.type().get(type)) return "malformed JSON";
  switch (type) {
    case ondemand::json_type::object:
      return "object";
    case ondemand::json_type::array:
      return "array";
    case ondemand::json_type::string: {
      std::string_view text;
      if (value.get_string().get(text)) return "malformed string";
      return Cat("string ", QuoteForError(text));
    }
    case ondemand::json_type::number: {
      std::string_view text = TrimTrailingSpace(value.raw_json_token());
      if (text.size() > 48) return Cat("number ", text.substr(0, 45), "...");
      return Cat("number ", text);
    }
    case ondemand::json_type::boolean: {
      bool flag = false;
      if (value.get_bool().get(flag)) return "malformed literal";
      return flag ? "boolean true" : "boolean false";
    }
    case ondemand::json_type::null:
      return "null";
  }
  return "unknown value";
}

absl::Status Unexpected(std::string_view what, ondemand::value& value) {
  return absl::InvalidArgumentError(Cat("expected ", what, ", got ", Describe(value)));
}

absl::Status CheckDocumentEnd(ondemand::document& document) {
  const char* location = nullptr;
  if (document.current_location().get(location) == simdjson::SUCCESS) {
    return absl::DataLossError("malformed JSON: trailing content after the value");
  }
  return absl::OkStatus();
}

std::string QuoteForError(std::string_view text) {
  if (text.size() > 48) {
    return Cat("\"", absl::CHexEscape(ToAbsl(text.substr(0, 45))), "...\"");
  }
  return Cat("\"", absl::CHexEscape(ToAbsl(text)), "\"");
}

bool IsBlankOrNull(std::string_view json) {
  size_t begin = 0;
  size_t end = json.size();
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (begin < end && space(json[begin])) ++begin;
  while (end > begin && space(json[end - 1])) --end;
  const std::string_view trimmed = json.substr(begin, end - begin);
  return trimmed.empty() || trimmed == "null";
}

absl::Status CaptureObjectOrNull(simdjson::ondemand::value& value, std::string_view what,
                                 std::optional<std::string_view>& text) {
  text.reset();
  absl::StatusOr<bool> is_null = ReadNull(value);
  if (!is_null.ok() || *is_null) return is_null.status();
  simdjson::ondemand::object object;
  if (value.get_object().get(object)) {
    return Annotate(Unexpected("object or null", value), Cat("field \"", what, "\""));
  }
  std::string_view raw;
  if (auto error = object.raw_json().get(raw)) return JsonError(error);
  text = raw;
  return absl::OkStatus();
}

void PaddedJson::Load(std::string_view json) {
  if (buffer_.size() < json.size() + simdjson::SIMDJSON_PADDING) {
    buffer_.resize(json.size() + simdjson::SIMDJSON_PADDING);
  }
  std::memcpy(buffer_.data(), json.data(), json.size());
  std::memset(buffer_.data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
  length_ = json.size();
}

// This file is compiled without -mavx2, so `ondemand` is simdjson's
// `fallback` namespace; yet the SIMD part of On Demand, finding the
// structural characters (stage 1), runs in the implementation simdjson picks
// for the CPU at run time (get_active_implementation(): icelake or haswell
// on current x86): ondemand::parser::allocate creates it. Compiling this
// code for simdjson's haswell or icelake namespace changed no measured
// figure; only the navigation and the string and number parsing after stage
// 1 are scalar.
absl::Status PaddedJson::Iterate(std::string_view inside, simdjson::ondemand::document& document) {
  const size_t offset = static_cast<size_t>(inside.data() - buffer_.data());
  const simdjson::padded_string_view view(inside.data(), inside.size(), buffer_.size() - offset);
  if (auto error = parser_.iterate(view).get(document)) return JsonError(error);
  return absl::OkStatus();
}

absl::Status PaddedJson::LoadObject(std::string_view json, std::string_view what,
                                    simdjson::ondemand::document& document,
                                    simdjson::ondemand::object& top) {
  Load(json);
  if (absl::Status status = Iterate(whole(), document); !status.ok()) return status;
  if (auto error = document.get_object().get(top)) {
    if (error == simdjson::INCORRECT_TYPE) {
      return absl::InvalidArgumentError(Cat(what, ": expected a JSON object"));
    }
    return JsonError(error);
  }
  return absl::OkStatus();
}

}  // namespace weir::internal
