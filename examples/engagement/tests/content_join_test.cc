// The content join's output watermark: an event the content side's
// watermark has passed, whose row arrives only later, waits in the join and
// still reaches the next operator ahead of the watermark (the join holds its
// output watermark below every event it keeps).

#include "examples/engagement/content_join.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "examples/engagement/model.h"
#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "tests/unit/window/scripted_source.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace engagement {
namespace {

Content Row(std::string id) {
  return Content{.id = std::move(id),
                 .slug = "s",
                 .title = "t",
                 .content_type = "video",
                 .length_seconds = 60,
                 .publish_ts_ms = 0};
}

EngagementEvent Event(int64_t id, std::string content_id, int64_t ts) {
  return EngagementEvent{.id = id,
                         .content_id = std::move(content_id),
                         .user_id = "u",
                         .event_type = "play",
                         .event_ts_ms = ts,
                         .duration_ms = 1000};
}

// Passes enriched events on, counting those at or below its watermark.
class CountLate final : public weir::ProcessFunction<Enriched, Enriched> {
 public:
  explicit CountLate(std::shared_ptr<std::atomic<int>> late) : late_(std::move(late)) {}
  absl::Status ProcessElement(const Enriched& e, Context& ctx,
                              weir::Collector<Enriched>& out) override {
    if (ctx.timestamp() <= ctx.current_watermark()) late_->fetch_add(1);
    out.Collect(e);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<std::atomic<int>> late_;
};

TEST(ContentJoinTest, AnEventWhoseRowArrivesAfterTheWatermarkIsNotLateDownstream) {
  // Event 1 (content A at 1000) and event 2 (content B at 6000).
  auto events = weir::testing::ScriptedSource<EngagementEvent>::Create(
      {{Event(1, "A", 1000), 1000}, {Event(2, "B", 6000), 6000}}, {.bounded = false});
  // Content B's versions move the content watermark to 4999, past event 1,
  // before any row of A exists; A's row (committed at 900) comes later.
  auto rows = weir::testing::ScriptedSource<ContentVersion>::Create(
      {{{"B", 500, Row("B")}, 500}, {{"B", 5000, Row("B")}, 5000}, {{"A", 900, Row("A")}, 900}},
      {.bounded = false}, /*released=*/2);
  auto late = std::make_shared<std::atomic<int>>(0);
  auto sink = weir::testing::CollectingSink<Enriched>::Create();
  weir::Pipeline pipeline;
  pipeline
      .Source(events,
              weir::WatermarkStrategy<EngagementEvent>::BoundedOutOfOrderness(absl::ZeroDuration()))
      .KeyBy([](const EngagementEvent& e) { return e.content_id; })
      .Connect(pipeline
                   .Source(rows, weir::WatermarkStrategy<ContentVersion>::BoundedOutOfOrderness(
                                     absl::ZeroDuration()))
                   .Broadcast())
      .Process(ContentJoin({.max_wait = absl::Seconds(60)}))
      .Name("join")
      .Process(CountLate(late))
      .Sink(sink);
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // Both inputs' watermarks reached the join: event 1 found no row of A
  // and waits (the watermark passed it first, then its event-time timer).
  ASSERT_TRUE(weir::testing::WaitFor([&] {
    return job->Metrics().Sum("weir_operator_watermark_milliseconds", {{"operator", "join"}}) >=
           4999;
  }));
  EXPECT_TRUE(sink->Values().empty());
  rows->Release(3);
  ASSERT_TRUE(weir::testing::WaitFor([&] { return sink->Values().size() == 1; }));
  EXPECT_EQ(sink->Values()[0].event_id, 1);
  EXPECT_EQ(late->load(), 0) << "the event left the join behind its watermark";
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(sink->Values().size(), 2u);  // event 2 at the end of input
  EXPECT_EQ(late->load(), 0);
}

}  // namespace
}  // namespace engagement
