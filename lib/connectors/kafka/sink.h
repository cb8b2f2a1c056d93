// The producer side of weir::kafka::Sink<T> (include/weir/connectors/kafka_sink.h):
// one idempotent producer (at least once) or a pool of transactional
// producers (exactly once) per worker. Declares nothing beyond what the
// public header's internal::NewSinkCore needs; the implementation is in
// sink.cc, the committable and restore-time repair in sink_recovery.cc.

#ifndef WEIR_LIB_CONNECTORS_KAFKA_SINK_H_
#define WEIR_LIB_CONNECTORS_KAFKA_SINK_H_

#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "weir/connectors/kafka_sink.h"

namespace weir::kafka::internal {

// "<prefix>-<worker>-<slot>": the transactional.id of one pool slot.
std::string TransactionalId(const std::string& prefix, int worker, int slot);

// Tests observe what an exactly-once sink does to transactional ids, in
// order: ("init_transactions", id) when a producer initializes (and so
// fences) an id, ("check", id) before a restored transaction is checked.
// Set it while no sink runs; an empty function removes it.
using SinkEventHook =
    std::function<void(absl::string_view event, const std::string& transactional_id)>;
void SetSinkEventHookForTesting(SinkEventHook hook);

// Tests inject a broker's abort of a restored transaction. librdkafka's mock
// cluster shows aborted transactions to read_committed readers, so on it a
// restore finds every checkpointed transaction committed and never takes the
// repair path. While set, a restored transaction for whose id `hook` returns
// true counts as aborted whatever the broker answers (after the broker was
// asked, as usual), and its records are written again. Set it while no sink
// runs; an empty function removes it.
using RestoredTransactionAbortHook = std::function<bool(const std::string& transactional_id)>;
void SetRestoredTransactionAbortHookForTesting(RestoredTransactionAbortHook hook);

}  // namespace weir::kafka::internal

#endif  // WEIR_LIB_CONNECTORS_KAFKA_SINK_H_
