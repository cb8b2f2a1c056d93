// Real servers in tests (redis-server, clickhouse-server, s3rver,
// weir-kafka-dev) run as child processes of the test: started on a free port
// of 127.0.0.1 with their files in a temp directory, killed with the test
// even when it crashes (PR_SET_PDEATHSIG), and their log kept for error
// messages. This file holds what every such fixture needs.
//
// Example:
//
//   absl::StatusOr<int> port = weir::testing::FreeLoopbackPort();
//   auto server = weir::testing::ChildProcess::Spawn(
//       {FindProgram("redis-server", "WEIR_REDIS_SERVER"), "--port", std::to_string(*port)},
//       {.log_path = dir + "/redis.log"});
//   absl::Status ready = weir::testing::WaitUntilReady(**server, absl::Seconds(10),
//                                                      [&] { return Ping(*port); });

#ifndef WEIR_TESTS_SUPPORT_CHILD_PROCESS_H_
#define WEIR_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace weir::testing {

// The program `name`: $<env_override> if set, else the first executable
// `name` on PATH, else in /usr/sbin or /usr/local/bin; "" if none.
std::string FindProgram(absl::string_view name, const char* env_override = nullptr);

// A TCP port of 127.0.0.1 that was free a moment ago (another process may
// still take it: retry on a failed start).
absl::StatusOr<int> FreeLoopbackPort();

// A fresh directory <$TMPDIR or /tmp>/<prefix>-XXXXXX.
absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix);

// The whole file, or "" if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

struct SpawnOptions {
  // stdout and stderr go here (appended); empty: /dev/null.
  std::string log_path;
  // The child's working directory; empty: the test's.
  std::string working_dir;
  // Run the child as this user (its uid, gid and groups), for servers that
  // refuse to run as root (PostgreSQL). Needs root. Empty: as the test.
  std::string user;
};

class ChildProcess {
 public:
  // fork + execv(argv[0], argv). The child dies with the test process.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(std::vector<std::string> argv,
                                                             SpawnOptions options = {});
  // Kills (SIGKILL) and reaps the child if it still runs.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& program() const { return program_; }
  // Whether it still runs (reaps it if it exited; exit_status() then says how).
  bool Running();
  // waitpid status of an exited child, -1 while it runs.
  int exit_status() const { return exit_status_; }
  // SIGKILL and reap, like a crash.
  void Kill();
  // SIGTERM; SIGKILL after `grace`; reaps it.
  void Terminate(absl::Duration grace = absl::Seconds(5));
  // The log file's contents (SpawnOptions::log_path), for error messages.
  std::string Log() const { return ReadFileOrEmpty(log_path_); }

 private:
  ChildProcess(pid_t pid, std::string program, std::string log_path)
      : pid_(pid), program_(std::move(program)), log_path_(std::move(log_path)) {}
  void Reap(bool block);

  pid_t pid_;
  std::string program_;
  std::string log_path_;
  int exit_status_ = -1;
};

// Polls `ready` every 20 ms until it returns true (OK), the child exits
// (kInternal with its log) or `timeout` passes (kDeadlineExceeded with its
// log; the child is killed).
absl::Status WaitUntilReady(ChildProcess& child, absl::Duration timeout,
                            const std::function<bool()>& ready);

}  // namespace weir::testing

#endif  // WEIR_TESTS_SUPPORT_CHILD_PROCESS_H_
