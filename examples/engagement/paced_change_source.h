// A weir source that emits the ChangeGenerator's records (generator.h) at
// the pace a Pacer allows: the input of the engagement-generator program's
// pipeline. One split, so one worker reads it and the records keep the
// generator's order. Ends after `total` records or `duration`, or runs until
// the job is stopped. Not checkpointable (the generator restarts from its
// seed).
//
// Example:
//
//   auto progress = std::make_shared<GeneratorProgress>();
//   weir::Pipeline pipeline;
//   pipeline.Source(std::make_shared<PacedChangeSource>(
//                       PacedSourceOptions{.pacer = {.records_per_second = 3333}, .total = 10000},
//                       progress))
//       .Sink([](const GeneratedRecord& record) { ... });

#ifndef WEIR_EXAMPLES_ENGAGEMENT_PACED_CHANGE_SOURCE_H_
#define WEIR_EXAMPLES_ENGAGEMENT_PACED_CHANGE_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "examples/engagement/generator.h"
#include "examples/engagement/pacer.h"
#include "weir/source.h"

namespace engagement {

// What the source has emitted so far, for status lines. Written by the
// source's worker, readable from any thread.
struct GeneratorProgress {
  std::atomic<int64_t> records{0};
  std::atomic<int64_t> snapshot_rows{0};  // op r
  std::atomic<int64_t> creates{0};        // content op c
  std::atomic<int64_t> updates{0};
  std::atomic<int64_t> deletes{0};
  std::atomic<int64_t> tombstones{0};
  std::atomic<int64_t> events{0};
  std::atomic<int64_t> live_content{0};
  std::atomic<int64_t> bursts{0};
  // Records the pacer dropped from its schedule because the pipeline could
  // not keep up with the rate (see PacerOptions::max_lag).
  std::atomic<int64_t> behind{0};
};

struct PacedSourceOptions {
  GeneratorOptions generator;
  PacerOptions pacer;
  // Stop after this many records; 0: no limit.
  // Default: 0
  int64_t total = 0;
  // Stop after this long.
  // Default: no limit
  absl::Duration duration = absl::InfiniteDuration();
  // Most records emitted per poll (the runtime polls again at once while
  // more are due).
  // Default: 1024
  int64_t max_per_poll = 1024;
  // The clock the schedule runs on: any monotonic time (only differences
  // count), so a test can step it by hand as it steps a Pacer.
  // Default: nullptr (std::chrono::steady_clock)
  std::function<absl::Duration()> clock;
};

class PacedChangeSource final : public weir::Source<GeneratedRecord> {
 public:
  PacedChangeSource(PacedSourceOptions options, std::shared_ptr<GeneratorProgress> progress)
      : options_(std::move(options)), progress_(std::move(progress)) {}

  absl::StatusOr<std::vector<weir::SourceSplit>> DiscoverSplits() override;
  absl::StatusOr<std::unique_ptr<weir::SourceReader<GeneratedRecord>>> CreateReader(
      const weir::SourceReaderContext& context) override;

 private:
  PacedSourceOptions options_;
  std::shared_ptr<GeneratorProgress> progress_;
};

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_PACED_CHANGE_SOURCE_H_
