// engagement-generator: produces the engagement tables' Debezium change
// events to Kafka (and optionally PostgreSQL) at a steady rate. See
// `engagement-generator --help`, README.md ("Generator") and generator_app.h.

#include <malloc.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "examples/engagement/generator_app.h"

namespace {

std::atomic<int> g_stop_requests{0};

void OnSignal(int) { g_stop_requests.fetch_add(1); }

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<engagement::GeneratorAppOptions> options =
      engagement::ParseGeneratorArgs(args, engagement::SystemEnvironment);
  if (!options.ok()) {
    std::fprintf(stderr, "engagement-generator: %s\n(see engagement-generator --help)\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(engagement::GeneratorUsage().c_str(), stdout);
    return 0;
  }

  // librdkafka frees each message's copy on its broker thread, so at full
  // speed glibc keeps shrinking and regrowing the worker's heap (sysmalloc
  // and page faults were ~6% of the worker thread in profiles of --rate=max):
  // keep up to 256 MiB of free heap instead.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 64 << 20);

  // First signal: stop and flush; second: abandon.
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::Status status = engagement::RunGenerator(*options, g_stop_requests, stderr);
  if (!status.ok()) {
    std::fprintf(stderr, "engagement-generator: error: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
