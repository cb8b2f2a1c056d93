// Barrier alignment in OperatorBase, driven port by port: after a checkpoint
// was abandoned (it timed out), some inputs carry barriers n and n+1, others
// only n+1. Nothing that precedes barrier n+1 on an input may reach the
// operator after its snapshot for n+1, and nothing that follows it before.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/internal/batch.h"
#include "weir/internal/operator.h"
#include "weir/internal/operators.h"

namespace weir {
namespace {

using ::testing::ElementsAre;

// What an operator sent downstream, in order: values, "barrier <id>", ...
class Recorder final : public internal::Input<int> {
 public:
  void OnBatch(internal::Batch<int>& batch) override {
    for (int value : batch.values) events.push_back(std::to_string(value));
  }
  void OnWatermark(Timestamp watermark) override {
    events.push_back("watermark " + std::to_string(watermark));
  }
  void OnIdle() override { events.push_back("idle"); }
  void OnEnd() override { events.push_back("end"); }
  void OnBarrier(int64_t checkpoint_id) override {
    events.push_back("barrier " + std::to_string(checkpoint_id));
  }

  std::vector<std::string> events;
};

internal::Batch<int> BatchOf(std::vector<int> values) {
  internal::Batch<int> batch;
  for (int value : values) batch.Push(value, 0);
  return batch;
}

// A two-input Union on an environment that belongs to no job (no
// checkpoint collector: the snapshot is the barrier going downstream).
class FusedPortAlignmentTest : public ::testing::Test {
 protected:
  FusedPortAlignmentTest() : union_(env_, "union", 2) { union_.output().AddDownstream(&out_); }

  void Batch(int port, std::vector<int> values) {
    internal::Batch<int> batch = BatchOf(std::move(values));
    union_.port(port)->OnBatch(batch);
  }
  void Barrier(int port, int64_t checkpoint_id) { union_.port(port)->OnBarrier(checkpoint_id); }

  internal::WorkerEnv env_;
  internal::UnionOp<int> union_;
  Recorder out_;
};

// Port 1 skipped nothing but is late: its barrier 1 arrives after port 0's
// barrier 2. Barrier 1 is stale; what follows it on port 1 precedes port 1's
// barrier 2 and belongs to checkpoint 2.
TEST_F(FusedPortAlignmentTest, AStaleBarrierDoesNotCountForTheNewerOne) {
  Barrier(0, 2);
  Barrier(1, 1);
  Batch(1, {7});
  Barrier(1, 2);
  Batch(0, {8});
  EXPECT_THAT(out_.events, ElementsAre("7", "barrier 2", "8"));
}

// Port 0 is blocked for barrier 1 when port 1 brings barrier 2: checkpoint 1
// is abandoned, and what port 0 held goes first, before its newer input.
TEST_F(FusedPortAlignmentTest, ANewerBarrierReleasesInputHeldForTheAbandonedOne) {
  Barrier(0, 1);
  Batch(0, {1});
  Barrier(1, 2);
  Batch(0, {2});
  Barrier(0, 2);
  EXPECT_THAT(out_.events, ElementsAre("1", "2", "barrier 2"));
}

// Port 0 held its barrier 2 behind barrier 1: once checkpoint 1 is
// abandoned, that held barrier 2 counts and checkpoint 2 aligns.
TEST_F(FusedPortAlignmentTest, ABarrierHeldBehindAnAbandonedOneStillAligns) {
  Barrier(0, 1);
  Batch(0, {1});
  Barrier(0, 2);
  Batch(0, {3});
  Barrier(1, 2);
  Batch(1, {4});
  EXPECT_THAT(out_.events, ElementsAre("1", "barrier 2", "3", "4"));
}

// The same on an exchange receiver, whose blocked channels stay in their
// rings: worker 1's channel delivers barrier 1 after worker 0's barrier 2.
TEST(ExchangeAlignmentTest, AStaleBarrierDoesNotCountForTheNewerOne) {
  internal::WorkerEnv env;
  env.parallelism = 2;
  env.worker_index = 0;
  auto channels = std::make_shared<internal::ExchangeChannels<int>>(2, 16);
  internal::ExchangeReceiver<int> receiver(env, "receiver", channels);
  Recorder out;
  receiver.output().AddDownstream(&out);
  auto push = [&](int from, internal::Envelope<int> envelope) {
    ASSERT_TRUE(channels->ring(from, 0).TryPush(envelope));
  };
  auto barrier = [](int64_t id) {
    internal::Envelope<int> envelope;
    envelope.kind = internal::EnvelopeKind::kBarrier;
    envelope.checkpoint_id = id;
    return envelope;
  };
  auto batch = [](std::vector<int> values) {
    internal::Envelope<int> envelope;
    envelope.batch = BatchOf(std::move(values));
    return envelope;
  };
  push(0, barrier(2));
  push(1, barrier(1));
  push(1, batch({5}));
  push(1, barrier(2));
  push(0, batch({6}));
  while (receiver.Drain()) {
  }
  EXPECT_THAT(out.events, ElementsAre("5", "barrier 2", "6"));
}

}  // namespace
}  // namespace weir
