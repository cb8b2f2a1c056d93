// The engagement generator without servers: options from flags over the
// environment over defaults, the Pacer's schedule on a hand-stepped clock,
// and the paced source in a pipeline (its records are the ChangeGenerator's).

#include "examples/engagement/generator_app.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "examples/engagement/generator.h"
#include "examples/engagement/paced_change_source.h"
#include "examples/engagement/pacer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/wait_for.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace engagement {
namespace {

using ::testing::HasSubstr;

Environment Env(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const char* name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<GeneratorAppOptions> Parse(std::vector<std::string> args,
                                          std::map<std::string, std::string> env = {}) {
  return ParseGeneratorArgs(args, Env(std::move(env)));
}

TEST(GeneratorOptionsTest, Defaults) {
  absl::StatusOr<GeneratorAppOptions> options = Parse({"--brokers=k:9092"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->brokers, "k:9092");
  EXPECT_EQ(options->topic_prefix, "engagement");
  EXPECT_EQ(options->records_per_minute, 200000);
  EXPECT_FALSE(options->burst_mode);
  EXPECT_EQ(options->total, 0);
  EXPECT_EQ(options->seed, 1u);
  EXPECT_EQ(options->initial_contents, 1000);
  EXPECT_FALSE(options->with_schema);
  EXPECT_FALSE(options->start_ms.has_value());
  EXPECT_TRUE(options->postgres.empty());
  const GeneratorOptions generator = ToGeneratorOptions(*options, 1234);
  EXPECT_EQ(generator.start_ms, 1234);
  EXPECT_DOUBLE_EQ(generator.records_per_second, 200000 / 60.0);
  EXPECT_EQ(generator.envelope.server, "engagement");
}

TEST(GeneratorOptionsTest, EnvironmentVariablesAreRead) {
  absl::StatusOr<GeneratorAppOptions> options = Parse({}, {{"KAFKA_BROKERS", "a:1,b:2"},
                                                           {"TOPIC_PREFIX", "shop"},
                                                           {"GENERATION_RATE", "60000"},
                                                           {"BURST_MODE", "true"},
                                                           {"BURST_COUNT", "777"},
                                                           {"BURST_INTERVAL_SECONDS", "15"},
                                                           {"POSTGRES_URL", "host=db"}});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->brokers, "a:1,b:2");
  EXPECT_EQ(options->topic_prefix, "shop");
  EXPECT_EQ(options->records_per_minute, 60000);
  EXPECT_TRUE(options->burst_mode);
  EXPECT_EQ(options->burst_count, 777);
  EXPECT_EQ(options->burst_interval, absl::Seconds(15));
  EXPECT_EQ(options->postgres, "host=db");
  EXPECT_EQ(ToGeneratorOptions(*options, 0).envelope.server, "shop");
}

TEST(GeneratorOptionsTest, FlagsBeatEnvironmentVariables) {
  absl::StatusOr<GeneratorAppOptions> options =
      Parse({"--rate=1200", "--burst-mode=false", "--burst-count", "5", "--brokers=flag:1",
             "--topic-prefix=f", "--with-schema", "--seed=42", "--start-time=1795564800000",
             "--total=10", "--kafka-property=linger.ms=1"},
            {{"KAFKA_BROKERS", "env:1"},
             {"TOPIC_PREFIX", "e"},
             {"GENERATION_RATE", "60000"},
             {"BURST_MODE", "yes"},
             {"BURST_COUNT", "777"}});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->brokers, "flag:1");
  EXPECT_EQ(options->topic_prefix, "f");
  EXPECT_EQ(options->records_per_minute, 1200);
  EXPECT_FALSE(options->burst_mode);
  EXPECT_EQ(options->burst_count, 5);
  EXPECT_TRUE(options->with_schema);
  EXPECT_EQ(options->seed, 42u);
  EXPECT_EQ(options->start_ms, 1795564800000);
  EXPECT_EQ(options->total, 10);
  EXPECT_EQ(options->kafka_properties.at("linger.ms"), "1");
  const GeneratorOptions generator = ToGeneratorOptions(*options, 1);
  EXPECT_EQ(generator.start_ms, 1795564800000);
  EXPECT_TRUE(generator.envelope.with_schema);
  EXPECT_DOUBLE_EQ(generator.records_per_second, 20);
}

TEST(GeneratorOptionsTest, RateForms) {
  const auto rate = [](const std::string& text) {
    absl::StatusOr<GeneratorAppOptions> options = Parse({"--brokers=k:1", "--rate=" + text});
    EXPECT_TRUE(options.ok()) << text << ": " << options.status();
    return options.ok() ? options->records_per_minute : -1;
  };
  EXPECT_EQ(rate("max"), 0);
  EXPECT_EQ(rate("MAX"), 0);
  EXPECT_EQ(rate("0"), 0);
  EXPECT_EQ(rate("100/s"), 6000);
  EXPECT_EQ(rate("5000/min"), 5000);
  EXPECT_EQ(rate("1500.5"), 1500.5);
  absl::StatusOr<GeneratorAppOptions> env_max =
      Parse({}, {{"KAFKA_BROKERS", "k:1"}, {"GENERATION_RATE", "0"}});
  ASSERT_TRUE(env_max.ok());
  EXPECT_EQ(env_max->records_per_minute, 0);
  // Unpaced: event time still advances (at the generator's default pace).
  EXPECT_DOUBLE_EQ(ToGeneratorOptions(*env_max, 0).records_per_second,
                   GeneratorOptions().records_per_second);
}

TEST(GeneratorOptionsTest, ErrorsNameTheFlagOrVariable) {
  absl::StatusOr<GeneratorAppOptions> bad = Parse({"--brokers=k:1", "--rate=fast"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--rate"));
  bad = Parse({"--brokers=k:1"}, {{"BURST_MODE", "maybe"}});
  EXPECT_THAT(bad.status().message(), HasSubstr("BURST_MODE"));
  bad = Parse({"--brokers=k:1"}, {{"GENERATION_RATE", "-5"}});
  EXPECT_THAT(bad.status().message(), HasSubstr("GENERATION_RATE"));
  bad = Parse({"--brokers=k:1", "--no-such-flag"});
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown flag --no-such-flag"));
  bad = Parse({"--brokers=k:1", "--total"});
  EXPECT_THAT(bad.status().message(), HasSubstr("needs a value"));
  bad = Parse({"--brokers=k:1", "--start-time=yesterday"});
  EXPECT_THAT(bad.status().message(), HasSubstr("--start-time"));
  bad = Parse({"--no-kafka"});
  EXPECT_THAT(bad.status().message(), HasSubstr("--postgres"));
}

TEST(GeneratorOptionsTest, WithoutBrokersTheErrorSaysHowToStartTheLocalBroker) {
  absl::StatusOr<GeneratorAppOptions> options = Parse({"--topic-prefix=shop"});
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(), HasSubstr("KAFKA_BROKERS"));
  EXPECT_THAT(options.status().message(), HasSubstr("--brokers"));
  EXPECT_THAT(options.status().message(),
              HasSubstr("weir-kafka-dev shop.public.content:4 shop.public.engagement_events:8"));
  // PostgreSQL only needs no brokers.
  EXPECT_TRUE(Parse({"--no-kafka", "--postgres=host=db"}).ok());
}

TEST(GeneratorOptionsTest, HelpListsEveryFlagAndVariable) {
  absl::StatusOr<GeneratorAppOptions> options = Parse({"--help"});  // no brokers needed
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->help);
  const std::string usage = GeneratorUsage();
  for (const char* text : {"--brokers",
                           "KAFKA_BROKERS",
                           "--topic-prefix",
                           "TOPIC_PREFIX",
                           "--rate",
                           "GENERATION_RATE",
                           "--burst-mode",
                           "BURST_MODE",
                           "--burst-count",
                           "BURST_COUNT",
                           "--burst-interval",
                           "BURST_INTERVAL_SECONDS",
                           "--total",
                           "--duration",
                           "--seed",
                           "--initial-contents",
                           "--with-schema",
                           "--create-topics",
                           "--start-time",
                           "--postgres",
                           "POSTGRES_URL",
                           "--postgres-reset",
                           "--no-kafka",
                           "--kafka-property",
                           "--status-interval",
                           "--connect-timeout",
                           "--zipf-exponent",
                           "--content-change-share",
                           "--dry-run",
                           "--help"}) {
    EXPECT_THAT(usage, HasSubstr(text));
  }
}

TEST(RunGeneratorTest, DryRunGeneratesWithoutBrokersAndSummarizes) {
  absl::StatusOr<GeneratorAppOptions> options =
      Parse({"--dry-run", "--rate=max", "--total=5000", "--initial-contents=100"});
  ASSERT_TRUE(options.ok()) << options.status();
  std::atomic<int> stop{0};
  char* text = nullptr;
  size_t size = 0;
  std::FILE* log = open_memstream(&text, &size);
  ASSERT_NE(log, nullptr);
  absl::Status status = RunGenerator(*options, stop, log);
  std::fclose(log);
  const std::string output(text, size);
  std::free(text);
  ASSERT_TRUE(status.ok()) << status << "\n" << output;
  EXPECT_THAT(output, HasSubstr("dry run"));
  EXPECT_THAT(output, HasSubstr("done: 5000 records"));
  EXPECT_THAT(output, HasSubstr("100 snapshot rows"));
}

// ---------------------------------------------------------------------------
// Pacer

TEST(PacerTest, HoldsTheRateOverTimeWhateverThePollingInterval) {
  for (const absl::Duration step :
       {absl::Microseconds(100), absl::Milliseconds(1), absl::Microseconds(3700)}) {
    Pacer pacer({.records_per_second = 3333.3333});
    int64_t sent = 0;
    for (absl::Duration now; now < absl::Seconds(60); now += step) {
      const int64_t available = pacer.Available(now);
      pacer.Consume(available);
      sent += available;
      if (now == absl::Seconds(1)) {
        EXPECT_NEAR(sent, 3333, 1);
      }
    }
    sent += pacer.Available(absl::Seconds(60));
    // 60 s at 200,000 per minute: exact, no drift from rounding per poll.
    EXPECT_NEAR(sent, 200000, 1) << step;
    EXPECT_EQ(pacer.skipped(), 0);
  }
}

TEST(PacerTest, PartialConsumptionCarriesOver) {
  Pacer pacer({.records_per_second = 1000});
  EXPECT_EQ(pacer.Available(absl::Milliseconds(10)), 10);
  pacer.Consume(4);
  EXPECT_EQ(pacer.Available(absl::Milliseconds(10)), 6);
  EXPECT_EQ(pacer.Available(absl::Milliseconds(20)), 16);
  pacer.Consume(16);
  EXPECT_EQ(pacer.Available(absl::Milliseconds(20)), 0);
}

TEST(PacerTest, BurstsComeOnTopOfTheRate) {
  Pacer pacer({.records_per_second = 100, .burst_count = 5000, .burst_interval = absl::Seconds(2)});
  int64_t sent = 0;
  for (absl::Duration now; now <= absl::Seconds(5); now += absl::Milliseconds(10)) {
    const int64_t available = pacer.Available(now);
    if (now == absl::Milliseconds(1990)) {
      EXPECT_LE(available, 2);  // no burst yet
    }
    if (now == absl::Seconds(2)) {
      EXPECT_GE(available, 5000);  // the whole burst at once
    }
    pacer.Consume(available);
    sent += available;
  }
  EXPECT_EQ(pacer.bursts(), 2);  // at 2 s and 4 s
  EXPECT_NEAR(sent, 500 + 2 * 5000, 1);
}

TEST(PacerTest, AStallCatchesUpAtMostMaxLag) {
  Pacer pacer({.records_per_second = 1000, .max_lag = absl::Seconds(1)});
  pacer.Consume(pacer.Available(absl::Seconds(1)));
  // Nothing sent for 5 s: only 1 s worth is released, then the rate resumes.
  EXPECT_EQ(pacer.Available(absl::Seconds(6)), 1000);
  EXPECT_EQ(pacer.skipped(), 4000);
  pacer.Consume(1000);
  EXPECT_EQ(pacer.Available(absl::Milliseconds(6500)), 500);
}

TEST(PacerTest, ZeroRateIsUnlimited) {
  Pacer pacer({});
  EXPECT_TRUE(pacer.unlimited());
  EXPECT_EQ(pacer.Available(absl::ZeroDuration()), Pacer::kUnlimited);
}

// ---------------------------------------------------------------------------
// PacedChangeSource

struct Collected {
  std::mutex mutex;
  std::vector<GeneratedRecord> records;
};

TEST(PacedChangeSourceTest, EmitsTheGeneratorsRecordsInOrderAndStopsAtTheTotal) {
  GeneratorOptions generator{.seed = 4, .initial_contents = 30, .content_change_share = 0.05};
  auto progress = std::make_shared<GeneratorProgress>();
  auto collected = std::make_shared<Collected>();
  weir::Pipeline pipeline;
  pipeline
      .Source(std::make_shared<PacedChangeSource>(
          PacedSourceOptions{.generator = generator, .total = 5000}, progress))
      .Sink([collected](const GeneratedRecord& record) {
        std::lock_guard<std::mutex> lock(collected->mutex);
        collected->records.push_back(record);
      });
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_EQ(collected->records.size(), 5000u);
  ChangeGenerator expected(generator);
  for (const GeneratedRecord& record : collected->records) {
    const GeneratedRecord want = expected.Next();
    ASSERT_EQ(record.topic, want.topic);
    ASSERT_EQ(record.key, want.key);
    ASSERT_EQ(record.value, want.value);
  }
  EXPECT_EQ(progress->records.load(), 5000);
  EXPECT_EQ(progress->snapshot_rows.load(), 30);
  EXPECT_EQ(progress->deletes.load(), progress->tombstones.load());
  EXPECT_EQ(progress->events.load() + progress->snapshot_rows.load() + progress->creates.load() +
                progress->updates.load() + progress->deletes.load() + progress->tombstones.load(),
            5000);
  EXPECT_EQ(progress->live_content.load(), static_cast<int64_t>(expected.live_content().size()));
}

// A clock the test steps by hand, for PacedSourceOptions::clock. The source
// reads it on its worker's thread; reads() says that it has polled.
class ManualClock {
 public:
  void Set(absl::Duration now) { micros_.store(absl::ToInt64Microseconds(now)); }
  int64_t reads() const { return reads_.load(); }

  static std::function<absl::Duration()> Of(std::shared_ptr<ManualClock> clock) {
    return [clock] {
      clock->reads_.fetch_add(1);
      return absl::Microseconds(clock->micros_.load());
    };
  }

 private:
  std::atomic<int64_t> micros_{0};
  std::atomic<int64_t> reads_{0};
};

// The paced source in a running job, on a hand-stepped clock: at each step
// exactly the records the rate (and the bursts) allow by then have gone
// out, however slow or busy the machine is.
TEST(PacedChangeSourceTest, EmitsWhatTheScheduleAllowsOnItsClock) {
  auto clock = std::make_shared<ManualClock>();
  auto progress = std::make_shared<GeneratorProgress>();
  weir::Pipeline pipeline;
  pipeline
      .Source(std::make_shared<PacedChangeSource>(
          PacedSourceOptions{.generator = {.initial_contents = 10},
                             .pacer = {.records_per_second = 2000},
                             .total = 1000,
                             .clock = ManualClock::Of(clock)},
          progress))
      .Sink([](const GeneratedRecord&) {});
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // The schedule starts at the first poll, at 0.
  ASSERT_TRUE(weir::testing::WaitFor([&] { return clock->reads() > 0; }));
  // Steps of binary fractions of a second: 2000/s times them is exact.
  for (const auto& [now, due] : std::vector<std::pair<absl::Duration, int64_t>>{
           {absl::Milliseconds(250), 500}, {absl::Milliseconds(375), 750}}) {
    clock->Set(now);
    // Polls are published per poll, and the clock stands still: the count
    // reaches `due` and cannot pass it.
    ASSERT_TRUE(weir::testing::WaitFor([&] { return progress->records.load() >= due; }))
        << "at " << now << ": " << progress->records.load();
    EXPECT_EQ(progress->records.load(), due) << "at " << now;
    EXPECT_FALSE(job->done());
  }
  clock->Set(absl::Milliseconds(500));  // all 1000 due: the source ends
  ASSERT_TRUE(weir::testing::WaitFor([&] { return job->done(); }));
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(progress->records.load(), 1000);
  EXPECT_EQ(progress->behind.load(), 0);
}

TEST(PacedChangeSourceTest, BurstsComeOnTopOfTheRateOnItsClock) {
  auto clock = std::make_shared<ManualClock>();
  auto progress = std::make_shared<GeneratorProgress>();
  weir::Pipeline pipeline;
  pipeline
      .Source(std::make_shared<PacedChangeSource>(
          PacedSourceOptions{.generator = {.initial_contents = 10},
                             .pacer = {.records_per_second = 100,
                                       .burst_count = 300,
                                       .burst_interval = absl::Seconds(1)},
                             .total = 1000,
                             .clock = ManualClock::Of(clock)},
          progress))
      .Sink([](const GeneratedRecord&) {});
  absl::StatusOr<weir::JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(weir::testing::WaitFor([&] { return clock->reads() > 0; }));
  struct Step {
    absl::Duration now;
    int64_t records;  // rate * now + burst_count * bursts
    int64_t bursts;
  };
  for (const Step& step :
       {Step{absl::Milliseconds(500), 50, 0}, Step{absl::Seconds(1), 400, 1},
        Step{absl::Milliseconds(1500), 450, 1}, Step{absl::Seconds(2), 800, 2}}) {
    clock->Set(step.now);
    ASSERT_TRUE(weir::testing::WaitFor([&] { return progress->records.load() >= step.records; }))
        << "at " << step.now << ": " << progress->records.load();
    EXPECT_EQ(progress->records.load(), step.records) << "at " << step.now;
    EXPECT_EQ(progress->bursts.load(), step.bursts) << "at " << step.now;
  }
  clock->Set(absl::Seconds(3));  // 300 + 3 * 300 due: the total ends it
  ASSERT_TRUE(weir::testing::WaitFor([&] { return job->done(); }));
  ASSERT_TRUE(job->Wait().ok());
  EXPECT_EQ(progress->records.load(), 1000);
  EXPECT_EQ(progress->bursts.load(), 3);
}

// Without a clock of its own the schedule runs on the steady clock. Only a
// lower bound holds on a busy machine: the pacer never lets a record out
// early (1000 records at 2000/s are due 500 ms after the first poll, less a
// rounding error far below 1 ms), while any delay only makes the run longer.
TEST(PacedChangeSourceTest, ByDefaultTheScheduleRunsOnTheSteadyClock) {
  auto progress = std::make_shared<GeneratorProgress>();
  weir::Pipeline pipeline;
  pipeline
      .Source(std::make_shared<PacedChangeSource>(
          PacedSourceOptions{.generator = {.initial_contents = 10},
                             .pacer = {.records_per_second = 2000},
                             .total = 1000},
          progress))
      .Sink([](const GeneratedRecord&) {});
  const auto start = std::chrono::steady_clock::now();
  weir::testing::JobResult result = weir::testing::RunToCompletion(pipeline);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(progress->records.load(), 1000);
  EXPECT_GE(took, std::chrono::milliseconds(499));
}

}  // namespace
}  // namespace engagement
