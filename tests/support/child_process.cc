#include "tests/support/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace weir::testing {

std::string FindProgram(absl::string_view name, const char* env_override) {
  if (env_override != nullptr) {
    const char* value = std::getenv(env_override);
    if (value != nullptr && *value != '\0') return value;
  }
  const char* path = std::getenv("PATH");
  std::vector<std::string> dirs;
  if (path != nullptr) dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  dirs.push_back("/usr/sbin");
  dirs.push_back("/usr/local/bin");
  for (const std::string& dir : dirs) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::ErrnoToStatus(error, "bind 127.0.0.1:0");
  }
  ::close(fd);
  return static_cast<int>(ntohs(address.sin_port));
}

absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string dir =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/", prefix, "-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("mkdtemp ", dir));
  }
  return dir;
}

std::string ReadFileOrEmpty(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(std::vector<std::string> argv,
                                                                  SpawnOptions options) {
  if (argv.empty() || argv[0].empty()) {
    return absl::FailedPreconditionError("no program to start (is it installed? run .ci/setup)");
  }
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out_fd =
      options.log_path.empty()
          ? ::open("/dev/null", O_WRONLY | O_CLOEXEC)
          : ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (in_fd < 0 || out_fd < 0) {
    const int error = errno;
    if (in_fd >= 0) ::close(in_fd);
    if (out_fd >= 0) ::close(out_fd);
    return absl::ErrnoToStatus(error, absl::StrCat("open ", options.log_path));
  }
  const char* working_dir = options.working_dir.empty() ? nullptr : options.working_dir.c_str();
  // The user's ids and groups, looked up here: the child may only make
  // async-signal-safe calls.
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups(64);
  int group_count = static_cast<int>(groups.size());
  if (!options.user.empty()) {
    const passwd* entry = ::getpwnam(options.user.c_str());
    if (entry != nullptr &&
        ::getgrouplist(options.user.c_str(), entry->pw_gid, groups.data(), &group_count) < 0) {
      groups.resize(static_cast<size_t>(group_count));  // now the number it needs
    }
    if (entry == nullptr ||
        ::getgrouplist(options.user.c_str(), entry->pw_gid, groups.data(), &group_count) < 0) {
      ::close(in_fd);
      ::close(out_fd);
      return absl::NotFoundError(absl::StrCat("user ", options.user, " (or its groups)"));
    }
    switch_user = true;
    uid = entry->pw_uid;
    gid = entry->pw_gid;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(in_fd);
    ::close(out_fd);
    return absl::ErrnoToStatus(error, "fork");
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec. Switch user first: changing
    // credentials clears the parent-death signal.
    if (switch_user && (::setgroups(static_cast<size_t>(group_count), groups.data()) != 0 ||
                        ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
      ::_exit(124);
    }
    // Die with the test process, even when it crashes.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(in_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);
    if (working_dir != nullptr && ::chdir(working_dir) != 0) ::_exit(125);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in_fd);
  ::close(out_fd);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, argv[0], options.log_path));
}

ChildProcess::~ChildProcess() { Kill(); }

void ChildProcess::Reap(bool block) {
  if (pid_ <= 0) return;
  int status = 0;
  pid_t done;
  do {
    done = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done == pid_ || (done < 0 && errno == ECHILD)) {
    exit_status_ = done == pid_ ? status : 0;
    pid_ = -1;
  }
}

bool ChildProcess::Running() {
  Reap(false);
  return pid_ > 0;
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  Reap(true);
}

void ChildProcess::Terminate(absl::Duration grace) {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + grace;
  while (Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  Kill();
}

absl::Status WaitUntilReady(ChildProcess& child, absl::Duration timeout,
                            const std::function<bool()>& ready) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (ready()) return absl::OkStatus();
    if (!child.Running()) {
      return absl::InternalError(absl::StrCat(child.program(), " exited during startup (status ",
                                              child.exit_status(), "); log:\n", child.Log()));
    }
    if (absl::Now() > deadline) {
      child.Kill();
      return absl::DeadlineExceededError(absl::StrCat(child.program(), " was not ready within ",
                                                      absl::FormatDuration(timeout), "; log:\n",
                                                      child.Log()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace weir::testing
