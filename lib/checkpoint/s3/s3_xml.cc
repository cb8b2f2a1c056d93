#include "lib/checkpoint/s3/s3_xml.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace weir::internal {

namespace {

// Whether `xml[pos]` ends a tag name: '>', '/' (of "/>") or whitespace
// before attributes.
bool EndsName(absl::string_view xml, size_t pos) {
  if (pos >= xml.size()) return false;
  char c = xml[pos];
  return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void AppendUtf8(uint32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// The code point of a character reference's digits ("39" or "x27"), if it
// names a character XML allows.
std::optional<uint32_t> CharacterReference(absl::string_view digits) {
  uint32_t value = 0;
  bool hex = !digits.empty() && (digits.front() == 'x' || digits.front() == 'X');
  if (hex) digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 8) return std::nullopt;
  for (char c : digits) {
    uint32_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint32_t>(c - '0');
    } else if (hex && c >= 'a' && c <= 'f') {
      digit = static_cast<uint32_t>(c - 'a' + 10);
    } else if (hex && c >= 'A' && c <= 'F') {
      digit = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    value = value * (hex ? 16 : 10) + digit;
  }
  // XML 1.0's Char production: no NUL, no surrogates, nothing past U+10FFFF.
  if (value == 0 || (value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF) return std::nullopt;
  return value;
}

}  // namespace

std::vector<absl::string_view> XmlElements(absl::string_view xml, absl::string_view name) {
  std::vector<absl::string_view> elements;
  std::string open = absl::StrCat("<", name);
  std::string close = absl::StrCat("</", name, ">");
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != absl::string_view::npos) {
    size_t after_name = pos + open.size();
    if (!EndsName(xml, after_name)) {
      pos = after_name;
      continue;
    }
    size_t tag_end = xml.find('>', after_name);
    if (tag_end == absl::string_view::npos) break;
    if (xml[tag_end - 1] == '/') {  // <Name/> or <Name attr="..."/>
      elements.push_back(xml.substr(tag_end + 1, 0));
      pos = tag_end + 1;
      continue;
    }
    size_t content_end = xml.find(close, tag_end + 1);
    if (content_end == absl::string_view::npos) break;
    elements.push_back(xml.substr(tag_end + 1, content_end - tag_end - 1));
    pos = content_end + close.size();
  }
  return elements;
}

std::optional<absl::string_view> XmlFirstElement(absl::string_view xml, absl::string_view name) {
  // XmlElements scans the whole document; responses are small enough.
  std::vector<absl::string_view> elements = XmlElements(xml, name);
  if (elements.empty()) return std::nullopt;
  return elements.front();
}

absl::StatusOr<std::string> XmlUnescape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t amp = text.find('&', pos);
    if (amp == absl::string_view::npos) {
      absl::StrAppend(&out, text.substr(pos));
      break;
    }
    absl::StrAppend(&out, text.substr(pos, amp - pos));
    size_t semicolon = text.find(';', amp);
    if (semicolon == absl::string_view::npos || semicolon - amp > 12) {
      return absl::DataLossError(
          absl::StrCat("malformed XML reference in \"", absl::CHexEscape(text), "\""));
    }
    absl::string_view entity = text.substr(amp + 1, semicolon - amp - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (!entity.empty() && entity.front() == '#') {
      std::optional<uint32_t> code_point = CharacterReference(entity.substr(1));
      if (!code_point) {
        return absl::DataLossError(absl::StrCat("invalid XML character reference &", entity, ";"));
      }
      AppendUtf8(*code_point, out);
    } else {
      return absl::DataLossError(absl::StrCat("unknown XML entity &", entity, ";"));
    }
    pos = semicolon + 1;
  }
  return out;
}

std::string XmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out.append("&amp;");
        break;
      case '<':
        out.append("&lt;");
        break;
      case '>':
        out.append("&gt;");
        break;
      case '"':
        out.append("&quot;");
        break;
      case '\'':
        out.append("&apos;");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace weir::internal
