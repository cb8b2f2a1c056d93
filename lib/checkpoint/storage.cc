// CheckpointStorage::Open: picks the backend from the URI's scheme.

#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/checkpoint/local_storage.h"
#include "lib/checkpoint/s3/s3_storage.h"
#include "lib/checkpoint/storage_path.h"
#include "weir/checkpoint.h"

namespace weir {

namespace {

absl::Status BadUri(absl::string_view uri, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid checkpoint storage URI \"", uri, "\": ", why,
                   " (expected file:///absolute/path or s3://bucket/prefix)"));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; false on a malformed escape or an escaped NUL.
bool PercentDecode(absl::string_view in, std::string& out) {
  out.clear();
  for (size_t pos = 0; pos < in.size(); ++pos) {
    if (in[pos] != '%') {
      out.push_back(in[pos]);
      continue;
    }
    if (pos + 2 >= in.size()) return false;
    int high = HexValue(in[pos + 1]);
    int low = HexValue(in[pos + 2]);
    if (high < 0 || low < 0 || (high == 0 && low == 0)) return false;
    out.push_back(static_cast<char>(high * 16 + low));
    pos += 2;
  }
  return true;
}

// Bucket names as S3 accepts them, including the legacy us-east-1 ones
// (upper case and '_'); the server has the last word.
bool ValidBucketName(absl::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 255) return false;
  for (char c : bucket) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointStorage>> CheckpointStorage::Open(const std::string& uri,
                                                                           const S3Options& s3) {
  size_t colon = uri.find("://");
  if (uri.empty() || colon == std::string::npos) return BadUri(uri, "no scheme");
  std::string scheme = absl::AsciiStrToLower(absl::string_view(uri).substr(0, colon));
  absl::string_view rest = absl::string_view(uri).substr(colon + 3);

  if (scheme == "file") {
    // Only the empty authority (file:///path): there is no remote host to reach.
    if (rest.empty() || rest.front() != '/') {
      return BadUri(uri, "a file URI needs an absolute path and no host (file:///path)");
    }
    std::string path;
    if (!PercentDecode(rest, path)) return BadUri(uri, "malformed %-escape");
    return internal::LocalStorage::Open(std::move(path));
  }

  if (scheme == "s3") {
    if (rest.find_first_of("?#") != absl::string_view::npos) {
      return BadUri(uri, "an s3 URI has no query or fragment");
    }
    size_t slash = rest.find('/');
    std::string bucket(rest.substr(0, slash));
    if (bucket.empty()) return BadUri(uri, "no bucket");
    if (!ValidBucketName(bucket)) return BadUri(uri, "invalid bucket name");
    std::string prefix(slash == absl::string_view::npos ? "" : rest.substr(slash + 1));
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty()) {
      if (absl::Status status = internal::ValidateStoragePath(prefix); !status.ok()) {
        return BadUri(uri, status.message());
      }
    }
    return internal::S3Storage::Open(std::move(bucket), std::move(prefix), s3);
  }

  return BadUri(uri, absl::StrCat("unsupported scheme \"", scheme, "\""));
}

}  // namespace weir
