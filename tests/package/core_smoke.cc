// Built against weir::core alone: a pipeline over a VectorSource into a function
// sink, then proof that s3:// storage needs the weir::s3 component.
#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "weir/testing.h"
#include "weir/weir.h"

int main() {
  std::vector<int> input(100);
  for (int i = 0; i < 100; ++i) input[i] = i;
  weir::Pipeline pipeline;
  std::atomic<long> sum{0};
  pipeline.Source(weir::testing::VectorSource<int>::Create(input))
      .Map([](int x) { return 2 * x; })
      .Sink([&sum](const int& x) { sum += x; });
  absl::Status status = pipeline.Run();
  std::printf("status=%s sum=%ld\n", status.ToString().c_str(), sum.load());
  if (!status.ok() || sum.load() != 9900) return 1;

  weir::Pipeline s3_pipeline(
      {.checkpoints = {.interval = absl::Seconds(1), .storage_uri = "s3://bucket/app"}});
  s3_pipeline.Source(weir::testing::VectorSource<int>::Create(input))
      .Uid("numbers")
      .Sink([](const int&) {})
      .Uid("discard");
  absl::StatusOr<weir::JobHandle> job = s3_pipeline.Start();
  std::printf("s3 without weir::s3: %s\n", job.status().ToString().c_str());
  return !job.ok() && job.status().code() == absl::StatusCode::kInvalidArgument &&
                 job.status().message().find("weir::s3") != std::string::npos
             ? 0
             : 1;
}
