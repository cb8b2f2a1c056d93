// RetryBackoff: exponential backoff with jitter, for every retry loop in
// weir (HTTP requests, Redis reconnects, S3).
//
// Example:
//   RetryBackoff backoff(absl::Milliseconds(20), absl::Seconds(1));
//   while (!Attempt().ok()) absl::SleepFor(backoff.Next());

#ifndef WEIR_LIB_COMMON_RETRY_BACKOFF_H_
#define WEIR_LIB_COMMON_RETRY_BACKOFF_H_

#include <optional>

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace weir::internal {

// The first wait is about `initial`, each further one twice as long up to
// `max`; each is drawn from [d / 2, d]. Not thread-safe.
class RetryBackoff {
 public:
  RetryBackoff(absl::Duration initial, absl::Duration max) : initial_(initial), max_(max) {}
  // The wait before retry number `retries_so_far + 1`.
  absl::Duration Next();
  // After a success: the next wait is about `initial` again.
  void Reset() { retries_ = 0; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  int retries_ = 0;
  std::optional<absl::BitGen> bitgen_;  // seeded on the first retry only
};

}  // namespace weir::internal

#endif  // WEIR_LIB_COMMON_RETRY_BACKOFF_H_
