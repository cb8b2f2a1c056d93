// Built against the installed package (the umbrella weir::weir): a keyed running count
// over 1000 numbers, and s3:// storage registered by the weir::s3 component.
#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "weir/testing.h"
#include "weir/weir.h"

class Count final : public weir::KeyedProcessFunction<int, int, int> {
 public:
  absl::Status ProcessElement(const int&, Context&, weir::Collector<int>& out) override {
    out.Collect(++count_);
    return absl::OkStatus();
  }

 private:
  int count_ = 0;
};

int main() {
  std::vector<int> input(1000);
  for (int i = 0; i < 1000; ++i) input[i] = i;
  weir::Pipeline pipeline({.parallelism = 2});
  std::atomic<int> seen{0};
  pipeline.Source(weir::testing::VectorSource<int>::Create(input))
      .KeyBy([](int x) { return x % 7; })
      .Process(Count{})
      .Sink([&seen](const int&) { ++seen; });
  absl::Status status = pipeline.Run();
  std::printf("status=%s records=%d\n", status.ToString().c_str(), seen.load());
  if (!status.ok() || seen.load() != 1000) return 1;

  // Open does not contact the server; whatever it says, it is not "link weir::s3".
  absl::StatusOr<std::unique_ptr<weir::CheckpointStorage>> s3 =
      weir::CheckpointStorage::Open("s3://bucket/prefix");
  std::printf("s3 with weir::s3: %s\n", s3.status().ToString().c_str());
  return s3.ok() || s3.status().message().find("weir::s3") == std::string::npos ? 0 : 1;
}
