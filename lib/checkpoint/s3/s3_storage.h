// CheckpointStorage on S3 or an S3-compatible server ("s3://bucket/prefix"):
// one object per blob, under the key "<prefix>/<path>".

#ifndef WEIR_LIB_CHECKPOINT_S3_S3_STORAGE_H_
#define WEIR_LIB_CHECKPOINT_S3_S3_STORAGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/checkpoint/s3/s3_client.h"
#include "weir/checkpoint.h"

namespace weir::internal {

// Put and PutFile upload blobs larger than S3Options::multipart_part_size
// with a multipart upload (aborted on failure); others with one PutObject.
// Either way S3 makes the object visible whole or not at all.
//
// Thread-safety: all methods may be called concurrently.
class S3Storage final : public CheckpointStorage {
 public:
  // `prefix` is "" or a valid storage path (no leading or trailing '/').
  // Resolves `options` against the environment (see ResolveS3Config); does
  // not contact the server.
  static absl::StatusOr<std::unique_ptr<CheckpointStorage>> Open(std::string bucket,
                                                                 std::string prefix,
                                                                 const S3Options& options);

  absl::Status Put(const std::string& path, std::string_view data) override;
  absl::Status PutFile(const std::string& path, const std::string& local_path) override;
  absl::StatusOr<std::string> Get(const std::string& path) override;
  absl::Status GetFile(const std::string& path, const std::string& local_path) override;
  absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) override;
  absl::Status Delete(const std::string& path) override;
  std::string Describe() const override;

 private:
  // Reads `length` bytes at `offset` of the blob being uploaded, using
  // `buffer` as storage if it needs any.
  using PartReader = std::function<absl::StatusOr<absl::string_view>(uint64_t offset, size_t length,
                                                                     std::string& buffer)>;

  S3Storage(std::unique_ptr<S3Client> client, std::string bucket, std::string prefix)
      : client_(std::move(client)), bucket_(std::move(bucket)), prefix_(std::move(prefix)) {}

  std::string Key(absl::string_view path) const;
  absl::Status Upload(const std::string& key, uint64_t size, const PartReader& read);
  absl::Status UploadMultipart(const std::string& key, uint64_t size, const PartReader& read);

  const std::unique_ptr<S3Client> client_;
  const std::string bucket_;
  const std::string prefix_;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_S3_S3_STORAGE_H_
