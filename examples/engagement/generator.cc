#include "examples/engagement/generator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "weir/formats/json.h"

namespace engagement {

using weir::debezium::Op;

namespace {

constexpr std::string_view kDevices[] = {"ios", "android", "web", "tv", "desktop"};
constexpr std::string_view kTopics[] = {"stream processing", "databases", "kafka", "cooking",
                                        "history",           "football",  "jazz",  "economics"};

}  // namespace

ChangeGenerator::ChangeGenerator(GeneratorOptions options)
    : options_(std::move(options)), rng_(options_.seed) {
  for (int i = 0; i < std::max(1, options_.initial_contents); ++i) live_.push_back(NewContent());
  for (int i = 0; i < 5000; ++i) users_.push_back(NewUuid());
  RebuildWeights();
}

std::string ChangeGenerator::NewUuid() {
  const uint64_t hi = (rng_() & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  const uint64_t lo = (rng_() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  char text[37];
  std::snprintf(text, sizeof(text), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return text;
}

Content ChangeGenerator::NewContent() {
  std::uniform_real_distribution<double> unit(0, 1);
  Content c;
  c.id = NewUuid();
  const std::string_view topic = kTopics[rng_() % std::size(kTopics)];
  c.content_type = std::string(kContentTypes[rng_() % std::size(kContentTypes)]);
  c.slug = std::string(topic) + "-" + c.content_type + "-" + c.id.substr(0, 8);
  for (char& ch : c.slug) {
    if (ch == ' ') ch = '-';
  }
  c.title = "On " + std::string(topic) + " (\"" + c.content_type + "\" #" + c.id.substr(0, 4) + ")";
  const double draw = unit(rng_);
  if (draw < options_.null_length_share) {
    c.length_seconds.reset();
  } else if (draw < options_.null_length_share + options_.zero_length_share) {
    c.length_seconds = 0;
  } else {
    c.length_seconds = 60 + static_cast<int32_t>(rng_() % 3600);
  }
  c.publish_ts_ms = NowMs() - static_cast<int64_t>(rng_() % (30LL * 24 * 3600 * 1000));
  return c;
}

int64_t ChangeGenerator::NowMs() const {
  return options_.start_ms + static_cast<int64_t>(static_cast<double>(records_) * 1000.0 /
                                                  std::max(1e-9, options_.records_per_second));
}

void ChangeGenerator::RebuildWeights() {
  cumulative_.resize(live_.size());
  double total = 0;
  for (size_t rank = 0; rank < live_.size(); ++rank) {
    total += 1.0 / std::pow(static_cast<double>(rank + 1), options_.zipf_exponent);
    cumulative_[rank] = total;
  }
}

size_t ChangeGenerator::PickContent() {
  std::uniform_real_distribution<double> unit(0, cumulative_.back());
  const double draw = unit(rng_);
  return std::min(live_.size() - 1, static_cast<size_t>(std::lower_bound(cumulative_.begin(),
                                                                         cumulative_.end(), draw) -
                                                        cumulative_.begin()));
}

GeneratedRecord ChangeGenerator::ContentRecord(Op op, const Content* before, const Content& row) {
  GeneratedRecord record;
  record.topic = ContentTopic(options_.envelope);
  record.key = ContentKey(row.id, options_.envelope);
  record.ts_ms = NowMs();
  record.op = op;
  record.row = row;
  const SourcePosition source{record.ts_ms, lsn_ += 64, ++tx_id_, op == Op::kRead};
  record.value = op == Op::kDelete ? ContentChange(op, &row, nullptr, source, options_.envelope)
                                   : ContentChange(op, before, &row, source, options_.envelope);
  return record;
}

// How long the user engaged with `content` in an event of `event_type`: a
// share of the content's length, so average engagement looks like real
// audiences' (~45%), and more than 100% only for the rare replay.
int32_t ChangeGenerator::DurationMs(const Content& content, std::string_view event_type) {
  std::uniform_real_distribution<double> unit(0, 1);
  if (!content.length_seconds || *content.length_seconds <= 0) {
    return static_cast<int32_t>(rng_() % 600'000);  // no length to relate to
  }
  double share = 0;
  if (event_type == "finish") {
    share = 0.9 + 0.1 * unit(rng_);  // to (nearly) the end: credits and outros are skipped
  } else if (event_type == "click") {
    share = 0.02 * unit(rng_);  // a link a few seconds in
  } else {
    share = std::pow(unit(rng_), 1.5);  // most plays stop early (mean 40%)
    if (unit(rng_) < kReplayShare) share = 1.0 + 0.5 * unit(rng_);  // watched again in part
  }
  return static_cast<int32_t>(share * *content.length_seconds * 1000.0);
}

GeneratedRecord ChangeGenerator::Event(const Content& content) {
  std::uniform_real_distribution<double> unit(0, 1);
  EngagementEvent e;
  e.id = next_event_id_++;
  e.content_id = content.id;
  e.user_id = users_[rng_() % users_.size()];
  e.event_type = std::string(kEventTypes[rng_() % std::size(kEventTypes)]);
  // Up to 2 s behind the generator's clock: events arrive a little out of order.
  e.event_ts_ms = NowMs() - static_cast<int64_t>(rng_() % 2000);
  if (unit(rng_) >= options_.null_duration_share) {
    e.duration_ms = DurationMs(content, e.event_type);
  }
  e.device = std::string(kDevices[rng_() % std::size(kDevices)]);
  std::string payload;
  weir::json::Writer json(payload);
  json.BeginObject()
      .Member("app_version", "4." + std::to_string(rng_() % 20))
      .Member("session", static_cast<int64_t>(rng_() % 1'000'000))
      .EndObject();
  e.raw_payload = std::move(payload);

  GeneratedRecord record;
  record.topic = EngagementTopic(options_.envelope);
  record.key = EngagementKey(e.id, options_.envelope);
  record.ts_ms = e.event_ts_ms;
  record.op = Op::kCreate;
  record.value = EngagementChange(Op::kCreate, nullptr, &e, {NowMs(), lsn_ += 64, ++tx_id_, false},
                                  options_.envelope);
  record.row = std::move(e);
  return record;
}

GeneratedRecord ChangeGenerator::Next() {
  GeneratedRecord record = [&] {
    // 1. The initial snapshot.
    if (snapshot_next_ < live_.size() && records_ == static_cast<int64_t>(snapshot_next_)) {
      return ContentRecord(Op::kRead, nullptr, live_[snapshot_next_++]);
    }
    // 2. The tombstone that follows a delete.
    if (!pending_tombstones_.empty()) {
      GeneratedRecord tombstone;
      tombstone.topic = ContentTopic(options_.envelope);
      tombstone.key = ContentKey(pending_tombstones_.back(), options_.envelope);
      tombstone.ts_ms = NowMs();
      tombstone.op = Op::kTombstone;
      Content row;
      row.id = pending_tombstones_.back();
      tombstone.row = std::move(row);
      pending_tombstones_.pop_back();
      return tombstone;
    }
    // 3. New content whose first events came before its row: publish it now.
    if (unpublished_ && unpublished_events_left_ == 0) {
      Content row = std::move(*unpublished_);
      unpublished_.reset();
      live_.insert(live_.begin() + static_cast<std::ptrdiff_t>(rng_() % (live_.size() + 1)), row);
      RebuildWeights();
      return ContentRecord(Op::kCreate, nullptr, row);
    }
    if (unpublished_) {
      --unpublished_events_left_;
      return Event(*unpublished_);
    }
    std::uniform_real_distribution<double> unit(0, 1);
    if (unit(rng_) >= options_.content_change_share) return Event(live_[PickContent()]);
    // 4. A content change.
    const double kind = unit(rng_);
    if (kind < options_.create_share) {
      Content row = NewContent();
      if (unit(rng_) < options_.early_events_share) {
        unpublished_ = row;
        unpublished_events_left_ = 1 + static_cast<int>(rng_() % 5);
        --unpublished_events_left_;
        return Event(row);
      }
      live_.insert(live_.begin() + static_cast<std::ptrdiff_t>(rng_() % (live_.size() + 1)), row);
      RebuildWeights();
      return ContentRecord(Op::kCreate, nullptr, row);
    }
    const size_t index = rng_() % live_.size();
    if (kind < options_.create_share + options_.delete_share && live_.size() > 1) {
      Content row = live_[index];
      live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(index));
      RebuildWeights();
      pending_tombstones_.push_back(row.id);
      return ContentRecord(Op::kDelete, nullptr, row);
    }
    const Content before = live_[index];
    Content& after = live_[index];
    after.title = before.title + " (updated)";
    if (after.length_seconds) after.length_seconds = *after.length_seconds + 1;
    return ContentRecord(Op::kUpdate, &before, after);
  }();
  if (record.op == Op::kTombstone) record.value.reset();
  ++records_;
  return record;
}

}  // namespace engagement
