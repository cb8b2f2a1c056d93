#include <atomic>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "weir/testing.h"
#include "weir/weir.h"

namespace weir {
namespace {

using ::testing::UnorderedElementsAreArray;

TEST(PipelineTest, MapFilterSink) {
  Pipeline pipeline({.parallelism = 2});
  auto sink = testing::CollectingSink<int>::Create();
  std::vector<int> input(1000);
  for (int i = 0; i < 1000; ++i) input[i] = i;
  pipeline.Source(testing::VectorSource<int>::Create(input))
      .Filter([](const int& x) { return x % 2 == 0; })
      .Map([](int x) { return x * 3; })
      .Sink(sink);
  testing::JobResult result = testing::RunToCompletion(pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;
  std::vector<int> expected;
  for (int i = 0; i < 1000; i += 2) expected.push_back(i * 3);
  EXPECT_THAT(sink->Values(), UnorderedElementsAreArray(expected));
}

}  // namespace
}  // namespace weir
