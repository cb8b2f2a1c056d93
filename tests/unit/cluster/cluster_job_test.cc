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
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/cluster/count_job.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "weir/connectors/kafka.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using cluster_test::Count;
using kafka::testing::KafkaTestBroker;

constexpr int kTasks = 3;
constexpr int kKeys = 37;
constexpr int kEvents = 3000;
constexpr int kKillRuns = 10;

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

// What happens to the processes of a run.
struct Plan {
  int processes = 1;
  // Per record, in the job's keyed function.
  int delay_us = 0;
  // After this long, SIGKILL (or SIGTERM) process 0; its tasks move.
  std::chrono::milliseconds kill_after{0};
  int kill_signal = SIGKILL;
  // Processes started this long after the first ones (scaling up).
  int late_processes = 0;
  std::chrono::milliseconds late_after{0};
};

// Runs job `job` by `plan` to the end; the final count per key.
std::map<std::string, int64_t> RunJob(const std::string& bootstrap, const std::string& job,
                                      const Plan& plan) {
  const std::string checkpoints = TempDir(job + "-chk");
  const std::string out = TempDir(job + "-out");
  auto start = [&] {
    return Spawn({WEIR_CLUSTER_COUNT_JOB_PATH, bootstrap, job, std::to_string(kTasks), checkpoints,
                  out, std::to_string(plan.delay_us)});
  };
  std::vector<pid_t> pids;
  for (int idx = 0; idx < plan.processes; ++idx) pids.push_back(start());
  const auto began = std::chrono::steady_clock::now();
  bool killed = plan.kill_after.count() == 0;
  bool scaled = plan.late_processes == 0;
  while (!killed || !scaled) {
    const auto elapsed = std::chrono::steady_clock::now() - began;
    if (!scaled && elapsed >= plan.late_after) {
      for (int idx = 0; idx < plan.late_processes; ++idx) pids.push_back(start());
      scaled = true;
    }
    if (!killed && elapsed >= plan.kill_after) {
      kill(pids[0], plan.kill_signal);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (size_t idx = 0; idx < pids.size(); ++idx) {
    const int code = WaitExit(pids[idx], std::chrono::seconds(240));
    if (idx == 0 && plan.kill_after.count() > 0 && plan.kill_signal == SIGKILL) continue;
    EXPECT_EQ(code, 0) << job << " process " << idx;
  }
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
    std::vector<std::string> jobs = {"one", "three", "graph", "scale", "lost"};
    for (int run = 0; run < kKillRuns; ++run) jobs.push_back(absl::StrCat("kill", run));
    for (const std::string& job : jobs) {
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
  const std::map<std::string, int64_t> one = RunJob(broker_->bootstrap(), "one", {.processes = 1});
  EXPECT_EQ(one, Expected());
  const std::map<std::string, int64_t> three =
      RunJob(broker_->bootstrap(), "three", {.processes = 3});
  EXPECT_EQ(three, Expected());
}

// kill -9 of one of three processes at a random moment, 10 times over: its
// tasks restart in the others from their last committed checkpoints.
TEST_F(ClusterJobTest, KillingOneOfThreeProcessesChangesNoResult) {
  std::mt19937 random(20261206);
  for (int run = 0; run < kKillRuns; ++run) {
    const auto kill_after = std::chrono::milliseconds(300 + random() % 2500);
    SCOPED_TRACE(absl::StrCat("run ", run, ": kill -9 after ", kill_after.count(), " ms"));
    const std::map<std::string, int64_t> counts =
        RunJob(broker_->bootstrap(), absl::StrCat("kill", run),
               {.processes = 3, .delay_us = 400, .kill_after = kill_after});
    EXPECT_EQ(counts, Expected());
  }
}

// 1 -> 3 -> 2 processes during a run: two join (tasks move to them), then one
// stops gracefully (its tasks commit and move again).
TEST_F(ClusterJobTest, ScalingOneToThreeToTwoChangesNoResult) {
  const std::map<std::string, int64_t> counts =
      RunJob(broker_->bootstrap(), "scale",
             {.processes = 1,
              .delay_us = 400,
              .kill_after = std::chrono::milliseconds(2500),
              .kill_signal = SIGTERM,
              .late_processes = 2,
              .late_after = std::chrono::milliseconds(800)});
  EXPECT_EQ(counts, Expected());
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
  ASSERT_TRUE(first->Wait().ok());
  // The cluster's own metrics: this process took every task, and each
  // task's final record names the checkpoint it committed.
  const MetricsSnapshot metrics = first->Metrics();
  EXPECT_GE(metrics.Sum("weir_cluster_rebalances_total"), 1);
  const MetricFamily* last = metrics.Find("weir_cluster_task_last_checkpoint");
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->series.size(), static_cast<size_t>(kTasks));
  for (const MetricSeries& series : last->series) EXPECT_GE(series.value, 1);
  // An inserted Map moves the KeyBy: another graph.
  absl::StatusOr<JobHandle> second =
      StartIntJob(broker_->bootstrap(), "graph", dir, /*with_map=*/true);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("runs another graph"));
}

// A task whose committed checkpoint is gone from storage: the process fails
// with kDataLoss naming the task's checkpoint, never starts it empty.
TEST_F(ClusterJobTest, ACommittedCheckpointMissingFromStorageIsDataLoss) {
  const std::string checkpoints = TempDir("lost-chk");
  const std::string out = TempDir("lost-out");
  auto start = [&] {
    return Spawn({WEIR_CLUSTER_COUNT_JOB_PATH, broker_->bootstrap(), "lost", std::to_string(kTasks),
                  checkpoints, out, "20000"});
  };
  // Stopped gracefully mid-run, after its first checkpoint is in storage:
  // every task commits a checkpoint that is not final (the run would take
  // about a minute).
  pid_t first = start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto has_files = [&] {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(checkpoints)) {
      if (entry.is_regular_file()) return true;
    }
    return false;
  };
  while (!has_files() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(has_files()) << "no checkpoint reached storage within 60 s";
  kill(first, SIGTERM);
  ASSERT_EQ(WaitExit(first, std::chrono::seconds(120)), 0);
  std::filesystem::remove_all(checkpoints);
  std::filesystem::create_directories(checkpoints);
  const std::string log = TempDir("lost-log") + "/stderr";
  const pid_t second = fork();
  if (second == 0) {
    FILE* redirected = freopen(log.c_str(), "w", stderr);
    (void)redirected;
    execl(WEIR_CLUSTER_COUNT_JOB_PATH, WEIR_CLUSTER_COUNT_JOB_PATH, broker_->bootstrap().c_str(),
          "lost", std::to_string(kTasks).c_str(), checkpoints.c_str(), out.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  EXPECT_EQ(WaitExit(second, std::chrono::seconds(120)), 1);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, ::testing::HasSubstr("DATA_LOSS"));
  EXPECT_THAT(text, ::testing::ContainsRegex("starting task [0-9]"));
  EXPECT_THAT(text, ::testing::HasSubstr("was committed, but its manifest is not in"));
}

// Errors injected into the group protocol (JoinGroup, SyncGroup, Heartbeat)
// and the transactions (AddOffsetsToTxn, EndTxn) of an in-process mock
// cluster, with two members of one job in this process: both survive them
// and the counts are exact.
TEST(ClusterFaultTest, GroupAndTransactionErrorsAreSurvived) {
  absl::StatusOr<std::unique_ptr<KafkaTestBroker>> broker = KafkaTestBroker::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_NE((*broker)->mock(), nullptr);
  ASSERT_TRUE((*broker)->CreateTopic("events", 4).ok());
  for (const std::string& topic : JobTopics("fault")) {
    const size_t colon = topic.rfind(':');
    ASSERT_TRUE(
        (*broker)->CreateTopic(topic.substr(0, colon), std::stoi(topic.substr(colon + 1))).ok());
  }
  std::vector<kafka::testing::TestRecord> records;
  for (int id = 0; id < kEvents; ++id) {
    records.push_back({.key = std::to_string(id),
                       .value = absl::StrCat("k", id % kKeys, ",", id),
                       .partition = id % 4});
  }
  ASSERT_TRUE(kafka::testing::Produce((*broker)->bootstrap(), "events", records).ok());
  kafka::internal::MockBroker& mock = *(*broker)->mock();
  mock.PushRequestErrors(11, 2, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);  // JoinGroup
  mock.PushRequestErrors(14, 1, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);      // SyncGroup
  mock.PushRequestErrors(12, 2, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);      // Heartbeat
  mock.PushRequestErrors(25, 2, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);  // AddOffsetsToTxn
  mock.PushRequestErrors(26, 2, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);  // EndTxn

  const std::string checkpoints = TempDir("fault-chk");
  const std::string out = TempDir("fault-out");
  PipelineOptions options;
  options.cluster = {.brokers = (*broker)->bootstrap(),
                     .job_id = "fault",
                     .tasks = kTasks,
                     .session_timeout = absl::Seconds(6)};
  options.checkpoints = {.interval = absl::Milliseconds(200),
                         .storage_uri = "file://" + checkpoints};
  std::vector<std::unique_ptr<Pipeline>> pipelines;
  std::vector<JobHandle> jobs;
  for (int member = 0; member < 2; ++member) {
    pipelines.push_back(std::make_unique<Pipeline>(options));
    cluster_test::BuildCountJob(*pipelines.back(), (*broker)->bootstrap(), out, 200);
    absl::StatusOr<JobHandle> job = pipelines.back()->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    jobs.push_back(*std::move(job));
  }
  for (JobHandle& job : jobs) EXPECT_TRUE(job.Wait().ok());
  absl::StatusOr<std::vector<Count>> committed =
      testing::TransactionalFileSink<Count>::ReadCommitted(out);
  ASSERT_TRUE(committed.ok()) << committed.status();
  std::map<std::string, int64_t> finals;
  for (const Count& count : *committed) {
    finals[count.first] = std::max(finals[count.first], count.second);
  }
  EXPECT_EQ(finals, Expected());
}

TEST(ClusterOptionsTest, UnreachableBrokersAreUnavailableAfterTheTimeout) {
  PipelineOptions options;
  options.cluster = {.brokers = "127.0.0.1:1",
                     .job_id = "nowhere",
                     .tasks = 2,
                     .broker_timeout = absl::Seconds(2)};
  options.checkpoints.storage_uri = "file://" + TempDir("nowhere");
  Pipeline pipeline(options);
  pipeline.Source(testing::VectorSource<int>::Create(std::vector<int>{1}))
      .Uid("numbers")
      .Sink([](const int&) {})
      .Uid("out");
  const auto began = std::chrono::steady_clock::now();
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kUnavailable) << job.status();
  EXPECT_THAT(job.status().message(), ::testing::HasSubstr("127.0.0.1:1"));
  EXPECT_GE(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(1900));
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
