#include "lib/connectors/clickhouse/clickhouse_http.h"

#include <zlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"

namespace weir::clickhouse::internal {

namespace {

// Errors in the request itself (the data, the statement, the credentials):
// the same request fails again, so it is not retried even when ClickHouse
// answers 500, as it does for unparsable rows.
bool IsPermanentClickHouseError(int code) {
  switch (code) {
    case 6:    // CANNOT_PARSE_TEXT
    case 16:   // NO_SUCH_COLUMN_IN_TABLE
    case 26:   // CANNOT_PARSE_QUOTED_STRING
    case 27:   // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    case 38:   // CANNOT_PARSE_DATE
    case 41:   // CANNOT_PARSE_DATETIME
    case 43:   // ILLEGAL_TYPE_OF_ARGUMENT
    case 44:   // ILLEGAL_COLUMN
    case 47:   // UNKNOWN_IDENTIFIER
    case 53:   // TYPE_MISMATCH
    case 57:   // TABLE_ALREADY_EXISTS
    case 60:   // UNKNOWN_TABLE
    case 62:   // SYNTAX_ERROR
    case 69:   // ARGUMENT_OUT_OF_BOUND
    case 70:   // CANNOT_CONVERT_TYPE
    case 72:   // CANNOT_PARSE_NUMBER
    case 81:   // UNKNOWN_DATABASE
    case 115:  // UNKNOWN_SETTING
    case 117:  // INCORRECT_DATA
    case 164:  // READONLY
    case 192:  // UNKNOWN_USER
    case 193:  // WRONG_PASSWORD
    case 194:  // REQUIRED_PASSWORD
    case 195:  // IP_ADDRESS_NOT_ALLOWED
    case 497:  // ACCESS_DENIED
    case 516:  // AUTHENTICATION_FAILED
      return true;
    default:
      return false;
  }
}

absl::StatusCode CodeForClickHouseError(int code, long http_status) {
  switch (code) {
    case 192:
    case 193:
    case 194:
    case 516:
      return absl::StatusCode::kUnauthenticated;
    case 164:
    case 195:
    case 497:
      return absl::StatusCode::kPermissionDenied;
    case 60:
    case 81:
      return absl::StatusCode::kNotFound;
    case 57:
      return absl::StatusCode::kAlreadyExists;
    default:
      break;
  }
  if (IsPermanentClickHouseError(code)) return absl::StatusCode::kInvalidArgument;
  return weir::internal::CodeForHttpStatus(http_status);
}

// The <n> of "Code: <n>, e.displayText() = ..."; -1 if there is none.
int ClickHouseErrorCode(absl::string_view body) {
  absl::string_view rest = body;
  if (!absl::ConsumePrefix(&rest, "Code: ")) return -1;
  size_t end = rest.find_first_not_of("0123456789");
  int code = -1;
  if (!absl::SimpleAtoi(rest.substr(0, end), &code)) return -1;
  return code;
}

// The server's message without its noise, on one line, at most ~1000 chars.
std::string CleanMessage(absl::string_view body) {
  std::string message = absl::StrReplaceAll(
      body, {{", e.what() = DB::Exception", ""}, {"e.displayText() = ", ""}, {"\n", " "}});
  absl::StripAsciiWhitespace(&message);
  if (message.size() > 1000) message = absl::StrCat(message.substr(0, 1000), "...");
  return message;
}

}  // namespace

std::string QuoteIdentifier(absl::string_view name) {
  return absl::StrCat("`", absl::StrReplaceAll(name, {{"\\", "\\\\"}, {"`", "\\`"}}), "`");
}

std::string ClickHouseUrl(const clickhouse::ConnectionOptions& options, absl::string_view query) {
  absl::string_view base = options.url;
  while (absl::ConsumeSuffix(&base, "/")) {
  }
  std::string url =
      absl::StrCat(base, "/?database=", weir::internal::HttpClient::UrlEscape(options.database));
  if (!query.empty())
    absl::StrAppend(&url, "&query=", weir::internal::HttpClient::UrlEscape(query));
  for (const auto& [name, value] : options.settings) {
    absl::StrAppend(&url, "&", weir::internal::HttpClient::UrlEscape(name), "=",
                    weir::internal::HttpClient::UrlEscape(value));
  }
  return url;
}

absl::Status ValidateConnection(const clickhouse::ConnectionOptions& options,
                                absl::string_view what) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
  };
  if (!absl::StartsWith(options.url, "http://") && !absl::StartsWith(options.url, "https://")) {
    return bad(absl::StrCat("connection.url must start with http:// or https:// (is \"",
                            options.url, "\")"));
  }
  if (options.database.empty()) return bad("connection.database is empty");
  if (options.max_attempts < 1) return bad("connection.max_attempts must be at least 1");
  if (options.request_timeout <= absl::ZeroDuration() ||
      options.connect_timeout <= absl::ZeroDuration()) {
    return bad("connection timeouts must be positive");
  }
  if (options.initial_backoff < absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return bad("connection backoff must be 0 <= initial_backoff <= max_backoff");
  }
  for (const auto& [name, value] : options.settings) {
    if (name.empty() || name == "query" || name == "database" || name == "user" ||
        name == "password") {
      return bad(absl::StrCat("connection.settings may not set \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SendToClickHouse(weir::internal::HttpClient& client,
                                             const clickhouse::ConnectionOptions& options,
                                             const ClickHouseRequest& request,
                                             absl::string_view what) {
  weir::internal::HttpRequest http;
  http.method = "POST";
  http.url = request.url;
  http.body = request.body;
  http.username = options.user;
  http.password = options.password;
  http.timeout = options.request_timeout;
  http.connect_timeout = options.connect_timeout;
  http.cancel = request.cancel;
  if (request.gzip) http.headers.push_back("Content-Encoding: gzip");
  http.headers.push_back("Content-Type: text/plain; charset=UTF-8");

  weir::internal::RetryBackoff backoff(options.initial_backoff, options.max_backoff);
  absl::Status last_error;
  // An outage is logged when it starts and when it ends: a sink that waits
  // for ClickHouse stalls the pipeline, and the log says why.
  absl::Time outage_start = absl::InfiniteFuture();
  for (int attempt = 1;; ++attempt) {
    weir::internal::HttpResponse response = client.Send(http);
    bool retryable = false;
    if (!response.error.ok()) {
      last_error = absl::Status(response.error.code(),
                                absl::StrCat(what, ": no answer from ClickHouse at ", options.url,
                                             ": ", response.error.message()));
      retryable = response.retryable;
    } else if (response.status >= 200 && response.status < 300) {
      if (outage_start != absl::InfiniteFuture()) {
        weir::internal::Log(
            what, ": ClickHouse at ", options.url, " answers again after ",
            absl::FormatDuration(absl::Trunc(absl::Now() - outage_start, absl::Milliseconds(1))),
            " (", attempt, " attempts)");
      }
      return std::move(response.body);
    } else {
      const int code = ClickHouseErrorCode(response.body);
      last_error = absl::Status(CodeForClickHouseError(code, response.status),
                                absl::StrCat(what, ": HTTP ", response.status, " from ",
                                             options.url, ": ", CleanMessage(response.body)));
      retryable = !IsPermanentClickHouseError(code) &&
                  weir::internal::IsRetryableHttpStatus(response.status);
    }
    if (request.cancel != nullptr && request.cancel->load()) {
      return absl::CancelledError(absl::StrCat(what, ": cancelled (", last_error.message(), ")"));
    }
    if (!retryable) return last_error;
    if (outage_start == absl::InfiniteFuture() && attempt < options.max_attempts) {
      outage_start = absl::Now();
      weir::internal::Log(last_error.message(), "; retrying, up to ", options.max_attempts,
                          " attempts");
    }
    if (attempt >= options.max_attempts) {
      return absl::Status(last_error.code(), absl::StrCat(last_error.message(), " (gave up after ",
                                                          attempt, " attempts)"));
    }
    absl::Duration delay = backoff.Next();
    if (request.wait) {
      if (!request.wait(delay)) {
        return absl::CancelledError(
            absl::StrCat(what, ": cancelled while retrying (", last_error.message(), ")"));
      }
    } else {
      absl::SleepFor(delay);
    }
  }
}

absl::StatusOr<std::string> GzipCompress(absl::string_view data, int level) {
  z_stream stream{};
  // 15 + 16: a gzip header and trailer around the deflate stream.
  if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&stream, static_cast<uLong>(data.size())) + 32);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int result = deflate(&stream, Z_FINISH);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) {
    return absl::InternalError(absl::StrCat("gzip compression failed (zlib ", result, ")"));
  }
  out.resize(stream.total_out);
  return out;
}

}  // namespace weir::clickhouse::internal

namespace weir::clickhouse {

absl::StatusOr<std::string> CreateTableStatement(const std::vector<ColumnDefinition>& columns,
                                                 const TableOptions& options) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("clickhouse table '", options.table, "': ", why));
  };
  if (options.table.empty()) return bad("no table name");
  if (columns.empty()) return bad("no columns");
  if (options.order_by.empty()) return bad("order_by is empty");
  auto has_column = [&](const std::string& name) {
    return std::any_of(columns.begin(), columns.end(),
                       [&](const ColumnDefinition& column) { return column.name == name; });
  };
  std::string sql = absl::StrCat("CREATE TABLE ", options.if_not_exists ? "IF NOT EXISTS " : "",
                                 internal::QuoteIdentifier(options.table), " (");
  for (size_t idx = 0; idx < columns.size(); ++idx) {
    if (columns[idx].type.empty())
      return bad(absl::StrCat("column ", columns[idx].name, " has no type"));
    absl::StrAppend(&sql, idx == 0 ? "" : ", ", internal::QuoteIdentifier(columns[idx].name), " ",
                    columns[idx].type);
  }
  if (!options.batch_version_column.empty()) {
    if (!options.version_column.empty()) {
      return bad("set version_column or batch_version_column, not both");
    }
    if (has_column(options.batch_version_column)) {
      return bad(absl::StrCat("batch version column ", options.batch_version_column,
                              " is among the columns (the sink fills it: leave it out)"));
    }
    absl::StrAppend(&sql, ", ", internal::QuoteIdentifier(options.batch_version_column), " UInt64");
  }
  absl::StrAppend(&sql, ") ENGINE = ReplacingMergeTree(");
  if (!options.version_column.empty()) {
    if (!has_column(options.version_column)) {
      return bad(absl::StrCat("version column ", options.version_column, " is not a column"));
    }
    absl::StrAppend(&sql, internal::QuoteIdentifier(options.version_column));
  } else if (!options.batch_version_column.empty()) {
    absl::StrAppend(&sql, internal::QuoteIdentifier(options.batch_version_column));
  }
  absl::StrAppend(&sql, ")");
  if (!options.partition_time_column.empty()) {
    if (!has_column(options.partition_time_column)) {
      return bad(
          absl::StrCat("partition column ", options.partition_time_column, " is not a column"));
    }
    const int64_t seconds = absl::ToInt64Seconds(options.partition_interval);
    if (seconds <= 0 || options.partition_interval != absl::Seconds(seconds)) {
      return bad("partition_interval must be a positive whole number of seconds");
    }
    // ClickHouse 18.16 has no toStartOfInterval: bucket the Unix seconds.
    absl::StrAppend(&sql, " PARTITION BY toDateTime(intDiv(toUInt32(",
                    internal::QuoteIdentifier(options.partition_time_column), "), ", seconds,
                    ") * ", seconds, ")");
  }
  // ORDER BY entries are names or expressions: names are quoted, the rest
  // goes as written.
  absl::StrAppend(&sql, " ORDER BY (");
  for (size_t idx = 0; idx < options.order_by.size(); ++idx) {
    const std::string& key = options.order_by[idx];
    absl::StrAppend(&sql, idx == 0 ? "" : ", ",
                    has_column(key) ? internal::QuoteIdentifier(key) : key);
  }
  absl::StrAppend(&sql, ")");
  return sql;
}

absl::Status CreateTable(const ConnectionOptions& connection,
                         const std::vector<ColumnDefinition>& columns,
                         const TableOptions& options) {
  absl::StatusOr<std::string> sql = CreateTableStatement(columns, options);
  if (!sql.ok()) return sql.status();
  return internal::ClickHouseQuery(connection, *sql).status();
}

}  // namespace weir::clickhouse

namespace weir::clickhouse::internal {

absl::StatusOr<std::string> ClickHouseQuery(const clickhouse::ConnectionOptions& options,
                                            absl::string_view sql) {
  if (absl::Status valid = ValidateConnection(options, "clickhouse query"); !valid.ok()) {
    return valid;
  }
  absl::StatusOr<std::unique_ptr<weir::internal::HttpClient>> client =
      weir::internal::HttpClient::Create();
  if (!client.ok()) return client.status();
  std::string what =
      absl::StrCat("clickhouse query \"", sql.substr(0, 80), sql.size() > 80 ? "...\"" : "\"");
  return SendToClickHouse(**client, options, {.url = ClickHouseUrl(options, ""), .body = sql},
                          what);
}

}  // namespace weir::clickhouse::internal
