#include "lib/metrics/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace weir::internal {

namespace {

// Requests are short (a snapshot, a page): a few threads are plenty, and
// closing each connection after its response keeps Stop() from waiting
// for idle keep-alive connections of a browser.
constexpr size_t kThreads = 3;

void NoCache(httplib::Response& response) { response.set_header("Cache-Control", "no-store"); }

}  // namespace

struct HttpServer::Impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address, int port,
                                                              const JobEndpoint& endpoint) {
  std::unique_ptr<HttpServer> http(new HttpServer());
  http->impl_ = std::make_unique<Impl>();
  httplib::Server& server = http->impl_->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  server.set_keep_alive_max_count(1);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_payload_max_length(64 * 1024);

  server.Get("/metrics", [&endpoint](const httplib::Request&, httplib::Response& response) {
    NoCache(response);
    response.set_content(endpoint.PrometheusText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/api/v1/job", [&endpoint](const httplib::Request&, httplib::Response& response) {
    NoCache(response);
    response.set_content(endpoint.JobJson(), "application/json");
  });
  server.Get("/healthz", [&endpoint](const httplib::Request&, httplib::Response& response) {
    std::string reason;
    response.status = endpoint.Healthy(&reason) ? 200 : 503;
    NoCache(response);
    response.set_content(reason + "\n", "text/plain; charset=utf-8");
  });
  server.Get("/readyz", [&endpoint](const httplib::Request&, httplib::Response& response) {
    std::string reason;
    response.status = endpoint.Ready(&reason) ? 200 : 503;
    NoCache(response);
    response.set_content(reason + "\n", "text/plain; charset=utf-8");
  });
  server.Get(".*", [](const httplib::Request& request, httplib::Response& response) {
    const DashboardAsset* asset = FindDashboardAsset(request.path);
    if (asset == nullptr) {
      response.status = 404;
      response.set_content("not found\n", "text/plain; charset=utf-8");
      return;
    }
    response.set_content(std::string(asset->body), std::string(asset->content_type).c_str());
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        response.status = 500;
        response.set_content("internal error\n", "text/plain; charset=utf-8");
      });

  if (port == 0) {
    http->port_ = server.bind_to_any_port(address);
    if (http->port_ <= 0) {
      return absl::UnavailableError(
          absl::StrCat("HTTP server: cannot bind a free port on ", address));
    }
  } else {
    if (!server.bind_to_port(address, port)) {
      return absl::UnavailableError(absl::StrCat("HTTP server: cannot bind ", address, ":", port,
                                                 " (in use, or not an address of this host)"));
    }
    http->port_ = port;
  }
  Impl* impl = http->impl_.get();
  impl->thread = std::thread([impl] {
    pthread_setname_np(pthread_self(), "weir-http");
    impl->server.listen_after_bind();
    impl->listen_returned.store(true);
  });
  // httplib's stop() does nothing before the accept loop runs: wait for it,
  // so that Stop() right after Start() cannot hang.
  while (!server.is_running() && !impl->listen_returned.load()) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return http;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (impl_ == nullptr || !impl_->thread.joinable()) return;
  // listen_after_bind() returns once the listening socket is closed and its
  // thread pool has finished the requests in progress.
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace weir::internal
