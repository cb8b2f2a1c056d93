// Adding nodes to the logical graph: each records how to instantiate its
// physical operator on a worker (one-input, two-input, union, exchange, sink,
// source).
// Internal.

#ifndef WEIR_INTERNAL_GRAPH_NODES_H_
#define WEIR_INTERNAL_GRAPH_NODES_H_

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/codec.h"
#include "weir/internal/checkpointing.h"
#include "weir/internal/exchange_ops.h"
#include "weir/internal/graph.h"
#include "weir/internal/operator.h"
#include "weir/internal/remote_exchange.h"
#include "weir/internal/sink_op.h"
#include "weir/internal/source_task.h"
#include "weir/internal/union_op.h"
#include "weir/sink.h"
#include "weir/source.h"
#include "weir/time.h"

namespace weir::internal {

// Adds a one-input operator node whose physical operator `Op` is built with
// (name, args...) and exposes port() and output().
template <class In, class Out, class Op, class... Args>
int AddOneInputNode(Graph* graph, int input, std::string kind, Args... args) {
  LogicalNode& node = graph->Add(std::move(kind), {input});
  node.instantiate = [args...](const LogicalNode& self, WorkerBuilder& worker) -> absl::Status {
    Op* op = worker.Add<Op>(self, args...);
    worker.output<In>(self.inputs[0]).AddDownstream(op->port());
    worker.SetOutput(self.id, op->output(), op);
    // The worker loop fires processing-time timers only of operators it knows.
    if constexpr (std::is_base_of_v<ProcessingTimeDriven, Op>) {
      worker.processing_timers.push_back(op);
    }
    return absl::OkStatus();
  };
  return node.id;
}

// Adds a two-input operator node (a stream connected with a broadcast
// stream): `Op` is built with (name, args...) and exposes port(),
// broadcast_port() and output(). Such operators hold state.
template <class In, class B, class Op, class... Args>
int AddTwoInputNode(Graph* graph, int input, int broadcast_input, std::string kind, Args... args) {
  LogicalNode& node = graph->Add(std::move(kind), {input, broadcast_input});
  node.stateful = true;
  node.instantiate = [args...](const LogicalNode& self, WorkerBuilder& worker) -> absl::Status {
    Op* op = worker.Add<Op>(self, args...);
    worker.output<In>(self.inputs[0]).AddDownstream(op->port());
    worker.output<B>(self.inputs[1]).AddDownstream(op->broadcast_port());
    worker.SetOutput(self.id, op->output(), op);
    if constexpr (std::is_base_of_v<ProcessingTimeDriven, Op>) {
      worker.processing_timers.push_back(op);
    }
    return absl::OkStatus();
  };
  return node.id;
}

// Adds a node merging `inputs` (streams of one type) into one output.
template <class T>
int AddUnionNode(Graph* graph, std::vector<int> inputs) {
  LogicalNode& node = graph->Add("Union", std::move(inputs));
  node.instantiate = [](const LogicalNode& self, WorkerBuilder& worker) -> absl::Status {
    auto* op = worker.Add<UnionOp<T>>(self, static_cast<int>(self.inputs.size()));
    for (size_t port = 0; port < self.inputs.size(); ++port) {
      worker.output<T>(self.inputs[port]).AddDownstream(op->port(static_cast<int>(port)));
    }
    worker.SetOutput(self.id, op->output(), op);
    return absl::OkStatus();
  };
  return node.id;
}

// The two ends of exchange `self` between tasks (cluster mode), resumed
// where this task's restored snapshot of the receiver left off.
template <class T, class Route>
absl::Status AddRemoteExchange(const LogicalNode& self, WorkerBuilder& worker, Route route,
                               bool broadcast) {
  if constexpr (!kHasCodec<T>) {
    (void)route;
    (void)broadcast;
    return absl::FailedPreconditionError(
        "cluster mode sends the records of " + self.kind +
        " between tasks through Kafka, and their type has no weir::Codec: specialize "
        "weir::Codec for it (weir/codec.h)");
  } else {
    std::string position;
    std::string inputs;
    if (const RestoredState* restored = worker.env.restored()) {
      for (const OperatorSnapshot* snapshot : restored->Snapshots(self.identity())) {
        if (snapshot->worker != worker.env.worker_index) continue;
        auto found =
            snapshot->operator_state.find(std::string(RemoteExchangeReceiver<T>::kPositionKey));
        if (found != snapshot->operator_state.end()) position = found->second;
        found = snapshot->operator_state.find(std::string(RemoteExchangeReceiver<T>::kInputsKey));
        if (found != snapshot->operator_state.end()) inputs = found->second;
      }
    }
    absl::StatusOr<std::unique_ptr<RemoteEndpoint>> opened =
        worker.env.remote->Open(RemoteExchanges::ExchangeName(self.kind, self.id), position);
    if (!opened.ok()) return opened.status();
    std::shared_ptr<RemoteEndpoint> endpoint = *std::move(opened);
    auto sender = std::make_unique<RemoteExchangeSender<T, Route>>(
        worker.env, worker.label(self.id), endpoint, std::move(route), broadcast);
    worker.output<T>(self.inputs[0]).AddDownstream(sender.get());
    worker.senders.push_back(std::move(sender));
    auto* receiver = worker.Add<RemoteExchangeReceiver<T>>(self, endpoint, std::move(inputs));
    worker.sources.push_back(receiver);
    worker.SetOutput(self.id, receiver->output(), receiver);
    return absl::OkStatus();
  }
}

// Adds an exchange. `make_route(env)` returns the record -> worker function.
// In cluster mode (the env has remote exchanges) its two ends are a
// RemoteExchangeSender and a RemoteExchangeReceiver, which need Codec<T>.
template <class T, class MakeRoute>
int AddExchangeNode(Graph* graph, int input, std::string kind, MakeRoute make_route,
                    bool broadcast) {
  LogicalNode& node = graph->Add(std::move(kind), {input});
  node.exchange = true;
  node.prepare = [](const LogicalNode& self, JobBuilder& job) -> absl::Status {
    if (job.remote_exchanges()) return absl::OkStatus();
    auto channels = std::make_shared<ExchangeChannels<T>>(job.parallelism(), job.queue_capacity());
    job.AddExchange(self.id, channels);
    job.SetShared(self.id, std::move(channels));
    return absl::OkStatus();
  };
  node.instantiate = [make_route, broadcast](const LogicalNode& self,
                                             WorkerBuilder& worker) -> absl::Status {
    if (worker.env.remote != nullptr) {
      return AddRemoteExchange<T>(self, worker, make_route(worker.env), broadcast);
    }
    auto channels = std::static_pointer_cast<ExchangeChannels<T>>(worker.shared[self.id]);
    auto route = make_route(worker.env);
    auto sender = std::make_unique<ExchangeSender<T, decltype(route)>>(
        worker.env, worker.label(self.id), channels, std::move(route), broadcast);
    worker.output<T>(self.inputs[0]).AddDownstream(sender.get());
    worker.senders.push_back(std::move(sender));
    auto* receiver = worker.Add<ExchangeReceiver<T>>(self, channels);
    worker.receivers.push_back(receiver);
    worker.SetOutput(self.id, receiver->output(), receiver);
    return absl::OkStatus();
  };
  return node.id;
}

template <class T>
int AddSinkNode(Graph* graph, int input, std::shared_ptr<Sink<T>> sink) {
  LogicalNode& node = graph->Add("Sink", {input});
  node.is_sink = true;
  node.stateful = true;
  node.instantiate = [sink](const LogicalNode& self, WorkerBuilder& worker) -> absl::Status {
    SinkContext context{
        .operator_name = worker.label(self.id),
        .operator_uid = self.identity(),
        .worker_index = worker.env.worker_index,
        .parallelism = worker.env.parallelism,
        .job_name = worker.env.job_name,
        .checkpointing = worker.env.checkpointing,
        .checkpoint_interval = worker.env.checkpoint_interval,
        .checkpoint_timeout = worker.env.checkpoint_timeout,
        .restored_checkpoint = worker.env.restored() != nullptr &&
                                       !worker.env.restored()->Snapshots(self.identity()).empty()
                                   ? worker.env.restored()->checkpoint_id()
                                   : 0,
        .replay = worker.env.replay(),
        .metrics = &worker.env.metric_group(worker.label(self.id))};
    absl::StatusOr<std::unique_ptr<SinkWriter<T>>> writer = sink->CreateWriter(context);
    if (!writer.ok()) return writer.status();
    auto* op = worker.Add<SinkOp<T>>(self, *std::move(writer), sink);
    worker.output<T>(self.inputs[0]).AddDownstream(op->port());
    worker.operators[self.id] = op;
    return absl::OkStatus();
  };
  return node.id;
}

template <class T>
int AddSourceNode(Graph* graph, std::shared_ptr<Source<T>> source, WatermarkStrategy<T> strategy) {
  LogicalNode& node = graph->Add("Source", {});
  node.stateful = true;
  node.prepare = [source](const LogicalNode& self, JobBuilder& job) -> absl::Status {
    absl::StatusOr<std::vector<SourceSplit>> splits = source->DiscoverSplits();
    if (!splits.ok()) return splits.status();
    job.SetShared(self.id, std::make_shared<std::vector<SourceSplit>>(*std::move(splits)));
    return absl::OkStatus();
  };
  node.instantiate = [source, strategy](const LogicalNode& self,
                                        WorkerBuilder& worker) -> absl::Status {
    const auto& all_splits =
        *std::static_pointer_cast<std::vector<SourceSplit>>(worker.shared[self.id]);
    SourceReaderContext context{.operator_name = worker.label(self.id),
                                .operator_uid = self.identity(),
                                .worker_index = worker.env.worker_index,
                                .parallelism = worker.env.parallelism,
                                .metrics = &worker.env.metric_group(worker.label(self.id)),
                                .checkpointing = worker.env.checkpointing,
                                .checkpoints_retained = worker.env.checkpoints_retained};
    std::vector<std::string> split_ids;
    for (size_t idx = 0; idx < all_splits.size(); ++idx) {
      if (static_cast<int>(idx % static_cast<size_t>(worker.env.parallelism)) ==
          worker.env.worker_index) {
        context.splits.push_back(all_splits[idx]);
        split_ids.push_back(all_splits[idx].id);
      }
    }
    // Positions from the restored checkpoint, matched by split id (so they
    // follow their split when the parallelism changed).
    if (const RestoredState* restored = worker.env.restored()) {
      for (const OperatorSnapshot* snapshot : restored->Snapshots(self.identity())) {
        for (SourceSplit& split : context.splits) {
          auto it = snapshot->operator_state.find(SplitStateKey(split.id));
          if (it != snapshot->operator_state.end()) split.state = it->second;
        }
      }
    }
    absl::StatusOr<std::unique_ptr<SourceReader<T>>> reader = source->CreateReader(context);
    if (!reader.ok()) return reader.status();
    auto* task =
        worker.Add<SourceTask<T>>(self, *std::move(reader), strategy, std::move(split_ids), source);
    worker.sources.push_back(task);
    worker.SetOutput(self.id, task->output(), task);
    return absl::OkStatus();
  };
  return node.id;
}

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_GRAPH_NODES_H_
