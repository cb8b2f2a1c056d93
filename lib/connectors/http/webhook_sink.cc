// The webhook sink (weir/connectors/http.h): batching, retries, the circuit
// breaker shared by the workers, and dead letters.

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/http_client.h"
#include "weir/connectors/http.h"

namespace weir::http::internal {

namespace {

constexpr char kStage[] = "http-sink";
constexpr size_t kMaxErrorBodyInMessage = 300;

// Closed -> (threshold consecutive failures) -> open -> (cool-down) ->
// half-open: one probe; its success closes, its failure opens again.
class CircuitBreaker {
 public:
  explicit CircuitBreaker(const http::CircuitBreakerOptions& options) : options_(options) {}

  // Whether a request may go out now; when not, how long until one may.
  bool Admit(absl::Time now, absl::Duration* wait) {
    if (options_.failure_threshold <= 0) return true;
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kClosed) return true;
    if (state_ == State::kOpen && now >= opened_at_ + options_.cool_down) {
      state_ = State::kHalfOpen;  // the caller is the probe
      return true;
    }
    *wait = state_ == State::kOpen ? opened_at_ + options_.cool_down - now
                                   : options_.cool_down / 10;  // a probe is out
    return false;
  }
  void OnSuccess() {
    if (options_.failure_threshold <= 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    consecutive_failures_ = 0;
    state_ = State::kClosed;
  }
  void OnFailure(absl::Time now) {
    if (options_.failure_threshold <= 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    ++consecutive_failures_;
    if (state_ == State::kHalfOpen || consecutive_failures_ >= options_.failure_threshold) {
      state_ = State::kOpen;
      opened_at_ = now;
    }
  }

 private:
  enum class State { kClosed, kOpen, kHalfOpen };
  const http::CircuitBreakerOptions options_;
  std::mutex mu_;
  State state_ = State::kClosed;  // guarded by mu_
  int consecutive_failures_ = 0;  // guarded by mu_
  absl::Time opened_at_;          // guarded by mu_
};

struct Pending {
  std::string payload;
  Timestamp timestamp;
};

class Core final : public WebhookSinkCore, public std::enable_shared_from_this<Core> {
 public:
  explicit Core(http::SinkOptions options)
      : options_(std::move(options)), breaker_(options_.circuit_breaker) {}

  absl::StatusOr<std::unique_ptr<Writer>> CreateWriter(const SinkContext& context) override;

  const http::SinkOptions& options() const { return options_; }
  CircuitBreaker& breaker() { return breaker_; }
  weir::internal::HttpClient& client() { return *client_; }

  absl::Status Validate(absl::string_view what) {
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
    };
    if (!absl::StartsWith(options_.url, "http://") && !absl::StartsWith(options_.url, "https://")) {
      return bad(
          absl::StrCat("url must start with http:// or https:// (is \"", options_.url, "\")"));
    }
    if (options_.batch.max_records == 0) return bad("batch.max_records must be positive");
    if (options_.batch.max_linger < absl::ZeroDuration()) {
      return bad("batch.max_linger must not be negative");
    }
    if (options_.retry.max_attempts < 1) return bad("retry.max_attempts must be at least 1");
    if (options_.retry.initial_backoff < absl::ZeroDuration() ||
        options_.retry.max_backoff < options_.retry.initial_backoff) {
      return bad("retry backoff must be 0 <= initial_backoff <= max_backoff");
    }
    if (options_.request_timeout <= absl::ZeroDuration() ||
        options_.connect_timeout <= absl::ZeroDuration()) {
      return bad("timeouts must be positive");
    }
    if (options_.circuit_breaker.failure_threshold > 0 &&
        options_.circuit_breaker.cool_down <= absl::ZeroDuration()) {
      return bad("circuit_breaker.cool_down must be positive");
    }
    for (const auto& [name, value] : options_.headers) {
      if (name.empty() || name.find_first_of(":\r\n") != std::string::npos ||
          value.find_first_of("\r\n") != std::string::npos) {
        return bad(absl::StrCat("invalid header \"", name, "\""));
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (client_ == nullptr) {
      absl::StatusOr<std::unique_ptr<weir::internal::HttpClient>> client =
          weir::internal::HttpClient::Create();
      if (!client.ok()) return client.status();
      client_ = *std::move(client);
    }
    return absl::OkStatus();
  }

 private:
  const http::SinkOptions options_;
  CircuitBreaker breaker_;
  std::mutex mu_;
  std::unique_ptr<weir::internal::HttpClient>
      client_;  // set once, under mu_, before any writer exists
};

class WebhookWriter final : public WebhookSinkCore::Writer {
 public:
  WebhookWriter(std::shared_ptr<Core> core, std::string what,
                std::unique_ptr<DeadLetterWriter> dead_letters)
      : core_(std::move(core)),
        options_(core_->options()),
        what_(std::move(what)),
        dead_letters_(std::move(dead_letters)) {
    request_.method = options_.method == http::Method::kPut ? "PUT" : "POST";
    request_.url = options_.url;
    request_.timeout = options_.request_timeout;
    request_.connect_timeout = options_.connect_timeout;
    request_.headers.push_back(absl::StrCat("Content-Type: ", options_.content_type));
    for (const auto& [name, value] : options_.headers) {
      request_.headers.push_back(absl::StrCat(name, ": ", value));
    }
    when_open_ = options_.circuit_breaker.when_open;
    if (dead_letters_ == nullptr) when_open_ = http::WhenOpen::kWait;
  }

  absl::Status Add(std::string payload, Timestamp timestamp) override {
    if (pending_.empty()) pending_since_ = absl::Now();
    pending_.push_back({std::move(payload), timestamp});
    if (pending_.size() >= options_.batch.max_records) return SendPending();
    return absl::OkStatus();
  }

  absl::Status MaybeSend() override {
    if (pending_.empty()) return absl::OkStatus();
    if (absl::Now() - pending_since_ >= options_.batch.max_linger) return SendPending();
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    if (absl::Status status = SendPending(); !status.ok()) return status;
    if (dead_letters_ != nullptr) return dead_letters_->Flush();
    return absl::OkStatus();
  }

 private:
  absl::Status SendPending() {
    if (pending_.empty()) return absl::OkStatus();
    std::string body;
    if (options_.batch.max_records == 1) {
      body = std::move(pending_.front().payload);
    } else {
      body = options_.batch.prefix;
      for (size_t idx = 0; idx < pending_.size(); ++idx) {
        if (idx > 0) body.append(options_.batch.separator);
        body.append(pending_[idx].payload);
      }
      body.append(options_.batch.suffix);
    }
    absl::Status status = Deliver(body);
    if (status.ok()) {
      pending_.clear();
      return absl::OkStatus();
    }
    if (dead_letters_ == nullptr) {
      pending_.clear();
      return status;
    }
    for (size_t idx = 0; idx < pending_.size(); ++idx) {
      DeadLetter letter;
      letter.payload =
          options_.batch.max_records == 1 ? std::move(body) : std::move(pending_[idx].payload);
      letter.code = status.code();
      letter.error = std::string(status.message());
      letter.stage = kStage;
      letter.timestamp_ms = pending_[idx].timestamp;
      if (absl::Status written = dead_letters_->Write(std::move(letter)); !written.ok()) {
        pending_.clear();
        return written;
      }
    }
    pending_.clear();
    return absl::OkStatus();
  }

  // Sends `body` until it is accepted, rejected for good, or out of
  // attempts; the status says which (with the last HTTP status or error).
  absl::Status Deliver(absl::string_view body) {
    request_.body = body;
    weir::internal::RetryBackoff backoff(options_.retry.initial_backoff,
                                         options_.retry.max_backoff);
    absl::Status last_error;
    for (int attempt = 1;;) {
      absl::Duration wait;
      if (!core_->breaker().Admit(absl::Now(), &wait)) {
        if (when_open_ == http::WhenOpen::kDeadLetter) {
          return absl::UnavailableError(absl::StrCat(
              what_, ": circuit breaker open, request not sent",
              last_error.ok() ? "" : absl::StrCat(" (last failure: ", last_error.message(), ")")));
        }
        absl::SleepFor(std::max(wait, absl::Milliseconds(1)));
        continue;
      }
      weir::internal::HttpResponse response = core_->client().Send(request_);
      const absl::Time now = absl::Now();
      bool retryable = false;
      if (!response.error.ok()) {
        last_error = absl::Status(response.error.code(),
                                  absl::StrCat(what_, ": ", request_.method, " ", options_.url,
                                               ": no answer: ", response.error.message()));
        retryable = response.retryable;
        core_->breaker().OnFailure(now);
      } else if (response.status >= 200 && response.status < 300) {
        core_->breaker().OnSuccess();
        return absl::OkStatus();
      } else {
        std::string detail = response.body.substr(0, kMaxErrorBodyInMessage);
        last_error =
            absl::Status(weir::internal::CodeForHttpStatus(response.status),
                         absl::StrCat(what_, ": ", request_.method, " ", options_.url, ": HTTP ",
                                      response.status, detail.empty() ? "" : ": ", detail));
        retryable = weir::internal::IsRetryableHttpStatus(response.status);
        // A definite answer means the endpoint is up: only transient
        // failures count against the breaker.
        if (retryable) {
          core_->breaker().OnFailure(now);
        } else {
          core_->breaker().OnSuccess();
        }
      }
      if (!retryable) return last_error;
      if (attempt >= options_.retry.max_attempts) {
        return absl::Status(
            last_error.code(),
            absl::StrCat(last_error.message(), " (gave up after ", attempt, " attempts)"));
      }
      ++attempt;
      absl::SleepFor(backoff.Next());
    }
  }

  std::shared_ptr<Core> core_;
  const http::SinkOptions& options_;
  const std::string what_;
  std::unique_ptr<DeadLetterWriter> dead_letters_;
  http::WhenOpen when_open_;
  weir::internal::HttpRequest request_;
  std::vector<Pending> pending_;
  absl::Time pending_since_;
};

absl::StatusOr<std::unique_ptr<WebhookSinkCore::Writer>> Core::CreateWriter(
    const SinkContext& context) {
  std::string what =
      absl::StrCat("http sink '", options_.url, "' (worker ", context.worker_index, ")");
  if (absl::Status valid = Validate(what); !valid.ok()) return valid;
  std::unique_ptr<DeadLetterWriter> dead_letters;
  if (options_.dead_letters != nullptr) {
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> writer =
        options_.dead_letters->CreateWriter(context.operator_name, context.worker_index);
    if (!writer.ok()) return writer.status();
    dead_letters = CountDeadLetters(*std::move(writer), context.metrics);
  }
  return std::unique_ptr<Writer>(
      new WebhookWriter(shared_from_this(), std::move(what), std::move(dead_letters)));
}

}  // namespace

std::shared_ptr<WebhookSinkCore> WebhookSinkCore::Create(http::SinkOptions options) {
  return std::make_shared<Core>(std::move(options));
}

}  // namespace weir::http::internal
