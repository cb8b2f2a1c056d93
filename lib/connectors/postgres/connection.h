// libpq connections of the change-capture source: opening one (regular or
// replication=database) with the session settings the text conversion
// needs, running statements, and mapping libpq and server errors to
// absl::Status codes with the server's message kept.

#ifndef WEIR_LIB_CONNECTORS_POSTGRES_CONNECTION_H_
#define WEIR_LIB_CONNECTORS_POSTGRES_CONNECTION_H_

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weir::postgres::internal {

// PQfinish.
struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
// PQclear.
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// PQconnectdbParams with `conninfo` and the session settings TimeZone=UTC,
// DateStyle=ISO, bytea_output=hex, extra_float_digits=3 (and
// replication=database when `replication`). kUnauthenticated when the
// server rejects the credentials, kUnavailable when it cannot be reached.
absl::StatusOr<PgConn> Connect(const std::string& conninfo, bool replication);

// Runs `sql` (with text parameters) and checks its result status (rows or a
// command, or COPY BOTH for START_REPLICATION). Errors carry the server's
// message prefixed with `what`, and a code from the SQLSTATE.
absl::StatusOr<PgResult> Exec(PGconn* conn, const std::string& sql, absl::string_view what,
                              const std::vector<std::string>& params = {});

// A quoted identifier ("my table") or literal ('it''s').
std::string QuoteIdentifier(absl::string_view name);
std::string QuoteLiteral(absl::string_view value);

}  // namespace weir::postgres::internal

#endif  // WEIR_LIB_CONNECTORS_POSTGRES_CONNECTION_H_
