#include "lib/common/curl_common.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace weir::internal {

namespace {
constexpr size_t kMaxIdleHandles = 16;
}  // namespace

absl::Status InitCurl() {
  static const CURLcode init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (init_result != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("curl_global_init failed: ", curl_easy_strerror(init_result)));
  }
  return absl::OkStatus();
}

void CurlHandlePool::Deleter::operator()(void* handle) const {
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

CurlHandlePool::Handle CurlHandlePool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      Handle handle = std::move(idle_.back());
      idle_.pop_back();
      // Forgets the options; keeps open connections and the DNS cache.
      curl_easy_reset(static_cast<CURL*>(handle.get()));
      return handle;
    }
  }
  return Handle(curl_easy_init());
}

void CurlHandlePool::Release(Handle handle) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kMaxIdleHandles) idle_.push_back(std::move(handle));
}

bool IsRetryableCurl(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

absl::StatusCode CodeForCurl(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return absl::StatusCode::kInvalidArgument;
    case CURLE_OUT_OF_MEMORY:
      return absl::StatusCode::kResourceExhausted;
    case CURLE_ABORTED_BY_CALLBACK:
      return absl::StatusCode::kCancelled;
    default:
      return absl::StatusCode::kUnavailable;  // network and TLS trouble
  }
}

}  // namespace weir::internal
