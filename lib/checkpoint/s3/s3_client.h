// S3Client: the S3 object operations checkpoint storage needs, over libcurl.
//
// Requests are signed with AWS SigV4 by libcurl (see sigv4.h for what weir
// adds so that libcurl 7.88 signs S3 requests correctly), retried with
// exponential backoff and jitter on 5xx, 429, timeouts and connection errors,
// and their failures mapped to canonical codes with the server's <Code> and
// <Message>, the operation, bucket and key in the message.
//
// Example:
//   absl::StatusOr<S3Config> config = ResolveS3Config(options);
//   absl::StatusOr<std::unique_ptr<S3Client>> client = S3Client::Create(*config);
//   absl::Status status = (*client)->PutObject("bucket", "dir/key", "data");

#ifndef WEIR_LIB_CHECKPOINT_S3_S3_CLIENT_H_
#define WEIR_LIB_CHECKPOINT_S3_S3_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/curl_common.h"
#include "weir/checkpoint.h"

namespace weir::internal {

// S3Options with the environment's defaults filled in and checked.
struct S3Config {
  // "http[s]://host[:port][/base]", without a trailing '/'.
  std::string endpoint;
  std::string region;
  // All empty: requests go unsigned (public buckets).
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  bool path_style = true;
  size_t multipart_part_size = 8 << 20;
  int max_attempts = 5;
  absl::Duration request_timeout = absl::Seconds(60);
  // The first retry waits about this long, each further one twice as long
  // (up to max_backoff); the wait is drawn from [delay / 2, delay].
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(20);
};

// Fills the empty fields of `options` from AWS_ENDPOINT_URL_S3 /
// AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (credentials come from the
// options or from the environment, never half from each), then the built-in
// defaults. kInvalidArgument for bad configuration.
absl::StatusOr<S3Config> ResolveS3Config(const S3Options& options);

// Where a GET's body goes as it arrives. `reset` runs before every attempt
// (a retry starts the body over); a failing `append` ends the request with
// its status, without retries.
struct S3BodySink {
  std::function<absl::Status()> reset;
  std::function<absl::Status(absl::string_view)> append;
};

// One page of ListObjectsV2.
struct S3ListPage {
  std::vector<std::string> keys;
  // Set when there are more keys: pass it to the next call.
  std::optional<std::string> next_continuation_token;
};

// The S3 error code ("NoSuchKey", "SlowDown", ...) of a status S3Client
// returned for an S3 error response; empty for other failures.
std::string S3ErrorCode(const absl::Status& status);

// Thread-safety: all methods may be called concurrently. The client keeps a
// few idle curl handles (CurlHandlePool) so that connections are reused.
class S3Client {
 public:
  static absl::StatusOr<std::unique_ptr<S3Client>> Create(S3Config config);
  ~S3Client();

  const S3Config& config() const { return config_; }

  // PutObject: replaces the object with `body`, stored with its crc32 as
  // user metadata (x-amz-meta-weir-crc32).
  absl::Status PutObject(const std::string& bucket, const std::string& key, absl::string_view body);
  // GetObject: kNotFound if there is no such key (or bucket). A body that
  // does not match the crc32 its response carries (read while a server that
  // rewrites objects in place overwrote it) is read again; kDataLoss once
  // every attempt was torn. Objects without the crc32 are not checked.
  absl::StatusOr<std::string> GetObject(const std::string& bucket, const std::string& key);
  absl::Status GetObject(const std::string& bucket, const std::string& key, S3BodySink& sink);
  // DeleteObject: OK if there is no such key.
  absl::Status DeleteObject(const std::string& bucket, const std::string& key);
  // ListObjectsV2: keys starting with `prefix`, at most 1000 per page.
  absl::StatusOr<S3ListPage> ListObjectsV2(const std::string& bucket, const std::string& prefix,
                                           const std::optional<std::string>& continuation_token);

  // Multipart upload: Create, then UploadPart 1..n (each returns the part's
  // ETag), then Complete with the ETags in part order, or Abort.
  absl::StatusOr<std::string> CreateMultipartUpload(const std::string& bucket,
                                                    const std::string& key);
  absl::StatusOr<std::string> UploadPart(const std::string& bucket, const std::string& key,
                                         const std::string& upload_id, int part_number,
                                         absl::string_view body);
  absl::Status CompleteMultipartUpload(const std::string& bucket, const std::string& key,
                                       const std::string& upload_id,
                                       const std::vector<std::string>& etags);
  absl::Status AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                    const std::string& upload_id);

 private:
  struct Request;
  struct Response;
  explicit S3Client(S3Config config) : config_(std::move(config)) {}

  // Sends `request`, retrying transient failures up to config_.max_attempts.
  absl::StatusOr<Response> Send(const Request& request);
  std::string Url(const Request& request) const;

  const S3Config config_;
  CurlHandlePool handles_;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_CHECKPOINT_S3_S3_CLIENT_H_
