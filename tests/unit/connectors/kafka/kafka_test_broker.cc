#include "tests/unit/connectors/kafka/kafka_test_broker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/connectors/kafka/client.h"

namespace weir::kafka::testing {
namespace {

using internal::HandlePtr;

absl::StatusOr<HandlePtr> MakeProducer(const std::string& bootstrap, std::atomic<int>* failures) {
  absl::StatusOr<internal::ConfPtr> conf =
      internal::MakeConf({.brokers = bootstrap},
                         {{"acks", "all"},
                          {"linger.ms", "5"},
                          {"enable.idempotence", "false"},
                          {"queue.buffering.max.messages", "1000000"},
                          {"queue.buffering.max.kbytes", "1048576"},
                          {"log_level", "3"}},
                         "test producer");
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_opaque(conf->get(), failures);
  rd_kafka_conf_set_dr_msg_cb(conf->get(),
                              [](rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
                                if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                                  static_cast<std::atomic<int>*>(opaque)->fetch_add(1);
                                }
                              });
  return internal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "test producer");
}

// Sends one record, retrying (after serving delivery reports) while the
// local queue is full.
absl::Status Send(rd_kafka_t* producer, const std::string& topic, const TestRecord& record) {
  rd_kafka_headers_t* headers = nullptr;
  if (!record.headers.empty()) {
    headers = rd_kafka_headers_new(record.headers.size());
    for (const auto& [name, value] : record.headers) {
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    }
  }
  const void* value = record.value ? record.value->data() : nullptr;
  const size_t value_size = record.value ? record.value->size() : 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    rd_kafka_headers_t* copy = headers != nullptr ? rd_kafka_headers_copy(headers) : nullptr;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(record.partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(record.key.empty() ? nullptr : record.key.data(), record.key.size()),
        RD_KAFKA_V_VALUE(const_cast<void*>(value), value_size),
        RD_KAFKA_V_TIMESTAMP(record.timestamp_ms), RD_KAFKA_V_HEADERS(copy), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (copy != nullptr) rd_kafka_headers_destroy(copy);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || absl::Now() > deadline) {
      if (headers != nullptr) rd_kafka_headers_destroy(headers);
      return internal::ToStatus(err, absl::StrCat("test producer: produce to ", topic));
    }
    rd_kafka_poll(producer, 10);
  }
  if (headers != nullptr) rd_kafka_headers_destroy(headers);
  rd_kafka_poll(producer, 0);
  return absl::OkStatus();
}

absl::Status FlushAndCheck(rd_kafka_t* producer, const std::atomic<int>& failures,
                           const std::string& topic) {
  rd_kafka_resp_err_t err = rd_kafka_flush(producer, 30'000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ToStatus(err, absl::StrCat("test producer: flush to ", topic));
  }
  if (failures.load() > 0) {
    return absl::UnavailableError(
        absl::StrCat("test producer: ", failures.load(), " records to ", topic, " failed"));
  }
  return absl::OkStatus();
}

absl::Status ProduceWith(const std::string& bootstrap, const std::string& topic, int64_t count,
                         const std::function<TestRecord(int64_t)>& make) {
  std::atomic<int> failures{0};
  absl::StatusOr<HandlePtr> producer = MakeProducer(bootstrap, &failures);
  if (!producer.ok()) return producer.status();
  for (int64_t idx = 0; idx < count; ++idx) {
    absl::Status status = Send(producer->get(), topic, make(idx));
    if (!status.ok()) return status;
  }
  return FlushAndCheck(producer->get(), failures, topic);
}

// CreateTopics on a real broker, waiting (up to 30 s) until the broker has
// created it. A topic that exists already is fine: the tests name theirs
// uniquely, so it can only be this run's.
absl::Status CreateTopicWithAdminApi(const std::string& bootstrap, const std::string& topic,
                                     int partitions) {
  absl::StatusOr<internal::ConfPtr> conf =
      internal::MakeConf({.brokers = bootstrap}, {{"log_level", "3"}}, "test admin");
  if (!conf.ok()) return conf.status();
  absl::StatusOr<HandlePtr> admin =
      internal::MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), "test admin");
  if (!admin.ok()) return admin.status();
  const std::string what = absl::StrCat("test admin: create topic ", topic);
  char errstr[512];
  std::unique_ptr<rd_kafka_NewTopic_t, decltype(&rd_kafka_NewTopic_destroy)> new_topic(
      rd_kafka_NewTopic_new(topic.c_str(), partitions, /*replication_factor=*/-1, errstr,
                            sizeof(errstr)),
      &rd_kafka_NewTopic_destroy);
  if (new_topic == nullptr) return absl::InvalidArgumentError(absl::StrCat(what, ": ", errstr));
  std::unique_ptr<rd_kafka_AdminOptions_t, decltype(&rd_kafka_AdminOptions_destroy)> options(
      rd_kafka_AdminOptions_new(admin->get(), RD_KAFKA_ADMIN_OP_CREATETOPICS),
      &rd_kafka_AdminOptions_destroy);
  if (rd_kafka_AdminOptions_set_operation_timeout(options.get(), 30'000, errstr, sizeof(errstr)) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(absl::StrCat(what, ": ", errstr));
  }
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue(
      rd_kafka_queue_new(admin->get()), &rd_kafka_queue_destroy);
  rd_kafka_NewTopic_t* topics[] = {new_topic.get()};
  rd_kafka_CreateTopics(admin->get(), topics, 1, options.get(), queue.get());
  std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> event(
      rd_kafka_queue_poll(queue.get(), 40'000), &rd_kafka_event_destroy);
  if (event == nullptr) {
    return absl::DeadlineExceededError(absl::StrCat(
        what,
        ": no answer within 40 s (librdkafka's mock cluster, e.g. weir-kafka-dev, has no "
        "CreateTopics: WEIR_TEST_KAFKA_BROKERS must name a real broker)"));
  }
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ToStatus(rd_kafka_event_error(event.get()),
                              absl::StrCat(what, ": ", rd_kafka_event_error_string(event.get())));
  }
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
  for (size_t idx = 0; idx < count; ++idx) {
    const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[idx]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      continue;
    }
    const char* message = rd_kafka_topic_result_error_string(results[idx]);
    return internal::ToStatus(err, absl::StrCat(what, ": ", message != nullptr ? message : ""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<KafkaTestBroker>> KafkaTestBroker::FromEnvironment() {
  const char* brokers = std::getenv("WEIR_TEST_KAFKA_BROKERS");
  if (brokers == nullptr || *brokers == '\0') return Start();
  std::unique_ptr<KafkaTestBroker> broker(new KafkaTestBroker());
  broker->bootstrap_ = brokers;
  broker->external_ = true;
  return broker;
}

absl::StatusOr<std::unique_ptr<KafkaTestBroker>> KafkaTestBroker::Start(int brokers) {
  absl::StatusOr<std::unique_ptr<internal::MockBroker>> mock = internal::MockBroker::Start(brokers);
  if (!mock.ok()) return mock.status();
  std::unique_ptr<KafkaTestBroker> broker(new KafkaTestBroker());
  broker->bootstrap_ = (*mock)->bootstrap();
  broker->mock_ = *std::move(mock);
  return broker;
}

absl::StatusOr<std::unique_ptr<KafkaTestBroker>> KafkaTestBroker::StartChildProcess(
    const std::string& program, const std::vector<std::string>& topics) {
  if (access(program.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot execute ", program));
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> args = {program};
  args.insert(args.end(), topics.begin(), topics.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    // The broker dies with its parent, even one that exits without
    // destroying the fixture.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(fds[1], STDOUT_FILENO);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::unique_ptr<KafkaTestBroker> broker(new KafkaTestBroker());
  broker->child_ = pid;
  broker->child_stdout_ = fds[0];
  // The first line is the bootstrap address.
  std::string line;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (line.find('\n') == std::string::npos) {
    const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (wait_ms <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(program, " printed no bootstrap address"));
    }
    pollfd pfd{fds[0], POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(std::min<int64_t>(wait_ms, 1000))) <= 0) continue;
    char buffer[256];
    const ssize_t got = read(fds[0], buffer, sizeof(buffer));
    if (got <= 0) {
      return absl::UnavailableError(absl::StrCat(program, " exited before printing its address"));
    }
    line.append(buffer, static_cast<size_t>(got));
  }
  broker->bootstrap_ = line.substr(0, line.find('\n'));
  return broker;
}

KafkaTestBroker::~KafkaTestBroker() {
  mock_.reset();
  if (child_ > 0) {
    kill(child_, SIGTERM);
    int status = 0;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (waitpid(child_, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        kill(child_, SIGKILL);
        waitpid(child_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  if (child_stdout_ >= 0) close(child_stdout_);
}

absl::Status KafkaTestBroker::CreateTopic(const std::string& topic, int partitions) {
  if (external_) return CreateTopicWithAdminApi(bootstrap_, topic, partitions);
  if (mock_ == nullptr) {
    return absl::UnimplementedError(
        "KafkaTestBroker::CreateTopic: give a child process its topics at start");
  }
  return mock_->CreateTopic(topic, partitions);
}

absl::Status Produce(const std::string& bootstrap, const std::string& topic,
                     const std::vector<TestRecord>& records) {
  return ProduceWith(bootstrap, topic, static_cast<int64_t>(records.size()),
                     [&records](int64_t idx) { return records[static_cast<size_t>(idx)]; });
}

absl::Status ProduceNumbered(const std::string& bootstrap, const std::string& topic, int64_t count,
                             int partitions, int64_t first, int64_t timestamp_base_ms) {
  return ProduceWith(bootstrap, topic, count, [&](int64_t idx) {
    const int64_t number = first + idx;
    TestRecord record;
    record.key = std::to_string(number);
    record.value = std::to_string(number);
    record.partition = static_cast<int32_t>(number % partitions);
    record.timestamp_ms = timestamp_base_ms + number;
    return record;
  });
}

absl::Status ProduceGenerated(const std::string& bootstrap, const std::string& topic, int64_t count,
                              const std::function<TestRecord(int64_t)>& make) {
  return ProduceWith(bootstrap, topic, count, make);
}

absl::StatusOr<std::pair<int64_t, int64_t>> QueryWatermarks(const std::string& bootstrap,
                                                            const std::string& topic,
                                                            int32_t partition) {
  absl::StatusOr<internal::ConfPtr> conf =
      internal::MakeConf({.brokers = bootstrap}, {{"log_level", "3"}}, "test consumer");
  if (!conf.ok()) return conf.status();
  absl::StatusOr<HandlePtr> consumer =
      internal::MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), "test consumer");
  if (!consumer.ok()) return consumer.status();
  int64_t low = 0;
  int64_t high = 0;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(consumer->get(), topic.c_str(),
                                                             partition, &low, &high, 10'000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ToStatus(err, absl::StrCat("watermarks of ", topic, "/", partition));
  }
  return std::make_pair(low, high);
}

absl::StatusOr<int64_t> OverflowPartition(const std::string& bootstrap, const std::string& topic,
                                          int32_t partition) {
  absl::StatusOr<std::pair<int64_t, int64_t>> before = QueryWatermarks(bootstrap, topic, partition);
  if (!before.ok()) return before.status();
  // 420 x 16 KiB: about 6.6 MiB, past the mock's 5 MiB per partition.
  const std::string big(16 * 1024, 'x');
  absl::Status status = ProduceGenerated(bootstrap, topic, 420, [&](int64_t) {
    TestRecord record;
    record.value = big;
    record.partition = partition;
    return record;
  });
  if (!status.ok()) return status;
  absl::StatusOr<std::pair<int64_t, int64_t>> after = QueryWatermarks(bootstrap, topic, partition);
  if (!after.ok()) return after.status();
  if (after->first < before->second) {
    return absl::FailedPreconditionError(
        absl::StrCat("the log start of ", topic, "/", partition, " is ", after->first,
                     ", not past the old end ", before->second, ": the broker kept everything (",
                     internal::kRetentionNote, "; a real broker does not)"));
  }
  return after->first;
}

absl::StatusOr<std::vector<int64_t>> CommittedOffsets(const std::string& bootstrap,
                                                      const std::string& group,
                                                      const std::string& topic, int partitions) {
  absl::StatusOr<internal::ConfPtr> conf = internal::MakeConf(
      {.brokers = bootstrap}, {{"group.id", group}, {"log_level", "3"}}, "test consumer");
  if (!conf.ok()) return conf.status();
  absl::StatusOr<HandlePtr> consumer =
      internal::MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), "test consumer");
  if (!consumer.ok()) return consumer.status();
  internal::TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int32_t partition = 0; partition < partitions; ++partition) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  }
  rd_kafka_resp_err_t err = rd_kafka_committed(consumer->get(), list.get(), 10'000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ToStatus(err, absl::StrCat("committed offsets of ", group));
  }
  std::vector<int64_t> offsets(static_cast<size_t>(partitions), RD_KAFKA_OFFSET_INVALID);
  for (int idx = 0; idx < list->cnt; ++idx) {
    offsets[static_cast<size_t>(list->elems[idx].partition)] = list->elems[idx].offset;
  }
  rd_kafka_consumer_close(consumer->get());
  return offsets;
}

}  // namespace weir::kafka::testing
