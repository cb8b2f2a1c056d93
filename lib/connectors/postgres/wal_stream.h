// The replication connection of one change-capture source, run by a thread
// of its own: it reads the server's XLogData and keepalives into a bounded
// buffer the worker drains, answers keepalives and sends standby status
// updates (with the LSN the worker confirmed) on time even while the buffer
// is full and the pipeline backpressured, and reconnects with backoff when
// the server goes away.

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_WAL_STREAM_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_WAL_STREAM_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/connectors/postgres/connection.h"

namespace weir::postgres::internal {

struct WalStreamOptions {
  std::string conninfo;
  std::string slot;
  std::string publication;
  absl::Duration status_interval = absl::Seconds(1);
  size_t max_buffered_bytes = 16 << 20;
  absl::Duration reconnect_timeout = absl::Minutes(2);
};

class WalStream {
 public:
  struct Item {
    enum class Kind : uint8_t {
      kData,       // a pgoutput message; `lsn` is its WAL position
      kKeepalive,  // the server's position with nothing pending before it
      kRestarted,  // the connection was re-established: the server resends
                   // from the slot's confirmed LSN
    };
    Kind kind = Kind::kData;
    uint64_t lsn = 0;
    std::string data;
  };

  // START_REPLICATION on `conn` (a replication connection) at `start_lsn`
  // and starts the thread. Errors: those of START_REPLICATION (an active
  // slot is kUnavailable).
  static absl::StatusOr<std::unique_ptr<WalStream>> Start(WalStreamOptions options, PgConn conn,
                                                          uint64_t start_lsn);
  ~WalStream();

  // The next item, or nullopt when none is buffered. An error the thread
  // gave up on (reconnect_timeout passed) is returned once the buffer is
  // drained.
  absl::StatusOr<std::optional<Item>> Next();
  // The LSN up to which the server may discard WAL (the slot's confirmed
  // flush position), sent with the next status update. Never moves back.
  void Confirm(uint64_t lsn);
  uint64_t confirmed() const { return confirmed_.load(); }
  int64_t reconnects() const { return reconnects_.load(); }
  // Stops the thread and closes the connection.
  void Stop();

 private:
  WalStream(WalStreamOptions options, PgConn conn, uint64_t start_lsn);
  void Run();
  // One message from the server; false when the connection must be renewed.
  bool Handle(const char* bytes, int size);
  bool SendStatus(bool reply_requested);
  bool Reconnect();
  void Push(Item item);

  WalStreamOptions options_;
  PgConn conn_;
  uint64_t start_lsn_;
  std::atomic<uint64_t> confirmed_{0};
  std::atomic<int64_t> reconnects_{0};
  std::atomic<bool> stop_{false};
  absl::Time next_status_ = absl::InfinitePast();

  std::mutex mutex_;
  std::condition_variable drained_;
  std::deque<Item> items_;
  size_t buffered_bytes_ = 0;
  absl::Status error_;
  std::thread thread_;
};

// START_REPLICATION SLOT <slot> LOGICAL <lsn> (proto_version '1',
// publication_names '<publication>') on a replication connection.
absl::Status StartReplication(PGconn* conn, const WalStreamOptions& options, uint64_t lsn);

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_WAL_STREAM_H_
