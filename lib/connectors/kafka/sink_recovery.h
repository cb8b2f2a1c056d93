// What an exactly-once Kafka sink stores in a checkpoint for one transaction
// (its committable), and the restore-time check of such a transaction: was
// it committed, and if it was aborted, its records read back from the log so
// they can be written again (see include/weir/connectors/kafka_sink.h for why).

#ifndef WEIR_LIB_CONNECTORS_KAFKA_SINK_RECOVERY_H_
#define WEIR_LIB_CONNECTORS_KAFKA_SINK_RECOVERY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/connectors/kafka/client.h"

namespace weir::kafka::internal {

// Offsets of one transaction's records in one partition: runs [first, last],
// ascending (other producers' records may sit between two runs).
using OffsetRuns = std::vector<std::pair<int64_t, int64_t>>;

// What one exactly-once writer hands to a checkpoint: the transaction the
// checkpoint covers, if it wrote any, and the layout of the ids of the run
// that wrote it, so that a restore knows every id under which that run may
// have left a transaction open.
struct TransactionCommittable {
  // The run's parallelism, transaction_pool_size and transactional-id
  // prefix: its ids were TransactionalId(prefix, w, s), w < parallelism,
  // s < pool_size. 0: unknown (a committable of weir.kafka.txn.v1).
  int parallelism = 0;
  int pool_size = 0;
  std::string prefix;
  // Empty (and `partitions` empty) when the checkpoint covers no transaction.
  std::string transactional_id;
  std::string topic;
  std::map<int32_t, OffsetRuns> partitions;

  bool has_transaction() const { return !partitions.empty(); }
  int64_t records() const;
};

// Text form stored in the manifest:
//   weir.kafka.txn.v2\n<parallelism> <pool size> <prefix>\n
//   [<transactional id>\n<topic>\n<partition>:<a>-<b>,<c>-<d>\n...]
// (v1, still read: no layout line, always a transaction.)
std::string EncodeCommittable(const TransactionCommittable& committable);
// kDataLoss for anything EncodeCommittable did not write.
absl::StatusOr<TransactionCommittable> DecodeCommittable(absl::string_view text);

// Adds `offset` to `runs` (offsets of one producer arrive ascending per partition).
void AddOffset(OffsetRuns& runs, int64_t offset);

enum class TransactionOutcome { kCommitted, kAborted };

// Whether the (already ended: fenced or committed) transaction is visible to
// a read_committed consumer: reads its first record's partition from that
// offset. kUnavailable if it cannot tell within `timeout` (e.g. another open
// transaction holds back the last stable offset).
absl::StatusOr<TransactionOutcome> CheckTransaction(const ClientOptions& client,
                                                    const TransactionCommittable& committable,
                                                    absl::Duration timeout, absl::string_view what);

// Reads every record of the transaction back (read_uncommitted: aborted
// records stay in the log) and calls `emit` with each, in offset order per
// partition. kDataLoss if the log no longer holds one of them.
absl::Status ReadTransactionRecords(const ClientOptions& client,
                                    const TransactionCommittable& committable,
                                    absl::Duration timeout, absl::string_view what,
                                    const std::function<absl::Status(rd_kafka_message_t&)>& emit);

}  // namespace weir::kafka::internal

#endif  // WEIR_LIB_CONNECTORS_KAFKA_SINK_RECOVERY_H_
