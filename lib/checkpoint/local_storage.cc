#include "lib/checkpoint/local_storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/checkpoint/local_file.h"
#include "lib/checkpoint/storage_path.h"
#include "lib/common/status.h"

namespace weir::internal {

namespace {

absl::Status CopyToFile(int fd, const std::string& source, const std::string& target) {
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(target);
  if (!writer.ok()) return writer.status();
  absl::Status status =
      ReadChunks(fd, source, [&](absl::string_view chunk) { return writer->Append(chunk); });
  if (!status.ok()) return status;
  return writer->Commit();
}

// "a/b/c" -> "a/b", "a" -> "".
std::string ParentOf(absl::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? "" : path.substr(0, slash));
}

// Appends to `out` the relative paths of the files below `dir` (which is
// `relative` under the root) that start with `prefix`, skipping temp files and
// subdirectories that cannot hold a match.
absl::Status Walk(const std::string& dir, const std::string& relative, const std::string& prefix,
                  std::vector<std::string>& out) {
  std::unique_ptr<DIR, int (*)(DIR*)> handle(::opendir(dir.c_str()), &::closedir);
  if (handle == nullptr) {
    // Gone (a concurrent Delete pruned it) or not a directory: nothing here.
    if (errno == ENOENT || errno == ENOTDIR) return absl::OkStatus();
    return FileError(errno, "list directory", dir);
  }
  while (true) {
    errno = 0;
    struct dirent* entry = ::readdir(handle.get());
    if (entry == nullptr) {
      if (errno != 0) return FileError(errno, "list directory", dir);
      return absl::OkStatus();
    }
    absl::string_view name = entry->d_name;
    if (name == "." || name == ".." || absl::StartsWith(name, kTempFilePrefix)) continue;
    std::string child = relative.empty() ? std::string(name) : absl::StrCat(relative, "/", name);
    std::string child_path = absl::StrCat(dir, "/", name);
    bool is_dir = entry->d_type == DT_DIR;
    bool is_file = entry->d_type == DT_REG;
    if (entry->d_type == DT_UNKNOWN || entry->d_type == DT_LNK) {
      // Follow symlinks to files (Get would), but never into directories.
      struct stat info;
      if (::lstat(child_path.c_str(), &info) != 0) continue;
      is_dir = S_ISDIR(info.st_mode);
      is_file = S_ISREG(info.st_mode) ||
                (S_ISLNK(info.st_mode) && ::stat(child_path.c_str(), &info) == 0 &&
                 S_ISREG(info.st_mode));
    }
    if (is_file) {
      if (absl::StartsWith(child, prefix)) out.push_back(std::move(child));
    } else if (is_dir) {
      std::string as_prefix = absl::StrCat(child, "/");
      if (absl::StartsWith(as_prefix, prefix) || absl::StartsWith(prefix, as_prefix)) {
        if (absl::Status status = Walk(child_path, child, prefix, out); !status.ok()) {
          return status;
        }
      }
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointStorage>> LocalStorage::Open(std::string root) {
  if (root.empty() || root.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("local checkpoint directory must be an absolute path, got \"", root, "\""));
  }
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (absl::Status status = MakeDirs(root); !status.ok()) {
    return Annotate(status, absl::StrCat("cannot open checkpoint storage file://", root));
  }
  return std::unique_ptr<CheckpointStorage>(new LocalStorage(std::move(root)));
}

std::string LocalStorage::FullPath(absl::string_view path) const {
  return root_ == "/" ? absl::StrCat("/", path) : absl::StrCat(root_, "/", path);
}

std::string LocalStorage::Describe() const { return absl::StrCat("file://", root_); }

absl::Status LocalStorage::Put(const std::string& path, std::string_view data) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  return WriteFileAtomically(FullPath(path), absl::string_view(data.data(), data.size()));
}

absl::Status LocalStorage::PutFile(const std::string& path, const std::string& local_path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  absl::StatusOr<ScopedFd> source =
      OpenForReading(local_path, absl::StrCat("PutFile: local file ", local_path));
  if (!source.ok()) return source.status();
  return CopyToFile(source->get(), local_path, FullPath(path));
}

absl::StatusOr<std::string> LocalStorage::Get(const std::string& path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  std::string full_path = FullPath(path);
  absl::StatusOr<ScopedFd> fd = OpenForReading(full_path, full_path);
  if (!fd.ok()) return fd.status();
  std::string data;
  absl::Status status = ReadChunks(fd->get(), full_path, [&](absl::string_view chunk) {
    absl::StrAppend(&data, chunk);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return data;
}

absl::Status LocalStorage::GetFile(const std::string& path, const std::string& local_path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  std::string full_path = FullPath(path);
  absl::StatusOr<ScopedFd> fd = OpenForReading(full_path, full_path);
  if (!fd.ok()) return fd.status();
  return CopyToFile(fd->get(), full_path, local_path);
}

absl::StatusOr<std::vector<std::string>> LocalStorage::List(const std::string& prefix) {
  std::string dir = ParentOf(prefix);
  std::vector<std::string> paths;
  // Every stored path is valid, so if the prefix's directory part is not,
  // no path can start with it.
  if (!dir.empty() && !ValidateStoragePath(dir).ok()) return paths;
  absl::Status status = Walk(dir.empty() ? root_ : FullPath(dir), dir, prefix, paths);
  if (!status.ok()) return status;
  std::sort(paths.begin(), paths.end());
  return paths;
}

absl::Status LocalStorage::Delete(const std::string& path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  std::string full_path = FullPath(path);
  if (::unlink(full_path.c_str()) != 0) {
    // Missing, a directory (not a blob) or below a file: there is no blob.
    if (errno == ENOENT || errno == EISDIR || errno == ENOTDIR) return absl::OkStatus();
    return FileError(errno, "delete", full_path);
  }
  // Retention deletes whole checkpoints; do not leave their directories
  // behind. rmdir fails on the first non-empty one, which ends the walk.
  for (std::string dir = ParentOf(path); !dir.empty(); dir = ParentOf(dir)) {
    if (::rmdir(FullPath(dir).c_str()) != 0) break;
  }
  return absl::OkStatus();
}

}  // namespace weir::internal
