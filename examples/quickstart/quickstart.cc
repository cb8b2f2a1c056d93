// weir quick start: a small engagement pipeline over generated data.
//
// Content rows (the dimension) are broadcast to every worker and joined with
// engagement events; events whose content row has not arrived yet wait for it.
// Each event gets engagement_seconds = duration_ms / 1000 and
// engagement_pct = engagement_seconds / length_seconds * 100 (absent when the
// length is unknown). Per-content totals are kept by a KeyedProcessFunction
// and emitted when the input ends (an event-time timer at the final
// watermark). Prints the top content, averages per content type and the
// throughput.
//
//   weir-quickstart [--events=N] [--parallelism=P]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace {

struct Content {
  uint64_t id = 0;
  std::string slug;
  std::string content_type;  // podcast | newsletter | video
  std::optional<int32_t> length_seconds;
};

struct Engagement {
  uint64_t id = 0;
  uint64_t content_id = 0;
  std::string event_type;  // play | pause | finish | click
  int64_t event_ts = 0;
  std::optional<int32_t> duration_ms;
};

struct Enriched {
  uint64_t content_id = 0;
  std::string slug;
  std::string content_type;
  std::string event_type;
  double engagement_seconds = 0;
  std::optional<double> engagement_pct;
};

struct ContentTotals {
  uint64_t content_id = 0;
  std::string slug;
  std::string content_type;
  int64_t events = 0;
  int64_t finishes = 0;
  double engagement_seconds = 0;
  double pct_sum = 0;
  int64_t pct_count = 0;
};

Enriched Enrich(const Engagement& e, const Content& c) {
  Enriched out{e.content_id, c.slug, c.content_type, e.event_type, 0, std::nullopt};
  if (e.duration_ms) out.engagement_seconds = *e.duration_ms / 1000.0;
  if (e.duration_ms && c.length_seconds && *c.length_seconds > 0) {
    out.engagement_pct = out.engagement_seconds / *c.length_seconds * 100.0;
  }
  return out;
}

// Joins events with the latest content row; events that arrive before their
// row wait in a per-worker buffer and are joined when it arrives.
class JoinWithContent final : public weir::BroadcastProcessFunction<Engagement, Content, Enriched> {
 public:
  absl::Status ProcessElement(const Engagement& e, ReadOnlyContext&,
                              weir::Collector<Enriched>& out) override {
    auto it = content_.find(e.content_id);
    if (it == content_.end()) {
      waiting_[e.content_id].push_back(e);
      return absl::OkStatus();
    }
    out.Collect(Enrich(e, it->second));
    return absl::OkStatus();
  }
  absl::Status ProcessBroadcastElement(const Content& c, Context& ctx,
                                       weir::Collector<Enriched>& out) override {
    content_[c.id] = c;
    if (auto it = waiting_.find(c.id); it != waiting_.end()) {
      for (const Engagement& e : it->second) out.CollectWithTimestamp(Enrich(e, c), e.event_ts);
      waiting_.erase(it);
    }
    (void)ctx;
    return absl::OkStatus();
  }
  absl::Status Close() override {
    if (!waiting_.empty()) {
      return absl::FailedPreconditionError(std::to_string(waiting_.size()) +
                                           " content ids never arrived");
    }
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_map<uint64_t, Content> content_;
  absl::flat_hash_map<uint64_t, std::vector<Engagement>> waiting_;
};

// Running totals per content; emitted once, when the final watermark fires the timer.
class TotalsPerContent final
    : public weir::KeyedProcessFunction<uint64_t, Enriched, ContentTotals> {
 public:
  absl::Status ProcessElement(const Enriched& e, Context& ctx,
                              weir::Collector<ContentTotals>&) override {
    ContentTotals& t = totals_[ctx.current_key()];
    if (t.events == 0) {
      t = ContentTotals{e.content_id, e.slug, e.content_type};
      ctx.timer_service().RegisterEventTimeTimer(weir::kMaxTimestamp);
    }
    ++t.events;
    t.finishes += e.event_type == "finish";
    t.engagement_seconds += e.engagement_seconds;
    if (e.engagement_pct) {
      t.pct_sum += *e.engagement_pct;
      ++t.pct_count;
    }
    return absl::OkStatus();
  }
  absl::Status OnTimer(weir::Timestamp, OnTimerContext& ctx,
                       weir::Collector<ContentTotals>& out) override {
    out.Collect(totals_[ctx.current_key()]);
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_map<uint64_t, ContentTotals> totals_;
};

int Main(int argc, char** argv) {
  uint64_t num_events = 2'000'000;
  int parallelism = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--events=", 9) == 0) {
      num_events = std::strtoull(argv[i] + 9, nullptr, 10);
    } else if (std::strncmp(argv[i], "--parallelism=", 14) == 0) {
      parallelism = std::atoi(argv[i] + 14);
    } else {
      std::fprintf(stderr, "usage: %s [--events=N] [--parallelism=P]\n", argv[0]);
      return 2;
    }
  }

  // Generated data: 2,000 content rows, events with skewed popularity.
  std::mt19937_64 rng(7);
  const char* kTypes[] = {"podcast", "newsletter", "video"};
  const char* kEvents[] = {"play", "pause", "finish", "click"};
  std::vector<Content> content;
  for (uint64_t id = 0; id < 2000; ++id) {
    std::optional<int32_t> length;
    if (id % 50 != 0) length = static_cast<int32_t>(60 + rng() % 3600);  // some lengths unknown
    content.push_back({id, "content-" + std::to_string(id), kTypes[rng() % 3], length});
  }
  const int64_t start_ts = 1'767'225'600'000;
  std::vector<weir::testing::TimestampedValue<Engagement>> events;
  events.reserve(num_events);
  std::geometric_distribution<uint64_t> popularity(0.002);
  for (uint64_t i = 0; i < num_events; ++i) {
    Engagement e{i, popularity(rng) % 2000, kEvents[rng() % 4],
                 start_ts + static_cast<int64_t>(i / 100), std::nullopt};
    if (rng() % 20 != 0) e.duration_ms = static_cast<int32_t>(rng() % 600'000);
    events.push_back({e, e.event_ts});
  }
  std::vector<weir::testing::TimestampedValue<Content>> rows;
  for (const Content& c : content) rows.push_back({c, start_ts});

  weir::Pipeline pipeline({.parallelism = parallelism});
  auto content_stream =
      pipeline.Source(weir::testing::VectorSource<Content>::Create(rows)).Name("content");
  auto event_stream =
      pipeline
          .Source(weir::testing::VectorSource<Engagement>::Create(std::move(events)),
                  weir::WatermarkStrategy<Engagement>::BoundedOutOfOrderness(absl::Seconds(2)))
          .Name("engagement_events");
  auto sink = weir::testing::CollectingSink<ContentTotals>::Create();
  event_stream.Connect(content_stream.Broadcast())
      .Process(JoinWithContent{})
      .Name("join-content")
      .KeyBy([](const Enriched& e) { return e.content_id; })
      .Process(TotalsPerContent{})
      .Name("totals-per-content")
      .Sink(sink);

  const auto started = std::chrono::steady_clock::now();
  absl::Status status = pipeline.Run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!status.ok()) {
    std::fprintf(stderr, "pipeline failed: %s\n", status.ToString().c_str());
    return 1;
  }

  std::vector<ContentTotals> totals = sink->Values();
  std::sort(totals.begin(), totals.end(), [](const auto& a, const auto& b) {
    return a.engagement_seconds > b.engagement_seconds;
  });
  int64_t seen = 0;
  for (const auto& t : totals) seen += t.events;
  std::printf("Top content by engagement seconds:\n");
  std::printf("  %-14s %-11s %9s %9s %14s %8s\n", "slug", "type", "events", "finishes",
              "engagement_s", "avg_pct");
  for (size_t i = 0; i < std::min<size_t>(10, totals.size()); ++i) {
    const auto& t = totals[i];
    std::printf(
        "  %-14s %-11s %9lld %9lld %14.0f %8s\n", t.slug.c_str(), t.content_type.c_str(),
        static_cast<long long>(t.events), static_cast<long long>(t.finishes), t.engagement_seconds,
        t.pct_count > 0 ? std::to_string(t.pct_sum / t.pct_count).substr(0, 6).c_str() : "null");
  }
  std::map<std::string, std::pair<double, int64_t>> per_type;
  for (const auto& t : totals) {
    per_type[t.content_type].first += t.pct_sum;
    per_type[t.content_type].second += t.pct_count;
  }
  std::printf("\nAverage engagement_pct per content type:\n");
  for (const auto& [type, sum] : per_type) {
    std::printf("  %-11s %6.2f%%\n", type.c_str(), sum.second > 0 ? sum.first / sum.second : 0.0);
  }
  std::printf("\n%lld events joined and aggregated on %d workers in %.3f s: %.0f events/s\n",
              static_cast<long long>(seen), parallelism, seconds,
              static_cast<double>(seen) / seconds);
  if (seen != static_cast<int64_t>(num_events)) {
    std::fprintf(stderr, "expected %llu events, aggregated %lld\n",
                 static_cast<unsigned long long>(num_events), static_cast<long long>(seen));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
