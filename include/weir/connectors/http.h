// HTTP webhook sink: POSTs (or PUTs) a JSON payload per record, or per batch
// of records, to a URL.
//
// Each record becomes a payload through a function you give (record ->
// std::string, usually a JSON object). With `batch.max_records` = 1 every
// record is one request whose body is its payload; above 1, up to that many
// payloads go in one request as `prefix + p1 + separator + p2 ... + suffix`
// (a JSON array by default).
//
// Delivery: a request that fails with a transport error, 408, 429 or 5xx
// (but 501) is retried with exponential backoff and jitter, up to
// `retry.max_attempts` attempts; other 4xx are not retried. A circuit
// breaker, shared by the sink's workers, opens after
// `circuit_breaker.failure_threshold` consecutive retryable failures; while
// open, requests are not sent: records are dead-lettered at once (or, with
// WhenOpen::kWait, the worker waits); after `cool_down` one probe request
// goes out (half-open) and closes the breaker if it succeeds.
//
// Records whose request finally failed go to `dead_letters` (one DeadLetter
// per record: the payload, the last HTTP status or transport error in
// `error`, its canonical code, stage "http-sink", the record's timestamp);
// the dead-letter writer is flushed at every checkpoint barrier. Without a
// dead-letter queue, such a failure fails the job. Requests go out
// synchronously on the worker's thread, which buffers batches and sends
// everything at each checkpoint barrier and at the end of input: delivery
// is at-least-once (a restart replays what followed the last checkpoint),
// so receivers should be idempotent.
//
// Example:
//
//   auto dlq = std::make_shared<MyDeadLetterQueue>();
//   alerts.Sink(weir::http::Sink<Alert>(
//       {.url = "https://hooks.example.com/alerts",
//        .headers = {{"Authorization", "Bearer ..."}},
//        .batch = {.max_records = 100},
//        .dead_letters = dlq},
//       [](const Alert& a) { return absl::StrCat("{\"id\":", a.id, "}"); }));

#ifndef WEIR_CONNECTORS_HTTP_H_
#define WEIR_CONNECTORS_HTTP_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "weir/dead_letter.h"
#include "weir/sink.h"
#include "weir/time.h"

namespace weir::http {

enum class Method { kPost, kPut };

struct RetryOptions {
  // Attempts per request, the first included (1: no retries).
  // Default: 5
  int max_attempts = 5;
  // The first retry waits about `initial_backoff`, each further one twice as
  // long up to `max_backoff`; each wait is drawn from [d / 2, d] (jitter).
  // Default: 100 ms, 10 s
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
};

// What a record does while the circuit breaker is open.
enum class WhenOpen {
  // Goes to the dead-letter queue without a request (fail fast).
  kDeadLetter,
  // Waits for the half-open probe (backpressure); each probe counts as an
  // attempt of the record's request.
  kWait,
};

struct CircuitBreakerOptions {
  // Consecutive retryable failures (of any worker) that open the breaker
  // (0: no breaker).
  // Default: 5
  int failure_threshold = 5;
  // How long it stays open before one probe request may go out.
  // Default: 30 s
  absl::Duration cool_down = absl::Seconds(30);
  // Default: kDeadLetter (kWait when there is no dead-letter queue)
  WhenOpen when_open = WhenOpen::kDeadLetter;
};

struct BatchOptions {
  // Records per request (1: the body is the record's payload).
  // Default: 1
  size_t max_records = 1;
  // A batch that is not full is sent when its first record is this old, at
  // the next Write (and at every checkpoint barrier and the end of input).
  // Default: 100 ms
  absl::Duration max_linger = absl::Milliseconds(100);
  // What a batch's body is made of (max_records > 1).
  // Default: a JSON array: "[", ",", "]"
  std::string prefix = "[";
  std::string separator = ",";
  std::string suffix = "]";
};

struct SinkOptions {
  // "http[s]://host[:port]/path" (required).
  std::string url;
  // Default: kPost
  Method method = Method::kPost;
  // Extra request headers, e.g. {"Authorization", "Bearer ..."}.
  // Default: none
  std::vector<std::pair<std::string, std::string>> headers;
  // Default: "application/json"
  std::string content_type = "application/json";
  // Of one attempt, and of connecting.
  // Default: 10 s, 5 s
  absl::Duration request_timeout = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(5);
  BatchOptions batch;
  RetryOptions retry;
  CircuitBreakerOptions circuit_breaker;
  // Where records go whose request failed for good. Default: none (such a
  // failure fails the job).
  std::shared_ptr<DeadLetterQueue> dead_letters;
};

}  // namespace weir::http

namespace weir::http::internal {

// What the sink's writers share (options, HTTP connections, the circuit
// breaker); implemented in lib/connectors/http. Thread-safe.
class WebhookSinkCore {
 public:
  // The sink's state; the options are checked by CreateWriter.
  static std::shared_ptr<WebhookSinkCore> Create(http::SinkOptions options);
  virtual ~WebhookSinkCore() = default;

  // The writer of one worker: takes payloads, batches, sends, dead-letters.
  class Writer {
   public:
    virtual ~Writer() = default;
    virtual absl::Status Add(std::string payload, Timestamp timestamp) = 0;
    // Sends what the writer holds if its batch is full or old enough.
    virtual absl::Status MaybeSend() = 0;
    // Sends everything and flushes the dead letters.
    virtual absl::Status Flush() = 0;
  };
  // kInvalidArgument for bad options.
  virtual absl::StatusOr<std::unique_ptr<Writer>> CreateWriter(const SinkContext& context) = 0;
};

}  // namespace weir::http::internal

namespace weir::http {

// The sink; `PayloadFn` maps const T& to the request payload (a string).
template <class T, class PayloadFn>
class WebhookSink final : public weir::Sink<T> {
 public:
  WebhookSink(SinkOptions options, PayloadFn payload)
      : core_(internal::WebhookSinkCore::Create(std::move(options))),
        payload_(std::move(payload)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(const SinkContext& context) override {
    absl::StatusOr<std::unique_ptr<internal::WebhookSinkCore::Writer>> writer =
        core_->CreateWriter(context);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<SinkWriter<T>>(new Writer(&payload_, *std::move(writer)));
  }

 private:
  class Writer final : public SinkWriter<T> {
   public:
    Writer(PayloadFn* payload, std::unique_ptr<internal::WebhookSinkCore::Writer> writer)
        : payload_(payload), writer_(std::move(writer)) {}
    absl::Status Write(std::span<T> values, std::span<const Timestamp> timestamps) override {
      for (size_t idx = 0; idx < values.size(); ++idx) {
        absl::Status status = writer_->Add(std::string((*payload_)(std::as_const(values[idx]))),
                                           idx < timestamps.size() ? timestamps[idx] : -1);
        if (!status.ok()) return status;
      }
      return writer_->MaybeSend();
    }
    bool ReadsOnly() const override { return true; }
    absl::Status Flush() override { return writer_->Flush(); }

   private:
    PayloadFn* payload_;
    std::unique_ptr<internal::WebhookSinkCore::Writer> writer_;
  };

  std::shared_ptr<internal::WebhookSinkCore> core_;
  PayloadFn payload_;
};

// A webhook sink for records of type T (see the top of this file).
// `payload` is called as payload(const T&) and returns a std::string (or
// something a std::string can be made from).
template <class T, class PayloadFn>
std::shared_ptr<weir::Sink<T>> Sink(SinkOptions options, PayloadFn payload) {
  static_assert(std::is_constructible_v<std::string, std::invoke_result_t<PayloadFn&, const T&>>,
                "weir::http::Sink: the payload function must take const T& and return a string");
  return std::make_shared<WebhookSink<T, PayloadFn>>(std::move(options), std::move(payload));
}

}  // namespace weir::http

#endif  // WEIR_CONNECTORS_HTTP_H_
