// Failures: an error in any user function fails the job with a status that
// names the operator and keeps the original code and message, every worker
// stops (even with unbounded sources), and bad configuration is rejected
// when the job starts.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::HasSubstr;

constexpr int kRecords = 10'000;
// The element the failing functions choke on.
constexpr int kPoison = 1234;

// Runs Pipeline::Run() with a watchdog: a job that does not stop within the
// deadline aborts the test binary instead of hanging the suite.
absl::Status RunWithDeadline(Pipeline& pipeline, absl::Duration deadline = absl::Seconds(20)) {
  std::future<absl::Status> status =
      std::async(std::launch::async, [&pipeline] { return pipeline.Run(); });
  if (status.wait_for(absl::ToChronoMilliseconds(deadline)) != std::future_status::ready) {
    std::fprintf(stderr, "Pipeline::Run() did not return within %s: the workers did not stop\n",
                 absl::FormatDuration(deadline).c_str());
    std::abort();
  }
  return status.get();
}

// 0 .. kRecords-1 over four splits that never end by themselves: if a
// failure did not stop every worker, Run() would never return.
Stream<int> UnboundedInput(Pipeline& pipeline) {
  std::vector<int> values(kRecords);
  for (int idx = 0; idx < kRecords; ++idx) values[idx] = idx;
  return pipeline.Source(
      testing::VectorSource<int>::Create(values, {.records_per_poll = 256, .unbounded = true}),
      WatermarkStrategy<int>::ForMonotonousTimestamps());
}

void ExpectFailure(const absl::Status& status, absl::StatusCode code, const std::string& op_name,
                   const std::string& message) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("operator '" + op_name + "'"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(message));
}

class ErrorTest : public ::testing::TestWithParam<int> {
 protected:
  PipelineOptions Options() const { return {.parallelism = GetParam(), .batch_size = 128}; }
};

class FailingProcess final : public ProcessFunction<int, int> {
 public:
  absl::Status ProcessElement(const int& value, Context&, Collector<int>& out) override {
    if (value == kPoison) return absl::FailedPreconditionError("bad element 1234");
    out.Collect(value);
    return absl::OkStatus();
  }
};

TEST_P(ErrorTest, StatusFromProcessFunction) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline).Process(FailingProcess{}).Name("validate").Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kFailedPrecondition, "validate",
                "bad element 1234");
}

class FailingKeyedProcess final : public KeyedProcessFunction<int, int, int> {
 public:
  absl::Status ProcessElement(const int& value, Context&, Collector<int>& out) override {
    if (value == kPoison) return absl::DataLossError("corrupt state for key");
    out.Collect(value);
    return absl::OkStatus();
  }
};

TEST_P(ErrorTest, StatusFromKeyedProcessFunction) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .KeyBy([](const int& x) { return x % 64; })
      .Process(FailingKeyedProcess{})
      .Name("keyed")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kDataLoss, "keyed",
                "corrupt state for key");
}

class FailingTimer final : public KeyedProcessFunction<int, int, int> {
 public:
  absl::Status ProcessElement(const int&, Context& ctx, Collector<int>&) override {
    ctx.timer_service().RegisterEventTimeTimer(ctx.timestamp());
    return absl::OkStatus();
  }
  absl::Status OnTimer(Timestamp timestamp, OnTimerContext&, Collector<int>&) override {
    if (timestamp == kPoison) return absl::ResourceExhaustedError("timer quota");
    return absl::OkStatus();
  }
};

TEST_P(ErrorTest, StatusFromOnTimer) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .KeyBy([](const int& x) { return x % 64; })
      .Process(FailingTimer{})
      .Name("timers")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kResourceExhausted, "timers",
                "timer quota");
}

TEST_P(ErrorTest, StatusOrFromMap) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .Map([](int x) -> absl::StatusOr<int> {
        if (x == kPoison) return absl::InvalidArgumentError("cannot parse record 1234");
        return x * 2;
      })
      .Name("parse")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kInvalidArgument, "parse",
                "cannot parse record 1234");
}

TEST_P(ErrorTest, ExceptionFromMap) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .Map([](int x) {
        if (x == kPoison) throw std::runtime_error("map blew up");
        return x;
      })
      .Name("mapper")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kInternal, "mapper", "map blew up");
}

TEST_P(ErrorTest, ExceptionFromFilter) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .Filter([](const int& x) {
        if (x == kPoison) throw std::out_of_range("filter blew up");
        return x % 2 == 0;
      })
      .Name("evens")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kInternal, "evens", "filter blew up");
}

TEST_P(ErrorTest, ExceptionFromFlatMap) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .FlatMap<int>([](int x, Collector<int>& out) {
        if (x == kPoison) throw std::runtime_error("flatmap blew up");
        out.Collect(x);
        out.Collect(-x);
      })
      .Name("explode")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kInternal, "explode",
                "flatmap blew up");
}

TEST_P(ErrorTest, StatusFromFlatMap) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .FlatMap<int>([](const int& x, Collector<int>& out) -> absl::Status {
        if (x == kPoison) return absl::OutOfRangeError("flatmap refused");
        out.Collect(x);
        return absl::OkStatus();
      })
      .Name("explode")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kOutOfRange, "explode",
                "flatmap refused");
}

TEST_P(ErrorTest, ExceptionFromSink) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .Sink([](const int& x) {
        if (x == kPoison) throw std::runtime_error("sink blew up");
      })
      .Name("writer");
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kInternal, "writer", "sink blew up");
}

TEST_P(ErrorTest, StatusFromSink) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .KeyBy([](const int& x) { return x; })
      .AsStream()
      .Sink([](const int& x) -> absl::Status {
        if (x == kPoison) return absl::UnavailableError("redis is down");
        return absl::OkStatus();
      })
      .Name("writer");
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kUnavailable, "writer",
                "redis is down");
}

TEST_P(ErrorTest, NonStdException) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .Map([](int x) {
        if (x == kPoison) throw 42;
        return x;
      })
      .Name("thrower")
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kInternal, "thrower",
                "exception of unknown type");
}

class PassThrough final : public KeyedProcessFunction<int, int, int> {
 public:
  absl::Status ProcessElement(const int& value, Context&, Collector<int>& out) override {
    out.Collect(value);
    return absl::OkStatus();
  }
};

// A key function is user code too. The exchange evaluates it when it routes
// records to other workers (at parallelism 1 there is nothing to route, and
// the keyed operator evaluates it first): either names the failure, never
// the upstream operator whose output was being routed.
TEST_P(ErrorTest, ExceptionFromKeyFunction) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .Map([](int x) { return x; })
      .Name("before")
      .KeyBy([](const int& x) {
        if (x == kPoison) throw std::runtime_error("no key");
        return x % 16;
      })
      .Name("by-user")
      .Process(PassThrough{})
      .Name("keyed")
      .Sink([](const int&) {});
  const absl::Status status = RunWithDeadline(pipeline);
  ExpectFailure(status, absl::StatusCode::kInternal, GetParam() == 1 ? "keyed" : "by-user",
                "no key");
  EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr("before")));
  EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr("Source")));
}

// The operator that fails is named, not the upstream operator whose output
// it was processing when it failed.
TEST_P(ErrorTest, DownstreamFailureIsNotBlamedOnUpstream) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline)
      .FlatMap<int>([](int x, Collector<int>& out) { out.Collect(x); })
      .Name("upstream")
      .Process(FailingProcess{})
      .Name("downstream")
      .Sink([](const int&) {});
  const absl::Status status = RunWithDeadline(pipeline);
  ExpectFailure(status, absl::StatusCode::kFailedPrecondition, "downstream", "bad element 1234");
  EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr("upstream")));
}

class FailingOpen final : public ProcessFunction<int, int> {
 public:
  explicit FailingOpen(bool throws) : throws_(throws) {}
  absl::Status Open(const RuntimeContext& runtime) override {
    if (throws_) throw std::runtime_error("open threw");
    return absl::UnavailableError("cannot connect from worker " +
                                  std::to_string(runtime.worker_index));
  }
  absl::Status ProcessElement(const int& value, Context&, Collector<int>& out) override {
    out.Collect(value);
    return absl::OkStatus();
  }

 private:
  bool throws_;
};

TEST_P(ErrorTest, StatusFromOpen) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline).Process(FailingOpen(false)).Name("opener").Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kUnavailable, "opener",
                "cannot connect from worker");
}

TEST_P(ErrorTest, ExceptionFromOpen) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline).Process(FailingOpen(true)).Name("opener").Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kInternal, "opener", "open threw");
}

// A source reader reporting an error (e.g. a broker that went away).
class FailingSource final : public Source<int> {
 public:
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return std::vector<SourceSplit>{{"only"}};
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int>>> CreateReader(
      const SourceReaderContext& context) override {
    return std::unique_ptr<SourceReader<int>>(new Reader(!context.splits.empty()));
  }

 private:
  class Reader final : public SourceReader<int> {
   public:
    explicit Reader(bool has_split) : has_split_(has_split) {}
    absl::StatusOr<PollResult> Poll(SourceOutput<int>& out) override {
      if (!has_split_) return PollResult::kNothingAvailable;
      if (next_ == kPoison) return absl::UnavailableError("broker went away");
      out.Collect(0, next_, next_);
      ++next_;
      return PollResult::kMoreAvailable;
    }

   private:
    bool has_split_;
    int next_ = 0;
  };
};

TEST_P(ErrorTest, StatusFromSourceReader) {
  Pipeline pipeline(Options());
  pipeline.Source(std::make_shared<FailingSource>())
      .Name("events")
      .KeyBy([](const int& x) { return x; })
      .AsStream()
      .Sink([](const int&) {});
  ExpectFailure(RunWithDeadline(pipeline), absl::StatusCode::kUnavailable, "events",
                "broker went away");
}

// Stop() on a failed job changes nothing: the failure is what Wait() reports.
TEST_P(ErrorTest, FailureWinsOverStopAndCancel) {
  Pipeline pipeline(Options());
  UnboundedInput(pipeline).Process(FailingProcess{}).Name("validate").Sink([](const int&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!job->done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(job->done()) << "the failed job did not stop";
  job->Stop();
  job->Cancel();
  ExpectFailure(job->Wait(), absl::StatusCode::kFailedPrecondition, "validate", "bad element 1234");
}

INSTANTIATE_TEST_SUITE_P(Parallelism, ErrorTest, ::testing::Values(1, 4),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return "P" + std::to_string(param_info.param);
                         });

// ---------------------------------------------------------------------------
// Configuration errors: reported by Start() (and Run()), before any record.

void BuildValidPipeline(Pipeline& pipeline) {
  pipeline.Source(testing::VectorSource<int>::Create(std::vector<int>{1, 2, 3}))
      .Sink([](const int&) {});
}

absl::Status StartStatus(PipelineOptions options) {
  Pipeline pipeline(std::move(options));
  BuildValidPipeline(pipeline);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  if (!job.ok()) return job.status();
  return job->Wait();
}

TEST(ConfigurationErrorTest, ParallelismMustBePositive) {
  for (int parallelism : {0, -1}) {
    const absl::Status status = StartStatus({.parallelism = parallelism});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("parallelism"));
  }
}

TEST(ConfigurationErrorTest, MaxParallelismMustCoverParallelism) {
  const absl::Status status = StartStatus({.parallelism = 4, .max_parallelism = 2});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("max_parallelism"));
  EXPECT_EQ(StartStatus({.parallelism = 2, .max_parallelism = 0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartStatus({.parallelism = 1, .max_parallelism = 32769}).code(),
            absl::StatusCode::kInvalidArgument);
  // The boundaries themselves are fine.
  EXPECT_TRUE(StartStatus({.parallelism = 2, .max_parallelism = 2}).ok());
  EXPECT_TRUE(StartStatus({.parallelism = 1, .max_parallelism = 32768}).ok());
}

TEST(ConfigurationErrorTest, BatchSizeAndQueueCapacityMustBePositive) {
  EXPECT_EQ(StartStatus({.batch_size = 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartStatus({.queue_capacity = 0}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigurationErrorTest, PipelineWithoutSink) {
  Pipeline pipeline({.parallelism = 2});
  pipeline.Source(testing::VectorSource<int>::Create(std::vector<int>{1, 2, 3})).Map([](int x) {
    return x + 1;
  });
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << job.status();
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("sink"));

  Pipeline empty;
  EXPECT_EQ(empty.Run().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigurationErrorTest, RunReportsConfigurationErrors) {
  Pipeline pipeline({.parallelism = 0});
  BuildValidPipeline(pipeline);
  EXPECT_EQ(RunWithDeadline(pipeline).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weir
