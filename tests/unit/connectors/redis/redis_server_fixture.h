// RedisServer: a real redis-server (Debian's package, installed by .ci/setup)
// for tests and benches, started as a child process on a free port of
// 127.0.0.1 with its files in a temp directory, never the system service.
// It can be killed (SIGKILL) and restarted on the same port with the same
// files, and carries an admin connection (hiredis) to inspect what a test
// wrote.
//
// Example:
//   absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
//   ASSERT_TRUE(server.ok()) << server.status();
//   weir::redis::SinkOptions options{.connection = (*server)->Connection()};
//   ...
//   absl::StatusOr<RedisReply> value = (*server)->Query({"GET", "key"});

#ifndef WEIR_TESTS_UNIT_CONNECTORS_REDIS_REDIS_SERVER_FIXTURE_H_
#define WEIR_TESTS_UNIT_CONNECTORS_REDIS_REDIS_SERVER_FIXTURE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/child_process.h"
#include "weir/connectors/redis.h"

namespace weir::testing {

struct RedisServerOptions {
  // requirepass: clients must AUTH with it (the admin connection does).
  // Default: none
  std::string password;
  // appendonly yes + appendfsync always: every acknowledged write survives a
  // SIGKILL. Otherwise nothing is persisted (--save '' --appendonly no).
  // Default: false
  bool persistent = false;
  // Also listens on a Unix socket (unix_socket()).
  // Default: false
  bool unix_socket = false;
};

// One reply, flattened to what tests compare.
struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;  // string, status and error replies
  int64_t integer = 0;
  std::vector<RedisReply> elements;
};

class RedisServer {
 public:
  // Starts redis-server ($WEIR_REDIS_SERVER or redis-server from PATH) and
  // waits (up to 10 s) until it answers PING.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  // Stops the server and removes its directory.
  ~RedisServer();

  int port() const { return port_; }
  // Path of the Unix socket (with RedisServerOptions::unix_socket).
  std::string unix_socket() const { return directory_ + "/redis.sock"; }
  // Reaches this server as the admin (with the password, if any).
  weir::redis::ConnectionOptions Connection() const;

  // SIGKILL, like a crash; the files stay.
  void Kill();
  // Starts it again on the same port with the same files.
  absl::Status Restart();
  // SIGSTOP, like a hung server: the kernel still accepts connections and
  // buffers what clients send, but nothing is answered until Resume()
  // (SIGCONT). Do not Query() meanwhile: it would wait for an answer.
  void Pause();
  void Resume();

  // Runs a command as the admin.
  absl::StatusOr<RedisReply> Query(const std::vector<std::string>& args);

 private:
  RedisServer(RedisServerOptions options, std::string directory, int port)
      : options_(std::move(options)), directory_(std::move(directory)), port_(port) {}
  absl::Status Launch();
  void Disconnect();

  RedisServerOptions options_;
  std::string directory_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
  void* admin_ = nullptr;  // redisContext*
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_CONNECTORS_REDIS_REDIS_SERVER_FIXTURE_H_
