// W4 (bench/README.md): cluster mode against local mode.
//
// The W2 workload (200,000 Debezium envelopes in a 32-partition topic on
// weir-kafka-dev, decoded, KeyBy(content_id), tumbling one-minute windows)
// run three ways, alternating, `--repeat` times (default 3):
//
// - local: one process, `--tasks` worker threads (in-memory exchanges);
// - cluster, 1 process: the same job in cluster mode with `--tasks` tasks,
//   all in one child process (the KeyBy goes through a repartition topic);
// - cluster, 2 processes: two child processes sharing the tasks.
//
// All three checkpoint every second to a local directory. A cluster run is
// timed from the start of its processes to the end of the last, so it
// includes process start and the group join; "processing" is timed from the
// first record any task read to the end. Then the bytes the last two-process
// run wrote to its repartition topic, and recovery: two processes with
// records slowed down (`--recovery-delay-us`), one killed -9, and the time
// until the survivor processed the first record of the dead one's task
// (session timeout `--session-timeout`, default 10 s).
//
//   weir-bench-w4 [--events=200000] [--json=w4.json] [--repeat=3] [--tasks=2]
//                 [--recovery-delay-us=300] [--session-timeout=10] [--kafka-dev=PATH]
//
// A cluster process is this program again, with --member=... (internal).

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/w2_workload.h"
#include "bench/window_workload.h"
#include "bench/workload_events.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"
#include "weir/weir.h"

namespace weir::bench {
namespace {

using Change = debezium::Change<Engagement>;

void Die(const std::string& what) {
  std::fprintf(stderr, "weir-bench-w4: %s\n", what.c_str());
  std::exit(1);
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// Passes every change on; in a cluster process, prints "W4-FIRST <task>
// <ms>" at a task's first record (the task is this instance's worker
// index), and sleeps `delay_us` per record when asked to (the recovery run).
// The local run has it too, silent, so both do the same work.
class FirstRecord final : public ProcessFunction<Change, Change> {
 public:
  explicit FirstRecord(int64_t delay_us, bool announce = true)
      : delay_us_(delay_us), announce_(announce) {}
  absl::Status ProcessElement(const Change& change, Context& ctx, Collector<Change>& out) override {
    if (announce_ && !seen_) {
      seen_ = true;
      std::printf("W4-FIRST %d %lld\n", ctx.worker_index(), static_cast<long long>(NowMs()));
      std::fflush(stdout);
    }
    if (delay_us_ > 0) absl::SleepFor(absl::Microseconds(delay_us_));
    out.Collect(change);
    return absl::OkStatus();
  }

 private:
  int64_t delay_us_;
  bool announce_;
  bool seen_ = false;
};

struct ClusterSetup {
  std::string brokers;
  std::string job;
  int tasks = 2;
  std::string checkpoints;
  int64_t delay_us = 0;
  int session_timeout_s = 10;
};

PipelineOptions Options(const ClusterSetup& setup, bool cluster) {
  PipelineOptions options;
  options.parallelism = setup.tasks;
  options.checkpoints.storage_uri = "file://" + setup.checkpoints;
  options.checkpoints.interval = absl::Seconds(1);
  if (cluster) {
    options.cluster.brokers = setup.brokers;
    options.cluster.job_id = setup.job;
    options.cluster.tasks = setup.tasks;
    options.cluster.session_timeout = absl::Seconds(setup.session_timeout_s);
  }
  return options;
}

// The job's topics (the mock cannot create them: the broker's start does).
std::vector<std::pair<std::string, int>> JobTopics(const ClusterSetup& setup) {
  Pipeline pipeline(Options(setup, true));
  AddTumblingJob(pipeline, EngagementSource(setup.brokers), std::make_shared<WindowSink>(),
                 FirstRecord(0));
  absl::StatusOr<std::vector<std::pair<std::string, int>>> topics = pipeline.ClusterTopics();
  if (!topics.ok()) Die(topics.status().ToString());
  return *topics;
}

// --member=brokers,job,tasks,checkpoints,delay_us,session_timeout_s: one
// process of a cluster run. Prints "W4-END <counted> <windows> <ms>".
int Member(const std::string& spec) {
  std::vector<std::string> parts = absl::StrSplit(spec, ',');
  ClusterSetup setup;
  if (parts.size() != 6 || !absl::SimpleAtoi(parts[2], &setup.tasks) ||
      !absl::SimpleAtoi(parts[4], &setup.delay_us) ||
      !absl::SimpleAtoi(parts[5], &setup.session_timeout_s)) {
    Die("--member=brokers,job,tasks,checkpoints,delay_us,session_timeout_s");
  }
  setup.brokers = parts[0];
  setup.job = parts[1];
  setup.checkpoints = parts[3];
  Pipeline pipeline(Options(setup, true));
  auto sink = std::make_shared<WindowSink>();
  AddTumblingJob(pipeline, EngagementSource(setup.brokers), sink, FirstRecord(setup.delay_us));
  absl::Status status = pipeline.Run();
  if (!status.ok()) Die(absl::StrCat("member of ", setup.job, ": ", status.ToString()));
  std::printf("W4-END %lld %lld %lld\n", static_cast<long long>(sink->counted()),
              static_cast<long long>(sink->windows()), static_cast<long long>(NowMs()));
  return 0;
}

struct Child {
  pid_t pid = -1;
  std::string out;  // its stdout
};

// Its stdout goes to `out`, and its stderr to `err` when given.
Child SpawnMember(const std::string& self, const ClusterSetup& setup, const std::string& out,
                  const std::string& err = "") {
  std::vector<std::string> args = {
      self, absl::StrCat("--member=", setup.brokers, ",", setup.job, ",", setup.tasks, ",",
                         setup.checkpoints, ",", setup.delay_us, ",", setup.session_timeout_s)};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("cannot write " + out);
  const int err_fd = err.empty() ? -1 : open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, STDOUT_FILENO);
    if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fd);
  if (err_fd >= 0) close(err_fd);
  return {pid, out};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "W4-FIRST <task> <ms>" lines: task -> first ms (the earliest per task).
std::map<int, int64_t> FirstRecords(const std::string& text) {
  std::map<int, int64_t> first;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    int task = 0;
    int64_t ms = 0;
    if (parts.size() == 3 && parts[0] == "W4-FIRST" && absl::SimpleAtoi(parts[1], &task) &&
        absl::SimpleAtoi(parts[2], &ms)) {
      auto [it, inserted] = first.emplace(task, ms);
      if (!inserted) it->second = std::min(it->second, ms);
    }
  }
  return first;
}

struct Outcome {
  double seconds = 0;             // wall, start to end
  double processing_seconds = 0;  // first record to end
  double cpu_seconds = 0;
  int64_t counted = 0;
  int64_t windows = 0;
};

Outcome RunLocal(const ClusterSetup& setup) {
  std::filesystem::remove_all(setup.checkpoints);
  Pipeline pipeline(Options(setup, false));
  auto sink = std::make_shared<WindowSink>();
  AddTumblingJob(pipeline, EngagementSource(setup.brokers), sink, FirstRecord(0, false));
  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = pipeline.Run();
  Outcome outcome;
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.processing_seconds = outcome.seconds;
  outcome.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  if (!status.ok()) Die("local run: " + status.ToString());
  outcome.counted = sink->counted();
  outcome.windows = sink->windows();
  return outcome;
}

Outcome RunCluster(const std::string& self, const ClusterSetup& setup, int processes,
                   const std::string& dir) {
  std::filesystem::remove_all(setup.checkpoints);
  std::vector<Child> children;
  const auto start = std::chrono::steady_clock::now();
  for (int idx = 0; idx < processes; ++idx) {
    children.push_back(SpawnMember(self, setup, absl::StrCat(dir, "/", setup.job, "-", idx)));
  }
  Outcome outcome;
  int64_t first_ms = INT64_MAX;
  int64_t end_ms = 0;
  for (const Child& child : children) {
    int status = 0;
    rusage usage{};
    if (wait4(child.pid, &status, 0, &usage) != child.pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      Die(absl::StrCat("cluster run ", setup.job, ": a process failed (status ", status, ")"));
    }
    outcome.cpu_seconds +=
        static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
        static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    const std::string text = ReadFile(child.out);
    for (const auto& [task, ms] : FirstRecords(text)) first_ms = std::min(first_ms, ms);
    long long counted = 0, windows = 0, ms = 0;
    const size_t at = text.find("W4-END ");
    if (at == std::string::npos ||
        std::sscanf(text.c_str() + at, "W4-END %lld %lld %lld", &counted, &windows, &ms) != 3) {
      Die("cluster run " + setup.job + ": a process printed no W4-END");
    }
    outcome.counted += counted;
    outcome.windows += windows;
    end_ms = std::max<int64_t>(end_ms, ms);
  }
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.processing_seconds = first_ms == INT64_MAX ? outcome.seconds : (end_ms - first_ms) / 1e3;
  return outcome;
}

struct RecoveryTime {
  double seconds = -1;       // kill -9 to the first record (-1: none within two minutes)
  int64_t takeover_ms = -1;  // the survivor's own part: assignment to the task running
};

// Two processes with slowed records; kill -9 of the first once both run a
// task; the seconds until the survivor processed the first record of a task
// the dead one ran, and how long of that the survivor took to start the
// task once the group gave it (its "took task(s) ... in N ms" log line).
RecoveryTime Recovery(const std::string& self, const ClusterSetup& setup, const std::string& dir) {
  std::filesystem::remove_all(setup.checkpoints);
  Child victim = SpawnMember(self, setup, dir + "/recovery-0");
  Child survivor = SpawnMember(self, setup, dir + "/recovery-1", dir + "/recovery-1.err");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline &&
         (FirstRecords(ReadFile(victim.out)).empty() ||
          FirstRecords(ReadFile(survivor.out)).empty())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::map<int, int64_t> victim_tasks = FirstRecords(ReadFile(victim.out));
  if (victim_tasks.empty() || FirstRecords(ReadFile(survivor.out)).empty()) {
    Die("recovery run: the two processes did not both start a task");
  }
  // Past the first checkpoint, so the victim's task restores one.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  kill(victim.pid, SIGKILL);
  const int64_t killed_ms = NowMs();
  waitpid(victim.pid, nullptr, 0);
  double seconds = -1;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (seconds < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    // The survivor's output from its start: a moved task prints again.
    const std::string text = ReadFile(survivor.out);
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      int task = 0;
      int64_t ms = 0;
      if (parts.size() == 3 && parts[0] == "W4-FIRST" && absl::SimpleAtoi(parts[1], &task) &&
          absl::SimpleAtoi(parts[2], &ms) && victim_tasks.contains(task) && ms >= killed_ms) {
        seconds = (ms - killed_ms) / 1e3;
        break;
      }
    }
  }
  kill(survivor.pid, SIGKILL);
  waitpid(survivor.pid, nullptr, 0);
  RecoveryTime time{.seconds = seconds};
  // The survivor's last "took task(s) ... in N ms" line is the takeover.
  for (absl::string_view line : absl::StrSplit(ReadFile(dir + "/recovery-1.err"), '\n')) {
    const size_t took = line.find(": took task(s) ");
    const size_t in = line.find(" in ", took == absl::string_view::npos ? 0 : took);
    if (took == absl::string_view::npos || in == absl::string_view::npos) continue;
    int64_t ms = 0;
    if (absl::SimpleAtoi(line.substr(in + 4, line.find(" ms", in) - in - 4), &ms)) {
      time.takeover_ms = ms;
    }
  }
  return time;
}

int Main(int argc, char** argv) {
  for (int idx = 1; idx < argc; ++idx) {
    const std::string_view arg(argv[idx]);
    if (arg.starts_with("--member=")) return Member(std::string(arg.substr(9)));
  }
  std::string kafka_dev = WEIR_KAFKA_DEV_PATH;
  int tasks = 2;
  int64_t recovery_delay_us = 300;
  int session_timeout_s = 10;
  BenchFlags flags =
      ParseFlags(argc, argv, 200'000,
                 {{"--kafka-dev=", "PATH", [&](const char* value) { kafka_dev = value; }},
                  {"--tasks=", "N", [&](const char* value) { tasks = std::atoi(value); }},
                  {"--recovery-delay-us=", "US",
                   [&](const char* value) { recovery_delay_us = std::atoll(value); }},
                  {"--session-timeout=", "S",
                   [&](const char* value) { session_timeout_s = std::atoi(value); }}});
  bool repeat_given = false;
  for (int idx = 1; idx < argc; ++idx) {
    repeat_given |= std::string_view(argv[idx]).starts_with("--repeat=");
  }
  if (!repeat_given) flags.repeat = 3;
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  const std::string dir =
      absl::StrCat(std::filesystem::temp_directory_path().string(), "/weir-bench-w4-", getpid());
  std::filesystem::create_directories(dir);

  // Every job of the run, and its topics, before the broker starts (which
  // the topics' listing does not contact).
  std::string brokers = "127.0.0.1:9";
  auto setup_for = [&](const std::string& job, int64_t delay_us) {
    return ClusterSetup{.brokers = brokers,
                        .job = job,
                        .tasks = tasks,
                        .checkpoints = dir + "/checkpoints-" + job,
                        .delay_us = delay_us,
                        .session_timeout_s = session_timeout_s};
  };
  std::vector<std::string> topics = {absl::StrCat(kTopic, ":", kPartitions)};
  std::vector<std::string> jobs;
  for (int round = 0; round < flags.repeat; ++round) {
    for (int processes : {1, 2}) jobs.push_back(absl::StrCat("w4-p", processes, "-r", round));
  }
  jobs.push_back("w4-recovery");
  std::string repartition_topic;
  for (const std::string& job : jobs) {
    for (const auto& [topic, partitions] : JobTopics(setup_for(job, 0))) {
      topics.push_back(absl::StrCat(topic, ":", partitions));
      if (job == jobs[jobs.size() - 2] && topic.ends_with("-repartition")) {
        repartition_topic = topic;
      }
    }
  }
  absl::StatusOr<std::unique_ptr<kafka::testing::KafkaTestBroker>> broker =
      kafka::testing::KafkaTestBroker::StartChildProcess(kafka_dev, topics);
  if (!broker.ok()) Die(broker.status().ToString());
  brokers = (*broker)->bootstrap();
  absl::StatusOr<EngagementInput> input = ProduceEngagementInput(brokers, flags);
  if (!input.ok()) Die(input.status().ToString());
  std::printf(
      "W4: %llu Debezium envelopes (%.1f MiB) in %d partitions on %s, %d tasks, best of %d "
      "rounds, alternating\n",
      static_cast<unsigned long long>(flags.events), static_cast<double>(input->bytes) / (1 << 20),
      kPartitions, brokers.c_str(), tasks, flags.repeat);

  struct Best {
    Outcome best{.seconds = 1e30, .processing_seconds = 1e30, .cpu_seconds = 1e30};
    void Add(const Outcome& o) {
      best.seconds = std::min(best.seconds, o.seconds);
      best.processing_seconds = std::min(best.processing_seconds, o.processing_seconds);
      best.cpu_seconds = std::min(best.cpu_seconds, o.cpu_seconds);
    }
  };
  Best local, one, two;
  auto check = [&](const std::string& what, const Outcome& o, const Outcome& reference) {
    if (o.counted != static_cast<int64_t>(flags.events) || o.windows != reference.windows) {
      Die(absl::StrCat(what, ": counted ", o.counted, " of ", flags.events, " events in ",
                       o.windows, " windows (local: ", reference.windows, ")"));
    }
  };
  const Outcome reference = RunLocal(setup_for("local", 0));
  for (int round = 0; round < flags.repeat; ++round) {
    const Outcome l = RunLocal(setup_for("local", 0));
    check("local", l, reference);
    local.Add(l);
    for (int processes : {1, 2}) {
      const Outcome o = RunCluster(self, setup_for(absl::StrCat("w4-p", processes, "-r", round), 0),
                                   processes, dir);
      check(absl::StrCat("cluster, ", processes, " process(es)"), o, reference);
      (processes == 1 ? one : two).Add(o);
    }
  }
  absl::StatusOr<std::vector<kafka::testing::ReadMessage>> repartitioned =
      kafka::testing::ReadTopic(brokers, repartition_topic, tasks, /*read_committed=*/false,
                                absl::Seconds(60));
  if (!repartitioned.ok()) Die(repartitioned.status().ToString());
  double repartition_bytes = 0;
  for (const auto& message : *repartitioned) {
    repartition_bytes += static_cast<double>(message.value.size() + message.key.size());
  }
  const RecoveryTime recovery = Recovery(self, setup_for("w4-recovery", recovery_delay_us), dir);

  const double n = static_cast<double>(flags.events);
  std::vector<BenchResult> results;
  auto add = [&](const char* variant, int processes, const Best& best) {
    results.push_back(BenchResult{"weir",
                                  variant,
                                  tasks,
                                  n / best.best.seconds,
                                  best.best.seconds,
                                  {{"processes", static_cast<double>(processes)},
                                   {"processing_events_per_sec", n / best.best.processing_seconds},
                                   {"cpu_seconds", best.best.cpu_seconds},
                                   {"events_per_cpu_sec", n / best.best.cpu_seconds}}});
  };
  add("local", 1, local);
  add("cluster", 1, one);
  add("cluster", 2, two);
  std::printf("  %-8s %-9s %12s %8s %18s %8s %14s\n", "mode", "processes", "events/s", "x local",
              "processing ev/s", "x local", "events/cpu-s");
  for (BenchResult& r : results) {
    const double vs_local = r.events_per_sec / results[0].events_per_sec;
    const double processing_vs = r.fields[1].second / results[0].fields[1].second;
    r.fields.push_back({"vs_local", vs_local});
    r.fields.push_back({"processing_vs_local", processing_vs});
    std::printf("  %-8s %-9.0f %12.0f %7.3fx %18.0f %7.3fx %14.0f\n", r.variant.c_str(),
                r.fields[0].second, r.events_per_sec, vs_local, r.fields[1].second, processing_vs,
                r.fields[3].second);
  }
  std::printf("  repartition topic %s: %zu messages, %.1f MiB (%.0f bytes per event)\n",
              repartition_topic.c_str(), repartitioned->size(), repartition_bytes / (1 << 20),
              repartition_bytes / n);
  std::printf(
      "  recovery: kill -9 of one of two processes -> first record of its task in the survivor "
      "after %.2f s (session timeout %d s); the survivor's takeover, from the group's "
      "assignment to the task running: %lld ms\n",
      recovery.seconds, session_timeout_s, static_cast<long long>(recovery.takeover_ms));
  results.push_back(
      BenchResult{"weir",
                  "recovery",
                  tasks,
                  0,
                  recovery.seconds,
                  {{"session_timeout_seconds", static_cast<double>(session_timeout_s)},
                   {"takeover_ms", static_cast<double>(recovery.takeover_ms)},
                   {"repartition_bytes", repartition_bytes},
                   {"repartition_messages", static_cast<double>(repartitioned->size())}}});
  WriteJson(flags.json, "W4", flags.events, results);
  std::filesystem::remove_all(dir);
  return recovery.seconds < 0 ? 1 : 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
