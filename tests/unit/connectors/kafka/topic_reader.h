// Test helpers for the Kafka sink and dead-letter tests: read a whole topic
// back (read_committed or read_uncommitted) with a plain librdkafka
// consumer, and probe whether the broker implements transaction isolation
// (librdkafka 2.0.2's mock cluster does not: it reports the high watermark
// as the last stable offset, sends no aborted-transaction list and writes no
// transaction markers, so read_committed consumers also see open and aborted
// transactions).

#ifndef WEIR_TESTS_UNIT_CONNECTORS_KAFKA_TOPIC_READER_H_
#define WEIR_TESTS_UNIT_CONNECTORS_KAFKA_TOPIC_READER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/connectors/kafka/client.h"

namespace weir::kafka::testing {

struct ReadMessage {
  int32_t partition = -1;
  int64_t offset = -1;
  bool has_key = false;
  std::string key;
  bool has_value = false;  // false: a null value (a tombstone)
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t timestamp_ms = -1;
};

// Every message of partitions 0..partitions-1 of `topic` from the beginning up
// to the end (read_committed: the last stable offset), in partition order.
inline absl::StatusOr<std::vector<ReadMessage>> ReadTopic(
    const std::string& bootstrap, const std::string& topic, int partitions, bool read_committed,
    absl::Duration timeout = absl::Seconds(20)) {
  using namespace weir::kafka::internal;  // NOLINT(build/namespaces)
  absl::StatusOr<ConfPtr> conf =
      MakeConf({.brokers = bootstrap},
               {{"group.id", "weir-test-reader"},
                {"enable.auto.commit", "false"},
                {"enable.partition.eof", "true"},
                {"isolation.level", read_committed ? "read_committed" : "read_uncommitted"}},
               "test reader");
  if (!conf.ok()) return conf.status();
  absl::StatusOr<HandlePtr> rk = MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), "test reader");
  if (!rk.ok()) return rk.status();
  TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int partition = 0; partition < partitions; ++partition) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  absl::Status status = ToStatus(rd_kafka_assign(rk->get(), list.get()), "test reader assign");
  if (!status.ok()) return status;
  std::vector<std::vector<ReadMessage>> by_partition(partitions);
  std::vector<bool> at_end(partitions, false);
  int ended = 0;
  const absl::Time deadline = absl::Now() + timeout;
  while (ended < partitions) {
    if (absl::Now() > deadline) {
      rd_kafka_consumer_close(rk->get());
      return absl::DeadlineExceededError(absl::StrCat(
          "test reader: ", topic, " did not reach its end within ", absl::FormatDuration(timeout)));
    }
    MessagePtr message(rd_kafka_consumer_poll(rk->get(), 100));
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (!at_end[message->partition]) ++ended;
      at_end[message->partition] = true;
      continue;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;  // transient
    ReadMessage out;
    out.partition = message->partition;
    out.offset = message->offset;
    out.has_key = message->key != nullptr;
    if (message->key != nullptr)
      out.key.assign(static_cast<const char*>(message->key), message->key_len);
    out.has_value = message->payload != nullptr;
    if (message->payload != nullptr) {
      out.value.assign(static_cast<const char*>(message->payload), message->len);
    }
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(message.get(), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      for (size_t idx = 0; rd_kafka_header_get_all(headers, idx, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
           ++idx) {
        out.headers.emplace_back(name, value == nullptr
                                           ? std::string()
                                           : std::string(static_cast<const char*>(value), size));
      }
    }
    out.timestamp_ms = rd_kafka_message_timestamp(message.get(), nullptr);
    by_partition[message->partition].push_back(std::move(out));
  }
  rd_kafka_consumer_close(rk->get());
  std::vector<ReadMessage> all;
  for (auto& messages : by_partition) {
    for (auto& message : messages) all.push_back(std::move(message));
  }
  return all;
}

// What a test that needs transaction isolation says when it skips on a
// broker without it: ctest counts it as skipped, and .ci/test lists it with
// this reason among what the run did not prove.
inline constexpr char kNeedsTransactionIsolation[] =
    "needs a broker that isolates transactions; librdkafka's mock cluster does not (a real "
    "broker: WEIR_TEST_KAFKA_BROKERS, see docs/testing.md)";

// Whether a read_committed consumer of this broker hides an aborted
// transaction (a real broker does; librdkafka's mock cluster does not).
// Uses topic `probe_topic` (1 partition, created by the caller).
inline absl::StatusOr<bool> BrokerIsolatesTransactions(const std::string& bootstrap,
                                                       const std::string& probe_topic) {
  using namespace weir::kafka::internal;  // NOLINT(build/namespaces)
  absl::StatusOr<ConfPtr> conf = MakeConf(
      {.brokers = bootstrap}, {{"transactional.id", "weir-isolation-probe"}}, "probe producer");
  if (!conf.ok()) return conf.status();
  absl::StatusOr<HandlePtr> rk = MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "probe producer");
  if (!rk.ok()) return rk.status();
  ErrorPtr error(rd_kafka_init_transactions(rk->get(), 10000));
  if (error) return ToStatus(error.get(), "probe init");
  error.reset(rd_kafka_begin_transaction(rk->get()));
  if (error) return ToStatus(error.get(), "probe begin");
  static const char kValue[] = "aborted";
  absl::Status status = ToStatus(
      rd_kafka_producev(rk->get(), RD_KAFKA_V_TOPIC(probe_topic.c_str()), RD_KAFKA_V_PARTITION(0),
                        RD_KAFKA_V_VALUE(const_cast<char*>(kValue), sizeof(kValue) - 1),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
      "probe produce");
  if (!status.ok()) return status;
  rd_kafka_flush(rk->get(), 10000);
  error.reset(rd_kafka_abort_transaction(rk->get(), 10000));
  if (error) return ToStatus(error.get(), "probe abort");
  absl::StatusOr<std::vector<ReadMessage>> seen =
      ReadTopic(bootstrap, probe_topic, 1, /*read_committed=*/true);
  if (!seen.ok()) return seen.status();
  return seen->empty();
}

}  // namespace weir::kafka::testing

#endif  // WEIR_TESTS_UNIT_CONNECTORS_KAFKA_TOPIC_READER_H_
