#include "lib/connectors/redis/connection.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace weir::redis::internal {

namespace {

timeval TimeoutTimeval(absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) duration = absl::Milliseconds(1);
  return absl::ToTimeval(duration);
}

}  // namespace

std::string Address(const ConnectionOptions& options) {
  if (!options.unix_socket.empty()) return absl::StrCat("unix:", options.unix_socket);
  return absl::StrCat(options.host, ":", options.port);
}

absl::Status ErrorReplyStatus(absl::string_view message) {
  const std::string text(message);
  // Redis 7 keeps the code of an error raised inside a script at the front.
  if (absl::StartsWith(message, "WRONGPASS") || absl::StartsWith(message, "NOAUTH") ||
      absl::StrContains(message, "invalid password") ||
      absl::StrContains(message, "invalid username-password")) {
    return absl::UnauthenticatedError(text);
  }
  if (absl::StartsWith(message, "NOPERM") || absl::StrContains(message, "-NOPERM")) {
    return absl::PermissionDeniedError(text);
  }
  for (absl::string_view transient : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "OOM",
                                      "READONLY", "NOSCRIPT", "CLUSTERDOWN"}) {
    if (absl::StartsWith(message, transient)) return absl::UnavailableError(text);
  }
  return absl::FailedPreconditionError(text);
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options) {
  const timeval connect_timeout = TimeoutTimeval(options.connect_timeout);
  redisContext* context =
      options.unix_socket.empty()
          ? redisConnectWithTimeout(options.host.c_str(), options.port, connect_timeout)
          : redisConnectUnixWithTimeout(options.unix_socket.c_str(), connect_timeout);
  if (context == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a hiredis context");
  }
  std::unique_ptr<Connection> connection(new Connection(context));
  if (context->err != 0) return connection->IoError();
  if (redisSetTimeout(context, TimeoutTimeval(options.command_timeout)) != REDIS_OK) {
    return connection->IoError();
  }
  // TCP keepalive finds a dead peer of an idle connection (hiredis sets TCP_KEEPIDLE, which a
  // Unix socket rejects, leaving the context in error).
  if (options.unix_socket.empty() && redisEnableKeepAlive(context) != REDIS_OK) {
    return connection->IoError();
  }

  if (!options.password.empty() || !options.user.empty()) {
    absl::StatusOr<ReplyPtr> auth =
        options.user.empty() ? connection->Command({"AUTH", options.password})
                             : connection->Command({"AUTH", options.user, options.password});
    if (!auth.ok()) {
      absl::Status status = auth.status();
      // Any rejected AUTH is a credentials problem, whatever its code.
      if (status.code() == absl::StatusCode::kFailedPrecondition) {
        status = absl::UnauthenticatedError(status.message());
      }
      return absl::Status(
          status.code(),
          absl::StrCat("AUTH", options.user.empty() ? "" : " as user '", options.user,
                       options.user.empty() ? "" : "'", " failed: ", status.message()));
    }
  }
  if (options.database != 0) {
    absl::StatusOr<ReplyPtr> select =
        connection->Command({"SELECT", std::to_string(options.database)});
    if (!select.ok()) {
      absl::Status status = select.status();
      if (status.code() == absl::StatusCode::kFailedPrecondition) {
        status = absl::InvalidArgumentError(status.message());
      }
      return absl::Status(status.code(),
                          absl::StrCat("SELECT ", options.database, " failed: ", status.message()));
    }
  }
  return connection;
}

Connection::~Connection() = default;

absl::Status Connection::IoError() const {
  const redisContext* context = context_.get();
  std::string what = context->errstr[0] != '\0' ? context->errstr : "connection error";
  if (context->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    what = "timed out";
  }
  return absl::UnavailableError(what);
}

absl::StatusOr<ReplyPtr> Connection::Command(std::initializer_list<absl::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (absl::string_view arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  void* raw =
      redisCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (raw == nullptr) return IoError();
  ReplyPtr reply(static_cast<redisReply*>(raw));
  if (reply->type == REDIS_REPLY_ERROR) {
    return ErrorReplyStatus(absl::string_view(reply->str, reply->len));
  }
  return reply;
}

absl::Status Connection::Append(absl::string_view resp) {
  if (redisAppendFormattedCommand(context_.get(), resp.data(), resp.size()) != REDIS_OK) {
    return IoError();
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplyPtr> Connection::GetReply() {
  void* raw = nullptr;
  if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) return IoError();
  return ReplyPtr(static_cast<redisReply*>(raw));
}

void Connection::Interrupt() {
  if (context_ != nullptr && context_->fd >= 0) ::shutdown(context_->fd, SHUT_RDWR);
}

}  // namespace weir::redis::internal
