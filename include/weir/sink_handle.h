// SinkHandle: what Stream::Sink returns, to name the sink operator it added.
//
// A sink is the end of a stream: nothing is built on it. Its handle names
// the sink itself, so `.Sink(s).Name("x")` names the sink, never the
// operator upstream of it.
//
// Example:
//
//   enriched.Sink(weir::kafka::Sink<Enriched>(options))
//       .Name("outbox")       // display: logs, errors, metrics, the dashboard
//       .Uid("outbox-v1");    // identity: checkpoints, transactional ids, fences

#ifndef WEIR_SINK_HANDLE_H_
#define WEIR_SINK_HANDLE_H_

#include <string>
#include <utility>

#include "weir/internal/graph.h"

namespace weir {

// The sink operator added by Stream::Sink. Copyable; valid while its
// Pipeline lives.
class SinkHandle {
 public:
  // Internal: made by Stream::Sink.
  SinkHandle(internal::Graph* graph, int node) : graph_(graph), node_(node) {}

  // The sink's display name in logs, errors, metrics and the dashboard.
  // Free to change between runs and to repeat. Default: its uid, or
  // "Sink#<n>" without one.
  SinkHandle& Name(std::string name) {
    graph_->SetName(node_, std::move(name));
    return *this;
  }
  // The sink's stable identity: checkpoints file its committables under it,
  // and connectors derive from it what must survive a restart (Kafka
  // transactional ids, the Redis fence key). Unique in the pipeline;
  // required when checkpoints are on (see Stream::Uid).
  SinkHandle& Uid(std::string uid) {
    graph_->SetUid(node_, std::move(uid));
    return *this;
  }

  int node() const { return node_; }

 private:
  internal::Graph* graph_;
  int node_;
};

}  // namespace weir

#endif  // WEIR_SINK_HANDLE_H_
