// Change capture from PostgreSQL without a struct: RowCdcSource yields each
// change with its columns as PostgreSQL describes them (name, type, whether
// the column is part of the key) and their values in PostgreSQL's text
// format. For programs that do not know the tables at compile time, such as
// weir-capture (tables to Kafka as Debezium would), and table mirrors
// (ToMirrorChange in postgres_mirror.h turns a change into the mirror sinks'
// row change). It reads exactly as CdcSource<T> (postgres.h) does: same options, snapshot,
// positions in checkpoints and slot confirmation.
//
// Example:
//
//   auto source = weir::postgres::RowCdcSource::Create(
//       {.connection = "host=db user=weir dbname=app",
//        .slot = "weir_mirror",
//        .publication = "weir_mirror",
//        .tables = {"public.orders", "public.customers"}});
//   pipeline.Source(source).Uid("capture").Map([](const weir::postgres::RowChange& change) {
//     for (const weir::postgres::ColumnValue& column : *change.after) { ... }
//   });

#ifndef WEIR_CONNECTORS_POSTGRES_ROWS_H_
#define WEIR_CONNECTORS_POSTGRES_ROWS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "weir/connectors/postgres.h"

namespace weir::postgres {

// How weir reads a column's type (domains as their base type, enums as text).
enum class ColumnKind : uint8_t {
  kBool,
  kInteger,  // smallint, integer, bigint, oid
  kFloat,    // real, double precision
  kNumeric,
  kText,  // text, varchar, char, name, enums
  kUuid,
  kJson,  // json, jsonb
  kTimestampTz,
  kTimestamp,
  kDate,
  kTime,
  kBytea,
  kOther,  // anything else, as its text
};

// One column of a row.
struct ColumnValue {
  std::string name;
  // The type as PostgreSQL names it ("integer", "numeric", "text[]", "mood").
  std::string type;
  ColumnKind kind = ColumnKind::kOther;
  // An array of `kind` (one-dimensional).
  bool is_array = false;
  // Smallint, integer or bigint: its size in bytes (2, 4, 8); real: 4,
  // double precision: 8; else 0.
  int size = 0;
  // The type modifier (atttypmod) as the Relation message (or, for snapshot
  // rows, the query's result) gives it: numeric(P,S) is ((P << 16) | S) + 4,
  // varchar(n) is n + 4; -1 when the type has none.
  int32_t type_modifier = -1;
  // Part of the table's primary key (replica identity).
  bool key = false;
  enum class State : uint8_t {
    kValue,      // `text` holds it
    kNull,       // SQL NULL (or, in a key-only `before`, a column not sent)
    kUnchanged,  // an unchanged TOASTed value the change does not carry
  };
  State state = State::kNull;
  // The value in PostgreSQL's text format (TimeZone=UTC, DateStyle=ISO,
  // bytea_output=hex).
  std::string text;

  friend bool operator==(const ColumnValue&, const ColumnValue&) = default;
};

// One change of a row without a struct; `op`, `source` and `ts_ms` as in
// debezium::Change<T>.
struct RowChange {
  debezium::Op op = debezium::Op::kCreate;
  std::optional<std::vector<ColumnValue>> before;
  std::optional<std::vector<ColumnValue>> after;
  debezium::SourceInfo source;
  std::optional<int64_t> ts_ms;

  friend bool operator==(const RowChange&, const RowChange&) = default;
};

namespace internal {
absl::StatusOr<CdcCorePtr> NewRowCdcCore(const CdcOptions& options,
                                         const SourceReaderContext& context,
                                         std::shared_ptr<CdcCounters> counters);
}  // namespace internal

// A source of RowChange. Errors and guarantees as CdcSource<T>.
class RowCdcSource final : public weir::Source<RowChange> {
 public:
  static std::shared_ptr<RowCdcSource> Create(CdcOptions options) {
    return std::shared_ptr<RowCdcSource>(new RowCdcSource(std::move(options)));
  }

  absl::StatusOr<std::vector<SourceSplit>> DiscoverSplits() override {
    return internal::DiscoverCdcSplits(options_, {});
  }

  absl::StatusOr<std::unique_ptr<SourceReader<RowChange>>> CreateReader(
      const SourceReaderContext& context) override {
    if (context.splits.empty()) {
      return std::unique_ptr<SourceReader<RowChange>>(
          new internal::CdcReader<RowChange>(nullptr, 0));
    }
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> dead_letters =
        internal::NewCdcDeadLetterWriter(options_, context);
    if (!dead_letters.ok()) return dead_letters.status();
    absl::StatusOr<internal::CdcCorePtr> core =
        internal::NewRowCdcCore(options_, context, counters_);
    if (!core.ok()) return core.status();
    return std::unique_ptr<SourceReader<RowChange>>(new internal::CdcReader<RowChange>(
        *std::move(core), options_.max_changes_per_poll, *std::move(dead_letters),
        context.checkpointing, counters_));
  }

  CdcSourceStats Stats() const { return internal::StatsOf(*counters_); }

 private:
  explicit RowCdcSource(CdcOptions options) : options_(std::move(options)) {}

  CdcOptions options_;
  std::shared_ptr<internal::CdcCounters> counters_ = std::make_shared<internal::CdcCounters>();
};

}  // namespace weir::postgres

#endif  // WEIR_CONNECTORS_POSTGRES_ROWS_H_
