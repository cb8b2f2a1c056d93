#include "lib/checkpoint/s3/s3_storage.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/checkpoint/local_file.h"
#include "lib/checkpoint/storage_path.h"

namespace weir::internal {

namespace {

// S3 allows at most this many parts per upload.
constexpr uint64_t kMaxParts = 10'000;

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointStorage>> S3Storage::Open(std::string bucket,
                                                                   std::string prefix,
                                                                   const S3Options& options) {
  absl::StatusOr<S3Config> config = ResolveS3Config(options);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat("cannot open checkpoint storage s3://", bucket, "/", prefix,
                                     ": ", config.status().message()));
  }
  absl::StatusOr<std::unique_ptr<S3Client>> client = S3Client::Create(*std::move(config));
  if (!client.ok()) return client.status();
  return std::unique_ptr<CheckpointStorage>(
      new S3Storage(*std::move(client), std::move(bucket), std::move(prefix)));
}

std::string S3Storage::Key(absl::string_view path) const {
  return prefix_.empty() ? std::string(path) : absl::StrCat(prefix_, "/", path);
}

std::string S3Storage::Describe() const {
  return prefix_.empty() ? absl::StrCat("s3://", bucket_)
                         : absl::StrCat("s3://", bucket_, "/", prefix_);
}

absl::Status S3Storage::Upload(const std::string& key, uint64_t size, const PartReader& read) {
  if (size > client_->config().multipart_part_size) return UploadMultipart(key, size, read);
  std::string buffer;
  absl::StatusOr<absl::string_view> data = read(0, static_cast<size_t>(size), buffer);
  if (!data.ok()) return data.status();
  return client_->PutObject(bucket_, key, *data);
}

absl::Status S3Storage::UploadMultipart(const std::string& key, uint64_t size,
                                        const PartReader& read) {
  uint64_t part_size =
      std::max<uint64_t>(client_->config().multipart_part_size, (size + kMaxParts - 1) / kMaxParts);
  absl::StatusOr<std::string> upload_id = client_->CreateMultipartUpload(bucket_, key);
  if (!upload_id.ok()) return upload_id.status();

  auto upload_parts = [&]() -> absl::Status {
    std::vector<std::string> etags;
    std::string buffer;
    for (uint64_t offset = 0; offset < size; offset += part_size) {
      size_t length = static_cast<size_t>(std::min(part_size, size - offset));
      absl::StatusOr<absl::string_view> part = read(offset, length, buffer);
      if (!part.ok()) return part.status();
      if (part->size() != length) {
        return absl::DataLossError(absl::StrCat("uploading s3://", bucket_, "/", key,
                                                ": the source shrank while being read"));
      }
      absl::StatusOr<std::string> etag =
          client_->UploadPart(bucket_, key, *upload_id, static_cast<int>(etags.size() + 1), *part);
      if (!etag.ok()) return etag.status();
      etags.push_back(*std::move(etag));
    }
    return client_->CompleteMultipartUpload(bucket_, key, *upload_id, etags);
  };
  absl::Status status = upload_parts();
  if (!status.ok()) {
    // Parts of an upload neither completed nor aborted are kept (and billed).
    absl::Status abort = client_->AbortMultipartUpload(bucket_, key, *upload_id);
    if (!abort.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat(status.message(), "; aborting the upload failed too: ", abort.message()));
    }
  }
  return status;
}

absl::Status S3Storage::Put(const std::string& path, std::string_view data_view) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  absl::string_view data(data_view.data(), data_view.size());
  return Upload(
      Key(path), data.size(),
      [data](uint64_t offset, size_t length, std::string&) -> absl::StatusOr<absl::string_view> {
        return data.substr(static_cast<size_t>(offset), length);
      });
}

absl::Status S3Storage::PutFile(const std::string& path, const std::string& local_path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  absl::StatusOr<ScopedFd> file =
      OpenForReading(local_path, absl::StrCat("PutFile: local file ", local_path));
  if (!file.ok()) return file.status();
  struct stat info;
  if (::fstat(file->get(), &info) != 0) return FileError(errno, "stat", local_path);
  int fd = file->get();
  return Upload(Key(path), static_cast<uint64_t>(info.st_size),
                [fd, &local_path](uint64_t offset, size_t length,
                                  std::string& buffer) -> absl::StatusOr<absl::string_view> {
                  if (absl::Status status = ReadAt(fd, local_path, offset, length, buffer);
                      !status.ok()) {
                    return status;
                  }
                  return absl::string_view(buffer);
                });
}

absl::StatusOr<std::string> S3Storage::Get(const std::string& path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  return client_->GetObject(bucket_, Key(path));
}

absl::Status S3Storage::GetFile(const std::string& path, const std::string& local_path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(local_path);
  if (!writer.ok()) return writer.status();
  S3BodySink sink{
      .reset = [&] { return writer->Truncate(); },
      .append = [&](absl::string_view chunk) { return writer->Append(chunk); },
  };
  if (absl::Status status = client_->GetObject(bucket_, Key(path), sink); !status.ok()) {
    return status;  // the writer removes its temp file
  }
  return writer->Commit();
}

absl::StatusOr<std::vector<std::string>> S3Storage::List(const std::string& prefix) {
  std::string root = prefix_.empty() ? "" : absl::StrCat(prefix_, "/");
  std::vector<std::string> paths;
  std::optional<std::string> token;
  do {
    absl::StatusOr<S3ListPage> page =
        client_->ListObjectsV2(bucket_, absl::StrCat(root, prefix), token);
    if (!page.ok()) return page.status();
    for (std::string& key : page->keys) {
      if (absl::StartsWith(key, root)) paths.push_back(key.substr(root.size()));
    }
    token = std::move(page->next_continuation_token);
  } while (token);
  // S3 lists in UTF-8 binary order already; compatible servers may not.
  std::sort(paths.begin(), paths.end());
  return paths;
}

absl::Status S3Storage::Delete(const std::string& path) {
  if (absl::Status status = ValidateStoragePath(path); !status.ok()) return status;
  return client_->DeleteObject(bucket_, Key(path));
}

}  // namespace weir::internal
