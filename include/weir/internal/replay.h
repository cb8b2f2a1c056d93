// The job's side of replays (ReplayService in weir/sink.h), as the keyed
// operators that replay see it. Implemented in lib/runtime/replay.cc.

#ifndef WEIR_INTERNAL_REPLAY_H_
#define WEIR_INTERNAL_REPLAY_H_

#include <cstdint>

#include "weir/sink.h"

namespace weir::internal {

class ReplayCoordinator : public ReplayService {
 public:
  // A keyed operator instance that replays joins once, when it opens, and
  // gets its slot.
  virtual int Join() = 0;
  // The slot begins the newest replay: returns its number (0: none asked
  // for). Requests from now on start a newer one.
  virtual int64_t Begin(int slot) = 0;
  // The slot emitted all of replay `number`; the last barrier it had passed
  // then was that of checkpoint `last_checkpoint` (0: none), so everything
  // it emitted precedes the barrier of every later checkpoint.
  virtual void Complete(int slot, int64_t number, int64_t last_checkpoint) = 0;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_REPLAY_H_
