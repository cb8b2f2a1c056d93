// The dashboard in a real browser: a pipeline serves its page, headless
// Chromium (Debian's `chromium`, installed by .ci/setup) loads it, runs its
// script against the live /api/v1/job and renders the job graph with non-zero
// rates. A screenshot of the page is kept in the build directory
// (artifacts/dashboard.png). Skipped only when Chromium is not installed,
// and then failed instead under CI=true (tests/support/prerequisite.h).

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/unit/metrics/test_pipeline.h"
#include "weir/testing.h"
#include "weir/weir.h"

#ifndef WEIR_ARTIFACTS_DIR
#define WEIR_ARTIFACTS_DIR "."
#endif

namespace weir {
namespace {

using ::testing::HasSubstr;
using ::weir::testing::WaitFor;

std::string FindChromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    std::string path = testing::FindProgram(name, "WEIR_CHROMIUM");
    if (!path.empty()) return path;
  }
  return "";
}

// Runs headless Chromium on `url` with `extra` arguments in a fresh profile;
// returns its stdout and stderr.
absl::StatusOr<std::string> RunChromium(const std::string& chromium, const std::string& url,
                                        const std::vector<std::string>& extra) {
  absl::StatusOr<std::string> profile = testing::MakeTempDir("weir-chromium");
  if (!profile.ok()) return profile.status();
  std::vector<std::string> argv = {
      chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage", "--user-data-dir=" + *profile,
      // Virtual time runs the page's timers (its polls)
      // for this long, pausing while fetches are pending.
      "--virtual-time-budget=5000"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  const std::string log = *profile + ".log";
  absl::StatusOr<std::unique_ptr<testing::ChildProcess>> child =
      testing::ChildProcess::Spawn(argv, {.log_path = log});
  if (!child.ok()) return child.status();
  const bool exited = WaitFor([&] { return !(*child)->Running(); }, absl::Seconds(120));
  if (!exited) (*child)->Terminate(absl::Seconds(5));
  std::string output = testing::ReadFileOrEmpty(log);
  std::error_code ignored;
  std::filesystem::remove_all(*profile, ignored);
  std::filesystem::remove(log, ignored);
  if (!exited) return absl::DeadlineExceededError("chromium did not exit: " + output);
  return output;
}

class Enrich final : public ProcessFunction<int64_t, int64_t> {
 public:
  absl::Status ProcessElement(const int64_t& value, Context&, Collector<int64_t>& out) override {
    out.Collect(value * 31 + 7);
    return absl::OkStatus();
  }
};

TEST(DashboardBrowserTest, RendersTheGraphAndLiveRates) {
  const std::string chromium = FindChromium();
  if (chromium.empty()) {
    WEIR_MISSING_PREREQUISITE(
        "chromium is not installed (Debian package `chromium`, which .ci/setup installs; or set "
        "WEIR_CHROMIUM)");
  }
  const std::string storage = absl::StrCat(::testing::TempDir(), "/weir-dashboard-", getpid());
  std::filesystem::remove_all(storage);
  Pipeline pipeline(
      {.parallelism = 2,
       .checkpoints = {.interval = absl::Seconds(1), .storage_uri = "file://" + storage},
       .job_name = "dashboard-demo",
       .http_port = 0});
  pipeline
      .Source(std::make_shared<testing::EndlessSource>(2, 5000),
              WatermarkStrategy<int64_t>::BoundedOutOfOrderness(absl::Milliseconds(200)))
      .Uid("events")
      .Process(Enrich{})
      .Name("enrich")
      .KeyBy([](const int64_t& v) { return v % 101; })
      .Name("by-content")
      .Process(testing::CountPerKey{})
      .Uid("count")
      .Sink([](const int64_t&) {})
      .Uid("store");
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const std::string url = absl::StrCat("http://127.0.0.1:", job->http_port(), "/");
  // The sampler needs two samples (about two seconds) before it has rates;
  // give the charts a few more.
  ASSERT_TRUE(WaitFor(
      [&] {
        const MetricsSnapshot m = job->Metrics();
        return m.Sum("weir_operator_records_in_total", {{"operator", "store"}}) > 0 &&
               m.Sum("weir_checkpoints_completed_total") >= 1;
      },
      absl::Seconds(30)));
  absl::SleepFor(absl::Seconds(5));

  absl::StatusOr<std::string> dom = RunChromium(chromium, url, {"--dump-dom"});
  ASSERT_TRUE(dom.ok()) << dom.status();
  // The script ran and polled the job at least once.
  std::smatch match;
  ASSERT_TRUE(std::regex_search(*dom, match, std::regex(R"re(data-polls="([0-9]+)")re"))) << *dom;
  EXPECT_GE(std::stoi(match[1]), 1) << *dom;
  EXPECT_THAT(*dom, HasSubstr("data-status=\"running\""));
  // The graph: every operator is a node, the edges are drawn.
  for (const char* name : {"events", "enrich", "by-content", "count", "store"}) {
    EXPECT_THAT(*dom, HasSubstr(absl::StrCat("data-name=\"", name, "\""))) << name;
  }
  EXPECT_THAT(*dom, HasSubstr("class=\"edge\""));
  EXPECT_THAT(*dom, HasSubstr("node source"));
  EXPECT_THAT(*dom, HasSubstr("node exchange"));
  // A non-zero rate on a node.
  double max_rate = 0;
  const std::regex rate_re(R"re(data-rate="([0-9.eE+-]+)")re");
  for (auto it = std::sregex_iterator(dom->begin(), dom->end(), rate_re);
       it != std::sregex_iterator(); ++it) {
    max_rate = std::max(max_rate, std::stod((*it)[1]));
  }
  EXPECT_GT(max_rate, 0) << *dom;
  // The checkpoint table has a completed checkpoint.
  EXPECT_THAT(*dom, HasSubstr("completed"));

  // The screenshot, kept as an artifact of the build.
  std::filesystem::create_directories(WEIR_ARTIFACTS_DIR);
  const std::string png = std::string(WEIR_ARTIFACTS_DIR) + "/dashboard.png";
  std::filesystem::remove(png);
  absl::StatusOr<std::string> shot = RunChromium(
      chromium, url, {"--screenshot=" + png, "--window-size=1400,1700", "--hide-scrollbars"});
  ASSERT_TRUE(shot.ok()) << shot.status();
  ASSERT_TRUE(std::filesystem::exists(png)) << *shot;
  EXPECT_GT(std::filesystem::file_size(png), 20'000u) << "a blank page?";
  EXPECT_EQ(testing::ReadFileOrEmpty(png).substr(1, 3), "PNG");
  std::printf("dashboard screenshot: %s\n", png.c_str());

  job->Stop();
  EXPECT_TRUE(job->Wait().ok());
  std::filesystem::remove_all(storage);
}

}  // namespace
}  // namespace weir
