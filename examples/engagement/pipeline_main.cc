// engagement-pipeline: see pipeline_app.h and examples/engagement/README.md.
// Stops with a final checkpoint on SIGINT or SIGTERM.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "examples/engagement/pipeline_app.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  // --print-cluster-topics: the topics a cluster-mode job needs, one
  // "topic:partitions" per line (for brokers where they are made by hand).
  bool print_topics = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::string_view(argv[i]) == "--print-cluster-topics") {
      print_topics = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  argc = static_cast<int>(args.size());
  argv = args.data();
  bool help = false;
  absl::StatusOr<engagement::PipelineConfig> config = engagement::ParseConfig(
      argc, argv, [](const char* name) { return std::getenv(name); }, &help);
  if (help) {
    std::fputs(engagement::Usage(argv[0]).c_str(), stdout);
    std::fputs(
        "  --print-cluster-topics  print the topics of the cluster-mode job (topic:partitions, "
        "with --cluster-job-id) and exit\n",
        stdout);
    return 0;
  }
  if (!config.ok()) {
    std::fprintf(stderr, "engagement-pipeline: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (print_topics) {
    absl::StatusOr<std::vector<std::pair<std::string, int>>> topics =
        engagement::ClusterTopicsFor(*config);
    if (!topics.ok()) {
      std::fprintf(stderr, "engagement-pipeline: %s\n", topics.status().ToString().c_str());
      return 2;
    }
    for (const auto& [topic, partitions] : *topics)
      std::printf("%s:%d\n", topic.c_str(), partitions);
    return 0;
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
