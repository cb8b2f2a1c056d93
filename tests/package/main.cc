// Built against the installed package: a keyed running count over 1000 numbers.
#include <atomic>
#include <cstdio>
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
  return status.ok() && seen.load() == 1000 ? 0 : 1;
}
