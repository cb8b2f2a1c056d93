// S3rver: a real S3-compatible server (the npm package s3rver) for tests,
// started as a child process on a free port of 127.0.0.1 with its data in a
// temp directory, and killed (and the directory removed) when destroyed.
//
// s3rver is installed by .ci/setup-s3rver (called from .ci/setup) into
// $WEIR_S3RVER_DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/weir/s3rver;
// `node` comes from PATH. s3rver accepts the access key "S3RVER" with the
// secret "S3RVER"; it rejects unknown access keys (403 InvalidAccessKeyId)
// but does not verify SigV4 signatures.
//
// Example:
//   absl::StatusOr<std::unique_ptr<S3rver>> server = S3rver::Start({"my-bucket"});
//   ASSERT_TRUE(server.ok()) << server.status();
//   weir::S3Options options = (*server)->Options();
//   auto storage = weir::CheckpointStorage::Open("s3://my-bucket/test", options);

#ifndef WEIR_TESTS_UNIT_CHECKPOINT_S3RVER_FIXTURE_H_
#define WEIR_TESTS_UNIT_CHECKPOINT_S3RVER_FIXTURE_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/support/child_process.h"
#include "weir/checkpoint.h"

namespace weir::testing {

class S3rver {
 public:
  static constexpr const char* kAccessKeyId = "S3RVER";
  static constexpr const char* kSecretAccessKey = "S3RVER";

  // Starts s3rver with `buckets` created, and waits (up to 60 s) until it
  // listens. kFailedPrecondition when s3rver or node is not installed.
  static absl::StatusOr<std::unique_ptr<S3rver>> Start(const std::vector<std::string>& buckets);

  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;
  // Kills the server (SIGTERM, then SIGKILL) and removes its directory.
  ~S3rver();

  // "http://127.0.0.1:<port>"
  const std::string& endpoint() const { return endpoint_; }
  int port() const { return port_; }
  // Options that reach this server with valid credentials and path-style
  // addressing.
  S3Options Options() const;

 private:
  S3rver(std::unique_ptr<ChildProcess> process, std::string directory)
      : process_(std::move(process)), directory_(std::move(directory)) {}

  std::unique_ptr<ChildProcess> process_;
  std::string directory_;
  int port_ = 0;
  std::string endpoint_;
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_CHECKPOINT_S3RVER_FIXTURE_H_
