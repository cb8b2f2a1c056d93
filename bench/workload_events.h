// The synthetic engagement events of bench/README.md ("The events"), generated
// before timing starts from a fixed seed, and the bench command line / JSON
// output contract shared by the weir-bench-* binaries.

#ifndef WEIR_BENCH_WORKLOAD_EVENTS_H_
#define WEIR_BENCH_WORKLOAD_EVENTS_H_

#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weir/testing.h"

namespace weir::bench {

enum class EventType : uint8_t { kPlay, kPause, kFinish, kClick };

inline constexpr std::array<std::string_view, 5> kDevices = {"ios", "android", "web", "tv",
                                                             "desktop"};

struct Event {
  uint64_t event_id = 0;
  uint64_t content_id = 0;
  uint64_t user_id = 0;
  int64_t event_ts = 0;  // ms
  int32_t duration_ms = 0;
  EventType event_type = EventType::kPlay;
  std::string_view device;  // one of kDevices
};

struct GeneratorOptions {
  uint64_t events = 20'000'000;
  uint64_t content_ids = 10'000;
  // Zipf exponent for content popularity; 0 = uniform.
  double zipf = 0.0;
  uint64_t seed = 20261124;
  int64_t start_ts = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  int64_t events_per_second = 100'000;
  int64_t max_out_of_order_ms = 2'000;
};

// ~100,000 events per second of event time, up to 2 s out of order.
inline std::vector<Event> GenerateEvents(const GeneratorOptions& options) {
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<uint64_t> uniform_content(0, options.content_ids - 1);
  std::uniform_int_distribution<int> type(0, 3);
  std::uniform_int_distribution<int32_t> duration(0, 600'000);
  std::uniform_int_distribution<int> device(0, static_cast<int>(kDevices.size()) - 1);
  std::uniform_int_distribution<int64_t> jitter(0, options.max_out_of_order_ms);
  std::vector<double> zipf_cdf;
  if (options.zipf > 0) {
    zipf_cdf.resize(options.content_ids);
    double total = 0;
    for (uint64_t k = 0; k < options.content_ids; ++k) {
      total += 1.0 / std::pow(static_cast<double>(k + 1), options.zipf);
      zipf_cdf[k] = total;
    }
    for (double& c : zipf_cdf) c /= total;
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Event> events(options.events);
  for (uint64_t i = 0; i < options.events; ++i) {
    Event& e = events[i];
    e.event_id = i;
    if (zipf_cdf.empty()) {
      e.content_id = uniform_content(rng);
    } else {
      e.content_id = static_cast<uint64_t>(
          std::lower_bound(zipf_cdf.begin(), zipf_cdf.end(), unit(rng)) - zipf_cdf.begin());
    }
    e.user_id = rng();
    e.event_type = static_cast<EventType>(type(rng));
    const int64_t in_order =
        options.start_ts + static_cast<int64_t>(i) * 1000 / options.events_per_second;
    e.event_ts = in_order - jitter(rng);
    e.duration_ms = duration(rng);
    e.device = kDevices[device(rng)];
  }
  return events;
}

// The events as an in-memory source of 4 splits, each record stamped with its event_ts.
inline std::shared_ptr<testing::VectorSource<Event>> MakeEventSource(
    const std::vector<Event>& events) {
  testing::VectorSourceOptions source_options;
  source_options.splits = 4;
  std::vector<testing::TimestampedValue<Event>> records;
  records.reserve(events.size());
  for (const Event& e : events) records.push_back({e, e.event_ts});
  return testing::VectorSource<Event>::Create(std::move(records), source_options);
}

// --events=N, --json=FILE, --zipf=S, --parallelism=1,2, --repeat=R, plus the
// bench's own flags (parsed by hand: the bench binaries have no other flags).
struct BenchFlags {
  uint64_t events = 20'000'000;
  std::string json;
  double zipf = 0.0;
  std::vector<int> parallelism = {1, 2};
  int repeat = 3;
};

// A flag only one bench has, e.g. {"--keys=", "N", [&](const char* v) { ... }}.
struct ExtraFlag {
  const char* prefix;
  const char* value_name;
  std::function<void(const char* value)> parse;
};

inline BenchFlags ParseFlags(int argc, char** argv, uint64_t default_events,
                             const std::vector<ExtraFlag>& extra = {}) {
  BenchFlags flags;
  flags.events = default_events;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      const size_t len = std::strlen(name);
      return arg.compare(0, len, name) == 0 ? arg.c_str() + len : nullptr;
    };
    bool known = true;
    if (const char* events_v = value("--events=")) {
      flags.events = std::strtoull(events_v, nullptr, 10);
    } else if (const char* json_v = value("--json=")) {
      flags.json = json_v;
    } else if (const char* zipf_v = value("--zipf=")) {
      flags.zipf = std::strtod(zipf_v, nullptr);
    } else if (const char* repeat_v = value("--repeat=")) {
      flags.repeat = std::atoi(repeat_v);
    } else if (const char* par_v = value("--parallelism=")) {
      flags.parallelism.clear();
      for (const char* p = par_v; *p != '\0';) {
        flags.parallelism.push_back(std::atoi(p));
        const char* comma = std::strchr(p, ',');
        if (comma == nullptr) break;
        p = comma + 1;
      }
    } else {
      known = false;
      for (const ExtraFlag& flag : extra) {
        if (const char* extra_v = value(flag.prefix)) {
          flag.parse(extra_v);
          known = true;
          break;
        }
      }
    }
    if (!known) {
      std::string extra_usage;
      for (const ExtraFlag& flag : extra) {
        extra_usage += std::string(" [") + flag.prefix + flag.value_name + "]";
      }
      std::fprintf(stderr,
                   "usage: %s [--events=N] [--json=FILE] [--zipf=S] [--parallelism=1,2] "
                   "[--repeat=R]%s\n",
                   argv[0], extra_usage.c_str());
      std::exit(2);
    }
  }
  return flags;
}

struct BenchResult {
  std::string name;
  std::string variant;
  int parallelism = 1;
  double events_per_sec = 0;
  double seconds = 0;
  // More numeric fields of this result (e.g. {"bytes", 1.2e9}), written after "seconds".
  std::vector<std::pair<std::string, double>> fields = {};
};

inline void WriteJson(const std::string& path, const std::string& workload, uint64_t events,
                      const std::vector<BenchResult>& results) {
  if (path.empty()) return;
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::fprintf(f, "{\"workload\": \"%s\", \"events\": %llu,\n \"results\": [", workload.c_str(),
               static_cast<unsigned long long>(events));
  for (size_t i = 0; i < results.size(); ++i) {
    const BenchResult& r = results[i];
    std::fprintf(f,
                 "%s\n   {\"name\": \"%s\", \"variant\": \"%s\", \"parallelism\": %d, "
                 "\"events_per_sec\": %.6g, \"seconds\": %.6g",
                 i == 0 ? "" : ",", r.name.c_str(), r.variant.c_str(), r.parallelism,
                 r.events_per_sec, r.seconds);
    for (const auto& [field, field_value] : r.fields) {
      std::fprintf(f, ", \"%s\": %.17g", field.c_str(), field_value);
    }
    std::fprintf(f, "}");
  }
  std::fprintf(f, "]}\n");
  std::fclose(f);
}

// CPU time (user + system) of every thread of this process so far: on this
// shared machine a run's wall time includes waiting for a core, its CPU time
// does not.
inline double ProcessCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU time (user + system) that process `pid` (all its threads, e.g. a
// pipeline the bench started) has used so far, from /proc/<pid>/stat; 0 if
// it is gone.
inline double ProcessCpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  const std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  // After the command: state is field 3; utime and stime are 14 and 15.
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  int64_t utime = 0;
  int64_t stime = 0;
  for (int number = 3; number <= 15 && fields >> field; ++number) {
    if (number == 14) utime = std::strtoll(field.c_str(), nullptr, 10);
    if (number == 15) stime = std::strtoll(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
// when destroyed: RocksDB state, local checkpoints.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    const char* tmp = std::getenv("TMPDIR");
    std::string path =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + name + "-XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) {
      std::perror(path.c_str());
      std::exit(1);
    }
    path_ = path;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace weir::bench

#endif  // WEIR_BENCH_WORKLOAD_EVENTS_H_
