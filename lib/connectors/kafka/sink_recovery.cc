#include "lib/connectors/kafka/sink_recovery.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace weir::kafka::internal {
namespace {

constexpr absl::string_view kMagicV1 = "weir.kafka.txn.v1";
constexpr absl::string_view kMagic = "weir.kafka.txn.v2";

// A consumer that reads by assignment only (no group membership, no commits).
absl::StatusOr<HandlePtr> NewReader(const ClientOptions& client, const std::string& group,
                                    bool read_committed, absl::string_view what) {
  absl::StatusOr<ConfPtr> conf =
      MakeConf(client,
               {{"group.id", group},
                {"enable.auto.commit", "false"},
                {"enable.auto.offset.store", "false"},
                {"enable.partition.eof", "true"},
                {"auto.offset.reset", "error"},
                {"isolation.level", read_committed ? "read_committed" : "read_uncommitted"}},
               what, RD_KAFKA_CONSUMER);
  if (!conf.ok()) return conf.status();
  return MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), what);
}

// Closes the consumer before its handle is destroyed.
struct ReaderCloser {
  rd_kafka_t* rk;
  ~ReaderCloser() { rd_kafka_consumer_close(rk); }
};

}  // namespace

int64_t TransactionCommittable::records() const {
  int64_t total = 0;
  for (const auto& [partition, runs] : partitions) {
    for (const auto& [first, last] : runs) total += last - first + 1;
  }
  return total;
}

std::string EncodeCommittable(const TransactionCommittable& committable) {
  std::string out = absl::StrCat(kMagic, "\n", committable.parallelism, " ", committable.pool_size,
                                 " ", committable.prefix, "\n");
  if (!committable.has_transaction()) return out;
  absl::StrAppend(&out, committable.transactional_id, "\n", committable.topic, "\n");
  for (const auto& [partition, runs] : committable.partitions) {
    absl::StrAppend(&out, partition, ":");
    for (size_t idx = 0; idx < runs.size(); ++idx) {
      absl::StrAppend(&out, idx == 0 ? "" : ",", runs[idx].first, "-", runs[idx].second);
    }
    out += "\n";
  }
  return out;
}

absl::StatusOr<TransactionCommittable> DecodeCommittable(absl::string_view text) {
  const auto bad = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("kafka sink: corrupt transaction committable (", why, "): ", text));
  };
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.empty() || (lines[0] != kMagic && lines[0] != kMagicV1)) return bad("header");
  TransactionCommittable committable;
  size_t line = 1;
  if (lines[0] == kMagic) {
    if (lines.size() < 2) return bad("layout");
    std::vector<absl::string_view> layout = absl::StrSplit(lines[1], absl::MaxSplits(' ', 2));
    if (layout.size() != 3 || !absl::SimpleAtoi(layout[0], &committable.parallelism) ||
        !absl::SimpleAtoi(layout[1], &committable.pool_size) || committable.parallelism < 1 ||
        committable.pool_size < 1) {
      return bad("layout");
    }
    committable.prefix = std::string(layout[2]);
    line = 2;
    if (lines.size() == line) return committable;  // no transaction
  }
  if (lines.size() < line + 3) return bad("transaction");
  committable.transactional_id = std::string(lines[line]);
  committable.topic = std::string(lines[line + 1]);
  for (size_t idx = line + 2; idx < lines.size(); ++idx) {
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(lines[idx], absl::MaxSplits(':', 1));
    int32_t partition = 0;
    if (!absl::SimpleAtoi(parts.first, &partition)) return bad("partition");
    OffsetRuns& runs = committable.partitions[partition];
    for (absl::string_view run : absl::StrSplit(parts.second, ',')) {
      std::pair<absl::string_view, absl::string_view> bounds =
          absl::StrSplit(run, absl::MaxSplits('-', 1));
      int64_t first = 0;
      int64_t last = 0;
      if (!absl::SimpleAtoi(bounds.first, &first) || !absl::SimpleAtoi(bounds.second, &last) ||
          first < 0 || last < first) {
        return bad("offsets");
      }
      runs.emplace_back(first, last);
    }
  }
  return committable;
}

void AddOffset(OffsetRuns& runs, int64_t offset) {
  if (!runs.empty() && runs.back().second + 1 == offset) {
    runs.back().second = offset;
  } else {
    runs.emplace_back(offset, offset);
  }
}

absl::StatusOr<TransactionOutcome> CheckTransaction(const ClientOptions& client,
                                                    const TransactionCommittable& committable,
                                                    absl::Duration timeout,
                                                    absl::string_view what) {
  const auto& [partition, runs] = *committable.partitions.begin();
  const int64_t first = runs.front().first;
  absl::StatusOr<HandlePtr> rk =
      NewReader(client, committable.transactional_id + "-check", /*read_committed=*/true, what);
  if (!rk.ok()) return rk.status();
  ReaderCloser closer{rk->get()};
  TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), committable.topic.c_str(), partition)->offset =
      first;
  absl::Status status = ToStatus(rd_kafka_assign(rk->get(), list.get()), what);
  if (!status.ok()) return status;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    MessagePtr message(rd_kafka_consumer_poll(rk->get(), 100));
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // The consumer moved past our first record without returning it: the
      // transaction was aborted. At or before it: the last stable offset has
      // not reached it yet; keep waiting.
      if (message->offset > first) return TransactionOutcome::kAborted;
      continue;
    }
    if (message->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
        message->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
      // Retention already removed it: it was written long ago; assume the
      // commit went through (an aborted one could not be repaired anyway).
      return TransactionOutcome::kCommitted;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (ToStatusCode(message->err) == absl::StatusCode::kUnavailable) continue;
      return ToStatus(message->err, absl::StrCat(what, ": reading ", committable.topic, " [",
                                                 partition, "] at offset ", first));
    }
    return message->offset == first ? TransactionOutcome::kCommitted : TransactionOutcome::kAborted;
  }
  return absl::UnavailableError(
      absl::StrCat(what, ": cannot tell whether transaction ", committable.transactional_id,
                   " was committed: no read_committed answer for ", committable.topic, " [",
                   partition, "] offset ", first, " within ", absl::FormatDuration(timeout),
                   " (another open transaction may hold back the partition's last stable offset)"));
}

absl::Status ReadTransactionRecords(const ClientOptions& client,
                                    const TransactionCommittable& committable,
                                    absl::Duration timeout, absl::string_view what,
                                    const std::function<absl::Status(rd_kafka_message_t&)>& emit) {
  absl::StatusOr<HandlePtr> rk = NewReader(client, committable.transactional_id + "-repair",
                                           /*read_committed=*/false, what);
  if (!rk.ok()) return rk.status();
  ReaderCloser closer{rk->get()};
  TopicPartitionListPtr list(
      rd_kafka_topic_partition_list_new(static_cast<int>(committable.partitions.size())));
  // Per partition: the next run to complete.
  std::map<int32_t, size_t> next_run;
  for (const auto& [partition, runs] : committable.partitions) {
    rd_kafka_topic_partition_list_add(list.get(), committable.topic.c_str(), partition)->offset =
        runs.front().first;
    next_run[partition] = 0;
  }
  absl::Status status = ToStatus(rd_kafka_assign(rk->get(), list.get()), what);
  if (!status.ok()) return status;
  const absl::Time deadline = absl::Now() + timeout;
  while (!next_run.empty()) {
    if (absl::Now() > deadline) {
      return absl::UnavailableError(
          absl::StrCat(what, ": could not read back transaction ", committable.transactional_id,
                       " from ", committable.topic, " within ", absl::FormatDuration(timeout)));
    }
    MessagePtr message(rd_kafka_consumer_poll(rk->get(), 100));
    if (message == nullptr) continue;
    const int32_t partition = message->partition;
    auto it = next_run.find(partition);
    if (message->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
        message->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
      std::string offsets;
      if (auto runs = committable.partitions.find(partition);
          runs != committable.partitions.end()) {
        for (const auto& [first, last] : runs->second) {
          absl::StrAppend(&offsets, offsets.empty() ? "" : ",", first, "-", last);
        }
      }
      return absl::DataLossError(
          absl::StrCat(what, ": transaction ", committable.transactional_id,
                       " was aborted after its checkpoint completed and its records (offsets ",
                       offsets, " of ", committable.topic, " [", partition,
                       "]) are no longer in the log (retention removed them)"));
    }
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (it != next_run.end()) {
        const OffsetRuns& runs = committable.partitions.at(partition);
        if (message->offset > runs.back().second) {
          next_run.erase(it);
        } else {
          // Acknowledged records lie below the high watermark: the log lost them.
          return absl::DataLossError(absl::StrCat(
              what, ": ", committable.topic, " [", partition, "] ends at offset ", message->offset,
              " before the records of transaction ", committable.transactional_id));
        }
      }
      continue;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (ToStatusCode(message->err) == absl::StatusCode::kUnavailable) continue;
      return ToStatus(message->err, absl::StrCat(what, ": reading back ", committable.topic));
    }
    if (it == next_run.end()) continue;
    const OffsetRuns& runs = committable.partitions.at(partition);
    size_t& run = it->second;
    while (run < runs.size() && message->offset > runs[run].second) ++run;
    if (run < runs.size() && message->offset >= runs[run].first) {
      status = emit(*message);
      if (!status.ok()) return status;
    }
    if (message->offset >= runs.back().second) next_run.erase(it);
  }
  return absl::OkStatus();
}

}  // namespace weir::kafka::internal
