// Smoke tests of windows and the enrichment join through the public API (the
// full randomized suites live beside them).

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using Result = std::tuple<int64_t, int64_t, int64_t>;  // (key, window start, count)

TEST(WindowSmokeTest, TumblingAndSlidingCountsMatch) {
  std::vector<testing::TimestampedValue<int64_t>> input;
  for (int64_t i = 0; i < 5000; ++i) input.push_back({i % 7, i});
  for (bool sliding : {false, true}) {
    Pipeline pipeline({.parallelism = 2});
    testing::VectorSourceOptions options;
    options.jitter = absl::Milliseconds(20);
    auto sink = testing::CollectingSink<Result>::Create();
    auto assigner = sliding ? SlidingEventTimeWindows::Of(absl::Seconds(1), absl::Milliseconds(250))
                            : TumblingEventTimeWindows::Of(absl::Seconds(1));
    pipeline
        .Source(testing::VectorSource<int64_t>::Create(input, options),
                WatermarkStrategy<int64_t>::BoundedOutOfOrderness(absl::Milliseconds(20)))
        .KeyBy([](int64_t v) { return v; })
        .Window(assigner)
        .Aggregate(aggregations::Count<int64_t>(),
                   [](const int64_t& key, const TimeWindow& w, int64_t n) {
                     return Result{key, w.start, n};
                   })
        .Sink(sink);
    testing::JobResult result = testing::RunToCompletion(pipeline);
    ASSERT_TRUE(result.status.ok()) << result.status;
    std::map<std::pair<int64_t, int64_t>, int64_t> expected;
    for (const auto& record : input) {
      const int64_t slide = sliding ? 250 : 1000;
      for (int64_t start = record.timestamp - record.timestamp % slide;
           start > record.timestamp - 1000; start -= slide) {
        ++expected[{record.value, start}];
      }
    }
    std::map<std::pair<int64_t, int64_t>, int64_t> actual;
    for (const auto& [key, start, n] : sink->Values()) {
      EXPECT_FALSE(actual.contains({key, start})) << "window fired twice";
      actual[{key, start}] = n;
    }
    EXPECT_EQ(actual, expected) << (sliding ? "sliding" : "tumbling");
    // One state write per element, however many windows contain it.
    EXPECT_EQ(result.StateWrites(pipeline.options().job_name.empty() ? "" : "WindowAggregate#2"),
              5000);
  }
}

struct Event {
  int64_t id = 0;
  std::string content;
};
struct Content {
  std::string title;
};

}  // namespace
}  // namespace weir

template <>
struct weir::Codec<weir::Event> {
  static void Encode(const Event& e, std::string& out) {
    Codec<int64_t>::Encode(e.id, out);
    Codec<std::string>::Encode(e.content, out);
  }
  static bool Decode(std::string_view& in, Event& e) {
    return Codec<int64_t>::Decode(in, e.id) && Codec<std::string>::Decode(in, e.content);
  }
};
template <>
struct weir::Codec<weir::Content> {
  static void Encode(const Content& c, std::string& out) {
    Codec<std::string>::Encode(c.title, out);
  }
  static bool Decode(std::string_view& in, Content& c) {
    return Codec<std::string>::Decode(in, c.title);
  }
};

namespace weir {
namespace {

TEST(JoinSmokeTest, EventsBeforeAfterAndWithoutTheirRow) {
  // Rows for content a and b (b updated, then c deleted after being created);
  // events for a, b, c and d (d never has a row).
  std::vector<RowChange<std::string, Content>> changes = {
      {"a", Content{"A"}}, {"b", Content{"B0"}}, {"c", Content{"C"}}, {"c", std::nullopt}};
  std::vector<Event> events;
  for (int64_t i = 0; i < 400; ++i)
    events.push_back({i, std::string(1, static_cast<char>('a' + i % 4))});
  const OutputTag<Unmatched<Event>> kUnmatched("unmatched");
  Pipeline pipeline({.parallelism = 2});
  auto rows = pipeline.Source(testing::VectorSource<RowChange<std::string, Content>>::Create(
      changes, testing::VectorSourceOptions{.splits = 1}));
  auto joined =
      pipeline.Source(testing::VectorSource<Event>::Create(events))
          .KeyBy([](const Event& e) { return e.content; })
          .Connect(rows.Broadcast())
          .Process(EnrichmentJoin<std::string, Event, Content, std::pair<int64_t, std::string>>(
              [](const Event& e, const Content& c) {
                return std::pair{e.id, c.title};
              },
              {.max_wait = absl::Milliseconds(300), .unmatched = kUnmatched}));
  auto sink = testing::CollectingSink<std::pair<int64_t, std::string>>::Create();
  auto unmatched = testing::CollectingSink<Unmatched<Event>>::Create();
  joined.Sink(sink);
  joined.SideOutput(kUnmatched).Sink(unmatched);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok());
  // Everything for a and b joins; d waits out max_wait; c may join (if the
  // event came before the delete) or not.
  absl::SleepFor(absl::Seconds(1));
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  int a = 0, b = 0, d_unmatched = 0;
  for (const auto& [id, title] : sink->Values()) {
    if (title == "A") ++a;
    if (title == "B0") ++b;
    EXPECT_NE(id % 4, 3) << "d has no row";
  }
  for (const auto& u : unmatched->Values()) {
    if (u.event.content == "d") ++d_unmatched;
    EXPECT_NE(u.reason.find("row"), std::string::npos) << u.reason;
  }
  EXPECT_EQ(a, 100);
  EXPECT_EQ(b, 100);
  EXPECT_EQ(d_unmatched, 100);
  EXPECT_EQ(sink->size() + unmatched->size(), 400u);
}

}  // namespace
}  // namespace weir
