// weir's log goes to the sink the application sets (weir/log.h), one line
// per call without its newline, and back to stderr once the sink is reset.

#include "weir/log.h"

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::HasSubstr;

// A bounded job with checkpoints: the second run restores the first run's
// final checkpoint, which weir logs.
absl::Status RunOnce(const std::filesystem::path& dir) {
  Pipeline pipeline({.checkpoints = {.storage_uri = "file://" + dir.string()}});
  pipeline.Source(testing::VectorSource<int64_t>::Create(std::vector<int64_t>{1, 2, 3}))
      .Uid("numbers")
      .Sink(testing::CollectingSink<int64_t>::Create())
      .Uid("collect");
  return testing::RunToCompletion(pipeline).status;
}

TEST(LogTest, LinesGoToTheSinkTheApplicationSetAndBackToStderr) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("weir-log-test-", getpid());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(RunOnce(dir).ok());

  std::mutex mu;
  std::vector<std::string> lines;
  SetLogSink([&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  ::testing::internal::CaptureStderr();
  absl::Status status = RunOnce(dir);
  const std::string stderr_with_sink = ::testing::internal::GetCapturedStderr();
  SetLogSink(nullptr);
  ASSERT_TRUE(status.ok()) << status;
  {
    std::lock_guard<std::mutex> lock(mu);
    bool restored = false;
    for (const std::string& line : lines) {
      EXPECT_TRUE(absl::StartsWith(line, "weir: ")) << line;
      EXPECT_FALSE(absl::EndsWith(line, "\n")) << line;
      restored |= absl::StrContains(line, "restoring job 'weir' from checkpoint");
    }
    EXPECT_TRUE(restored) << "no restore line among " << lines.size() << " lines";
  }
  EXPECT_THAT(stderr_with_sink, ::testing::Not(HasSubstr("restoring job"))) << stderr_with_sink;

  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(RunOnce(dir).ok());
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("weir: restoring job 'weir'"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weir
