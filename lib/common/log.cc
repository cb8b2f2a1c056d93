#include "lib/common/log.h"

#include <cstdio>
#include <mutex>
#include <utility>

#include "weir/log.h"

namespace weir {
namespace {

// Lines are handed over one at a time, so that a sink needs no locking of
// its own and lines of different threads never interleave.
std::mutex& SinkMutex() {
  static std::mutex mu;
  return mu;
}
LogSink& CurrentSink() {
  static LogSink* sink = new LogSink();  // never destroyed: threads may log at exit
  return *sink;
}

}  // namespace

void SetLogSink(LogSink sink) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  CurrentSink() = std::move(sink);
}

namespace internal {

void EmitLogLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  if (const LogSink& sink = CurrentSink()) {
    sink(line);
    return;
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fputc('\n', stderr);
}

}  // namespace internal
}  // namespace weir
