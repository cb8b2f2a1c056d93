#include "lib/connectors/kafka/dead_letter_topic.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "weir/connectors/kafka_sink.h"

namespace weir::kafka {
namespace internal {

std::vector<std::pair<std::string, std::string>> DeadLetterHeaders(const DeadLetter& letter) {
  std::vector<std::pair<std::string, std::string>> headers = letter.headers;
  headers.emplace_back("weir.error", letter.error);
  headers.emplace_back("weir.error.code", absl::StatusCodeToString(letter.code));
  headers.emplace_back("weir.stage", letter.stage);
  if (!letter.topic.empty()) headers.emplace_back("weir.source.topic", letter.topic);
  if (letter.partition >= 0) {
    headers.emplace_back("weir.source.partition", absl::StrCat(letter.partition));
  }
  if (letter.offset >= 0) headers.emplace_back("weir.source.offset", absl::StrCat(letter.offset));
  if (letter.timestamp_ms >= 0) {
    headers.emplace_back("weir.source.timestamp", absl::StrCat(letter.timestamp_ms));
  }
  for (const auto& [name, value] : letter.position) {
    headers.emplace_back(absl::StrCat("weir.source.", name), value);
  }
  return headers;
}

namespace {

class DeadLetterTopicWriter final : public DeadLetterWriter {
 public:
  explicit DeadLetterTopicWriter(std::unique_ptr<SinkCore> core) : core_(std::move(core)) {}
  ~DeadLetterTopicWriter() override { (void)core_->Close(); }

  absl::Status Write(DeadLetter letter) override {
    const std::vector<std::pair<std::string, std::string>> headers = DeadLetterHeaders(letter);
    absl::Status status = core_->Produce(
        {.key = letter.key, .value = letter.payload, .headers = &headers, .partition = -1});
    if (!status.ok()) return status;
    return core_->AfterBatch();
  }
  absl::Status Flush() override { return core_->Flush(); }

 private:
  std::unique_ptr<SinkCore> core_;
};

class DeadLetterTopicQueue final : public DeadLetterQueue {
 public:
  explicit DeadLetterTopicQueue(DeadLetterTopicOptions options) : options_(std::move(options)) {}

  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> CreateWriter(const std::string& operator_name,
                                                                 int worker_index) override {
    const std::string what = absl::StrCat("kafka dead-letter topic ", options_.topic, " of '",
                                          operator_name, "' (worker ", worker_index, ")");
    if (options_.topic.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("kafka dead-letter topic of '", operator_name,
                       "': DeadLetterTopicOptions.topic is required"));
    }
    SinkConfig config{.client = options_.client,
                      .topic = options_.topic,
                      .guarantee = DeliveryGuarantee::kAtLeastOnce,
                      .flush_timeout = options_.flush_timeout,
                      .description = what};
    SinkContext context{.operator_name = operator_name, .worker_index = worker_index};
    absl::StatusOr<std::unique_ptr<SinkCore>> core = NewSinkCore(config, context);
    if (!core.ok()) return core.status();
    return std::unique_ptr<DeadLetterWriter>(new DeadLetterTopicWriter(*std::move(core)));
  }

  std::string Describe() const override { return "kafka topic " + options_.topic; }

 private:
  const DeadLetterTopicOptions options_;
};

}  // namespace
}  // namespace internal

std::shared_ptr<DeadLetterQueue> DeadLetterTopic(DeadLetterTopicOptions options) {
  return std::make_shared<internal::DeadLetterTopicQueue>(std::move(options));
}

}  // namespace weir::kafka
