#include <bit>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "weir/formats/json.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace weir::json {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;

// The high bit of each of the 8 bytes of `word` that must be escaped: a
// control character (< 0x20), '"' or '\\'. (SWAR: a byte b is < n when
// (b - n) & ~b has its high bit set; equal to c when b ^ c is zero.) A
// borrow can set the bit of a byte above one that must be escaped, never
// below: the lowest bit set is exact, and the result is zero exactly when
// no byte must be escaped.
uint64_t EscapeBits(uint64_t word) {
  const uint64_t control = (word - kOnes * 0x20) & ~word;
  const uint64_t quote = word ^ (kOnes * '"');
  const uint64_t backslash = word ^ (kOnes * '\\');
  const uint64_t zero_quote = (quote - kOnes) & ~quote;
  const uint64_t zero_backslash = (backslash - kOnes) & ~backslash;
  return (control | zero_quote | zero_backslash) & kHighs;
}

bool MustEscape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

uint64_t Load64(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof(word));
  return word;
}

uint32_t Load32(const char* p) {
  uint32_t word;
  std::memcpy(&word, p, sizeof(word));
  return word;
}

#if defined(__SSE2__)
// The bytes of `v` that must be escaped, one bit each (SSE2, which every
// x86-64 CPU has).
uint32_t EscapeMask(__m128i v) {
  const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
  const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
  const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);  // <= 0x1f
  return static_cast<uint32_t>(
      _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)));
}

__m128i Load128(const char* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
#endif

// True when none of the `n` bytes at `p` must be escaped (the common case:
// keys, ids, most text). Never reads past the end: the last block of a
// value overlaps the one before it, and 8 to 15 bytes (4 to 7) are read as
// two overlapping halves.
bool IsClean(const char* p, size_t n) {
#if defined(__SSE2__)
  if (n >= 16) {
    for (size_t pos = 0; pos + 16 <= n; pos += 16) {
      if (EscapeMask(Load128(p + pos)) != 0) return false;
    }
    return EscapeMask(Load128(p + n - 16)) == 0;
  }
  if (n >= 8) {
    const auto halves =
        _mm_set_epi64x(static_cast<int64_t>(Load64(p + n - 8)), static_cast<int64_t>(Load64(p)));
    return EscapeMask(halves) == 0;
  }
#else
  if (n >= 8) {
    for (size_t pos = 0; pos + 8 <= n; pos += 8) {
      if (EscapeBits(Load64(p + pos)) != 0) return false;
    }
    return EscapeBits(Load64(p + n - 8)) == 0;
  }
#endif
  if (n >= 4) {
    return EscapeBits(Load32(p) | (uint64_t{Load32(p + n - 4)} << 32)) == 0;
  }
  for (size_t pos = 0; pos < n; ++pos) {
    if (MustEscape(static_cast<unsigned char>(p[pos]))) return false;
  }
  return true;
}

// The number of bytes at `p` (of `n`) before the first that must be escaped.
size_t CleanPrefix(const char* p, size_t n) {
  size_t pos = 0;
#if defined(__SSE2__)
  for (; pos + 16 <= n; pos += 16) {
    if (const uint32_t mask = EscapeMask(Load128(p + pos)); mask != 0) {
      return pos + static_cast<size_t>(std::countr_zero(mask));
    }
  }
#endif
  for (; pos + 8 <= n; pos += 8) {
    if (const uint64_t bits = EscapeBits(Load64(p + pos)); bits != 0) {
      return pos + static_cast<size_t>(std::countr_zero(bits)) / 8;
    }
  }
  for (; pos < n; ++pos) {
    if (MustEscape(static_cast<unsigned char>(p[pos]))) return pos;
  }
  return n;
}

void AppendEscaped(unsigned char c, std::string& out) {
  // JSON's two-character escapes; any other control character is \u00XX.
  static constexpr std::pair<char, char> kShort[] = {
      {'"', '"'}, {'\\', '\\'}, {'\n', 'n'}, {'\r', 'r'}, {'\t', 't'}, {'\b', 'b'}, {'\f', 'f'}};
  for (const auto& [raw, letter] : kShort) {
    if (c == static_cast<unsigned char>(raw)) {
      const char escaped[] = {'\\', letter};
      out.append(escaped, sizeof(escaped));
      return;
    }
  }
  static constexpr char kHex[] = "0123456789abcdef";
  const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
  out.append(escaped, sizeof(escaped));
}

// AppendString for a value with at least one byte to escape: each clean run
// is copied whole, then the byte that ends it is escaped. Out of line, so
// that the common, clean case saves no registers for it.
[[gnu::noinline]] void AppendWithEscapes(const char* p, size_t n, std::string& out) {
  out.push_back('"');
  for (size_t clean = CleanPrefix(p, n); clean < n; clean = CleanPrefix(p, n)) {
    out.append(p, clean);
    AppendEscaped(static_cast<unsigned char>(p[clean]), out);
    p += clean + 1;
    n -= clean + 1;
  }
  out.append(p, n);
  out.push_back('"');
}

// "00" to "99": two digits per division by 100.
constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

// Digits of the largest uint64.
constexpr size_t kMaxDigits = 20;

// Writes the decimal digits of `value` so that they end just before `end`;
// returns where they begin.
char* WriteDigits(uint64_t value, char* end) {
  while (value >= 100) {
    const uint64_t pair = value % 100;
    value /= 100;
    end -= 2;
    std::memcpy(end, kDigitPairs + 2 * pair, 2);
  }
  if (value >= 10) {
    end -= 2;
    std::memcpy(end, kDigitPairs + 2 * value, 2);
  } else {
    *--end = static_cast<char>('0' + value);
  }
  return end;
}

// The common double of a JSON record, written without the general shortest
// conversion: one with at most 3 digits after the decimal point (a duration
// in milliseconds as seconds, money, a rounded ratio), at least 0.001 and
// below 10^12. The output is what std::to_chars(value) writes, character
// for character: the shortest digits that read back as `value`, as a fixed
// number or in scientific notation, whichever is shorter (fixed on a tie).
// Returns false, writing nothing, for any other value.
//
// Why the digits are the shortest: m = round(value * 1000) is the only
// candidate (below 10^12 a double is within 2^-14 of any decimal that reads
// back as it, so value * 1000 lies within 0.13 of that decimal's m), and
// m / 1000 reads back as `value` exactly when the division, of two exact
// doubles, gives `value` (it rounds the true quotient to the nearest double,
// as reading the text does). Trailing zeros of m are decimals it does not
// need. A double's spacing there is at most 2^-13, finer than 10^-3, so no
// other decimal with as few digits reads back as `value`.
bool AppendShortDecimal(double value, std::string& out) {
  const double magnitude = std::fabs(value);
  if (!(magnitude >= 1e-3 && magnitude < 1e12)) return false;
  const double thousandths = std::nearbyint(magnitude * 1000.0);
  if (thousandths / 1000.0 != magnitude) return false;
  auto m = static_cast<uint64_t>(thousandths);  // < 10^15: exact
  int decimals = 3;
  while (decimals > 0 && m % 10 == 0) {
    m /= 10;
    --decimals;
  }
  char digits[kMaxDigits];
  char* const digits_end = digits + sizeof(digits);
  const char* const first = WriteDigits(m, digits_end);
  const auto count = static_cast<int>(digits_end - first);
  // Significant digits: m without trailing zeros (only an integer can
  // still have them: those of the decimals were dropped above).
  int significant = count;
  while (significant > 1 && first[significant - 1] == '0') --significant;
  // The exponent of the leading digit, -3 to 11: two exponent digits.
  const int exponent = count - 1 - decimals;
  const int scientific = significant + (significant > 1 ? 1 : 0) + 4;
  const int fixed = decimals == 0 ? count : (count > decimals ? count + 1 : decimals + 2);
  // Assembled here, appended at once.
  char text[32];
  char* at = text;
  if (value < 0) *at++ = '-';
  auto put = [&at](const char* from, int n) {
    std::memcpy(at, from, static_cast<size_t>(n));
    at += n;
  };
  if (fixed <= scientific) {
    if (decimals == 0) {
      put(first, count);
    } else if (count > decimals) {
      put(first, count - decimals);
      *at++ = '.';
      put(digits_end - decimals, decimals);
    } else {
      put("0.000", 2 + decimals - count);
      put(first, count);
    }
  } else {
    *at++ = first[0];
    if (significant > 1) {
      *at++ = '.';
      put(first + 1, significant - 1);
    }
    const int magnitude_of_exponent = exponent < 0 ? -exponent : exponent;
    *at++ = 'e';
    *at++ = exponent < 0 ? '-' : '+';
    *at++ = static_cast<char>('0' + magnitude_of_exponent / 10);
    *at++ = static_cast<char>('0' + magnitude_of_exponent % 10);
  }
  out.append(text, static_cast<size_t>(at - text));
  return true;
}

}  // namespace

void AppendString(std::string_view value, std::string& out) {
  if (!IsClean(value.data(), value.size())) {
    AppendWithEscapes(value.data(), value.size(), out);
    return;
  }
  // One append of the quotes and the room between them, then the value.
  const size_t at = out.size();
  out.append(value.size() + 2, '"');
  if (!value.empty()) std::memcpy(out.data() + at + 1, value.data(), value.size());
}

void AppendDouble(double value, std::string& out) {
  if (!std::isfinite(value)) {
    out.append("null");
    return;
  }
  if (AppendShortDecimal(value, out)) return;
  char buffer[32];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

void AppendInt(int64_t value, std::string& out) {
  char buffer[kMaxDigits + 1];
  char* const end = buffer + sizeof(buffer);
  // The magnitude in unsigned arithmetic: INT64_MIN has no positive int64.
  const uint64_t magnitude =
      value < 0 ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  char* begin = WriteDigits(magnitude, end);
  if (value < 0) *--begin = '-';
  out.append(begin, static_cast<size_t>(end - begin));
}

void AppendUint(uint64_t value, std::string& out) {
  char buffer[kMaxDigits];
  char* const end = buffer + sizeof(buffer);
  const char* const begin = WriteDigits(value, end);
  out.append(begin, static_cast<size_t>(end - begin));
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

// Only ever reached in a constant evaluation, where it stops the build.
void Name::NameNeedsEscapingUseAStringView() {}

Writer& Writer::Key(Name name) { return CleanKey(name.text()); }

Writer& Writer::KeyText(std::string_view name) {
  if (IsClean(name.data(), name.size())) return CleanKey(name);
  assert(!has_value_.empty() && !after_key_);
  bool& has_value = has_value_.back();
  if (has_value) out_.push_back(',');
  has_value = true;
  after_key_ = true;
  AppendString(name, out_);
  out_.push_back(':');
  return *this;
}

Writer& Writer::CleanKey(std::string_view name) {
  assert(!has_value_.empty() && !after_key_);
  bool& has_value = has_value_.back();
  const bool comma = has_value;
  has_value = true;
  after_key_ = true;
  // The comma, the quoted name and the colon in one append.
  const size_t at = out_.size();
  out_.append(name.size() + 3 + (comma ? 1 : 0), '"');
  char* p = out_.data() + at;
  if (comma) *p++ = ',';
  if (!name.empty()) std::memcpy(p + 1, name.data(), name.size());
  p[name.size() + 2] = ':';
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
