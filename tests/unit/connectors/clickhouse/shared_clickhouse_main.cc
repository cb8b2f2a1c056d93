// weir_shared_clickhouse: one clickhouse-server for every test of a test
// binary, as a ctest fixture (tests/CMakeLists.txt, weir_test's
// SHARED_CLICKHOUSE). ctest runs each gtest case in a process of its own, so
// a server per test suite would start once per test.
//
//   weir_shared_clickhouse start <dir>   starts a daemon that runs the server
//                                        (ClickHouseServer::Start) and writes
//                                        <dir>/http_port once it answers;
//                                        exits when it does (0) or failed (1)
//   weir_shared_clickhouse stop <dir>    stops the daemon and its server
//
// The tests find the server through $WEIR_TEST_SHARED_CLICKHOUSE=<dir>
// (ClickHouseServer::Shared). The daemon stops by itself after 3 hours, so
// a run killed before its cleanup leaves no server behind for long.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "tests/support/child_process.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }

bool WriteAtomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text;
    if (!out) return false;
  }
  return std::rename(temp.c_str(), path.c_str()) == 0;
}

// The daemon: runs the server until SIGTERM (or 3 hours).
[[noreturn]] void Daemon(const std::string& dir) {
  const int log = open((dir + "/daemon.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log >= 0) {
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    close(log);
  }
  std::signal(SIGTERM, OnTerm);
  std::signal(SIGINT, OnTerm);
  absl::StatusOr<std::unique_ptr<weir::testing::ClickHouseServer>> server =
      weir::testing::ClickHouseServer::Start();
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    WriteAtomically(dir + "/error", server.status().ToString());
    _exit(1);
  }
  WriteAtomically(dir + "/pid", std::to_string(getpid()));
  WriteAtomically(dir + "/http_port", std::to_string((*server)->http_port()));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::hours(3);
  while (!g_stop && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  server->reset();  // stops the server and removes its data
  std::error_code ignored;
  std::filesystem::remove(dir + "/http_port", ignored);
  _exit(0);
}

int Start(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
    return 1;
  }
  // Double fork: the daemon is no child of ctest's test process, which
  // must exit for ctest to go on.
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    Daemon(dir);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(dir + "/http_port")) {
      std::printf("shared clickhouse-server on http://127.0.0.1:%s\n",
                  weir::testing::ReadFileOrEmpty(dir + "/http_port").c_str());
      return 0;
    }
    if (std::filesystem::exists(dir + "/error")) {
      std::fprintf(stderr, "the shared clickhouse-server did not start: %s\n",
                   weir::testing::ReadFileOrEmpty(dir + "/error").c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "the shared clickhouse-server did not start within 90 s: %s\n",
               weir::testing::ReadFileOrEmpty(dir + "/daemon.log").c_str());
  return 1;
}

int Stop(const std::string& dir) {
  pid_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(weir::testing::ReadFileOrEmpty(dir + "/pid")),
                        &pid) ||
      pid <= 1) {
    std::printf("no shared clickhouse-server in %s\n", dir.c_str());
    return 0;
  }
  kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (kill(pid, 0) == 0) kill(pid, SIGKILL);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "start") return Start(argv[2]);
  if (argc == 3 && std::string(argv[1]) == "stop") return Stop(argv[2]);
  std::fprintf(stderr, "usage: weir_shared_clickhouse start|stop <dir>\n");
  return 2;
}
