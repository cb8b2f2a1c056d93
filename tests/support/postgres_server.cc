#include "tests/support/postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace weir::testing {
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

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(Options options) {
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
  server->options_ = std::move(options);
  server->bin_ = bin;
  server->user_name_ = user_name;
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
  std::vector<std::string> initdb_argv = {
      bin + "/initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"};
  if (server->options_.password.empty()) {
    initdb_argv.push_back("--auth=trust");
  } else {
    const std::string pwfile = server->dir_ + "/pwfile";
    std::ofstream(pwfile) << server->options_.password << "\n";
    absl::Status status = Chown(pwfile, user);
    if (!status.ok()) return status;
    initdb_argv.push_back("--auth=scram-sha-256");
    initdb_argv.push_back("--pwfile=" + pwfile);
  }
  absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> initdb =
      weir::testing::ChildProcess::Spawn(initdb_argv, {.log_path = server->dir_ + "/initdb.log",
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
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

absl::Status PostgresServer::Launch() {
  std::vector<std::string> argv = {bin_ + "/postgres",
                                   "-D",
                                   dir_ + "/data",
                                   "-p",
                                   std::to_string(port_),
                                   "-k",
                                   dir_,
                                   "-c",
                                   "listen_addresses=127.0.0.1",
                                   "-c",
                                   "fsync=off",
                                   "-c",
                                   "synchronous_commit=off",
                                   "-c",
                                   "full_page_writes=off",
                                   "-c",
                                   "wal_level=logical",
                                   "-c",
                                   "max_wal_senders=20",
                                   "-c",
                                   "max_replication_slots=20"};
  for (const std::string& setting : options_.settings) {
    argv.push_back("-c");
    argv.push_back(setting);
  }
  absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> postgres =
      weir::testing::ChildProcess::Spawn(
          argv, {.log_path = absl::StrCat(dir_, "/postgres-", ++launches_, ".log"),
                 .working_dir = dir_,
                 .user = user_name_});
  if (!postgres.ok()) return postgres.status();
  server_ = *std::move(postgres);
  // PQping answers "ok" for a server that rejects the password too.
  const std::string conninfo = this->conninfo();
  absl::Status ready = weir::testing::WaitUntilReady(
      *server_, absl::Seconds(30), [&] { return PQping(conninfo.c_str()) == PQPING_OK; });
  if (!ready.ok()) server_.reset();
  return ready;
}

void PostgresServer::Stop() {
  if (server_ != nullptr && server_->Running()) {
    ::kill(server_->pid(), SIGINT);  // fast shutdown: disconnects clients
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (server_->Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  }
  server_.reset();  // kills it if it still runs
}

absl::Status PostgresServer::Restart() {
  Stop();
  return Launch();
}

PostgresServer::~PostgresServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  }
}

std::string PostgresServer::conninfo() const {
  std::string conninfo = absl::StrCat("host=127.0.0.1 port=", port_,
                                      " user=postgres dbname=postgres connect_timeout=5");
  if (!options_.password.empty()) absl::StrAppend(&conninfo, " password=", options_.password);
  return conninfo;
}

}  // namespace weir::testing
