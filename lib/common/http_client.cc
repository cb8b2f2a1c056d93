#include "lib/common/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace weir::internal {

namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

struct Transfer {
  CURL* curl = nullptr;
  std::string body;
};

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  size_t length = size * count;
  long status = 0;
  curl_easy_getinfo(transfer->curl, CURLINFO_RESPONSE_CODE, &status);
  // Success bodies are kept whole (query results); error bodies are cut.
  if ((status >= 200 && status < 300) || transfer->body.size() < kMaxErrorBody) {
    transfer->body.append(data, length);
  }
  return length;
}

int ProgressCallback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel->load(std::memory_order_relaxed) ? 1 : 0;  // non-zero aborts
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create() {
  if (absl::Status status = InitCurl(); !status.ok()) return status;
  return std::unique_ptr<HttpClient>(new HttpClient());
}

HttpClient::~HttpClient() = default;

std::string HttpClient::UrlEscape(absl::string_view value) {
  char* escaped = curl_easy_escape(nullptr, value.data(), static_cast<int>(value.size()));
  if (escaped == nullptr) return std::string(value);
  std::string result(escaped);
  curl_free(escaped);
  return result;
}

HttpResponse HttpClient::Send(const HttpRequest& request) {
  HttpResponse response;
  CurlHandlePool::Handle handle = handles_.Acquire();
  if (handle == nullptr) {
    response.error = absl::ResourceExhaustedError("curl_easy_init failed");
    return response;
  }
  CURL* curl = static_cast<CURL*>(handle.get());

  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(nullptr, &curl_slist_free_all);
  auto add_header = [&](const std::string& line) {
    curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
    if (appended == nullptr) return false;
    headers.release();
    headers.reset(appended);
    return true;
  };
  // No "Expect: 100-continue" round trip before a large body.
  bool headers_ok = add_header("Expect:");
  for (const std::string& line : request.headers) headers_ok = headers_ok && add_header(line);
  if (!headers_ok) {
    response.error = absl::ResourceExhaustedError("curl_slist_append failed");
    return response;
  }

  Transfer transfer;
  transfer.curl = curl;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  const std::string method(request.method);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(
      curl, CURLOPT_TIMEOUT_MS,
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(request.timeout))));
  curl_easy_setopt(
      curl, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(request.connect_timeout))));
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "weir");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  if (method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    // The body goes as is (no copy); other methods than POST keep it too.
    // Never null: a null CURLOPT_POSTFIELDS makes libcurl read the body from stdin.
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (method != "POST") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (!request.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(curl, CURLOPT_USERNAME, request.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, request.password.c_str());
  }
  if (request.cancel != nullptr) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &ProgressCallback);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, request.cancel);
  }

  CURLcode result = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  handles_.Release(std::move(handle));
  if (result != CURLE_OK) {
    std::string detail = curl_easy_strerror(result);
    if (error_buffer[0] != '\0') absl::StrAppend(&detail, " (", error_buffer, ")");
    response.status = 0;
    response.error = absl::Status(CodeForCurl(result), detail);
    response.retryable = IsRetryableCurl(result);
    return response;
  }
  response.body = std::move(transfer.body);
  return response;
}

bool IsRetryableHttpStatus(long status) {
  return (status >= 500 && status != 501) || status == 408 || status == 429;
}

absl::StatusCode CodeForHttpStatus(long status) {
  switch (status) {
    case 400:
    case 413:
    case 414:
    case 415:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 405:
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 408:
    case 429:
      return absl::StatusCode::kUnavailable;
    case 409:
      return absl::StatusCode::kAborted;
    case 412:
      return absl::StatusCode::kFailedPrecondition;
    default:
      break;
  }
  if (status >= 500) return absl::StatusCode::kUnavailable;
  if (status >= 400) return absl::StatusCode::kFailedPrecondition;
  if (status >= 300) return absl::StatusCode::kInvalidArgument;  // unfollowed redirect
  return absl::StatusCode::kUnknown;
}

}  // namespace weir::internal
