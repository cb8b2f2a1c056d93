// Just enough XML for S3's responses (ListObjectsV2, CreateMultipartUpload,
// errors) and requests (CompleteMultipartUpload): find elements by name and
// convert text to and from XML character data.
//
// S3's responses are flat, well-formed documents without CDATA, in which an
// element name never nests inside itself; that is what this relies on.
//
// Example:
//   for (absl::string_view contents : XmlElements(body, "Contents")) {
//     std::optional<absl::string_view> key = XmlFirstElement(contents, "Key");
//     absl::StatusOr<std::string> text = XmlUnescape(*key);
//   }

#ifndef WEIR_LIB_CONNECTORS_S3_S3_XML_H_
#define WEIR_LIB_CONNECTORS_S3_S3_XML_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weir::internal {

// The raw contents (between the start and end tags, still escaped) of every
// element named `name` in `xml`, in document order. An empty element
// (<Name/>) has empty contents. Elements with a longer name that starts with
// `name` (KeyCount for Key) do not match.
std::vector<absl::string_view> XmlElements(absl::string_view xml, absl::string_view name);

// The raw contents of the first element named `name`, if any.
std::optional<absl::string_view> XmlFirstElement(absl::string_view xml, absl::string_view name);

// Replaces the five predefined entities (&amp; &lt; &gt; &quot; &apos;) and
// character references (&#39; &#x27;) with the characters they stand for,
// UTF-8 encoded. kDataLoss for a malformed or unknown reference.
absl::StatusOr<std::string> XmlUnescape(absl::string_view text);

// Escapes & < > " ' so that `text` can be element content or an attribute.
std::string XmlEscape(absl::string_view text);

}  // namespace weir::internal

#endif  // WEIR_LIB_CONNECTORS_S3_S3_XML_H_
