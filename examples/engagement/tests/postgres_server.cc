#include "examples/engagement/tests/postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace engagement::testing {
namespace {

// $WEIR_POSTGRES_BIN, or the newest /usr/lib/postgresql/<version>/bin.
std::string PostgresBinDir() {
  if (const char* dir = std::getenv("WEIR_POSTGRES_BIN"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  std::vector<std::filesystem::path> candidates;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    if (std::filesystem::exists(entry.path() / "bin" / "postgres")) {
      candidates.push_back(entry.path() / "bin");
    }
  }
  if (candidates.empty()) return "";
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return std::atoi(a.parent_path().filename().c_str()) <
           std::atoi(b.parent_path().filename().c_str());
  });
  return candidates.back().string();
}

absl::Status Chown(const std::string& path, const passwd* user) {
  if (user == nullptr) return absl::OkStatus();
  if (::chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("chown ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  const std::string bin = PostgresBinDir();
  if (bin.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL's server programs are not installed (no /usr/lib/postgresql/*/bin/postgres; "
        "install the postgresql package: .ci/setup, or set WEIR_POSTGRES_BIN)");
  }
  const passwd* user = nullptr;
  std::string user_name;
  if (::geteuid() == 0) {
    user = ::getpwnam("postgres");
    if (user == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, and there is no 'postgres' user to run PostgreSQL as (it refuses "
          "to run as root)");
    }
    user_name = "postgres";
  }
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("weir-postgres");
  if (!dir.ok()) return dir.status();
  server->dir_ = *dir;
  const std::string data = server->dir_ + "/data";
  ::mkdir(data.c_str(), 0700);
  for (const std::string& path : {server->dir_, data}) {
    absl::Status status = Chown(path, user);
    if (!status.ok()) return status;
  }

  // initdb, waiting for it to finish.
  absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> initdb =
      weir::testing::ChildProcess::Spawn({bin + "/initdb", "-D", data, "-U", "postgres",
                                          "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                                         {.log_path = server->dir_ + "/initdb.log",
                                          .working_dir = server->dir_,
                                          .user = user_name});
  if (!initdb.ok()) return initdb.status();
  const absl::Time initdb_deadline = absl::Now() + absl::Seconds(120);
  while ((*initdb)->Running() && absl::Now() < initdb_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if ((*initdb)->Running() || !WIFEXITED((*initdb)->exit_status()) ||
      WEXITSTATUS((*initdb)->exit_status()) != 0) {
    return absl::InternalError(absl::StrCat("initdb failed; log:\n", (*initdb)->Log()));
  }

  // postgres on a free port (retried: another process may take the port).
  absl::Status last = absl::OkStatus();
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<int> port = weir::testing::FreeLoopbackPort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> postgres =
        weir::testing::ChildProcess::Spawn(
            {bin + "/postgres", "-D", data, "-p", std::to_string(*port), "-k", server->dir_, "-c",
             "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
             "full_page_writes=off"},
            {.log_path = server->dir_ + "/postgres.log",
             .working_dir = server->dir_,
             .user = user_name});
    if (!postgres.ok()) return postgres.status();
    server->server_ = *std::move(postgres);
    const std::string conninfo = server->conninfo();
    last = weir::testing::WaitUntilReady(*server->server_, absl::Seconds(30),
                                         [&] { return PQping(conninfo.c_str()) == PQPING_OK; });
    if (last.ok()) return server;
    server->server_.reset();
  }
  return last;
}

PostgresServer::~PostgresServer() {
  if (server_ != nullptr && server_->Running()) {
    ::kill(server_->pid(), SIGINT);  // fast shutdown: disconnects clients
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (server_->Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  }
  server_.reset();  // kills it if it still runs
  if (!dir_.empty()) {
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  }
}

std::string PostgresServer::conninfo() const {
  return absl::StrCat("host=127.0.0.1 port=", port_,
                      " user=postgres dbname=postgres connect_timeout=5");
}

}  // namespace engagement::testing
