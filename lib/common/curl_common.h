// What every libcurl user in weir shares: global initialisation, a pool of
// easy handles (so connections are reused), and the meaning of CURLcodes
// (retryable or not, canonical status code).
//
// Example:
//   if (absl::Status status = InitCurl(); !status.ok()) return status;
//   CurlHandlePool pool;
//   CurlHandlePool::Handle handle = pool.Acquire();
//   CURLcode result = curl_easy_perform(static_cast<CURL*>(handle.get()));
//   pool.Release(std::move(handle));
//   if (result != CURLE_OK && IsRetryableCurl(result)) { ... }

#ifndef WEIR_LIB_CONNECTORS_HTTP_CURL_COMMON_H_
#define WEIR_LIB_CONNECTORS_HTTP_CURL_COMMON_H_

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"

namespace weir::internal {

// curl_global_init, once per process (thread-safe).
absl::Status InitCurl();

// Idle curl easy handles. Thread-safe.
class CurlHandlePool {
 public:
  struct Deleter {
    void operator()(void* handle) const;  // curl_easy_cleanup
  };
  using Handle = std::unique_ptr<void, Deleter>;

  // An idle handle with its options reset (curl_easy_reset keeps its open
  // connections and DNS cache), or a new one; null if curl_easy_init fails.
  Handle Acquire();
  // Keeps `handle` for reuse (up to a few; the rest are cleaned up).
  void Release(Handle handle);

 private:
  std::mutex mu_;
  std::vector<Handle> idle_;  // guarded by mu_
};

// Connection, DNS, timeout and transfer failures, which a retry may fix.
bool IsRetryableCurl(CURLcode code);

// kInvalidArgument for a bad URL, kCancelled for an abort by callback,
// kResourceExhausted for out of memory, else kUnavailable.
absl::StatusCode CodeForCurl(CURLcode code);

}  // namespace weir::internal

#endif  // WEIR_LIB_CONNECTORS_HTTP_CURL_COMMON_H_
