// The README's first example ("A first job"), compiled and run. The code between the two
// "README example" markers is the README's code block, character for character
// (tests/unit/api/readme_example.cmake checks that, as the ctest docs.readme_example): if one
// changes, change the other. The test runs the job twice on one checkpoint storage and checks
// that the second run continues the counts of the first.

#include <stdlib.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

// README example begins
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "weir/testing.h"  // VectorSource: an in-memory source, for examples and tests
#include "weir/weir.h"

struct View {
  uint64_t content_id = 0;
  int64_t duration_ms = 0;
};

struct ViewCount {
  uint64_t content_id = 0;
  int64_t views = 0;
  int64_t watched_ms = 0;
};

// Counts the views of each key and the time watched. Both are keyed state: weir checkpoints them
// with the job, restores them on restart and moves them with their key when the parallelism
// changes.
class CountViews final : public weir::KeyedProcessFunction<uint64_t, View, ViewCount> {
 public:
  absl::Status ProcessElement(const View& view, Context& ctx,
                              weir::Collector<ViewCount>& out) override {
    weir::ValueState<int64_t> views = ctx.GetState(kViews);
    weir::ValueState<int64_t> watched_ms = ctx.GetState(kWatchedMs);
    // Get() is null before the key's first Update; it points into the state, so read it
    // before the next state call.
    ViewCount count{ctx.current_key(), 1, view.duration_ms};
    if (const int64_t* seen = views.Get()) count.views += *seen;
    if (const int64_t* watched = watched_ms.Get()) count.watched_ms += *watched;
    views.Update(count.views);
    watched_ms.Update(count.watched_ms);
    out.Collect(count);
    return absl::OkStatus();
  }

 private:
  static inline const weir::ValueStateDescriptor<int64_t> kViews{"views"};
  static inline const weir::ValueStateDescriptor<int64_t> kWatchedMs{"watched_ms"};
};

// Runs the job until `views` are all read. `checkpoints` is "file:///dir" or
// "s3://bucket/prefix"; a later run on the same storage continues from the newest checkpoint.
absl::Status RunViewCounts(std::vector<View> views, std::string checkpoints) {
  weir::Pipeline pipeline(
      {.parallelism = 2,
       .checkpoints = {.interval = absl::Seconds(10), .storage_uri = std::move(checkpoints)},
       .job_name = "view-counts"});
  // With checkpoints, every source, sink and stateful operator has a uid: its state is filed
  // under it, whatever is inserted or renamed around it later.
  pipeline.Source(weir::testing::VectorSource<View>::Create(std::move(views)))
      .Uid("views")
      .Filter([](const View& view) { return view.duration_ms > 0; })
      .KeyBy([](const View& view) { return view.content_id; })
      .Process(CountViews{})
      .Uid("count-views")
      .Sink([](const ViewCount& count) {
        std::printf("content_id=%llu views=%lld watched_ms=%lld\n",
                    static_cast<unsigned long long>(count.content_id),
                    static_cast<long long>(count.views), static_cast<long long>(count.watched_ms));
      })
      .Uid("print");
  return pipeline.Run();  // returns when the input ends, or with the first error
}
// README example ends

namespace {

using ::testing::UnorderedElementsAre;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Runs RunViewCounts and returns what its sink printed.
std::vector<std::string> RunAndCapture(std::vector<View> views, const std::string& checkpoints) {
  ::testing::internal::CaptureStdout();
  absl::Status status = RunViewCounts(std::move(views), checkpoints);
  std::string printed = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(status.ok()) << status;
  return Lines(printed);
}

TEST(ReadmeExample, CountsViewsInKeyedStateAndContinuesFromTheCheckpoint) {
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "weir-readme-example-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
  const std::string storage = "file://" + dir_template;

  // VectorSource's 4 splits take records i % 4 in order, so the records of one key here come
  // from one split (content 1: 0 and 4) and print in order. The second run's input starts with
  // the first's: the restored split positions skip exactly what the first run read.
  std::vector<View> views = {{1, 30'000}, {2, 0}, {3, 12'000}, {4, 3'000}, {1, 5'000}};
  EXPECT_THAT(RunAndCapture(views, storage),
              UnorderedElementsAre(
                  "content_id=1 views=1 watched_ms=30000", "content_id=1 views=2 watched_ms=35000",
                  "content_id=3 views=1 watched_ms=12000", "content_id=4 views=1 watched_ms=3000"));

  views.insert(views.end(), {{2, 7'000}, {1, 1'000}, {3, 0}});
  EXPECT_THAT(RunAndCapture(views, storage),
              UnorderedElementsAre("content_id=2 views=1 watched_ms=7000",
                                   "content_id=1 views=3 watched_ms=36000"));

  std::filesystem::remove_all(dir_template);
}

}  // namespace
