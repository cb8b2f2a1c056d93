// Calling user code from an operator: exceptions and non-OK statuses become the
// operator's failure; the RuntimeContext a user function sees. Internal.

#ifndef WEIR_INTERNAL_USER_CODE_H_
#define WEIR_INTERNAL_USER_CODE_H_

#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "weir/functions.h"
#include "weir/internal/operator.h"

namespace weir::internal {

template <class T>
struct IsStatusOr : std::false_type {};
template <class T>
struct IsStatusOr<absl::StatusOr<T>> : std::true_type {};

// Runs `body` (which calls user code); converts anything it throws, except
// an OperatorFailure from further downstream, into `op`'s failure.
template <class Body>
void GuardUserCode(const OperatorBase& op, Body&& body) {
  try {
    body();
  } catch (const OperatorFailure&) {
    throw;
  } catch (...) {
    op.FailFromCurrentException();
  }
}

// Fails `op` if `status` is not OK.
inline void CheckUserStatus(const OperatorBase& op, const absl::Status& status) {
  if (!status.ok()) [[unlikely]]
    op.Fail(status);
}

inline RuntimeContext MakeRuntimeContext(const OperatorBase& op) {
  return RuntimeContext{op.name(), op.env().worker_index, op.env().parallelism,
                        op.env().max_parallelism, &op.metric_group()};
}

}  // namespace weir::internal

#endif  // WEIR_INTERNAL_USER_CODE_H_
