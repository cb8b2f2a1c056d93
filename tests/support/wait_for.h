// Waiting in tests for something another thread or process does: poll an
// observable condition until it holds, with a deadline generous enough that
// only a hang reaches it on a loaded machine. Use it instead of a fixed
// sleep: a sleep is either too short under load or wastes time when idle.
//
// Example:
//
//   ASSERT_TRUE(weir::testing::WaitFor([&] { return sink->size() == 10; }))
//       << sink->size();

#ifndef WEIR_TESTS_SUPPORT_WAIT_FOR_H_
#define WEIR_TESTS_SUPPORT_WAIT_FOR_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace weir::testing {

// How long WaitFor waits by default.
inline constexpr absl::Duration kWaitForTimeout = absl::Seconds(60);

// Polls `condition` every few milliseconds until it holds (true) or
// `timeout` passed (false). The condition is evaluated once more at the
// deadline, so a slow last poll does not turn a success into a failure.
inline bool WaitFor(const std::function<bool()>& condition,
                    absl::Duration timeout = kWaitForTimeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace weir::testing

#endif  // WEIR_TESTS_SUPPORT_WAIT_FOR_H_
