// What Start() checks before any reader exists (DiscoverCdcSplits): the
// options, the server (credentials, wal_level), the tables and the
// publication (created when allowed).

#include <libpq-fe.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/connectors/postgres/cdc_core.h"
#include "lib/formats/debezium_field.h"

namespace weir::postgres::internal {
namespace {

using debezium::internal::FieldSpec;

// Each is a connection to the server, held while the snapshot runs.
constexpr int kMaxSnapshotWorkers = 64;

absl::Status CheckOptions(const CdcOptions& options) {
  if (options.connection.empty()) {
    return absl::InvalidArgumentError("postgres source: CdcOptions.connection is empty");
  }
  if (options.slot.empty()) return absl::InvalidArgumentError("postgres source: no slot");
  if (options.publication.empty()) {
    return absl::InvalidArgumentError("postgres source: no publication");
  }
  if (options.tables.empty()) return absl::InvalidArgumentError("postgres source: no tables");
  if (options.max_changes_per_poll < 1) {
    return absl::InvalidArgumentError("postgres source: max_changes_per_poll must be >= 1");
  }
  if (options.snapshot_chunk_rows < 1) {
    return absl::InvalidArgumentError("postgres source: snapshot_chunk_rows must be >= 1");
  }
  if (options.snapshot_workers < 1 || options.snapshot_workers > kMaxSnapshotWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("postgres source: snapshot_workers must be in [1, ", kMaxSnapshotWorkers,
                     "], got ", options.snapshot_workers));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<SourceSplit>> DiscoverCdcSplits(const CdcOptions& options,
                                                           const std::vector<FieldSpec>& specs) {
  absl::Status valid = CheckOptions(options);
  if (!valid.ok()) return valid;
  if (ErrorPolicyOf(options) == ErrorPolicy::kDeadLetter && options.dead_letters == nullptr) {
    return absl::InvalidArgumentError(
        "postgres source: on_error is ErrorPolicy::kDeadLetter but no dead_letters queue is set "
        "(set one, or choose ErrorPolicy::kFail)");
  }
  for (const FieldSpec& spec : specs) {
    if (spec.name.empty())
      return absl::InvalidArgumentError("postgres source: an empty field name");
    if (spec.semantic == debezium::internal::Semantic::kDecimal &&
        debezium::internal::IsIntegerTarget(spec.target) && !spec.decimal.scale.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "postgres source: field \"", spec.name, "\": Decimal() into an integer needs a scale"));
    }
  }
  absl::StatusOr<PgConn> conn = Connect(options.connection, /*replication=*/false);
  if (!conn.ok()) return conn.status();
  absl::StatusOr<PgResult> level = Exec(conn->get(), "SHOW wal_level", "reading wal_level");
  if (!level.ok()) return level.status();
  if (Value(*level, 0, 0) != "logical") {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL's wal_level is '", Value(*level, 0, 0),
        "', change capture needs 'logical': set wal_level = logical in postgresql.conf (or ALTER "
        "SYSTEM SET wal_level = logical) and restart the server"));
  }
  std::vector<std::string> quoted;
  for (const std::string& table : options.tables) {
    const TableName name = SplitTableName(table);
    const std::string qualified =
        absl::StrCat(QuoteIdentifier(name.schema), ".", QuoteIdentifier(name.table));
    absl::StatusOr<PgResult> exists =
        Exec(conn->get(), "SELECT to_regclass($1)", "looking up a table", {qualified});
    if (!exists.ok()) return exists.status();
    if (PQgetisnull(exists->get(), 0, 0)) {
      return absl::NotFoundError(
          absl::StrCat("postgres source: table ", name.Display(), " does not exist"));
    }
    quoted.push_back(qualified);
  }
  absl::StatusOr<PgResult> publication =
      Exec(conn->get(), "SELECT 1 FROM pg_publication WHERE pubname = $1",
           "looking up the publication", {options.publication});
  if (!publication.ok()) return publication.status();
  if (PQntuples(publication->get()) == 0) {
    if (!options.create_publication) {
      return absl::NotFoundError(absl::StrCat(
          "publication \"", options.publication, "\" does not exist: CREATE PUBLICATION ",
          QuoteIdentifier(options.publication), " FOR TABLE ", absl::StrJoin(quoted, ", "),
          " (or set CdcOptions.create_publication)"));
    }
    absl::StatusOr<PgResult> created =
        Exec(conn->get(),
             absl::StrCat("CREATE PUBLICATION ", QuoteIdentifier(options.publication),
                          " FOR TABLE ", absl::StrJoin(quoted, ", ")),
             absl::StrCat("creating publication \"", options.publication, "\""));
    if (!created.ok()) return created.status();
  }
  for (const std::string& table : options.tables) {
    const TableName name = SplitTableName(table);
    absl::StatusOr<PgResult> covered =
        Exec(conn->get(),
             "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND "
             "tablename = $3",
             "checking the publication", {options.publication, name.schema, name.table});
    if (!covered.ok()) return covered.status();
    if (PQntuples(covered->get()) == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "publication \"", options.publication, "\" does not cover table ", name.Display(),
          ": ALTER PUBLICATION ", QuoteIdentifier(options.publication), " ADD TABLE ",
          QuoteIdentifier(name.schema), ".", QuoteIdentifier(name.table)));
    }
  }
  return std::vector<SourceSplit>{{.id = absl::StrCat("postgres:", options.slot)}};
}

}  // namespace weir::postgres::internal
