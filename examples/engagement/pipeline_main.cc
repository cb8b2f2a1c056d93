// engagement-pipeline: see pipeline_app.h and examples/engagement/README.md.
// Stops with a final checkpoint on SIGINT or SIGTERM.

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "examples/engagement/pipeline_app.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  bool help = false;
  absl::StatusOr<engagement::PipelineConfig> config = engagement::ParseConfig(
      argc, argv, [](const char* name) { return std::getenv(name); }, &help);
  if (help) {
    std::fputs(engagement::Usage(argv[0]).c_str(), stdout);
    return 0;
  }
  if (!config.ok()) {
    std::fprintf(stderr, "engagement-pipeline: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  absl::Status status = engagement::RunPipeline(*config, g_stop);
  if (!status.ok()) {
    std::fprintf(stderr, "engagement-pipeline: failed: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
