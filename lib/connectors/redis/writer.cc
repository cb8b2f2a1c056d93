// The Redis sink's writer: the untyped part behind weir::redis::Sink<T>.
//
// The worker thread encodes records into the current batch (under mu_); a
// batch is sealed into one EVALSHA request of the fenced-write script when it
// is full, when its first record is `linger` old (the I/O thread's timer),
// or on Flush. One I/O thread per writer owns the connection: it pipelines up
// to max_in_flight_batches sealed batches, reads their replies in order, and
// on a broken connection reconnects with backoff and resends every batch not
// yet acknowledged. Counting buffered records (current + sealed + in flight)
// is what makes Write block instead of growing memory.

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/common/log.h"
#include "lib/common/retry_backoff.h"
#include "lib/common/status.h"
#include "lib/connectors/redis/command_batch.h"
#include "lib/connectors/redis/connection.h"
#include "lib/connectors/redis/scripts.h"
#include "weir/connectors/redis.h"

namespace weir::redis::internal {

namespace {

constexpr char kFencedPrefix[] = "WEIRFENCED";
constexpr char kSequenceGapPrefix[] = "WEIRSEQGAP";

void AppendBulk(std::string& out, absl::string_view value) {
  absl::StrAppend(&out, "$", value.size(), "\r\n", value, "\r\n");
}

std::string Label(absl::string_view name, int worker) {
  return absl::StrCat("redis sink '", name, "' (worker ", worker, ")");
}

// Connects, logs in and loads the fenced-write script; returns its SHA1.
absl::StatusOr<std::unique_ptr<Connection>> OpenAndLoad(const ConnectionOptions& options,
                                                        std::string* sha) {
  absl::StatusOr<std::unique_ptr<Connection>> connection = Connection::Open(options);
  if (!connection.ok()) return connection.status();
  absl::StatusOr<ReplyPtr> loaded = (*connection)->Command({"SCRIPT", "LOAD", kFencedWriteScript});
  if (!loaded.ok()) return loaded.status();
  if ((*loaded)->type != REDIS_REPLY_STRING) {
    return absl::InternalError("SCRIPT LOAD did not return a SHA1");
  }
  *sha = std::string((*loaded)->str, (*loaded)->len);
  return connection;
}

// hiredis sends with write(2): writing to a connection the server closed
// raises SIGPIPE, whose default action kills the process. Blocks it on this
// thread while alive, and drops one raised meanwhile.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &previous_);
  }
  ~ScopedSigpipeBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    const timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t previous_;
};

struct SealedBatch {
  std::string request;
  size_t records = 0;
  uint64_t seq = 0;
};

// What a writer knows of its sink beyond the options.
struct WriterSetup {
  std::string label;
  std::string address;
  std::string fence_key;
  bool checkpointing = false;
  ReplayService* replay = nullptr;
  int64_t restored_checkpoint = 0;
};

class RedisWriter final : public RedisWriterCore {
 public:
  RedisWriter(SinkOptions options, WriterSetup setup, std::string sha, std::string header,
              std::unique_ptr<Connection> connection)
      : options_(std::move(options)),
        label_(std::move(setup.label)),
        address_(std::move(setup.address)),
        fence_key_(std::move(setup.fence_key)),
        checkpointing_(setup.checkpointing),
        replay_(setup.replay),
        restored_checkpoint_(setup.restored_checkpoint),
        sha_(std::move(sha)),
        header_(std::move(header)),
        connection_(std::move(connection)),
        backoff_(options_.initial_backoff, options_.max_backoff) {
    sender_ = std::thread([this] { Run(); });
  }

  // Redis lost its data (found by the epoch script at start or by a batch):
  // asks the job for a replay of every key's current value, unless another
  // subtask of this sink found the same loss first (`first` false), and
  // remembers to clear the fence's mark once the replay is complete.
  void DataLost(bool first, absl::string_view how) {
    if (first) {
      weir::internal::Log(label_, ": Redis at ", address_, " lost its data (", how,
                          "); rewriting every key from keyed state");
      if (replay_ != nullptr) replay_->Request(label_ + ": Redis lost its data");
    }
    marked_.store(true, std::memory_order_release);
  }
  ~RedisWriter() override { (void)Close(); }

  absl::Status Append(size_t records,
                      absl::FunctionRef<void(size_t, CommandBuilder&)> encode) override {
    // Without checkpoints no run restores: the mark only tells the other
    // subtasks that the loss is being repaired, until the replay completes.
    if (!checkpointing_ && marked_.load(std::memory_order_relaxed)) {
      absl::Status cleared = Commit(std::numeric_limits<int64_t>::max());
      if (!cleared.ok()) return cleared;
    }
    std::unique_lock<std::mutex> lock(mu_);
    for (size_t idx = 0; idx < records; ++idx) {
      if (!error_.ok()) return error_;
      if (buffered_records_ >= options_.max_buffered_records) {
        // Backpressure: wait for Redis to acknowledge; the I/O thread turns
        // a long outage into error_.
        SealLocked();
        writer_cv_.wait(lock, [&] {
          return buffered_records_ < options_.max_buffered_records || !error_.ok() || closed_;
        });
        if (!error_.ok()) return error_;
        if (closed_) return absl::FailedPreconditionError(absl::StrCat(label_, ": closed"));
      }
      if (current_records_ == 0) {
        current_since_ = absl::Now();
        sender_cv_.notify_one();  // arms the linger timer
      }
      encode(idx, current_);
      ++current_records_;
      ++buffered_records_;
      if (current_records_ >= options_.batch_records) SealLocked();
    }
    return error_;
  }

  // Once the replay that repairs a loss is complete before checkpoint
  // `checkpoint_id`, a batch clears the fence's mark (fenced like any
  // other, so a zombie cannot clear it).
  absl::Status Commit(int64_t checkpoint_id) override {
    // The restored checkpoint's committables are committed again when the
    // sink opens, before the keyed operators joined the replay.
    if (!marked_.load(std::memory_order_acquire) || checkpoint_id <= restored_checkpoint_) {
      return absl::OkStatus();
    }
    if (replay_ != nullptr && !replay_->CompleteBefore(replay_->latest(), checkpoint_id)) {
      return absl::OkStatus();
    }
    marked_.store(false, std::memory_order_release);
    weir::internal::Log(label_, ": the replay that rewrote Redis's lost data is complete");
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) return error_;
    current_.Add({"HDEL", fence_key_, "replay"});
    SealLocked();
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!error_.ok()) return error_;
    SealLocked();
    const uint64_t target = sealed_seq_;
    writer_cv_.wait(lock, [&] { return acked_seq_ >= target || !error_.ok() || closed_; });
    if (!error_.ok()) return error_;
    if (acked_seq_ < target) return absl::FailedPreconditionError(absl::StrCat(label_, ": closed"));
    return absl::OkStatus();
  }

  absl::Status Close() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return absl::OkStatus();
      closed_ = true;
    }
    sender_cv_.notify_all();
    writer_cv_.notify_all();
    {
      std::lock_guard<std::mutex> lock(connection_mu_);
      closing_ = true;
      if (connection_ != nullptr) connection_->Interrupt();
    }
    if (sender_.joinable()) sender_.join();
    return absl::OkStatus();
  }

 private:
  // Moves the current batch to the send queue; an empty one only when
  // `heartbeat`. Requires mu_.
  void SealLocked(bool heartbeat = false) {
    if (!heartbeat && current_records_ == 0 && CommandBuilderAccess::empty(current_)) return;
    last_sealed_ = absl::Now();
    SealedBatch batch;
    batch.seq = ++sealed_seq_;
    // The sequence number lets the script refuse a copy of this batch that
    // arrives after a newer one (see kFencedWriteScript).
    std::string header = header_;
    AppendBulk(header, std::to_string(batch.seq));
    CommandBuilderAccess::Seal(current_, header, kHeaderItems, batch.request);
    batch.records = current_records_;
    current_records_ = 0;
    queued_.push_back(std::move(batch));
    sender_cv_.notify_one();
  }

  void SetError(absl::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.ok()) error_ = std::move(status);
    }
    writer_cv_.notify_all();
  }

  // A failed attempt. Transient (kUnavailable) failures schedule a retry
  // with backoff until the outage lasted unavailable_timeout; returns false
  // once the writer has failed for good.
  bool Failed(const absl::Status& status) {
    const absl::Time now = absl::Now();
    if (status.code() != absl::StatusCode::kUnavailable) {
      SetError(weir::internal::Annotate(status, label_));
      return false;
    }
    if (outage_start_ == absl::InfiniteFuture()) {
      outage_start_ = now;
      backoff_.Reset();
      weir::internal::Log(label_, ": Redis at ", address_, " unavailable (", status.message(),
                          "); retrying for up to ",
                          absl::FormatDuration(options_.unavailable_timeout));
    }
    if (now - outage_start_ >= options_.unavailable_timeout) {
      SetError(absl::UnavailableError(absl::StrCat(
          label_, ": Redis at ", address_, " unavailable for ",
          absl::FormatDuration(absl::Trunc(now - outage_start_, absl::Milliseconds(1))),
          " (SinkOptions.unavailable_timeout ", absl::FormatDuration(options_.unavailable_timeout),
          "): ", status.message())));
      return false;
    }
    const absl::Duration wait = backoff_.Next();
    std::lock_guard<std::mutex> lock(mu_);
    next_attempt_ = now + wait;
    return true;
  }

  void DropConnection() {
    std::lock_guard<std::mutex> lock(connection_mu_);
    connection_.reset();
  }

  // Waits for work; moves sealed batches into `unacked` (up to the in-flight
  // limit). Returns false when the writer is closed or failed.
  bool WaitForWork(std::deque<SealedBatch>& unacked) {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (closed_ || !error_.ok()) return false;
      const absl::Time now = absl::Now();
      if (current_records_ > 0 && now >= current_since_ + options_.linger) SealLocked();
      // Idle: a heartbeat checks the fence (and the connection).
      const bool idle = current_records_ == 0 && queued_.empty() && unacked.empty();
      const bool heartbeats = options_.heartbeat > absl::ZeroDuration();
      if (idle && heartbeats && now >= last_sealed_ + options_.heartbeat) SealLocked(true);
      while (!queued_.empty() &&
             unacked.size() < static_cast<size_t>(options_.max_in_flight_batches)) {
        unacked.push_back(std::move(queued_.front()));
        queued_.pop_front();
      }
      const bool connected = connection_ != nullptr;
      if (!unacked.empty() && (connected || now >= next_attempt_)) return true;
      absl::Time wake = absl::InfiniteFuture();
      if (current_records_ > 0) wake = current_since_ + options_.linger;
      if (!unacked.empty()) wake = std::min(wake, next_attempt_);
      if (idle && heartbeats) wake = std::min(wake, last_sealed_ + options_.heartbeat);
      if (wake == absl::InfiniteFuture()) {
        sender_cv_.wait(lock);
      } else {
        sender_cv_.wait_for(lock, absl::ToChronoNanoseconds(wake - now));
      }
    }
  }

  void Run() {
    const ScopedSigpipeBlock no_sigpipe;
    std::deque<SealedBatch> unacked;  // oldest first
    size_t sent = 0;                  // how many of them the connection carried
    while (WaitForWork(unacked)) {
      if (connection_ == nullptr) {
        std::string sha;
        absl::StatusOr<std::unique_ptr<Connection>> opened = OpenAndLoad(options_.connection, &sha);
        if (opened.ok() && sha != sha_) {
          opened = absl::InternalError(
              absl::StrCat("the fenced-write script's SHA1 changed: ", sha_, " -> ", sha));
        }
        if (!opened.ok()) {
          if (!Failed(opened.status())) return;
          continue;
        }
        std::lock_guard<std::mutex> lock(connection_mu_);
        if (closing_) return;
        connection_ = *std::move(opened);
        sent = 0;
      }
      absl::Status status;
      for (; sent < unacked.size() && status.ok(); ++sent) {
        status = connection_->Append(unacked[sent].request);
      }
      absl::StatusOr<ReplyPtr> reply =
          status.ok() ? connection_->GetReply() : absl::StatusOr<ReplyPtr>(status);
      if (!reply.ok()) {
        DropConnection();
        if (!Failed(reply.status())) return;
        continue;
      }
      if ((*reply)->type == REDIS_REPLY_ERROR) {
        const absl::string_view message((*reply)->str, (*reply)->len);
        if (absl::StartsWith(message, kFencedPrefix)) {
          SetError(absl::AbortedError(absl::StrCat(
              label_, ": fenced: a newer run of this job has taken over this sink subtask (",
              message.substr(sizeof(kFencedPrefix)),
              "); this writer belongs to an older run and wrote nothing more")));
          return;
        }
        if (absl::StartsWith(message, kSequenceGapPrefix)) {
          SetError(absl::AbortedError(
              absl::StrCat(label_, ": Redis no longer holds batches it acknowledged (",
                           message.substr(sizeof(kSequenceGapPrefix)),
                           "; a failover to a replica that missed them, or a restore from an older "
                           "snapshot?); restart the job from its last checkpoint")));
          return;
        }
        const absl::Status error = ErrorReplyStatus(message);
        DropConnection();  // resend everything after a transient error
        if (error.code() == absl::StatusCode::kUnavailable) {
          if (!Failed(error)) return;
          continue;
        }
        SetError(weir::internal::Annotate(error, label_ + ": Redis rejected a write"));
        return;
      }
      if ((*reply)->type == REDIS_REPLY_INTEGER && (*reply)->integer < 0) {
        DataLost((*reply)->integer == -1,
                 absl::StrCat("the fence '", fence_key_,
                              "' was gone: a restart without persistence, a FLUSHALL or a "
                              "failover to an empty replica"));
      }
      SealedBatch done = std::move(unacked.front());
      unacked.pop_front();
      --sent;
      if (outage_start_ != absl::InfiniteFuture()) {
        weir::internal::Log(
            label_, ": Redis at ", address_, " answers again after ",
            absl::FormatDuration(absl::Trunc(absl::Now() - outage_start_, absl::Milliseconds(1))));
      }
      outage_start_ = absl::InfiniteFuture();
      backoff_.Reset();
      {
        std::lock_guard<std::mutex> lock(mu_);
        buffered_records_ -= done.records;
        acked_seq_ = done.seq;
      }
      writer_cv_.notify_all();
    }
  }

  // EVALSHA <sha> 1 <fence key> <field> <epoch> <batch sequence>
  static constexpr size_t kHeaderItems = 7;

  const SinkOptions options_;
  const std::string label_;
  const std::string address_;
  const std::string fence_key_;
  const bool checkpointing_;
  ReplayService* const replay_;
  const int64_t restored_checkpoint_;
  // Set when this writer found a loss (or a mark a run before left): the
  // fence's mark is cleared once the newest replay is complete.
  std::atomic<bool> marked_{false};
  const std::string sha_;  // of kFencedWriteScript
  const std::string header_;

  std::mutex mu_;
  std::condition_variable writer_cv_;  // acknowledgements, errors
  std::condition_variable sender_cv_;  // sealed batches, the linger timer
  CommandBuilder current_;
  size_t current_records_ = 0;
  absl::Time current_since_;
  std::deque<SealedBatch> queued_;
  size_t buffered_records_ = 0;
  uint64_t sealed_seq_ = 0;
  uint64_t acked_seq_ = 0;
  absl::Status error_;
  bool closed_ = false;
  absl::Time next_attempt_ = absl::InfinitePast();
  absl::Time last_sealed_ = absl::Now();

  // Replaced only by the I/O thread, under connection_mu_ (so Close can
  // interrupt a blocked read); used for I/O without the lock.
  std::mutex connection_mu_;
  std::unique_ptr<Connection> connection_;
  bool closing_ = false;

  // I/O thread only.
  absl::Time outage_start_ = absl::InfiniteFuture();
  weir::internal::RetryBackoff backoff_;

  std::thread sender_;
};

}  // namespace

absl::Status RedisWriterCore::Validate(const SinkOptions& options, std::string_view sink_name) {
  const absl::string_view sink(sink_name.data(), sink_name.size());
  auto invalid = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("redis sink '", sink, "': ", what));
  };
  const ConnectionOptions& connection = options.connection;
  if (connection.unix_socket.empty()) {
    if (connection.host.empty()) return invalid("ConnectionOptions.host is empty");
    if (connection.port < 1 || connection.port > 65535) {
      return invalid(
          absl::StrCat("ConnectionOptions.port must be in [1, 65535], got ", connection.port));
    }
  }
  if (connection.database < 0) return invalid("ConnectionOptions.database must be >= 0");
  if (connection.connect_timeout <= absl::ZeroDuration() ||
      connection.command_timeout <= absl::ZeroDuration()) {
    return invalid("ConnectionOptions.connect_timeout and command_timeout must be > 0");
  }
  if (options.batch_records < 1) return invalid("SinkOptions.batch_records must be >= 1");
  if (options.linger <= absl::ZeroDuration()) return invalid("SinkOptions.linger must be > 0");
  if (options.max_in_flight_batches < 1) {
    return invalid("SinkOptions.max_in_flight_batches must be >= 1");
  }
  if (options.max_buffered_records < options.batch_records) {
    return invalid("SinkOptions.max_buffered_records must be >= batch_records");
  }
  if (options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return invalid("SinkOptions: need 0 < initial_backoff <= max_backoff");
  }
  if (options.unavailable_timeout <= absl::ZeroDuration()) {
    return invalid("SinkOptions.unavailable_timeout must be > 0");
  }
  if (options.heartbeat < absl::ZeroDuration()) {
    return invalid("SinkOptions.heartbeat must be >= 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RedisWriterCore>> RedisWriterCore::Create(
    const SinkOptions& options, const SinkContext& context) {
  if (absl::Status status = Validate(options, context.operator_name); !status.ok()) return status;
  const std::string label = Label(context.operator_name, context.worker_index);
  // The fence outlives runs: it follows the sink's identity, never its
  // display name, so renaming the sink keeps fencing the older run's zombies.
  const std::string fence_key = options.fence_key.empty()
                                    ? absl::StrCat("weir:fence:", context.operator_uid)
                                    : options.fence_key;
  const std::string field = std::to_string(context.worker_index);
  const std::string address = Address(options.connection);

  // Connect, take the epoch and load the script, retrying transient errors
  // until unavailable_timeout: the pipeline starts only once Redis is there.
  const ScopedSigpipeBlock no_sigpipe;
  const absl::Time start = absl::Now();
  weir::internal::RetryBackoff backoff(options.initial_backoff, options.max_backoff);
  while (true) {
    std::string sha;
    absl::StatusOr<std::unique_ptr<Connection>> connection = OpenAndLoad(options.connection, &sha);
    absl::StatusOr<ReplyPtr> epoch = absl::UnknownError("not connected");
    if (!connection.ok()) {
      epoch = connection.status();
    } else {
      epoch = (*connection)
                  ->Command({"EVAL", kTakeEpochScript, "1", fence_key, field,
                             std::to_string(context.parallelism),
                             context.restored_checkpoint > 0 ? "1" : "0"});
    }
    if (epoch.ok() && ((*epoch)->type != REDIS_REPLY_ARRAY || (*epoch)->elements != 2 ||
                       (*epoch)->element[0]->type != REDIS_REPLY_INTEGER ||
                       (*epoch)->element[1]->type != REDIS_REPLY_INTEGER)) {
      epoch = absl::InternalError("the epoch script did not return {epoch, state}");
    }
    if (epoch.ok()) {
      std::string header;
      for (absl::string_view item :
           {absl::string_view("EVALSHA"), absl::string_view(sha), absl::string_view("1"),
            absl::string_view(fence_key), absl::string_view(field)}) {
        AppendBulk(header, item);
      }
      AppendBulk(header, std::to_string((*epoch)->element[0]->integer));
      const long long state = (*epoch)->element[1]->integer;
      auto writer = std::make_unique<RedisWriter>(
          options,
          WriterSetup{.label = label,
                      .address = address,
                      .fence_key = fence_key,
                      .checkpointing = context.checkpointing,
                      .replay = context.replay,
                      .restored_checkpoint = context.restored_checkpoint},
          std::move(sha), std::move(header), *std::move(connection));
      if (state == 1) {
        writer->DataLost(true, absl::StrCat("the fence '", fence_key,
                                            "' is gone, but the checkpoint this run restored "
                                            "holds the sink: Redis lost what it wrote"));
      } else if (state == 2) {
        writer->DataLost(true, absl::StrCat("the fence '", fence_key,
                                            "' is marked: the replay an earlier run began to "
                                            "repair a loss did not complete"));
      }
      return std::unique_ptr<RedisWriterCore>(std::move(writer));
    }
    const absl::Status& status = epoch.status();
    if (status.code() != absl::StatusCode::kUnavailable) {
      return weir::internal::Annotate(
          status, absl::StrCat(label, ": cannot start writing to Redis at ", address, " (fence '",
                               fence_key, "')"));
    }
    if (absl::Now() - start >= options.unavailable_timeout) {
      return weir::internal::Annotate(
          status, absl::StrCat(label, ": Redis at ", address, " unavailable for ",
                               absl::FormatDuration(options.unavailable_timeout)));
    }
    absl::SleepFor(backoff.Next());
  }
}

}  // namespace weir::redis::internal
