// HoldingProxy: a TCP proxy on 127.0.0.1 for connector tests that need a
// network that delivers late. It forwards every connection it accepts to a
// server on 127.0.0.1:<upstream port>, except that, once armed, it holds
// back what the next connection to send sends toward the server, until the
// test releases it. Meanwhile the client times out, reconnects (a new
// connection, which flows) and writes newer data; the release then delivers
// the old bytes last, as a slow network path or a stalled kernel buffer
// can. The held connection's server side stays open when the client gives
// up, so the server executes the old request once it arrives.
//
// Example:
//   absl::StatusOr<std::unique_ptr<HoldingProxy>> proxy = HoldingProxy::Start(server_port);
//   options.connection.port = (*proxy)->port();
//   (*proxy)->HoldNextSender();
//   ... write; the client times out and resends on a new connection ...
//   ASSERT_TRUE((*proxy)->ReleaseAndWaitForAnswer(absl::Seconds(5)));

#ifndef WEIR_TESTS_UNIT_CONNECTORS_HOLDING_PROXY_H_
#define WEIR_TESTS_UNIT_CONNECTORS_HOLDING_PROXY_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace weir::testing {

// Thread-safety: all methods may be called from any thread.
class HoldingProxy {
 public:
  // Listens on a free port of 127.0.0.1.
  static absl::StatusOr<std::unique_ptr<HoldingProxy>> Start(int upstream_port);

  HoldingProxy(const HoldingProxy&) = delete;
  HoldingProxy& operator=(const HoldingProxy&) = delete;
  // Closes every connection.
  ~HoldingProxy();

  int port() const { return port_; }

  // Arms the hold: the first connection that sends bytes toward the server
  // from now on has them, and all it sends later, held back.
  void HoldNextSender();
  // Bytes held so far.
  size_t held_bytes();
  // Connections accepted so far.
  int connections();
  // Sends the held bytes to the server, then waits up to `timeout` until the
  // server answered them (any byte back on that connection). False if
  // nothing was held or no answer came.
  bool ReleaseAndWaitForAnswer(absl::Duration timeout);

 private:
  struct Link;
  HoldingProxy() = default;
  void AcceptLoop();
  void Pump(Link* link);

  int listen_fd_ = -1;
  int port_ = 0;
  int upstream_port_ = 0;
  std::atomic<bool> stop_ = false;
  std::thread acceptor_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;
  Link* held_ = nullptr;  // the held connection, once chosen
  std::vector<std::unique_ptr<Link>> links_;
  std::vector<std::thread> pumps_;
};

}  // namespace weir::testing

#endif  // WEIR_TESTS_UNIT_CONNECTORS_HOLDING_PROXY_H_
