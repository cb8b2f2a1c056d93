#include "lib/checkpoint/s3/sigv4.h"

#include <openssl/evp.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace weir::internal {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // EVP_Digest only fails on allocation failure; an empty result then makes
  // the request fail its signature check rather than crash.
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return "";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int idx = 0; idx < length; ++idx) {
    hex.push_back(kHex[digest[idx] >> 4]);
    hex.push_back(kHex[digest[idx] & 0xf]);
  }
  return hex;
}

std::string UriEncode(absl::string_view value, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    unsigned char byte = static_cast<unsigned char>(c);
    if ((byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
        (byte >= '0' && byte <= '9') || byte == '-' || byte == '_' || byte == '.' || byte == '~' ||
        (keep_slash && byte == '/')) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    }
  }
  return out;
}

std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params) {
  for (auto& [name, value] : params) {
    name = UriEncode(name, /*keep_slash=*/false);
    value = UriEncode(value, /*keep_slash=*/false);
  }
  // SigV4 sorts by the encoded names, byte-wise.
  std::sort(params.begin(), params.end());
  return absl::StrJoin(params, "&", [](std::string* out, const auto& param) {
    absl::StrAppend(out, param.first, "=", param.second);
  });
}

}  // namespace weir::internal
