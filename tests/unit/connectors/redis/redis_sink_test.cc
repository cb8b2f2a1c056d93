// The Redis sink against a real redis-server (started by the test on a free
// port of 127.0.0.1): values match the computation, restarts from a
// checkpoint converge to the failure-free state, a killed server loses
// nothing, bad credentials and zombies fail clearly, linger makes records
// visible without a checkpoint.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/stderr_capture.h"
#include "tests/support/wait_for.h"
#include "tests/unit/connectors/holding_proxy.h"
#include "tests/unit/connectors/redis/redis_server_fixture.h"
#include "tests/unit/window/scripted_source.h"
#include "weir/connectors/redis.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::HasSubstr;
using testing::RedisServer;
using testing::RedisServerOptions;

struct Event {
  int64_t id = 0;
  int64_t seconds = 0;
};

// A running total per id: absolute values, what an idempotent sink needs.
struct Total {
  int64_t id = 0;
  int64_t count = 0;
  int64_t seconds = 0;
};

class RunningTotal final : public KeyedProcessFunction<int64_t, Event, Total> {
 public:
  absl::Status ProcessElement(const Event& event, Context& ctx, Collector<Total>& out) override {
    ValueState<int64_t> count = ctx.GetState(kCount);
    ValueState<int64_t> seconds = ctx.GetState(kSeconds);
    Total total{event.id, (count.Get() != nullptr ? *count.Get() : 0) + 1,
                (seconds.Get() != nullptr ? *seconds.Get() : 0) + event.seconds};
    count.Update(total.count);
    seconds.Update(total.seconds);
    out.Collect(total);
    return absl::OkStatus();
  }
  // When Redis lost its data, every id's total is written again.
  std::string ReplayState() const override { return kCount.name; }
  absl::Status OnReplay(Context& ctx, Collector<Total>& out) override {
    const int64_t* count = ctx.GetState(kCount).Get();
    const int64_t* seconds = ctx.GetState(kSeconds).Get();
    if (count != nullptr && seconds != nullptr) out.Collect({ctx.current_key(), *count, *seconds});
    return absl::OkStatus();
  }

 private:
  static inline const ValueStateDescriptor<int64_t> kCount{"count"};
  static inline const ValueStateDescriptor<int64_t> kSeconds{"seconds"};
};

constexpr int kIds = 40;

// Event i has id i % kIds and lasts id + 1 seconds: with a multiple of kIds
// events every id's total is distinct, so the top N is well defined.
std::vector<Event> Events(int n) {
  std::vector<Event> events(n);
  for (int i = 0; i < n; ++i) events[i] = {i % kIds, i % kIds + 1};
  return events;
}

std::map<int64_t, Total> ExpectedTotals(int n) {
  std::map<int64_t, Total> totals;
  for (const Event& event : Events(n)) {
    Total& total = totals[event.id];
    total.id = event.id;
    ++total.count;
    total.seconds += event.seconds;
  }
  return totals;
}

redis::HashMapping<Total> TotalsHash(std::string prefix, absl::Duration ttl) {
  return {.key = [prefix](const Total& t) { return absl::StrCat(prefix, "total:", t.id); },
          .fields =
              [](const Total& t, redis::Fields& fields) {
                fields.Add("count", t.count).Add("seconds", t.seconds);
              },
          .ttl = ttl};
}

redis::SortedSetMapping<Total> Leaderboard(std::string prefix, size_t top_n) {
  return {.key = [prefix](const Total&) { return absl::StrCat(prefix, "top"); },
          .member = [](const Total& t) { return absl::StrCat(t.id); },
          .score = [](const Total& t) { return static_cast<double>(t.seconds); },
          .top_n = top_n,
          .ttl = absl::Minutes(30)};
}

// Reads what the sinks wrote; fails the current test on errors.
class Inspector {
 public:
  explicit Inspector(RedisServer* server) : server_(server) {}
  absl::StatusOr<testing::RedisReply> Query(const std::vector<std::string>& args) {
    return server_->Query(args);
  }
  void Kill() { server_->Kill(); }
  void Pause() { server_->Pause(); }
  void Resume() { server_->Resume(); }
  absl::Status Restart() { return server_->Restart(); }
  redis::ConnectionOptions Connection() const { return server_->Connection(); }

  std::optional<std::string> Get(const std::string& key) {
    absl::StatusOr<testing::RedisReply> reply = server_->Query({"GET", key});
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok() || reply->type != testing::RedisReply::Type::kString) return std::nullopt;
    return reply->str;
  }

  std::map<std::string, std::string> HGetAll(const std::string& key) {
    std::map<std::string, std::string> out;
    absl::StatusOr<testing::RedisReply> reply = server_->Query({"HGETALL", key});
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return out;
    for (size_t idx = 0; idx + 1 < reply->elements.size(); idx += 2) {
      out[reply->elements[idx].str] = reply->elements[idx + 1].str;
    }
    return out;
  }

  std::vector<std::pair<std::string, double>> ZRangeWithScores(const std::string& key) {
    std::vector<std::pair<std::string, double>> out;
    absl::StatusOr<testing::RedisReply> reply =
        server_->Query({"ZRANGE", key, "0", "-1", "WITHSCORES"});
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return out;
    for (size_t idx = 0; idx + 1 < reply->elements.size(); idx += 2) {
      double score = 0;
      EXPECT_TRUE(absl::SimpleAtod(reply->elements[idx + 1].str, &score));
      out.emplace_back(reply->elements[idx].str, score);
    }
    return out;
  }

  int64_t PTtl(const std::string& key) {
    absl::StatusOr<testing::RedisReply> reply = server_->Query({"PTTL", key});
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? reply->integer : -3;
  }

  std::vector<std::string> Keys(const std::string& pattern) {
    std::vector<std::string> out;
    absl::StatusOr<testing::RedisReply> reply = server_->Query({"KEYS", pattern});
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return out;
    for (const testing::RedisReply& element : reply->elements) out.push_back(element.str);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  RedisServer* server_;
};

// A sink that SETs the key "latest" to each value, with one writer of it
// driven directly by the test (the sink outlives the writer, as in a job).
struct LatestWriter {
  std::shared_ptr<weir::Sink<int64_t>> sink;
  std::unique_ptr<SinkWriter<int64_t>> writer;

  static absl::StatusOr<LatestWriter> Create(redis::SinkOptions options,
                                             std::string operator_name) {
    LatestWriter latest;
    latest.sink = redis::Sink<int64_t>(
        std::move(options),
        redis::StringMapping<int64_t>{.key = [](const int64_t&) { return "latest"; },
                                      .value = [](const int64_t& v) { return absl::StrCat(v); }});
    absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> writer =
        latest.sink->CreateWriter({.operator_name = std::move(operator_name)});
    if (!writer.ok()) return writer.status();
    latest.writer = *std::move(writer);
    return latest;
  }
  // Writes `value` and flushes.
  absl::Status Write(int64_t value) {
    std::vector<int64_t> values = {value};
    const std::vector<Timestamp> timestamps = {0};
    absl::Status status = writer->Write(std::span<int64_t>(values), timestamps);
    if (status.ok()) status = writer->Flush();
    return status;
  }
};

class RedisSinkTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  void StartServer(RedisServerOptions options) {
    inspector_.reset();
    owned_.reset();
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    owned_ = *std::move(server);
    inspector_ = std::make_unique<Inspector>(owned_.get());
    server_ = inspector_.get();
  }

  redis::SinkOptions Options() const {
    redis::SinkOptions options;
    options.connection = server_->Connection();
    options.unavailable_timeout = absl::Seconds(10);
    return options;
  }

  // The totals pipeline: events -> KeyBy(id) -> running totals -> sinks
  // added by the caller.
  Stream<Total> Totals(Pipeline& pipeline, int n, double rate_per_split = 0) {
    testing::VectorSourceOptions source_options;
    source_options.splits = 4;
    source_options.records_per_poll = 32;
    source_options.records_per_second = rate_per_split;
    return Totals(pipeline, testing::VectorSource<Event>::Create(Events(n), source_options));
  }
  Stream<Total> Totals(Pipeline& pipeline, std::shared_ptr<Source<Event>> events) {
    return pipeline.Source(std::move(events))
        .Uid("events")
        .KeyBy([](const Event& e) { return e.id; })
        .Process(RunningTotal{})
        .Uid("totals");
  }

  // Events(n) from a source the test releases step by step
  // (ScriptedSource::Release); `bounded`: it ends after the last one.
  static std::shared_ptr<testing::ScriptedSource<Event>> Scripted(int n, bool bounded,
                                                                  size_t released) {
    std::vector<testing::TimestampedValue<Event>> events;
    for (const Event& event : Events(n)) {
      events.push_back({event, static_cast<Timestamp>(events.size())});
    }
    return testing::ScriptedSource<Event>::Create(
        std::move(events), {.records_per_poll = 32, .bounded = bounded}, released);
  }

  // How many events the hashes under `prefix` reflect: the sum of the ids'
  // running counts.
  int64_t EventsInRedis(const std::string& prefix) {
    int64_t events = 0;
    for (const std::string& key : server_->Keys(prefix + "total:*")) {
      int64_t count = 0;
      if (absl::SimpleAtoi(server_->HGetAll(key)["count"], &count)) events += count;
    }
    return events;
  }

  // Whether Redis holds the final totals of Events(n) under `prefix`.
  bool TotalsInRedis(const std::string& prefix, int n) {
    for (const auto& [id, total] : ExpectedTotals(n)) {
      if (server_->HGetAll(absl::StrCat(prefix, "total:", id)) !=
          std::map<std::string, std::string>{{"count", absl::StrCat(total.count)},
                                             {"seconds", absl::StrCat(total.seconds)}}) {
        return false;
      }
    }
    return true;
  }

  void ExpectTotalsInRedis(const std::string& prefix, int n) {
    for (const auto& [id, total] : ExpectedTotals(n)) {
      EXPECT_EQ(server_->HGetAll(absl::StrCat(prefix, "total:", id)),
                (std::map<std::string, std::string>{{"count", absl::StrCat(total.count)},
                                                    {"seconds", absl::StrCat(total.seconds)}}))
          << "id " << id;
    }
  }

  // The top `n` ids by total seconds, lowest first, as ZRANGE returns them.
  static std::vector<std::pair<std::string, double>> ExpectedTop(int events, size_t n) {
    std::vector<std::pair<std::string, double>> all;
    for (const auto& [id, total] : ExpectedTotals(events)) {
      all.emplace_back(absl::StrCat(id), static_cast<double>(total.seconds));
    }
    std::sort(all.begin(), all.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    all.erase(all.begin(), all.end() - static_cast<ptrdiff_t>(n));
    return all;
  }

  // Everything under `prefix`, with the prefix cut off: hashes as field=value
  // lists, sorted sets as member=score lists.
  std::map<std::string, std::string> Dump(const std::string& prefix) {
    std::map<std::string, std::string> out;
    for (const std::string& key : server_->Keys(prefix + "*")) {
      std::string text;
      absl::StatusOr<testing::RedisReply> type = server_->Query({"TYPE", key});
      EXPECT_TRUE(type.ok());
      if (type.ok() && type->str == "hash") {
        for (const auto& [field, value] : server_->HGetAll(key)) {
          absl::StrAppend(&text, field, "=", value, " ");
        }
      } else if (type.ok() && type->str == "zset") {
        for (const auto& [member, score] : server_->ZRangeWithScores(key)) {
          absl::StrAppend(&text, member, "=", score, " ");
        }
      }
      out[key.substr(prefix.size())] = text;
    }
    return out;
  }

  std::unique_ptr<RedisServer> owned_;
  std::unique_ptr<Inspector> inspector_;
  Inspector* server_ = nullptr;
};

// Commands are encoded during Write: the writer says it only reads, so the
// sinks of one stream (as in WritesWhatTheMappingsSay) share its batches.
TEST_F(RedisSinkTest, TheWriterOnlyReadsItsInput) {
  auto sink = redis::Sink<Total>(Options(), TotalsHash("", absl::Hours(1)));
  absl::StatusOr<std::unique_ptr<SinkWriter<Total>>> writer =
      sink->CreateWriter({.operator_name = "hashes"});
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE((*writer)->ReadsOnly());
}

TEST_F(RedisSinkTest, WritesWhatTheMappingsSay) {
  constexpr int kEvents = 4000;
  constexpr size_t kTop = 7;
  Pipeline pipeline({.parallelism = 2});
  Stream<Total> totals = Totals(pipeline, kEvents);
  totals.Sink(redis::Sink<Total>(Options(), TotalsHash("", absl::Hours(1)))).Uid("hashes");
  totals.Sink(redis::Sink<Total>(Options(), Leaderboard("", kTop))).Uid("leaderboard");
  totals
      .Sink(redis::Sink<Total>(Options(),
                               redis::StringMapping<Total>{
                                   .key = [](const Total& t) { return absl::StrCat("s:", t.id); },
                                   .value = [](const Total& t) { return absl::StrCat(t.count); },
                                   .ttl = absl::Minutes(10)}))
      .Uid("strings");
  totals
      .Sink(redis::Sink<Total>(
          Options(), redis::CommandMapping<Total>([](const Total& t, redis::CommandBuilder& out) {
            out.Add({"SADD", "ids", absl::StrCat(t.id)});
            out.Begin("HSET")
                .Arg("max")
                .Arg(absl::StrCat(t.id))
                .Arg(static_cast<double>(t.seconds) / 2);
            out.End();
          })))
      .Uid("commands");
  absl::Status status = pipeline.Run();
  ASSERT_TRUE(status.ok()) << status;

  ExpectTotalsInRedis("", kEvents);
  for (int id = 0; id < kIds; ++id) {
    const int64_t ttl = server_->PTtl(absl::StrCat("total:", id));
    EXPECT_GT(ttl, absl::ToInt64Milliseconds(absl::Minutes(59)));
    EXPECT_LE(ttl, absl::ToInt64Milliseconds(absl::Hours(1)));
    EXPECT_EQ(server_->Get(absl::StrCat("s:", id)),
              absl::StrCat(ExpectedTotals(kEvents)[id].count));
    const int64_t string_ttl = server_->PTtl(absl::StrCat("s:", id));
    EXPECT_GT(string_ttl, absl::ToInt64Milliseconds(absl::Minutes(9)));
    EXPECT_LE(string_ttl, absl::ToInt64Milliseconds(absl::Minutes(10)));
  }
  // Trimmed to the top kTop of the final totals, with their final scores.
  EXPECT_EQ(server_->ZRangeWithScores("top"), ExpectedTop(kEvents, kTop));
  EXPECT_GT(server_->PTtl("top"), absl::ToInt64Milliseconds(absl::Minutes(29)));
  absl::StatusOr<testing::RedisReply> ids = server_->Query({"SCARD", "ids"});
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->integer, kIds);
  EXPECT_EQ(server_->HGetAll("max").size(), static_cast<size_t>(kIds));
  EXPECT_EQ(server_->HGetAll("max")["3"], "200");  // (3 + 1) s * 100 events / 2
}

TEST_F(RedisSinkTest, ArgumentsOfEveryLengthArriveByteForByte) {
  // Each argument is sent as "$<length>\r\n<bytes>\r\n": lengths of one to
  // six digits, empty values and bytes RESP itself uses.
  std::vector<std::string> values;
  for (const size_t length : {0, 1, 9, 10, 99, 100, 999, 1000, 123456}) {
    std::string value(length, 'v');
    for (size_t i = 0; i < length; i += 7) value[i] = static_cast<char>('a' + i % 26);
    values.push_back(std::move(value));
  }
  values.push_back(std::string("\r\n$3\r\n\0*", 8));
  Pipeline pipeline;
  pipeline.Source(testing::VectorSource<std::string>::Create(values))
      .Uid("values")
      .Sink(redis::Sink<std::string>(
          Options(), redis::CommandMapping<std::string>(
                         [](const std::string& value, redis::CommandBuilder& out) {
                           out.Add({"SET", absl::StrCat("len:", value.size()), value});
                         })))
      .Uid("sets");
  absl::Status status = pipeline.Run();
  ASSERT_TRUE(status.ok()) << status;
  for (const std::string& value : values) {
    EXPECT_EQ(server_->Get(absl::StrCat("len:", value.size())), value) << value.size();
  }
}

TEST_F(RedisSinkTest, RestoreFromACheckpointConvergesToTheFailureFreeState) {
  constexpr int kEvents = 8000;
  constexpr size_t kTop = 10;
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / absl::StrCat("weir-redis-test-", ::getpid());
  std::filesystem::remove_all(root);

  // A run without failure, under "ref:".
  {
    Pipeline pipeline({.parallelism = 2, .job_name = "reference"});
    Stream<Total> totals = Totals(pipeline, kEvents);
    totals.Sink(redis::Sink<Total>(Options(), TotalsHash("ref:", absl::ZeroDuration())))
        .Uid("ref-hashes");
    totals.Sink(redis::Sink<Total>(Options(), Leaderboard("ref:", kTop))).Uid("ref-leaderboard");
    absl::Status status = pipeline.Run();
    ASSERT_TRUE(status.ok()) << status;
  }

  // The same under "run:", crashed with records after its checkpoint in
  // Redis, then restored. The input is released step by step and the
  // checkpoint taken on demand, so that where the crash lands does not
  // depend on the machine's speed.
  auto build = [&](std::shared_ptr<Source<Event>> events) {
    PipelineOptions options;
    options.parallelism = 2;
    options.job_name = "crashing";
    options.checkpoints.storage_uri = "file://" + (root / "checkpoints").string();
    auto pipeline = std::make_unique<Pipeline>(options);
    Stream<Total> totals = Totals(*pipeline, std::move(events));
    totals.Sink(redis::Sink<Total>(Options(), TotalsHash("run:", absl::ZeroDuration())))
        .Uid("run-hashes");
    totals.Sink(redis::Sink<Total>(Options(), Leaderboard("run:", kTop))).Uid("run-leaderboard");
    return pipeline;
  };
  {
    // Unbounded: it cannot end before the crash.
    auto events = Scripted(kEvents, /*bounded=*/false, 0);
    auto pipeline = build(events);
    absl::StatusOr<JobHandle> job = pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    // Half the events, in Redis and in a checkpoint.
    events->Release(kEvents / 2);
    ASSERT_TRUE(testing::WaitFor([&] { return EventsInRedis("run:") == kEvents / 2; }))
        << EventsInRedis("run:");
    absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    // A quarter more, in Redis but after the checkpoint: the restored run
    // replays them, and must not count them twice.
    events->Release(kEvents * 3 / 4);
    ASSERT_TRUE(testing::WaitFor([&] { return EventsInRedis("run:") == kEvents * 3 / 4; }))
        << EventsInRedis("run:");
    ASSERT_FALSE(job->done());
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }
  const std::map<std::string, std::string> partial = Dump("run:");
  EXPECT_FALSE(partial.empty());
  EXPECT_NE(partial, Dump("ref:"));

  auto pipeline = build(Scripted(kEvents, /*bounded=*/true, kEvents));
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;

  EXPECT_EQ(Dump("run:"), Dump("ref:"));
  ExpectTotalsInRedis("run:", kEvents);
  EXPECT_EQ(server_->ZRangeWithScores("run:top"), ExpectedTop(kEvents, kTop));
  std::filesystem::remove_all(root);
}

TEST_F(RedisSinkTest, ServerKilledAndRestartedMidRunLosesNothing) {
  StartServer({.persistent = true});  // acknowledged writes survive SIGKILL
  constexpr int kEvents = 6000;
  redis::SinkOptions options = Options();
  options.batch_records = 50;
  options.max_buffered_records = 200;  // Write blocks during the outage
  options.unavailable_timeout = absl::Seconds(20);
  Pipeline pipeline({.parallelism = 2});
  auto events = Scripted(kEvents, /*bounded=*/true, kEvents / 4);
  Totals(pipeline, events)
      .Sink(redis::Sink<Total>(options, TotalsHash("", absl::Hours(1))))
      .Uid("hashes");
  testing::StderrCapture capture;
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  // Once some totals arrived, crash the server; the rest of the input comes
  // during the outage, so the sink must write into it. The server stays
  // down until the sink has seen it go.
  ASSERT_TRUE(testing::WaitFor([&] { return !server_->Keys("total:*").empty(); }));
  server_->Kill();
  events->Release(kEvents);
  ASSERT_TRUE(testing::WaitFor([&] { return absl::StrContains(capture.Text(), "unavailable ("); }))
      << capture.Text();
  ASSERT_FALSE(job->done()) << "the job ended while the server was down";
  ASSERT_TRUE(server_->Restart().ok());

  absl::Status status = job->Wait();
  const std::string log = capture.Stop();
  ASSERT_TRUE(status.ok()) << status;
  ExpectTotalsInRedis("", kEvents);
  // The outage is in the log when it starts and when it ends.
  EXPECT_THAT(log, ::testing::HasSubstr("unavailable (")) << log;
  EXPECT_THAT(log, ::testing::HasSubstr("answers again after")) << log;
  // Redis kept its data: nothing is rewritten.
  EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr("lost its data"))) << log;
  EXPECT_EQ(job->Metrics().Sum("weir_replayed_keys_total"), 0);
}

// Redis restarted without persistence mid-run has lost every key. Ids that
// get no event after the restart come back all the same: the sink finds
// its fence gone and the job replays every id's total from keyed state.
// Afterwards Redis holds exactly what a run without the loss would: the
// last total of every id, as hashes and in the leaderboard.
TEST_F(RedisSinkTest, ServerRestartedEmptyIsRewrittenFromKeyedState) {
  constexpr int kFirst = 4000;     // every id
  constexpr int kLater = 200'000;  // ids 0..9 only, slowly, until the test stops
  redis::SinkOptions options = Options();
  options.unavailable_timeout = absl::Seconds(20);
  Pipeline pipeline({.parallelism = 2, .replay_keys_per_second = 100});
  testing::VectorSourceOptions fast{.splits = 2, .unbounded = true};
  testing::VectorSourceOptions slow{.splits = 2, .unbounded = true, .records_per_second = 50};
  std::vector<Event> later(kLater);
  for (int i = 0; i < kLater; ++i) later[i] = {i % 10, i % 10 + 1};
  auto last = std::make_shared<std::map<int64_t, Total>>();
  auto mu = std::make_shared<std::mutex>();
  Stream<Total> totals =
      pipeline.Source(testing::VectorSource<Event>::Create(Events(kFirst), fast))
          .Uid("first")
          .Union(pipeline.Source(testing::VectorSource<Event>::Create(later, slow)).Uid("later"))
          .KeyBy([](const Event& e) { return e.id; })
          .Process(RunningTotal{})
          .Uid("totals");
  totals.Sink(redis::Sink<Total>(options, TotalsHash("", absl::ZeroDuration()))).Uid("hashes");
  totals.Sink(redis::Sink<Total>(options, Leaderboard("", 0))).Uid("leaderboard");
  // What Redis should hold: the last total of each id (each id stays on one worker).
  totals
      .Sink([last, mu](const Total& t) {
        std::lock_guard<std::mutex> lock(*mu);
        (*last)[t.id] = t;
      })
      .Uid("reference");
  ::testing::internal::CaptureStderr();
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();

  const std::map<int64_t, Total> first = ExpectedTotals(kFirst);
  auto first_phase_in_redis = [&] {
    for (int64_t id = 10; id < kIds; ++id) {
      const Total& t = first.at(id);
      if (server_->HGetAll(absl::StrCat("total:", id)) !=
          std::map<std::string, std::string>{{"count", absl::StrCat(t.count)},
                                             {"seconds", absl::StrCat(t.seconds)}}) {
        return false;
      }
    }
    return true;
  };
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!first_phase_in_redis() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(first_phase_in_redis());

  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());  // without persistence: empty
  // Ids 10..39 get no event any more; they come back from keyed state.
  deadline = absl::Now() + absl::Seconds(30);
  while (!first_phase_in_redis() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(first_phase_in_redis()) << "ids without new events were not rewritten";
  // The replay goes over every key, those with new events too (ids 0..9);
  // it paces itself, so it may still be on its last keys here.
  deadline = absl::Now() + absl::Seconds(30);
  while (job->Metrics().Sum("weir_replayed_keys_total") < kIds && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }

  job->Stop();
  absl::Status status = job->Wait();
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(log, HasSubstr("lost its data (the fence 'weir:fence:hashes' was gone")) << log;
  EXPECT_THAT(log, HasSubstr("replaying every key's current value")) << log;
  EXPECT_GE(job->Metrics().Sum("weir_replayed_keys_total"), kIds);

  std::map<std::string, std::string> expected;
  std::vector<std::pair<double, std::string>> top;
  for (const auto& [id, t] : *last) {
    expected[absl::StrCat("total:", id)] =
        absl::StrCat("count=", t.count, " seconds=", t.seconds, " ");
    top.emplace_back(static_cast<double>(t.seconds), absl::StrCat(id));
  }
  std::sort(top.begin(), top.end());
  std::string board;
  for (const auto& [score, member] : top) absl::StrAppend(&board, member, "=", score, " ");
  expected["top"] = board;
  ASSERT_EQ(last->size(), static_cast<size_t>(kIds));
  std::map<std::string, std::string> written = Dump("");
  std::erase_if(written, [](const auto& entry) { return entry.first.starts_with("weir:fence:"); });
  EXPECT_EQ(written, expected);
}

// Redis emptied while the job was down: the restored run finds the fence
// gone although its checkpoint holds the sink, and rewrites every total. A
// run cancelled before a checkpoint followed its replay leaves the fence
// marked, and the next run replays again; a checkpoint after the replay
// clears the mark.
TEST_F(RedisSinkTest, ARestoreAfterRedisLostItsDataRewritesEveryKey) {
  constexpr int kEvents = 4000;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("weir-redis-replay-", getpid());
  std::filesystem::remove_all(dir);
  PipelineOptions pipeline_options{.parallelism = 2};
  pipeline_options.checkpoints.storage_uri = "file://" + dir.string();
  auto marked = [&] {
    absl::StatusOr<testing::RedisReply> reply =
        server_->Query({"HEXISTS", "weir:fence:hashes", "replay"});
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() && reply->integer == 1;
  };
  auto run = [&](bool cancel) -> std::string {
    Pipeline pipeline(pipeline_options);
    testing::VectorSourceOptions source{.splits = 2, .unbounded = true};
    pipeline.Source(testing::VectorSource<Event>::Create(Events(kEvents), source))
        .Uid("events")
        .KeyBy([](const Event& e) { return e.id; })
        .Process(RunningTotal{})
        .Uid("totals")
        .Sink(redis::Sink<Total>(Options(), TotalsHash("", absl::ZeroDuration())))
        .Uid("hashes");
    ::testing::internal::CaptureStderr();
    absl::StatusOr<JobHandle> job = pipeline.Start();
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return ::testing::internal::GetCapturedStderr();
    // Every total is final in Redis (after a loss: once the replay rewrote
    // them all).
    EXPECT_TRUE(testing::WaitFor([&] { return TotalsInRedis("", kEvents); }));
    if (cancel) {
      job->Cancel();
      (void)job->Wait();
    } else {
      // A checkpoint completed after the replay (if there was one) clears
      // the fence's mark: checkpoints until one did, since when the
      // replay's last step ran is not observable from here.
      EXPECT_TRUE(testing::WaitFor([&] { return job->TriggerCheckpoint().ok() && !marked(); }))
          << "no checkpoint after the replay cleared the mark";
      job->Stop();
      EXPECT_TRUE(job->Wait().ok());
    }
    return ::testing::internal::GetCapturedStderr();
  };

  std::string log = run(/*cancel=*/false);
  ExpectTotalsInRedis("", kEvents);
  EXPECT_THAT(log, ::testing::Not(HasSubstr("lost its data"))) << log;

  ASSERT_TRUE(server_->Query({"FLUSHALL"}).ok());
  log = run(/*cancel=*/true);
  ExpectTotalsInRedis("", kEvents);
  EXPECT_THAT(log, HasSubstr("checkpoint this run restored holds the sink")) << log;
  EXPECT_TRUE(marked()) << "cancelled before a checkpoint followed the replay";

  ASSERT_TRUE(server_->Query({"DEL", "total:3", "total:17"}).ok());
  log = run(/*cancel=*/false);
  ExpectTotalsInRedis("", kEvents);
  EXPECT_THAT(log, HasSubstr("the replay an earlier run began to repair a loss did not complete"))
      << log;
  EXPECT_FALSE(marked()) << "a checkpoint after the replay clears the mark";
  std::filesystem::remove_all(dir);
}

TEST_F(RedisSinkTest, ServerDownLongerThanTheDeadlineFailsTheJob) {
  redis::SinkOptions options = Options();
  options.unavailable_timeout = absl::Milliseconds(700);
  options.connection.connect_timeout = absl::Milliseconds(200);
  Pipeline pipeline;
  // Unbounded: only the outage can end the job.
  constexpr int kEvents = 200'000;
  size_t released = 400;
  auto events = Scripted(kEvents, /*bounded=*/false, released);
  Totals(pipeline, events)
      .Sink(redis::Sink<Total>(options, TotalsHash("", absl::Hours(1))))
      .Uid("hashes");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(testing::WaitFor([&] { return !server_->Keys("total:*").empty(); }));
  server_->Kill();
  const absl::Time killed = absl::Now();
  // A sink that retried forever would never end the job; one that gave up
  // at the first error would end it before unavailable_timeout. Only the
  // second is a bound that load cannot break, so only it is asserted.
  // Records keep coming meanwhile: the writer's failure reaches the job
  // with its next Write.
  ASSERT_TRUE(testing::WaitFor([&] {
    released = std::min<size_t>(released + 20, kEvents);
    events->Release(released);
    return job->done();
  })) << "the sink never gave up";
  const absl::Duration failed_after = absl::Now() - killed;
  absl::Status status = job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("redis sink 'hashes'"));
  EXPECT_THAT(status.message(), HasSubstr("unavailable for"));
  EXPECT_GE(failed_after, options.unavailable_timeout);
}

// A hung Redis (SIGSTOP: connections are accepted, nothing is answered)
// must not hang the writer: a round trip gives up after command_timeout
// ("timed out", which the log shows as the start of the outage), the writer
// keeps trying, and once the outage lasted unavailable_timeout it fails with
// kUnavailable naming the sink. How long that takes is bounded below only;
// the 60 s wait is there to fail the test instead of hanging it.
TEST_F(RedisSinkTest, AHungServerTimesOutEachRoundTripAndFailsTheWriter) {
  redis::SinkOptions options = Options();
  options.connection.command_timeout = absl::Milliseconds(300);
  options.unavailable_timeout = absl::Milliseconds(1500);
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  options.heartbeat = absl::ZeroDuration();
  absl::StatusOr<LatestWriter> latest = LatestWriter::Create(options, "hung");
  ASSERT_TRUE(latest.ok()) << latest.status();
  ASSERT_TRUE(latest->Write(1).ok());
  ASSERT_EQ(server_->Get("latest"), "1");

  testing::StderrCapture capture;
  server_->Pause();
  const absl::Time paused = absl::Now();
  std::future<absl::Status> flushed =
      std::async(std::launch::async, [&] { return latest->Write(2); });
  const bool gave_up = flushed.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  const absl::Duration waited = absl::Now() - paused;
  server_->Resume();  // also lets a writer that hangs on the server finish
  const absl::Status status = flushed.get();
  const std::string log = capture.Stop();
  ASSERT_TRUE(gave_up) << "the writer still waited for the hung server after 60 s";
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("redis sink 'hung' (worker 0)")) << status;
  EXPECT_THAT(status.message(), HasSubstr("unavailable_timeout")) << status;
  EXPECT_THAT(status.message(), HasSubstr("timed out")) << status;
  EXPECT_THAT(log, HasSubstr("unavailable (timed out); retrying")) << log;
  EXPECT_GE(waited, options.unavailable_timeout);
  // The error stays: later writes fail with it.
  EXPECT_EQ(latest->Write(3).code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(latest->writer->Close().ok());
  absl::StatusOr<testing::RedisReply> pong = server_->Query({"PING"});
  EXPECT_TRUE(pong.ok()) << pong.status();
}

TEST_F(RedisSinkTest, BadCredentialsFailTheStartNamingTheSink) {
  StartServer({.password = "s3cret"});
  auto start = [&](redis::ConnectionOptions connection) {
    redis::SinkOptions options = Options();
    options.connection = std::move(connection);
    Pipeline pipeline;
    Totals(pipeline, 100)
        .Sink(redis::Sink<Total>(options, TotalsHash("", absl::Hours(1))))
        .Uid("dashboard");
    absl::StatusOr<JobHandle> job = pipeline.Start();
    return job.ok() ? job->Wait() : job.status();
  };
  redis::ConnectionOptions wrong = server_->Connection();
  wrong.password = "wrong";
  absl::Status status = start(wrong);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("redis sink 'dashboard'"));
  EXPECT_THAT(status.message(), HasSubstr("WRONGPASS"));

  redis::ConnectionOptions none = server_->Connection();
  none.password.clear();
  status = start(none);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("redis sink 'dashboard'"));

  // An ACL user that may only read.
  ASSERT_TRUE(server_->Query({"ACL", "SETUSER", "reader", "on", ">readpw", "~*", "+@read"}).ok());
  redis::ConnectionOptions reader = server_->Connection();
  reader.user = "reader";
  reader.password = "readpw";
  status = start(reader);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("redis sink 'dashboard'"));

  // The right ACL user works.
  ASSERT_TRUE(server_->Query({"ACL", "SETUSER", "writer", "on", ">writepw", "~*", "+@all"}).ok());
  redis::ConnectionOptions writer = server_->Connection();
  writer.user = "writer";
  writer.password = "writepw";
  status = start(writer);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(server_->HGetAll("total:1")["count"], "3");  // ids 1, 41, 81
}

TEST_F(RedisSinkTest, AZombieOfAnOlderRunCannotWrite) {
  auto value_sink = [&](std::string value) {
    return redis::Sink<Total>(
        Options(), redis::StringMapping<Total>{.key = [](const Total&) { return "owner"; },
                                               .value = [value](const Total&) { return value; }});
  };
  // The old run: slow and long, still writing when the new one starts.
  Pipeline old_run;
  Totals(old_run, 100000, 500).Sink(value_sink("old")).Uid("owner");
  absl::StatusOr<JobHandle> old_job = old_run.Start();
  ASSERT_TRUE(old_job.ok()) << old_job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (server_->Get("owner") != "old" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(server_->Get("owner"), "old");

  // The new run of the same job (same sink name) takes over.
  Pipeline new_run;
  Totals(new_run, 400).Sink(value_sink("new")).Uid("owner");
  absl::Status status = new_run.Run();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(server_->Get("owner"), "new");

  // The old run's next batch is refused, and it fails.
  status = old_job->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(status.message(), HasSubstr("redis sink 'owner'"));
  EXPECT_THAT(status.message(), HasSubstr("fenced"));
  EXPECT_EQ(server_->Get("owner"), "new");
}

// Every start takes a new epoch per subtask; a start with a smaller
// parallelism also bumps the subtasks it no longer has, so their zombies are
// fenced too.
TEST_F(RedisSinkTest, EachStartBumpsTheEpochsOfItsSubtasksAndOfRemovedOnes) {
  auto run = [&](int parallelism) {
    Pipeline pipeline({.parallelism = parallelism});
    Totals(pipeline, 400)
        .Sink(redis::Sink<Total>(Options(), TotalsHash("", absl::Hours(1))))
        .Uid("hashes");
    absl::Status status = pipeline.Run();
    EXPECT_TRUE(status.ok()) << status;
  };
  using Fence = std::map<std::string, std::string>;
  // The epochs: the fields named by a subtask alone ("<w>:seq" holds the
  // sequence of its last batch).
  const auto epochs = [&] {
    Fence fence = server_->HGetAll("weir:fence:hashes");
    std::erase_if(fence, [](const auto& field) { return absl::StrContains(field.first, ':'); });
    return fence;
  };
  run(3);
  EXPECT_EQ(epochs(), (Fence{{"0", "1"}, {"1", "1"}, {"2", "1"}}));
  run(1);  // subtask 0 takes over 1 and 2
  EXPECT_EQ(epochs(), (Fence{{"0", "2"}, {"1", "2"}, {"2", "2"}}));
  run(2);  // subtask 0 takes over 2
  EXPECT_EQ(epochs(), (Fence{{"0", "3"}, {"1", "3"}, {"2", "3"}}));
  ExpectTotalsInRedis("", 400);
}

// The fence outlives runs, so it follows the sink's identity: renaming the
// sink (its display name) keeps the fence, and with it the fencing of an
// older run's zombies; another uid is another sink with a fence of its own.
TEST_F(RedisSinkTest, TheFenceKeyFollowsTheUidNotTheDisplayName) {
  auto run = [&](const std::string& name, const std::string& uid) {
    Pipeline pipeline;
    Totals(pipeline, 400)
        .Sink(redis::Sink<Total>(Options(), TotalsHash("", absl::Hours(1))))
        .Name(name)
        .Uid(uid);
    absl::Status status = pipeline.Run();
    EXPECT_TRUE(status.ok()) << status;
  };
  run("totals to redis", "totals-v1");
  EXPECT_EQ(server_->HGetAll("weir:fence:totals-v1")["0"], "1");
  run("renamed", "totals-v1");
  EXPECT_EQ(server_->HGetAll("weir:fence:totals-v1")["0"], "2");
  for (const char* display : {"totals to redis", "renamed"}) {
    EXPECT_TRUE(server_->HGetAll(absl::StrCat("weir:fence:", display)).empty()) << display;
  }
  run("renamed", "totals-v2");
  EXPECT_EQ(server_->HGetAll("weir:fence:totals-v2")["0"], "1");
  EXPECT_EQ(server_->HGetAll("weir:fence:totals-v1")["0"], "2");
}

// A batch resent after a command timeout must not be overtaken by the old
// connection's copy: the proxy holds back the first connection's bytes
// (batch 2) while the writer times out, reconnects, resends batch 2 and
// writes batch 3; then it delivers the old copy of batch 2 last. The key
// written by every batch keeps batch 3's value.
TEST_F(RedisSinkTest, AResendDelayedOnTheOldConnectionDoesNotOverwriteANewerBatch) {
  absl::StatusOr<std::unique_ptr<testing::HoldingProxy>> proxy =
      testing::HoldingProxy::Start(server_->Connection().port);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  redis::SinkOptions options = Options();
  options.connection.port = (*proxy)->port();
  options.connection.command_timeout = absl::Milliseconds(300);
  options.initial_backoff = absl::Milliseconds(10);
  absl::StatusOr<LatestWriter> latest = LatestWriter::Create(options, "late");
  ASSERT_TRUE(latest.ok()) << latest.status();
  const auto write = [&](int64_t value) { return latest->Write(value); };
  ASSERT_TRUE(write(1).ok());
  ASSERT_EQ(server_->Get("latest"), "1");

  (*proxy)->HoldNextSender();
  absl::Status status = write(2);  // held, timed out, resent on a new connection
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_GT((*proxy)->held_bytes(), 0u);
  ASSERT_GE((*proxy)->connections(), 2);
  ASSERT_EQ(server_->Get("latest"), "2");
  ASSERT_TRUE(write(3).ok());
  ASSERT_EQ(server_->Get("latest"), "3");

  // The old connection's copy of batch 2 arrives now.
  ASSERT_TRUE((*proxy)->ReleaseAndWaitForAnswer(absl::Seconds(5)));
  EXPECT_EQ(server_->Get("latest"), "3") << "the late copy of batch 2 overwrote batch 3";
  ASSERT_TRUE(latest->writer->Close().ok());
}

// Ten records never fill a batch of 1000, the job takes no checkpoint and
// never ends, and there are no heartbeats: only the linger can send them.
// That they become visible at all, while the job still runs without a
// checkpoint, is what is asserted; how soon is printed, not asserted (on a
// loaded machine it says more about the machine than about the linger).
TEST_F(RedisSinkTest, LingerMakesRecordsVisibleWithoutACheckpoint) {
  redis::SinkOptions options = Options();
  options.batch_records = 1000;
  options.linger = absl::Milliseconds(5);
  options.heartbeat = absl::ZeroDuration();
  Pipeline pipeline;
  testing::VectorSourceOptions source_options;
  source_options.unbounded = true;  // stays running, idle, after 10 records
  pipeline.Source(testing::VectorSource<Event>::Create(Events(10), source_options))
      .KeyBy([](const Event& e) { return e.id; })
      .Process(RunningTotal{})
      .Sink(redis::Sink<Total>(options, TotalsHash("", absl::ZeroDuration())))
      .Uid("hashes");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time started = absl::Now();
  ASSERT_TRUE(testing::WaitFor([&] { return server_->Keys("total:*").size() == 10; }))
      << server_->Keys("total:*").size();
  std::printf("10 records visible after %s\n", absl::FormatDuration(absl::Now() - started).c_str());
  EXPECT_FALSE(job->done());
  EXPECT_EQ(job->last_completed_checkpoint(), 0);
  job->Stop();
  absl::Status status = job->Wait();
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(RedisSinkTest, ConnectsOverAUnixSocketToTheSelectedDatabase) {
  StartServer({.unix_socket = true});
  redis::SinkOptions options = Options();
  options.connection.unix_socket = owned_->unix_socket();
  options.connection.port = 1;  // not used with a socket
  options.connection.database = 5;
  Pipeline pipeline;
  Totals(pipeline, 400)
      .Sink(redis::Sink<Total>(options, TotalsHash("", absl::Hours(1))))
      .Uid("hashes");
  absl::Status status = pipeline.Run();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(server_->Keys("total:*").empty());  // database 0
  ASSERT_TRUE(server_->Query({"SELECT", "5"}).ok());
  ExpectTotalsInRedis("", 400);
  ASSERT_TRUE(server_->Query({"SELECT", "0"}).ok());
}

TEST_F(RedisSinkTest, ACommandRedisRejectsFailsTheJobNamingTheSink) {
  ASSERT_TRUE(server_->Query({"SET", "total:1", "a string, not a hash"}).ok());
  Pipeline pipeline;
  Totals(pipeline, 400)
      .Sink(redis::Sink<Total>(Options(), TotalsHash("", absl::Hours(1))))
      .Uid("hashes");
  absl::Status status = pipeline.Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("redis sink 'hashes'"));
  EXPECT_THAT(status.message(), HasSubstr("WRONGTYPE"));
}

TEST_F(RedisSinkTest, BadOptionsAreInvalidArgumentsAtStart) {
  redis::SinkOptions options = Options();
  options.linger = absl::ZeroDuration();
  Pipeline pipeline;
  Totals(pipeline, 10)
      .Sink(redis::Sink<Total>(options, TotalsHash("", absl::Hours(1))))
      .Uid("hashes");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("redis sink 'hashes'"));

  Pipeline missing;
  Totals(missing, 10)
      .Sink(redis::Sink<Total>(Options(), redis::HashMapping<Total>{}))
      .Uid("hashes");
  job = missing.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("HashMapping needs"));
}

// The promises of redis.h's options and mappings, each through a job.

// A negative TTL is a configuration error, reported by Start().
TEST_F(RedisSinkTest, ANegativeTtlIsInvalidArgumentAtStart) {
  Pipeline pipeline;
  Totals(pipeline, 10)
      .Sink(redis::Sink<Total>(Options(), TotalsHash("", absl::Seconds(-1))))
      .Uid("hashes");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("a TTL must not be negative"));
  EXPECT_THAT(job.status().message(), HasSubstr("redis sink 'hashes'"));
}

// Redis rejects a NaN score: the job fails with kFailedPrecondition naming
// the sink, instead of writing a wrong leaderboard.
TEST_F(RedisSinkTest, ANaNScoreFailsTheJobNamingTheSink) {
  Pipeline pipeline;
  Totals(pipeline, 40)
      .Sink(redis::Sink<Total>(Options(),
                               redis::SortedSetMapping<Total>{
                                   .key = [](const Total&) { return std::string("nan-board"); },
                                   .member = [](const Total& t) { return absl::StrCat(t.id); },
                                   .score = [](const Total&) { return std::nan(""); }}))
      .Uid("board");
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(30));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kFailedPrecondition) << result.status;
  EXPECT_THAT(result.status.message(), HasSubstr("redis sink 'board'"));
  EXPECT_THAT(result.status.message(), HasSubstr("Redis rejected a write"));
}

// SinkOptions::fence_key replaces the default weir:fence:<uid>.
TEST_F(RedisSinkTest, AnExplicitFenceKeyIsTheOneUsed) {
  redis::SinkOptions options = Options();
  options.fence_key = "app:fence:totals";
  Pipeline pipeline;
  Totals(pipeline, 400)
      .Sink(redis::Sink<Total>(options, TotalsHash("", absl::ZeroDuration())))
      .Uid("hashes");
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(30));
  ASSERT_TRUE(result.status.ok()) << result.status;
  ExpectTotalsInRedis("", 400);
  EXPECT_FALSE(server_->HGetAll("app:fence:totals").empty());
  EXPECT_TRUE(server_->Keys("weir:fence:*").empty());
}

// max_in_flight_batches: at least one; with one, batches go strictly one
// after the other and everything still arrives.
TEST_F(RedisSinkTest, MaxInFlightBatchesMustBePositiveAndOneStillWritesEverything) {
  redis::SinkOptions bad = Options();
  bad.max_in_flight_batches = 0;
  Pipeline invalid;
  Totals(invalid, 10).Sink(redis::Sink<Total>(bad, TotalsHash("", absl::Hours(1)))).Uid("hashes");
  absl::StatusOr<JobHandle> job = invalid.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("max_in_flight_batches"));

  redis::SinkOptions one = Options();
  one.max_in_flight_batches = 1;
  one.batch_records = 7;
  Pipeline pipeline({.parallelism = 2});
  Totals(pipeline, 2000)
      .Sink(redis::Sink<Total>(one, TotalsHash("one:", absl::ZeroDuration())))
      .Uid("hashes");
  testing::JobResult result = testing::RunToCompletion(pipeline, absl::Seconds(30));
  ASSERT_TRUE(result.status.ok()) << result.status;
  ExpectTotalsInRedis("one:", 2000);
}

}  // namespace
}  // namespace weir
