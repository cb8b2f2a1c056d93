#include "lib/checkpoint/local_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/checkpoint/storage_path.h"

namespace weir::internal {

namespace {

constexpr size_t kChunkSize = 1 << 20;

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// write(2) until everything is written (it may write less than asked).
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "write", path);
    }
    data.remove_prefix(static_cast<size_t>(written));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FileError(int error, absl::string_view what, absl::string_view path) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, " ", path));
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<ScopedFd> OpenForReading(const std::string& path, absl::string_view description) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(description, " not found"));
    }
    return FileError(errno, "open", path);
  }
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return FileError(errno, "stat", path);
  if (!S_ISREG(info.st_mode)) {
    return absl::NotFoundError(absl::StrCat(description, " not found (not a regular file)"));
  }
  return fd;
}

absl::Status ReadChunks(int fd, const std::string& path,
                        const std::function<absl::Status(absl::string_view)>& sink) {
  std::string buffer(kChunkSize, '\0');
  while (true) {
    ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "read", path);
    }
    if (got == 0) return absl::OkStatus();
    if (absl::Status status = sink(absl::string_view(buffer.data(), static_cast<size_t>(got)));
        !status.ok()) {
      return status;
    }
  }
}

absl::Status ReadAt(int fd, const std::string& path, uint64_t offset, size_t size,
                    std::string& buffer) {
  buffer.resize(size);
  size_t done = 0;
  while (done < size) {
    ssize_t got = ::pread(fd, buffer.data() + done, size - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "read", path);
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  buffer.resize(done);
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& dir) {
  struct stat info;
  if (::stat(dir.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return absl::OkStatus();
    return FileError(ENOTDIR, "create directory", dir);
  }
  std::string parent = DirName(dir);
  if (parent != dir) {
    if (absl::Status status = MakeDirs(parent); !status.ok()) return status;
  }
  if (::mkdir(dir.c_str(), 0777) != 0) {
    // Another thread or process may have created it meanwhile.
    if (errno == EEXIST && ::stat(dir.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      return absl::OkStatus();
    }
    return FileError(errno, "create directory", dir);
  }
  return FsyncDir(parent);
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "open directory", dir);
  int result = ::fsync(fd);
  int error = errno;
  ::close(fd);
  if (result != 0) return FileError(error, "fsync directory", dir);
  return absl::OkStatus();
}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Create(std::string target) {
  std::string dir = DirName(target);
  std::string name = target.substr(target.rfind('/') + 1);
  // Keep the temp name within NAME_MAX however long the target's name is.
  if (name.size() > 64) name.resize(64);
  thread_local absl::BitGen bitgen;
  // A concurrent Delete may remove the (empty) directory between MakeDirs and
  // open, and a name may collide: both are rare, so a few tries suffice.
  int error = 0;
  std::string temp_path;
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (absl::Status status = MakeDirs(dir); !status.ok()) return status;
    temp_path = absl::StrFormat("%s/%s%s.%016x", dir, kTempFilePrefix, name,
                                absl::Uniform<uint64_t>(bitgen));
    // 0666 & ~umask, like any file the process creates.
    int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return AtomicFileWriter(std::move(target), std::move(temp_path), fd);
    error = errno;
    if (error != ENOENT && error != EEXIST) break;
  }
  return FileError(error, "create", temp_path);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : target_(std::move(other.target_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(std::exchange(other.fd_, -1)) {}

AtomicFileWriter& AtomicFileWriter::operator=(AtomicFileWriter&& other) noexcept {
  if (this != &other) {
    Discard();
    target_ = std::move(other.target_);
    temp_path_ = std::move(other.temp_path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

AtomicFileWriter::~AtomicFileWriter() { Discard(); }

void AtomicFileWriter::Discard() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(temp_path_.c_str());
  fd_ = -1;
}

absl::Status AtomicFileWriter::Append(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("AtomicFileWriter is closed");
  return WriteAll(fd_, data, temp_path_);
}

absl::Status AtomicFileWriter::Truncate() {
  if (fd_ < 0) return absl::FailedPreconditionError("AtomicFileWriter is closed");
  if (::ftruncate(fd_, 0) != 0) return FileError(errno, "truncate", temp_path_);
  if (::lseek(fd_, 0, SEEK_SET) != 0) return FileError(errno, "seek", temp_path_);
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError("AtomicFileWriter is closed");
  if (::fsync(fd_) != 0) {
    absl::Status status = FileError(errno, "fsync", temp_path_);
    Discard();
    return status;
  }
  if (::close(std::exchange(fd_, -1)) != 0) {
    absl::Status status = FileError(errno, "close", temp_path_);
    ::unlink(temp_path_.c_str());
    return status;
  }
  if (::rename(temp_path_.c_str(), target_.c_str()) != 0) {
    absl::Status status = FileError(errno, absl::StrCat("rename ", temp_path_, " to"), target_);
    ::unlink(temp_path_.c_str());
    return status;
  }
  return FsyncDir(DirName(target_));
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view data) {
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
  if (!writer.ok()) return writer.status();
  if (absl::Status status = writer->Append(data); !status.ok()) return status;
  return writer->Commit();
}

}  // namespace weir::internal
