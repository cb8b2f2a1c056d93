// The embedded HTTP server of a job (PipelineOptions::http_port), on
// cpp-httplib: /metrics, /api/v1/job, /healthz, /readyz and the dashboard.
// It knows nothing about jobs: it serves what a JobEndpoint answers.

#ifndef WEIR_LIB_METRICS_HTTP_SERVER_H_
#define WEIR_LIB_METRICS_HTTP_SERVER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace weir::internal {

// What the server serves. Called from the server's threads, concurrently.
class JobEndpoint {
 public:
  virtual ~JobEndpoint() = default;
  // /metrics: the Prometheus text format.
  virtual std::string PrometheusText() const = 0;
  // /api/v1/job: the job as JSON.
  virtual std::string JobJson() const = 0;
  // /healthz: false once the job failed; *reason says why (or "ok").
  virtual bool Healthy(std::string* reason) const = 0;
  // /readyz: true once the job restored its state and runs; *reason is its status.
  virtual bool Ready(std::string* reason) const = 0;
};

class HttpServer {
 public:
  // Binds `address`:`port` (0: a free port) and serves `endpoint` until
  // destroyed. kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address, int port,
                                                           const JobEndpoint& endpoint);
  ~HttpServer();

  // The bound port.
  int port() const { return port_; }
  // Stops accepting and waits for requests in progress; idempotent.
  void Stop();

 private:
  struct Impl;
  HttpServer() = default;

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// A file of the dashboard, embedded in the library at build time.
struct DashboardAsset {
  std::string_view path;  // e.g. "/dashboard.js"; "/" is the page
  std::string_view content_type;
  std::string_view body;
};
// The asset served at `path`, or null. Defined in the generated dashboard_assets.cc.
const DashboardAsset* FindDashboardAsset(std::string_view path);

}  // namespace weir::internal

#endif  // WEIR_LIB_METRICS_HTTP_SERVER_H_
