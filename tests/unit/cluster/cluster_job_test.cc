// Cluster mode through the public API: one job run by several processes
// (cluster_count_job) on a broker in its own process (weir-kafka-dev,
// librdkafka's mock cluster), and the checks Start() makes.
//
// The mock neither fences transactional ids nor hides aborted records from
// read_committed readers, so these tests compare final values per key (the
// job counts distinct ids, which such duplicates cannot change); fencing is
// asserted only against a real broker.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "weir/connectors/kafka.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using Count = std::pair<std::string, int64_t>;
using kafka::testing::KafkaTestBroker;

constexpr int kTasks = 3;
constexpr int kKeys = 37;
constexpr int kEvents = 3000;

std::string TempDir(const std::string& name) {
  std::string dir = absl::StrCat(::testing::TempDir(), "/weir-cluster-", getpid(), "-", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The topics job `job` needs on a broker that cannot create topics (the
// mock): the lease and repartition topics with one partition per task.
std::vector<std::string> JobTopics(const std::string& job) {
  return {absl::StrCat(job, "-tasks:", kTasks), absl::StrCat(job, "-checkpoints:1"),
          absl::StrCat(job, "-KeyBy-1-repartition:", kTasks)};
}

pid_t Spawn(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` up to `timeout`; its exit code, or -1 (killed on timeout).
int WaitExit(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

// Runs job `job` as `processes` processes to the end; the final count per key.
std::map<std::string, int64_t> RunJob(const std::string& bootstrap, const std::string& job,
                                      int processes) {
  const std::string checkpoints = TempDir(job + "-chk");
  const std::string out = TempDir(job + "-out");
  std::vector<pid_t> pids;
  for (int idx = 0; idx < processes; ++idx) {
    pids.push_back(Spawn(
        {WEIR_CLUSTER_COUNT_JOB_PATH, bootstrap, job, std::to_string(kTasks), checkpoints, out}));
  }
  for (pid_t pid : pids) EXPECT_EQ(WaitExit(pid, std::chrono::seconds(240)), 0) << job;
  absl::StatusOr<std::vector<Count>> committed =
      testing::TransactionalFileSink<Count>::ReadCommitted(out);
  EXPECT_TRUE(committed.ok()) << committed.status();
  std::map<std::string, int64_t> finals;
  if (!committed.ok()) return finals;
  for (const Count& count : *committed) {
    finals[count.first] = std::max(finals[count.first], count.second);
  }
  return finals;
}

class ClusterJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> topics = {"events:4", "bad-tasks:2", "bad-checkpoints:1",
                                       "bad-KeyBy-1-repartition:3"};
    for (const char* job : {"one", "three", "graph"}) {
      for (const std::string& topic : JobTopics(job)) topics.push_back(topic);
    }
    absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker =
        KafkaTestBroker::StartChildProcess(WEIR_KAFKA_DEV_PATH, topics);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = broker->release();
    std::vector<kafka::testing::TestRecord> records;
    for (int id = 0; id < kEvents; ++id) {
      records.push_back({.key = std::to_string(id),
                         .value = absl::StrCat("k", id % kKeys, ",", id),
                         .partition = id % 4});
    }
    ASSERT_TRUE(kafka::testing::Produce(broker_->bootstrap(), "events", records).ok());
  }
  static void TearDownTestSuite() {
    delete broker_;
    broker_ = nullptr;
  }
  static KafkaTestBroker* broker_;
};
KafkaTestBroker* ClusterJobTest::broker_ = nullptr;

std::map<std::string, int64_t> Expected() {
  std::map<std::string, int64_t> expected;
  for (int id = 0; id < kEvents; ++id) ++expected[absl::StrCat("k", id % kKeys)];
  return expected;
}

TEST_F(ClusterJobTest, OneAndThreeProcessesGiveTheSameCounts) {
  const std::map<std::string, int64_t> one = RunJob(broker_->bootstrap(), "one", 1);
  EXPECT_EQ(one, Expected());
  const std::map<std::string, int64_t> three = RunJob(broker_->bootstrap(), "three", 3);
  EXPECT_EQ(three, Expected());
}

class PassThrough final : public KeyedProcessFunction<int64_t, int64_t, int64_t> {
 public:
  absl::Status ProcessElement(const int64_t& x, Context&, Collector<int64_t>& out) override {
    out.Collect(x);
    return absl::OkStatus();
  }
};

// A pipeline whose KeyBy carries ints, for the in-process checks below.
absl::StatusOr<JobHandle> StartIntJob(const std::string& bootstrap, const std::string& job,
                                      const std::string& dir, bool with_map) {
  PipelineOptions options;
  options.cluster = {
      .brokers = bootstrap, .job_id = job, .tasks = kTasks, .broker_timeout = absl::Seconds(5)};
  options.checkpoints.storage_uri = "file://" + dir;
  Pipeline pipeline(options);
  auto source =
      kafka::Source<int64_t>({.client = {.brokers = bootstrap},
                              .topics = {"events"},
                              .deserializer = kafka::DeserializeWith<int64_t>(
                                  [](const kafka::KafkaRecord& record) -> absl::StatusOr<int64_t> {
                                    return static_cast<int64_t>(record.offset);
                                  }),
                              .bounded = true});
  Stream<int64_t> numbers = pipeline.Source(source).Uid("events");
  if (with_map) numbers = numbers.Map([](int64_t x) { return x + 1; });
  numbers.KeyBy([](int64_t x) { return x % 7; })
      .Process(PassThrough())
      .Uid("pass")
      .Sink(testing::CollectingSink<int64_t>::Create())
      .Uid("out");
  return pipeline.Start();
}

TEST_F(ClusterJobTest, ATopicWithAnotherPartitionCountIsRefused) {
  absl::StatusOr<JobHandle> job =
      StartIntJob(broker_->bootstrap(), "bad", TempDir("bad"), /*with_map=*/false);
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition) << job.status();
  EXPECT_THAT(job.status().message(), ::testing::HasSubstr("bad-tasks has 2 partitions"));
}

TEST_F(ClusterJobTest, AnotherGraphUnderTheSameJobIdIsRefused) {
  const std::string dir = TempDir("graph");
  absl::StatusOr<JobHandle> first =
      StartIntJob(broker_->bootstrap(), "graph", dir, /*with_map=*/false);
  ASSERT_TRUE(first.ok()) << first.status();
  first->Cancel();
  (void)first->Wait();
  // An inserted Map moves the KeyBy: another graph.
  absl::StatusOr<JobHandle> second =
      StartIntJob(broker_->bootstrap(), "graph", dir, /*with_map=*/true);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("runs another graph"));
}

TEST(ClusterOptionsTest, ClusterModeNeedsCheckpointStorage) {
  PipelineOptions options;
  options.cluster = {.brokers = "127.0.0.1:1", .job_id = "x", .tasks = 2};
  Pipeline pipeline(options);
  pipeline.Source(testing::VectorSource<int>::Create(std::vector<int>{1})).Sink([](const int&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), ::testing::HasSubstr("storage_uri"));
}

}  // namespace
}  // namespace weir
