#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "weir/formats/json.h"

namespace weir::json {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;

// True when one of the 8 bytes of `word` must be escaped: a control
// character (< 0x20), '"' or '\\'. (SWAR: a byte b is < n when
// (b - n) & ~b has its high bit set; equal to c when b ^ c is zero.)
bool NeedsEscape(uint64_t word) {
  const uint64_t control = (word - kOnes * 0x20) & ~word;
  const uint64_t quote = word ^ (kOnes * '"');
  const uint64_t backslash = word ^ (kOnes * '\\');
  const uint64_t zero_quote = (quote - kOnes) & ~quote;
  const uint64_t zero_backslash = (backslash - kOnes) & ~backslash;
  return ((control | zero_quote | zero_backslash) & kHighs) != 0;
}

}  // namespace

void AppendString(std::string_view value, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run_start = 0;
  for (size_t pos = 0; pos < value.size(); ++pos) {
    // Skip 8 bytes at a time while none needs escaping (the common case).
    while (pos + 8 <= value.size()) {
      uint64_t word;
      std::memcpy(&word, value.data() + pos, sizeof(word));
      if (NeedsEscape(word)) break;
      pos += 8;
    }
    if (pos >= value.size()) break;
    const unsigned char c = static_cast<unsigned char>(value[pos]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.data() + run_start, pos - run_start);
    run_start = pos + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      default: {
        const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(escaped, sizeof(escaped));
      }
    }
  }
  out.append(value.data() + run_start, value.size() - run_start);
  out.push_back('"');
}

void AppendDouble(double value, std::string& out) {
  if (!std::isfinite(value)) {
    out.append("null");
    return;
  }
  char buffer[32];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

void AppendInt(int64_t value, std::string& out) {
  char buffer[24];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

void AppendUint(uint64_t value, std::string& out) {
  char buffer[24];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

void Writer::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_value_.empty()) {
    if (has_value_.back()) out_.push_back(',');
    has_value_.back() = true;
  }
}

Writer& Writer::Open(char bracket) {
  BeforeValue();
  out_.push_back(bracket);
  has_value_.push_back(false);
  return *this;
}

Writer& Writer::Close(char bracket) {
  assert(!has_value_.empty() && !after_key_);
  has_value_.pop_back();
  out_.push_back(bracket);
  return *this;
}

Writer& Writer::Key(std::string_view name) {
  assert(!has_value_.empty() && !after_key_);
  if (has_value_.back()) out_.push_back(',');
  has_value_.back() = true;
  AppendString(name, out_);
  out_.push_back(':');
  after_key_ = true;
  return *this;
}

Writer& Writer::String(std::string_view value) {
  BeforeValue();
  AppendString(value, out_);
  return *this;
}

Writer& Writer::Int(int64_t value) {
  BeforeValue();
  AppendInt(value, out_);
  return *this;
}

Writer& Writer::Uint(uint64_t value) {
  BeforeValue();
  AppendUint(value, out_);
  return *this;
}

Writer& Writer::Double(double value) {
  BeforeValue();
  AppendDouble(value, out_);
  return *this;
}

Writer& Writer::Bool(bool value) {
  BeforeValue();
  out_.append(value ? "true" : "false");
  return *this;
}

Writer& Writer::Null() {
  BeforeValue();
  out_.append("null");
  return *this;
}

Writer& Writer::Raw(std::string_view json) {
  BeforeValue();
  out_.append(json);
  return *this;
}

}  // namespace weir::json
