// CheckpointStorage on a local directory ("file:///path"): one file per blob,
// written with AtomicFileWriter (temp file, fsync, rename, fsync directory).

#ifndef WEIR_LIB_CHECKPOINT_LOCAL_STORAGE_H_
#define WEIR_LIB_CHECKPOINT_LOCAL_STORAGE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weir/checkpoint.h"

namespace weir::internal {

// Thread-safety: all methods may be called concurrently, also by several
// processes sharing the directory.
class LocalStorage final : public CheckpointStorage {
 public:
  // `root` is an absolute path; it is created if missing.
  static absl::StatusOr<std::unique_ptr<CheckpointStorage>> Open(std::string root);

  absl::Status Put(const std::string& path, std::string_view data) override;
  absl::Status PutFile(const std::string& path, const std::string& local_path) override;
  absl::StatusOr<std::string> Get(const std::string& path) override;
  absl::Status GetFile(const std::string& path, const std::string& local_path) override;
  // Walks only the directory the prefix names up to its last '/'.
  absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  // Also removes the directories the deletion leaves empty (up to the root).
  absl::Status Delete(const std::string& path) override;
  std::string Describe() const override;

 private:
  explicit LocalStorage(std::string root) : root_(std::move(root)) {}
  std::string FullPath(absl::string_view path) const;

  // No trailing '/' (except for the root directory "/" itself).
  const std::string root_;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_LOCAL_STORAGE_H_
