// Local files for checkpoint storage: durable, atomic replacement (the new
// contents go to a temp file beside the target, which is fsynced and renamed
// over the target, and then the directory is fsynced: a reader, or a restart
// after a crash, sees the old file or the whole new one, never a torn write),
// and reading files in chunks.

#ifndef WEIR_LIB_CHECKPOINT_LOCAL_FILE_H_
#define WEIR_LIB_CHECKPOINT_LOCAL_FILE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weir::internal {

// The status for a failed system call on `path`: the canonical code for
// `error` (an errno value) and "<what> <path>: <strerror>".
absl::Status FileError(int error, absl::string_view what, absl::string_view path);

// Owns a file descriptor; closes it when destroyed.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&&) = delete;
  ~ScopedFd();
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens the local file `path` for reading. kNotFound when there is no
// regular file there (a directory is not one), with `description` naming it.
absl::StatusOr<ScopedFd> OpenForReading(const std::string& path, absl::string_view description);

// Reads `fd` (the file `path`) from its current offset to its end, handing
// each chunk (at most 1 MiB) to `sink`; stops at the first error.
absl::Status ReadChunks(int fd, const std::string& path,
                        const std::function<absl::Status(absl::string_view)>& sink);

// Reads up to `size` bytes at `offset` into `buffer` (resized to what was
// read: less only at the end of the file).
absl::Status ReadAt(int fd, const std::string& path, uint64_t offset, size_t size,
                    std::string& buffer);

// Creates directory `dir` and any missing parents, fsyncing the parent of each
// directory it creates. OK if `dir` exists.
absl::Status MakeDirs(const std::string& dir);

// fsync(2) on a directory, making the entries created or renamed in it durable.
absl::Status FsyncDir(const std::string& dir);

// Writes a file under a temp name in the target's directory; Commit() makes
// it the target. Destroying an uncommitted writer removes the temp file.
//
// Thread-safety: one writer is used by one thread at a time.
class AtomicFileWriter {
 public:
  // Creates the temp file (and the target's directory, if missing). The temp
  // file is named kTempFilePrefix + part of the target's name + a random
  // suffix, so that CheckpointStorage::List can skip it.
  static absl::StatusOr<AtomicFileWriter> Create(std::string target);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  absl::Status Append(absl::string_view data);
  // Discards everything appended so far (used when a download is retried).
  absl::Status Truncate();
  // fsync, rename over the target, fsync the directory. Once only.
  absl::Status Commit();

  const std::string& target() const { return target_; }

 private:
  AtomicFileWriter(std::string target, std::string temp_path, int fd)
      : target_(std::move(target)), temp_path_(std::move(temp_path)), fd_(fd) {}
  void Discard();

  std::string target_;
  std::string temp_path_;
  int fd_ = -1;
};

// Replaces the file `path` with `data`, atomically and durably.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data);

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_LOCAL_FILE_H_
