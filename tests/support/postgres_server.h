// A throwaway PostgreSQL server for tests: initdb into a temp directory and
// postgres on a free port of 127.0.0.1 (its socket in the same directory),
// fsync off, wal_level=logical (so change capture can be tested; replication
// connections from loopback are allowed). Authentication is trust, or a
// password (scram-sha-256) when Options::password is set. As root (the tests'
// usual case) it runs as the `postgres` user, since PostgreSQL refuses to run
// as root. Stopped (fast shutdown) and its directory removed when destroyed.
//
// Limit: switching user clears the parent-death signal, so a server of a
// test that crashes outlives it until the postmaster notices its data
// directory's lock file is gone (within about a minute of deleting the
// directory) or is killed.
//
// Example:
//   absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
//   if (absl::IsFailedPrecondition(server.status()))
//     WEIR_MISSING_PREREQUISITE(server.status().message());  // tests/support/prerequisite.h
//   PGconn* conn = PQconnectdb((*server)->conninfo().c_str());

#ifndef WEIR_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define WEIR_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/support/child_process.h"

namespace weir::testing {

class PostgresServer {
 public:
  struct Options {
    // Extra server settings, "name=value" each (passed as -c name=value),
    // e.g. "wal_level=replica", "wal_sender_timeout=2s".
    std::vector<std::string> settings;
    // Non-empty: the `postgres` user has this password and every connection
    // must give it (scram-sha-256); conninfo() includes it.
    std::string password;
  };

  // kFailedPrecondition (skip the test, or fail it in CI: see
  // tests/support/prerequisite.h) when PostgreSQL's programs are not
  // installed ($WEIR_POSTGRES_BIN, else the newest /usr/lib/postgresql/*/bin)
  // or, as root, there is no `postgres` user to run them as.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start() { return Start(Options()); }
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Stops the server (fast shutdown: clients are disconnected) and starts it
  // again on the same port and data directory, as `pg_ctl restart` would.
  absl::Status Restart();

  // libpq connection string of database `postgres` as user `postgres`.
  std::string conninfo() const;
  int port() const { return port_; }
  std::string Log() const { return server_ == nullptr ? "" : server_->Log(); }

 private:
  PostgresServer() = default;
  absl::Status Launch();
  void Stop();

  Options options_;
  std::string bin_;
  std::string user_name_;
  std::string dir_;
  int port_ = 0;
  int launches_ = 0;
  std::unique_ptr<weir::testing::ChildProcess> server_;
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_SUPPORT_POSTGRES_SERVER_H_
