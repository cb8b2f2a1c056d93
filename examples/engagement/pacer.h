// The engagement generator's pacing: a token bucket that lets records out at
// a steady rate, plus bursts of extra records at a fixed interval. It is
// driven by the caller's clock (time since the start), so the rate holds over
// time however often it is asked (no sleep per record), and tests can step
// the clock by hand.
//
// Example:
//
//   Pacer pacer({.records_per_second = 3333, .burst_count = 20000});
//   for (;;) {
//     const int64_t n = std::min<int64_t>(pacer.Available(Elapsed()), 1024);
//     for (int64_t i = 0; i < n; ++i) Send(generator.Next());
//     pacer.Consume(n);
//   }

#ifndef WEIR_EXAMPLES_ENGAGEMENT_PACER_H_
#define WEIR_EXAMPLES_ENGAGEMENT_PACER_H_

#include <cstdint>

#include "absl/time/time.h"

namespace engagement {

struct PacerOptions {
  // The steady rate; 0 means as fast as possible (Available() is unlimited).
  // Default: 0
  double records_per_second = 0;
  // Extra records released at once every `burst_interval` (the first burst
  // one interval after the start), on top of the rate; 0: no bursts.
  // Default: 0
  int64_t burst_count = 0;
  // Default: 60 s
  absl::Duration burst_interval = absl::Seconds(60);
  // How far the paced schedule may run ahead of what was sent. A caller that
  // falls further behind (a stall, or a rate it cannot reach) catches up at
  // most this much and then continues at the rate from there.
  // Default: 1 s
  absl::Duration max_lag = absl::Seconds(1);
};

// Not thread-safe.
class Pacer {
 public:
  // Available() when unpaced.
  static constexpr int64_t kUnlimited = int64_t{1} << 62;

  explicit Pacer(PacerOptions options);

  // How many records may go out now, `elapsed` after the start (calls must
  // not go back in time): the paced records due and not consumed yet plus
  // what is left of the bursts begun by now.
  int64_t Available(absl::Duration elapsed);
  // `records` went out (at most what Available() returned). Burst records
  // are taken first.
  void Consume(int64_t records);

  // Bursts begun so far.
  int64_t bursts() const { return bursts_; }
  // Records the schedule dropped because the caller fell more than max_lag
  // behind.
  int64_t skipped() const { return skipped_; }
  bool unlimited() const { return options_.records_per_second <= 0; }

 private:
  PacerOptions options_;
  int64_t paced_consumed_ = 0;  // paced records sent (+ skipped ones)
  int64_t burst_left_ = 0;
  int64_t bursts_ = 0;
  int64_t skipped_ = 0;
  absl::Duration next_burst_;
};

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_PACER_H_
