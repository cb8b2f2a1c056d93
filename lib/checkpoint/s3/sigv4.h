// The parts of AWS Signature Version 4 that weir computes itself.
//
// libcurl signs every S3 request (CURLOPT_AWS_SIGV4, "aws:amz:<region>:s3"),
// but libcurl before 8.1 (Debian 12 ships 7.88) takes the canonical URI and
// query string verbatim from the URL, and neither sends x-amz-content-sha256
// (which S3 requires) nor hashes a body it uploads through a read callback:
// it signs the hash of an empty payload. It does sign the value of an
// x-amz-content-sha256 header the caller sets, as the payload hash. So weir
// builds every URL in canonical form (UriEncode, CanonicalQuery) and sets
// x-amz-content-sha256 to Sha256Hex(body) on every request; newer libcurl
// signs such requests the same way.

#ifndef WEIR_LIB_CONNECTORS_S3_SIGV4_H_
#define WEIR_LIB_CONNECTORS_S3_SIGV4_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace weir::internal {

// SHA-256 of the empty string, the payload hash of a request without a body.
inline constexpr absl::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

// SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ becomes %XX (upper
// case hex); '/' stays as it is when `keep_slash` (object keys in paths).
std::string UriEncode(absl::string_view value, bool keep_slash);

// The canonical query string: names and values UriEncode'd, sorted by name
// (then value), joined as "a=1&b=&c=x%2Fy". A parameter without a value
// (S3's "?uploads") is written "uploads=".
std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params);

}  // namespace weir::internal

#endif  // WEIR_LIB_CONNECTORS_S3_SIGV4_H_
