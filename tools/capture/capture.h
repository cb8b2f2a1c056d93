// weir-capture's pipeline: PostgreSQL tables captured with RowCdcSource and
// written to Kafka as Debezium's PostgreSQL connector would (one topic per
// table, "<prefix>.<schema>.<table>", JsonConverter values and keys, a
// tombstone after each delete), exactly once: Kafka transactions committed
// with the checkpoint that then confirms the slot's LSN. main.cc parses the
// flags and runs it; the tests build it in-process.

#ifndef WEIR_TOOLS_CAPTURE_CAPTURE_H_
#define WEIR_TOOLS_CAPTURE_CAPTURE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "weir/connectors/kafka.h"
#include "weir/connectors/postgres_rows.h"
#include "weir/pipeline.h"

namespace weir::capture {

struct CaptureOptions {
  // What to capture (connection, slot, publication, tables, snapshot).
  postgres::CdcOptions source;
  // Where to write: librdkafka settings (brokers, TLS, SASL, ...).
  kafka::ClientOptions kafka;
  // Topics are "<prefix>.<schema>.<table>". Default: "postgres"
  std::string prefix = "postgres";
  // JsonConverter's schemas.enable. Default: true
  bool with_schema = true;
  // Kafka transactions tied to checkpoints (needs checkpoint storage);
  // false: at least once. Default: true
  bool exactly_once = true;
};

// One record for Kafka.
struct CaptureRecord {
  std::string topic;
  std::string key;  // empty: no key
  bool tombstone = false;
  std::string value;
};

// Adds the capture to `pipeline` (which holds the checkpoint settings).
// Returns the source, for its Stats(). Sinks have uids "kafka:<topic>".
absl::StatusOr<std::shared_ptr<postgres::RowCdcSource>> AddCapture(Pipeline& pipeline,
                                                                   const CaptureOptions& options);

}  // namespace weir::capture

#endif  // WEIR_TOOLS_CAPTURE_CAPTURE_H_
