#include "lib/runtime/replay.h"

#include <string>

#include "lib/common/log.h"

namespace weir::internal {

int64_t JobReplays::Request(std::string_view reason) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t number = requested_.load(std::memory_order_relaxed);
  if (number > begun_) {
    Log("job '", job_name_, "': replay ", number,
        " (not begun yet) also serves: ", std::string(reason));
    return number;
  }
  ++number;
  requested_.store(number, std::memory_order_release);
  Log("job '", job_name_, "': replaying every key's current value (replay ", number, ", ",
      slots_.size(), " operator instances): ", std::string(reason));
  return number;
}

bool JobReplays::CompleteBefore(int64_t number, int64_t checkpoint_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Slot& slot : slots_) {
    if (slot.completed < number || slot.after_checkpoint >= checkpoint_id) return false;
  }
  return true;
}

int JobReplays::Join() {
  std::lock_guard<std::mutex> lock(mu_);
  slots_.emplace_back();
  return static_cast<int>(slots_.size()) - 1;
}

int64_t JobReplays::Begin(int slot) {
  (void)slot;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t number = requested_.load(std::memory_order_relaxed);
  if (number > begun_) begun_ = number;
  return number;
}

void JobReplays::Complete(int slot, int64_t number, int64_t last_checkpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  Slot& done = slots_[static_cast<size_t>(slot)];
  if (number > done.completed) {
    done.completed = number;
    done.after_checkpoint = last_checkpoint;
  }
}

}  // namespace weir::internal
