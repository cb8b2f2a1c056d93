// HttpClient: one HTTP request over libcurl, with reused connections, for
// the parts of weir that talk HTTP (the ClickHouse and webhook sinks, S3
// checkpoint storage). They retry with RetryBackoff (retry_backoff.h).
//
// The client sends one attempt and reports what happened: a response (any
// status), or a transport failure with whether retrying may help. Retry
// policies live in the callers, which know which statuses their server
// means as transient.
//
// Example:
//   absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Create();
//   HttpResponse response = (*client)->Send({.method = "POST", .url = url, .body = json});
//   if (!response.error.ok()) { ... response.retryable ... }
//   else if (response.status >= 500) { ... }

#ifndef WEIR_LIB_COMMON_HTTP_CLIENT_H_
#define WEIR_LIB_COMMON_HTTP_CLIENT_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/curl_common.h"
#include "lib/common/retry_backoff.h"

namespace weir::internal {

struct HttpRequest {
  // "GET", "POST", "PUT", ...
  absl::string_view method = "POST";
  std::string url;
  // Complete header lines: "Content-Type: application/json".
  std::vector<std::string> headers;
  absl::string_view body;
  // Sent with HTTP basic authentication when `username` is not empty.
  std::string username;
  std::string password;
  // Of the whole request, and of establishing the connection.
  absl::Duration timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(10);
  // Set to true (by another thread) to abort the request early.
  const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
  // The HTTP status; 0 when no response arrived (`error` says why).
  long status = 0;
  // The response body (error bodies are cut at 64 KiB).
  std::string body;
  // A transport failure (connection refused, timeout, reset, ...), with
  // libcurl's message; OK when a response arrived, whatever its status.
  absl::Status error;
  // For a transport failure: whether retrying may help.
  bool retryable = false;
};

// Thread-safety: Send may be called concurrently. The client keeps a few idle
// curl handles so that connections to the same server are reused.
class HttpClient {
 public:
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one attempt of `request` (curl_easy_perform).
  HttpResponse Send(const HttpRequest& request);

  // "a%20b": `value` escaped for a URL's query string (curl_easy_escape).
  static std::string UrlEscape(absl::string_view value);

 private:
  HttpClient() = default;

  CurlHandlePool handles_;
};

// Whether a status answers a request that may succeed when repeated: 5xx
// (but 501 Not Implemented), 408 Request Timeout and 429 Too Many Requests.
bool IsRetryableHttpStatus(long status);

// The canonical code for an HTTP error status: 400 kInvalidArgument,
// 401 kUnauthenticated, 403 kPermissionDenied, 404 kNotFound, 408/429/5xx
// kUnavailable, ...
absl::StatusCode CodeForHttpStatus(long status);

}  // namespace weir::internal

#endif  // WEIR_LIB_COMMON_HTTP_CLIENT_H_
