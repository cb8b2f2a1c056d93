// What W1 and W2 share: the record the window sees (content id and
// engagement seconds), its (count, sum) aggregate, the window result, and a
// sink that adds the results up so every run can be checked.

#ifndef WEIR_BENCH_WINDOW_WORKLOAD_H_
#define WEIR_BENCH_WINDOW_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "weir/weir.h"

namespace weir::bench {

struct Seconds {
  uint64_t content_id;
  double seconds;
};

// The incremental aggregate of one window.
struct WindowAcc {
  int64_t count = 0;
  double sum = 0;
};

struct WindowResult {
  uint64_t content_id;
  int64_t window_start;
  int64_t count;
  double sum;
};

}  // namespace weir::bench

// Seconds cross a KeyBy, which in cluster mode (W4) is a Kafka topic.
template <>
struct weir::Codec<weir::bench::Seconds>
    : weir::MemberCodec<weir::bench::Seconds, &weir::bench::Seconds::content_id,
                        &weir::bench::Seconds::seconds> {};

template <>
struct weir::Codec<weir::bench::WindowAcc>
    : weir::MemberCodec<weir::bench::WindowAcc, &weir::bench::WindowAcc::count,
                        &weir::bench::WindowAcc::sum> {};

namespace weir::bench {

class CountSum final : public AggregateFunction<Seconds, WindowAcc, WindowAcc> {
 public:
  WindowAcc CreateAccumulator() const override { return {}; }
  void Add(const Seconds& value, WindowAcc& acc) const override {
    ++acc.count;
    acc.sum += value.seconds;
  }
  void Merge(const WindowAcc& other, WindowAcc& acc) const override {
    acc.count += other.count;
    acc.sum += other.sum;
  }
  WindowAcc GetResult(const WindowAcc& acc) const override { return acc; }
};

// Counts windows and adds up their counts and sums (per worker, merged at
// the end of input).
class WindowSink final : public Sink<WindowResult> {
 public:
  absl::StatusOr<std::unique_ptr<SinkWriter<WindowResult>>> CreateWriter(
      const SinkContext&) override {
    return std::unique_ptr<SinkWriter<WindowResult>>(new Writer(this));
  }
  int64_t windows() const { return windows_.load(); }
  int64_t counted() const { return counted_.load(); }
  double sum() const { return sum_.load(); }

 private:
  class Writer final : public SinkWriter<WindowResult> {
   public:
    explicit Writer(WindowSink* sink) : sink_(sink) {}
    absl::Status Write(std::span<WindowResult> values, std::span<const Timestamp>) override {
      windows_ += static_cast<int64_t>(values.size());
      for (const WindowResult& w : values) {
        counted_ += w.count;
        sum_ += w.sum;
      }
      return absl::OkStatus();
    }
    absl::Status Flush() override {
      sink_->windows_ += std::exchange(windows_, 0);
      sink_->counted_ += std::exchange(counted_, 0);
      const double sum = std::exchange(sum_, 0.0);
      double expected = sink_->sum_.load();
      while (!sink_->sum_.compare_exchange_weak(expected, expected + sum)) {
      }
      return absl::OkStatus();
    }

   private:
    WindowSink* sink_;
    int64_t windows_ = 0;
    int64_t counted_ = 0;
    double sum_ = 0;
  };
  std::atomic<int64_t> windows_{0};
  std::atomic<int64_t> counted_{0};
  std::atomic<double> sum_{0};
};

}  // namespace weir::bench

#endif  // WEIR_BENCH_WINDOW_WORKLOAD_H_
