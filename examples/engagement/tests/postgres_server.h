// A throwaway PostgreSQL server for tests: initdb into a temp directory and
// postgres on a free port of 127.0.0.1 (its socket in the same directory),
// trust authentication, fsync off. As root (the tests' usual case) it runs
// as the `postgres` user, since PostgreSQL refuses to run as root. Stopped
// (fast shutdown) and its directory removed when destroyed.
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

#ifndef WEIR_EXAMPLES_ENGAGEMENT_TESTS_POSTGRES_SERVER_H_
#define WEIR_EXAMPLES_ENGAGEMENT_TESTS_POSTGRES_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/support/child_process.h"

namespace engagement::testing {

class PostgresServer {
 public:
  // kFailedPrecondition (skip the test, or fail it in CI: see
  // tests/support/prerequisite.h) when PostgreSQL's programs are not
  // installed ($WEIR_POSTGRES_BIN, else the newest /usr/lib/postgresql/*/bin)
  // or, as root, there is no `postgres` user to run them as.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // libpq connection string of database `postgres` as user `postgres`.
  std::string conninfo() const;
  int port() const { return port_; }
  std::string Log() const { return server_ == nullptr ? "" : server_->Log(); }

 private:
  PostgresServer() = default;

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<weir::testing::ChildProcess> server_;
};

}  // namespace engagement::testing

#endif  // WEIR_EXAMPLES_ENGAGEMENT_TESTS_POSTGRES_SERVER_H_
