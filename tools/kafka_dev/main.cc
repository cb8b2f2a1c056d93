// weir-kafka-dev: a Kafka broker on loopback for development, tests and
// benchmarks, hosted by librdkafka's mock cluster (the real Kafka protocol
// over TCP on 127.0.0.1).
//
//   weir-kafka-dev [--brokers=N] [topic:partitions ...]
//
// The first stdout line is the bootstrap address (flushed at once, so a
// parent process can read it); then the retention limit of the mock cluster
// and the topics created. Runs until SIGINT or SIGTERM.
//
// Example:
//   $ weir-kafka-dev events:32 dlq:1
//   127.0.0.1:39235
//   note: librdkafka's mock cluster keeps only about the last 5 MiB ...

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "lib/connectors/kafka/mock_broker.h"

namespace {

volatile sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

void Usage() {
  std::fprintf(stderr,
               "usage: weir-kafka-dev [--brokers=N] [topic:partitions ...]\n"
               "Hosts a Kafka broker (librdkafka's mock cluster) on 127.0.0.1 and prints its\n"
               "bootstrap address on the first stdout line. Runs until SIGINT/SIGTERM.\n");
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = 1;
  std::vector<std::pair<std::string, int>> topics;
  for (int idx = 1; idx < argc; ++idx) {
    const std::string arg = argv[idx];
    if (arg == "-h" || arg == "--help") {
      Usage();
      return 0;
    }
    if (arg.rfind("--brokers=", 0) == 0) {
      if (!absl::SimpleAtoi(arg.substr(10), &brokers) || brokers < 1) {
        std::fprintf(stderr, "weir-kafka-dev: bad %s\n", arg.c_str());
        return 2;
      }
      continue;
    }
    const size_t colon = arg.rfind(':');
    int partitions = 1;
    if (colon == std::string::npos) {
      topics.emplace_back(arg, 1);
    } else if (colon > 0 && absl::SimpleAtoi(arg.substr(colon + 1), &partitions) &&
               partitions >= 1) {
      topics.emplace_back(arg.substr(0, colon), partitions);
    } else {
      std::fprintf(stderr, "weir-kafka-dev: bad topic '%s' (expected name:partitions)\n",
                   arg.c_str());
      Usage();
      return 2;
    }
  }

  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<weir::kafka::internal::MockBroker>> broker =
      weir::kafka::internal::MockBroker::Start(brokers);
  if (!broker.ok()) {
    std::fprintf(stderr, "weir-kafka-dev: %s\n", broker.status().ToString().c_str());
    return 1;
  }
  for (const auto& [name, partitions] : topics) {
    absl::Status status = (*broker)->CreateTopic(name, partitions);
    if (!status.ok()) {
      std::fprintf(stderr, "weir-kafka-dev: %s\n", status.ToString().c_str());
      return 1;
    }
  }
  std::printf("%s\n", (*broker)->bootstrap().c_str());
  std::fflush(stdout);
  std::printf("note: %s\n", weir::kafka::internal::kRetentionNote);
  for (const auto& [name, partitions] : topics) {
    std::printf("topic %s: %d partitions\n", name.c_str(), partitions);
  }
  std::fflush(stdout);

  while (!g_stop) usleep(100 * 1000);
  std::fprintf(stderr, "weir-kafka-dev: stopping\n");
  return 0;
}
