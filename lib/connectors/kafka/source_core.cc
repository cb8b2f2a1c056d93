// The librdkafka side of the Kafka source (include/weir/connectors/kafka_source.h):
// one consumer per worker with a manual assignment, start positions resolved
// to concrete offsets before the first poll (so every checkpoint stores a real
// offset), per-partition end-of-partition events for idleness and bounded
// reads, and data-loss / outage detection.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/common/log.h"
#include "lib/connectors/kafka/client.h"
#include "weir/connectors/kafka_source.h"

namespace weir::kafka::internal {

using ::weir::internal::Log;

namespace {

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const { rd_kafka_queue_destroy(queue); }
};
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;

int TimeoutMs(absl::Duration timeout) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 1, 1 << 30));
}

std::string SplitId(const std::string& topic, int32_t partition) {
  return absl::StrCat(topic, ":", partition);
}

bool ParseSplitId(const std::string& id, std::string& topic, int32_t& partition) {
  const size_t colon = id.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  topic = id.substr(0, colon);
  return absl::SimpleAtoi(id.substr(colon + 1), &partition) && partition >= 0;
}

// Before readers exist the runtime prefixes errors with the operator's name.
constexpr char kKafkaSource[] = "kafka source";

bool IsOutage(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
         err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__RESOLVE;
}

// Errors no retry can fix: the job fails with them.
bool IsPermanent(rd_kafka_resp_err_t err) {
  switch (ToStatusCode(err)) {
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kNotFound:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct SplitPosition {
  std::string topic;
  int32_t partition = 0;
  // The offset of the next record to emit.
  int64_t next = 0;
  // Bounded mode: the high watermark captured at start; -1 unbounded.
  int64_t end = -1;
  bool finished = false;
  bool finish_reported = false;
  // weir_kafka_consumer_lag_records of this partition (null outside a job).
  Gauge* lag = nullptr;
};

class ConsumerCore {
 public:
  ConsumerCore(ConsumerSettings settings, std::string what, SourceCounters& counters)
      : settings_(std::move(settings)), what_(std::move(what)), counters_(counters) {}
  ~ConsumerCore() {
    queue_.reset();
    if (handle_ != nullptr && !closed_) rd_kafka_consumer_close(handle_.get());
  }

  absl::Status Init(const SourceReaderContext& context);
  absl::StatusOr<PollResult> Poll(RecordHandler& handler);
  // The headers of the record being handled (empty outside OnRecord).
  std::span<const std::pair<std::string_view, std::string_view>> CurrentHeaders();
  std::vector<std::string> Snapshot(int64_t checkpoint_id);
  absl::Status Commit(int64_t checkpoint_id);
  absl::Status Close();

 private:
  static void OnError(rd_kafka_t*, int err, const char* reason, void* opaque);
  absl::Status ResolveStartOffsets(const std::vector<bool>& restored);
  absl::Status CheckRange(SplitPosition& split, const std::string& origin, int64_t low,
                          int64_t high);
  absl::Status Assign();
  absl::Status HandleOutOfRange(int split_index);
  absl::Status CheckOutage();
  int FindSplit(rd_kafka_topic_t* topic, int32_t partition);
  void MarkFinished(int split_index, RecordHandler& handler);
  absl::StatusOr<std::pair<int64_t, int64_t>> Watermarks(const SplitPosition& split);
  absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> AllWatermarks();
  // Publishes each partition's lag (at most every kLagInterval).
  void UpdateLag();

  ConsumerSettings settings_;
  std::string what_;
  SourceCounters& counters_;
  HandlePtr handle_;
  QueuePtr queue_;
  std::vector<SplitPosition> splits_;
  // topic name -> partition -> split index (-1: not ours).
  std::map<std::string, std::vector<int>, std::less<>> split_index_;
  // Cache of the topic handle -> topic name lookups above.
  absl::flat_hash_map<const rd_kafka_topic_t*, const std::vector<int>*> topic_cache_;
  int unfinished_ = 0;
  std::vector<rd_kafka_message_t*> messages_;
  std::vector<std::pair<std::string_view, std::string_view>> headers_;
  // The record being handled, and whether headers_ holds its headers.
  rd_kafka_message_t* current_ = nullptr;
  bool current_headers_read_ = false;
  std::map<int64_t, std::vector<int64_t>> pending_commits_;
  // Set by OnError (served on this worker's thread while polling).
  rd_kafka_resp_err_t last_error_ = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string last_error_text_;
  absl::Time down_since_ = absl::InfiniteFuture();
  absl::Status fatal_;
  bool closed_ = false;
  std::chrono::steady_clock::time_point lag_updated_;
};

// How often the lag gauges are refreshed: from librdkafka's cached high
// watermarks (no request), a lock per partition, so not on every poll.
constexpr std::chrono::milliseconds kLagInterval{250};

void ConsumerCoreDeleter::operator()(ConsumerCore* core) const { delete core; }

void ConsumerCore::OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* core = static_cast<ConsumerCore*>(opaque);
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char fatal[512];
    const rd_kafka_resp_err_t original = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
    if (core->fatal_.ok()) {
      core->fatal_ = ToStatus(original, absl::StrCat(core->what_, ": fatal error: ", fatal));
    }
    return;
  }
  if (IsPermanent(code)) {
    if (core->fatal_.ok()) {
      core->fatal_ = absl::Status(ToStatusCode(code), absl::StrCat(core->what_, ": ", reason, " (",
                                                                   rd_kafka_err2name(code), ")"));
    }
    return;
  }
  if (IsOutage(code)) {
    if (core->down_since_ == absl::InfiniteFuture()) {
      core->down_since_ = absl::Now();
      Log(core->what_, ": brokers unreachable (", reason, "); librdkafka keeps retrying, the job ",
          "fails after ", absl::FormatDuration(core->settings_.unavailable_timeout),
          " without contact");
    }
  } else {
    Log(core->what_, ": ", reason, " (", rd_kafka_err2name(code), ")");
  }
  core->last_error_ = code;
  core->last_error_text_ = reason;
}

absl::Status ConsumerCore::Init(const SourceReaderContext& context) {
  std::map<std::string, std::string> defaults = {
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "error"},
      {"enable.partition.eof", "true"},
      {"client.id", absl::StrCat("weir-", context.operator_name, "-", context.worker_index)},
  };
  // librdkafka needs a group even for a manual assignment; without the
  // user's group_id nothing is ever committed to this one.
  defaults["group.id"] =
      settings_.group_id.empty() ? absl::StrCat("weir-", context.operator_uid) : settings_.group_id;
  absl::StatusOr<ConfPtr> conf = MakeConf(settings_.client, defaults, what_, RD_KAFKA_CONSUMER);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_opaque(conf->get(), this);
  rd_kafka_conf_set_error_cb(conf->get(), &ConsumerCore::OnError);
  absl::StatusOr<HandlePtr> handle = MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), what_);
  if (!handle.ok()) return handle.status();
  handle_ = *std::move(handle);
  rd_kafka_poll_set_consumer(handle_.get());
  queue_.reset(rd_kafka_queue_get_consumer(handle_.get()));

  std::vector<bool> restored;
  for (const SourceSplit& split : context.splits) {
    SplitPosition position;
    if (!ParseSplitId(split.id, position.topic, position.partition)) {
      return absl::InvalidArgumentError(absl::StrCat(what_, ": bad split id '", split.id, "'"));
    }
    restored.push_back(split.state.has_value());
    if (split.state && !absl::SimpleAtoi(*split.state, &position.next)) {
      return absl::DataLossError(
          absl::StrCat(what_, ": bad checkpointed offset '", *split.state, "' for ", split.id));
    }
    auto& partitions = split_index_[position.topic];
    if (partitions.size() <= static_cast<size_t>(position.partition)) {
      partitions.resize(static_cast<size_t>(position.partition) + 1, -1);
    }
    partitions[static_cast<size_t>(position.partition)] = static_cast<int>(splits_.size());
    splits_.push_back(std::move(position));
  }
  absl::Status status = ResolveStartOffsets(restored);
  if (!status.ok()) return status;
  unfinished_ = 0;
  for (SplitPosition& split : splits_) {
    if (settings_.bounded && split.next >= split.end) split.finished = true;
    if (!split.finished) ++unfinished_;
  }
  messages_.resize(static_cast<size_t>(std::max(settings_.max_records_per_poll, 1)));
  if (context.metrics != nullptr) {
    for (SplitPosition& split : splits_) {
      split.lag = &context.metrics->AddGauge(
          "weir_kafka_consumer_lag_records",
          "Records between a partition's high watermark and the next offset the source reads",
          {{"topic", split.topic}, {"partition", absl::StrCat(split.partition)}});
    }
  }
  return Assign();
}

void ConsumerCore::UpdateLag() {
  const auto now = std::chrono::steady_clock::now();
  if (now - lag_updated_ < kLagInterval) return;
  lag_updated_ = now;
  for (const SplitPosition& split : splits_) {
    if (split.lag == nullptr) continue;
    int64_t low = 0;
    int64_t high = 0;
    if (rd_kafka_get_watermark_offsets(handle_.get(), split.topic.c_str(), split.partition, &low,
                                       &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;  // not fetched yet
    }
    split.lag->Set(static_cast<double>(std::max<int64_t>(0, high - split.next)));
  }
}

absl::StatusOr<std::pair<int64_t, int64_t>> ConsumerCore::Watermarks(const SplitPosition& split) {
  int64_t low = 0;
  int64_t high = 0;
  const rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(handle_.get(), split.topic.c_str(), split.partition, &low,
                                       &high, TimeoutMs(settings_.unavailable_timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return ToStatus(
        err, absl::StrCat(what_, ": cannot read the offsets of ", split.topic, "/", split.partition,
                          " (brokers ", settings_.client.brokers, ")"));
  }
  return std::make_pair(low, high);
}

// The log start and high watermark of every split in two ListOffsets
// requests (timestamps -2 = earliest, -1 = latest) rather than one round trip
// per partition.
absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ConsumerCore::AllWatermarks() {
  std::vector<std::pair<int64_t, int64_t>> marks(splits_.size());
  if (splits_.empty()) return marks;
  for (const int64_t which : {RD_KAFKA_OFFSET_BEGINNING, RD_KAFKA_OFFSET_END}) {
    TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(splits_.size())));
    for (const SplitPosition& split : splits_) {
      rd_kafka_topic_partition_list_add(list.get(), split.topic.c_str(), split.partition)->offset =
          which;
    }
    const rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(
        handle_.get(), list.get(), TimeoutMs(settings_.unavailable_timeout));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return ToStatus(err, absl::StrCat(what_, ": cannot read the partitions' offsets (brokers ",
                                        settings_.client.brokers, ")"));
    }
    for (int idx = 0; idx < list->cnt; ++idx) {
      const rd_kafka_topic_partition_t& tp = list->elems[idx];
      if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return ToStatus(tp.err, absl::StrCat(what_, ": offsets of ", tp.topic, "/", tp.partition));
      }
      auto& mark = marks[static_cast<size_t>(idx)];
      (which == RD_KAFKA_OFFSET_BEGINNING ? mark.first : mark.second) = tp.offset;
    }
  }
  return marks;
}

absl::Status ConsumerCore::ResolveStartOffsets(const std::vector<bool>& restored) {
  using Kind = StartingOffsets::Kind;
  const StartingOffsets& start = settings_.starting_offsets;
  const int timeout_ms = TimeoutMs(settings_.unavailable_timeout);
  absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> all_marks = AllWatermarks();
  if (!all_marks.ok()) return all_marks.status();
  const std::vector<std::pair<int64_t, int64_t>>& marks = *all_marks;
  // Offsets from the group or a timestamp, asked for all splits at once.
  std::vector<int64_t> looked_up(splits_.size(), RD_KAFKA_OFFSET_INVALID);
  if (start.kind == Kind::kCommitted || start.kind == Kind::kTimestamp) {
    TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(splits_.size())));
    for (const SplitPosition& split : splits_) {
      rd_kafka_topic_partition_list_add(list.get(), split.topic.c_str(), split.partition)->offset =
          start.timestamp_ms;
    }
    rd_kafka_resp_err_t err =
        start.kind == Kind::kCommitted
            ? rd_kafka_committed(handle_.get(), list.get(), timeout_ms)
            : rd_kafka_offsets_for_times(handle_.get(), list.get(), timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return ToStatus(
          err, absl::StrCat(what_,
                            start.kind == Kind::kCommitted
                                ? ": cannot read the offsets committed by group "
                                : ": cannot look up offsets for timestamp ",
                            start.kind == Kind::kCommitted ? settings_.group_id
                                                           : absl::StrCat(start.timestamp_ms)));
    }
    for (int idx = 0; idx < list->cnt; ++idx) {
      const rd_kafka_topic_partition_t& tp = list->elems[idx];
      if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return ToStatus(tp.err,
                        absl::StrCat(what_, ": start offset of ", tp.topic, "/", tp.partition));
      }
      looked_up[static_cast<size_t>(idx)] = tp.offset;
    }
  }
  for (size_t idx = 0; idx < splits_.size(); ++idx) {
    SplitPosition& split = splits_[idx];
    const auto [low, high] = marks[idx];
    if (settings_.bounded) split.end = high;
    std::string origin;
    if (restored[idx]) {
      origin = "the restored checkpoint";
    } else {
      Kind kind = start.kind;
      if (kind == Kind::kCommitted) {
        if (looked_up[idx] >= 0) {
          split.next = looked_up[idx];
          origin = absl::StrCat("the offset committed by group ", settings_.group_id);
        } else {
          kind = start.fallback;
        }
      } else if (kind == Kind::kTimestamp) {
        // -1: no record at or after the timestamp; start at the end.
        split.next = looked_up[idx] >= 0 ? looked_up[idx] : high;
      } else if (kind == Kind::kOffsets) {
        auto topic = start.offsets.find(split.topic);
        if (topic != start.offsets.end() && topic->second.contains(split.partition)) {
          split.next = topic->second.at(split.partition);
          origin = "the explicit starting offset";
        } else {
          kind = start.fallback;
        }
      }
      if (kind == Kind::kEarliest) split.next = low;
      if (kind == Kind::kLatest) split.next = high;
    }
    if (!origin.empty() && (split.next < low || split.next > high)) {
      absl::Status status = CheckRange(split, origin, low, high);
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

// `split.next` is outside the partition's log: kDataLoss, or log and count a reset.
absl::Status ConsumerCore::CheckRange(SplitPosition& split, const std::string& origin, int64_t low,
                                      int64_t high) {
  std::string problem;
  int64_t skipped = 0;
  if (split.next < low) {
    problem = absl::StrCat("offsets [", split.next, ", ", low, ") of ", split.topic, "/",
                           split.partition, " are no longer on the broker (its log starts at ", low,
                           "; ", origin, " needs offset ", split.next, ")");
    skipped = low - split.next;
  } else {
    problem = absl::StrCat("offset ", split.next, " of ", split.topic, "/", split.partition, " (",
                           origin, ") is beyond the end of the partition (high watermark ", high,
                           "); the topic may have been recreated");
  }
  if (settings_.on_data_loss == DataLossPolicy::kFail) {
    return absl::DataLossError(absl::StrCat(what_, ": ", problem));
  }
  const bool latest = settings_.on_data_loss == DataLossPolicy::kResetToLatest;
  if (latest) skipped = std::max<int64_t>(0, high - split.next);
  Log(what_, ": ", problem, "; continuing at the ", latest ? "high watermark " : "log start ",
      latest ? high : low, " as on_data_loss says");
  counters_.offset_resets.fetch_add(1);
  counters_.skipped_offsets.fetch_add(skipped);
  split.next = latest ? high : low;
  return absl::OkStatus();
}

absl::Status ConsumerCore::Assign() {
  TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(splits_.size())));
  for (const SplitPosition& split : splits_) {
    if (split.finished) continue;
    rd_kafka_topic_partition_list_add(list.get(), split.topic.c_str(), split.partition)->offset =
        split.next;
  }
  return ToStatus(rd_kafka_assign(handle_.get(), list.get()), absl::StrCat(what_, ": assign"));
}

int ConsumerCore::FindSplit(rd_kafka_topic_t* topic, int32_t partition) {
  auto cached = topic_cache_.find(topic);
  const std::vector<int>* partitions = nullptr;
  if (cached != topic_cache_.end()) {
    partitions = cached->second;
  } else {
    auto it = split_index_.find(std::string_view(rd_kafka_topic_name(topic)));
    if (it != split_index_.end()) partitions = &it->second;
    topic_cache_.emplace(topic, partitions);
  }
  if (partitions == nullptr || partition < 0 ||
      static_cast<size_t>(partition) >= partitions->size()) {
    return -1;
  }
  return (*partitions)[static_cast<size_t>(partition)];
}

void ConsumerCore::MarkFinished(int split_index, RecordHandler& handler) {
  SplitPosition& split = splits_[static_cast<size_t>(split_index)];
  if (!split.finished) {
    split.finished = true;
    --unfinished_;
  }
  if (!split.finish_reported) {
    split.finish_reported = true;
    handler.OnFinished(split_index);
  }
}

std::span<const std::pair<std::string_view, std::string_view>> ConsumerCore::CurrentHeaders() {
  if (current_ == nullptr) return {};
  if (current_headers_read_) return headers_;
  current_headers_read_ = true;
  headers_.clear();
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(current_, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t h = 0;
         rd_kafka_header_get_all(headers, h, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++h) {
      headers_.emplace_back(
          std::string_view(name),
          std::string_view(value != nullptr ? static_cast<const char*>(value) : "", size));
    }
  }
  return headers_;
}

absl::Status ConsumerCore::HandleOutOfRange(int split_index) {
  SplitPosition& split = splits_[static_cast<size_t>(split_index)];
  absl::StatusOr<std::pair<int64_t, int64_t>> marks = Watermarks(split);
  if (!marks.ok()) return marks.status();
  if (split.next >= marks->first && split.next <= marks->second) {
    // A transient answer (e.g. a leader change): fetch the same offset again.
    return Assign();
  }
  absl::Status status = CheckRange(split, "the source's position", marks->first, marks->second);
  if (!status.ok()) return status;
  return Assign();
}

absl::Status ConsumerCore::CheckOutage() {
  if (down_since_ == absl::InfiniteFuture()) return absl::OkStatus();
  if (absl::Now() - down_since_ < settings_.unavailable_timeout) return absl::OkStatus();
  // No record arrived for the whole timeout: ask the brokers directly
  // before giving up (an idle topic delivers nothing even when all is well).
  // A metadata request honours its timeout while the brokers are down
  // (rd_kafka_query_watermark_offsets does not, in librdkafka 2.0).
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(handle_.get(), 0, nullptr, &metadata, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    MetadataPtr owned(metadata);
    Log(what_, ": brokers reachable again");
    down_since_ = absl::InfiniteFuture();
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(what_, ": brokers ", settings_.client.brokers,
                                             " unreachable for ",
                                             absl::FormatDuration(settings_.unavailable_timeout),
                                             " (last error: ", last_error_text_, ")"));
}

absl::StatusOr<PollResult> ConsumerCore::Poll(RecordHandler& handler) {
  const bool read_headers = handler.ReadsHeaders();
  if (!fatal_.ok()) return fatal_;
  if (settings_.bounded) {
    for (size_t idx = 0; idx < splits_.size(); ++idx) {
      if (splits_[idx].finished) MarkFinished(static_cast<int>(idx), handler);
    }
    if (unfinished_ == 0) return PollResult::kEndOfInput;
  } else if (splits_.empty()) {
    return PollResult::kNothingAvailable;
  }
  const ssize_t count =
      rd_kafka_consume_batch_queue(queue_.get(), 0, messages_.data(), messages_.size());
  if (count < 0) {
    return ToStatus(rd_kafka_last_error(), absl::StrCat(what_, ": consume"));
  }
  absl::Status status = absl::OkStatus();
  ssize_t idx = 0;
  for (; idx < count && status.ok(); ++idx) {
    MessagePtr message(messages_[static_cast<size_t>(idx)]);
    const int split_index = FindSplit(message->rkt, message->partition);
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (split_index < 0) continue;
      SplitPosition& split = splits_[static_cast<size_t>(split_index)];
      if (split.finished || message->offset < split.next) continue;  // stale or past the end
      if (settings_.bounded && message->offset >= split.end) {
        MarkFinished(split_index, handler);
        continue;
      }
      down_since_ = absl::InfiniteFuture();
      rd_kafka_timestamp_type_t ts_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
      const int64_t timestamp = rd_kafka_message_timestamp(message.get(), &ts_type);
      KafkaRecord record;
      record.topic = split.topic;
      record.partition = message->partition;
      record.offset = message->offset;
      record.timestamp_ms = ts_type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : timestamp;
      if (message->key != nullptr) {
        record.key = std::string_view(static_cast<const char*>(message->key), message->key_len);
      }
      record.has_value = message->payload != nullptr;
      if (record.has_value) {
        record.value = std::string_view(static_cast<const char*>(message->payload), message->len);
      }
      // librdkafka parses a record's headers when asked, with an allocation
      // per record even when there are none: only for handlers that read them
      // (the others ask through CurrentHeaders, e.g. for a dead letter).
      current_ = message.get();
      current_headers_read_ = false;
      if (read_headers) record.headers = CurrentHeaders();
      status = handler.OnRecord(split_index, record);
      current_ = nullptr;
      split.next = message->offset + 1;
      if (settings_.bounded && split.next >= split.end) MarkFinished(split_index, handler);
      continue;
    }
    switch (message->err) {
      case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        if (split_index < 0) break;
        down_since_ = absl::InfiniteFuture();
        if (settings_.bounded) {
          if (message->offset >= splits_[static_cast<size_t>(split_index)].end) {
            MarkFinished(split_index, handler);
          }
        } else if (message->offset >= splits_[static_cast<size_t>(split_index)].next) {
          handler.OnCaughtUp(split_index);
        }
        break;
      case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
      case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
        if (split_index < 0) break;
        status = HandleOutOfRange(split_index);
        break;
      default: {
        const std::string text = rd_kafka_message_errstr(message.get());
        if (IsPermanent(message->err)) {
          status = absl::Status(
              ToStatusCode(message->err),
              absl::StrCat(what_, ": ", text, " (", rd_kafka_err2name(message->err), ")"));
        } else if (IsOutage(message->err)) {
          OnError(handle_.get(), message->err, text.c_str(), this);
        } else {
          Log(what_, ": ", text, " (", rd_kafka_err2name(message->err), "); retrying");
        }
        break;
      }
    }
  }
  for (; idx < count; ++idx) rd_kafka_message_destroy(messages_[static_cast<size_t>(idx)]);
  if (!status.ok()) return status;
  UpdateLag();
  if (!fatal_.ok()) return fatal_;
  status = CheckOutage();
  if (!status.ok()) return status;
  if (settings_.bounded && unfinished_ == 0) return PollResult::kEndOfInput;
  return count > 0 ? PollResult::kMoreAvailable : PollResult::kNothingAvailable;
}

std::vector<std::string> ConsumerCore::Snapshot(int64_t checkpoint_id) {
  std::vector<std::string> states;
  std::vector<int64_t> offsets;
  states.reserve(splits_.size());
  for (const SplitPosition& split : splits_) {
    states.push_back(absl::StrCat(split.next));
    offsets.push_back(split.next);
  }
  if (!settings_.group_id.empty()) {
    pending_commits_[checkpoint_id] = std::move(offsets);
    // Checkpoints that never complete must not pile up.
    while (pending_commits_.size() > 32) pending_commits_.erase(pending_commits_.begin());
  }
  return states;
}

absl::Status ConsumerCore::Commit(int64_t checkpoint_id) {
  auto it = pending_commits_.find(checkpoint_id);
  if (it == pending_commits_.end() || splits_.empty()) {
    pending_commits_.erase(pending_commits_.begin(), pending_commits_.upper_bound(checkpoint_id));
    return absl::OkStatus();
  }
  TopicPartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(splits_.size())));
  for (size_t idx = 0; idx < splits_.size(); ++idx) {
    rd_kafka_topic_partition_list_add(list.get(), splits_[idx].topic.c_str(),
                                      splits_[idx].partition)
        ->offset = it->second[idx];
  }
  pending_commits_.erase(pending_commits_.begin(), pending_commits_.upper_bound(checkpoint_id));
  // The checkpoint is the source of truth; the group's offsets are for lag
  // tools, so a failed commit is logged, not fatal.
  const rd_kafka_resp_err_t err = rd_kafka_commit(handle_.get(), list.get(), 0);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Log(what_, ": cannot commit the offsets of checkpoint ", checkpoint_id, " to group ",
        settings_.group_id, ": ", rd_kafka_err2str(err));
  }
  return absl::OkStatus();
}

absl::Status ConsumerCore::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  queue_.reset();
  const rd_kafka_resp_err_t err = rd_kafka_consumer_close(handle_.get());

  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Log(what_, ": close: ", rd_kafka_err2str(err));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SourceSplit>> DiscoverKafkaSplits(const ConsumerSettings& settings) {
  const std::string what = kKafkaSource;
  if (settings.topics.empty()) return absl::InvalidArgumentError(what + ": no topics given");
  if (settings.max_records_per_poll < 1) {
    return absl::InvalidArgumentError(what + ": max_records_per_poll must be >= 1");
  }
  if (settings.unavailable_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(what + ": unavailable_timeout must be positive");
  }
  if (settings.starting_offsets.kind == StartingOffsets::Kind::kCommitted &&
      settings.group_id.empty()) {
    return absl::InvalidArgumentError(
        what + ": StartingOffsets::Committed() needs a group_id to read the offsets of");
  }
  absl::StatusOr<ConfPtr> conf = MakeConf(settings.client, {}, what, RD_KAFKA_CONSUMER);
  if (!conf.ok()) return conf.status();
  // Why the brokers could not be reached (refused, authentication, ...),
  // collected while the metadata request waits.
  struct Trouble {
    rd_kafka_resp_err_t permanent = RD_KAFKA_RESP_ERR_NO_ERROR;
    std::string reason;
  } trouble;
  rd_kafka_conf_set_opaque(conf->get(), &trouble);
  rd_kafka_conf_set_error_cb(conf->get(),
                             [](rd_kafka_t*, int err, const char* reason, void* opaque) {
                               auto* t = static_cast<Trouble*>(opaque);
                               const auto code = static_cast<rd_kafka_resp_err_t>(err);
                               if (IsPermanent(code) && t->permanent == RD_KAFKA_RESP_ERR_NO_ERROR)
                                 t->permanent = code;
                               if (t->reason.empty() || IsPermanent(code)) t->reason = reason;
                             });
  absl::StatusOr<HandlePtr> handle = MakeHandle(RD_KAFKA_CONSUMER, *std::move(conf), what);
  if (!handle.ok()) return handle.status();
  const rd_kafka_metadata_t* raw = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(handle->get(), 1, nullptr, &raw, TimeoutMs(settings.unavailable_timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_poll(handle->get(), 0);  // serves the error callbacks
    if (trouble.permanent != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return ToStatus(trouble.permanent,
                      absl::StrCat(what, ": cannot connect to ", settings.client.brokers, ": ",
                                   trouble.reason));
    }
    return ToStatus(
        err, absl::StrCat(what, ": cannot read the cluster metadata from ", settings.client.brokers,
                          " within ", absl::FormatDuration(settings.unavailable_timeout),
                          trouble.reason.empty() ? "" : " (", trouble.reason,
                          trouble.reason.empty() ? "" : ")"));
  }
  MetadataPtr metadata(raw);
  std::vector<SourceSplit> splits;
  for (const std::string& topic : settings.topics) {
    const rd_kafka_metadata_topic_t* found = nullptr;
    for (int idx = 0; idx < metadata->topic_cnt; ++idx) {
      if (topic == metadata->topics[idx].topic) found = &metadata->topics[idx];
    }
    if (found == nullptr || found->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      return absl::NotFoundError(
          absl::StrCat(what, ": topic '", topic, "' does not exist on ", settings.client.brokers));
    }
    if (found->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return ToStatus(found->err, absl::StrCat(what, ": topic '", topic, "'"));
    }
    std::vector<int32_t> partitions;
    for (int idx = 0; idx < found->partition_cnt; ++idx) {
      partitions.push_back(found->partitions[idx].id);
    }
    std::sort(partitions.begin(), partitions.end());
    for (int32_t partition : partitions) splits.push_back({SplitId(topic, partition), {}});
  }
  return splits;
}

absl::StatusOr<ConsumerCorePtr> NewConsumerCore(const ConsumerSettings& settings,
                                                const SourceReaderContext& context,
                                                SourceCounters& counters) {
  ConsumerCorePtr core(new ConsumerCore(settings,
                                        absl::StrCat(kKafkaSource, " '", context.operator_name,
                                                     "' (worker ", context.worker_index, ")"),
                                        counters));
  absl::Status status = core->Init(context);
  if (!status.ok()) return status;
  return core;
}

absl::StatusOr<PollResult> PollConsumer(ConsumerCore& core, RecordHandler& handler) {
  return core.Poll(handler);
}

std::span<const std::pair<std::string_view, std::string_view>> CurrentRecordHeaders(
    ConsumerCore& core) {
  return core.CurrentHeaders();
}

std::vector<std::string> SnapshotPositions(ConsumerCore& core, int64_t checkpoint_id) {
  return core.Snapshot(checkpoint_id);
}

absl::Status CommitCheckpoint(ConsumerCore& core, int64_t checkpoint_id) {
  return core.Commit(checkpoint_id);
}

absl::Status CloseConsumer(ConsumerCore& core) { return core.Close(); }

}  // namespace weir::kafka::internal
