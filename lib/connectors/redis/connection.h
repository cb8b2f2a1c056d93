// A blocking connection to one Redis server (a hiredis redisContext), with
// the login steps (AUTH, SELECT) and the translation of hiredis and Redis
// errors into absl::Status. Used by the Redis sink's writer
// (lib/connectors/redis/writer.cc); no hiredis type leaves lib/.

#ifndef WEIR_LIB_CONNECTORS_REDIS_CONNECTION_H_
#define WEIR_LIB_CONNECTORS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weir/connectors/redis.h"

namespace weir::redis::internal {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
// A reply owned by the caller (freeReplyObject).
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// "127.0.0.1:6379" or "unix:/path".
std::string Address(const ConnectionOptions& options);

// The status of a Redis error reply, by its error code: WRONGPASS/NOAUTH ->
// kUnauthenticated, NOPERM -> kPermissionDenied, LOADING/BUSY/OOM/... ->
// kUnavailable (transient: retry), anything else -> kFailedPrecondition. The
// message is Redis's.
absl::Status ErrorReplyStatus(absl::string_view message);

// Thread-safety: one thread uses a connection; Interrupt() may be called from
// another while the owner keeps the object alive.
class Connection {
 public:
  // Connects (redisConnectWithTimeout / redisConnectUnixWithTimeout), sets
  // the command timeout (redisSetTimeout), logs in (AUTH) and selects the
  // database. Network errors are kUnavailable; bad credentials
  // kUnauthenticated; missing permissions kPermissionDenied.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Sends one command and waits for its reply (redisCommandArgv). An error
  // reply becomes ErrorReplyStatus; I/O errors kUnavailable.
  absl::StatusOr<ReplyPtr> Command(std::initializer_list<absl::string_view> args);
  // Queues a RESP-encoded command without sending it
  // (redisAppendFormattedCommand).
  absl::Status Append(absl::string_view resp);
  // Sends what is queued and reads the next reply (redisGetReply). I/O
  // errors and timeouts are kUnavailable; error replies are returned as
  // replies.
  absl::StatusOr<ReplyPtr> GetReply();
  // Makes a blocked Command/GetReply on another thread return promptly
  // (shutdown(2) of the socket).
  void Interrupt();

 private:
  struct ContextDeleter {
    void operator()(redisContext* context) const { redisFree(context); }
  };
  explicit Connection(redisContext* context) : context_(context) {}
  absl::Status IoError() const;

  std::unique_ptr<redisContext, ContextDeleter> context_;
};

}  // namespace weir::redis::internal

#endif  // WEIR_LIB_CONNECTORS_REDIS_CONNECTION_H_
