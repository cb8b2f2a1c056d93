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

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::string FindNode() {
  if (std::string node = GetEnv("WEIR_NODE"); !node.empty()) return node;
  for (absl::string_view dir : absl::StrSplit(GetEnv("PATH"), ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/node");
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3rver>> S3rver::Start(const std::vector<std::string>& buckets) {
  std::string node = FindNode();
  std::string script = S3rverScript();
  if (node.empty() || ::access(script.c_str(), R_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("s3rver is not installed (node: \"", node, "\", script: ", script,
                     "): run .ci/setup (or .ci/setup-s3rver), or set WEIR_S3RVER_DIR / WEIR_NODE"));
  }
  // The client under test must talk to 127.0.0.1 directly, never via a proxy.
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);

  std::string base = GetEnv("TMPDIR");
  if (base.empty()) base = "/tmp";
  std::string dir_template = absl::StrCat(base, "/weir-s3rver-XXXXXX");
  if (::mkdtemp(dir_template.data()) == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("mkdtemp ", dir_template));
  }
  const std::string directory = dir_template;
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
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("open ", log_path));
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    return absl::ErrnoToStatus(errno, "fork");
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec. Die with the test process,
    // even when it crashes.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  std::unique_ptr<S3rver> server(new S3rver(pid, directory));

  absl::Time deadline = absl::Now() + kStartTimeout;
  while (true) {
    std::string log = ReadFile(log_path);
    if (size_t found = log.find(kListening); found != std::string::npos) {
      size_t start = found + sizeof(kListening) - 1;
      size_t end = log.find_first_not_of("0123456789", start);
      if (end != std::string::npos &&
          absl::SimpleAtoi(absl::string_view(log).substr(start, end - start), &server->port_)) {
        server->endpoint_ = absl::StrCat("http://127.0.0.1:", server->port_);
        return server;
      }
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = -1;
      return absl::InternalError(
          absl::StrCat("s3rver exited during startup (status ", status, "); its output:\n", log));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("s3rver did not listen within ",
                                                      absl::FormatDuration(kStartTimeout),
                                                      "; output:\n", log));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

S3rver::~S3rver() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    absl::Time deadline = absl::Now() + kStopTimeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
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
