// The built-in and user metrics of running jobs (JobHandle::Metrics):
// every value matches what the test pushed through the pipeline, and the
// whole exposition parses strictly.

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/metrics/registry.h"
#include "tests/unit/metrics/prometheus_parser.h"
#include "tests/unit/metrics/test_pipeline.h"
#include "weir/testing.h"
#include "weir/weir.h"
#include "weir/window.h"

namespace weir {
namespace {

using ::weir::testing::WaitFor;

double Op(const MetricsSnapshot& snapshot, const std::string& metric, const std::string& op) {
  return snapshot.Sum(metric, {{"operator", op}});
}

// Registers a counter in Open and a histogram lazily through the context.
class Tagging final : public ProcessFunction<int64_t, int64_t> {
 public:
  absl::Status Open(const RuntimeContext& runtime) override {
    if (runtime.metrics == nullptr) return absl::InternalError("no metric group in Open");
    odd_ = &runtime.metrics->AddCounter("app_odd_total", "Odd values seen");
    return absl::OkStatus();
  }
  absl::Status ProcessElement(const int64_t& value, Context& ctx,
                              Collector<int64_t>& out) override {
    if (value % 2 != 0) odd_->Increment();
    if (sizes_ == nullptr) {
      sizes_ =
          &ctx.metrics().AddHistogram("app_value", "Values", {10, 100, 1000}, {{"kind", "raw"}});
    }
    sizes_->Observe(static_cast<double>(value));
    out.Collect(value);
    return absl::OkStatus();
  }

 private:
  Counter* odd_ = nullptr;
  Histogram* sizes_ = nullptr;
};

std::vector<testing::TimestampedValue<int64_t>> Numbers(int64_t n, Timestamp first_ts = 0) {
  std::vector<testing::TimestampedValue<int64_t>> records;
  for (int64_t i = 0; i < n; ++i) records.push_back({i, first_ts + i});
  return records;
}

class JobMetricsTest : public ::testing::TestWithParam<int> {
 protected:
  int parallelism() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Parallelism, JobMetricsTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return absl::StrCat("p", param_info.param);
                         });

TEST_P(JobMetricsTest, CountsMatchWhatWentThrough) {
  constexpr int64_t kRecords = 20'000;
  Pipeline pipeline({.parallelism = parallelism(), .batch_size = 256, .job_name = "counts"});
  testing::VectorSourceOptions source_options;
  source_options.records_per_poll = 500;
  auto sink = testing::CollectingSink<int64_t>::Create();
  pipeline
      .Source(testing::VectorSource<int64_t>::Create(Numbers(kRecords), source_options),
              WatermarkStrategy<int64_t>::BoundedOutOfOrderness(absl::Milliseconds(10)))
      .Name("numbers")
      .Filter([](const int64_t& v) { return v % 4 != 0; })
      .Name("three-quarters")
      .Process(Tagging{})
      .Name("tag")
      .KeyBy([](const int64_t& v) { return v % 97; })
      .Name("by-key")
      .Process(testing::CountPerKey{})
      .Name("count")
      .Sink(sink)
      .Name("out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->Wait().ok());
  const MetricsSnapshot m = job->Metrics();
  const double kept = kRecords * 3 / 4;

  EXPECT_EQ(Op(m, "weir_operator_records_in_total", "numbers"), kRecords);
  EXPECT_EQ(Op(m, "weir_operator_records_out_total", "numbers"), kRecords);
  EXPECT_EQ(Op(m, "weir_operator_records_in_total", "three-quarters"), kRecords);
  EXPECT_EQ(Op(m, "weir_operator_records_out_total", "three-quarters"), kept);
  EXPECT_EQ(Op(m, "weir_operator_records_in_total", "tag"), kept);
  EXPECT_EQ(Op(m, "weir_operator_records_in_total", "by-key"), kept);  // the exchange's receiver
  EXPECT_EQ(Op(m, "weir_operator_records_in_total", "count"), kept);
  EXPECT_EQ(Op(m, "weir_operator_records_out_total", "count"), kept);
  EXPECT_EQ(Op(m, "weir_operator_records_in_total", "out"), kept);
  EXPECT_EQ(static_cast<double>(sink->size()), kept);

  // Batches: what one fused operator emits, the next receives.
  EXPECT_GT(Op(m, "weir_operator_batches_out_total", "numbers"), 0);
  EXPECT_EQ(Op(m, "weir_operator_batches_out_total", "numbers"),
            Op(m, "weir_operator_batches_in_total", "three-quarters"));
  EXPECT_EQ(Op(m, "weir_operator_batches_out_total", "count"),
            Op(m, "weir_operator_batches_in_total", "out"));
  // Batches of at most batch_size records.
  EXPECT_GE(Op(m, "weir_operator_batches_in_total", "out") * 256, kept);

  // User metrics, from every worker.
  EXPECT_EQ(m.Sum("app_odd_total"), kRecords / 2);
  EXPECT_EQ(m.Sum("app_odd_total", {{"operator", "tag"}}), kRecords / 2);
  EXPECT_EQ(m.Sum("app_value", {{"kind", "raw"}}), kept);
  const MetricFamily* odd = m.Find("app_odd_total");
  ASSERT_NE(odd, nullptr);
  EXPECT_EQ(odd->series.size(), static_cast<size_t>(parallelism()));
  EXPECT_EQ(odd->series[0].labels[0], (std::pair<std::string, std::string>("job", "counts")));

  // At the end of input every watermark is +inf.
  const MetricFamily* watermarks = m.Find("weir_operator_watermark_milliseconds");
  ASSERT_NE(watermarks, nullptr);
  for (const MetricSeries& series : watermarks->series) EXPECT_TRUE(std::isinf(series.value));

  // A sink flushes once per worker at the end of input; it observes each batch's lag.
  EXPECT_EQ(m.Sum("weir_sink_flush_duration_seconds", {{"operator", "out"}}), parallelism());
  EXPECT_EQ(m.Sum("weir_sink_event_time_lag_seconds", {{"operator", "out"}}),
            Op(m, "weir_operator_batches_in_total", "out"));
  EXPECT_EQ(m.Sum("weir_sink_errors_total"), 0);

  // Workers spent time; the exchange's rings are there (and empty now).
  for (int worker = 0; worker < parallelism(); ++worker) {
    const MetricLabels w = {{"worker", absl::StrCat(worker)}};
    EXPECT_GT(
        m.Sum("weir_worker_busy_seconds_total", w) + m.Sum("weir_worker_idle_seconds_total", w), 0);
  }
  const MetricFamily* fill = m.Find("weir_exchange_queue_fill_ratio");
  ASSERT_NE(fill, nullptr);
  EXPECT_EQ(fill->series.size(), static_cast<size_t>(parallelism() * parallelism()));
  EXPECT_EQ(m.Sum("weir_exchange_queue_fill_ratio", {{"exchange", "by-key"}}), 0);
  EXPECT_EQ(m.Sum("weir_job_state", {{"state", "finished"}}), 1);

  // The old per-operator API agrees.
  int64_t sink_in = 0;
  for (const testing::OperatorMetricsSnapshot& op : testing::OperatorMetricsOf(job->Metrics())) {
    if (op.name == "out") sink_in += op.records_in;
  }
  EXPECT_EQ(static_cast<double>(sink_in), kept);

  const std::string text = m.ToPrometheusText();
  absl::StatusOr<testing::ParsedExposition> parsed = testing::ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(parsed->Sum("weir_operator_records_in_total", {{"operator", "out"}, {"job", "counts"}}),
            kept);
}

// A source's watermark is max timestamp - delay - 1 as soon as its records
// are out; downstream operators follow.
TEST(JobMetricsWatermarkTest, WatermarksAreLive) {
  Pipeline pipeline({.job_name = "watermarks"});
  testing::VectorSourceOptions source_options;
  source_options.splits = 1;
  source_options.unbounded = true;
  auto sink = testing::CollectingSink<int64_t>::Create();
  pipeline
      .Source(testing::VectorSource<int64_t>::Create(Numbers(1000, 1000), source_options),
              WatermarkStrategy<int64_t>::BoundedOutOfOrderness(absl::ZeroDuration()))
      .Name("numbers")
      .Map([](int64_t v) { return v; })
      .Name("same")
      .Sink(sink)
      .Name("out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitFor([&] { return sink->size() == 1000; }));
  ASSERT_TRUE(WaitFor(
      [&] { return Op(job->Metrics(), "weir_operator_watermark_milliseconds", "same") == 1998; }));
  EXPECT_EQ(Op(job->Metrics(), "weir_operator_watermark_milliseconds", "numbers"), 1998);
  EXPECT_EQ(job->Metrics().Sum("weir_job_state", {{"state", "running"}}), 1);
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_TRUE(std::isinf(Op(job->Metrics(), "weir_operator_watermark_milliseconds", "out")));
}

// One record per poll makes the watermark each record meets known: the
// record at 50 ms arrives after the watermark passed its window's end.
TEST(JobMetricsLateTest, LateRecordsAreCounted) {
  Pipeline pipeline({.job_name = "late"});
  testing::VectorSourceOptions source_options;
  source_options.splits = 1;
  source_options.records_per_poll = 1;
  std::vector<testing::TimestampedValue<int64_t>> records = {{1, 100}, {2, 200}, {3, 5000},
                                                             {4, 50},  {5, 60},  {6, 5100}};
  auto sink = testing::CollectingSink<int64_t>::Create();
  pipeline
      .Source(testing::VectorSource<int64_t>::Create(records, source_options),
              WatermarkStrategy<int64_t>::BoundedOutOfOrderness(absl::ZeroDuration()))
      .KeyBy([](const int64_t&) { return int64_t{0}; })
      .Window(TumblingEventTimeWindows::Of(absl::Seconds(1)))
      .Aggregate(aggregations::Count<int64_t>())
      .Name("windows")
      .Sink(sink)
      .Name("out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(Op(job->Metrics(), "weir_operator_late_records_total", "windows"), 2);
}

TEST(JobMetricsCheckpointTest, CheckpointsAndStateSizeAreReported) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/weir-metrics-ckpt-", getpid());
  std::filesystem::remove_all(dir);
  Pipeline pipeline({.parallelism = 2,
                     .checkpoints = {.storage_uri = "file://" + dir},
                     .job_name = "checkpointed"});
  testing::VectorSourceOptions source_options;
  source_options.unbounded = true;
  source_options.records_per_second = 20'000;
  auto sink = testing::CollectingSink<int64_t>::Create();
  pipeline.Source(testing::VectorSource<int64_t>::Create(Numbers(200'000), source_options))
      .Uid("numbers")
      .KeyBy([](const int64_t& v) { return v % 1000; })
      .Process(testing::CountPerKey{})
      .Uid("count")
      .Sink(sink)
      .Uid("out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitFor([&] { return sink->size() > 5000; }));
  absl::StatusOr<int64_t> first = job->TriggerCheckpoint();
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<int64_t> second = job->TriggerCheckpoint();
  ASSERT_TRUE(second.ok()) << second.status();

  MetricsSnapshot m = job->Metrics();
  EXPECT_EQ(m.Sum("weir_checkpoints_completed_total"), 2);
  EXPECT_EQ(m.Sum("weir_checkpoints_failed_total"), 0);
  EXPECT_EQ(m.Sum("weir_checkpoint_last_completed_id"), *second);
  EXPECT_EQ(m.Sum("weir_checkpoint_duration_seconds"), 2);  // a histogram: its count
  EXPECT_GT(m.Sum("weir_checkpoint_last_size_bytes"), 0);
  EXPECT_GT(m.Sum("weir_checkpoint_last_uploaded_bytes"), 0);
  // Keyed state of both workers, in the memory backend.
  EXPECT_GT(m.Sum("weir_state_size_bytes", {{"operator", "count"}, {"backend", "memory"}}), 0);
  const MetricFamily* state = m.Find("weir_state_size_bytes");
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(state->series.size(), 2u);
  // Each checkpoint pre-committed the sink on every worker.
  EXPECT_EQ(m.Sum("weir_sink_flush_duration_seconds", {{"operator", "out"}}), 4);

  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  m = job->Metrics();
  EXPECT_EQ(m.Sum("weir_checkpoints_completed_total"), 3);  // and the final one
  absl::StatusOr<testing::ParsedExposition> parsed =
      testing::ParsePrometheusText(m.ToPrometheusText());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Sum("weir_checkpoint_duration_seconds_count"), 3);
  std::filesystem::remove_all(dir);
}

TEST(DeadLetterMetricsTest, CountDeadLettersCountsAcceptedLetters) {
  internal::MetricRegistry registry(MetricLabels{{"job", "dlq"}});
  auto queue = testing::CollectingDeadLetterQueue::Create();
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer = queue->CreateWriter("src", 0);
  ASSERT_TRUE(writer.ok());
  std::unique_ptr<DeadLetterWriter> counted =
      CountDeadLetters(*std::move(writer), &registry.Group("src", 0));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(counted->Write(DeadLetter{.payload = "x"}).ok());
  ASSERT_TRUE(counted->Flush().ok());
  EXPECT_EQ(queue->size(), 3u);
  EXPECT_EQ(registry.Collect().Sum("weir_dead_letters_total", {{"operator", "src"}}), 3);
}

}  // namespace
}  // namespace weir
