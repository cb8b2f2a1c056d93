// The count job of count_job.h as a program, one process of a cluster-mode
// job for cluster_job_test.
//
//   cluster_count_job <brokers> <job_id> <tasks> <checkpoint_dir> <out_dir> [delay_us]
//                     [count|windows]
//
// `delay_us` slows each record down, so that a test's kill lands mid-work.
// `windows` runs the window job instead, which never ends by itself. With
// CLUSTER_COUNT_JOB_LOG=<dir> in the environment, the count job notes every
// id it processes in <dir>/processed-<pid>. CLUSTER_COUNT_JOB_TOPIC=<topic>
// makes either job read <topic> (instead of "events" or "wm").
// CLUSTER_COUNT_JOB_HOLD_FINAL_COMMIT=<dir> makes the count job's sink hold
// its final commit forever, announced in <dir> (HoldFinalCommitSink).
//
// Exits 0 when the whole job ended (every task's input), 1 with the status
// on stderr otherwise. SIGTERM stops this process gracefully (its tasks
// commit a checkpoint and move to the other processes).

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "tests/unit/cluster/count_job.h"
#include "weir/weir.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: cluster_count_job <brokers> <job_id> <tasks> <checkpoint_dir> <out_dir> "
                 "[delay_us] [count|windows]\n");
    return 2;
  }
  weir::PipelineOptions options;
  options.cluster.brokers = argv[1];
  options.cluster.job_id = argv[2];
  if (!absl::SimpleAtoi(argv[3], &options.cluster.tasks)) return 2;
  int64_t delay_us = 0;
  if (argc > 6 && !absl::SimpleAtoi(argv[6], &delay_us)) return 2;
  // CLUSTER_COUNT_JOB_SESSION_TIMEOUT_S: the session timeout (default 6 s).
  int session_timeout_s = 6;
  if (const char* value = std::getenv("CLUSTER_COUNT_JOB_SESSION_TIMEOUT_S"); value != nullptr) {
    if (!absl::SimpleAtoi(value, &session_timeout_s)) return 2;
  }
  options.cluster.session_timeout = absl::Seconds(session_timeout_s);
  options.checkpoints.storage_uri = std::string("file://") + argv[4];
  options.checkpoints.interval = absl::Milliseconds(300);
  // Small batches: with a delay per record, a barrier (and so a give-up)
  // waits for at most a few of them.
  options.batch_size = 32;
  weir::Pipeline pipeline(options);
  const std::string job_kind = argc > 7 ? argv[7] : "count";
  const char* topic = std::getenv("CLUSTER_COUNT_JOB_TOPIC");
  if (job_kind == "windows") {
    weir::cluster_test::BuildWindowJob(pipeline, argv[1], argv[5], delay_us,
                                       topic != nullptr ? topic : "wm");
  } else if (job_kind == "count") {
    std::shared_ptr<weir::cluster_test::ProcessedLog> log;
    if (const char* dir = std::getenv("CLUSTER_COUNT_JOB_LOG"); dir != nullptr) {
      log = std::make_shared<weir::cluster_test::ProcessedLog>(std::string(dir) + "/processed-" +
                                                               std::to_string(getpid()));
    }
    const char* hold = std::getenv("CLUSTER_COUNT_JOB_HOLD_FINAL_COMMIT");
    weir::cluster_test::BuildCountJob(pipeline, argv[1], argv[5], delay_us, std::move(log),
                                      topic != nullptr ? topic : "events",
                                      hold != nullptr ? hold : "");
  } else {
    return 2;
  }
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  if (!job.ok()) {
    std::fprintf(stderr, "start: %s\n", job.status().ToString().c_str());
    return 1;
  }
  std::signal(SIGTERM, OnSignal);
  while (!job->done()) {
    if (g_stop) {
      job->Stop();
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::Status status = job->Wait();
  if (!status.ok()) {
    std::fprintf(stderr, "job: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
