// CountDeadLetters (include/weir/dead_letter.h): the one place dead letters
// are counted, whichever connector rejects them.

#include <memory>
#include <utility>

#include "weir/dead_letter.h"
#include "weir/metrics.h"

namespace weir {

namespace {

class CountingWriter final : public DeadLetterWriter {
 public:
  CountingWriter(std::unique_ptr<DeadLetterWriter> writer, Counter& counter)
      : writer_(std::move(writer)), counter_(counter) {}

  absl::Status Write(DeadLetter letter) override {
    absl::Status status = writer_->Write(std::move(letter));
    if (status.ok()) counter_.Increment();
    return status;
  }
  absl::Status Flush() override { return writer_->Flush(); }

 private:
  std::unique_ptr<DeadLetterWriter> writer_;
  Counter& counter_;
};

}  // namespace

std::unique_ptr<DeadLetterWriter> CountDeadLetters(std::unique_ptr<DeadLetterWriter> writer,
                                                   MetricGroup* metrics) {
  if (metrics == nullptr || writer == nullptr) return writer;
  Counter& counter = metrics->AddCounter(
      "weir_dead_letters_total", "Records written to a dead-letter queue instead of processed");
  return std::make_unique<CountingWriter>(std::move(writer), counter);
}

}  // namespace weir
