// ClickHouseServer: a real clickhouse-server (Debian's package) for tests,
// started as a child process with a generated minimal configuration, its
// HTTP and native ports on free ports of 127.0.0.1, and its data in a temp
// directory; killed (and the directory removed) when destroyed. It can be
// killed and restarted on the same ports and data, to test outages.
//
// The server has the user "weir" with the password kPassword, and runs in
// UTC.
//
// Example:
//   absl::StatusOr<std::unique_ptr<ClickHouseServer>> server = ClickHouseServer::Start();
//   ASSERT_TRUE(server.ok()) << server.status();
//   weir::clickhouse::ConnectionOptions connection = (*server)->Connection();

#ifndef WEIR_TESTS_UNIT_CONNECTORS_CLICKHOUSE_CLICKHOUSE_SERVER_H_
#define WEIR_TESTS_UNIT_CONNECTORS_CLICKHOUSE_CLICKHOUSE_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/child_process.h"
#include "weir/connectors/clickhouse.h"

namespace weir::testing {

class ClickHouseServer {
 public:
  static constexpr const char* kUser = "weir";
  static constexpr const char* kPassword = "weir-secret";

  // Starts the server and waits (up to 60 s) until /ping answers.
  // kFailedPrecondition when clickhouse-server is not installed
  // ($WEIR_CLICKHOUSE_SERVER, else clickhouse-server on PATH or /usr/sbin).
  static absl::StatusOr<std::unique_ptr<ClickHouseServer>> Start();

  // The server every test of this test binary shares when ctest runs it:
  // $WEIR_TEST_SHARED_CLICKHOUSE names the directory where the ctest
  // fixture (weir_shared_clickhouse, started before the binary's first test
  // and stopped after its last) wrote the server's address. Tests sharing it
  // keep to tables (or a database) of their own. Without the variable (a
  // binary run by hand): Start(). A shared server cannot be killed or
  // restarted: a test that does that starts its own.
  static absl::StatusOr<std::unique_ptr<ClickHouseServer>> Shared();

  ClickHouseServer(const ClickHouseServer&) = delete;
  ClickHouseServer& operator=(const ClickHouseServer&) = delete;
  ~ClickHouseServer();

  // SIGKILLs the server (no clean shutdown). Not for a shared server.
  void Kill();
  // Starts it again on the same ports and data, and waits for /ping.
  // kFailedPrecondition for a shared server.
  absl::Status Restart();
  bool shared() const { return shared_; }

  int http_port() const { return http_port_; }
  // "http://127.0.0.1:<http port>"
  std::string url() const;
  // Options that reach this server as kUser.
  clickhouse::ConnectionOptions Connection() const;

 private:
  ClickHouseServer() = default;
  absl::Status Launch();

  std::string binary_;
  std::string directory_;
  int http_port_ = 0;
  int tcp_port_ = 0;
  bool shared_ = false;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_CONNECTORS_CLICKHOUSE_CLICKHOUSE_SERVER_H_
