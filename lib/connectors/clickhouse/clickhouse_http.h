// Requests to ClickHouse's HTTP interface: URLs, retries, and errors mapped
// to canonical codes with the server's message.
//
// ClickHouse answers most errors with HTTP 500 and "Code: <n>, e.displayText()
// = DB::Exception: ..." as the body, bad input included, so whether a retry
// may help is decided by the ClickHouse error code first and the HTTP status
// second.
//
// Example:
//   std::string url = ClickHouseUrl(options, "INSERT INTO `t` FORMAT JSONEachRow");
//   absl::StatusOr<std::string> answer =
//       SendToClickHouse(client, options, {.url = url, .body = rows}, "insert into t");

#ifndef WEIR_LIB_CONNECTORS_CLICKHOUSE_CLICKHOUSE_HTTP_H_
#define WEIR_LIB_CONNECTORS_CLICKHOUSE_CLICKHOUSE_HTTP_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/http_client.h"
#include "weir/connectors/clickhouse.h"

namespace weir::clickhouse::internal {

// "<url>/?database=<db>[&query=<query>]&<setting>=<value>...", escaped.
std::string ClickHouseUrl(const clickhouse::ConnectionOptions& options, absl::string_view query);

// `name` quoted as a ClickHouse identifier: `name`.
std::string QuoteIdentifier(absl::string_view name);

// kInvalidArgument unless the connection options are usable.
absl::Status ValidateConnection(const clickhouse::ConnectionOptions& options,
                                absl::string_view what);

struct ClickHouseRequest {
  std::string url;
  absl::string_view body;
  // The body is gzip-compressed.
  bool gzip = false;
  // Aborts the request and its retries when it becomes true.
  const std::atomic<bool>* cancel = nullptr;
  // Waits between attempts; returns false to stop retrying (cancelled).
  // Default (empty): sleeps.
  std::function<bool(absl::Duration)> wait;
};

// Sends `request` with `options`' credentials, retrying transient failures
// up to options.max_attempts times; returns the body of the 2xx answer.
// Errors read "<what>: HTTP <status>: <server message>" (or the connection
// failure) and carry the canonical code.
absl::StatusOr<std::string> SendToClickHouse(weir::internal::HttpClient& client,
                                             const clickhouse::ConnectionOptions& options,
                                             const ClickHouseRequest& request,
                                             absl::string_view what);

// gzip (RFC 1952) of `data`, with zlib at `level` (1 fastest .. 9 smallest).
absl::StatusOr<std::string> GzipCompress(absl::string_view data, int level);

}  // namespace weir::clickhouse::internal

#endif  // WEIR_LIB_CONNECTORS_CLICKHOUSE_CLICKHOUSE_HTTP_H_
