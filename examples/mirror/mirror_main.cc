// weir-mirror: see mirror_app.h and examples/mirror/README.md. Stops with a
// final checkpoint on SIGINT or SIGTERM.

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "examples/mirror/mirror_app.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  bool help = false;
  absl::StatusOr<mirror_app::MirrorConfig> config = mirror_app::ParseConfig(
      argc, argv, [](const char* name) { return std::getenv(name); }, &help);
  if (help) {
    std::fputs(mirror_app::Usage(argv[0]).c_str(), stdout);
    return 0;
  }
  if (!config.ok()) {
    std::fprintf(stderr, "weir-mirror: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (!config->duckdb_query.empty()) {
    absl::Status status = mirror_app::QueryDuckDb(*config, stdout);
    if (!status.ok()) {
      std::fprintf(stderr, "weir-mirror: %s\n", status.ToString().c_str());
      return 1;
    }
    return 0;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  absl::Status status = mirror_app::RunMirror(*config, g_stop);
  if (!status.ok()) {
    std::fprintf(stderr, "weir-mirror: failed: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
