#include "tests/unit/checkpoint/s3rver_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace weir::testing {

namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(60);
constexpr absl::Duration kStopTimeout = absl::Seconds(5);
constexpr char kListening[] = "S3rver listening on 127.0.0.1:";

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// Where .ci/setup-s3rver installs s3rver.
std::string S3rverScript() {
  std::string dir = GetEnv("WEIR_S3RVER_DIR");
  if (dir.empty()) {
    std::string cache = GetEnv("XDG_CACHE_HOME");
    if (cache.empty()) cache = absl::StrCat(GetEnv("HOME"), "/.cache");
    dir = absl::StrCat(cache, "/weir/s3rver");
  }
  return absl::StrCat(dir, "/node_modules/s3rver/bin/s3rver.js");
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3rver>> S3rver::Start(const std::vector<std::string>& buckets) {
  std::string node = FindProgram("node", "WEIR_NODE");
  std::string script = S3rverScript();
  if (node.empty() || ::access(script.c_str(), R_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("s3rver is not installed (node: \"", node, "\", script: ", script,
                     "): run .ci/setup (or .ci/setup-s3rver), or set WEIR_S3RVER_DIR / WEIR_NODE"));
  }
  // The client under test must talk to 127.0.0.1 directly, never via a proxy.
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);

  absl::StatusOr<std::string> temp_dir = MakeTempDir("weir-s3rver");
  if (!temp_dir.ok()) return temp_dir.status();
  const std::string directory = *temp_dir;
  const std::string data_dir = absl::StrCat(directory, "/data");
  const std::string log_path = absl::StrCat(directory, "/s3rver.log");

  // s3rver encrypts ListObjectsV2 continuation tokens with DES, which
  // OpenSSL 3 only offers through its legacy provider.
  std::vector<std::string> args = {node, "--openssl-legacy-provider", script};
  for (const char* arg :
       {"-d", data_dir.c_str(), "-a", "127.0.0.1", "-p", "0", "-s", "--no-vhost-buckets"}) {
    args.push_back(arg);
  }
  for (const std::string& bucket : buckets) {
    args.push_back("--configure-bucket");
    args.push_back(bucket);
  }
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(std::move(args), {.log_path = log_path});
  if (!child.ok()) return child.status();
  std::unique_ptr<S3rver> server(new S3rver(*std::move(child), directory));

  // s3rver picks its port (-p 0) and says which in its log.
  absl::Status ready = WaitUntilReady(*server->process_, kStartTimeout, [&] {
    const std::string log = server->process_->Log();
    const size_t found = log.find(kListening);
    if (found == std::string::npos) return false;
    const size_t start = found + sizeof(kListening) - 1;
    const size_t end = log.find_first_not_of("0123456789", start);
    return end != std::string::npos &&
           absl::SimpleAtoi(absl::string_view(log).substr(start, end - start), &server->port_);
  });
  if (!ready.ok()) return ready;
  server->endpoint_ = absl::StrCat("http://127.0.0.1:", server->port_);
  return server;
}

S3rver::~S3rver() {
  process_->Terminate(kStopTimeout);
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

S3Options S3rver::Options() const {
  S3Options options;
  options.endpoint = endpoint_;
  options.region = "us-east-1";
  options.access_key_id = kAccessKeyId;
  options.secret_access_key = kSecretAccessKey;
  options.path_style = true;
  return options;
}

}  // namespace weir::testing
