// The Redis sink: writes a stream's records to Redis as commands, pipelined
// and batched, idempotent and fenced, so that a job restarted from a
// checkpoint converges to the same Redis state as a run without failure.
//
// A mapping turns each record into commands. Four are built in:
//   HashMapping       HSET key field value ... (+ PEXPIRE key ttl)    per-entity metrics
//   SortedSetMapping  ZADD key score member (+ trim to the top N and PEXPIRE)  leaderboards
//   StringMapping     SET key value [PX ttl]
//   CommandMapping    any commands, built with a CommandBuilder
// Write absolute values (a window's total, a running count from keyed state),
// never increments (HINCRBY, INCR, ZINCRBY): a restart replays the records
// after the last checkpoint, and only absolute values make the replay
// converge instead of counting twice.
//
// How records reach Redis. Each worker has its own writer and connection.
// Records are encoded into a batch; a batch is sent when it holds
// `batch_records` records or its first record is `linger` old, and at every
// checkpoint barrier (PreCommit) and at the end of input, which wait until
// Redis acknowledged everything. Up to `max_in_flight_batches` batches are
// pipelined on the connection. Each batch is one EVALSHA of a Lua script that
// applies its commands atomically only if the writer's epoch is still the
// newest (fencing, below).
//
// Fencing. Every writer gets an epoch when it is created (each time the job
// starts or restores): HINCRBY of its field (the worker index) in the hash
// `fence_key`. A batch is applied only if that field still holds an epoch no
// newer than the writer's, so an instance of an older run that is still
// alive (a "zombie": a hung process, a partitioned host) can never write over
// the newer run's values; it fails with kAborted naming the sink. Restoring
// with a smaller parallelism also bumps the fields of the workers that no
// longer exist. The fence key follows the sink's uid (SinkHandle::Uid()),
// not its display name, so renaming the sink keeps the fence. Two jobs writing
// to the same Redis database need different sink uids (or fence keys). Give
// the sink a uid (`.Sink(sink).Uid("totals")`; required with checkpoints):
// without one it is identified by its place in the graph ("Sink#7"), which
// moves when the job's shape changes, and then a zombie would not be fenced.
//
// Batches of one writer carry a sequence number (1, 2, ...) kept next to the
// epoch in the fence, and Redis applies them strictly in order: a batch at
// or below the last one applied is skipped as already applied. So after a
// command timeout or a dropped connection, bytes of the old connection that
// Redis executes late (after the resend and newer batches) cannot put older
// absolute values back. A writer whose oldest unacknowledged batch is ahead
// of the fence's sequence (Redis lost acknowledged batches: a failover, a
// restore from an older snapshot) fails with kAborted, so that the job
// restarts from its checkpoint.
//
// Lost data. Redis restarted without persistence (or flushed, or failed
// over to an empty replica) has lost every key the sink wrote, and records
// written long ago will not come again. The writer sees it: the fence is
// gone (at the next batch, or at start when the run restored the sink from
// a checkpoint). It logs the loss, marks the fence, and asks the job for a
// replay (ReplayService in weir/sink.h): every keyed operator whose function
// names a ReplayState() emits each key's current value again, throttled
// (PipelineOptions::replay_keys_per_second) beside the live records, and
// the sinks write them like any record. Once a checkpoint completes after
// the replay, the mark goes; a run that restores while the mark is there
// replays again. A reconnect to a Redis that kept its data replays nothing.
// Keys derived from nothing in keyed state (say, a sink fed by a stateless
// Map) are not rewritten.
//
// Failures. When Redis is down or restarting, the writer reconnects with
// exponential backoff and resends every batch Redis has not acknowledged
// (in order; resending is harmless since writes are idempotent and
// sequenced). Memory stays
// bounded: once `max_buffered_records` are waiting, Write blocks (which stops
// the worker and, through the runtime's backpressure, the sources) until
// Redis catches up. A writer that cannot reach Redis for `unavailable_timeout`
// fails the job with kUnavailable. Bad credentials fail the pipeline's start
// with kUnauthenticated, missing ACL permissions with kPermissionDenied, a
// command Redis rejects (e.g. WRONGTYPE) with kFailedPrecondition; each
// message names the sink and the worker.
//
// Not supported: TLS (hiredis 0.14, Debian 12's, has no TLS; use a Unix
// socket or a local TLS tunnel such as stunnel), Redis Cluster (one node or a
// proxy in front of a cluster), RESP3.
//
// Thread-safety: a Sink may be shared by several pipelines' workers; each
// writer is used only by its worker's thread (it runs one background thread
// of its own for I/O).
//
// Example:
//
//   weir::redis::SinkOptions options{.connection = {.host = "10.0.0.5", .password = "..."}};
//   totals.Sink(weir::redis::Sink<Total>(
//                   options,
//                   weir::redis::HashMapping<Total>{
//                       .key = [](const Total& t) { return absl::StrCat("content:", t.id); },
//                       .fields = [](const Total& t, weir::redis::Fields& f) {
//                         f.Add("views", t.views).Add("seconds", t.seconds);
//                       },
//                       .ttl = absl::Hours(24)}))
//       .Uid("redis-totals");
//   windows.Sink(weir::redis::Sink<WindowTotal>(
//                    options,
//                    weir::redis::SortedSetMapping<WindowTotal>{
//                        .key = [](const WindowTotal& w) { return absl::StrCat("top:", w.start); },
//                        .member = [](const WindowTotal& w) { return absl::StrCat(w.id); },
//                        .score = [](const WindowTotal& w) { return w.seconds; },
//                        .top_n = 100,
//                        .ttl = absl::Hours(2)}))
//       .Uid("redis-leaderboard");

#ifndef WEIR_CONNECTORS_REDIS_H_
#define WEIR_CONNECTORS_REDIS_H_

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "weir/sink.h"
#include "weir/time.h"

namespace weir::redis {

namespace internal {
class CommandBuilderAccess;
}  // namespace internal

// Where Redis is and how to log in.
struct ConnectionOptions {
  // Host name or IP address.
  // Default: "127.0.0.1"
  std::string host = "127.0.0.1";
  // Default: 6379
  int port = 6379;
  // Path of a Unix domain socket; when set, host and port are not used.
  // Default: none
  std::string unix_socket;
  // ACL user (Redis 6+): logs in with AUTH user password. Empty: AUTH
  // password (the `requirepass` / default user), or no AUTH at all when the
  // password is empty too.
  // Default: none
  std::string user;
  // Default: none
  std::string password;
  // The database to SELECT.
  // Default: 0
  int database = 0;
  // Limit of one connection attempt.
  // Default: 2 s
  absl::Duration connect_timeout = absl::Seconds(2);
  // Limit of one round trip (sending a batch, waiting for its reply); when
  // it passes, the connection is considered broken and the writer reconnects.
  // Default: 5 s
  absl::Duration command_timeout = absl::Seconds(5);
};

struct SinkOptions {
  ConnectionOptions connection;
  // A batch is sent once it holds this many records.
  // Default: 1000
  size_t batch_records = 1000;
  // ... or once its first record waited this long, so a slow stream is still
  // visible in Redis within a few milliseconds. Must be > 0.
  // Default: 5 ms
  absl::Duration linger = absl::Milliseconds(5);
  // Batches sent on the connection before their replies arrive.
  // Default: 4
  int max_in_flight_batches = 4;
  // Records encoded but not yet acknowledged by Redis, per writer, beyond
  // which Write blocks (backpressure). Must be >= batch_records.
  // Default: 50000
  size_t max_buffered_records = 50000;
  // Reconnection backoff: the first wait, doubled after each failure up to
  // max_backoff.
  // Default: 20 ms
  absl::Duration initial_backoff = absl::Milliseconds(20);
  // Default: 1 s
  absl::Duration max_backoff = absl::Seconds(1);
  // How long a writer keeps trying to reach Redis (when it has something to
  // write, or when the pipeline starts) before it fails with kUnavailable.
  // Default: 30 s
  absl::Duration unavailable_timeout = absl::Seconds(30);
  // An idle writer (nothing written for this long) sends an empty fenced
  // batch: it finds a Redis that restarted empty (see "Lost data") or went
  // away even when the stream is quiet. Zero: never.
  // Default: 1 s
  absl::Duration heartbeat = absl::Seconds(1);
  // The hash that holds the writers' epochs (one field per worker).
  // Default: "weir:fence:" + the sink's uid (SinkContext::operator_uid)
  std::string fence_key;
};

// Appends commands to the batch being built. Used by mappings; a record may
// produce any number of commands (none too).
//
//   out.Add({"SADD", key, member});
//   out.Begin("ZADD").Arg(key).Arg(score).Arg(member).End();
//   out.AddOncePerBatch({"PEXPIRE", key, "60000"});   // deduplicated, after the batch's others
class CommandBuilder {
 public:
  CommandBuilder() = default;

  // Appends one command; args[0] is its name.
  void Add(std::initializer_list<std::string_view> args);
  void Add(std::span<const std::string> args);
  // Appends a command that runs once per batch however many records add it,
  // after the batch's other commands: EXPIRE or trimming of a key the batch
  // wrote. Commands compare equal byte for byte.
  void AddOncePerBatch(std::initializer_list<std::string_view> args);

  // Builds a command argument by argument: Begin(name), Arg()..., End().
  CommandBuilder& Begin(std::string_view name);
  CommandBuilder& Arg(std::string_view value);
  // Integers in decimal; floating point in the shortest form that reads back
  // exactly (NaN is rejected by Redis).
  template <class V>
  requires(std::is_arithmetic_v<V> && !std::is_same_v<V, bool>) CommandBuilder& Arg(V value) {
    char buffer[64];
    std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    return Arg(std::string_view(buffer, static_cast<size_t>(result.ptr - buffer)));
  }
  // Appends the command begun by Begin(). Drop() forgets it instead.
  void End();
  void Drop();
  // Arguments of the command being built (the name included).
  int pending_args() const { return pending_argc_; }

 private:
  friend class internal::CommandBuilderAccess;

  void AppendBulk(std::string& out, std::string_view value);

  // The Lua script's ARGV layout: for each command its argument count, then
  // its arguments; all RESP bulk strings.
  std::string body_;
  size_t body_items_ = 0;
  std::string once_body_;
  size_t once_items_ = 0;
  absl::flat_hash_set<std::string> once_seen_;
  // AddOncePerBatch's encoded command, kept with its capacity.
  std::string once_scratch_;
  std::string pending_;
  int pending_argc_ = 0;
};

// Field/value pairs of one HSET (see HashMapping).
class Fields {
 public:
  explicit Fields(CommandBuilder& out) : out_(out) {}
  Fields& Add(std::string_view field, std::string_view value) {
    out_.Arg(field).Arg(value);
    ++count_;
    return *this;
  }
  template <class V>
  requires(std::is_arithmetic_v<V> && !std::is_same_v<V, bool>) Fields& Add(std::string_view field,
                                                                            V value) {
    out_.Arg(field).Arg(value);
    ++count_;
    return *this;
  }
  int count() const { return count_; }

 private:
  CommandBuilder& out_;
  int count_ = 0;
};

// HSET key field value ... for each record, then PEXPIRE key ttl once per
// batch for each key written (the TTL restarts with every update).
template <class T>
struct HashMapping {
  // The hash's key. Required.
  std::function<std::string(const T&)> key;
  // Adds the fields to set. Required. A record that adds none writes nothing.
  std::function<void(const T&, Fields&)> fields;
  // Zero: the keys do not expire.
  // Default: none
  absl::Duration ttl = absl::ZeroDuration();
};

// ZADD key score member for each record, then once per batch for each key
// written: ZREMRANGEBYRANK key 0 -(top_n+1) (keeps the top_n highest scores)
// and PEXPIRE key ttl. Use one key per window or rolling period (e.g.
// "top:<window start>") and absolute scores (the window's total so far).
template <class T>
struct SortedSetMapping {
  // The sorted set's key. Required.
  std::function<std::string(const T&)> key;
  // Required.
  std::function<std::string(const T&)> member;
  // Required. Must not be NaN.
  std::function<double(const T&)> score;
  // Keeps only the top_n members with the highest scores; 0 keeps all.
  // Default: 0
  size_t top_n = 0;
  // Zero: the keys do not expire.
  // Default: none
  absl::Duration ttl = absl::ZeroDuration();
};

// SET key value [PX ttl] for each record.
template <class T>
struct StringMapping {
  // Required.
  std::function<std::string(const T&)> key;
  // Required.
  std::function<std::string(const T&)> value;
  // Zero: the keys do not expire.
  // Default: none
  absl::Duration ttl = absl::ZeroDuration();
};

// Any commands: called once per record. Keep them idempotent (SET, HSET,
// ZADD, SADD, DEL, EXPIRE; not INCR, LPUSH, ...).
template <class T>
using CommandMapping = std::function<void(const T&, CommandBuilder&)>;

namespace internal {

// The untyped part of a writer (lib/connectors/redis): batching, the
// connection, fencing, retries. Created for each worker by the Sink.
class RedisWriterCore {
 public:
  // Connects (retrying until unavailable_timeout), logs in and takes the
  // writer's epoch. Errors name the sink and the worker.
  static absl::StatusOr<std::unique_ptr<RedisWriterCore>> Create(const SinkOptions& options,
                                                                 const SinkContext& context);
  // kInvalidArgument for options that cannot work, naming `sink`.
  static absl::Status Validate(const SinkOptions& options, std::string_view sink);

  virtual ~RedisWriterCore() = default;
  // Encodes `records` records with encode(i, out) and sends full batches;
  // blocks while too much is buffered. Returns the writer's error, if any.
  virtual absl::Status Append(size_t records,
                              absl::FunctionRef<void(size_t, CommandBuilder&)> encode) = 0;
  // Sends what is buffered and waits until Redis acknowledged all of it.
  virtual absl::Status Flush() = 0;
  // Checkpoint `checkpoint_id` is complete (clears a repaired loss's mark).
  virtual absl::Status Commit(int64_t checkpoint_id) = 0;
  // Stops the I/O thread; unflushed records are dropped.
  virtual absl::Status Close() = 0;
};

template <class T>
class RedisSink final : public weir::Sink<T> {
 public:
  RedisSink(SinkOptions options, CommandMapping<T> mapping, absl::Status mapping_error)
      : options_(std::move(options)),
        mapping_(std::move(mapping)),
        mapping_error_(std::move(mapping_error)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(const SinkContext& context) override {
    if (!mapping_error_.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis sink '", context.operator_name, "': ", mapping_error_.message()));
    }
    absl::StatusOr<std::unique_ptr<RedisWriterCore>> core =
        RedisWriterCore::Create(options_, context);
    if (!core.ok()) return core.status();
    return std::unique_ptr<SinkWriter<T>>(new Writer(*std::move(core), &mapping_));
  }

 private:
  class Writer final : public SinkWriter<T> {
   public:
    Writer(std::unique_ptr<RedisWriterCore> core, const CommandMapping<T>* mapping)
        : core_(std::move(core)), mapping_(mapping) {}
    ~Writer() override { (void)core_->Close(); }

    absl::Status Write(std::span<T> values, std::span<const Timestamp>) override {
      return core_->Append(values.size(),
                           [&](size_t idx, CommandBuilder& out) { (*mapping_)(values[idx], out); });
    }
    bool ReadsOnly() const override { return true; }
    absl::Status Flush() override { return core_->Flush(); }
    absl::Status Commit(int64_t checkpoint_id, const std::string&) override {
      return core_->Commit(checkpoint_id);
    }
    absl::Status Close() override { return core_->Close(); }

   private:
    std::unique_ptr<RedisWriterCore> core_;
    const CommandMapping<T>* mapping_;
  };

  SinkOptions options_;
  CommandMapping<T> mapping_;
  absl::Status mapping_error_;
};

// TTL argument in milliseconds; kInvalidArgument when negative.
absl::StatusOr<std::string> TtlMillis(absl::Duration ttl);

}  // namespace internal

// A Redis sink writing each record with `mapping`. Configuration errors
// (missing functions, bad options) are reported as kInvalidArgument when the
// pipeline starts.
template <class T>
std::shared_ptr<weir::Sink<T>> Sink(SinkOptions options, CommandMapping<T> mapping) {
  absl::Status error =
      mapping ? absl::OkStatus() : absl::InvalidArgumentError("the command mapping is empty");
  return std::make_shared<internal::RedisSink<T>>(std::move(options), std::move(mapping),
                                                  std::move(error));
}

template <class T>
std::shared_ptr<weir::Sink<T>> Sink(SinkOptions options, HashMapping<T> mapping) {
  absl::StatusOr<std::string> ttl = internal::TtlMillis(mapping.ttl);
  absl::Status error = ttl.status();
  if (!mapping.key || !mapping.fields) {
    error = absl::InvalidArgumentError("HashMapping needs `key` and `fields`");
  }
  CommandMapping<T> commands;
  if (error.ok()) {
    commands = [key_fn = std::move(mapping.key), fields_fn = std::move(mapping.fields),
                ttl_ms = *std::move(ttl)](const T& value, CommandBuilder& out) {
      const std::string key = key_fn(value);
      out.Begin("HSET").Arg(key);
      Fields fields(out);
      fields_fn(value, fields);
      if (fields.count() == 0) {
        out.Drop();
        return;
      }
      out.End();
      if (!ttl_ms.empty()) out.AddOncePerBatch({"PEXPIRE", key, ttl_ms});
    };
  }
  return std::make_shared<internal::RedisSink<T>>(std::move(options), std::move(commands),
                                                  std::move(error));
}

template <class T>
std::shared_ptr<weir::Sink<T>> Sink(SinkOptions options, SortedSetMapping<T> mapping) {
  absl::StatusOr<std::string> ttl = internal::TtlMillis(mapping.ttl);
  absl::Status error = ttl.status();
  if (!mapping.key || !mapping.member || !mapping.score) {
    error = absl::InvalidArgumentError("SortedSetMapping needs `key`, `member` and `score`");
  }
  CommandMapping<T> commands;
  if (error.ok()) {
    std::string stop;  // ZREMRANGEBYRANK's stop: -(top_n + 1)
    if (mapping.top_n > 0) stop = std::to_string(-static_cast<int64_t>(mapping.top_n) - 1);
    commands = [key_fn = std::move(mapping.key), member_fn = std::move(mapping.member),
                score_fn = std::move(mapping.score), stop = std::move(stop),
                ttl_ms = *std::move(ttl)](const T& value, CommandBuilder& out) {
      const std::string key = key_fn(value);
      out.Begin("ZADD").Arg(key).Arg(score_fn(value)).Arg(member_fn(value)).End();
      if (!stop.empty()) out.AddOncePerBatch({"ZREMRANGEBYRANK", key, "0", stop});
      if (!ttl_ms.empty()) out.AddOncePerBatch({"PEXPIRE", key, ttl_ms});
    };
  }
  return std::make_shared<internal::RedisSink<T>>(std::move(options), std::move(commands),
                                                  std::move(error));
}

template <class T>
std::shared_ptr<weir::Sink<T>> Sink(SinkOptions options, StringMapping<T> mapping) {
  absl::StatusOr<std::string> ttl = internal::TtlMillis(mapping.ttl);
  absl::Status error = ttl.status();
  if (!mapping.key || !mapping.value) {
    error = absl::InvalidArgumentError("StringMapping needs `key` and `value`");
  }
  CommandMapping<T> commands;
  if (error.ok()) {
    commands = [key_fn = std::move(mapping.key), value_fn = std::move(mapping.value),
                ttl_ms = *std::move(ttl)](const T& value, CommandBuilder& out) {
      if (ttl_ms.empty()) {
        out.Add({"SET", key_fn(value), value_fn(value)});
      } else {
        out.Add({"SET", key_fn(value), value_fn(value), "PX", ttl_ms});
      }
    };
  }
  return std::make_shared<internal::RedisSink<T>>(std::move(options), std::move(commands),
                                                  std::move(error));
}

}  // namespace weir::redis

#endif  // WEIR_CONNECTORS_REDIS_H_
