#include "lib/connectors/postgres/connection.h"

#include <libpq-fe.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace weir::postgres::internal {
namespace {

std::string Trimmed(const char* message) {
  return std::string(absl::StripTrailingAsciiWhitespace(message == nullptr ? "" : message));
}

// The code for a server error, from its SQLSTATE class.
absl::StatusCode CodeForSqlState(absl::string_view state) {
  if (absl::StartsWith(state, "28")) return absl::StatusCode::kUnauthenticated;
  if (state == "42501") return absl::StatusCode::kPermissionDenied;
  if (state == "42704" || state == "42P01") return absl::StatusCode::kNotFound;
  if (state == "42710") return absl::StatusCode::kAlreadyExists;
  if (state == "55006") return absl::StatusCode::kUnavailable;  // object in use (active slot)
  if (absl::StartsWith(state, "55")) return absl::StatusCode::kFailedPrecondition;
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57")) {
    return absl::StatusCode::kUnavailable;  // connection trouble, shutdown
  }
  if (absl::StartsWith(state, "42") || absl::StartsWith(state, "22")) {
    return absl::StatusCode::kInvalidArgument;
  }
  return absl::StatusCode::kInternal;
}

}  // namespace

absl::StatusOr<PgConn> Connect(const std::string& conninfo, bool replication) {
  std::vector<const char*> keys = {"dbname", "options"};
  std::vector<const char*> values = {
      conninfo.c_str(),
      "-c TimeZone=UTC -c DateStyle=ISO -c bytea_output=hex -c extra_float_digits=3"};
  if (replication) {
    keys.push_back("replication");
    values.push_back("database");
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConn conn(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  if (PQstatus(conn.get()) == CONNECTION_OK) return conn;
  const std::string message = Trimmed(PQerrorMessage(conn.get()));
  if (PQconnectionNeedsPassword(conn.get()) ||
      absl::StrContains(message, "authentication failed") ||
      absl::StrContains(message, "no password supplied") ||
      (absl::StrContains(message, "role \"") && absl::StrContains(message, "does not exist")) ||
      absl::StrContains(message, "no pg_hba.conf entry")) {
    return absl::UnauthenticatedError(
        absl::StrCat("PostgreSQL rejected the credentials: ", message));
  }
  return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", message));
}

absl::StatusOr<PgResult> Exec(PGconn* conn, const std::string& sql, absl::string_view what,
                              const std::vector<std::string>& params) {
  PgResult result;
  if (params.empty()) {
    result.reset(PQexec(conn, sql.c_str()));
  } else {
    std::vector<const char*> values;
    for (const std::string& param : params) values.push_back(param.c_str());
    result.reset(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0));
  }
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK || status == PGRES_COPY_BOTH) {
    return result;
  }
  const char* state =
      result == nullptr ? nullptr : PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
  const std::string message =
      Trimmed(result == nullptr ? PQerrorMessage(conn) : PQresultErrorMessage(result.get()));
  const absl::StatusCode code = state != nullptr                  ? CodeForSqlState(state)
                                : PQstatus(conn) != CONNECTION_OK ? absl::StatusCode::kUnavailable
                                                                  : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(what, ": ", message));
}

std::string QuoteIdentifier(absl::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

std::string QuoteLiteral(absl::string_view value) {
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'') quoted.push_back('\'');
    quoted.push_back(c);
  }
  quoted.push_back('\'');
  return quoted;
}

}  // namespace weir::postgres::internal
