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
  // Cluster mode: exchanges cross tasks through a transport, not rings.
  bool remote_exchanges() const { return remote_exchanges_; }
  void set_remote_exchanges(bool remote) { remote_exchanges_ = remote; }
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
  bool remote_exchanges_ = false;
  std::vector<std::shared_ptr<void>> shared_;
  std::vector<std::pair<int, std::shared_ptr<const ExchangeChannelsBase>>> exchanges_;
};

struct LogicalNode;

// Everything one worker runs, as it is being built from the logical graph.
struct WorkerBuilder {
  WorkerBuilder(const WorkerEnv& worker_env, const std::vector<std::shared_ptr<void>>& shared_state,
                const std::vector<std::string>& display_labels)
      : env(worker_env),
        shared(shared_state),
        labels(display_labels),
        outputs(display_labels.size(), nullptr),
        operators(display_labels.size(), nullptr) {}

  const WorkerEnv& env;
  const std::vector<std::shared_ptr<void>>& shared;
  // Per logical node: what logs, errors and metrics call it (DisplayLabels).
  const std::vector<std::string>& labels;
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
  const std::string& label(int node_id) const { return labels[node_id]; }
  // Creates the physical operator of `node` on this worker:
  // Op(env, display label, args...), identified by the node's identity().
  template <class Op, class... Args>
  Op* Add(const LogicalNode& node, Args&&... args);
};

// One logical operator. Instantiation creates its physical operator on one
// worker and wires it to its inputs' outputs on the same worker.
struct LogicalNode {
  int id = 0;
  std::string kind;
  // The display name (Name()): logs, errors, metrics, the dashboard. Default
  // the uid, or "<kind>#<id>" without one. Never an identity: it may change
  // between runs, and repeat.
  std::string name;
  // Whether Name() set `name` (then Uid() leaves it alone).
  bool named = false;
  // The stable identity the user gave with Uid(); empty when none was given.
  std::string uid;
  std::vector<int> inputs;
  bool is_sink = false;
  // A KeyBy or Broadcast: between tasks in cluster mode, where its receiving
  // end keeps a position and so takes part in checkpoints.
  bool exchange = false;
  // Keeps state that checkpoints carry, or derives from its identity what must
  // outlive a run (sources, sinks, keyed and broadcast operators): with
  // checkpoints on it needs a uid.
  bool stateful = false;
  // False for a node that only views another node's output (a side
  // output): it runs no operator of its own and takes no snapshot, so it has
  // no uid and its name is only a label.
  bool runs_operator = true;
  std::function<absl::Status(const LogicalNode&, JobBuilder&)> prepare;
  std::function<absl::Status(const LogicalNode&, WorkerBuilder&)> instantiate;

  // What checkpoints file this operator's state under, and what connectors
  // derive their fences and transactional ids from: the uid, or without one
  // "<kind>#<id>", its place in the graph, which moves when an operator is
  // inserted before it. Start() allows that only where nothing outlives the
  // run (stateless operators, jobs without checkpoints).
  std::string identity() const { return uid.empty() ? kind + "#" + std::to_string(id) : uid; }
};

template <class Op, class... Args>
Op* WorkerBuilder::Add(const LogicalNode& node, Args&&... args) {
  auto op = std::make_unique<Op>(env, label(node.id), std::forward<Args>(args)...);
  op->set_uid(node.identity());
  Op* raw = op.get();
  owned_operators.push_back(std::move(op));
  return raw;
}

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
  const LogicalNode& node(int id) const { return *nodes_[id]; }
  // Name() / Uid() of the stream or sink handle of node `id`.
  void SetName(int id, std::string name) {
    nodes_[id]->name = std::move(name);
    nodes_[id]->named = true;
  }
  void SetUid(int id, std::string uid) {
    LogicalNode& node = *nodes_[id];
    if (uid.empty()) {
      RecordError(
          absl::InvalidArgumentError("operator '" + node.name + "': Uid() needs a non-empty uid"));
    }
    if (!node.named) node.name = uid;
    node.uid = std::move(uid);
  }
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

// What logs, errors, metrics and the dashboard call each node, by node id:
// its name, unique in the graph: display names may repeat, metric series
// may not, so the second and later nodes of one name get "<name>#<id>".
std::vector<std::string> DisplayLabels(const Graph& graph);

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_GRAPH_H_
