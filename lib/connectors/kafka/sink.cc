#include "lib/connectors/kafka/sink.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/connectors/kafka/client.h"
#include "lib/connectors/kafka/sink_recovery.h"

namespace weir::kafka::internal {

std::string TransactionalId(const std::string& prefix, int worker, int slot) {
  return absl::StrCat(prefix, "-", worker, "-", slot);
}

class FencedTransactionalIds {
 public:
  // Held while a writer fences: a second writer then waits, and finds the
  // ids fenced.
  std::mutex mu;
  std::set<std::string> ids;
};

std::shared_ptr<FencedTransactionalIds> NewFencedTransactionalIds() {
  return std::make_shared<FencedTransactionalIds>();
}

namespace {

// Guards the test hooks (sink.h).
std::mutex test_hooks_mu;
SinkEventHook& EventHook() {
  static auto* hook = new SinkEventHook();
  return *hook;
}

void NotifyEvent(absl::string_view event, const std::string& transactional_id) {
  std::lock_guard<std::mutex> lock(test_hooks_mu);
  if (EventHook()) EventHook()(event, transactional_id);
}

RestoredTransactionAbortHook& AbortHook() {
  static auto* hook = new RestoredTransactionAbortHook();
  return *hook;
}

bool AbortInjected(const std::string& transactional_id) {
  std::lock_guard<std::mutex> lock(test_hooks_mu);
  return AbortHook() && AbortHook()(transactional_id);
}

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* rkt) const { rd_kafka_topic_destroy(rkt); }
};
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;

int TimeoutMs(absl::Duration timeout) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 1, 1 << 30));
}

// One producer: the at-least-once producer, or one slot of the pool.
struct Producer {
  std::string what;              // for errors: "kafka sink 'x' (worker 0)[, transaction id]"
  std::string transactional_id;  // empty: not transactional
  HandlePtr rk;
  TopicPtr rkt;  // destroyed before rk
  // Filled by delivery reports (on the thread that polls: the worker's, or
  // the flusher's once an asynchronous pre-commit handed the producer over).
  absl::Status delivery_error;
  std::map<int32_t, OffsetRuns> offsets;  // only when transactional
  bool in_transaction = false;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* producer = static_cast<Producer*>(opaque);
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (producer->delivery_error.ok()) {
      producer->delivery_error =
          ToStatus(message->err,
                   absl::StrCat(producer->what, ": delivery to ", rd_kafka_topic_name(message->rkt),
                                " [", message->partition, "] failed"));
    }
    return;
  }
  if (!producer->transactional_id.empty()) {
    AddOffset(producer->offsets[message->partition], message->offset);
  }
}

absl::Status FatalError(rd_kafka_t* rk, absl::string_view what) {
  char reason[512];
  const rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk, reason, sizeof(reason));
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  return absl::Status(
      ToStatusCode(err) == absl::StatusCode::kInternal ? absl::StatusCode::kAborted
                                                       : ToStatusCode(err),
      absl::StrCat(what, ": fatal producer error: ", reason, " (", rd_kafka_err2name(err), ")"));
}

// Takes the error object's ownership.
absl::Status TxnStatus(rd_kafka_error_t* raw, absl::string_view what) {
  ErrorPtr error(raw);
  if (error == nullptr) return absl::OkStatus();
  absl::Status status = ToStatus(error.get(), what);
  if (rd_kafka_error_is_fatal(error.get()) && status.code() == absl::StatusCode::kInternal) {
    return absl::AbortedError(status.message());
  }
  return status;
}

class KafkaSinkCore final : public SinkCore {
 public:
  KafkaSinkCore(SinkConfig config, const SinkContext& context)
      : config_(std::move(config)),
        context_(context),
        what_(config_.description.empty() ? absl::StrCat("kafka sink '", context.operator_name,
                                                         "' (worker ", context.worker_index, ")")
                                          : config_.description),
        fenced_(config_.fenced != nullptr ? config_.fenced : NewFencedTransactionalIds()) {}

  ~KafkaSinkCore() override { (void)Close(); }

  absl::Status Init() {
    absl::Status status = Validate();
    if (!status.ok()) return status;
    if (config_.guarantee == DeliveryGuarantee::kAtLeastOnce) {
      absl::StatusOr<std::unique_ptr<Producer>> producer = NewProducer("");
      if (!producer.ok()) return producer.status();
      pool_.push_back(*std::move(producer));
      current_ = pool_.front().get();
    } else {
      // Fences zombies of every id of the pool and aborts what they left open.
      for (int slot = 0; slot < config_.transaction_pool_size; ++slot) {
        const std::string id = TransactionalId(prefix_, context_.worker_index, slot);
        {
          // In use again: a later restore must fence it again.
          std::lock_guard<std::mutex> lock(fenced_->mu);
          fenced_->ids.erase(id);
        }
        absl::StatusOr<std::unique_ptr<Producer>> producer =
            NewProducer(id, /*init_transactions=*/false);
        if (!producer.ok()) return producer.status();
        pool_.push_back(*std::move(producer));
      }
      status = InitTransactions();
      if (!status.ok()) return status;
      for (auto it = pool_.rbegin(); it != pool_.rend(); ++it) free_.push_back(it->get());
    }
    if (config_.custom_partitioner) return FetchPartitionCount();
    return absl::OkStatus();
  }

  int32_t partitions() const override { return partitions_; }

  absl::Status Produce(const SinkRecord& record) override {
    absl::Status status = BeginIfNeeded();
    if (!status.ok()) return status;
    return ProduceOn(*current_, record.partition, record.key,
                     record.null_value ? std::string_view() : record.value, record.headers, nullptr,
                     record.timestamp_ms);
  }

  absl::Status AfterBatch() override {
    if (current_ == nullptr) return absl::OkStatus();
    rd_kafka_poll(current_->rk.get(), 0);
    if (!current_->delivery_error.ok()) return current_->delivery_error;
    return FatalError(current_->rk.get(), current_->what);
  }

  absl::Status Flush() override {
    if (current_ == nullptr) return absl::OkStatus();
    return WaitDelivered(*current_);
  }

  absl::StatusOr<std::string> PreCommit(int64_t checkpoint_id) override {
    if (config_.guarantee == DeliveryGuarantee::kAtLeastOnce) {
      absl::Status status = Flush();
      if (!status.ok()) return status;
      return std::string();
    }
    // Even without a transaction, the committable tells a restore this
    // run's ids (see FenceVanishedIds).
    TransactionCommittable committable{.parallelism = context_.parallelism,
                                       .pool_size = config_.transaction_pool_size,
                                       .prefix = prefix_};
    if (current_ == nullptr) {
      return EncodeCommittable(committable);  // nothing written since the last barrier
    }
    absl::Status status = WaitDelivered(*current_);
    if (!status.ok()) return status;
    // Begun but nothing delivered leaves `partitions` empty: nothing for the
    // checkpoint to commit, but Commit(n) still ends the transaction.
    if (!current_->offsets.empty()) {
      committable.transactional_id = current_->transactional_id;
      committable.topic = config_.topic;
      committable.partitions = current_->offsets;
    }
    pending_[checkpoint_id] = current_;
    current_ = nullptr;
    return EncodeCommittable(committable);
  }

  // Exactly once: the transaction's producer goes to the pending ones now,
  // and the flusher thread waits for its deliveries while the worker's
  // records go to the next producer of the pool.
  bool PreCommitAsync(int64_t checkpoint_id,
                      std::function<void(absl::StatusOr<std::string>)>& done) override {
    if (config_.guarantee == DeliveryGuarantee::kAtLeastOnce || current_ == nullptr) {
      return false;  // one producer for every record; or nothing to wait for
    }
    PendingFlush flush{.checkpoint_id = checkpoint_id,
                       .producer = current_,
                       .committable = {.parallelism = context_.parallelism,
                                       .pool_size = config_.transaction_pool_size,
                                       .prefix = prefix_},
                       .done = std::move(done)};
    pending_[checkpoint_id] = current_;
    current_ = nullptr;
    {
      std::lock_guard<std::mutex> lock(flush_mu_);
      flushes_.push_back(std::move(flush));
      if (!flusher_.joinable()) flusher_ = std::thread([this] { RunFlusher(); });
    }
    flush_cv_.notify_all();
    return true;
  }

  absl::Status Commit(int64_t checkpoint_id, const std::string& committable) override {
    if (config_.guarantee == DeliveryGuarantee::kAtLeastOnce) return absl::OkStatus();
    auto it = pending_.find(checkpoint_id);
    if (it != pending_.end()) {
      Producer* producer = it->second;
      pending_.erase(it);
      // Puts the producer back into free_ once its transaction ended.
      return CommitTransaction(*producer, checkpoint_id, committable);
    }
    // Not pre-committed by this run: restored from a checkpoint.
    if (committable.empty()) return absl::OkStatus();
    return Recover(checkpoint_id, committable);
  }

  absl::Status Close() override {
    if (closed_) return absl::OkStatus();
    closed_ = true;
    {
      std::lock_guard<std::mutex> lock(flush_mu_);
      flushes_closed_ = true;
      flushes_closed_atomic_.store(true);
      flushes_.clear();  // their checkpoints never complete
    }
    flush_cv_.notify_all();
    if (flusher_.joinable()) flusher_.join();
    for (auto& producer : pool_) {
      if (producer->in_transaction && !IsPending(producer.get())) {
        // Its records belong to no checkpoint. Pre-committed transactions are
        // left open: their checkpoint may be complete, and the restarted job
        // repairs them (see the header).
        rd_kafka_purge(producer->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        (void)TxnStatus(rd_kafka_abort_transaction(producer->rk.get(), 5000), producer->what);
      } else if (rd_kafka_outq_len(producer->rk.get()) > 0) {
        rd_kafka_purge(producer->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      }
    }
    current_ = nullptr;
    pending_.clear();
    free_.clear();
    pool_.clear();
    return absl::OkStatus();
  }

 private:
  absl::Status Validate() {
    const auto invalid = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(what_, ": ", why));
    };
    if (config_.topic.empty()) return invalid("SinkOptions.topic is required");
    if (config_.flush_timeout <= absl::ZeroDuration()) {
      return invalid("SinkOptions.flush_timeout must be positive");
    }
    if (config_.guarantee == DeliveryGuarantee::kAtLeastOnce) {
      if (config_.client.properties.contains("transactional.id")) {
        return invalid("transactional.id is set: use DeliveryGuarantee::kExactlyOnce");
      }
      return absl::OkStatus();
    }
    if (config_.client.properties.contains("transactional.id")) {
      return invalid(
          "exactly once derives transactional.id from the job, sink and worker: do not set it "
          "(use SinkOptions.transactional_id_prefix)");
    }
    if (!context_.checkpointing) {
      return invalid(
          "DeliveryGuarantee::kExactlyOnce needs checkpoints: transactions are committed when a "
          "checkpoint completes (set PipelineOptions::checkpoints.storage_uri)");
    }
    if (config_.transaction_pool_size < 2) {
      return invalid("SinkOptions.transaction_pool_size must be at least 2");
    }
    transaction_timeout_ = config_.transaction_timeout;
    if (auto it = config_.client.properties.find("transaction.timeout.ms");
        it != config_.client.properties.end()) {
      int64_t ms = 0;
      if (!absl::SimpleAtoi(it->second, &ms)) return invalid("bad transaction.timeout.ms");
      transaction_timeout_ = absl::Milliseconds(ms);
    }
    // A transaction is open from the first record after barrier n-1 until
    // checkpoint n completes: up to an interval plus a checkpoint's duration.
    const absl::Duration needed = context_.checkpoint_interval + context_.checkpoint_timeout;
    if (transaction_timeout_ <= needed) {
      return invalid(absl::StrCat(
          "the transaction timeout (", absl::FormatDuration(transaction_timeout_),
          ") must exceed the checkpoint interval + checkpoint timeout (",
          absl::FormatDuration(needed),
          "), or the broker aborts transactions before their checkpoint commits them: raise "
          "SinkOptions.transaction_timeout (and the broker's transaction.max.timeout.ms) or "
          "lower CheckpointOptions.timeout"));
    }
    prefix_ = config_.transactional_id_prefix.empty()
                  ? absl::StrCat(context_.job_name, "-", context_.operator_uid)
                  : config_.transactional_id_prefix;
    return absl::OkStatus();
  }

  // A producer for `transactional_id` (empty: not transactional), which
  // initializes its transactions (and so fences the id) unless
  // `init_transactions` is false.
  absl::StatusOr<std::unique_ptr<Producer>> NewProducer(const std::string& transactional_id,
                                                        bool init_transactions = true) {
    auto producer = std::make_unique<Producer>();
    producer->transactional_id = transactional_id;
    producer->what = transactional_id.empty()
                         ? what_
                         : absl::StrCat(what_, " transactional.id ", transactional_id);
    std::map<std::string, std::string> defaults = {
        {"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}};
    if (!transactional_id.empty()) {
      defaults["transactional.id"] = transactional_id;
      defaults["transaction.timeout.ms"] =
          std::to_string(absl::ToInt64Milliseconds(config_.transaction_timeout));
    }
    absl::StatusOr<ConfPtr> conf =
        MakeConf(config_.client, defaults, producer->what, RD_KAFKA_PRODUCER);
    if (!conf.ok()) return conf.status();
    rd_kafka_conf_set_dr_msg_cb(conf->get(), &OnDelivery);
    rd_kafka_conf_set_opaque(conf->get(), producer.get());
    absl::StatusOr<HandlePtr> rk = MakeHandle(RD_KAFKA_PRODUCER, *std::move(conf), producer->what);
    if (!rk.ok()) return rk.status();
    producer->rk = *std::move(rk);
    producer->rkt.reset(rd_kafka_topic_new(producer->rk.get(), config_.topic.c_str(), nullptr));
    if (producer->rkt == nullptr) {
      return ToStatus(rd_kafka_last_error(),
                      absl::StrCat(producer->what, ": topic ", config_.topic));
    }
    if (!transactional_id.empty() && init_transactions) {
      NotifyEvent("init_transactions", transactional_id);
      absl::Status status = InitTransactions(*producer);
      if (!status.ok()) return status;
    }
    return producer;
  }

  absl::Status InitTransactions(Producer& producer) {
    return TxnStatus(
        rd_kafka_init_transactions(producer.rk.get(), TimeoutMs(config_.flush_timeout)),
        absl::StrCat(producer.what, ": init_transactions"));
  }

  // Initializes the transactions of every producer of the pool at once: each
  // is a few round trips to the transaction coordinator (find it, get a
  // producer id and epoch), which one after the other made up most of a
  // job's start-up (20 ms each on loopback, 4 per worker).
  absl::Status InitTransactions() {
    for (const auto& producer : pool_) NotifyEvent("init_transactions", producer->transactional_id);
    std::vector<absl::Status> statuses(pool_.size());
    std::vector<std::thread> threads;
    threads.reserve(pool_.size() - 1);
    for (size_t i = 1; i < pool_.size(); ++i) {
      threads.emplace_back([this, i, &statuses] { statuses[i] = InitTransactions(*pool_[i]); });
    }
    statuses[0] = InitTransactions(*pool_[0]);
    for (std::thread& thread : threads) thread.join();
    for (absl::Status& status : statuses) {
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status FetchPartitionCount() {
    const rd_kafka_metadata_t* raw = nullptr;
    Producer& producer = *pool_.front();
    absl::Status status =
        ToStatus(rd_kafka_metadata(producer.rk.get(), 0, producer.rkt.get(), &raw,
                                   TimeoutMs(std::min(config_.flush_timeout, absl::Seconds(30)))),
                 absl::StrCat(what_, ": metadata of topic ", config_.topic));
    if (!status.ok()) return status;
    MetadataPtr metadata(raw);
    if (metadata->topic_cnt != 1 || metadata->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return ToStatus(
          metadata->topic_cnt == 1 ? metadata->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
          absl::StrCat(what_, ": topic ", config_.topic));
    }
    partitions_ = metadata->topics[0].partition_cnt;
    return absl::OkStatus();
  }

  bool IsPending(const Producer* producer) const {
    for (const auto& [id, pending] : pending_) {
      if (pending == producer) return true;
    }
    return false;
  }

  absl::Status BeginIfNeeded() {
    if (current_ != nullptr) return absl::OkStatus();
    if (free_.empty()) {
      return absl::ResourceExhaustedError(
          absl::StrCat(what_, ": all ", config_.transaction_pool_size,
                       " transactional producers hold transactions of checkpoints not complete yet "
                       "(checkpoints failing in a row?); raise SinkOptions.transaction_pool_size"));
    }
    Producer* producer = free_.back();
    absl::Status status = TxnStatus(rd_kafka_begin_transaction(producer->rk.get()),
                                    absl::StrCat(producer->what, ": begin_transaction"));
    if (!status.ok()) return status;
    free_.pop_back();
    producer->in_transaction = true;
    producer->offsets.clear();
    producer->delivery_error = absl::OkStatus();
    current_ = producer;
    return absl::OkStatus();
  }

  // `value.data() == nullptr`: a null value (a tombstone; also what the
  // repair reads back for one).
  absl::Status ProduceOn(Producer& producer, int32_t partition, std::string_view key,
                         std::string_view value,
                         const std::vector<std::pair<std::string, std::string>>* headers,
                         const rd_kafka_headers_t* raw_headers, int64_t timestamp_ms) {
    vus_.clear();
    const auto add = [&](rd_kafka_vtype_t type) -> rd_kafka_vu_t& {
      vus_.emplace_back();
      vus_.back().vtype = type;
      return vus_.back();
    };
    add(RD_KAFKA_VTYPE_RKT).u.rkt = producer.rkt.get();
    add(RD_KAFKA_VTYPE_PARTITION).u.i32 = partition < 0 ? RD_KAFKA_PARTITION_UA : partition;
    add(RD_KAFKA_VTYPE_MSGFLAGS).u.i = RD_KAFKA_MSG_F_COPY;
    rd_kafka_vu_t& value_vu = add(RD_KAFKA_VTYPE_VALUE);
    value_vu.u.mem.ptr = const_cast<char*>(value.data());
    value_vu.u.mem.size = value.size();
    if (!key.empty()) {
      rd_kafka_vu_t& key_vu = add(RD_KAFKA_VTYPE_KEY);
      key_vu.u.mem.ptr = const_cast<char*>(key.data());
      key_vu.u.mem.size = key.size();
    }
    if (timestamp_ms > 0) add(RD_KAFKA_VTYPE_TIMESTAMP).u.i64 = timestamp_ms;
    if (headers != nullptr) {
      for (const auto& [name, header_value] : *headers) {
        rd_kafka_vu_t& vu = add(RD_KAFKA_VTYPE_HEADER);
        vu.u.header.name = name.c_str();
        vu.u.header.val = header_value.data();
        vu.u.header.size = static_cast<ssize_t>(header_value.size());
      }
    }
    if (raw_headers != nullptr) {
      const char* name = nullptr;
      const void* header_value = nullptr;
      size_t size = 0;
      for (size_t idx = 0; rd_kafka_header_get_all(raw_headers, idx, &name, &header_value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
           ++idx) {
        rd_kafka_vu_t& vu = add(RD_KAFKA_VTYPE_HEADER);
        vu.u.header.name = name;
        vu.u.header.val = header_value;
        vu.u.header.size = header_value == nullptr ? -1 : static_cast<ssize_t>(size);
      }
    }
    // Read the clock only once the queue is full, not for every record.
    absl::Time deadline = absl::InfiniteFuture();
    for (;;) {
      ErrorPtr error(rd_kafka_produceva(producer.rk.get(), vus_.data(), vus_.size()));
      if (error == nullptr) return absl::OkStatus();
      if (rd_kafka_error_code(error.get()) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
          deadline == absl::InfiniteFuture()) {
        deadline = absl::Now() + config_.flush_timeout;
      }
      if (rd_kafka_error_code(error.get()) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
          absl::Now() < deadline) {
        // The producer's queue is full: serve delivery reports until it drains.
        rd_kafka_poll(producer.rk.get(), 10);
        if (!producer.delivery_error.ok()) return producer.delivery_error;
        continue;
      }
      absl::Status fatal = FatalError(producer.rk.get(), producer.what);
      if (!fatal.ok()) return fatal;
      return ToStatus(error.get(), absl::StrCat(producer.what, ": produce to ", config_.topic));
    }
  }

  // The flusher thread: each pre-commit's producer, in order, until every
  // message is acknowledged; then its checkpoint's committable.
  void RunFlusher() {
    std::unique_lock<std::mutex> lock(flush_mu_);
    while (true) {
      flush_cv_.wait(lock, [&] { return flushes_closed_ || !flushes_.empty(); });
      if (flushes_closed_) return;
      PendingFlush flush = std::move(flushes_.front());
      flushes_.pop_front();
      lock.unlock();
      absl::Status status = WaitDelivered(*flush.producer, &flushes_closed_atomic_);
      absl::StatusOr<std::string> result = std::string();
      if (!status.ok()) {
        result = status;
      } else {
        if (!flush.producer->offsets.empty()) {
          flush.committable.transactional_id = flush.producer->transactional_id;
          flush.committable.topic = config_.topic;
          flush.committable.partitions = flush.producer->offsets;
        }
        result = EncodeCommittable(flush.committable);
      }
      lock.lock();
      if (flushes_closed_) return;  // Close() is waiting: no more calls
      lock.unlock();
      flush.done(std::move(result));
      lock.lock();
    }
  }

  // Waits until every message of `producer` is acknowledged or failed (or
  // `cancel` is set).
  absl::Status WaitDelivered(Producer& producer, const std::atomic<bool>* cancel = nullptr) {
    const absl::Time deadline = absl::Now() + config_.flush_timeout;
    while (rd_kafka_outq_len(producer.rk.get()) > 0) {
      if (!producer.delivery_error.ok()) break;
      if (cancel != nullptr && cancel->load()) {
        return absl::CancelledError(absl::StrCat(producer.what, ": closed"));
      }
      absl::Status fatal = FatalError(producer.rk.get(), producer.what);
      if (!fatal.ok()) return fatal;
      if (absl::Now() > deadline) {
        return absl::UnavailableError(absl::StrCat(
            producer.what, ": ", rd_kafka_outq_len(producer.rk.get()), " messages to topic ",
            config_.topic, " not acknowledged within ", absl::FormatDuration(config_.flush_timeout),
            " (are the brokers reachable?)"));
      }
      rd_kafka_flush(producer.rk.get(), 100);
    }
    rd_kafka_poll(producer.rk.get(), 0);
    if (!producer.delivery_error.ok()) return producer.delivery_error;
    return FatalError(producer.rk.get(), producer.what);
  }

  absl::Status CommitTransaction(Producer& producer, int64_t checkpoint_id,
                                 const std::string& committable) {
    const std::string what =
        absl::StrCat(producer.what, ": commit of checkpoint ", checkpoint_id, "'s transaction");
    const absl::Time deadline = absl::Now() + config_.flush_timeout;
    for (;;) {
      ErrorPtr error(rd_kafka_commit_transaction(
          producer.rk.get(), TimeoutMs(std::max(deadline - absl::Now(), absl::Seconds(1)))));
      if (error == nullptr) break;
      if (rd_kafka_error_is_retriable(error.get()) && absl::Now() < deadline) continue;
      absl::Status status = ToStatus(error.get(), what);
      if (rd_kafka_error_txn_requires_abort(error.get())) {
        // The broker aborted it although checkpoint n counts it: abort on
        // our side too and write its records again into the next
        // transaction, as a restart would.
        absl::Status aborted = TxnStatus(
            rd_kafka_abort_transaction(producer.rk.get(), TimeoutMs(config_.flush_timeout)),
            absl::StrCat(producer.what, ": abort_transaction"));
        if (!aborted.ok()) return aborted;
        producer.in_transaction = false;
        free_.push_back(&producer);
        weir::internal::Log(what, " failed (", status.ToString(),
                            "); writing its records again in the next transaction");
        if (committable.empty()) return absl::OkStatus();
        absl::StatusOr<TransactionCommittable> decoded = DecodeCommittable(committable);
        if (!decoded.ok()) return decoded.status();
        if (!decoded->has_transaction()) return absl::OkStatus();
        return Repair(checkpoint_id, *decoded);
      }
      if (rd_kafka_error_is_fatal(error.get()) && status.code() == absl::StatusCode::kInternal) {
        return absl::AbortedError(status.message());
      }
      return status;
    }
    producer.in_transaction = false;
    free_.push_back(&producer);
    return absl::OkStatus();
  }

  // A committable restored from a checkpoint: make sure its transaction is
  // committed, or write its records again.
  absl::Status Recover(int64_t checkpoint_id, const std::string& text) {
    absl::StatusOr<TransactionCommittable> committable = DecodeCommittable(text);
    if (!committable.ok()) return committable.status();
    absl::Status fenced = FenceVanishedIds(*committable);
    if (!fenced.ok()) return fenced;
    if (!committable->has_transaction()) return absl::OkStatus();
    if (!OwnsTransactionalId(committable->transactional_id)) {
      // Another worker's id (the parallelism changed), from a committable
      // without the layout (v1): fence it here, which ends its
      // transaction, before looking at its records.
      fenced = Fence({committable->transactional_id});
      if (!fenced.ok()) return fenced;
    }
    NotifyEvent("check", committable->transactional_id);
    absl::StatusOr<TransactionOutcome> outcome =
        CheckTransaction(config_.client, *committable, config_.flush_timeout, what_);
    if (!outcome.ok()) return outcome.status();
    if (*outcome == TransactionOutcome::kCommitted &&
        !AbortInjected(committable->transactional_id)) {
      return absl::OkStatus();
    }
    weir::internal::Log(what_, ": transaction ", committable->transactional_id, " of checkpoint ",
                        checkpoint_id,
                        " was aborted although the checkpoint completed (the job stopped between "
                        "writing the checkpoint and committing); writing its ",
                        committable->records(), " records again in the next transaction");
    return Repair(checkpoint_id, *committable);
  }

  // Before a restore checks any transaction: initializes (so fences, and
  // aborts what it left open) every id of the run that wrote `committable`
  // that no writer of this run owns: those of workers beyond this run's
  // parallelism, and slots beyond its pool size. An open transaction under
  // any of them holds back the last stable offset of the partitions it
  // wrote to, and a read_committed check would wait for it until
  // transaction.timeout.ms. Each writer does it on its first restored
  // committable; the shared set makes the others find it done.
  absl::Status FenceVanishedIds(const TransactionCommittable& committable) {
    if (committable.parallelism == 0) return absl::OkStatus();  // v1: no layout
    std::vector<std::string> ids;
    for (int worker = 0; worker < committable.parallelism; ++worker) {
      for (int slot = 0; slot < committable.pool_size; ++slot) {
        const bool owned = committable.prefix == prefix_ && worker < context_.parallelism &&
                           slot < config_.transaction_pool_size;
        if (!owned) ids.push_back(TransactionalId(committable.prefix, worker, slot));
      }
    }
    return Fence(ids);
  }

  // Initializes each of `ids` not fenced yet with a producer of its own,
  // dropped right after.
  absl::Status Fence(const std::vector<std::string>& ids) {
    std::lock_guard<std::mutex> lock(fenced_->mu);
    for (const std::string& id : ids) {
      if (fenced_->ids.contains(id)) continue;
      absl::StatusOr<std::unique_ptr<Producer>> fence = NewProducer(id);
      if (!fence.ok()) return fence.status();
      fenced_->ids.insert(id);
    }
    return absl::OkStatus();
  }

  absl::Status Repair(int64_t checkpoint_id, const TransactionCommittable& committable) {
    absl::Status status = ReadTransactionRecords(
        config_.client, committable, config_.flush_timeout,
        absl::StrCat(what_, ": repair of checkpoint ", checkpoint_id),
        [&](rd_kafka_message_t& message) -> absl::Status {
          absl::Status begun = BeginIfNeeded();
          if (!begun.ok()) return begun;
          rd_kafka_headers_t* headers = nullptr;
          (void)rd_kafka_message_headers(&message, &headers);
          rd_kafka_timestamp_type_t type;
          const int64_t timestamp = rd_kafka_message_timestamp(&message, &type);
          return ProduceOn(*current_, message.partition,
                           std::string_view(static_cast<const char*>(message.key), message.key_len),
                           std::string_view(static_cast<const char*>(message.payload), message.len),
                           nullptr, headers, timestamp);
        });
    if (!status.ok()) return status;
    return current_ == nullptr ? absl::OkStatus() : WaitDelivered(*current_);
  }

  bool OwnsTransactionalId(const std::string& id) const {
    for (const auto& producer : pool_) {
      if (producer->transactional_id == id) return true;
    }
    return false;
  }

  SinkConfig config_;
  SinkContext context_;
  std::string what_;
  std::string prefix_;
  absl::Duration transaction_timeout_;
  int32_t partitions_ = 0;
  std::vector<std::unique_ptr<Producer>> pool_;
  std::vector<Producer*> free_;                     // exactly once: slots without a transaction
  Producer* current_ = nullptr;                     // the producer records go to now
  std::map<int64_t, Producer*> pending_;            // pre-committed, by checkpoint
  std::shared_ptr<FencedTransactionalIds> fenced_;  // ids fenced on restore, shared by the writers
  std::vector<rd_kafka_vu_t> vus_;                  // reused by ProduceOn
  bool closed_ = false;

  // Asynchronous pre-commits (exactly once), flushed by `flusher_` in order.
  struct PendingFlush {
    int64_t checkpoint_id = 0;
    Producer* producer = nullptr;  // in pending_; the worker leaves it alone until Commit
    TransactionCommittable committable;
    std::function<void(absl::StatusOr<std::string>)> done;
  };
  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  std::deque<PendingFlush> flushes_;
  bool flushes_closed_ = false;
  std::atomic<bool> flushes_closed_atomic_{false};  // read by WaitDelivered without the lock
  std::thread flusher_;
};

}  // namespace

void SetSinkEventHookForTesting(SinkEventHook hook) {
  std::lock_guard<std::mutex> lock(test_hooks_mu);
  EventHook() = std::move(hook);
}

void SetRestoredTransactionAbortHookForTesting(RestoredTransactionAbortHook hook) {
  std::lock_guard<std::mutex> lock(test_hooks_mu);
  AbortHook() = std::move(hook);
}

absl::Status SerializerError(const absl::Status& status, const std::string& topic,
                             std::string_view key, Timestamp timestamp) {
  // Keys may be long or binary: escaped, and cut after 64 bytes.
  constexpr size_t kKeyShown = 64;
  std::string record = "the record";
  if (!key.empty()) {
    absl::StrAppend(
        &record, " with key \"",
        absl::CHexEscape(absl::string_view(key.data(), std::min(key.size(), kKeyShown))),
        key.size() > kKeyShown ? "\"..." : "\"");
  }
  if (timestamp != kNoTimestamp) {
    absl::StrAppend(&record, key.empty() ? " with" : " and", " event time ", timestamp);
  }
  return absl::Status(status.code(), absl::StrCat("cannot serialize ", record, " for topic ", topic,
                                                  ": ", status.message()));
}

absl::StatusOr<std::unique_ptr<SinkCore>> NewSinkCore(const SinkConfig& config,
                                                      const SinkContext& context) {
  auto core = std::make_unique<KafkaSinkCore>(config, context);
  absl::Status status = core->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<SinkCore>(std::move(core));
}

}  // namespace weir::kafka::internal
