// Writing JSON text: a small streaming writer for records leaving a pipeline
// (Kafka values, ClickHouse JSONEachRow rows, webhook payloads, Debezium
// envelopes in tests and generators). It appends to a std::string, escapes
// strings per RFC 8259, writes doubles as the shortest text that reads back
// as the same value, and inserts the commas itself.
//
// Example:
//
//   std::string out;
//   weir::json::Writer json(out);
//   json.BeginObject()
//       .Key("id").Int(42)
//       .Key("slug").String("intro \"to\" weir")
//       .Key("pct").Optional(std::optional<double>())  // null
//       .Key("payload").Raw(R"({"a":1})")               // already JSON
//       .EndObject();
//   // out == R"({"id":42,"slug":"intro \"to\" weir","pct":null,"payload":{"a":1}})"
//
// Not thread-safe; one writer per output string. Mismatched Begin/End calls
// are programming errors (checked with assert in debug builds).

#ifndef WEIR_FORMATS_JSON_H_
#define WEIR_FORMATS_JSON_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/container/inlined_vector.h"

namespace weir::json {

// Appends `value` as a quoted, escaped JSON string (control characters as
// \uXXXX; bytes >= 0x80 are copied, so valid UTF-8 stays valid).
void AppendString(std::string_view value, std::string& out);
// Appends `value` as the shortest JSON number that reads back as the same
// double; NaN and infinities (which JSON lacks) as null.
void AppendDouble(double value, std::string& out);
void AppendInt(int64_t value, std::string& out);
void AppendUint(uint64_t value, std::string& out);

// A member name written as a string literal, checked when the program is
// compiled: a name that JSON needs escaped (a quote, a backslash, a control
// character) does not compile; give such a name as a std::string_view, and
// the writer escapes it. The writer then appends the name with its quotes
// and checks nothing. (Two words, passed in registers: a prepared copy of
// the quoted text, built on the stack at each call, cost more than the
// check it saved.)
class Name {
 public:
  template <size_t N>
  consteval Name(const char (&name)[N]) : text_(name, N - 1) {  // NOLINT: implicit on purpose
    for (const char c : text_) {
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
        NameNeedsEscapingUseAStringView();
      }
    }
  }
  constexpr std::string_view text() const { return text_; }

 private:
  // Not constexpr: a name that calls it fails to compile, naming it.
  static void NameNeedsEscapingUseAStringView();

  std::string_view text_;
};

namespace internal {
// A name given at run time (std::string, std::string_view, const char*),
// not a literal (which converts to Name).
template <class S>
concept RuntimeName = std::is_convertible_v<const S&, std::string_view> && !std::is_array_v<S>;
}  // namespace internal

class Writer {
 public:
  // Appends to `out` (which is not cleared).
  explicit Writer(std::string& out) : out_(out) {}

  Writer& BeginObject() { return Open('{'); }
  Writer& EndObject() { return Close('}'); }
  Writer& BeginArray() { return Open('['); }
  Writer& EndArray() { return Close(']'); }
  // The name of the next member of the current object: a string literal
  // (see Name), or a string given at run time, escaped as needed.
  Writer& Key(Name name);
  template <internal::RuntimeName S>
  Writer& Key(const S& name) {
    return KeyText(std::string_view(name));
  }

  Writer& String(std::string_view value);
  Writer& Int(int64_t value);
  Writer& Uint(uint64_t value);
  Writer& Double(double value);
  Writer& Bool(bool value);
  Writer& Null();
  // `json` must already be valid JSON text (e.g. a JSONB column).
  Writer& Raw(std::string_view json);

  // Any of the above by type: integers, floating point, bool, strings, and
  // std::optional of them (nullopt writes null).
  template <class T>
  Writer& Value(const T& value) {
    if constexpr (std::is_same_v<T, bool>) {
      return Bool(value);
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      return Int(value);
    } else if constexpr (std::is_integral_v<T>) {
      return Uint(value);
    } else if constexpr (std::is_floating_point_v<T>) {
      return Double(value);
    } else {
      return String(std::string_view(value));
    }
  }
  template <class T>
  Writer& Optional(const std::optional<T>& value) {
    return value ? Value(*value) : Null();
  }
  // Key(name) then Value(value) / Optional(value).
  template <class T>
  Writer& Member(Name name, const T& value) {
    Key(name);
    return Value(value);
  }
  template <class T>
  Writer& Member(Name name, const std::optional<T>& value) {
    Key(name);
    return Optional(value);
  }
  template <internal::RuntimeName S, class T>
  Writer& Member(const S& name, const T& value) {
    KeyText(std::string_view(name));
    return Value(value);
  }
  template <internal::RuntimeName S, class T>
  Writer& Member(const S& name, const std::optional<T>& value) {
    KeyText(std::string_view(name));
    return Optional(value);
  }

 private:
  Writer& Open(char bracket);
  Writer& Close(char bracket);
  // Writes the comma that separates this value from the previous one.
  void BeforeValue();
  Writer& KeyText(std::string_view name);
  // `name` needs no escapes.
  Writer& CleanKey(std::string_view name);

  std::string& out_;
  // Per open container: whether it has a value yet (so the next needs a
  // comma). Inline for the usual depths: writing a record allocates nothing.
  absl::InlinedVector<bool, 16> has_value_;
  bool after_key_ = false;
};

}  // namespace weir::json

#endif  // WEIR_FORMATS_JSON_H_
