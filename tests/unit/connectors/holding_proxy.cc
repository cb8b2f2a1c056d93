#include "tests/unit/connectors/holding_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace weir::testing {

struct HoldingProxy::Link {
  int client_fd = -1;
  int upstream_fd = -1;
  bool client_open = true;
  std::string held;         // guarded by HoldingProxy::mu_
  bool released = false;    // guarded by HoldingProxy::mu_
  size_t answer_bytes = 0;  // after the release; guarded by HoldingProxy::mu_
};

namespace {

// send(2) of all of `data`; MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE.
bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t sent = send(fd, data, size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data += sent;
    size -= static_cast<size_t>(sent);
  }
  return true;
}

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HoldingProxy>> HoldingProxy::Start(int upstream_port) {
  std::unique_ptr<HoldingProxy> proxy(new HoldingProxy());
  proxy->upstream_port_ = upstream_port;
  proxy->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (proxy->listen_fd_ < 0) return absl::InternalError(std::strerror(errno));
  sockaddr_in address = Loopback(0);
  socklen_t length = sizeof(address);
  if (bind(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(proxy->listen_fd_, 16) != 0 ||
      getsockname(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return absl::InternalError(absl::StrCat("proxy listen: ", std::strerror(errno)));
  }
  proxy->port_ = ntohs(address.sin_port);
  proxy->acceptor_ = std::thread([raw = proxy.get()] { raw->AcceptLoop(); });
  return proxy;
}

HoldingProxy::~HoldingProxy() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  for (std::thread& pump : pumps_) pump.join();
  for (const auto& link : links_) {
    if (link->client_fd >= 0) close(link->client_fd);
    if (link->upstream_fd >= 0) close(link->upstream_fd);
  }
  if (listen_fd_ >= 0) close(listen_fd_);
}

void HoldingProxy::HoldNextSender() {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = true;
  held_ = nullptr;
}

size_t HoldingProxy::held_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return held_ == nullptr ? 0 : held_->held.size();
}

int HoldingProxy::connections() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(links_.size());
}

bool HoldingProxy::ReleaseAndWaitForAnswer(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  armed_ = false;
  Link* link = held_;
  if (link == nullptr || link->held.empty()) return false;
  link->released = true;
  const std::string data = std::move(link->held);
  link->held.clear();
  if (!SendAll(link->upstream_fd, data.data(), data.size())) return false;
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [&] { return link->answer_bytes > 0; });
}

void HoldingProxy::AcceptLoop() {
  while (!stop_) {
    pollfd listening{listen_fd_, POLLIN, 0};
    if (poll(&listening, 1, 50) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in address = Loopback(upstream_port_);
    if (upstream < 0 ||
        connect(upstream, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      close(client);
      if (upstream >= 0) close(upstream);
      continue;
    }
    auto link = std::make_unique<Link>();
    link->client_fd = client;
    link->upstream_fd = upstream;
    std::lock_guard<std::mutex> lock(mu_);
    links_.push_back(std::move(link));
    pumps_.emplace_back([this, raw = links_.back().get()] { Pump(raw); });
  }
}

void HoldingProxy::Pump(Link* link) {
  char buffer[64 * 1024];
  while (!stop_) {
    pollfd fds[2] = {{link->client_open ? link->client_fd : -1, POLLIN, 0},
                     {link->upstream_fd, POLLIN, 0}};
    if (poll(fds, 2, 50) <= 0) continue;
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t got = recv(link->client_fd, buffer, sizeof(buffer), 0);
      std::lock_guard<std::mutex> lock(mu_);
      if (got <= 0) {
        // The client gave up. A held connection keeps its server side open
        // for the release; any other one ends here.
        link->client_open = false;
        if (held_ != link) {
          shutdown(link->upstream_fd, SHUT_RDWR);
          return;
        }
      } else {
        if (armed_ && held_ == nullptr) held_ = link;
        if (held_ == link && !link->released) {
          link->held.append(buffer, static_cast<size_t>(got));
        } else if (!SendAll(link->upstream_fd, buffer, static_cast<size_t>(got))) {
          return;
        }
      }
    }
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t got = recv(link->upstream_fd, buffer, sizeof(buffer), 0);
      if (got <= 0) {
        shutdown(link->client_fd, SHUT_RDWR);
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (link->released) {
        link->answer_bytes += static_cast<size_t>(got);
        cv_.notify_all();
      }
      if (link->client_open && !SendAll(link->client_fd, buffer, static_cast<size_t>(got))) {
        link->client_open = false;
      }
    }
  }
}

}  // namespace weir::testing
