// Checkpoints: options, and the storage they are written to.
//
// A checkpoint is a consistent snapshot of every operator's state and every
// source's position, taken with aligned barriers while the job runs. It is
// complete once its manifest exists in storage; on start, a job restores from
// the newest complete checkpoint of its job name.
//
// Example:
//
//   weir::Pipeline pipeline({.parallelism = 2,
//                            .checkpoints = {.interval = absl::Seconds(10),
//                                            .storage_uri = "s3://bucket/app"}});
//
// Storage URIs:
//   file:///var/lib/app/checkpoints   a local directory (temp file + fsync + rename)
//   s3://bucket/prefix                S3 or an S3-compatible endpoint (SigV4 via libcurl)

#ifndef WEIR_CHECKPOINT_H_
#define WEIR_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace weir {

// Where and how to reach S3. Empty fields fall back to the standard AWS
// environment variables (AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
struct S3Options {
  // e.g. "http://127.0.0.1:4568". Default: https://s3.<region>.amazonaws.com
  std::string endpoint;
  // Default: "us-east-1"
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  // Path-style addressing (http://endpoint/bucket/key), needed by most
  // S3-compatible servers. Default: true
  bool path_style = true;
  // Files larger than this are uploaded in parts of this size. Default: 8 MiB
  size_t multipart_part_size = 8 << 20;
  // Attempts per request on 5xx, timeouts and connection errors, with
  // exponential backoff. Default: 5
  int max_attempts = 5;
  // Per-request timeout. Default: 60 s
  absl::Duration request_timeout = absl::Seconds(60);
};

struct CheckpointOptions {
  // How often to start a checkpoint; zero disables checkpointing.
  // Default: 0 (off)
  absl::Duration interval = absl::ZeroDuration();
  // Where checkpoints go: "file:///path" or "s3://bucket/prefix".
  // Default: "" (required when interval > 0)
  std::string storage_uri;
  // A checkpoint not complete after this long is abandoned.
  // Default: 10 minutes
  absl::Duration timeout = absl::Minutes(10);
  // Least time between the end of one checkpoint and the start of the next.
  // Default: 0
  absl::Duration min_pause = absl::ZeroDuration();
  // Complete checkpoints kept; older ones and files no kept manifest
  // references are deleted. Default: 3
  int retained = 3;
  // Sinks that can flush off the worker's thread at a barrier
  // (SinkWriter::PreCommitAsync) do, and the worker goes on with the
  // records after it. false: every sink flushes on the worker's thread,
  // which waits (for comparison). Default: true
  bool asynchronous_sink_flush = true;
  // Credentials and endpoint for s3:// storage.
  S3Options s3;
  // A local scratch directory (snapshot files before upload, downloads on
  // restore). Default: "" (a fresh directory under $TMPDIR or /tmp)
  std::string local_dir;
};

// A flat namespace of immutable blobs under a root (a directory, or an S3
// bucket and prefix). Paths are relative, '/'-separated. Put is atomic: a
// reader sees the whole blob or nothing.
//
// Thread-safety: all methods may be called concurrently.
class CheckpointStorage {
 public:
  virtual ~CheckpointStorage() = default;

  // Opens the storage named by `uri` (see the file comment).
  // kInvalidArgument for a malformed or unsupported URI.
  static absl::StatusOr<std::unique_ptr<CheckpointStorage>> Open(const std::string& uri,
                                                                 const S3Options& s3 = {});

  // Writes `data` to `path`, replacing any previous blob.
  virtual absl::Status Put(const std::string& path, std::string_view data) = 0;
  // Uploads the local file `local_path` to `path` (multipart when large).
  virtual absl::Status PutFile(const std::string& path, const std::string& local_path) = 0;
  // Reads a whole blob. kNotFound if absent.
  virtual absl::StatusOr<std::string> Get(const std::string& path) = 0;
  // Downloads `path` into the local file `local_path`. kNotFound if absent.
  virtual absl::Status GetFile(const std::string& path, const std::string& local_path) = 0;
  // Paths that start with `prefix`, sorted.
  virtual absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) = 0;
  // Deletes `path`; OK if it does not exist.
  virtual absl::Status Delete(const std::string& path) = 0;
  // A description for logs, e.g. "s3://bucket/prefix".
  virtual std::string Describe() const = 0;
};

}  // namespace weir

#endif  // WEIR_CHECKPOINT_H_
