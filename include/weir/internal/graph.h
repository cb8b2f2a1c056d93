// The logical dataflow graph a Pipeline builds, and what instantiating it on
// a worker needs. Internal.

#ifndef WEIR_INTERNAL_GRAPH_H_
#define WEIR_INTERNAL_GRAPH_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "weir/internal/operator.h"

namespace weir::internal {

// Job-wide preparation (once per run, on the starting thread): discovers
// source splits, creates exchange rings.
class JobBuilder {
 public:
  JobBuilder(int parallelism, int max_parallelism, size_t batch_size, size_t queue_capacity,
             int num_nodes)
      : parallelism_(parallelism),
        max_parallelism_(max_parallelism),
        batch_size_(batch_size),
        queue_capacity_(queue_capacity),
        shared_(num_nodes) {}
  int parallelism() const { return parallelism_; }
  int max_parallelism() const { return max_parallelism_; }
  size_t batch_size() const { return batch_size_; }
  size_t queue_capacity() const { return queue_capacity_; }
  // Job-wide state of a node, handed to every worker's instantiation.
  void SetShared(int node_id, std::shared_ptr<void> state) { shared_[node_id] = std::move(state); }
  const std::vector<std::shared_ptr<void>>& shared() const { return shared_; }
  // The rings of exchange node `node_id`, for the metrics (queue fill).
  void AddExchange(int node_id, std::shared_ptr<const ExchangeChannelsBase> channels) {
    exchanges_.emplace_back(node_id, std::move(channels));
  }
  const std::vector<std::pair<int, std::shared_ptr<const ExchangeChannelsBase>>>& exchanges()
      const {
    return exchanges_;
  }

 private:
  int parallelism_;
  int max_parallelism_;
  size_t batch_size_;
  size_t queue_capacity_;
  std::vector<std::shared_ptr<void>> shared_;
  std::vector<std::pair<int, std::shared_ptr<const ExchangeChannelsBase>>> exchanges_;
};

// Everything one worker runs, as it is being built from the logical graph.
struct WorkerBuilder {
  WorkerBuilder(const WorkerEnv& worker_env, const std::vector<std::shared_ptr<void>>& shared_state,
                int num_nodes)
      : env(worker_env),
        shared(shared_state),
        outputs(num_nodes, nullptr),
        operators(num_nodes, nullptr) {}

  const WorkerEnv& env;
  const std::vector<std::shared_ptr<void>>& shared;
  // Per logical node: its Emitter<T> on this worker (type-erased) and its operator.
  std::vector<void*> outputs;
  std::vector<OperatorBase*> operators;

  std::vector<std::unique_ptr<OperatorBase>> owned_operators;
  std::vector<std::unique_ptr<SenderBase>> senders;
  std::vector<SourceTaskBase*> sources;
  std::vector<ReceiverBase*> receivers;
  std::vector<ProcessingTimeDriven*> processing_timers;

  template <class T>
  Emitter<T>& output(int node_id) {
    return *static_cast<Emitter<T>*>(outputs[node_id]);
  }
  template <class T>
  void SetOutput(int node_id, Emitter<T>& emitter, OperatorBase* op) {
    outputs[node_id] = &emitter;
    operators[node_id] = op;
  }
  template <class Op, class... Args>
  Op* Add(Args&&... args) {
    auto op = std::make_unique<Op>(env, std::forward<Args>(args)...);
    Op* raw = op.get();
    owned_operators.push_back(std::move(op));
    return raw;
  }
};

// One logical operator. Instantiation creates its physical operator on one
// worker and wires it to its inputs' outputs on the same worker.
struct LogicalNode {
  int id = 0;
  std::string kind;
  std::string name;
  std::vector<int> inputs;
  bool is_sink = false;
  // False for a node that only views another node's output (a side
  // output): it runs no operator of its own and takes no snapshot, so its
  // name is a label and need not be unique.
  bool runs_operator = true;
  std::function<absl::Status(const LogicalNode&, JobBuilder&)> prepare;
  std::function<absl::Status(const LogicalNode&, WorkerBuilder&)> instantiate;
};

// The logical graph. Nodes are added in topological order (a node can only
// name nodes created before it).
class Graph {
 public:
  LogicalNode& Add(std::string kind, std::vector<int> inputs) {
    auto node = std::make_unique<LogicalNode>();
    node->id = static_cast<int>(nodes_.size());
    node->name = kind + "#" + std::to_string(node->id);
    node->kind = std::move(kind);
    node->inputs = std::move(inputs);
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }
  LogicalNode& node(int id) { return *nodes_[id]; }
  const std::vector<std::unique_ptr<LogicalNode>>& nodes() const { return nodes_; }

  // Records misuse found while building (reported by Start()).
  void RecordError(absl::Status status) {
    if (error_.ok()) error_ = std::move(status);
  }
  const absl::Status& error() const { return error_; }

 private:
  std::vector<std::unique_ptr<LogicalNode>> nodes_;
  absl::Status error_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_GRAPH_H_
