// UnionOp: merges several inputs of one type into one output. Internal.

#ifndef WEIR_INTERNAL_UNION_OP_H_
#define WEIR_INTERNAL_UNION_OP_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weir/internal/batch.h"
#include "weir/internal/operator.h"

namespace weir::internal {

template <class T>
class UnionOp final : public OperatorWithOutput<T> {
 public:
  UnionOp(const WorkerEnv& env, std::string name, int num_inputs)
      : OperatorWithOutput<T>(env, std::move(name), num_inputs) {
    for (int port = 0; port < num_inputs; ++port) {
      ports_.push_back(std::make_unique<PortInput<T>>(
          this, port, [this](Batch<T>& batch) { this->output_.EmitBatch(batch); }));
    }
  }
  Input<T>* port(int index) { return ports_[index].get(); }

 private:
  std::vector<std::unique_ptr<PortInput<T>>> ports_;
};

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_UNION_OP_H_
