#include "tests/unit/connectors/redis/redis_server_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace weir::testing {

namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(10);

RedisReply Convert(const redisReply* reply) {
  RedisReply out;
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kString;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = reply->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t idx = 0; idx < reply->elements; ++idx) {
        out.elements.push_back(Convert(reply->element[idx]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  absl::StatusOr<std::string> dir = MakeTempDir("weir-redis");
  if (!dir.ok()) return dir.status();
  const std::string& dir_template = *dir;
  absl::Status status;
  for (int attempt = 0; attempt < 3; ++attempt) {  // another process may take the port
    absl::StatusOr<int> port = FreeLoopbackPort();
    if (!port.ok()) return port.status();
    std::unique_ptr<RedisServer> server(new RedisServer(options, dir_template, *port));
    status = server->Launch();
    if (status.ok()) return server;
    server->directory_.clear();  // keep the directory for the next attempt
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_template, ignored);
  return status;
}

absl::Status RedisServer::Launch() {
  const std::string binary = FindProgram("redis-server", "WEIR_REDIS_SERVER");
  if (binary.empty()) {
    return absl::FailedPreconditionError(
        "redis-server is not installed: run .ci/setup (Debian package redis-server), or set "
        "WEIR_REDIS_SERVER");
  }
  const std::string log_path = absl::StrCat(directory_, "/redis.log");
  std::vector<std::string> args = {
      binary,  "--port",   std::to_string(port_), "--bind", "127.0.0.1",   "--save", "",
      "--dir", directory_, "--logfile",           log_path, "--daemonize", "no",     "--databases",
      "16"};
  if (options_.persistent) {
    for (const char* arg : {"--appendonly", "yes", "--appendfsync", "always"}) args.push_back(arg);
  } else {
    for (const char* arg : {"--appendonly", "no"}) args.push_back(arg);
  }
  if (options_.unix_socket) {
    for (std::string arg : {std::string("--unixsocket"), unix_socket(),
                            std::string("--unixsocketperm"), std::string("700")}) {
      args.push_back(arg);
    }
  }
  if (!options_.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(options_.password);
  }
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Spawn(std::move(args));
  if (!child.ok()) return child.status();
  process_ = *std::move(child);
  // redis-server writes its log to --logfile, not to stdout.
  absl::Status ready = WaitUntilReady(*process_, kStartTimeout, [&] {
    absl::StatusOr<RedisReply> pong = Query({"PING"});
    return pong.ok() && pong->str == "PONG";
  });
  if (!ready.ok()) {
    process_.reset();
    return absl::Status(ready.code(), absl::StrCat(ready.message(), ReadFileOrEmpty(log_path)));
  }
  return absl::OkStatus();
}

RedisServer::~RedisServer() {
  Disconnect();
  process_.reset();
  if (!directory_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }
}

weir::redis::ConnectionOptions RedisServer::Connection() const {
  weir::redis::ConnectionOptions options;
  options.host = "127.0.0.1";
  options.port = port_;
  options.password = options_.password;
  return options;
}

void RedisServer::Kill() {
  Disconnect();
  process_.reset();  // SIGKILL
}

absl::Status RedisServer::Restart() {
  Kill();
  return Launch();
}

void RedisServer::Pause() {
  if (process_ != nullptr) ::kill(process_->pid(), SIGSTOP);
}

void RedisServer::Resume() {
  if (process_ != nullptr) ::kill(process_->pid(), SIGCONT);
}

void RedisServer::Disconnect() {
  if (admin_ != nullptr) redisFree(static_cast<redisContext*>(admin_));
  admin_ = nullptr;
}

absl::StatusOr<RedisReply> RedisServer::Query(const std::vector<std::string>& args) {
  if (admin_ == nullptr) {
    redisContext* context = redisConnectWithTimeout("127.0.0.1", port_, {1, 0});
    if (context == nullptr || context->err != 0) {
      std::string error = context == nullptr ? "out of memory" : context->errstr;
      if (context != nullptr) redisFree(context);
      return absl::UnavailableError(error);
    }
    redisSetTimeout(context, {10, 0});
    admin_ = context;
    if (!options_.password.empty()) {
      absl::StatusOr<RedisReply> auth = Query({"AUTH", options_.password});
      if (!auth.ok()) return auth.status();
    }
  }
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* context = static_cast<redisContext*>(admin_);
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
  if (reply == nullptr) {
    std::string error = context->errstr;
    Disconnect();
    return absl::UnavailableError(error);
  }
  RedisReply out = Convert(reply);
  freeReplyObject(reply);
  if (out.type == RedisReply::Type::kError) return absl::FailedPreconditionError(out.str);
  return out;
}

}  // namespace weir::testing
