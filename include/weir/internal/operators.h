// The physical operators: one instance per logical operator per worker.
// Operators between two exchanges call each other directly (fused), one
// virtual call per batch; the user function is a member of concrete type, so
// calls into it are direct. This header includes one header per operator
// family. Internal.

#ifndef WEIR_INTERNAL_OPERATORS_H_
#define WEIR_INTERNAL_OPERATORS_H_

#include "weir/internal/broadcast_process_op.h"
#include "weir/internal/exchange_ops.h"
#include "weir/internal/keyed_process_op.h"
#include "weir/internal/map_ops.h"
#include "weir/internal/sink_op.h"
#include "weir/internal/source_task.h"
#include "weir/internal/union_op.h"
#include "weir/internal/user_code.h"

#endif  // WEIR_INTERNAL_OPERATORS_H_
