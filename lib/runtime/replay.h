// Replays of keyed state: one coordinator per job (see ReplayService in
// weir/sink.h and ReplayCoordinator in weir/internal/replay.h).

#ifndef WEIR_LIB_RUNTIME_REPLAY_H_
#define WEIR_LIB_RUNTIME_REPLAY_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "weir/internal/replay.h"

namespace weir::internal {

class JobReplays final : public ReplayCoordinator {
 public:
  explicit JobReplays(std::string job_name) : job_name_(std::move(job_name)) {}

  int64_t Request(std::string_view reason) override;
  int64_t latest() const override { return requested_.load(std::memory_order_acquire); }
  bool CompleteBefore(int64_t number, int64_t checkpoint_id) const override;

  int Join() override;
  int64_t Begin(int slot) override;
  void Complete(int slot, int64_t number, int64_t last_checkpoint) override;

 private:
  struct Slot {
    int64_t completed = 0;  // the newest replay this slot emitted in full
    int64_t after_checkpoint = 0;
  };

  const std::string job_name_;
  std::atomic<int64_t> requested_{0};
  mutable std::mutex mu_;
  int64_t begun_ = 0;  // the newest replay any slot began
  std::vector<Slot> slots_;
};

}  // namespace weir::internal

#endif  // WEIR_LIB_RUNTIME_REPLAY_H_
