// SST files of (composite key, value) pairs: how state tables travel through
// checkpoint storage, for both backends.

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_reader.h"
#include "rocksdb/sst_file_writer.h"
#include "weir/internal/checkpointing.h"

namespace weir::internal {

absl::Status WriteSstFile(const std::string& path, std::vector<KvPair>& pairs) {
  std::sort(pairs.begin(), pairs.end(),
            [](const KvPair& a, const KvPair& b) { return a.first < b.first; });
  rocksdb::Options options;
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options);
  rocksdb::Status status = writer.Open(path);
  if (!status.ok())
    return absl::InternalError(absl::StrCat("writing ", path, ": ", status.ToString()));
  for (const KvPair& pair : pairs) {
    status = writer.Put(pair.first, pair.second);
    if (!status.ok())
      return absl::InternalError(absl::StrCat("writing ", path, ": ", status.ToString()));
  }
  status = writer.Finish();
  if (!status.ok())
    return absl::InternalError(absl::StrCat("writing ", path, ": ", status.ToString()));
  return absl::OkStatus();
}

absl::Status ReadSstFile(const std::string& path, int key_group_begin, int key_group_end,
                         std::vector<KvPair>& out) {
  rocksdb::Options options;
  rocksdb::SstFileReader reader(options);
  rocksdb::Status status = reader.Open(path);
  if (status.ok()) status = reader.VerifyChecksum();
  if (!status.ok())
    return absl::DataLossError(absl::StrCat("reading ", path, ": ", status.ToString()));
  std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(rocksdb::ReadOptions()));
  // Keys start with their key group (2 bytes, big endian): seek to the range.
  const std::string begin = {static_cast<char>(key_group_begin >> 8),
                             static_cast<char>(key_group_begin & 0xff)};
  for (it->Seek(begin); it->Valid(); it->Next()) {
    const int group = KeyGroupOfComposite(std::string_view(it->key().data(), it->key().size()));
    if (group >= key_group_end) break;
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok()) {
    return absl::DataLossError(absl::StrCat("reading ", path, ": ", it->status().ToString()));
  }
  return absl::OkStatus();
}

std::string RandomFileName(const std::string& suffix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x%016x%s", rng(), rng(), suffix);
}

}  // namespace weir::internal
