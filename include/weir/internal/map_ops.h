// The stateless one-input operators: Map, Filter, FlatMap and Process (a
// ProcessFunction). Internal.

#ifndef WEIR_INTERNAL_MAP_OPS_H_
#define WEIR_INTERNAL_MAP_OPS_H_

#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/functions.h"
#include "weir/internal/batch.h"
#include "weir/internal/operator.h"
#include "weir/internal/user_code.h"
#include "weir/time.h"

namespace weir::internal {

template <class In, class Out, class F>
class MapOp final : public OperatorWithOutput<Out> {
 public:
  MapOp(const WorkerEnv& env, std::string name, F fn)
      : OperatorWithOutput<Out>(env, std::move(name), 1),
        fn_(std::move(fn)),
        port_(this, 0, [this](Batch<In>& batch) { Process(batch); }) {}
  Input<In>* port() { return &port_; }

 private:
  void Process(Batch<In>& in) {
    out_.values.reserve(in.size());
    GuardUserCode(*this, [&] {
      for (In& value : in.values) {
        if constexpr (IsStatusOr<std::invoke_result_t<F&, In&&>>::value) {
          auto result = fn_(std::move(value));
          CheckUserStatus(*this, result.status());
          out_.values.push_back(*std::move(result));
        } else {
          out_.values.push_back(fn_(std::move(value)));
        }
      }
    });
    out_.timestamps.swap(in.timestamps);
    this->output_.EmitBatch(out_);
    out_.clear();
  }

  F fn_;
  PortInput<In> port_;
  Batch<Out> out_;
};

template <class T, class F>
class FilterOp final : public OperatorWithOutput<T> {
 public:
  FilterOp(const WorkerEnv& env, std::string name, F fn)
      : OperatorWithOutput<T>(env, std::move(name), 1),
        fn_(std::move(fn)),
        port_(this, 0, [this](Batch<T>& batch) { Process(batch); }) {}
  Input<T>* port() { return &port_; }

 private:
  void Process(Batch<T>& batch) {
    size_t kept = 0;
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < batch.size(); ++idx) {
        bool keep;
        if constexpr (IsStatusOr<std::invoke_result_t<F&, const T&>>::value) {
          auto result = fn_(std::as_const(batch.values[idx]));
          CheckUserStatus(*this, result.status());
          keep = *result;
        } else {
          keep = fn_(std::as_const(batch.values[idx]));
        }
        if (keep) {
          if (kept != idx) {
            batch.values[kept] = std::move(batch.values[idx]);
            batch.timestamps[kept] = batch.timestamps[idx];
          }
          ++kept;
        }
      }
    });
    batch.values.erase(batch.values.begin() + static_cast<ptrdiff_t>(kept), batch.values.end());
    batch.timestamps.resize(kept);
    this->output_.EmitBatch(batch);
  }

  F fn_;
  PortInput<T> port_;
};

template <class In, class Out, class F>
class FlatMapOp final : public OperatorWithOutput<Out> {
 public:
  FlatMapOp(const WorkerEnv& env, std::string name, F fn)
      : OperatorWithOutput<Out>(env, std::move(name), 1),
        fn_(std::move(fn)),
        collector_(&this->output_, env.batch_size),
        port_(this, 0, [this](Batch<In>& batch) { Process(batch); }) {}
  Input<In>* port() { return &port_; }

 protected:
  void FlushBuffered() override { collector_.Flush(); }

 private:
  void Process(Batch<In>& in) {
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < in.size(); ++idx) {
        collector_.SetTimestamp(in.timestamps[idx]);
        if constexpr (std::is_same_v<std::invoke_result_t<F&, In&&, Collector<Out>&>,
                                     absl::Status>) {
          CheckUserStatus(*this, fn_(std::move(in.values[idx]), collector_));
        } else {
          fn_(std::move(in.values[idx]), collector_);
        }
      }
    });
    collector_.Flush();
  }

  F fn_;
  Collector<Out> collector_;
  PortInput<In> port_;
};

// Whether Fn declares ProcessElement(In&&, ...) (see ProcessFunction).
template <class Fn, class In, class Out>
concept TakesElements = requires {
  static_cast<absl::Status (Fn::*)(In&&, typename ProcessFunction<In, Out>::Context&,
                                   Collector<Out>&)>(&Fn::ProcessElement);
};

template <class In, class Out, class Fn>
class ProcessOp final : public OperatorWithOutput<Out> {
 public:
  ProcessOp(const WorkerEnv& env, std::string name, Fn fn)
      : OperatorWithOutput<Out>(env, std::move(name), 1),
        fn_(std::move(fn)),
        collector_(&this->output_, env.batch_size),
        ctx_(this),
        port_(this, 0, [this](Batch<In>& batch) { Process(batch); }) {}
  Input<In>* port() { return &port_; }

  absl::Status Open() override { return fn_.Open(MakeRuntimeContext(*this)); }
  absl::Status Close() override { return fn_.Close(); }

 protected:
  void FlushBuffered() override { collector_.Flush(); }

 private:
  void Process(Batch<In>& in) {
    GuardUserCode(*this, [&] {
      for (size_t idx = 0; idx < in.size(); ++idx) {
        ContextAccess::SetTimestamp(ctx_, in.timestamps[idx]);
        collector_.SetTimestamp(in.timestamps[idx]);
        if constexpr (TakesElements<Fn, In, Out>) {
          CheckUserStatus(*this, fn_.ProcessElement(std::move(in.values[idx]), ctx_, collector_));
        } else {
          CheckUserStatus(*this, fn_.ProcessElement(in.values[idx], ctx_, collector_));
        }
      }
    });
    collector_.Flush();
    // Side outputs leave with each batch too, not at the next control element.
    this->side_outputs_.FlushAll();
  }

  Fn fn_;
  Collector<Out> collector_;
  typename ProcessFunction<In, Out>::Context ctx_;
  PortInput<In> port_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_MAP_OPS_H_
