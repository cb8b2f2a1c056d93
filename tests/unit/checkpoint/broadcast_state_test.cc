// Broadcast state is checkpointed and restored on every worker: after a crash,
// a restarted join still knows every dimension row although the dimension
// source, restored at its end, sends nothing again.

#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using Joined = std::pair<int64_t, std::string>;  // (event, dimension name or "<unmatched>")

class Join final
    : public BroadcastProcessFunction<int64_t, std::pair<int64_t, std::string>, Joined> {
 public:
  absl::Status ProcessElement(const int64_t& event, ReadOnlyContext& ctx,
                              Collector<Joined>& out) override {
    const std::string* name = ctx.GetBroadcastState(kNames).Get(event % 10);
    out.Collect({event, name != nullptr ? *name : "<unmatched>"});
    return absl::OkStatus();
  }
  absl::Status ProcessBroadcastElement(const std::pair<int64_t, std::string>& row, Context& ctx,
                                       Collector<Joined>&) override {
    ctx.GetBroadcastState(kNames).Put(row.first, row.second);
    return absl::OkStatus();
  }

 private:
  static inline const MapStateDescriptor<int64_t, std::string> kNames{"names"};
};

TEST(BroadcastStateTest, RestoredOnEveryWorkerAfterACrash) {
  const auto root =
      std::filesystem::temp_directory_path() / ("weir-bcast-" + std::to_string(getpid()));
  std::filesystem::remove_all(root);
  std::vector<std::pair<int64_t, std::string>> rows;
  for (int64_t id = 0; id < 10; ++id) rows.push_back({id, "dim-" + std::to_string(id)});
  std::vector<int64_t> events(3000);
  for (int64_t i = 0; i < 3000; ++i) events[i] = i;

  auto build = [&](int parallelism, double rate) {
    PipelineOptions options;
    options.parallelism = parallelism;
    options.job_name = "join";
    options.checkpoints.interval = absl::Milliseconds(30);
    options.checkpoints.storage_uri = "file://" + (root / "checkpoints").string();
    auto pipeline = std::make_unique<Pipeline>(options);
    auto dims =
        pipeline->Source(testing::VectorSource<std::pair<int64_t, std::string>>::Create(rows))
            .Uid("dims");
    testing::VectorSourceOptions event_options;
    event_options.records_per_poll = 16;
    event_options.records_per_second = rate;
    pipeline->Source(testing::VectorSource<int64_t>::Create(events, event_options))
        .Uid("events")
        .Connect(dims.Broadcast())
        .Process(Join{})
        .Uid("join")
        .Sink(std::make_shared<testing::TransactionalFileSink<Joined>>((root / "out").string()))
        .Uid("out");
    return pipeline;
  };

  // First run: crash (cancel) after a few checkpoints.
  {
    auto pipeline = build(2, 1000);
    absl::StatusOr<JobHandle> job = pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    while (job->last_completed_checkpoint() < 3 && !job->done())
      absl::SleepFor(absl::Milliseconds(2));
    ASSERT_FALSE(job->done());
    job->Cancel();
    (void)job->Wait();
  }
  auto before = testing::TransactionalFileSink<Joined>::ReadCommitted((root / "out").string());
  ASSERT_TRUE(before.ok());

  // Restart at another parallelism: every event joins with restored broadcast state.
  auto pipeline = build(3, 0);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;
  auto after = testing::TransactionalFileSink<Joined>::ReadCommitted((root / "out").string());
  ASSERT_TRUE(after.ok());
  ASSERT_GT(after->size(), before->size());
  std::vector<Joined> restarted(after->begin() + static_cast<std::ptrdiff_t>(before->size()),
                                after->end());
  for (const Joined& joined : restarted) {
    EXPECT_EQ(joined.second, "dim-" + std::to_string(joined.first % 10)) << joined.first;
  }
  // And nothing was lost or duplicated.
  std::vector<int64_t> seen;
  for (const Joined& joined : *after) seen.push_back(joined.first);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, events);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace weir
