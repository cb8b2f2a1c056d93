#include "examples/engagement/change_sink.h"

#include <span>
#include <string>
#include <vector>

namespace engagement {
namespace {

// One part: a writer and the records of the current batch it gets.
struct Part {
  std::unique_ptr<weir::SinkWriter<GeneratedRecord>> writer;
  std::vector<GeneratedRecord> values;
  std::vector<weir::Timestamp> timestamps;

  absl::Status WriteBuffered() {
    if (writer == nullptr || values.empty()) return absl::OkStatus();
    absl::Status status = writer->Write(std::span<GeneratedRecord>(values),
                                        std::span<const weir::Timestamp>(timestamps));
    values.clear();
    timestamps.clear();
    return status;
  }
};

class Writer final : public weir::SinkWriter<GeneratedRecord> {
 public:
  Writer(Part content, Part events, Part postgres)
      : content_(std::move(content)), events_(std::move(events)), postgres_(std::move(postgres)) {}

  absl::Status Write(std::span<GeneratedRecord> values,
                     std::span<const weir::Timestamp> timestamps) override {
    // PostgreSQL only reads the records: it goes first, with the whole batch.
    if (postgres_.writer != nullptr) {
      absl::Status status = postgres_.writer->Write(values, timestamps);
      if (!status.ok()) return status;
    }
    for (size_t idx = 0; idx < values.size(); ++idx) {
      Part& part = values[idx].is_content() ? content_ : events_;
      if (part.writer == nullptr) continue;
      part.values.push_back(std::move(values[idx]));
      part.timestamps.push_back(timestamps[idx]);
    }
    absl::Status status = content_.WriteBuffered();
    if (!status.ok()) return status;
    return events_.WriteBuffered();
  }

  absl::Status Flush() override {
    return ForEach([](weir::SinkWriter<GeneratedRecord>& writer) { return writer.Flush(); });
  }

  // Without checkpoints (the generator takes none) this is not called; with
  // them, every part flushes (the Kafka sinks are at least once: nothing to
  // commit).
  absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
    absl::Status status = ForEach([&](weir::SinkWriter<GeneratedRecord>& writer) {
      return writer.PreCommit(checkpoint_id).status();
    });
    if (!status.ok()) return status;
    return std::string();
  }

  absl::Status Close() override {
    absl::Status first = absl::OkStatus();
    for (Part* part : {&content_, &events_, &postgres_}) {
      if (part->writer == nullptr) continue;
      absl::Status status = part->writer->Close();
      if (first.ok()) first = status;
    }
    return first;
  }

 private:
  template <class F>
  absl::Status ForEach(F fn) {
    for (Part* part : {&content_, &events_, &postgres_}) {
      if (part->writer == nullptr) continue;
      absl::Status status = fn(*part->writer);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  Part content_;
  Part events_;
  Part postgres_;
};

absl::StatusOr<Part> MakePart(const std::shared_ptr<weir::Sink<GeneratedRecord>>& sink,
                              const weir::SinkContext& context, const char* suffix) {
  Part part;
  if (sink == nullptr) return part;
  weir::SinkContext part_context = context;
  part_context.operator_name = context.operator_name + "/" + suffix;
  absl::StatusOr<std::unique_ptr<weir::SinkWriter<GeneratedRecord>>> writer =
      sink->CreateWriter(part_context);
  if (!writer.ok()) return writer.status();
  part.writer = *std::move(writer);
  return part;
}

}  // namespace

absl::StatusOr<std::unique_ptr<weir::SinkWriter<GeneratedRecord>>> ChangeSink::CreateWriter(
    const weir::SinkContext& context) {
  absl::StatusOr<Part> content = MakePart(content_, context, "content");
  if (!content.ok()) return content.status();
  absl::StatusOr<Part> events = MakePart(events_, context, "engagement_events");
  if (!events.ok()) return events.status();
  absl::StatusOr<Part> postgres = MakePart(postgres_, context, "postgres");
  if (!postgres.ok()) return postgres.status();
  return std::unique_ptr<weir::SinkWriter<GeneratedRecord>>(
      new Writer(*std::move(content), *std::move(events), *std::move(postgres)));
}

}  // namespace engagement
