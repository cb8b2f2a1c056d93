#include "lib/connectors/postgres/wal_stream.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/connectors/postgres/pgoutput.h"

namespace weir::postgres::internal {
namespace {

uint64_t ReadU64(const char* bytes) {
  uint64_t value = 0;
  for (int idx = 0; idx < 8; ++idx) value = (value << 8) | static_cast<uint8_t>(bytes[idx]);
  return value;
}

void AppendU64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

// Microseconds since the PostgreSQL epoch.
int64_t PostgresNow() { return absl::ToUnixMicros(absl::Now()) - kPostgresEpochMicros; }

}  // namespace

absl::Status StartReplication(PGconn* conn, const WalStreamOptions& options, uint64_t lsn) {
  const std::string sql =
      absl::StrCat("START_REPLICATION SLOT ", QuoteIdentifier(options.slot), " LOGICAL ",
                   LsnToString(lsn), " (proto_version '1', publication_names ",
                   QuoteLiteral(QuoteIdentifier(options.publication)), ")");
  absl::StatusOr<PgResult> result =
      Exec(conn, sql, absl::StrCat("replication slot \"", options.slot, "\": START_REPLICATION"));
  if (!result.ok()) return result.status();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WalStream>> WalStream::Start(WalStreamOptions options, PgConn conn,
                                                            uint64_t start_lsn) {
  absl::Status started = StartReplication(conn.get(), options, start_lsn);
  if (!started.ok()) return started;
  if (PQsetnonblocking(conn.get(), 1) != 0) {
    return absl::InternalError("cannot make the replication connection non-blocking");
  }
  std::unique_ptr<WalStream> stream(new WalStream(std::move(options), std::move(conn), start_lsn));
  stream->thread_ = std::thread([raw = stream.get()] { raw->Run(); });
  return stream;
}

WalStream::WalStream(WalStreamOptions options, PgConn conn, uint64_t start_lsn)
    : options_(std::move(options)), conn_(std::move(conn)), start_lsn_(start_lsn) {}

WalStream::~WalStream() { Stop(); }

void WalStream::Stop() {
  stop_.store(true);
  drained_.notify_all();
  if (thread_.joinable()) thread_.join();
  conn_.reset();
}

void WalStream::Confirm(uint64_t lsn) {
  uint64_t current = confirmed_.load();
  while (lsn > current && !confirmed_.compare_exchange_weak(current, lsn)) {
  }
}

absl::StatusOr<std::optional<WalStream::Item>> WalStream::Next() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (items_.empty()) {
    if (!error_.ok()) return error_;
    return std::optional<Item>();
  }
  Item item = std::move(items_.front());
  items_.pop_front();
  buffered_bytes_ -= item.data.size() + sizeof(Item);
  drained_.notify_all();
  return std::optional<Item>(std::move(item));
}

void WalStream::Push(Item item) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (item.kind == Item::Kind::kKeepalive && !items_.empty() &&
      items_.back().kind == Item::Kind::kKeepalive) {
    items_.back().lsn = std::max(items_.back().lsn, item.lsn);
    return;
  }
  buffered_bytes_ += item.data.size() + sizeof(Item);
  items_.push_back(std::move(item));
}

bool WalStream::SendStatus(bool reply_requested) {
  const uint64_t confirmed = confirmed_.load();
  std::string message = "r";
  AppendU64(message, confirmed);  // written
  AppendU64(message, confirmed);  // flushed: the slot's confirmed_flush_lsn
  AppendU64(message, confirmed);  // applied
  AppendU64(message, static_cast<uint64_t>(PostgresNow()));
  message.push_back(reply_requested ? 1 : 0);
  if (PQputCopyData(conn_.get(), message.data(), static_cast<int>(message.size())) != 1) {
    return false;
  }
  // Non-blocking: what does not go out now goes with the next flush.
  if (PQflush(conn_.get()) < 0) return false;
  next_status_ = absl::Now() + options_.status_interval;
  return true;
}

bool WalStream::Handle(const char* bytes, int size) {
  if (size < 1) return true;
  if (bytes[0] == 'w' && size >= 25) {
    Item item;
    item.kind = Item::Kind::kData;
    item.lsn = ReadU64(bytes + 1);
    item.data.assign(bytes + 25, static_cast<size_t>(size - 25));
    Push(std::move(item));
    return true;
  }
  if (bytes[0] == 'k' && size >= 18) {
    Item item;
    item.kind = Item::Kind::kKeepalive;
    item.lsn = ReadU64(bytes + 1);
    Push(std::move(item));
    if (bytes[17] != 0) return SendStatus(false);
    return true;
  }
  return true;  // unknown messages are ignored, as the protocol allows
}

bool WalStream::Reconnect() {
  conn_.reset();
  reconnects_.fetch_add(1);
  Push(Item{Item::Kind::kRestarted, 0, ""});
  const absl::Time deadline = absl::Now() + options_.reconnect_timeout;
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Status last;
  while (!stop_.load()) {
    absl::StatusOr<PgConn> conn = Connect(options_.conninfo, /*replication=*/true);
    if (conn.ok()) {
      last = StartReplication(conn->get(), options_, std::max(start_lsn_, confirmed_.load()));
      if (last.ok() && PQsetnonblocking(conn->get(), 1) == 0) {
        conn_ = *std::move(conn);
        next_status_ = absl::InfinitePast();
        return true;
      }
    } else {
      last = conn.status();
    }
    if (absl::Now() + backoff > deadline) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = absl::UnavailableError(absl::StrCat("replication slot \"", options_.slot,
                                                   "\": the connection to PostgreSQL was lost and "
                                                   "not re-established within ",
                                                   absl::FormatDuration(options_.reconnect_timeout),
                                                   ": ", last.message()));
      return false;
    }
    // Sleep in small steps, so that Stop() is not held up.
    const absl::Time wake = absl::Now() + backoff;
    while (!stop_.load() && absl::Now() < wake) absl::SleepFor(absl::Milliseconds(20));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  return false;
}

void WalStream::Run() {
  while (!stop_.load()) {
    bool healthy = true;
    if (absl::Now() >= next_status_) healthy = SendStatus(false);
    bool full = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      full = buffered_bytes_ >= options_.max_buffered_bytes;
    }
    if (healthy && full) {
      // Backpressure: read nothing more, but keep the status updates going
      // (the walsender reads them even while its output is blocked).
      std::unique_lock<std::mutex> lock(mutex_);
      drained_.wait_for(lock, std::chrono::milliseconds(50), [&] {
        return stop_.load() || buffered_bytes_ < options_.max_buffered_bytes;
      });
      continue;
    }
    if (healthy) {
      char* buffer = nullptr;
      const int size = PQgetCopyData(conn_.get(), &buffer, /*async=*/1);
      if (size > 0) {
        healthy = Handle(buffer, size);
        PQfreemem(buffer);
        continue;
      }
      if (size == 0) {
        pollfd fd{PQsocket(conn_.get()), POLLIN, 0};
        ::poll(&fd, 1, 50);
        if (PQflush(conn_.get()) < 0 || PQconsumeInput(conn_.get()) == 0) healthy = false;
        if (healthy) continue;
      } else {
        healthy = false;  // -1: the stream ended (server shutdown), -2: an error
      }
    }
    if (!healthy && !Reconnect()) return;
  }
}

}  // namespace weir::postgres::internal
