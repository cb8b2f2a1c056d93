#include "lib/common/retry_backoff.h"

#include <algorithm>

namespace weir::internal {

absl::Duration RetryBackoff::Next() {
  absl::Duration delay = initial_;
  for (int doubling = 0; doubling < retries_ && delay < max_; ++doubling) delay *= 2;
  delay = std::min(delay, max_);
  ++retries_;
  if (!bitgen_) bitgen_.emplace();
  return delay * absl::Uniform<double>(*bitgen_, 0.5, 1.0);
}

}  // namespace weir::internal
