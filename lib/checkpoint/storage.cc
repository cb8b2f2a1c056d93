// CheckpointStorage::Open: picks the backend from the URI's scheme; file:// here, the
// others registered by their components (storage_registry.h).

#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/checkpoint/local_storage.h"
#include "lib/checkpoint/storage_registry.h"
#include "weir/checkpoint.h"

namespace weir {

namespace {

using internal::InvalidStorageUri;

// Schemes whose backend is a component of its own: what to link for them.
absl::string_view ComponentOfScheme(absl::string_view scheme) {
  if (scheme == "s3") return "weir::s3";
  return "";
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

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointStorage>> CheckpointStorage::Open(const std::string& uri,
                                                                           const S3Options& s3) {
  size_t colon = uri.find("://");
  if (uri.empty() || colon == std::string::npos) return InvalidStorageUri(uri, "no scheme");
  std::string scheme = absl::AsciiStrToLower(absl::string_view(uri).substr(0, colon));
  absl::string_view rest = absl::string_view(uri).substr(colon + 3);

  if (scheme == "file") {
    // Only the empty authority (file:///path): there is no remote host to reach.
    if (rest.empty() || rest.front() != '/') {
      return InvalidStorageUri(uri, "a file URI needs an absolute path and no host (file:///path)");
    }
    std::string path;
    if (!PercentDecode(rest, path)) return InvalidStorageUri(uri, "malformed %-escape");
    return internal::LocalStorage::Open(std::move(path));
  }

  if (internal::CheckpointStorageFactory factory = internal::FindCheckpointStorageScheme(scheme)) {
    return factory(uri, rest, s3);
  }
  if (absl::string_view component = ComponentOfScheme(scheme); !component.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint storage \"", uri, "\" needs the ", component, " component: link ",
                     component, " (or the umbrella weir::weir) into the program"));
  }

  return InvalidStorageUri(uri, absl::StrCat("unsupported scheme \"", scheme, "\""));
}

}  // namespace weir
