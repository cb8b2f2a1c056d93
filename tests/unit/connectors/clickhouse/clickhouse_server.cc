#include "tests/unit/connectors/clickhouse/clickhouse_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace weir::testing {

namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(60);

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClickHouseServer>> ClickHouseServer::Start() {
  std::unique_ptr<ClickHouseServer> server(new ClickHouseServer());
  server->binary_ = FindProgram("clickhouse-server", "WEIR_CLICKHOUSE_SERVER");
  if (server->binary_.empty()) {
    return absl::FailedPreconditionError(
        "clickhouse-server is not installed: run .ci/setup, or set WEIR_CLICKHOUSE_SERVER");
  }
  // The client under test must talk to 127.0.0.1 directly, never via a proxy.
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);

  absl::StatusOr<std::string> temp_dir = MakeTempDir("weir-clickhouse");
  if (!temp_dir.ok()) return temp_dir.status();
  server->directory_ = *temp_dir;
  const std::string& dir = server->directory_;
  absl::StatusOr<int> http_port = FreeLoopbackPort();
  absl::StatusOr<int> tcp_port = FreeLoopbackPort();
  if (!http_port.ok()) return http_port.status();
  if (!tcp_port.ok()) return tcp_port.status();
  if (*http_port == *tcp_port) return absl::InternalError("the same free port twice");
  server->http_port_ = *http_port;
  server->tcp_port_ = *tcp_port;

  // What clickhouse-server 18.16 needs to start, and small caches.
  std::string config = absl::StrCat(R"(<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>)",
                                    dir, R"(/server.log</log>
    <errorlog>)",
                                    dir, R"(/server.err.log</errorlog>
    <console>0</console>
  </logger>
  <http_port>)",
                                    server->http_port_, R"(</http_port>
  <tcp_port>)",
                                    server->tcp_port_, R"(</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>)",
                                    dir, R"(/data/</path>
  <tmp_path>)",
                                    dir, R"(/tmp/</tmp_path>
  <user_files_path>)",
                                    dir, R"(/user_files/</user_files_path>
  <format_schema_path>)",
                                    dir, R"(/format_schemas/</format_schema_path>
  <users_config>)",
                                    dir, R"(/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
</yandex>
)");
  std::string users = absl::StrCat(R"(<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <)",
                                   kUser, "><password>", kPassword, R"(</password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </)",
                                   kUser, R"(>
  </users>
  <quotas><default></default></quotas>
</yandex>
)");
  if (absl::Status status = WriteFile(absl::StrCat(dir, "/config.xml"), config); !status.ok()) {
    return status;
  }
  if (absl::Status status = WriteFile(absl::StrCat(dir, "/users.xml"), users); !status.ok()) {
    return status;
  }
  if (absl::Status status = server->Launch(); !status.ok()) return status;
  return server;
}

absl::Status ClickHouseServer::Launch() {
  const std::string config_arg = absl::StrCat("--config-file=", directory_, "/config.xml");
  const std::string output_path = absl::StrCat(directory_, "/stdout.log");
  std::vector<std::string> args = {binary_, config_arg};
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(std::move(args), {.log_path = output_path, .working_dir = directory_});
  if (!child.ok()) return child.status();
  process_ = *std::move(child);

  clickhouse::ConnectionOptions probe = Connection();
  probe.max_attempts = 1;
  probe.request_timeout = absl::Seconds(2);
  probe.connect_timeout = absl::Seconds(1);
  absl::Status last_answer;
  absl::Status ready = WaitUntilReady(*process_, kStartTimeout, [&] {
    absl::StatusOr<std::string> answer = clickhouse::Query(probe, "SELECT 1");
    last_answer = answer.status();
    return answer.ok();
  });
  if (!ready.ok()) {
    process_.reset();
    return absl::Status(
        ready.code(),
        absl::StrCat(ready.message(), "\nlast answer: ", last_answer.ToString(), "\nerror log:\n",
                     ReadFileOrEmpty(directory_ + "/server.err.log")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ClickHouseServer>> ClickHouseServer::Shared() {
  const char* dir = std::getenv("WEIR_TEST_SHARED_CLICKHOUSE");
  if (dir == nullptr || *dir == '\0') return Start();
  const std::string port_file = absl::StrCat(dir, "/http_port");
  std::unique_ptr<ClickHouseServer> server(new ClickHouseServer());
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFileOrEmpty(port_file)),
                        &server->http_port_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "WEIR_TEST_SHARED_CLICKHOUSE=", dir, " but ", port_file,
        " holds no port: the fixture that starts the shared server failed (its log: ", dir,
        "/daemon.log)"));
  }
  server->shared_ = true;
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
  return server;
}

void ClickHouseServer::Kill() {
  if (shared_) {
    std::fprintf(stderr, "ClickHouseServer::Kill on the shared server: ignored\n");
    return;
  }
  process_.reset();
}

absl::Status ClickHouseServer::Restart() {
  if (shared_) return absl::FailedPreconditionError("the shared ClickHouse server cannot restart");
  Kill();
  return Launch();
}

ClickHouseServer::~ClickHouseServer() {
  if (process_ != nullptr) process_->Terminate(absl::Seconds(5));
  std::error_code ignored;
  if (!directory_.empty()) std::filesystem::remove_all(directory_, ignored);
}

std::string ClickHouseServer::url() const { return absl::StrCat("http://127.0.0.1:", http_port_); }

clickhouse::ConnectionOptions ClickHouseServer::Connection() const {
  clickhouse::ConnectionOptions options;
  options.url = url();
  options.user = kUser;
  options.password = kPassword;
  options.database = "default";
  return options;
}

}  // namespace weir::testing
