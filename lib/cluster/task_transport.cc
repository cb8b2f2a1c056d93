#include "lib/cluster/task_transport.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/runtime/running_job.h"

namespace weir::cluster {

namespace kinternal = ::weir::kafka::internal;

namespace {

// A message: [kind: 1 byte][producer: 4 bytes BE][watermark: 8 bytes BE][payload].
constexpr size_t kHeaderSize = 13;

void PutBigEndian(uint64_t value, int bytes, std::string& out) {
  for (int idx = bytes - 1; idx >= 0; --idx) out.push_back(static_cast<char>(value >> (8 * idx)));
}
uint64_t GetBigEndian(const unsigned char* in, int bytes) {
  uint64_t value = 0;
  for (int idx = 0; idx < bytes; ++idx) value = (value << 8) | in[idx];
  return value;
}

int Millis(absl::Duration duration) {
  return static_cast<int>(absl::ToInt64Milliseconds(duration));
}

// Produces, waiting while the producer's queue is full.
absl::Status Produce(rd_kafka_t* producer, const std::string& topic, int partition,
                     std::string_view key, std::string_view value, const std::string& what) {
  while (true) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_poll(producer, 0);
      return absl::OkStatus();
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return kinternal::ToStatus(err, what);
    rd_kafka_poll(producer, 10);
  }
}

// One exchange of one task: produces to every task's partition through the
// task's producer, consumes this task's partition.
class KafkaEndpoint final : public internal::RemoteEndpoint {
 public:
  KafkaEndpoint(rd_kafka_t* producer, int task, std::string topic, kinternal::HandlePtr consumer,
                int64_t next_offset)
      : producer_(producer),
        task_(task),
        topic_(std::move(topic)),
        consumer_(std::move(consumer)),
        next_offset_(next_offset),
        what_(absl::StrCat("repartition topic ", topic_)) {}
  ~KafkaEndpoint() override { rd_kafka_consumer_close(consumer_.get()); }

  absl::Status Send(int dest, internal::RemoteKind kind, Timestamp watermark,
                    std::string_view payload) override {
    buffer_.clear();
    buffer_.push_back(static_cast<char>(kind));
    PutBigEndian(static_cast<uint32_t>(task_), 4, buffer_);
    PutBigEndian(static_cast<uint64_t>(watermark), 8, buffer_);
    buffer_.append(payload);
    return Produce(producer_, topic_, dest, {}, buffer_, what_);
  }

  absl::Status Poll(std::vector<internal::RemoteMessage>& out, size_t max) override {
    out.clear();
    held_.clear();
    while (out.size() < max) {
      kinternal::MessagePtr message(rd_kafka_consumer_poll(consumer_.get(), 0));
      if (message == nullptr) break;
      if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
      if (message->err) return kinternal::ToStatus(message->err, what_);
      if (message->len < kHeaderSize) {
        return absl::DataLossError(absl::StrCat(what_, " partition ", task_, " offset ",
                                                message->offset, ": a message of ", message->len,
                                                " bytes is no weir exchange message"));
      }
      const auto* bytes = static_cast<const unsigned char*>(message->payload);
      if (bytes[0] > static_cast<unsigned char>(internal::RemoteKind::kEnd)) {
        return absl::DataLossError(absl::StrCat(what_, " partition ", task_, " offset ",
                                                message->offset, ": unknown message kind ",
                                                static_cast<int>(bytes[0])));
      }
      internal::RemoteMessage remote;
      remote.kind = static_cast<internal::RemoteKind>(bytes[0]);
      remote.producer = static_cast<int>(GetBigEndian(bytes + 1, 4));
      remote.watermark = static_cast<Timestamp>(GetBigEndian(bytes + 5, 8));
      remote.payload = std::string_view(reinterpret_cast<const char*>(bytes) + kHeaderSize,
                                        message->len - kHeaderSize);
      next_offset_.store(message->offset + 1, std::memory_order_relaxed);
      out.push_back(remote);
      held_.push_back(std::move(message));
    }
    return absl::OkStatus();
  }

  std::string Position() const override {
    // Called for the snapshot at a barrier: the offset the checkpoint's
    // transaction commits for lag tools.
    const int64_t next = next_offset_.load(std::memory_order_relaxed);
    snapshotted_.store(next, std::memory_order_release);
    return absl::StrCat(next);
  }
  // Messages in this task's partition not read yet, from the high watermark
  // the consumer last fetched (no broker round trip); -1 before it knows it.
  int64_t Lag() const {
    int64_t low = 0;
    int64_t high = 0;
    if (rd_kafka_get_watermark_offsets(consumer_.get(), topic_.c_str(), task_, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      return -1;
    }
    return std::max<int64_t>(0, high - next_offset_.load(std::memory_order_relaxed));
  }
  const std::string& topic() const { return topic_; }
  int64_t snapshotted() const { return snapshotted_.load(std::memory_order_acquire); }

 private:
  rd_kafka_t* producer_;
  int task_;
  std::string topic_;
  kinternal::HandlePtr consumer_;
  std::atomic<int64_t> next_offset_;
  std::string what_;
  std::string buffer_;
  std::vector<kinternal::MessagePtr> held_;
  mutable std::atomic<int64_t> snapshotted_{-1};
};

}  // namespace

TaskTransport::TaskTransport(const ClusterOptions& options, int task, std::string fingerprint,
                             kinternal::HandlePtr producer)
    : options_(options),
      task_(task),
      fingerprint_(std::move(fingerprint)),
      producer_(std::move(producer)) {}

TaskTransport::~TaskTransport() {
  Abort();
  for (rd_kafka_topic_t* topic : topics_) rd_kafka_topic_destroy(topic);
  producer_.reset();
}

absl::Status TaskTransport::KnowTopic(const std::string& topic, const std::string& what) {
  rd_kafka_topic_t* handle = rd_kafka_topic_new(producer_.get(), topic.c_str(), nullptr);
  if (handle == nullptr) {
    return kinternal::ToStatus(rd_kafka_last_error(), absl::StrCat(what, ": topic ", topic));
  }
  topics_.push_back(handle);
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(producer_.get(), 0, handle, &metadata, Millis(options_.broker_timeout));
  if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kinternal::ToStatus(err, absl::StrCat(what, ": the metadata of topic ", topic));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TaskTransport>> TaskTransport::Create(const ClusterOptions& options,
                                                                     int task,
                                                                     std::string fingerprint) {
  const std::string what = absl::StrCat("cluster job '", options.job_id, "' task ", task);
  absl::StatusOr<kinternal::ConfPtr> conf =
      ClusterConf(options,
                  {{"transactional.id", absl::StrCat(options.job_id, "-task-", task)},
                   {"enable.idempotence", "true"},
                   {"linger.ms", "5"},
                   {"transaction.timeout.ms", "60000"}},
                  what);
  if (!conf.ok()) return conf.status();
  absl::StatusOr<kinternal::HandlePtr> producer =
      kinternal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), what);
  if (!producer.ok()) return producer.status();
  // Fences every earlier producer of this task and aborts its open transaction.
  kinternal::ErrorPtr error(
      rd_kafka_init_transactions(producer->get(), Millis(options.broker_timeout)));
  if (error != nullptr) {
    return kinternal::ToStatus(error.get(), absl::StrCat(what, ": initializing transactions"));
  }
  std::unique_ptr<TaskTransport> transport(
      new TaskTransport(options, task, std::move(fingerprint), *std::move(producer)));
  if (absl::Status status =
          transport->KnowTopic(internal::ClusterCheckpointTopic(options.job_id), what);
      !status.ok()) {
    return status;
  }
  error.reset(rd_kafka_begin_transaction(transport->producer_.get()));
  if (error != nullptr) return kinternal::ToStatus(error.get(), what);
  transport->in_transaction_ = true;
  return transport;
}

absl::StatusOr<std::unique_ptr<internal::RemoteEndpoint>> TaskTransport::Open(
    const std::string& exchange, const std::string& position) {
  const std::string topic = internal::ClusterRepartitionTopic(options_.job_id, exchange);
  const std::string what = absl::StrCat("cluster job '", options_.job_id, "' task ", task_,
                                        ": repartition topic ", topic);
  int64_t offset = RD_KAFKA_OFFSET_BEGINNING;
  if (!position.empty() && !absl::SimpleAtoi(position, &offset)) {
    return absl::DataLossError(
        absl::StrCat(what, ": a restored position '", position, "' that is no offset"));
  }
  if (absl::Status status = KnowTopic(topic, what); !status.ok()) return status;
  absl::StatusOr<kinternal::ConfPtr> conf = ClusterConf(options_,
                                                        {{"group.id", options_.job_id + "-offsets"},
                                                         {"enable.auto.commit", "false"},
                                                         {"enable.auto.offset.store", "false"},
                                                         {"isolation.level", "read_committed"},
                                                         {"fetch.wait.max.ms", "10"},
                                                         {"auto.offset.reset", "earliest"}},
                                                        what);
  if (!conf.ok()) return conf.status();
  absl::StatusOr<kinternal::HandlePtr> consumer =
      kinternal::MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), what);
  if (!consumer.ok()) return consumer.status();
  kinternal::TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), task_)->offset = offset;
  if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer->get(), list.get())) {
    return kinternal::ToStatus(err, what);
  }
  auto endpoint = std::make_unique<KafkaEndpoint>(producer_.get(), task_, topic,
                                                  *std::move(consumer), offset < 0 ? 0 : offset);
  endpoints_.push_back(endpoint.get());
  return std::unique_ptr<internal::RemoteEndpoint>(std::move(endpoint));
}

absl::Status TaskTransport::Commit(int64_t id, bool final) {
  const std::string what =
      absl::StrCat("cluster job '", options_.job_id, "' task ", task_, ": checkpoint ", id);
  absl::Status status = CommitRecord(id, /*final=*/false, /*send_offsets=*/true, what);
  if (!status.ok()) return status;
  final_pending_ = final ? id : 0;
  return absl::OkStatus();
}

absl::Status TaskTransport::MarkFinal() {
  if (final_pending_ <= 0) {
    return absl::FailedPreconditionError("no final checkpoint to mark");
  }
  const std::string what = absl::StrCat("cluster job '", options_.job_id, "' task ", task_,
                                        ": marking checkpoint ", final_pending_, " final");
  absl::Status status = CommitRecord(final_pending_, /*final=*/true, /*send_offsets=*/false, what);
  if (status.ok()) final_pending_ = 0;
  return status;
}

absl::Status TaskTransport::CommitRecord(int64_t id, bool final, bool send_offsets,
                                         const std::string& what) {
  TaskCheckpoint record{.task = task_,
                        .checkpoint_id = id,
                        .final = final,
                        .graph = fingerprint_,
                        .committed_ms = absl::ToUnixMillis(absl::Now())};
  absl::Status status = Produce(producer_.get(), internal::ClusterCheckpointTopic(options_.job_id),
                                0, TaskKey(task_), EncodeTaskCheckpoint(record), what);
  if (!status.ok()) return status;
  if (send_offsets) {
    if (status = SendOffsets(what); !status.ok()) return status;
  }
  kinternal::ErrorPtr error(
      rd_kafka_commit_transaction(producer_.get(), Millis(options_.broker_timeout)));
  if (error != nullptr) {
    status = kinternal::ToStatus(error.get(), absl::StrCat(what, ": committing the transaction"));
    if (rd_kafka_error_txn_requires_abort(error.get())) Abort();
    in_transaction_ = false;
    return status;
  }
  error.reset(rd_kafka_begin_transaction(producer_.get()));
  if (error != nullptr) {
    in_transaction_ = false;
    return kinternal::ToStatus(error.get(), what);
  }
  return absl::OkStatus();
}

std::vector<RepartitionLag> TaskTransport::Lags() const {
  std::vector<RepartitionLag> lags;
  for (const internal::RemoteEndpoint* base : endpoints_) {
    const auto* endpoint = static_cast<const KafkaEndpoint*>(base);
    lags.push_back({.topic = endpoint->topic(), .lag = endpoint->Lag()});
  }
  return lags;
}

absl::Status TaskTransport::SendOffsets(const std::string& what) {
  kinternal::TopicPartitionListPtr offsets(rd_kafka_topic_partition_list_new(1));
  for (const internal::RemoteEndpoint* base : endpoints_) {
    const auto* endpoint = static_cast<const KafkaEndpoint*>(base);
    if (endpoint->snapshotted() < 0) continue;
    rd_kafka_topic_partition_list_add(offsets.get(), endpoint->topic().c_str(), task_)->offset =
        endpoint->snapshotted();
  }
  if (offsets->cnt == 0) return absl::OkStatus();
  std::unique_ptr<rd_kafka_consumer_group_metadata_t, void (*)(rd_kafka_consumer_group_metadata_t*)>
      group(rd_kafka_consumer_group_metadata_new((options_.job_id + "-offsets").c_str()),
            rd_kafka_consumer_group_metadata_destroy);
  kinternal::ErrorPtr error(rd_kafka_send_offsets_to_transaction(
      producer_.get(), offsets.get(), group.get(), Millis(options_.broker_timeout)));
  if (error == nullptr) return absl::OkStatus();
  absl::Status status =
      kinternal::ToStatus(error.get(), absl::StrCat(what, ": committing consumed offsets"));
  if (rd_kafka_error_txn_requires_abort(error.get())) Abort();
  return status;
}

void TaskTransport::Abort() {
  if (!in_transaction_ || producer_ == nullptr) return;
  in_transaction_ = false;
  kinternal::ErrorPtr error(
      rd_kafka_abort_transaction(producer_.get(), Millis(options_.broker_timeout)));
  if (error != nullptr) {
    weir::internal::Log("cluster job '", options_.job_id, "' task ", task_,
                        ": aborting the open transaction: ", rd_kafka_error_string(error.get()));
  }
}

}  // namespace weir::cluster
