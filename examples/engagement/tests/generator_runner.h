// Test helpers for the engagement-generator program: run the binary as a
// child process with a chosen environment (through /usr/bin/env, so the
// test's own environment stays untouched), and compute the records a run
// must have produced from the same arguments with the ChangeGenerator.
//
// Example:
//   GeneratorRun run = RunGeneratorProgram({"--brokers=" + bootstrap, "--total=100"},
//                                          {{"GENERATION_RATE", "max"}});
//   ASSERT_EQ(run.exit_code, 0) << run.log;
//   std::vector<GeneratedRecord> expected = ExpectedRecords({"--total=100", ...});

#ifndef WEIR_EXAMPLES_ENGAGEMENT_TESTS_GENERATOR_RUNNER_H_
#define WEIR_EXAMPLES_ENGAGEMENT_TESTS_GENERATOR_RUNNER_H_

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "examples/engagement/generator.h"
#include "examples/engagement/generator_app.h"
#include "tests/support/child_process.h"

namespace engagement::testing {

// The variables the generator reads: unset for the child unless given.
inline constexpr const char* kGeneratorVariables[] = {
    "KAFKA_BROKERS", "TOPIC_PREFIX", "GENERATION_RATE",       "BURST_MODE",
    "BURST_COUNT",   "POSTGRES_URL", "BURST_INTERVAL_SECONDS"};

struct GeneratorRun {
  int exit_code = -1;  // -1: killed (timeout) or did not start
  std::string log;     // stdout and stderr
  absl::Duration took;
};

// The program running as a child process (killed when destroyed).
class GeneratorProcess {
 public:
  static absl::StatusOr<std::unique_ptr<GeneratorProcess>> Start(
      const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
    absl::StatusOr<std::string> dir = weir::testing::MakeTempDir("engagement-generator-test");
    if (!dir.ok()) return dir.status();
    std::vector<std::string> argv = {"/usr/bin/env"};
    for (const char* name : kGeneratorVariables) {
      argv.push_back("-u");
      argv.push_back(name);
    }
    for (const auto& [name, value] : env) argv.push_back(absl::StrCat(name, "=", value));
    argv.push_back(ENGAGEMENT_GENERATOR_PATH);
    argv.insert(argv.end(), args.begin(), args.end());
    std::unique_ptr<GeneratorProcess> process(new GeneratorProcess(*dir));
    // env execs the program: the child's pid is the generator's.
    absl::StatusOr<std::unique_ptr<weir::testing::ChildProcess>> child =
        weir::testing::ChildProcess::Spawn(argv, {.log_path = *dir + "/generator.log"});
    if (!child.ok()) return child.status();
    process->child_ = *std::move(child);
    return process;
  }
  ~GeneratorProcess() {
    child_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Signal(int signal) { ::kill(child_->pid(), signal); }
  std::string Log() const { return child_->Log(); }

  // Waits for the exit (kills it after `timeout`).
  GeneratorRun Wait(absl::Duration timeout = absl::Seconds(120)) {
    GeneratorRun run;
    const absl::Time deadline = absl::Now() + timeout;
    while (child_->Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    run.took = absl::Now() - start_;
    if (child_->Running()) {
      child_->Kill();
      run.log = absl::StrCat("(killed after ", absl::FormatDuration(timeout), ")\n");
    } else if (WIFEXITED(child_->exit_status())) {
      run.exit_code = WEXITSTATUS(child_->exit_status());
    }
    absl::StrAppend(&run.log, child_->Log());
    return run;
  }

 private:
  explicit GeneratorProcess(std::string dir) : dir_(std::move(dir)), start_(absl::Now()) {}

  std::string dir_;
  absl::Time start_;
  std::unique_ptr<weir::testing::ChildProcess> child_;
};

inline GeneratorRun RunGeneratorProgram(const std::vector<std::string>& args,
                                        const std::map<std::string, std::string>& env = {},
                                        absl::Duration timeout = absl::Seconds(120)) {
  absl::StatusOr<std::unique_ptr<GeneratorProcess>> process = GeneratorProcess::Start(args, env);
  if (!process.ok()) return {.log = process.status().ToString()};
  return (*process)->Wait(timeout);
}

// The records of a run with `args`, which must fix --start-time (otherwise
// the event times depend on when the program started) and --total.
inline std::vector<GeneratedRecord> ExpectedRecords(const std::vector<std::string>& args,
                                                    const std::map<std::string, std::string>& env) {
  absl::StatusOr<GeneratorAppOptions> options =
      ParseGeneratorArgs(args, [&env](const char* name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      });
  std::vector<GeneratedRecord> records;
  if (!options.ok() || !options->start_ms || options->total <= 0) return records;
  ChangeGenerator generator(ToGeneratorOptions(*options, 0));
  for (int64_t idx = 0; idx < options->total; ++idx) records.push_back(generator.Next());
  return records;
}

}  // namespace engagement::testing

#endif  // WEIR_EXAMPLES_ENGAGEMENT_TESTS_GENERATOR_RUNNER_H_
