// The engagement generator's sink: hands each batch of generated records to
// PostgreSQL (optional) and splits it, by moving records, between the Kafka
// sinks of the two topics. One sink rather than a fan-out of Filter + Sink
// per topic because a stream with several consumers copies every batch for
// each consumer but the last (internal::Emitter::EmitBatch): at hundreds of
// thousands of ~550-byte records per second that copy (allocations and
// memmove) cost more than the generator itself.
//
// Example:
//
//   stream.Sink(std::make_shared<ChangeSink>(weir::kafka::Sink<GeneratedRecord>(content),
//                                            weir::kafka::Sink<GeneratedRecord>(events),
//                                            nullptr),
//               "kafka");

#ifndef WEIR_EXAMPLES_ENGAGEMENT_CHANGE_SINK_H_
#define WEIR_EXAMPLES_ENGAGEMENT_CHANGE_SINK_H_

#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "examples/engagement/generator.h"
#include "weir/sink.h"

namespace engagement {

class ChangeSink final : public weir::Sink<GeneratedRecord> {
 public:
  // Any of the three may be null (not written). `content` gets the records of
  // public.content (tombstones included), `events` those of
  // public.engagement_events, `postgres` all of them (before they are split).
  ChangeSink(std::shared_ptr<weir::Sink<GeneratedRecord>> content,
             std::shared_ptr<weir::Sink<GeneratedRecord>> events,
             std::shared_ptr<weir::Sink<GeneratedRecord>> postgres)
      : content_(std::move(content)), events_(std::move(events)), postgres_(std::move(postgres)) {}

  // Creates the parts' writers with operator names "<name>/content",
  // "<name>/engagement_events" and "<name>/postgres".
  absl::StatusOr<std::unique_ptr<weir::SinkWriter<GeneratedRecord>>> CreateWriter(
      const weir::SinkContext& context) override;

 private:
  std::shared_ptr<weir::Sink<GeneratedRecord>> content_;
  std::shared_ptr<weir::Sink<GeneratedRecord>> events_;
  std::shared_ptr<weir::Sink<GeneratedRecord>> postgres_;
};

}  // namespace engagement

#endif  // WEIR_EXAMPLES_ENGAGEMENT_CHANGE_SINK_H_
