// The webhook sink against a small local HTTP server (cpp-httplib) that
// answers with scripted statuses.

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/connectors/http.h"
#include "weir/pipeline.h"
#include "weir/testing.h"

namespace weir {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Received {
  std::string method;
  std::string path;
  std::string body;
  std::string content_type;
  std::string token;
};

// Answers each request with the next scripted status (then `fallback`), and
// records what it received. Listens on a free port of 127.0.0.1.
class ScriptedServer {
 public:
  ScriptedServer() {
    auto handler = [this](const httplib::Request& request, httplib::Response& response) {
      int status;
      {
        std::lock_guard<std::mutex> lock(mu_);
        received_.push_back({request.method, request.path, request.body,
                             request.get_header_value("Content-Type"),
                             request.get_header_value("X-Token")});
        if (!script_.empty()) {
          status = script_.front();
          script_.pop_front();
        } else {
          status = fallback_;
        }
      }
      // Recorded on arrival; answered late when asked to.
      if (const int delay = delay_first_ms_.exchange(0); delay > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      }
      response.status = status;
      response.set_content(absl::StrCat("status ", status, " from the test server"), "text/plain");
    };
    server_.Post(".*", handler);
    server_.Put(".*", handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ScriptedServer() {
    server_.stop();
    thread_.join();
  }

  // The next request is answered only after `ms` milliseconds.
  void DelayFirst(int ms) { delay_first_ms_ = ms; }

  void Script(std::vector<int> statuses, int fallback = 200) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(statuses.begin(), statuses.end());
    fallback_ = fallback;
  }
  std::vector<Received> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  std::vector<std::string> bodies() {
    std::vector<std::string> out;
    for (const Received& r : received()) out.push_back(r.body);
    return out;
  }
  std::string url(const std::string& path = "/hook") const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::deque<int> script_;
  int fallback_ = 200;
  std::vector<Received> received_;
  std::atomic<int> delay_first_ms_{0};
};

std::string Payload(const int& value) { return absl::StrCat("{\"n\":", value, "}"); }

http::SinkOptions FastOptions(const std::string& url) {
  http::SinkOptions options;
  options.url = url;
  options.retry.initial_backoff = absl::Milliseconds(5);
  options.retry.max_backoff = absl::Milliseconds(20);
  options.request_timeout = absl::Seconds(5);
  return options;
}

absl::Status RunInts(std::vector<int> values, http::SinkOptions options) {
  Pipeline pipeline;
  testing::VectorSourceOptions source_options;
  source_options.splits = 1;
  pipeline.Source(testing::VectorSource<int>::Create(std::move(values), source_options))
      .Sink(http::Sink<int>(std::move(options), &Payload))
      .Name("webhook");
  return pipeline.Run();
}

// Drives one writer directly, for tests that need control over time. The
// sink outlives its writer, as in a job.
struct DirectWriter {
  std::shared_ptr<weir::Sink<int>> sink;
  std::unique_ptr<SinkWriter<int>> writer;
};
DirectWriter Writer(http::SinkOptions options) {
  DirectWriter direct;
  direct.sink = http::Sink<int>(std::move(options), &Payload);
  absl::StatusOr<std::unique_ptr<SinkWriter<int>>> writer =
      direct.sink->CreateWriter({.operator_name = "webhook", .worker_index = 0, .parallelism = 1});
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (writer.ok()) direct.writer = *std::move(writer);
  return direct;
}

absl::Status WriteOne(SinkWriter<int>& writer, int value, Timestamp ts = 0) {
  std::vector<int> values = {value};
  std::vector<Timestamp> timestamps = {ts};
  return writer.Write(std::span<int>(values), std::span<const Timestamp>(timestamps));
}

// The payload is built during Write: the writer says it only reads, so a
// stream's other consumers share its batches.
TEST(WebhookSinkTest, TheWriterOnlyReadsItsInput) {
  DirectWriter direct = Writer(FastOptions("http://127.0.0.1:9/unused"));
  ASSERT_NE(direct.writer, nullptr);
  EXPECT_TRUE(direct.writer->ReadsOnly());
}

TEST(WebhookSinkTest, RetriesThenSucceeds) {
  ScriptedServer server;
  server.Script({503, 500, 429});
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(server.url());
  options.dead_letters = dlq;
  options.headers = {{"X-Token", "t0k"}};
  ASSERT_TRUE(RunInts({7}, options).ok());
  std::vector<Received> received = server.received();
  ASSERT_EQ(received.size(), 4u);
  for (const Received& r : received) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/hook");
    EXPECT_EQ(r.body, "{\"n\":7}");
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.token, "t0k");
  }
  EXPECT_EQ(dlq->size(), 0u);
}

TEST(WebhookSinkTest, PerBatchPayloadsWithPut) {
  ScriptedServer server;
  http::SinkOptions options = FastOptions(server.url("/batch"));
  options.method = http::Method::kPut;
  options.batch.max_records = 3;
  options.batch.max_linger = absl::Hours(1);  // only full batches and the end of input send
  ASSERT_TRUE(RunInts({1, 2, 3, 4, 5, 6, 7}, options).ok());
  EXPECT_THAT(server.bodies(), ElementsAre("[{\"n\":1},{\"n\":2},{\"n\":3}]",
                                           "[{\"n\":4},{\"n\":5},{\"n\":6}]", "[{\"n\":7}]"));
  EXPECT_EQ(server.received()[0].method, "PUT");

  // A custom envelope: newline-delimited JSON.
  ScriptedServer ndjson;
  options = FastOptions(ndjson.url());
  options.batch = {.max_records = 10, .prefix = "", .separator = "\n", .suffix = "\n"};
  options.content_type = "application/x-ndjson";
  ASSERT_TRUE(RunInts({1, 2}, options).ok());
  EXPECT_THAT(ndjson.bodies(), ElementsAre("{\"n\":1}\n{\"n\":2}\n"));
  EXPECT_EQ(ndjson.received()[0].content_type, "application/x-ndjson");
}

TEST(WebhookSinkTest, ExhaustedRetriesGoToDeadLettersWithTheLastStatus) {
  ScriptedServer server;
  server.Script({500, 502}, /*fallback=*/503);
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(server.url());
  options.retry.max_attempts = 3;
  options.circuit_breaker.failure_threshold = 0;  // no breaker
  options.dead_letters = dlq;
  options.batch.max_records = 2;
  options.batch.max_linger = absl::Hours(1);
  ASSERT_TRUE(RunInts({1, 2, 3}, options).ok());  // the job goes on
  EXPECT_EQ(server.received().size(), 6u);        // 2 requests x 3 attempts
  std::vector<DeadLetter> letters = dlq->Letters();
  ASSERT_EQ(letters.size(), 3u);
  for (size_t idx = 0; idx < letters.size(); ++idx) {
    EXPECT_EQ(letters[idx].payload, Payload(static_cast<int>(idx + 1)));
    EXPECT_EQ(letters[idx].code, absl::StatusCode::kUnavailable);
    EXPECT_EQ(letters[idx].stage, "http-sink");
    EXPECT_THAT(letters[idx].error, HasSubstr("HTTP 503"));
    EXPECT_THAT(letters[idx].error, HasSubstr("gave up after 3 attempts"));
    EXPECT_EQ(letters[idx].timestamp_ms, static_cast<int64_t>(idx));
  }
}

TEST(WebhookSinkTest, ClientErrorsAreNotRetried) {
  ScriptedServer server;
  server.Script({}, /*fallback=*/400);
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(server.url());
  options.dead_letters = dlq;
  ASSERT_TRUE(RunInts({1, 2}, options).ok());
  EXPECT_EQ(server.received().size(), 2u);
  ASSERT_EQ(dlq->size(), 2u);
  EXPECT_EQ(dlq->Letters()[0].code, absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dlq->Letters()[0].error, HasSubstr("HTTP 400"));
}

// 501 (the endpoint does not implement the method) is final: one request,
// then the dead letters. 408 and 429 are transient: retried until accepted.
TEST(WebhookSinkTest, NotImplementedIsNotRetriedButTimeoutAndTooManyRequestsAre) {
  ScriptedServer server;
  server.Script({501});
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(server.url());
  options.circuit_breaker.failure_threshold = 0;
  options.dead_letters = dlq;
  ASSERT_TRUE(RunInts({1}, options).ok());
  EXPECT_EQ(server.received().size(), 1u);
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_THAT(dlq->Letters()[0].error, HasSubstr("HTTP 501"));

  ScriptedServer transient;
  transient.Script({408, 429});
  auto none = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions retried = FastOptions(transient.url());
  retried.circuit_breaker.failure_threshold = 0;
  retried.dead_letters = none;
  ASSERT_TRUE(RunInts({2}, retried).ok());
  EXPECT_EQ(transient.bodies(), (std::vector<std::string>{Payload(2), Payload(2), Payload(2)}));
  EXPECT_EQ(none->size(), 0u);
}

// An answer that takes longer than request_timeout counts as a failed
// attempt and is retried; the next attempt delivers.
TEST(WebhookSinkTest, ARequestThatTimesOutIsRetried) {
  ScriptedServer server;
  server.DelayFirst(1000);
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(server.url());
  options.request_timeout = absl::Milliseconds(200);
  options.circuit_breaker.failure_threshold = 0;
  options.dead_letters = dlq;
  ASSERT_TRUE(RunInts({3}, options).ok());
  EXPECT_GE(server.received().size(), 2u);
  EXPECT_EQ(dlq->size(), 0u);
}

TEST(WebhookSinkTest, WithoutDeadLetterQueueAFailureFailsTheJob) {
  ScriptedServer server;
  server.Script({}, /*fallback=*/503);
  http::SinkOptions options = FastOptions(server.url());
  options.retry.max_attempts = 2;
  options.circuit_breaker.failure_threshold = 0;
  absl::Status status = RunInts({1}, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("http sink"));
  EXPECT_THAT(status.message(), HasSubstr("HTTP 503"));
}

TEST(WebhookSinkTest, ConnectionRefusedIsRetriedThenDeadLettered) {
  std::string url;
  {
    ScriptedServer gone;  // a port nothing listens on any more
    url = gone.url();
  }
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(url);
  options.retry.max_attempts = 2;
  options.dead_letters = dlq;
  ASSERT_TRUE(RunInts({1}, options).ok());
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_EQ(dlq->Letters()[0].code, absl::StatusCode::kUnavailable);
  EXPECT_THAT(dlq->Letters()[0].error, HasSubstr("no answer"));
}

TEST(WebhookSinkTest, CircuitBreakerOpensThenHalfOpensAfterTheCoolDown) {
  ScriptedServer server;
  server.Script({}, /*fallback=*/503);
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(server.url());
  options.retry.max_attempts = 1;
  options.circuit_breaker.failure_threshold = 3;
  options.circuit_breaker.cool_down = absl::Milliseconds(300);
  options.dead_letters = dlq;
  DirectWriter direct = Writer(options);
  ASSERT_NE(direct.writer, nullptr);
  SinkWriter<int>* writer = direct.writer.get();

  // Three failures open the breaker; the next records are not sent.
  for (int n = 0; n < 6; ++n) ASSERT_TRUE(WriteOne(*writer, n).ok());
  EXPECT_EQ(server.received().size(), 3u);
  std::vector<DeadLetter> letters = dlq->Letters();
  ASSERT_EQ(letters.size(), 6u);
  EXPECT_THAT(letters[2].error, HasSubstr("HTTP 503"));
  EXPECT_THAT(letters[3].error, HasSubstr("circuit breaker open"));

  // After the cool-down one probe goes out; it fails: open again.
  absl::SleepFor(absl::Milliseconds(350));
  ASSERT_TRUE(WriteOne(*writer, 6).ok());
  ASSERT_TRUE(WriteOne(*writer, 7).ok());
  EXPECT_EQ(server.received().size(), 4u);
  EXPECT_THAT(dlq->Letters().back().error, HasSubstr("circuit breaker open"));

  // The server recovers: the next probe succeeds and closes the breaker.
  server.Script({}, /*fallback=*/200);
  absl::SleepFor(absl::Milliseconds(350));
  for (int n = 8; n < 11; ++n) ASSERT_TRUE(WriteOne(*writer, n).ok());
  EXPECT_EQ(server.received().size(), 7u);
  EXPECT_EQ(server.received().back().body, Payload(10));
  EXPECT_EQ(dlq->size(), 8u);
  EXPECT_TRUE(writer->Flush().ok());
}

TEST(WebhookSinkTest, WaitWhileOpenDeliversAfterTheCoolDown) {
  ScriptedServer server;
  server.Script({503, 503});
  auto dlq = testing::CollectingDeadLetterQueue::Create();
  http::SinkOptions options = FastOptions(server.url());
  options.retry.max_attempts = 4;
  options.circuit_breaker = {.failure_threshold = 2,
                             .cool_down = absl::Milliseconds(200),
                             .when_open = http::WhenOpen::kWait};
  options.dead_letters = dlq;
  DirectWriter direct = Writer(options);
  ASSERT_NE(direct.writer, nullptr);
  SinkWriter<int>* writer = direct.writer.get();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(WriteOne(*writer, 1).ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));  // waited for the half-open probe
  EXPECT_EQ(server.received().size(), 3u);
  EXPECT_EQ(dlq->size(), 0u);
}

TEST(WebhookSinkTest, BadOptionsFailWhenThePipelineStarts) {
  Pipeline pipeline;
  pipeline.Source(testing::VectorSource<int>::Create(std::vector<int>{1}))
      .Sink(http::Sink<int>({.url = "localhost:80/hook"}, &Payload));
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("http sink"));
}

}  // namespace
}  // namespace weir
