// ContentMetrics through a weir pipeline: the sliding 10-minute window ages
// out buckets as the watermark passes them, totals keep everything, hourly
// rollups split at hour boundaries, and a content type change moves the
// content between per-type leaderboards.

#include "examples/engagement/content_metrics.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace engagement {
namespace {

constexpr int64_t kStart = 1'795'564'800'000 + 40 * 60'000;  // 00:40 UTC

Enriched Event(int64_t id, const std::string& content, int64_t ts, double seconds,
               const std::string& type = "podcast") {
  Enriched e;
  e.event_id = id;
  e.content_id = content;
  e.event_type = id % 2 == 0 ? "play" : "finish";
  e.event_ts_ms = ts;
  // As the join derives it: engagement_seconds = duration_ms / 1000.
  e.duration_ms = std::llround(seconds * 1000);
  e.engagement_seconds = seconds;
  e.content_type = type;
  e.slug = content + "-slug";
  return e;
}

struct Outputs {
  std::map<std::string, ContentUpdate> last;  // per content
  std::vector<ContentUpdate> all;
  std::map<std::pair<std::string, int64_t>, HourlyRollup> rollups;  // last per (content, hour)
};

Outputs RunMetrics(const std::vector<Enriched>& events, int parallelism,
                   double records_per_second = 0) {
  std::vector<weir::testing::TimestampedValue<Enriched>> records;
  for (const Enriched& e : events) records.push_back({e, e.event_ts_ms});
  weir::Pipeline pipeline({.parallelism = parallelism});
  auto updates = weir::testing::CollectingSink<ContentUpdate>::Create();
  auto rollups = weir::testing::CollectingSink<HourlyRollup>::Create();
  ContentMetricsOptions options;
  const weir::OutputTag<HourlyRollup> tag = options.rollups;
  auto out = pipeline
                 .Source(weir::testing::VectorSource<Enriched>::Create(
                             records, {.splits = parallelism,
                                       .records_per_poll = 10,
                                       .records_per_second = records_per_second / parallelism}),
                         weir::WatermarkStrategy<Enriched>::BoundedOutOfOrderness(absl::Seconds(1)))
                 .KeyBy([](const Enriched& e) { return e.content_id; })
                 .Process(ContentMetrics(options));
  out.Sink(updates);
  out.SideOutput(tag).Sink(rollups);
  absl::Status status = pipeline.Run();
  EXPECT_TRUE(status.ok()) << status;
  Outputs result;
  result.all = updates->Values();
  for (const ContentUpdate& u : result.all) result.last[u.content_id] = u;
  for (const HourlyRollup& r : rollups->Values()) {
    HourlyRollup& kept = result.rollups[{r.content_id, r.hour_ms}];
    if (r.totals.events >= kept.totals.events) kept = r;
  }
  return result;
}

class ContentMetricsTest : public ::testing::TestWithParam<int> {};

TEST_P(ContentMetricsTest, WindowAgesOutAndTotalsAndRollupsKeepEverything) {
  std::vector<Enriched> events;
  int64_t id = 0;
  // "early": 5 events in the first minute only.
  for (int i = 0; i < 5; ++i) events.push_back(Event(++id, "early", kStart + i * 1000, 10.0));
  // "steady": one event of 1 s every 10 s for 30 minutes (00:40 .. 01:10).
  for (int64_t ts = kStart; ts <= kStart + 30 * 60'000; ts += 10'000) {
    events.push_back(Event(++id, "steady", ts, 1.0));
  }
  std::stable_sort(events.begin(), events.end(), [](const Enriched& a, const Enriched& b) {
    return a.event_ts_ms < b.event_ts_ms;
  });
  // 100 records/s: the 250 ms refresh lists "early" before its bucket ages
  // out (after ~60 records, when the watermark passes 00:50).
  const Outputs out = RunMetrics(events, GetParam(), 100);

  ASSERT_TRUE(out.last.contains("early"));
  const ContentUpdate& early = out.last.at("early");
  EXPECT_EQ(early.totals.events, 5);
  EXPECT_DOUBLE_EQ(early.totals.engagement_seconds(), 50.0);
  // Its only bucket left the window once the watermark passed 00:50.
  EXPECT_EQ(early.window_seconds, 0.0);
  // ... after having been listed with its 50 s.
  bool listed = false;
  for (const ContentUpdate& u : out.all)
    listed |= u.content_id == "early" && u.window_seconds == 50.0;
  EXPECT_TRUE(listed);

  const ContentUpdate& steady = out.last.at("steady");
  EXPECT_EQ(steady.totals.events, 181);
  EXPECT_DOUBLE_EQ(steady.totals.engagement_seconds(), 181.0);
  // The last ten 1-minute buckets (6 s each, 1 s in the last) up to the
  // watermark; the final ageing may lag the last watermark by a batch.
  EXPECT_GE(steady.window_seconds, 55.0);
  EXPECT_LE(steady.window_seconds, 80.0);
  EXPECT_EQ(steady.last_event_ts_ms, kStart + 30 * 60'000);

  // Rollups: 00:40-01:00 in one hour, 01:00-01:10 in the next.
  const int64_t hour0 = kStart - 40 * 60'000;
  const int64_t hour1 = hour0 + kHourMs;
  ASSERT_TRUE(out.rollups.contains({"steady", hour0}));
  ASSERT_TRUE(out.rollups.contains({"steady", hour1}));
  EXPECT_EQ(out.rollups.at({"steady", hour0}).totals.events, 120);
  EXPECT_EQ(out.rollups.at({"steady", hour1}).totals.events, 61);
  EXPECT_EQ(out.rollups.at({"early", hour0}).totals.events, 5);
  EXPECT_EQ(out.rollups.at({"early", hour0}).slug, "early-slug");
}

TEST_P(ContentMetricsTest, ContentTypeChangeMovesTheLeaderboardEntry) {
  std::vector<Enriched> events;
  for (int i = 0; i < 50; ++i) {
    events.push_back(Event(i + 1, "moved", kStart + i * 1000, 2.0, i < 25 ? "podcast" : "video"));
  }
  // 40 records/s: the 250 ms refresh lists it as a podcast before the
  // video events (0.6 s later) arrive.
  const Outputs out = RunMetrics(events, GetParam(), 40);
  const ContentUpdate& last = out.last.at("moved");
  EXPECT_EQ(last.content_type, "video");
  EXPECT_EQ(last.totals.events, 50);
  // The update that first lists it as a video says where it was before.
  bool moved = false;
  for (const ContentUpdate& u : out.all) {
    if (u.content_type == "video" && u.previous_content_type == "podcast") moved = true;
    EXPECT_TRUE(u.previous_content_type.empty() || u.previous_content_type != u.content_type);
  }
  EXPECT_TRUE(moved);
}

INSTANTIATE_TEST_SUITE_P(Parallelism, ContentMetricsTest, ::testing::Values(1, 2));

}  // namespace
}  // namespace engagement
