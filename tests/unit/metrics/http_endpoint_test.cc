// The embedded HTTP server (PipelineOptions::http_port), over real HTTP on
// loopback: /metrics parses strictly, /api/v1/job describes the job,
// /healthz and /readyz follow its state, the dashboard's files are served,
// the server binds loopback by default, and it answers while the workers
// run flat out or are blocked.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "simdjson.h"
#include "tests/unit/metrics/prometheus_parser.h"
#include "tests/unit/metrics/test_pipeline.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::weir::testing::WaitFor;

struct Reply {
  int status = 0;  // 0: no answer
  std::string body;
  std::string content_type;
};

Reply Get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  httplib::Result result = client.Get(path.c_str());
  if (!result) return {};
  return {result->status, result->body, result->get_header_value("Content-Type")};
}

// A port nothing listens on right now.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// A sink that only counts (thread-safe).
class CountingSink final : public Sink<int64_t> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<int64_t>>(new Writer(this));
  }
  int64_t count() const { return count_.load(); }

 private:
  class Writer final : public SinkWriter<int64_t> {
   public:
    explicit Writer(CountingSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<int64_t> values, std::span<const Timestamp>) override {
      sink_->count_ += static_cast<int64_t>(values.size());
      return absl::OkStatus();
    }

   private:
    CountingSink* sink_;
  };
  std::atomic<int64_t> count_{0};
};

// source -> KeyBy -> keyed count -> sink, at `rate` records/s per split (0: flat out).
std::shared_ptr<CountingSink> Build(Pipeline& pipeline, double rate) {
  auto sink = std::make_shared<CountingSink>();
  pipeline.Source(std::make_shared<testing::EndlessSource>(pipeline.options().parallelism, rate))
      .Uid("numbers")
      .KeyBy([](const int64_t& v) { return v % 1009; })
      .Name("by-key")
      .Process(testing::CountPerKey{})
      .Uid("count")
      .Sink(sink)
      .Uid("out");
  return sink;
}

TEST(HttpEndpointTest, ServesMetricsJobHealthAndTheDashboard) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/weir-http-ckpt-", getpid());
  std::filesystem::remove_all(dir);
  Pipeline pipeline({.parallelism = 2,
                     .checkpoints = {.storage_uri = "file://" + dir},
                     .job_name = "served",
                     .http_port = 0});
  std::shared_ptr<CountingSink> sink = Build(pipeline, 20'000);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const int port = job->http_port();
  ASSERT_GT(port, 0);
  ASSERT_TRUE(WaitFor([&] { return sink->count() > 1000; }));

  // /metrics: the Prometheus text format, strictly.
  Reply metrics = Get(port, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.content_type, StartsWith("text/plain; version=0.0.4"));
  absl::StatusOr<testing::ParsedExposition> first = testing::ParsePrometheusText(metrics.body);
  ASSERT_TRUE(first.ok()) << first.status() << "\n" << metrics.body;
  const double out_before =
      first->Sum("weir_operator_records_out_total", {{"operator", "numbers"}, {"job", "served"}});
  EXPECT_GT(out_before, 0);
  EXPECT_EQ(first->families.at("weir_operator_records_out_total").type, "counter");
  EXPECT_EQ(first->families.at("weir_sink_flush_duration_seconds").type, "histogram");
  ASSERT_TRUE(WaitFor([&] { return sink->count() > out_before + 1000; }));
  absl::StatusOr<testing::ParsedExposition> second =
      testing::ParsePrometheusText(Get(port, "/metrics").body);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(second->Sum("weir_operator_records_out_total", {{"operator", "numbers"}}), out_before);

  // /healthz, /readyz.
  Reply health = Get(port, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  Reply ready = Get(port, "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "running\n");

  // /api/v1/job, after a checkpoint and once the sampler has rates.
  absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  simdjson::dom::parser parser;
  std::string body;
  ASSERT_TRUE(WaitFor(
      [&] {
        Reply reply = Get(port, "/api/v1/job");
        if (reply.status != 200) return false;
        body = reply.body;
        simdjson::dom::element doc;
        if (parser.parse(body).get(doc) != simdjson::SUCCESS) return false;
        simdjson::dom::array history;
        return doc["history"].get_array().get(history) == simdjson::SUCCESS && history.size() > 0;
      },
      absl::Seconds(15)))
      << body;
  Reply job_reply = Get(port, "/api/v1/job");
  ASSERT_EQ(job_reply.status, 200);
  EXPECT_EQ(job_reply.content_type, "application/json");
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(job_reply.body).get(doc), simdjson::SUCCESS) << job_reply.body;
  EXPECT_EQ(std::string_view(doc["job"]["name"]), "served");
  EXPECT_EQ(std::string_view(doc["job"]["status"]), "running");
  EXPECT_TRUE(bool(doc["job"]["ready"]));
  EXPECT_EQ(int64_t(doc["job"]["parallelism"]), 2);
  std::vector<std::string> names;
  double source_rate = 0;
  for (simdjson::dom::element node : doc["graph"]["nodes"].get_array()) {
    names.emplace_back(std::string_view(node["name"]));
    if (bool(node["source"])) source_rate = double(node["out_rate"]);
    if (std::string_view(node["name"]) == "by-key") {
      EXPECT_TRUE(bool(node["exchange"]));
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"numbers", "by-key", "count", "out"}));
  EXPECT_GT(source_rate, 0);
  EXPECT_EQ(doc["graph"]["edges"].get_array().size(), 3u);
  EXPECT_EQ(doc["workers"].get_array().size(), 2u);
  EXPECT_TRUE(bool(doc["checkpoints"]["enabled"]));
  EXPECT_EQ(int64_t(doc["checkpoints"]["last_completed_id"]), *checkpoint);
  simdjson::dom::array checkpoints = doc["checkpoints"]["history"].get_array();
  ASSERT_EQ(checkpoints.size(), 1u);
  EXPECT_EQ(std::string_view(checkpoints.at(0)["status"]), "completed");
  EXPECT_GT(int64_t(checkpoints.at(0)["size_bytes"]), 0);
  bool has_metrics = false;
  for (simdjson::dom::element family : doc["metrics"].get_array()) {
    has_metrics |= std::string_view(family["name"]) == "weir_operator_records_in_total";
  }
  EXPECT_TRUE(has_metrics);

  // The dashboard.
  Reply page = Get(port, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.content_type, StartsWith("text/html"));
  EXPECT_THAT(page.body, HasSubstr("dashboard.js"));
  EXPECT_THAT(Get(port, "/dashboard.js").content_type, StartsWith("text/javascript"));
  EXPECT_EQ(Get(port, "/dashboard.css").status, 200);
  EXPECT_EQ(Get(port, "/no-such-page").status, 404);

  // Finished: healthy, no longer ready; still answering until the handle goes.
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  Reply done = Get(port, "/readyz");
  EXPECT_EQ(done.status, 503);
  EXPECT_EQ(done.body, "finished\n");
  EXPECT_EQ(Get(port, "/healthz").status, 200);
  std::filesystem::remove_all(dir);
}

TEST(HttpEndpointTest, AFailedJobIsUnhealthy) {
  Pipeline pipeline({.job_name = "failing", .http_port = 0});
  auto sink = testing::CollectingSink<int64_t>::Create();
  pipeline.Source(std::make_shared<testing::EndlessSource>(1, 1000))
      .Map([](int64_t v) -> absl::StatusOr<int64_t> {
        if (v == 100) return absl::DataLossError("record 100 is broken");
        return v;
      })
      .Name("breaks")
      .Sink(sink);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->Wait().code(), absl::StatusCode::kDataLoss);
  Reply health = Get(job->http_port(), "/healthz");
  EXPECT_EQ(health.status, 503);
  EXPECT_THAT(health.body, HasSubstr("record 100 is broken"));
  Reply ready = Get(job->http_port(), "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "failed\n");
}

// A source that lists its splits only when released: Start() is still
// preparing (where a restore would run) while the server already answers.
class GatedSource final : public Source<int64_t> {
 public:
  explicit GatedSource(absl::Notification* gate) : gate_(gate), inner_(1, 1000) {}
  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    gate_->WaitForNotification();
    return inner_.DiscoverSplits();
  }
  absl::StatusOr<std::unique_ptr<SourceReader<int64_t>>> CreateReader(
      const SourceReaderContext& context) override {
    return inner_.CreateReader(context);
  }

 private:
  absl::Notification* gate_;
  testing::EndlessSource inner_;
};

TEST(HttpEndpointTest, NotReadyUntilStarted) {
  const int port = FreePort();
  absl::Notification gate;
  Pipeline pipeline({.job_name = "gated", .http_port = port});
  pipeline.Source(std::make_shared<GatedSource>(&gate)).Sink([](const int64_t&) {});
  absl::StatusOr<JobHandle> job = absl::UnknownError("not started");
  std::thread starter([&] { job = pipeline.Start(); });
  ASSERT_TRUE(WaitFor([&] { return Get(port, "/readyz").status != 0; }));
  Reply ready = Get(port, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "starting\n");
  EXPECT_EQ(Get(port, "/healthz").status, 200);
  gate.Notify();
  starter.join();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(Get(port, "/readyz").status, 200);
  job->Cancel();
  EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
}

TEST(HttpEndpointTest, APortInUseFailsStart) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  Pipeline pipeline({.http_port = port});
  pipeline.Source(std::make_shared<testing::EndlessSource>(1, 10)).Sink([](const int64_t&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  EXPECT_EQ(job.status().code(), absl::StatusCode::kUnavailable) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr(absl::StrCat(port)));
  ::close(fd);
}

TEST(HttpEndpointTest, ABadPortIsInvalid) {
  Pipeline pipeline({.http_port = 70000});
  pipeline.Source(std::make_shared<testing::EndlessSource>(1, 10)).Sink([](const int64_t&) {});
  EXPECT_EQ(pipeline.Start().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HttpEndpointTest, BindsLoopbackByDefault) {
  Pipeline pipeline({.http_port = 0});
  pipeline.Source(std::make_shared<testing::EndlessSource>(1, 10)).Sink([](const int64_t&) {});
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // /proc/net/tcp: "sl local_address rem_address st ...", addresses as
  // little-endian hex IPv4:port, state 0A = LISTEN.
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::string local;
  const std::string port_hex = absl::StrFormat(":%04X", job->http_port());
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, address, remote, state;
    fields >> slot >> address >> remote >> state;
    if (state == "0A" && address.size() > 5 && address.ends_with(port_hex)) local = address;
  }
  EXPECT_EQ(local, "0100007F" + port_hex);  // 127.0.0.1
  job->Cancel();
  (void)job->Wait();
}

// While both workers run flat out on a machine with as many cores, every
// scrape is answered (the client gives up after 10 s) and the job keeps
// running meanwhile. Latencies are printed, not asserted: on a machine
// shared with other work they measure the machine more than the server.
// That scrapes never wait for the workers is shown deterministically by
// AnswersWhileEveryWorkerIsBlocked.
TEST(HttpEndpointTest, StaysResponsiveUnderLoad) {
  Pipeline pipeline({.parallelism = 2, .job_name = "loaded", .http_port = 0});
  std::shared_ptr<CountingSink> sink = Build(pipeline, 0);
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitFor([&] { return sink->count() > 100'000; }));
  std::vector<double> latencies_ms;
  const int64_t before = sink->count();
  const absl::Time until = absl::Now() + absl::Seconds(3);
  for (int round = 0; round < 60 || absl::Now() < until; ++round) {
    for (const char* path : {"/metrics", "/api/v1/job", "/healthz"}) {
      const auto start = std::chrono::steady_clock::now();
      Reply reply = Get(job->http_port(), path);
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
      ASSERT_EQ(reply.status, 200) << path;
    }
  }
  const int64_t during = sink->count() - before;
  EXPECT_FALSE(job->done());
  job->Stop();
  ASSERT_TRUE(job->Wait().ok());
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::printf("%zu requests under load: median %.2f ms, max %.2f ms; %lld records meanwhile\n",
              latencies_ms.size(), latencies_ms[latencies_ms.size() / 2], latencies_ms.back(),
              static_cast<long long>(during));
  EXPECT_GT(during, 0);
}

// A sink whose every Write blocks until released; says how many writers are
// blocked (thread-safe).
class BlockingSink final : public Sink<int64_t> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<int64_t>>> CreateWriter(const SinkContext&) override {
    return std::unique_ptr<SinkWriter<int64_t>>(new Writer(this));
  }
  int blocked() const { return blocked_.load(); }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

 private:
  class Writer final : public SinkWriter<int64_t> {
   public:
    explicit Writer(BlockingSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<int64_t>, std::span<const Timestamp>) override {
      if (!blocked_once_) {
        blocked_once_ = true;
        sink_->blocked_.fetch_add(1);
        sink_->release_.WaitForNotification();
      }
      return absl::OkStatus();
    }

   private:
    BlockingSink* sink_;
    bool blocked_once_ = false;
  };
  std::atomic<int> blocked_{0};
  absl::Notification release_;
};

// Scrapes are answered from what the workers publish, never by asking them:
// with every worker stuck in its sink, the endpoints still answer (the
// client gives up after 10 s), whatever the load on the machine.
TEST(HttpEndpointTest, AnswersWhileEveryWorkerIsBlocked) {
  Pipeline pipeline({.parallelism = 2, .job_name = "blocked", .http_port = 0});
  auto sink = std::make_shared<BlockingSink>();
  pipeline.Source(std::make_shared<testing::EndlessSource>(2, 0))
      .Uid("numbers")
      .Sink(sink)
      .Uid("out");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  // Released before the handle, which waits for the workers, goes.
  struct ReleaseAtExit {
    BlockingSink* sink;
    ~ReleaseAtExit() { sink->Release(); }
  } release_at_exit{sink.get()};
  ASSERT_TRUE(WaitFor([&] { return sink->blocked() == 2; })) << sink->blocked();
  for (const char* path : {"/metrics", "/api/v1/job", "/healthz", "/readyz"}) {
    Reply reply = Get(job->http_port(), path);
    EXPECT_EQ(reply.status, 200) << path << ": " << reply.body;
  }
  EXPECT_EQ(sink->blocked(), 2);  // nothing above released a worker
  sink->Release();
  job->Stop();
  EXPECT_TRUE(job->Wait().ok());
}

}  // namespace
}  // namespace weir
