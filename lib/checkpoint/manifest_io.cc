#include "lib/checkpoint/manifest_io.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weir::internal {

namespace {
constexpr std::string_view kMagic = "WEIRMAN1";
constexpr std::string_view kManifestName = "/_manifest";
}  // namespace

std::string ManifestPath(const std::string& job, int64_t checkpoint_id) {
  return absl::StrFormat("%s/chk-%020d/_manifest", job, checkpoint_id);
}

std::string SharedPath(const std::string& job, const std::string& name) {
  return absl::StrCat(job, "/shared/", name);
}

uint32_t Crc32(std::string_view bytes, uint32_t crc) {
  return static_cast<uint32_t>(
      crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

std::string EncodeManifest(const checkpoint::Manifest& manifest) {
  std::string body;
  manifest.SerializeToString(&body);
  const uint32_t crc = Crc32(body);
  std::string out(kMagic);
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(crc >> shift));
  out.append(body);
  return out;
}

absl::StatusOr<checkpoint::Manifest> DecodeManifest(std::string_view bytes) {
  if (bytes.size() < kMagic.size() + 4 || bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError("not a weir manifest (bad magic or truncated)");
  }
  uint32_t crc = 0;
  for (int idx = 0; idx < 4; ++idx) {
    crc |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[kMagic.size() + idx])) << (8 * idx);
  }
  const std::string_view body = bytes.substr(kMagic.size() + 4);
  if (Crc32(body) != crc) return absl::DataLossError("manifest checksum mismatch");
  checkpoint::Manifest manifest;
  if (!manifest.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return absl::DataLossError("manifest does not parse");
  }
  if (manifest.format_version() > kManifestFormat) {
    return absl::FailedPreconditionError(absl::StrCat(
        "manifest format ", manifest.format_version(), " is newer than this weir reads (",
        kManifestFormat, "): restore it with the weir version that wrote it, or a newer one"));
  }
  if (manifest.format_version() == 0) {
    // Before uids an operator's name was its identity: state filed under
    // "count" goes to the operator whose uid is "count".
    for (checkpoint::OperatorSnapshot& op : *manifest.mutable_operators()) {
      op.set_uid(op.operator_name());
    }
    manifest.set_format_version(kManifestFormat);
  }
  return manifest;
}

absl::StatusOr<std::vector<int64_t>> ListCheckpoints(CheckpointStorage& storage,
                                                     const std::string& job) {
  absl::StatusOr<std::vector<std::string>> paths = storage.List(job + "/chk-");
  if (!paths.ok()) return paths.status();
  std::vector<int64_t> ids;
  const std::string prefix = job + "/chk-";
  for (const std::string& path : *paths) {
    if (path.size() <= prefix.size() + kManifestName.size() ||
        path.compare(path.size() - kManifestName.size(), kManifestName.size(), kManifestName) !=
            0) {
      continue;
    }
    int64_t id;
    const std::string digits =
        path.substr(prefix.size(), path.size() - prefix.size() - kManifestName.size());
    if (absl::SimpleAtoi(digits, &id)) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::Status FileChecksum(const std::string& path, uint64_t* size, uint32_t* crc) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  std::vector<char> buffer(1 << 20);
  *size = 0;
  *crc = 0;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    *crc = Crc32(std::string_view(buffer.data(), n), *crc);
    *size += n;
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return absl::DataLossError(absl::StrCat("error reading ", path));
  return absl::OkStatus();
}

}  // namespace weir::internal
