#include "lib/cluster/checkpoint_records.h"

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/cluster/task_transport.h"
#include "lib/runtime/running_job.h"
#include "weir/internal/graph.h"
#include "weir/key.h"

namespace weir::cluster {

namespace kinternal = ::weir::kafka::internal;

absl::StatusOr<kinternal::ConfPtr> ClusterConf(const ClusterOptions& options,
                                               const std::map<std::string, std::string>& defaults,
                                               absl::string_view what) {
  kafka::ClientOptions client{.brokers = options.brokers, .properties = options.properties};
  return kinternal::MakeConf(client, defaults, what);
}

std::string TaskKey(int task) { return absl::StrCat("task-", task); }

std::string EncodeTaskCheckpoint(const TaskCheckpoint& record) {
  return absl::StrCat("weir-checkpoint v1 task=", record.task, " checkpoint=", record.checkpoint_id,
                      " final=", record.final ? 1 : 0, " graph=", record.graph,
                      " committed_ms=", record.committed_ms);
}

namespace {

// "k=v" fields after the two-word header `magic`.
absl::StatusOr<std::map<std::string, std::string>> Fields(absl::string_view value,
                                                          absl::string_view magic) {
  std::vector<absl::string_view> words = absl::StrSplit(value, ' ', absl::SkipEmpty());
  if (words.size() < 2 || words[0] != magic || words[1] != "v1") {
    return absl::DataLossError(
        absl::StrCat("not a ", magic, " v1 record: '", value.substr(0, 80), "'"));
  }
  std::map<std::string, std::string> fields;
  for (size_t idx = 2; idx < words.size(); ++idx) {
    std::pair<std::string, std::string> kv = absl::StrSplit(words[idx], absl::MaxSplits('=', 1));
    fields[kv.first] = kv.second;
  }
  return fields;
}

}  // namespace

absl::StatusOr<TaskCheckpoint> DecodeTaskCheckpoint(absl::string_view value) {
  absl::StatusOr<std::map<std::string, std::string>> fields = Fields(value, "weir-checkpoint");
  if (!fields.ok()) return fields.status();
  TaskCheckpoint record;
  int final = 0;
  if (!absl::SimpleAtoi((*fields)["task"], &record.task) ||
      !absl::SimpleAtoi((*fields)["checkpoint"], &record.checkpoint_id) ||
      !absl::SimpleAtoi((*fields)["final"], &final) ||
      !absl::SimpleAtoi((*fields)["committed_ms"], &record.committed_ms)) {
    return absl::DataLossError(absl::StrCat("a malformed checkpoint record: '", value, "'"));
  }
  record.final = final != 0;
  record.graph = (*fields)["graph"];
  return record;
}

std::string GraphFingerprint(const internal::Graph& graph, int tasks, int max_parallelism) {
  std::string text = absl::StrCat("tasks=", tasks, ";max_parallelism=", max_parallelism, ";");
  for (const auto& node : graph.nodes()) {
    absl::StrAppend(&text, node->id, ":", node->kind, ":", node->identity(), ":");
    for (int input : node->inputs) absl::StrAppend(&text, input, ",");
    absl::StrAppend(&text, ";");
  }
  return absl::StrCat(absl::Hex(KeyTraits<std::string>::Hash(text), absl::kZeroPad16));
}

CheckpointRecordReader::CheckpointRecordReader(kinternal::HandlePtr consumer, std::string topic)
    : consumer_(std::move(consumer)), topic_(std::move(topic)) {}

CheckpointRecordReader::~CheckpointRecordReader() {
  if (consumer_ != nullptr) rd_kafka_consumer_close(consumer_.get());
}

absl::StatusOr<std::unique_ptr<CheckpointRecordReader>> CheckpointRecordReader::Create(
    const ClusterOptions& options) {
  const std::string what = absl::StrCat("cluster job '", options.job_id, "' checkpoint records");
  absl::StatusOr<kinternal::ConfPtr> conf = ClusterConf(options,
                                                        {{"group.id", options.job_id + "-records"},
                                                         {"enable.auto.commit", "false"},
                                                         {"enable.partition.eof", "true"},
                                                         {"isolation.level", "read_committed"},
                                                         // CatchUp waits for the fetch that
                                                         // reaches the end; the broker's default
                                                         // holds it 500 ms.
                                                         {"fetch.wait.max.ms", "10"},
                                                         {"auto.offset.reset", "earliest"}},
                                                        what);
  if (!conf.ok()) return conf.status();
  absl::StatusOr<kinternal::HandlePtr> consumer =
      kinternal::MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), what);
  if (!consumer.ok()) return consumer.status();
  const std::string topic = internal::ClusterCheckpointTopic(options.job_id);
  kinternal::TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer->get(), list.get())) {
    return kinternal::ToStatus(err, what);
  }
  return std::unique_ptr<CheckpointRecordReader>(
      new CheckpointRecordReader(*std::move(consumer), topic));
}

absl::Status CheckpointRecordReader::CatchUp(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // The end as of now: reading stops there (records committed later are
  // for the next call).
  int64_t low = 0;
  int64_t high = 0;
  if (rd_kafka_resp_err_t err =
          rd_kafka_query_watermark_offsets(consumer_.get(), topic_.c_str(), 0, &low, &high,
                                           static_cast<int>(absl::ToInt64Milliseconds(timeout)))) {
    return kinternal::ToStatus(err, absl::StrCat("reading ", topic_));
  }
  while (true) {
    kinternal::TopicPartitionListPtr position(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(position.get(), topic_.c_str(), 0);
    rd_kafka_position(consumer_.get(), position.get());
    const int64_t next = position->elems[0].offset;
    if (next >= high || high == low) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat("reading ", topic_, ": at offset ", next, " of ",
                                                 high, " after ", absl::FormatDuration(timeout)));
    }
    kinternal::MessagePtr message(rd_kafka_consumer_poll(consumer_.get(), 100));
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Transaction markers occupy offsets no message is delivered for.
      if (message->offset >= high) return absl::OkStatus();
      continue;
    }
    if (message->err) return kinternal::ToStatus(message->err, absl::StrCat("reading ", topic_));
    absl::string_view key(static_cast<const char*>(message->key), message->key_len);
    absl::string_view value(static_cast<const char*>(message->payload), message->len);
    if (key == "graph") {
      absl::StatusOr<std::map<std::string, std::string>> fields = Fields(value, "weir-graph");
      if (!fields.ok()) return fields.status();
      graph_ = (*fields)["graph"];
      (void)absl::SimpleAtoi((*fields)["tasks"], &graph_tasks_);
      continue;
    }
    absl::StatusOr<TaskCheckpoint> record = DecodeTaskCheckpoint(value);
    if (!record.ok()) {
      return absl::Status(record.status().code(), absl::StrCat(topic_, " offset ", message->offset,
                                                               ": ", record.status().message()));
    }
    tasks_[record->task] = *record;
  }
}

absl::Status WriteGraphRecord(const ClusterOptions& options, const std::string& fingerprint) {
  const std::string what = absl::StrCat("cluster job '", options.job_id, "' graph record");
  absl::StatusOr<kinternal::ConfPtr> conf =
      ClusterConf(options, {{"enable.idempotence", "true"}}, what);
  if (!conf.ok()) return conf.status();
  absl::StatusOr<kinternal::HandlePtr> producer =
      kinternal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), what);
  if (!producer.ok()) return producer.status();
  const std::string topic = internal::ClusterCheckpointTopic(options.job_id);
  const std::string value =
      absl::StrCat("weir-graph v1 graph=", fingerprint, " tasks=", options.tasks);
  rd_kafka_resp_err_t err = rd_kafka_producev(
      producer->get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0),
      RD_KAFKA_V_KEY("graph", 5), RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (err) return kinternal::ToStatus(err, what);
  err = rd_kafka_flush(producer->get(),
                       static_cast<int>(absl::ToInt64Milliseconds(options.broker_timeout)));
  if (err) return kinternal::ToStatus(err, what);
  return absl::OkStatus();
}

}  // namespace weir::cluster
