// Crash tests of exactly-once: a child process (this binary, re-executed with
// --crash-child) runs a keyed count over a throttled deterministic source with
// checkpoints every 200 ms into a TransactionalFileSink. The parent kill -9s
// it at random moments and while a checkpoint is being uploaded, restarts it
// (in one variant at another parallelism each time), lets the last run finish
// and checks that the committed output is exactly every (key, 1..count):
// nothing lost, nothing twice. Against a local directory and against S3
// (s3rver on a free loopback port).
//
// Kills during an upload are observed from outside: the coordinator writes a
// checkpoint's state files into <local_dir>/chk-<id>/, uploads them to
// <job>/shared/ and writes <job>/chk-<id>/_manifest last. The parent polls
// the staging directory; when every worker's state file is there it freezes
// the child (SIGSTOP), confirms under the freeze that k of those files (k
// drawn from 1..workers) are already in storage and the manifest is not, and
// only then sends SIGKILL; otherwise it lets the child go on (SIGCONT).
//
// One more test kills the child between a checkpoint's manifest and the
// sink's commits when the checkpoint before it had failed (storage outage).
//
// The kill timings come from a fixed seed (WEIR_CRASH_SEED overrides it) and
// are printed, with what each run restored, as "[crash] ..." lines.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/unit/checkpoint/count_job.h"
#include "tests/unit/checkpoint/s3rver_fixture.h"
#include "weir/checkpoint.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

namespace fs = std::filesystem;

using count_job::Count;  // (key, running count)
using count_job::CountPerKey;

// The job. Four splits at 1000 records/s each: an uninterrupted run reads its
// 48000 records in about 12 s, so the parent has time for its kills.
constexpr char kChildFlag[] = "--crash-child";
constexpr char kJobName[] = "crash-count";
// What a child logs once its job runs (restore done).
constexpr char kStartedLine[] = "job started";
constexpr int kKeys = 2000;
constexpr int kSplits = 4;
constexpr int kRecordsPerSplit = 12000;
constexpr double kRecordsPerSecond = 1000;
constexpr absl::Duration kCheckpointInterval = absl::Milliseconds(200);

constexpr int kKills = 12;
// At least this many of the kills must land while a checkpoint's files are
// being uploaded (some uploaded, no manifest yet).
constexpr int kMinUploadKills = 3;
constexpr uint64_t kSeed = 20240917;
constexpr absl::Duration kRunTimeout = absl::Seconds(60);

std::vector<int64_t> Input() {
  std::vector<int64_t> values(kSplits * kRecordsPerSplit);
  for (size_t idx = 0; idx < values.size(); ++idx) values[idx] = (idx * 7919) % kKeys;
  return values;
}

// Every (key, 1..count of key), sorted.
std::vector<Count> Expected() {
  std::map<int64_t, int64_t> totals;
  for (int64_t v : Input()) ++totals[v];
  std::vector<Count> out;
  for (auto [key, total] : totals) {
    for (int64_t n = 1; n <= total; ++n) out.push_back({key, n});
  }
  return out;
}

// What the parent tells a child, as --name=value flags.
struct ChildConfig {
  std::string storage;      // file:///... or s3://bucket/prefix
  std::string s3_endpoint;  // for s3:// storage
  std::string local_dir;    // CheckpointOptions.local_dir
  std::string sink_dir;     // TransactionalFileSink's directory
  int parallelism = 1;
  // Reads at kRecordsPerSecond per split; false: as fast as it can.
  bool throttled = true;

  std::vector<std::string> ToArgs() const {
    return {kChildFlag,
            "--storage=" + storage,
            "--s3-endpoint=" + s3_endpoint,
            "--local-dir=" + local_dir,
            "--sink-dir=" + sink_dir,
            absl::StrCat("--parallelism=", parallelism),
            absl::StrCat("--throttled=", throttled ? 1 : 0)};
  }

  static std::optional<ChildConfig> FromArgs(int argc, char** argv) {
    ChildConfig config;
    for (int idx = 2; idx < argc; ++idx) {
      absl::string_view arg = argv[idx];
      auto take = [&arg](absl::string_view name, std::string& out) {
        if (!absl::ConsumePrefix(&arg, name)) return false;
        out = std::string(arg);
        return true;
      };
      std::string parallelism;
      std::string throttled;
      if (take("--storage=", config.storage) || take("--s3-endpoint=", config.s3_endpoint) ||
          take("--local-dir=", config.local_dir) || take("--sink-dir=", config.sink_dir)) {
        continue;
      }
      if (take("--parallelism=", parallelism) && absl::SimpleAtoi(parallelism, &config.parallelism))
        continue;
      if (take("--throttled=", throttled)) {
        config.throttled = throttled != "0";
        continue;
      }
      std::fprintf(stderr, "child: unknown argument %s\n", argv[idx]);
      return std::nullopt;
    }
    return config;
  }
};

S3Options S3OptionsFor(const std::string& endpoint) {
  S3Options s3;
  s3.endpoint = endpoint;
  s3.region = "us-east-1";
  s3.access_key_id = testing::S3rver::kAccessKeyId;
  s3.secret_access_key = testing::S3rver::kSecretAccessKey;
  s3.path_style = true;
  return s3;
}

// The child: builds the job and runs it to the end (restoring first).
int RunChild(const ChildConfig& config) {
  PipelineOptions options;
  options.parallelism = config.parallelism;
  options.job_name = kJobName;
  options.checkpoints.interval = kCheckpointInterval;
  options.checkpoints.storage_uri = config.storage;
  options.checkpoints.local_dir = config.local_dir;
  if (!config.s3_endpoint.empty()) options.checkpoints.s3 = S3OptionsFor(config.s3_endpoint);
  Pipeline pipeline(options);
  testing::VectorSourceOptions source_options;
  source_options.splits = kSplits;
  source_options.records_per_poll = 64;
  source_options.records_per_second = config.throttled ? kRecordsPerSecond : 0;
  pipeline.Source(testing::VectorSource<int64_t>::Create(Input(), source_options))
      .Uid("numbers")
      .KeyBy([](int64_t v) { return v; })
      .Process(CountPerKey{})
      .Uid("count")
      .Sink(std::make_shared<testing::TransactionalFileSink<Count>>(config.sink_dir))
      .Uid("out");
  const absl::Time start = absl::Now();
  absl::StatusOr<JobHandle> job = pipeline.Start();  // restores first
  if (!job.ok()) {
    std::fprintf(stderr, "child: cannot start: %s\n", job.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "child: %s after %s\n", kStartedLine,
               absl::FormatDuration(absl::Now() - start).c_str());
  absl::Status status = job->Wait();
  std::fprintf(stderr, "child: finished after %s: %s\n",
               absl::FormatDuration(absl::Now() - start).c_str(), status.ToString().c_str());
  return status.ok() ? 0 : 1;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

int64_t MillisSince(absl::Time start) { return absl::ToInt64Milliseconds(absl::Now() - start); }

// How a child run ended.
struct KillRecord {
  int run = 0;
  int parallelism = 0;
  int64_t after_ms = 0;  // since the child was started
  bool during_upload = false;
  int64_t checkpoint = 0;  // in flight at the kill (0: none seen)
  int staged_files = 0;    // its state files in the staging directory
  int uploaded_files = 0;  // of those, already in storage
  int64_t newest_manifest = 0;

  std::string Describe() const {
    std::string what =
        during_upload
            ? absl::StrFormat(
                  "during the upload of checkpoint %d (%d of %d state files stored, "
                  "no manifest)",
                  checkpoint, uploaded_files, staged_files)
            : absl::StrFormat("at a random moment (%s)",
                              checkpoint > 0 ? absl::StrCat("checkpoint ", checkpoint, " in flight")
                                             : std::string("no checkpoint in flight"));
    return absl::StrFormat("run %2d (parallelism %d): SIGKILL after %4d ms %s; newest manifest %d",
                           run, parallelism, after_ms, what, newest_manifest);
  }
};

// Starts children, kills them and checks what they left behind.
class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            absl::StrCat("weir-crash-test-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "logs");
  }
  void TearDown() override {
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    if (!HasFailure()) fs::remove_all(root_);
  }

  // Storage of the checkpoints, and the parent's own view of it.
  void UseStorage(const std::string& uri, const std::string& s3_endpoint = "") {
    storage_uri_ = uri;
    s3_endpoint_ = s3_endpoint;
    absl::StatusOr<std::unique_ptr<CheckpointStorage>> storage =
        CheckpointStorage::Open(uri, s3_endpoint.empty() ? S3Options() : S3OptionsFor(s3_endpoint));
    ASSERT_TRUE(storage.ok()) << storage.status();
    storage_ = *std::move(storage);
  }

  // Kills children kKills times (even kills at a random moment, odd ones
  // during an upload; timings drawn from `seed`), cycling through
  // `parallelism`, then runs the job to the end and checks the committed
  // output and what is left in storage.
  void CrashRestartAndVerify(const std::vector<int>& parallelism, uint64_t seed) {
    // WEIR_CRASH_SEED=<n> replays other timings (n + the test's offset).
    if (const char* base = std::getenv("WEIR_CRASH_SEED"); base != nullptr) {
      uint64_t value = 0;
      ASSERT_TRUE(absl::SimpleAtoi(base, &value)) << "WEIR_CRASH_SEED=" << base;
      seed = seed - kSeed + value;
    }
    absl::PrintF("[crash] storage %s, parallelism %s, seed %d\n", storage_uri_,
                 absl::StrJoin(parallelism, " -> "), seed);
    std::mt19937_64 rng(seed);
    std::vector<KillRecord> kills;
    const absl::Time test_start = absl::Now();
    int run = 0;
    for (; run < kKills; ++run) {
      const int p = parallelism[run % parallelism.size()];
      ASSERT_NO_FATAL_FAILURE(Spawn(run, p));
      KillRecord record;
      if (run % 2 == 0) {
        ASSERT_NO_FATAL_FAILURE(
            KillAt(absl::Milliseconds(std::uniform_int_distribution<int>(20, 1500)(rng)), record));
      } else {
        ASSERT_NO_FATAL_FAILURE(
            KillDuringUpload(absl::Milliseconds(std::uniform_int_distribution<int>(200, 1200)(rng)),
                             std::uniform_int_distribution<int>(1, p)(rng), record));
      }
      record.run = run;
      record.parallelism = p;
      std::printf("[crash] %s%s\n", record.Describe().c_str(), Restored(run).c_str());
      std::fflush(stdout);
      kills.push_back(record);
    }

    // The last run reads the rest, unthrottled, and ends with a final checkpoint.
    const int p = parallelism[run % parallelism.size()];
    ASSERT_NO_FATAL_FAILURE(Spawn(run, p, /*throttled=*/false));
    ASSERT_NO_FATAL_FAILURE(WaitForSuccess(run));
    absl::PrintF("[crash] run %2d (parallelism %d): ran to the end in %d ms%s\n", run, p,
                 MillisSince(started_), Restored(run).c_str());

    const int upload_kills = static_cast<int>(std::count_if(
        kills.begin(), kills.end(), [](const KillRecord& k) { return k.during_upload; }));
    absl::PrintF("[crash] %d kills, %d of them during an upload; %d ms in all\n", kills.size(),
                 upload_kills, MillisSince(test_start));
    std::fflush(stdout);
    EXPECT_GE(upload_kills, kMinUploadKills);
    ExpectExactlyOnce();

    // A restart after the end restores the final checkpoint and commits nothing twice.
    ++run;
    ASSERT_NO_FATAL_FAILURE(Spawn(run, parallelism[run % parallelism.size()]));
    ASSERT_NO_FATAL_FAILURE(WaitForSuccess(run));
    ExpectExactlyOnce();

    // Retention removed what the killed runs left behind: the manifests of
    // older checkpoints and the files uploaded for checkpoints that never
    // completed. (Each checkpoint has one state file per worker.)
    constexpr int kRetained = 3;  // CheckpointOptions.retained's default
    const int max_parallelism = *std::max_element(parallelism.begin(), parallelism.end());
    EXPECT_LE(StoredPaths("/chk-").size(), kRetained);
    EXPECT_LE(StoredPaths("/shared/").size(), kRetained * max_parallelism);
  }

  // A checkpoint fails after the sink pre-committed its records (the local
  // storage is briefly unusable: its shared/ folder replaced by a file); the
  // next checkpoint completes; the child is killed after that checkpoint's
  // manifest is written but before the sink committed the failed
  // checkpoint's records. The restarted job must commit them: the completed
  // checkpoint covers them (its source positions are past them). Then the
  // job runs to the end and the output is checked.
  void KillAfterAFailedCheckpoint() {
    const fs::path job_dir = root_ / "checkpoints" / kJobName;
    const fs::path shared = job_dir / "shared";
    const fs::path away = job_dir / "shared.away";
    constexpr int kParallelism = 2;
    ASSERT_NO_FATAL_FAILURE(Spawn(0, kParallelism));
    bool killed = false;
    for (int attempt = 0; attempt < 10 && !killed; ++attempt) {
      ASSERT_NO_FATAL_FAILURE(WaitFor([&] { return fs::exists(shared); }));
      const size_t failures = FailedCheckpoints(0).size();
      ASSERT_NO_FATAL_FAILURE(Freeze());
      fs::rename(shared, away);
      std::ofstream(shared) << "storage outage";
      ASSERT_NO_FATAL_FAILURE(Thaw());
      ASSERT_NO_FATAL_FAILURE(WaitFor([&] { return FailedCheckpoints(0).size() > failures; }));
      ASSERT_NO_FATAL_FAILURE(Freeze());
      fs::remove(shared);
      fs::rename(away, shared);
      std::vector<int64_t> failed = FailedCheckpoints(0);
      failed.erase(failed.begin(), failed.begin() + static_cast<ptrdiff_t>(failures));
      ASSERT_NO_FATAL_FAILURE(Thaw());

      // The next checkpoint completes: kill before the sink commits the failed ones.
      const int64_t next = failed.back() + 1;
      const fs::path manifest = job_dir / absl::StrFormat("chk-%020d/_manifest", next);
      ASSERT_NO_FATAL_FAILURE(WaitFor([&] { return fs::exists(manifest); }));
      ASSERT_NO_FATAL_FAILURE(Freeze());
      int committed = 0;
      for (const auto& entry : fs::directory_iterator(root_ / "out" / "committed")) {
        for (int64_t id : failed) {
          committed +=
              absl::StartsWith(entry.path().filename().string(), absl::StrFormat("%020d-", id));
        }
      }
      const int64_t after_ms = MillisSince(started_);
      const int expected = kParallelism * static_cast<int>(failed.size());
      killed = committed < expected;
      if (killed) {
        ASSERT_NO_FATAL_FAILURE(KillNow(0));
      } else {
        ASSERT_NO_FATAL_FAILURE(Thaw());
      }
      absl::PrintF(
          "[crash] checkpoint(s) %s failed (storage outage), checkpoint %d complete, %d of %d of "
          "the failed ones' sink files committed: %s after %d ms\n",
          absl::StrJoin(failed, ", "), next, committed, expected,
          killed ? "SIGKILL" : "too late, again", after_ms);
    }
    ASSERT_TRUE(killed) << "never caught the child between a manifest and its commits";
    ASSERT_NO_FATAL_FAILURE(Spawn(1, kParallelism, /*throttled=*/false));
    ASSERT_NO_FATAL_FAILURE(WaitForSuccess(1));
    absl::PrintF("[crash] run 1 ran to the end%s\n", Restored(1));
    ExpectExactlyOnce();
  }

  fs::path root_;

 private:
  // Waits (up to 5 s) until `done()`, failing if the child ends.
  template <class F>
  void WaitFor(F done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!done()) {
      ASSERT_NO_FATAL_FAILURE(ExpectAlive(current_run_));
      ASSERT_LT(absl::Now(), deadline) << "timed out; the child's output:\n"
                                       << ReadFile(LogPath(current_run_));
      absl::SleepFor(absl::Microseconds(20));
    }
  }

  // The checkpoints the run logged as failed, in order.
  std::vector<int64_t> FailedCheckpoints(int run) const {
    std::vector<int64_t> ids;
    std::istringstream log(ReadFile(LogPath(run)));
    for (std::string line; std::getline(log, line);) {
      absl::string_view rest = line;
      int64_t id = 0;
      if (!absl::ConsumePrefix(&rest, "weir: checkpoint ") || !absl::StrContains(rest, " failed"))
        continue;
      if (absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &id)) ids.push_back(id);
    }
    return ids;
  }

  fs::path LogPath(int run) const { return root_ / "logs" / absl::StrCat("run-", run, ".log"); }
  fs::path LocalDir(int run) const { return root_ / "local" / absl::StrCat("run-", run); }

  // Starts run `run` of the job as a child process, its output going to LogPath(run).
  void Spawn(int run, int parallelism, bool throttled = true) {
    ChildConfig config;
    config.storage = storage_uri_;
    config.s3_endpoint = s3_endpoint_;
    // A fresh scratch directory per run, so the staging directories the
    // parent watches are this run's.
    config.local_dir = LocalDir(run).string();
    config.sink_dir = (root_ / "out").string();
    config.parallelism = parallelism;
    config.throttled = throttled;
    std::vector<std::string> args = config.ToArgs();
    args.insert(args.begin(), "/proc/self/exe");
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string log = LogPath(run).string();
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(log_fd, 0) << "open " << log << ": " << std::strerror(errno);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0) << "fork: " << std::strerror(errno);
    if (pid == 0) {
      // Only async-signal-safe calls until exec; die with the test.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    child_ = pid;
    started_ = absl::Now();
    current_run_ = run;
    current_parallelism_ = parallelism;
  }

  // Fails (with the child's output) if the child has exited.
  void ExpectAlive(int run) {
    int status = 0;
    const pid_t waited = ::waitpid(child_, &status, WNOHANG);
    if (waited == 0) return;
    child_ = 0;
    FAIL() << "run " << run << " ended by itself after " << MillisSince(started_) << " ms (status "
           << status << ", exit code " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1)
           << "); a kill was due. Its output:\n"
           << ReadFile(LogPath(run));
  }

  // SIGSTOP: every thread of the child stops where it is, so what the parent
  // sees in storage until Thaw() is what the child had done.
  void Freeze() {
    ASSERT_EQ(::kill(child_, SIGSTOP), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(::waitpid(child_, &status, WUNTRACED), child_);
    if (!WIFSTOPPED(status)) {
      child_ = 0;
      FAIL() << "run " << current_run_ << " ended (status " << status
             << ") while being frozen; its output:\n"
             << ReadFile(LogPath(current_run_));
    }
  }
  void Thaw() { ASSERT_EQ(::kill(child_, SIGCONT), 0) << std::strerror(errno); }

  void KillNow(int run) {
    ASSERT_EQ(::kill(child_, SIGKILL), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(::waitpid(child_, &status, 0), child_);
    child_ = 0;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "run " << run << " ended with status " << status << "; its output:\n"
        << ReadFile(LogPath(run));
  }

  // SIGKILL after `delay`.
  void KillAt(absl::Duration delay, KillRecord& record) {
    const int run = CurrentRun();
    while (absl::Now() - started_ < delay) {
      ASSERT_NO_FATAL_FAILURE(ExpectAlive(run));
      absl::SleepFor(absl::Milliseconds(2));
    }
    ASSERT_NO_FATAL_FAILURE(ExpectAlive(run));
    ASSERT_NO_FATAL_FAILURE(Freeze());
    record.after_ms = MillisSince(started_);
    if (std::optional<Staged> staged = FindStaged(LocalDir(run), 0)) {
      record.checkpoint = staged->checkpoint;
    }
    ASSERT_NO_FATAL_FAILURE(KillNow(run));
    record.newest_manifest = NewestManifest();
  }

  // After `delay`, waits for the next checkpoint whose state files are all
  // staged, and kills the child once `uploaded_files` of them (or more) are
  // stored and its manifest is not.
  void KillDuringUpload(absl::Duration delay, int uploaded_files, KillRecord& record) {
    const int run = CurrentRun();
    const int parallelism = CurrentParallelism();
    while (absl::Now() - started_ < delay) {
      ASSERT_NO_FATAL_FAILURE(ExpectAlive(run));
      absl::SleepFor(absl::Milliseconds(2));
    }
    const absl::Time give_up = absl::Now() + absl::Seconds(4);
    int freezes = 0;
    while (absl::Now() < give_up) {
      ASSERT_NO_FATAL_FAILURE(ExpectAlive(run));
      // Cheap, unfrozen check first: every worker's state file is staged.
      if (!FindStaged(LocalDir(run), parallelism)) {
        absl::SleepFor(absl::Microseconds(100));
        continue;
      }
      // Freeze the child and look again: some files stored, no manifest.
      ASSERT_NO_FATAL_FAILURE(Freeze());
      ++freezes;
      const int64_t after_ms = MillisSince(started_);
      std::optional<Staged> staged = FindStaged(LocalDir(run), parallelism);
      int uploaded = 0;
      bool manifest = true;
      if (staged) {
        manifest = ManifestExists(staged->checkpoint);
        uploaded = StoredCount(staged->files);
      }
      if (staged && !manifest && uploaded >= uploaded_files) {
        ASSERT_NO_FATAL_FAILURE(KillNow(run));
        // Still no manifest: the checkpoint never completed.
        EXPECT_FALSE(ManifestExists(staged->checkpoint));
        record.during_upload = true;
        record.after_ms = after_ms;
        record.checkpoint = staged->checkpoint;
        record.staged_files = static_cast<int>(staged->files.size());
        record.uploaded_files = uploaded;
        record.newest_manifest = NewestManifest();
        return;
      }
      ASSERT_NO_FATAL_FAILURE(Thaw());
      // Not yet uploading, or already done: look again soon, or at the next checkpoint.
      absl::SleepFor(absl::Microseconds(manifest ? 2000 : 50));
    }
    std::printf("[crash] run %d: no upload caught in 4 s (%d freezes); killing anyway\n", run,
                freezes);
    ASSERT_NO_FATAL_FAILURE(KillAt(absl::ZeroDuration(), record));
  }

  void WaitForSuccess(int run) {
    int status = 0;
    const absl::Time deadline = absl::Now() + kRunTimeout;
    pid_t waited = 0;
    while ((waited = ::waitpid(child_, &status, WNOHANG)) == 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (waited == 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, &status, 0);
      child_ = 0;
      FAIL() << "run " << run << " did not finish within " << kRunTimeout << "; its output:\n"
             << ReadFile(LogPath(run));
    }
    child_ = 0;
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "run " << run << " failed (status " << status << "); its output:\n"
        << ReadFile(LogPath(run));
  }

  // The checkpoint the run restored, from its log.
  std::string Restored(int run) const {
    const std::string log = ReadFile(LogPath(run));
    const size_t found = log.find("from checkpoint ");
    if (found == std::string::npos) {
      return absl::StrContains(log, kStartedLine) ? "; started empty"
                                                  : "; killed before the job started (restoring)";
    }
    const size_t start = found + std::strlen("from checkpoint ");
    return absl::StrCat("; restored checkpoint ",
                        log.substr(start, log.find_first_not_of("0123456789", start) - start));
  }

  void ExpectExactlyOnce() {
    absl::StatusOr<std::vector<Count>> read =
        testing::TransactionalFileSink<Count>::ReadCommitted((root_ / "out").string());
    ASSERT_TRUE(read.ok()) << read.status();
    std::vector<Count> committed = *std::move(read);
    std::sort(committed.begin(), committed.end());
    const std::vector<Count> expected = Expected();
    if (committed == expected) return;
    std::vector<Count> missing;
    std::vector<Count> extra;
    std::set_difference(expected.begin(), expected.end(), committed.begin(), committed.end(),
                        std::back_inserter(missing));
    std::set_difference(committed.begin(), committed.end(), expected.begin(), expected.end(),
                        std::back_inserter(extra));
    auto first = [](const std::vector<Count>& counts) {
      std::vector<std::string> shown;
      for (size_t idx = 0; idx < std::min<size_t>(counts.size(), 10); ++idx) {
        shown.push_back(absl::StrCat("(", counts[idx].first, ", ", counts[idx].second, ")"));
      }
      return absl::StrJoin(shown, " ");
    };
    ADD_FAILURE() << "committed " << committed.size() << " records, expected " << expected.size()
                  << "; " << missing.size() << " missing (" << first(missing) << "), "
                  << extra.size() << " extra or duplicated (" << first(extra) << ")";
  }

  // A checkpoint being taken: its id and the state files staged for it.
  struct Staged {
    int64_t checkpoint = 0;
    std::vector<std::string> files;
  };

  // The newest staging directory <local_dir>/chk-<id> holding at least
  // `min_files` state files.
  static std::optional<Staged> FindStaged(const fs::path& local_dir, int min_files) {
    std::optional<Staged> found;
    std::error_code ec;
    for (fs::directory_iterator it(local_dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      int64_t id = 0;
      if (!absl::StartsWith(name, "chk-") || !absl::SimpleAtoi(name.substr(4), &id)) continue;
      if (found && found->checkpoint > id) continue;
      Staged staged{id, {}};
      std::error_code inner;
      for (fs::directory_iterator file(it->path(), inner), file_end; !inner && file != file_end;
           file.increment(inner)) {
        if (file->path().extension() == ".sst") staged.files.push_back(file->path().filename());
      }
      if (static_cast<int>(staged.files.size()) >= std::max(min_files, 1) || min_files == 0) {
        found = std::move(staged);
      }
    }
    return found;
  }

  bool ManifestExists(int64_t checkpoint) {
    return storage_->Get(absl::StrFormat("%s/chk-%020d/_manifest", kJobName, checkpoint)).ok();
  }

  int64_t NewestManifest() {
    absl::StatusOr<std::vector<std::string>> paths =
        storage_->List(absl::StrCat(kJobName, "/chk-"));
    int64_t newest = 0;
    if (!paths.ok()) return newest;
    for (const std::string& path : *paths) {
      int64_t id = 0;
      absl::string_view digits(path);
      if (absl::ConsumePrefix(&digits, absl::StrCat(kJobName, "/chk-")) &&
          absl::ConsumeSuffix(&digits, "/_manifest") && absl::SimpleAtoi(digits, &id)) {
        newest = std::max(newest, id);
      }
    }
    return newest;
  }

  // The paths in storage under the job's folder + `prefix`.
  std::vector<std::string> StoredPaths(const std::string& prefix) {
    absl::StatusOr<std::vector<std::string>> stored =
        storage_->List(absl::StrCat(kJobName, prefix));
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? *std::move(stored) : std::vector<std::string>();
  }

  // How many of `files` are in the storage's shared folder.
  int StoredCount(const std::vector<std::string>& files) {
    const std::vector<std::string> stored = StoredPaths("/shared/");
    std::set<std::string> names(stored.begin(), stored.end());
    return static_cast<int>(std::count_if(files.begin(), files.end(), [&](const std::string& f) {
      return names.contains(absl::StrCat(kJobName, "/shared/", f));
    }));
  }

  int CurrentRun() const { return current_run_; }
  int CurrentParallelism() const { return current_parallelism_; }

  std::string storage_uri_;
  std::string s3_endpoint_;
  std::unique_ptr<CheckpointStorage> storage_;
  pid_t child_ = 0;
  absl::Time started_;
  int current_run_ = 0;
  int current_parallelism_ = 1;
};

TEST_F(CrashTest, LocalStorageKillsLoseAndDuplicateNothing) {
  ASSERT_NO_FATAL_FAILURE(UseStorage("file://" + (root_ / "checkpoints").string()));
  CrashRestartAndVerify({2}, kSeed);
}

TEST_F(CrashTest, LocalStorageKillsAndRescalingLoseAndDuplicateNothing) {
  ASSERT_NO_FATAL_FAILURE(UseStorage("file://" + (root_ / "checkpoints").string()));
  CrashRestartAndVerify({2, 1, 4}, kSeed + 1);
}

TEST_F(CrashTest, KillBeforeTheCommitsAfterAFailedCheckpointLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(UseStorage("file://" + (root_ / "checkpoints").string()));
  KillAfterAFailedCheckpoint();
}

TEST_F(CrashTest, S3KillsLoseAndDuplicateNothing) {
  constexpr char kBucket[] = "weir-crash";
  absl::StatusOr<std::unique_ptr<testing::S3rver>> server = testing::S3rver::Start({kBucket});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_NO_FATAL_FAILURE(
      UseStorage(absl::StrCat("s3://", kBucket, "/crash"), (*server)->endpoint()));
  CrashRestartAndVerify({2}, kSeed + 2);
}

}  // namespace
}  // namespace weir

// With --crash-child this binary is the job under test; otherwise it runs the
// tests. (Defining main here keeps GTest::gtest_main's out of the link.)
int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == weir::kChildFlag) {
    std::optional<weir::ChildConfig> config = weir::ChildConfig::FromArgs(argc, argv);
    return config ? weir::RunChild(*config) : 2;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
