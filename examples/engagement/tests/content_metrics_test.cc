// ContentMetrics through a weir pipeline: the sliding 10-minute window ages
// out buckets as the watermark passes them, totals keep everything, hourly
// rollups split at hour boundaries, and a content type change moves the
// content between per-type leaderboards.

#include "examples/engagement/content_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "weir/source.h"
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

// Where the input stops until the updates so far show something: the
// processing-time refresh has fired by then, whatever the machine's load.
struct Gate {
  size_t at = SIZE_MAX;  // the index of the first record held back
  std::function<bool(const std::vector<ContentUpdate>&)> open;
};

// The events in order, record i in split i % splits, 10 per poll and split;
// records from `gate.at` on wait until `open()` holds (or a minute passed,
// so that a test that waits in vain fails instead of hanging).
class GatedSource final : public weir::Source<Enriched> {
 public:
  GatedSource(std::vector<Enriched> events, int splits, size_t gate_at, std::function<bool()> open)
      : events_(std::move(events)), splits_(splits), gate_at_(gate_at), open_(std::move(open)) {}

  absl::StatusOr<std::vector<weir::SourceSplit>> DiscoverSplits() override {
    std::vector<weir::SourceSplit> splits;
    for (int split = 0; split < splits_; ++split) splits.push_back({absl::StrCat("gated-", split)});
    return splits;
  }

  absl::StatusOr<std::unique_ptr<weir::SourceReader<Enriched>>> CreateReader(
      const weir::SourceReaderContext& context) override {
    std::vector<size_t> splits;
    for (const weir::SourceSplit& split : context.splits) {
      splits.push_back(std::stoul(split.id.substr(split.id.find('-') + 1)));
    }
    return std::unique_ptr<weir::SourceReader<Enriched>>(new Reader(this, std::move(splits)));
  }

 private:
  class Reader final : public weir::SourceReader<Enriched> {
   public:
    Reader(GatedSource* source, std::vector<size_t> splits)
        : source_(source), splits_(std::move(splits)), next_(splits_) {}

    absl::StatusOr<weir::PollResult> Poll(weir::SourceOutput<Enriched>& out) override {
      const size_t step = static_cast<size_t>(source_->splits_);
      const size_t end = source_->events_.size();
      bool more = false;
      bool emitted = false;
      for (size_t idx = 0; idx < splits_.size(); ++idx) {
        size_t& next = next_[idx];
        for (int count = 0; count < 10 && next < end && Open(next); ++count, next += step) {
          out.Collect(static_cast<int>(idx), source_->events_[next],
                      source_->events_[next].event_ts_ms);
          emitted = true;
        }
        if (next < end) {
          more = true;
        } else {
          out.FinishSplit(static_cast<int>(idx));
        }
      }
      if (!more) return weir::PollResult::kEndOfInput;
      return emitted ? weir::PollResult::kMoreAvailable : weir::PollResult::kNothingAvailable;
    }

   private:
    bool Open(size_t index) {
      if (index < source_->gate_at_ || open_) return true;
      if (held_since_ == absl::InfinitePast()) held_since_ = absl::Now();
      open_ = source_->open_() || absl::Now() - held_since_ > weir::testing::kWaitForTimeout;
      return open_;
    }

    GatedSource* source_;
    std::vector<size_t> splits_;
    std::vector<size_t> next_;  // per split: the index of its next event
    bool open_ = false;
    absl::Time held_since_ = absl::InfinitePast();
  };

  std::vector<Enriched> events_;
  int splits_;
  size_t gate_at_;
  std::function<bool()> open_;
};

Outputs RunMetrics(const std::vector<Enriched>& events, int parallelism, Gate gate = {}) {
  weir::Pipeline pipeline({.parallelism = parallelism});
  auto updates = weir::testing::CollectingSink<ContentUpdate>::Create();
  auto rollups = weir::testing::CollectingSink<HourlyRollup>::Create();
  ContentMetricsOptions options;
  const weir::OutputTag<HourlyRollup> tag = options.rollups;
  auto open = [updates, condition = gate.open] {
    return !condition || condition(updates->Values());
  };
  auto out = pipeline
                 .Source(std::make_shared<GatedSource>(events, parallelism, gate.at, open),
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

// Whether `updates` list `content` with `window_seconds` in its window.
bool Listed(const std::vector<ContentUpdate>& updates, const std::string& content,
            double window_seconds) {
  return std::any_of(updates.begin(), updates.end(), [&](const ContentUpdate& u) {
    return u.content_id == content && u.window_seconds == window_seconds;
  });
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
  // The input waits after the events of the first 5 s until a refresh
  // (every 50 ms of processing time) has listed "early" with its 50 s; its
  // bucket ages out later, once the watermark passes 00:50.
  const auto first_seconds = std::count_if(events.begin(), events.end(), [](const Enriched& e) {
    return e.event_ts_ms < kStart + 5000;
  });
  const Outputs out = RunMetrics(events, GetParam(),
                                 {.at = static_cast<size_t>(first_seconds),
                                  .open = [](const std::vector<ContentUpdate>& updates) {
                                    return Listed(updates, "early", 50.0);
                                  }});

  ASSERT_TRUE(out.last.contains("early"));
  const ContentUpdate& early = out.last.at("early");
  EXPECT_EQ(early.totals.events, 5);
  EXPECT_DOUBLE_EQ(early.totals.engagement_seconds(), 50.0);
  // Its only bucket left the window once the watermark passed 00:50.
  EXPECT_EQ(early.window_seconds, 0.0);
  // ... after having been listed with its 50 s.
  EXPECT_TRUE(Listed(out.all, "early", 50.0));

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
  // The video events wait until a refresh has listed it as a podcast.
  const Outputs out =
      RunMetrics(events, GetParam(),
                 {.at = 25, .open = [](const std::vector<ContentUpdate>& updates) {
                    return std::any_of(updates.begin(), updates.end(), [](const ContentUpdate& u) {
                      return u.content_id == "moved" && u.content_type == "podcast";
                    });
                  }});
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
