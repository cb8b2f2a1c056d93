// Counters, gauges, histograms, the registry and the Prometheus text format
// (checked with the strict parser of prometheus_parser.h).

#include "weir/metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/metrics/registry.h"
#include "tests/unit/metrics/prometheus_parser.h"

namespace weir {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::weir::internal::MetricRegistry;

TEST(CounterTest, CountsWhatOneWriterAdds) {
  Counter counter;
  for (int i = 0; i < 1000; ++i) counter.Increment();
  counter.Increment(24);
  EXPECT_EQ(counter.value(), 1024);
}

TEST(CounterTest, ReadersSeeTheWritersProgressWithoutTearing) {
  Counter counter;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 1'000'000; ++i) counter.Increment();
    done = true;
  });
  int64_t last = 0;
  while (!done.load()) {
    const int64_t now = counter.value();
    ASSERT_GE(now, last);  // monotonic from the reader's side
    last = now;
  }
  writer.join();
  EXPECT_EQ(counter.value(), 1'000'000);
}

TEST(GaugeTest, SetAndAdd) {
  Gauge gauge;
  gauge.Set(2.5);
  gauge.Add(-1);
  EXPECT_DOUBLE_EQ(gauge.value(), 1.5);
}

TEST(HistogramTest, BucketsAreLessOrEqual) {
  Histogram histogram({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 2.0, 4.0, 5.0, 7.0}) histogram.Observe(v);
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_THAT(snapshot.counts, ElementsAre(2, 2, 2, 1));
  EXPECT_EQ(snapshot.count, 7);
  EXPECT_DOUBLE_EQ(snapshot.sum, 21.0);
}

TEST(HistogramTest, SortsBoundsAndDropsInfinity) {
  Histogram histogram({5, 1, std::numeric_limits<double>::infinity(), 2, 2});
  EXPECT_THAT(histogram.bounds(), ElementsAre(1, 2, 5));
}

TEST(HistogramTest, QuantilesInterpolateInsideTheBucket) {
  Histogram histogram({10, 20, 30});
  for (int i = 0; i < 50; ++i) histogram.Observe(5);   // [0, 10]
  for (int i = 0; i < 50; ++i) histogram.Observe(15);  // (10, 20]
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_DOUBLE_EQ(snapshot.Quantile(0.5), 10);
  EXPECT_DOUBLE_EQ(snapshot.Quantile(0.75), 15);
  EXPECT_DOUBLE_EQ(snapshot.Quantile(1.0), 20);
  EXPECT_TRUE(std::isnan(Histogram({1}).Snapshot().Quantile(0.5)));
}

TEST(HistogramTest, ExponentialBounds) {
  EXPECT_THAT(Histogram::ExponentialBounds(1, 2, 4), ElementsAre(1, 2, 4, 8));
}

TEST(RegistryTest, GroupsLabelSeriesWithJobOperatorAndWorker) {
  MetricRegistry registry(MetricLabels{{"job", "j"}});
  MetricGroup& group = registry.Group("enrich", 1);
  group.AddCounter("app_seen_total", "Seen").Increment(3);
  group.AddGauge("app_level", "Level", {{"tier", "gold"}}).Set(7);
  MetricsSnapshot snapshot = registry.Collect();
  const MetricFamily* seen = snapshot.Find("app_seen_total");
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(seen->type, MetricType::kCounter);
  ASSERT_EQ(seen->series.size(), 1u);
  EXPECT_EQ(seen->series[0].labels,
            (MetricLabels{{"job", "j"}, {"operator", "enrich"}, {"worker", "1"}}));
  EXPECT_EQ(snapshot.Sum("app_level", {{"tier", "gold"}}), 7);
}

TEST(RegistryTest, RegisteringAgainReturnsTheSameMetric) {
  MetricRegistry registry(MetricLabels{{"job", "j"}});
  Counter& a = registry.Group("op", 0).AddCounter("c_total", "C");
  Counter& b = registry.Group("op", 0).AddCounter("c_total", "C");
  Counter& other_worker = registry.Group("op", 1).AddCounter("c_total", "C");
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other_worker);
  a.Increment(2);
  other_worker.Increment(5);
  EXPECT_EQ(registry.Collect().Sum("c_total"), 7);
  EXPECT_EQ(registry.Collect().Sum("c_total", {{"worker", "1"}}), 5);
}

TEST(RegistryTest, ATypeClashIsNotExported) {
  MetricRegistry registry(MetricLabels{{"job", "j"}});
  registry.JobGroup().AddCounter("x", "first").Increment();
  Gauge& clash = registry.JobGroup().AddGauge("x", "second");
  clash.Set(99);  // usable, but not exported
  MetricsSnapshot snapshot = registry.Collect();
  ASSERT_NE(snapshot.Find("x"), nullptr);
  EXPECT_EQ(snapshot.Find("x")->type, MetricType::kCounter);
  EXPECT_EQ(snapshot.Sum("x"), 1);
}

TEST(RegistryTest, NamesAreSanitized) {
  EXPECT_EQ(internal::SanitizeMetricName("app.latency-ms"), "app_latency_ms");
  EXPECT_EQ(internal::SanitizeMetricName("9lives"), "_9lives");
  EXPECT_EQ(internal::SanitizeMetricName("a:b"), "a:b");
  EXPECT_EQ(internal::SanitizeMetricName("a:b", /*label=*/true), "a_b");
}

TEST(RegistryTest, CollectorsComeFirstAndWinOnClashes) {
  MetricRegistry registry(MetricLabels{{"job", "j"}});
  registry.JobGroup().AddGauge("weir_builtin", "user").Set(1);
  registry.AddCollector([](internal::MetricsBuilder& builder) {
    builder.AddCounter("weir_builtin", "runtime", {{"job", "j"}}, 42);
  });
  MetricsSnapshot snapshot = registry.Collect();
  ASSERT_NE(snapshot.Find("weir_builtin"), nullptr);
  EXPECT_EQ(snapshot.Find("weir_builtin")->type, MetricType::kCounter);
  EXPECT_EQ(snapshot.Sum("weir_builtin"), 42);
}

TEST(PrometheusTextTest, ParsesStrictlyAndKeepsValues) {
  MetricRegistry registry(MetricLabels{{"job", "quote\"back\\slash\nnewline"}});
  MetricGroup& group = registry.Group("op", 0);
  group.AddCounter("app_records_total", "Records\nwith a \\ in the help").Increment(12345678901);
  group.AddGauge("app_ratio", "Ratio").Set(0.125);
  group.AddGauge("app_inf", "Infinite").Set(std::numeric_limits<double>::infinity());
  Histogram& latency = group.AddHistogram("app_latency_seconds", "Latency", {0.1, 1});
  latency.Observe(0.05);
  latency.Observe(0.5);
  latency.Observe(3);
  const std::string text = registry.Collect().ToPrometheusText();
  absl::StatusOr<testing::ParsedExposition> parsed = testing::ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(parsed->families.at("app_records_total").type, "counter");
  EXPECT_EQ(parsed->Sum("app_records_total"), 12345678901.0);
  EXPECT_EQ(parsed->Sum("app_ratio"), 0.125);
  EXPECT_TRUE(std::isinf(parsed->Sum("app_inf")));
  EXPECT_EQ(parsed->families.at("app_latency_seconds").type, "histogram");
  EXPECT_EQ(parsed->Sum("app_latency_seconds_bucket", {{"le", "0.1"}}), 1);
  EXPECT_EQ(parsed->Sum("app_latency_seconds_bucket", {{"le", "1"}}), 2);
  EXPECT_EQ(parsed->Sum("app_latency_seconds_bucket", {{"le", "+Inf"}}), 3);
  EXPECT_EQ(parsed->Sum("app_latency_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(parsed->Sum("app_latency_seconds_sum"), 3.55);
  // The label value comes back unescaped.
  EXPECT_EQ(parsed->families.at("app_ratio").samples[0].labels.at("job"),
            "quote\"back\\slash\nnewline");
  EXPECT_THAT(text, HasSubstr("# HELP app_records_total Records\\nwith a \\\\ in the help\n"));
}

TEST(PrometheusTextTest, TheParserRejectsMalformedText) {
  for (const char* bad : {
           "metric 1",                  // no newline at the end
           "1metric 1\n",               // bad name
           "m{a=\"x} 1\n",              // unterminated value
           "m{a=\"x\\q\"} 1\n",         // bad escape
           "m 1\nm 2\n",                // duplicate series
           "# TYPE m counter\nm -1\n",  // negative counter
           "a 1\nb 1\na{x=\"1\"} 1\n",  // not contiguous
           "m one\n",                   // bad value
           "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count "
           "1\n",  // not cumulative
       }) {
    EXPECT_FALSE(testing::ParsePrometheusText(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace weir
