// End to end: a fixed dataset of Debezium change events (content creates,
// updates and deletes, events before their content row, null durations,
// zero lengths, malformed envelopes) goes through the real broker (librdkafka's
// mock cluster), the engagement pipeline, a real redis-server and a real
// clickhouse-server; the Redis keys, ClickHouse rows (FINAL), outbox
// (read_committed) and dead letters must equal a reference computed here
// from the dataset alone. Once in-process, once with the pipeline program
// kill -9'ed twice mid-run and restarted from its checkpoints.
//
// After the kills, the outbox holds each event exactly once only where the
// broker hides aborted transactions from read_committed readers, which the
// mock does not: that case skips on it (counted by ctest) and its sibling
// checks the outbox for "nothing lost". WEIR_TEST_KAFKA_BROKERS runs the
// test against a real broker (docs/testing.md).
//
// With --source=postgres: a throwaway PostgreSQL server, engagement-generator
// writing into it while the pipeline captures both tables' changes from it;
// the same reference, computed from the generator's records.
//
// Label: integration (starts servers).

#include <httplib.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engagement_schema_sql.h"
#include "examples/engagement/content_metrics.h"
#include "examples/engagement/generator.h"
#include "examples/engagement/pipeline_app.h"
#include "examples/engagement/tests/generator_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/child_process.h"
#include "tests/support/postgres_server.h"
#include "tests/support/prerequisite.h"
#include "tests/support/wait_for.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "tests/unit/connectors/kafka/topic_reader.h"
#include "tests/unit/connectors/redis/redis_server_fixture.h"

namespace engagement {
namespace {

using weir::kafka::testing::ReadMessage;
using weir::kafka::testing::TestRecord;

constexpr int kContentPartitions = 2;
constexpr int kEventPartitions = 8;
constexpr int kOutPartitions = 16;

// ---------------------------------------------------------------------------
// The dataset and its reference outputs
// ---------------------------------------------------------------------------

struct Dataset {
  std::vector<GeneratedRecord> records;
  // Malformed envelopes: (topic is content?, key, value).
  std::vector<std::pair<bool, std::string>> malformed;
};

Dataset MakeDataset(int records) {
  GeneratorOptions options;
  options.seed = 20261125;
  options.initial_contents = 120;
  options.zipf_exponent = 0.7;  // the mock broker keeps ~5 MiB per partition: spread the keys
  options.content_change_share = 0.02;
  options.delete_share = 0.2;
  options.early_events_share = 0.5;
  options.zero_length_share = 0.05;
  options.null_length_share = 0.05;
  options.null_duration_share = 0.05;
  ChangeGenerator generator(options);
  Dataset data;
  for (int i = 0; i < records; ++i) data.records.push_back(generator.Next());
  // Events the join must dead-letter: for content that never exists, and
  // for content after its deletion.
  auto add_event = [&](const std::string& content_id, int64_t ts_ms) {
    EngagementEvent event{.id = 90'000'000 + static_cast<int64_t>(data.records.size()),
                          .content_id = content_id,
                          .user_id = "5b6f0e0e-0000-4000-8000-0000000000aa",
                          .event_type = "play",
                          .event_ts_ms = ts_ms,
                          .duration_ms = 1500,
                          .device = "web"};
    GeneratedRecord record;
    record.key = EngagementKey(event.id, options.envelope);
    record.value = EngagementChange(weir::debezium::Op::kCreate, nullptr, &event,
                                    SourcePosition{.ts_ms = ts_ms}, options.envelope);
    record.ts_ms = ts_ms;
    record.op = weir::debezium::Op::kCreate;
    record.row = event;
    data.records.push_back(std::move(record));
  };
  const int64_t last_ts = data.records.back().ts_ms;
  add_event("5b6f0e0e-0000-4000-8000-00000000dead", last_ts);
  add_event("5b6f0e0e-0000-4000-8000-00000000beef", last_ts + 1);
  int deleted = 0;
  for (size_t i = 0; i < static_cast<size_t>(records) && deleted < 3; ++i) {
    const GeneratedRecord& r = data.records[i];
    if (r.is_content() && r.op == weir::debezium::Op::kDelete && r.value) {
      add_event(std::get<Content>(r.row).id, r.ts_ms + 10);
      ++deleted;
    }
  }
  data.malformed = {
      {false, R"({"op":"c","after":{"id":1,"content_id":"x")"},  // truncated JSON
      {false,
       R"({"op":"c","source":{"ts_ms":1},"after":{"id":99000001,"content_id":"5b6f0e0e-0000-4000-8000-000000000001","user_id":"5b6f0e0e-0000-4000-8000-000000000002","event_type":"play","event_ts":"2026-11-25T00:00:01Z","duration_ms":"abc","device":"web"}})"},
      {false, "not json at all"},
      {true,
       R"({"op":"c","source":{"ts_ms":1},"after":{"id":"5b6f0e0e-0000-4000-8000-000000000003","slug":"s","title":"t"}})"},
  };
  return data;
}

// The counts and sums the outputs must show for a set of enriched events,
// worked out by the test from the events themselves (not with the
// pipeline's Totals, whose arithmetic is what is under test).
struct ExpectedTotals {
  int64_t events = 0;
  std::map<std::string, int64_t> by_type;  // event_type -> events
  int64_t duration_ms = 0;                 // sum over the events with a duration
  int64_t timed_events = 0;                // events with a duration
  // Sum over the events with an engagement_pct of that percentage in
  // millionths of a percent, each rounded to the nearest (halves away from
  // zero): the documented unit of the pipeline's integer sums.
  int64_t pct_micros = 0;
  int64_t pct_events = 0;  // events with an engagement_pct

  int64_t plays() const { return Of("play"); }
  int64_t pauses() const { return Of("pause"); }
  int64_t finishes() const { return Of("finish"); }
  int64_t clicks() const { return Of("click"); }
  double seconds() const { return static_cast<double>(duration_ms) / 1000.0; }
  double pct_sum() const { return static_cast<double>(pct_micros) / 1e6; }

 private:
  int64_t Of(const std::string& type) const {
    auto it = by_type.find(type);
    return it == by_type.end() ? 0 : it->second;
  }
};

ExpectedTotals TotalsOf(const std::vector<const Enriched*>& events) {
  ExpectedTotals totals;
  totals.events = static_cast<int64_t>(events.size());
  for (const Enriched* e : events) {
    ++totals.by_type[e->event_type];
    if (e->duration_ms.has_value()) {
      totals.duration_ms += *e->duration_ms;
      ++totals.timed_events;
    }
    if (e->engagement_pct.has_value()) {
      totals.pct_micros += std::llround(*e->engagement_pct * 1'000'000);
      ++totals.pct_events;
    }
  }
  return totals;
}

struct Reference {
  std::map<int64_t, Enriched> enriched;  // by event id
  std::set<int64_t> rejected;            // event ids the join dead-letters
  struct PerContent {
    ExpectedTotals totals;
    int64_t last_ts = 0;
    int64_t last_id = 0;
    std::string slug, title, content_type;
  };
  std::map<std::string, PerContent> contents;
  struct PerHour {
    ExpectedTotals totals;
    int64_t last_ts = 0;
    int64_t last_id = 0;
    std::string content_type;
  };
  std::map<std::pair<std::string, int64_t>, PerHour> hours;
};

// Written from the pipeline's documented semantics, not its code: an event
// joins the newest version of its content committed at or before its event
// time, else the oldest version; a deleted version or no version at all
// dead-letters it.
Reference Compute(const Dataset& data) {
  std::map<std::string, std::vector<std::pair<int64_t, std::optional<Content>>>> versions;
  for (const GeneratedRecord& r : data.records) {
    if (!r.is_content() || !r.value) continue;
    const Content& row = std::get<Content>(r.row);
    auto& list = versions[row.id];
    if (r.op == weir::debezium::Op::kDelete) {
      list.push_back({r.ts_ms, std::nullopt});
    } else {
      list.push_back({r.ts_ms, row});
    }
  }
  for (auto& [id, list] : versions) {
    std::stable_sort(list.begin(), list.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  Reference ref;
  for (const GeneratedRecord& r : data.records) {
    if (r.is_content()) continue;
    const EngagementEvent& event = std::get<EngagementEvent>(r.row);
    auto found = versions.find(event.content_id);
    if (found == versions.end()) {
      ref.rejected.insert(event.id);
      continue;
    }
    const std::optional<Content>* version = &found->second.front().second;
    for (const auto& [ts, row] : found->second) {
      if (ts <= event.event_ts_ms) version = &row;
    }
    if (!version->has_value()) {
      ref.rejected.insert(event.id);
      continue;
    }
    Enriched e;
    e.event_id = event.id;
    e.content_id = event.content_id;
    e.user_id = event.user_id;
    e.event_type = event.event_type;
    e.event_ts_ms = event.event_ts_ms;
    e.duration_ms = event.duration_ms;
    e.device = event.device;
    const Content& c = **version;
    if (event.duration_ms) e.engagement_seconds = *event.duration_ms / 1000.0;
    if (e.engagement_seconds && c.length_seconds && *c.length_seconds != 0) {
      e.engagement_pct = *e.engagement_seconds / *c.length_seconds * 100.0;
    }
    e.slug = c.slug;
    e.title = c.title;
    e.content_type = c.content_type;
    e.length_seconds = c.length_seconds;
    e.publish_ts_ms = c.publish_ts_ms;
    ref.enriched[e.event_id] = e;
  }
  std::map<std::string, std::vector<const Enriched*>> per_content;
  std::map<std::pair<std::string, int64_t>, std::vector<const Enriched*>> per_hour;
  for (const auto& [id, e] : ref.enriched) {
    const std::pair<std::string, int64_t> hour = {e.content_id, e.event_ts_ms / kHourMs * kHourMs};
    per_content[e.content_id].push_back(&e);
    per_hour[hour].push_back(&e);
    Reference::PerContent& pc = ref.contents[e.content_id];
    if (std::pair(e.event_ts_ms, e.event_id) >= std::pair(pc.last_ts, pc.last_id)) {
      pc.last_ts = e.event_ts_ms;
      pc.last_id = e.event_id;
      pc.slug = e.slug;
      pc.title = e.title;
      pc.content_type = e.content_type;
    }
    Reference::PerHour& ph = ref.hours[hour];
    if (std::pair(e.event_ts_ms, e.event_id) >= std::pair(ph.last_ts, ph.last_id)) {
      ph.last_ts = e.event_ts_ms;
      ph.last_id = e.event_id;
      ph.content_type = e.content_type;
    }
  }
  for (const auto& [content, events] : per_content) ref.contents[content].totals = TotalsOf(events);
  for (const auto& [hour, events] : per_hour) ref.hours[hour].totals = TotalsOf(events);
  return ref;
}

// ---------------------------------------------------------------------------
// The servers and the run
// ---------------------------------------------------------------------------

std::string JsonField(const std::string& json, const std::string& name) {
  const std::string needle = absl::StrCat("\"", name, "\":");
  size_t at = json.find(needle);
  if (at == std::string::npos) return "";
  at += needle.size();
  size_t end = at;
  if (json[at] == '"') {
    end = json.find('"', at + 1);
    return json.substr(at + 1, end - at - 1);
  }
  while (end < json.size() && json[end] != ',' && json[end] != '}') ++end;
  return json.substr(at, end - at);
}

class PipelineEndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto redis = weir::testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = redis->release();
    // Under ctest, one server for every test of this binary, each in a
    // database of its own (ClickHouseServer::Shared).
    auto clickhouse = weir::testing::ClickHouseServer::Shared();
    ASSERT_TRUE(clickhouse.ok()) << clickhouse.status();
    clickhouse_ = clickhouse->release();
  }
  static void TearDownTestSuite() {
    delete redis_;
    delete clickhouse_;
  }

  void SetUp() override {
    auto broker = weir::kafka::testing::KafkaTestBroker::FromEnvironment();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    auto dir = weir::testing::MakeTempDir("engagement-e2e");
    ASSERT_TRUE(dir.ok());
    dir_ = *dir;
    ASSERT_TRUE(redis_->Query({"FLUSHALL"}).ok());
    database_ = absl::StrCat(
        "e2e_", ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", getpid());
    ASSERT_TRUE(weir::clickhouse::Query(clickhouse_->Connection(),
                                        absl::StrCat("DROP DATABASE IF EXISTS ", database_))
                    .ok());
    ASSERT_TRUE(
        weir::clickhouse::Query(clickhouse_->Connection(), "CREATE DATABASE " + database_).ok());
    config_.brokers = broker_->bootstrap();
    // Topics outlive the run on a real broker: this run's have names of their own.
    config_.topic_prefix =
        broker_->mock() != nullptr
            ? "e2e"
            : absl::StrCat("e2e-", getpid(), "-",
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    config_.bounded = true;
    config_.redis_port = redis_->port();
    config_.clickhouse_url = clickhouse_->url();
    config_.clickhouse_user = weir::testing::ClickHouseServer::kUser;
    config_.clickhouse_password = weir::testing::ClickHouseServer::kPassword;
    config_.clickhouse_database = database_;
    config_.checkpoint_uri = absl::StrCat("file://", dir_, "/checkpoints");
    config_.checkpoint_interval = absl::Milliseconds(300);
    config_.parallelism = 2;
    config_.status_interval = absl::Seconds(1);
    const std::string probe = config_.topic_prefix + ".probe";
    for (const auto& [topic, partitions] :
         {std::pair{ContentTopicName(config_), kContentPartitions},
          {EventsTopicName(config_), kEventPartitions},
          {OutboxTopicName(config_), kOutPartitions},
          {DeadLetterTopicName(config_), 1},
          {probe, 1}}) {
      absl::Status created = broker_->CreateTopic(topic, partitions);
      ASSERT_TRUE(created.ok()) << created;
    }
    auto isolates = weir::kafka::testing::BrokerIsolatesTransactions(broker_->bootstrap(), probe);
    ASSERT_TRUE(isolates.ok()) << isolates.status();
    isolates_ = *isolates;
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    if (!database_.empty()) {
      (void)weir::clickhouse::Query(clickhouse_->Connection(), "DROP DATABASE " + database_);
    }
  }

  // Produces `data` and runs it as three cluster-mode processes, one killed
  // -9 once it committed a checkpoint; the others must finish.
  void RunThreeProcessesKillingOne(const Dataset& data);

  // This test's database in the (shared) server.
  weir::clickhouse::ConnectionOptions Connection() const {
    weir::clickhouse::ConnectionOptions connection = clickhouse_->Connection();
    connection.database = database_;
    return connection;
  }

  enum class Topics { kBoth, kContent, kEvents };
  // Produces the records [begin, end) of the dataset on `topics`; the
  // malformed envelopes of those topics go with the part that starts at
  // record 0, so each is produced once also when the topics are produced
  // separately.
  void Produce(const Dataset& data, size_t begin = 0, size_t end = SIZE_MAX,
               Topics topics = Topics::kBoth) {
    std::vector<TestRecord> content;
    std::vector<TestRecord> events;
    end = std::min(end, data.records.size());
    for (size_t i = begin; i < end; ++i) {
      const GeneratedRecord& r = data.records[i];
      if (topics != Topics::kBoth && r.is_content() != (topics == Topics::kContent)) continue;
      // The broker's clock, as Kafka Connect produces Debezium's records:
      // the data's own time (commit time, event_ts) is ten days older, so an
      // event-time assigner that fell back to the broker timestamp (for a
      // tombstone, which has no source block) would move the content
      // watermark to now and join events with content versions older than
      // the ones committed before them.
      TestRecord record{.key = r.key, .value = r.value, .timestamp_ms = 0};
      (r.is_content() ? content : events).push_back(std::move(record));
    }
    if (begin == 0) {
      for (const auto& [is_content, value] : data.malformed) {
        if (topics != Topics::kBoth && is_content != (topics == Topics::kContent)) continue;
        (is_content ? content : events).push_back(TestRecord{.key = "bad", .value = value});
      }
    }
    ASSERT_TRUE(
        weir::kafka::testing::Produce(broker_->bootstrap(), ContentTopicName(config_), content)
            .ok());
    ASSERT_TRUE(
        weir::kafka::testing::Produce(broker_->bootstrap(), EventsTopicName(config_), events).ok());
  }

  // The sum of the outbox partitions' high watermarks: records written,
  // committed or not, plus transaction markers.
  int64_t OutboxHighWatermarks() {
    int64_t total = 0;
    for (int partition = 0; partition < kOutPartitions; ++partition) {
      auto marks = weir::kafka::testing::QueryWatermarks(broker_->bootstrap(),
                                                         OutboxTopicName(config_), partition);
      if (marks.ok()) total += marks->second;
    }
    return total;
  }

  // The engagement-pipeline program's flags for this test's broker, servers
  // and checkpoints.
  std::vector<std::string> ProgramArgs() const {
    return {ENGAGEMENT_PIPELINE_PATH,
            absl::StrCat("--brokers=", config_.brokers),
            absl::StrCat("--topic-prefix=", config_.topic_prefix),
            absl::StrCat("--redis-port=", config_.redis_port),
            absl::StrCat("--clickhouse-url=", config_.clickhouse_url),
            absl::StrCat("--clickhouse-user=", config_.clickhouse_user),
            absl::StrCat("--clickhouse-password=", config_.clickhouse_password),
            absl::StrCat("--clickhouse-database=", config_.clickhouse_database),
            absl::StrCat("--checkpoint-uri=", config_.checkpoint_uri),
            "--checkpoint-interval=300ms"};
  }

  std::string Query(const std::string& sql) {
    absl::StatusOr<std::string> answer = weir::clickhouse::Query(Connection(), sql);
    EXPECT_TRUE(answer.ok()) << sql << ": " << answer.status();
    return answer.ok() ? *answer : "";
  }

  // Every output against the reference. `exact_outbox`: the outbox holds
  // each enriched event exactly once (else at least once: the mock broker
  // shows aborted transactions to read_committed readers). `restarts`: how
  // often the job was restored from a checkpoint (see ExpectDeadLetters).
  // `exact_redis` false: the Redis totals and the ClickHouse hourly rollup
  // may count an event more than once (cluster mode on the mock, where a task
  // reads records of another's transaction that a kill then aborts, and
  // reads them again when the task is replayed); each counter and sum is
  // then at least the reference. The enriched rows (FINAL) stay exact.
  void ExpectOutputs(const Dataset& data, const Reference& ref, bool exact_outbox, int restarts = 0,
                     bool exact_redis = true) {
    ExpectRedis(ref, exact_redis);
    ExpectClickHouse(ref, /*exact_rollup=*/exact_redis);
    ExpectOutbox(ref, exact_outbox);
    ExpectDeadLetters(data, ref, restarts);
  }

  void ExpectRedis(const Reference& ref, bool exact = true) {
    int checked = 0;
    for (const auto& [id, pc] : ref.contents) {
      auto hash = redis_->Query({"HGETALL", absl::StrCat("content:", id, ":metrics")});
      ASSERT_TRUE(hash.ok()) << hash.status();
      std::map<std::string, std::string> fields;
      for (size_t i = 0; i + 1 < hash->elements.size(); i += 2) {
        fields[hash->elements[i].str] = hash->elements[i + 1].str;
      }
      SCOPED_TRACE(absl::StrCat("content:", id, ":metrics"));
      EXPECT_EQ(fields["slug"], pc.slug);
      EXPECT_EQ(fields["title"], pc.title);
      EXPECT_EQ(fields["content_type"], pc.content_type);
      EXPECT_EQ(fields["last_event_ts_ms"], std::to_string(pc.last_ts));
      if (!exact) {
        auto at_least = [&](const char* field, double reference) {
          double value = -1;
          EXPECT_TRUE(absl::SimpleAtod(fields[field], &value)) << field;
          EXPECT_GE(value, reference - 1e-3) << field;
        };
        at_least("events", pc.totals.events);
        at_least("plays", pc.totals.plays());
        at_least("pauses", pc.totals.pauses());
        at_least("finishes", pc.totals.finishes());
        at_least("clicks", pc.totals.clicks());
        at_least("total_engagement_seconds", pc.totals.seconds());
        ++checked;
        continue;
      }
      EXPECT_EQ(fields["events"], std::to_string(pc.totals.events));
      EXPECT_EQ(fields["plays"], std::to_string(pc.totals.plays()));
      EXPECT_EQ(fields["pauses"], std::to_string(pc.totals.pauses()));
      EXPECT_EQ(fields["finishes"], std::to_string(pc.totals.finishes()));
      EXPECT_EQ(fields["clicks"], std::to_string(pc.totals.clicks()));
      // Exactly: the sums are of integers (duration_ms, engagement_pct in
      // 1e-6 %), so no processing order changes a bit; three decimals.
      auto three = [](double value) { return absl::StrFormat("%.3f", value); };
      EXPECT_EQ(fields["total_engagement_seconds"], three(pc.totals.seconds()));
      EXPECT_EQ(fields["engagement_seconds_10min"], three(pc.totals.seconds()));
      if (pc.totals.timed_events > 0) {
        EXPECT_EQ(fields["avg_engagement_seconds"],
                  three(pc.totals.seconds() / pc.totals.timed_events));
      }
      if (pc.totals.pct_events > 0) {
        EXPECT_EQ(fields["avg_engagement_pct"], three(pc.totals.pct_sum() / pc.totals.pct_events));
      } else {
        EXPECT_EQ(fields["avg_engagement_pct"], "");
      }
      auto ttl = redis_->Query({"PTTL", absl::StrCat("content:", id, ":metrics")});
      ASSERT_TRUE(ttl.ok());
      EXPECT_GT(ttl->integer, 0);
      ++checked;
    }
    EXPECT_GT(checked, 50);
    if (!exact) return;  // the leaderboards' ranks follow the totals
    // Leaderboards: the top 100 by engagement seconds (the dataset spans
    // less than 10 minutes of event time: the window holds everything).
    std::vector<std::string> keys = {kLeaderboardKey};
    for (std::string_view type : kContentTypes) {
      keys.push_back(absl::StrCat(kLeaderboardKey, ":", std::string(type)));
    }
    for (const std::string& key : keys) {
      SCOPED_TRACE(key);
      std::vector<std::pair<double, std::string>> expected;
      for (const auto& [id, pc] : ref.contents) {
        const bool in_key =
            key == kLeaderboardKey || key == absl::StrCat(kLeaderboardKey, ":", pc.content_type);
        if (in_key && pc.totals.seconds() > 0) {
          expected.push_back({pc.totals.seconds(), id});
        }
      }
      std::sort(expected.rbegin(), expected.rend());
      if (expected.size() > 100) expected.resize(100);
      auto top = redis_->Query({"ZREVRANGE", key, "0", "-1", "WITHSCORES"});
      ASSERT_TRUE(top.ok()) << top.status();
      ASSERT_EQ(top->elements.size(), expected.size() * 2);
      for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(top->elements[2 * i].str, expected[i].second) << "rank " << i;
        double score = -1;
        EXPECT_TRUE(absl::SimpleAtod(top->elements[2 * i + 1].str, &score));
        EXPECT_EQ(score, expected[i].first);
      }
      auto ttl = redis_->Query({"PTTL", key});
      ASSERT_TRUE(ttl.ok());
      EXPECT_GT(ttl->integer, 0);
    }
  }

  // Whether every content's hash holds its reference event count and each
  // leaderboard its reference size (ExpectRedis checks everything).
  bool RedisHoldsEveryContent(const Reference& ref) {
    std::map<std::string, size_t> boards;
    for (const auto& [id, pc] : ref.contents) {
      auto events = redis_->Query({"HGET", absl::StrCat("content:", id, ":metrics"), "events"});
      if (!events.ok() || events->str != std::to_string(pc.totals.events)) return false;
      if (pc.totals.seconds() > 0) {
        ++boards[kLeaderboardKey];
        ++boards[absl::StrCat(kLeaderboardKey, ":", pc.content_type)];
      }
    }
    for (const auto& [key, size] : boards) {
      auto members = redis_->Query({"ZCARD", key});
      if (!members.ok() || members->integer != static_cast<int64_t>(std::min<size_t>(size, 100))) {
        return false;
      }
    }
    return true;
  }

  // `exact_rollup` false: the hourly rollup, an aggregate like the Redis
  // totals, may count an event more than once (see ExpectOutputs).
  void ExpectClickHouse(const Reference& ref, bool exact_rollup = true) {
    const std::string rows =
        Query(absl::StrCat("SELECT event_id, content_id, event_type, slug, title, content_type, "
                           "ifNull(toString(round(engagement_pct, 6)), 'null') FROM ",
                           kEnrichedTable, " FINAL ORDER BY event_id FORMAT TSV"));
    std::vector<std::string> lines = absl::StrSplit(rows, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), ref.enriched.size());
    auto it = ref.enriched.begin();
    for (const std::string& line : lines) {
      const Enriched& e = (it++)->second;
      std::vector<std::string> cols = absl::StrSplit(line, '\t');
      ASSERT_EQ(cols.size(), 7u) << line;
      EXPECT_EQ(cols[0], std::to_string(e.event_id));
      EXPECT_EQ(cols[1], e.content_id);
      EXPECT_EQ(cols[2], e.event_type);
      EXPECT_EQ(cols[3], e.slug);
      EXPECT_EQ(cols[4], e.title);
      EXPECT_EQ(cols[5], e.content_type);
      if (e.engagement_pct) {
        double pct = -1;
        EXPECT_TRUE(absl::SimpleAtod(cols[6], &pct)) << line;
        EXPECT_NEAR(pct, *e.engagement_pct, 1e-5) << line;
      } else {
        EXPECT_EQ(cols[6], "null") << line;
      }
    }
    const std::string hourly = Query(absl::StrCat(
        "SELECT content_id, toUInt32(hour), content_type, events, plays, finishes, clicks, "
        "engagement_seconds, pct_events, engagement_pct_sum FROM ",
        kHourlyTable, " FINAL ORDER BY content_id, hour FORMAT TSV"));
    std::vector<std::string> hour_lines = absl::StrSplit(hourly, '\n', absl::SkipEmpty());
    ASSERT_EQ(hour_lines.size(), ref.hours.size());
    auto h = ref.hours.begin();
    for (const std::string& line : hour_lines) {
      const auto& [key, ph] = *h++;
      std::vector<std::string> cols = absl::StrSplit(line, '\t');
      ASSERT_EQ(cols.size(), 10u) << line;
      EXPECT_EQ(cols[0], key.first);
      EXPECT_EQ(cols[1], std::to_string(key.second / 1000));
      EXPECT_EQ(cols[2], ph.content_type);
      if (!exact_rollup) {
        for (auto [col, reference] : {std::pair{3, static_cast<double>(ph.totals.events)},
                                      {4, static_cast<double>(ph.totals.plays())},
                                      {5, static_cast<double>(ph.totals.finishes())},
                                      {6, static_cast<double>(ph.totals.clicks())},
                                      {7, ph.totals.seconds()},
                                      {8, static_cast<double>(ph.totals.pct_events)}}) {
          double value = -1;
          EXPECT_TRUE(absl::SimpleAtod(cols[col], &value)) << line;
          EXPECT_GE(value, reference - 1e-3) << "column " << col << ": " << line;
        }
        continue;
      }
      EXPECT_EQ(cols[3], std::to_string(ph.totals.events));
      EXPECT_EQ(cols[4], std::to_string(ph.totals.plays()));
      EXPECT_EQ(cols[5], std::to_string(ph.totals.finishes()));
      EXPECT_EQ(cols[6], std::to_string(ph.totals.clicks()));
      double seconds = -1;
      EXPECT_TRUE(absl::SimpleAtod(cols[7], &seconds));
      EXPECT_EQ(seconds, ph.totals.seconds()) << line;
      EXPECT_EQ(cols[8], std::to_string(ph.totals.pct_events));
      double pct_sum = -1;
      EXPECT_TRUE(absl::SimpleAtod(cols[9], &pct_sum));
      EXPECT_EQ(pct_sum, ph.totals.pct_sum()) << line;
    }
    // The analytics question, answered from the rollup, equals the one
    // answered from the enriched rows.
    if (exact_rollup) {
      EXPECT_EQ(Query(absl::StrCat(
                    "SELECT content_type, round(sum(engagement_pct_sum) / "
                    "sum(pct_events), 4) FROM ",
                    kHourlyTable, " FINAL GROUP BY content_type ORDER BY content_type FORMAT TSV")),
                Query(absl::StrCat("SELECT content_type, round(avg(engagement_pct), 4) FROM ",
                                   kEnrichedTable,
                                   " FINAL WHERE engagement_pct IS NOT NULL GROUP BY content_type "
                                   "ORDER BY content_type FORMAT TSV")));
    }
  }

  void ExpectOutbox(const Reference& ref, bool exact) {
    // The mock cluster keeps ~5 MiB per partition: the data set must fit.
    for (int partition = 0; partition < kOutPartitions; ++partition) {
      auto marks = weir::kafka::testing::QueryWatermarks(broker_->bootstrap(),
                                                         OutboxTopicName(config_), partition);
      ASSERT_TRUE(marks.ok()) << marks.status();
      ASSERT_EQ(marks->first, 0) << "retention dropped outbox records of partition " << partition
                                 << " (high watermark " << marks->second << ")";
    }
    auto messages = weir::kafka::testing::ReadTopic(broker_->bootstrap(), OutboxTopicName(config_),
                                                    kOutPartitions, /*read_committed=*/true);
    ASSERT_TRUE(messages.ok()) << messages.status();
    std::map<int64_t, int> seen;
    for (const ReadMessage& m : *messages) {
      int64_t id = 0;
      ASSERT_TRUE(absl::SimpleAtoi(JsonField(m.value, "event_id"), &id)) << m.value;
      ++seen[id];
      auto e = ref.enriched.find(id);
      ASSERT_NE(e, ref.enriched.end()) << m.value;
      EXPECT_EQ(m.value, ToJson(e->second));
      EXPECT_EQ(m.key, e->second.content_id);
    }
    EXPECT_EQ(seen.size(), ref.enriched.size());
    if (exact) {
      for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << "event " << id;
    }
  }

  // Dead letters are at least once (kafka_dead_letter.h): a run restored
  // from a checkpoint writes again the letters of the records it reads
  // again, so each restart may add one copy of a letter. They are compared
  // as multisets: each expected letter at least once and at most
  // 1 + `restarts` times, and no other letter; without restarts, exactly
  // once.
  void ExpectDeadLetters(const Dataset& data, const Reference& ref, int restarts) {
    auto messages = weir::kafka::testing::ReadTopic(
        broker_->bootstrap(), DeadLetterTopicName(config_), 1, /*read_committed=*/true);
    ASSERT_TRUE(messages.ok()) << messages.status();
    std::map<int64_t, int> rejected;  // event id -> letters
    std::map<std::string, int> bad;   // malformed payload -> letters
    for (const ReadMessage& m : *messages) {
      std::map<std::string, std::string> headers(m.headers.begin(), m.headers.end());
      EXPECT_FALSE(headers["weir.error"].empty()) << m.value;
      if (headers["weir.stage"] == "content-join") {
        int64_t id = 0;
        ASSERT_TRUE(absl::SimpleAtoi(JsonField(m.value, "id"), &id)) << m.value;
        ++rejected[id];
      } else {
        ++bad[m.value];
      }
    }
    std::map<int64_t, int> expected_rejected;
    for (int64_t id : ref.rejected) expected_rejected[id] = 1;
    std::map<std::string, int> expected_bad;
    for (const auto& [is_content, value] : data.malformed) expected_bad[value] = 1;
    if (restarts == 0) {
      EXPECT_EQ(rejected, expected_rejected);
      EXPECT_EQ(bad, expected_bad);
      return;
    }
    int copies = 0;
    auto expect_within = [&](const auto& seen, const auto& expected, const char* what) {
      std::vector<typename std::decay_t<decltype(seen)>::key_type> seen_keys, expected_keys;
      for (const auto& [key, count] : seen) {
        seen_keys.push_back(key);
        EXPECT_LE(count, 1 + restarts) << what << " " << key;
        if (count > 1) std::printf("%s %s: %d letters\n", what, absl::StrCat(key).c_str(), count);
        copies += count - 1;
      }
      for (const auto& [key, count] : expected) expected_keys.push_back(key);
      EXPECT_EQ(seen_keys, expected_keys) << what;
    };
    expect_within(rejected, expected_rejected, "rejected event");
    expect_within(bad, expected_bad, "malformed envelope");
    std::printf("dead letters: %d written again after the %d restarts\n", copies, restarts);
  }

  // The running program serves weir's endpoint (--http-port=0: the port
  // is in its log): ready, the join's counters in /metrics, the graph.
  void ExpectDashboard(const std::string& log) {
    const std::string marker = "dashboard at http://127.0.0.1:";
    const size_t at = log.find(marker);
    ASSERT_NE(at, std::string::npos) << log;
    int port = 0;
    const size_t begin = at + marker.size();
    ASSERT_TRUE(absl::SimpleAtoi(log.substr(begin, log.find('/', begin) - begin), &port)) << log;
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(5, 0);
    httplib::Result ready = client.Get("/readyz");
    ASSERT_TRUE(ready) << httplib::to_string(ready.error());
    EXPECT_EQ(ready->status, 200) << ready->body;
    httplib::Result metrics = client.Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_THAT(metrics->body, ::testing::HasSubstr("operator=\"content-join\""));
    EXPECT_THAT(metrics->body, ::testing::HasSubstr("weir_checkpoints_completed_total"));
    httplib::Result job = client.Get("/api/v1/job");
    ASSERT_TRUE(job);
    for (const char* op : {"event-source", "content-source", "content-join", "content-metrics",
                           "kafka-outbox", "redis-leaderboards", "clickhouse-enriched"}) {
      EXPECT_THAT(job->body, ::testing::HasSubstr(absl::StrCat("\"", op, "\""))) << op;
    }
  }

  // Runs the pipeline program over `data`, kill -9'ed twice mid-run, then
  // restarted bounded to the end (see KilledTwiceMidRun...).
  void KillTwiceThenFinish(const Dataset& data);

  static weir::testing::RedisServer* redis_;
  static weir::testing::ClickHouseServer* clickhouse_;
  std::unique_ptr<weir::kafka::testing::KafkaTestBroker> broker_;
  std::string dir_;
  std::string database_;  // this test's ClickHouse database
  PipelineConfig config_;
  bool isolates_ = false;
};

weir::testing::RedisServer* PipelineEndToEndTest::redis_ = nullptr;
weir::testing::ClickHouseServer* PipelineEndToEndTest::clickhouse_ = nullptr;

TEST_F(PipelineEndToEndTest, OutputsEqualTheReference) {
  const Dataset data = MakeDataset(12'000);
  const Reference ref = Compute(data);
  ASSERT_GT(ref.rejected.size(), 0u) << "the dataset should exercise dead letters";
  Produce(data);
  std::atomic<bool> stop{false};
  absl::Status status = RunPipeline(config_, stop);
  ASSERT_TRUE(status.ok()) << status;
  ExpectOutputs(data, ref, /*exact_outbox=*/true);
}

// A live (unbounded) run over the same data, whose event times are ten
// days old while the broker's timestamps are now: a backfill. Its sources
// go idle once they caught up, the content side's watermark is the data's
// (tombstones carry no event time), and the join's output watermark stays
// with the events it still has to emit; so the real-time outputs show the
// data's own last ten minutes, equal to the bounded run's, instead of a
// window emptied by a watermark that ran to the wall clock.
TEST_F(PipelineEndToEndTest, LiveRunOverOldDataEqualsTheReference) {
  const Dataset data = MakeDataset(12'000);
  const Reference ref = Compute(data);
  Produce(data);
  config_.bounded = false;
  std::atomic<bool> stop{false};
  absl::Status status;
  std::thread run([&] { status = RunPipeline(config_, stop); });
  // Until every enriched row is in ClickHouse.
  const std::string count_sql =
      absl::StrCat("SELECT count() FROM ", kEnrichedTable, " FINAL FORMAT TSV");
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  std::string count;
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> answer = weir::clickhouse::Query(Connection(), count_sql);
    if (answer.ok()) count = std::string(absl::StripAsciiWhitespace(*answer));
    if (count == std::to_string(ref.enriched.size())) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  // The content table keeps changing while no events arrive: rows that no
  // event refers to are created and deleted (each delete followed by its
  // tombstone), committed two hours after the last event. The join's
  // output must stay at the events' time all along.
  int64_t last_ts = 0;
  for (const GeneratedRecord& r : data.records) last_ts = std::max(last_ts, r.ts_ms);
  const EnvelopeOptions envelope;
  for (int i = 0; i < 30; ++i) {
    Content row{.id = absl::StrFormat("5b6f0e0e-0000-4000-8000-0000000f%04d", i),
                .slug = absl::StrCat("later-", i),
                .title = "Later",
                .content_type = "video",
                .length_seconds = 60,
                .publish_ts_ms = last_ts};
    const int64_t commit = last_ts + 2 * kHourMs + i * 1000;
    const std::string key = ContentKey(row.id, envelope);
    std::vector<TestRecord> changes = {
        {.key = key,
         .value = ContentChange(weir::debezium::Op::kCreate, nullptr, &row,
                                SourcePosition{.ts_ms = commit}, envelope)},
        {.key = key,
         .value = ContentChange(weir::debezium::Op::kDelete, &row, nullptr,
                                SourcePosition{.ts_ms = commit + 1}, envelope)},
        {.key = key, .value = std::nullopt}};
    ASSERT_TRUE(
        weir::kafka::testing::Produce(broker_->bootstrap(), ContentTopicName(config_), changes)
            .ok());
    absl::SleepFor(absl::Milliseconds(100));
  }
  absl::SleepFor(absl::Seconds(1));
  stop = true;
  run.join();
  ASSERT_EQ(count, std::to_string(ref.enriched.size())) << "the live run never caught up";
  ASSERT_TRUE(status.ok()) << status;
  ExpectOutputs(data, ref, /*exact_outbox=*/true);
}

// Redis killed and restarted empty (no persistence) while a live run is
// caught up and quiet: no content gets another event, yet within a bounded
// time every hash and leaderboard is back, equal to the reference. The
// Redis sinks' heartbeats find their fences gone, and the content metrics
// replay every content's current update from keyed state.
TEST_F(PipelineEndToEndTest, RedisRestartedEmptyIsRewrittenFromKeyedState) {
  const Dataset data = MakeDataset(12'000);
  const Reference ref = Compute(data);
  Produce(data);
  config_.bounded = false;
  std::atomic<bool> stop{false};
  absl::Status status;
  std::thread run([&] { status = RunPipeline(config_, stop); });
  const std::string count_sql =
      absl::StrCat("SELECT count() FROM ", kEnrichedTable, " FINAL FORMAT TSV");
  absl::Time deadline = absl::Now() + absl::Seconds(120);
  bool caught_up = false;
  while (!caught_up && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    absl::StatusOr<std::string> count = weir::clickhouse::Query(Connection(), count_sql);
    caught_up = count.ok() &&
                absl::StripAsciiWhitespace(*count) == std::to_string(ref.enriched.size()) &&
                RedisHoldsEveryContent(ref);
  }
  bool repaired = false;
  absl::Duration took;
  if (caught_up) {
    redis_->Kill();
    const absl::Time restarted = absl::Now();
    ASSERT_TRUE(redis_->Restart().ok());  // without persistence: empty
    deadline = absl::Now() + absl::Seconds(30);
    while (!repaired && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      repaired = RedisHoldsEveryContent(ref);
    }
    took = absl::Now() - restarted;
  }
  stop = true;
  run.join();
  ASSERT_TRUE(caught_up) << "the live run never caught up";
  ASSERT_TRUE(repaired) << "Redis was not rewritten within 30 s of its restart";
  std::printf("Redis rewritten %s after its restart\n", absl::FormatDuration(took).c_str());
  ASSERT_TRUE(status.ok()) << status;
  ExpectRedis(ref);
}

// The same with keyed state in RocksDB (--state-dir): the join's waiting
// events and the metrics' state go through the write-back cache and RocksDB.
TEST_F(PipelineEndToEndTest, OutputsEqualTheReferenceWithRocksDbState) {
  const Dataset data = MakeDataset(12'000);
  const Reference ref = Compute(data);
  Produce(data);
  config_.state_dir = dir_ + "/state";
  std::atomic<bool> stop{false};
  absl::Status status = RunPipeline(config_, stop);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_FALSE(std::filesystem::is_empty(config_.state_dir)) << "no RocksDB state was written";
  ExpectOutputs(data, ref, /*exact_outbox=*/true);
}

// RunPipeline on a thread until Stop() or the end of the scope (so that an
// assertion returning early still stops it).
class PipelineThread {
 public:
  explicit PipelineThread(PipelineConfig config)
      : thread_([this, config = std::move(config)] { status_ = RunPipeline(config, stop_); }) {}
  ~PipelineThread() { (void)Stop(); }
  PipelineThread(const PipelineThread&) = delete;
  PipelineThread& operator=(const PipelineThread&) = delete;

  // Stops the pipeline and returns how it ended.
  absl::Status Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return status_;
  }

 private:
  std::atomic<bool> stop_{false};
  absl::Status status_;
  std::thread thread_;
};

// Straight from PostgreSQL: the generator inserts, updates and deletes rows
// in a real server while the pipeline (--source=postgres) streams both
// tables' changes from their replication slots. Content versions carry the
// server's commit times, later than every event time the generator chose
// (its --start-time is fixed in the past), so each event joins the first
// version of its content; changes of a row within one commit millisecond
// are one version, the last. The reference is Compute() over the
// generator's records with each content change given its commit's time,
// read from a third slot (test_decoding) that saw the same transactions.
TEST_F(PipelineEndToEndTest, FromPostgresOutputsEqualTheReference) {
  absl::StatusOr<std::unique_ptr<weir::testing::PostgresServer>> server =
      weir::testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(server.status())) {
    WEIR_MISSING_PREREQUISITE(server.status().message());
  }
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string conninfo = (*server)->conninfo();
  // The first column of every row (empty on an error, which fails the test).
  auto rows = [&conninfo](const std::string& sql) {
    std::vector<std::string> values;
    PGconn* conn = PQconnectdb(conninfo.c_str());
    PGresult* result = PQexec(conn, sql.c_str());
    EXPECT_EQ(PQresultStatus(result), PGRES_TUPLES_OK) << sql << ": " << PQerrorMessage(conn);
    for (int row = 0; row < PQntuples(result); ++row) values.push_back(PQgetvalue(result, row, 0));
    PQclear(result);
    PQfinish(conn);
    return values;
  };
  auto exec = [&conninfo](const std::string& sql) {
    PGconn* conn = PQconnectdb(conninfo.c_str());
    std::string error;
    if (PQstatus(conn) != CONNECTION_OK) {
      error = PQerrorMessage(conn);
    } else {
      PGresult* result = PQexec(conn, sql.c_str());
      if (PQresultStatus(result) != PGRES_COMMAND_OK && PQresultStatus(result) != PGRES_TUPLES_OK)
        error = PQresultErrorMessage(result);
      else if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0)
        error = absl::StrCat("=", PQgetvalue(result, 0, 0));
      PQclear(result);
    }
    PQfinish(conn);
    return error;
  };
  ASSERT_EQ(exec(kEngagementSchemaSql), "");

  config_.source = ChangeSource::kPostgres;
  config_.postgres = conninfo;
  config_.bounded = false;
  PipelineThread pipeline(config_);
  // The generator writes once both slots exist (then every change is streamed).
  const absl::Time slots_deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < slots_deadline &&
         exec("SELECT count(*) FROM pg_replication_slots") != "=2") {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(exec("SELECT count(*) FROM pg_replication_slots"), "=2");
  ASSERT_THAT(exec("SELECT pg_create_logical_replication_slot('observer', 'test_decoding')"),
              ::testing::StartsWith("="));

  const std::vector<std::string> args = {"--no-kafka", absl::StrCat("--postgres=", conninfo),
                                         // A transaction per record, so that two
                                         // changes of a row share a commit
                                         // millisecond only by rare chance.
                                         "--postgres-batch=1", "--rate=4000/s", "--total=8000",
                                         "--seed=20261207", "--start-time=2026-11-25T00:00:00Z",
                                         "--initial-contents=100", "--zipf-exponent=0.7",
                                         "--content-change-share=0.02"};
  const testing::GeneratorRun generated = testing::RunGeneratorProgram(args);
  ASSERT_EQ(generated.exit_code, 0) << generated.log;

  Dataset data;
  data.records = testing::ExpectedRecords(args, {});
  ASSERT_EQ(data.records.size(), 8000u);
  // The commit (to the millisecond, as the source's ts_ms) of each content
  // change, in commit order: "COMMIT (at 2026-12-07 02:50:01.123456+00)".
  std::vector<std::string> commit_of_change;
  int in_transaction = 0;
  // Decoding reads flushed WAL only, and the server commits asynchronously
  // (synchronous_commit=off): read until every change is there.
  size_t content_changes = 0;
  for (const GeneratedRecord& r : data.records) content_changes += r.is_content() && r.value;
  std::vector<std::string> observed;
  for (int attempt = 0; attempt < 100; ++attempt) {
    for (std::string& line :
         rows("SELECT data FROM pg_logical_slot_get_changes('observer', NULL, NULL, "
              "'include-timestamp', 'on', 'include-xids', 'off')")) {
      observed.push_back(std::move(line));
    }
    const size_t seen = std::count_if(observed.begin(), observed.end(), [](const std::string& l) {
      return l.starts_with("table public.content:");
    });
    if (seen >= content_changes) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  for (const std::string& line : observed) {
    if (line.starts_with("table public.content:")) ++in_transaction;
    if (!line.starts_with("COMMIT")) continue;
    const size_t at = line.find("(at ");
    ASSERT_NE(at, std::string::npos) << line;
    const std::string seconds = line.substr(at + 4, 19);
    std::string fraction;
    for (size_t i = at + 4 + 19 + 1; line[at + 4 + 19] == '.' && i < line.size(); ++i) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(line[i]))) break;
      fraction += line[i];
    }
    fraction = (fraction + "000").substr(0, 3);
    for (; in_transaction > 0; --in_transaction) commit_of_change.push_back(seconds + fraction);
  }
  int64_t last_ts = 0;
  for (const GeneratedRecord& r : data.records) last_ts = std::max(last_ts, r.ts_ms);
  std::map<std::string, int64_t> commit_ts;  // commit millisecond -> a time after every event
  size_t change = 0;
  std::map<std::pair<std::string, int64_t>, GeneratedRecord*> last_of_commit;
  std::map<std::string, int64_t> first_commit;  // content id -> its first commit
  int deletes = 0;
  int updates = 0;
  for (GeneratedRecord& r : data.records) {
    if (!r.is_content() || !r.value) continue;
    ASSERT_LT(change, commit_of_change.size()) << "a content change was not captured";
    const std::string& commit = commit_of_change[change++];
    auto [it, added] =
        commit_ts.emplace(commit, last_ts + kHourMs + static_cast<int64_t>(commit_ts.size()));
    r.ts_ms = it->second;
    // An earlier change of the row in the same commit millisecond is not a version.
    const std::string& id = std::get<Content>(r.row).id;
    GeneratedRecord*& last = last_of_commit[{id, r.ts_ms}];
    if (last != nullptr) {
      last->value.reset();
      // The row's first version replaced within its commit millisecond: an
      // event the join took before the replacement arrived joined the
      // replaced version, which the reference cannot tell.
      ASSERT_NE(first_commit[id], r.ts_ms) << "content " << id << " changed twice in its first "
                                           << "commit millisecond: run the test again";
    }
    first_commit.emplace(id, r.ts_ms);
    last = &r;
    deletes += r.op == weir::debezium::Op::kDelete;
    updates += r.op == weir::debezium::Op::kUpdate;
  }
  ASSERT_EQ(change, commit_of_change.size());
  std::map<std::string, int> versions;
  for (const GeneratedRecord& r : data.records) {
    if (r.is_content() && r.value) ++versions[std::get<Content>(r.row).id];
  }
  ASSERT_GT(deletes, 0) << "the data should delete content";
  ASSERT_GT(updates, 0) << "the data should update content";
  for (const auto& [id, count] : versions) {
    // The join keeps a row's last 8 versions: the first must still be there.
    ASSERT_LE(count, 8) << id;
  }
  const Reference ref = Compute(data);
  ASSERT_GT(ref.enriched.size(), 7000u);

  const std::string count_sql =
      absl::StrCat("SELECT count() FROM ", kEnrichedTable, " FINAL FORMAT TSV");
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  std::string count;
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> answer = weir::clickhouse::Query(Connection(), count_sql);
    if (answer.ok()) count = std::string(absl::StripAsciiWhitespace(*answer));
    if (count == std::to_string(ref.enriched.size()) && RedisHoldsEveryContent(ref)) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  absl::SleepFor(absl::Seconds(1));
  const absl::Status status = pipeline.Stop();
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(count, std::to_string(ref.enriched.size())) << "the pipeline never caught up";
  ExpectOutputs(data, ref, /*exact_outbox=*/true);
}

// --source=postgres with a row that does not map (an event at 'infinity',
// which PostgreSQL stores and no epoch time holds): it goes to <prefix>.dlq
// with the Kafka path's headers and the row's position in the slot, and the
// other events reach every output.
TEST_F(PipelineEndToEndTest, FromPostgresARowThatDoesNotMapGoesToTheDeadLetterTopic) {
  absl::StatusOr<std::unique_ptr<weir::testing::PostgresServer>> server =
      weir::testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(server.status())) {
    WEIR_MISSING_PREREQUISITE(server.status().message());
  }
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string conninfo = (*server)->conninfo();
  // The first column of the first row ("" without one); an error fails the test.
  auto sql = [&conninfo](const std::string& text) {
    PGconn* conn = PQconnectdb(conninfo.c_str());
    PGresult* result = PQexec(conn, text.c_str());
    const ExecStatusType status = PQresultStatus(result);
    EXPECT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        << text << ": " << PQerrorMessage(conn);
    std::string value;
    if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) value = PQgetvalue(result, 0, 0);
    PQclear(result);
    PQfinish(conn);
    return value;
  };
  sql(kEngagementSchemaSql);
  const std::string content_id = "5b6f0e0e-0000-4000-8000-000000000001";
  const std::string user_id = "5b6f0e0e-0000-4000-8000-0000000000aa";
  auto event = [&](int64_t id, const std::string& ts) {
    return absl::StrCat("INSERT INTO engagement_events VALUES (", id, ", '", content_id, "', '",
                        user_id, "', 'play', '", ts, "', 2000, 'web', NULL)");
  };
  // Read by the initial snapshot: the content row and a first event.
  sql(absl::StrCat("INSERT INTO content VALUES ('", content_id,
                   "', 'a-slug', 'A title', 'podcast', 100, '2026-11-25T00:00:00Z')"));
  sql(event(1, "2026-11-25T00:00:01Z"));

  config_.source = ChangeSource::kPostgres;
  config_.postgres = conninfo;
  config_.bounded = false;
  PipelineThread pipeline(config_);
  const absl::Time slots_deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < slots_deadline && sql("SELECT count(*) FROM pg_replication_slots") != "2") {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(sql("SELECT count(*) FROM pg_replication_slots"), "2");
  // Streamed: good events around the one that does not map.
  sql(event(2, "2026-11-25T00:00:02Z"));
  const std::string lsn_before = sql("SELECT pg_current_wal_insert_lsn()");
  sql(event(3, "infinity"));
  const std::string lsn_after = sql("SELECT pg_current_wal_insert_lsn()");
  const std::string bad_txid =
      sql("SELECT xmin FROM engagement_events WHERE id = 3");  // its transaction
  sql(event(4, "2026-11-25T00:00:04Z"));

  const std::string count_sql =
      absl::StrCat("SELECT count() FROM ", kEnrichedTable, " FINAL FORMAT TSV");
  std::vector<ReadMessage> letters;
  std::string count;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> answer = weir::clickhouse::Query(Connection(), count_sql);
    if (answer.ok()) count = std::string(absl::StripAsciiWhitespace(*answer));
    auto messages = weir::kafka::testing::ReadTopic(
        broker_->bootstrap(), DeadLetterTopicName(config_), 1, /*read_committed=*/true);
    if (messages.ok()) letters = *messages;
    auto events =
        redis_->Query({"HGET", absl::StrCat("content:", content_id, ":metrics"), "events"});
    if (count == "3" && !letters.empty() && events.ok() && events->str == "3") break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  absl::SleepFor(absl::Seconds(1));  // anything more would show up now
  const absl::Status status = pipeline.Stop();
  ASSERT_TRUE(status.ok()) << status;

  EXPECT_EQ(count, "3");
  EXPECT_EQ(Query(absl::StrCat("SELECT groupArray(event_id) FROM (SELECT event_id FROM ",
                               kEnrichedTable, " FINAL ORDER BY event_id) FORMAT TSV")),
            "[1,2,4]\n");
  auto events = redis_->Query({"HGET", absl::StrCat("content:", content_id, ":metrics"), "events"});
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->str, "3");
  auto outbox = weir::kafka::testing::ReadTopic(broker_->bootstrap(), OutboxTopicName(config_),
                                                kOutPartitions, /*read_committed=*/true);
  ASSERT_TRUE(outbox.ok()) << outbox.status();
  std::set<std::string> outbox_ids;
  for (const ReadMessage& m : *outbox) outbox_ids.insert(JsonField(m.value, "event_id"));
  EXPECT_EQ(outbox_ids, (std::set<std::string>{"1", "2", "4"}));
  EXPECT_EQ(outbox->size(), 3u);

  auto messages =
      weir::kafka::testing::ReadTopic(broker_->bootstrap(), DeadLetterTopicName(config_), 1, true);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), 1u);
  const ReadMessage& letter = (*messages)[0];
  std::map<std::string, std::string> headers(letter.headers.begin(), letter.headers.end());
  EXPECT_THAT(headers["weir.error"], ::testing::HasSubstr("\"event_ts\""));
  EXPECT_THAT(headers["weir.error"], ::testing::HasSubstr("public.engagement_events"));
  EXPECT_THAT(headers["weir.error"], ::testing::HasSubstr("infinity"));
  EXPECT_EQ(headers["weir.error.code"], "INVALID_ARGUMENT");
  EXPECT_EQ(headers["weir.stage"], "postgres-source");
  EXPECT_EQ(headers["weir.source.topic"], EventsTopicName(config_));
  EXPECT_FALSE(headers["weir.source.timestamp"].empty());
  EXPECT_EQ(headers["weir.source.slot"], config_.postgres_slot + "_events");
  EXPECT_EQ(headers["weir.source.table"], "public.engagement_events");
  EXPECT_EQ(headers["weir.source.txid"], bad_txid);
  EXPECT_EQ(sql(absl::StrCat("SELECT '", headers["weir.source.lsn"], "'::pg_lsn BETWEEN '",
                             lsn_before, "'::pg_lsn AND '", lsn_after, "'::pg_lsn")),
            "t")
      << headers["weir.source.lsn"];
  EXPECT_EQ(letter.key, "{\"id\":\"3\"}");
  EXPECT_THAT(letter.value, ::testing::HasSubstr("\"event_ts\":\"infinity\""));
  EXPECT_THAT(letter.value, ::testing::HasSubstr("\"op\":\"c\""));
}

// Killed twice, every output equals the reference; the outbox holds every
// event at least once (the records of the transactions the kills left open
// are aborted, and visible where the broker does not isolate transactions).
TEST_F(PipelineEndToEndTest, KilledTwiceMidRunStillEqualsTheReference) {
  const Dataset data = MakeDataset(24'000);
  KillTwiceThenFinish(data);
  ExpectOutputs(data, Compute(data), /*exact_outbox=*/false, /*restarts=*/2);
}

// And where the broker isolates transactions, the outbox holds each event
// exactly once.
TEST_F(PipelineEndToEndTest, KilledTwiceMidRunWritesTheOutboxExactlyOnce) {
  if (!isolates_) GTEST_SKIP() << weir::kafka::testing::kNeedsTransactionIsolation;
  const Dataset data = MakeDataset(24'000);
  KillTwiceThenFinish(data);
  ExpectOutputs(data, Compute(data), /*exact_outbox=*/true, /*restarts=*/2);
}

// Cluster mode: three processes of one job share its three tasks through
// the broker (repartition topics for the KeyBys and the Broadcast, the
// checkpoint records, the lease group), one of them is killed -9 once it has
// committed a checkpoint, and the two others finish its tasks from there.
void PipelineEndToEndTest::RunThreeProcessesKillingOne(const Dataset& data) {
  Produce(data);
  const std::string job = config_.topic_prefix + "-cluster";
  constexpr int kTasks = 3;
  if (broker_->mock() != nullptr) {
    // The mock has no CreateTopics: the job's own topics beforehand.
    PipelineConfig cluster = config_;
    cluster.cluster_job_id = job;
    cluster.cluster_tasks = kTasks;
    absl::StatusOr<std::vector<std::pair<std::string, int>>> topics = ClusterTopicsFor(cluster);
    ASSERT_TRUE(topics.ok()) << topics.status();
    ASSERT_EQ(topics->size(), 5u) << "leases, checkpoints, 2 KeyBys and a Broadcast";
    for (const auto& [topic, partitions] : *topics) {
      ASSERT_TRUE(broker_->CreateTopic(topic, partitions).ok()) << topic;
    }
  }
  std::vector<std::string> argv = ProgramArgs();
  for (std::string flag :
       {absl::StrCat("--cluster-job-id=", job), absl::StrCat("--cluster-tasks=", kTasks),
        std::string("--cluster-session-timeout=6s"), std::string("--status-interval=200ms"),
        std::string("--bounded")}) {
    argv.push_back(std::move(flag));
  }
  std::vector<std::unique_ptr<weir::testing::ChildProcess>> processes;
  std::vector<std::string> logs;
  for (int idx = 0; idx < 3; ++idx) {
    logs.push_back(absl::StrCat(dir_, "/cluster-", idx, ".log"));
    auto child = weir::testing::ChildProcess::Spawn(argv, {.log_path = logs.back()});
    ASSERT_TRUE(child.ok()) << child.status();
    processes.push_back(*std::move(child));
  }
  // Process 0 runs a task and has committed one of its checkpoints: kill -9.
  ASSERT_TRUE(weir::testing::WaitFor(
      [&] {
        const std::string text = weir::testing::ReadFileOrEmpty(logs[0]);
        bool committed = false;
        for (size_t at = text.find("last checkpoint "); at != std::string::npos;
             at = text.find("last checkpoint ", at + 1)) {
          const char next = at + 16 < text.size() ? text[at + 16] : '0';
          committed |= next >= '1' && next <= '9';
        }
        return (committed && text.find("took task(s)") != std::string::npos) ||
               !processes[0]->Running();
      },
      absl::Seconds(120)))
      << weir::testing::ReadFileOrEmpty(logs[0]);
  ASSERT_TRUE(processes[0]->Running()) << "process 0 ended before it could be killed:\n"
                                       << weir::testing::ReadFileOrEmpty(logs[0]);
  processes[0]->Kill();
  const absl::Time deadline = absl::Now() + absl::Seconds(300);
  for (int idx = 1; idx < 3; ++idx) {
    while (processes[idx]->Running() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_FALSE(processes[idx]->Running()) << weir::testing::ReadFileOrEmpty(logs[idx]);
    EXPECT_EQ(processes[idx]->exit_status(), 0) << weir::testing::ReadFileOrEmpty(logs[idx]);
  }
}

// ClickHouse (FINAL) and the dead letters equal the same reference as a
// local run; the outbox holds every event, and Redis counts every event:
// exactly once where the broker hides aborted transactions, at least once
// on the mock, which does not (the next test is the exact check).
TEST_F(PipelineEndToEndTest, ThreeProcessesInClusterModeOneKilledEqualTheReference) {
  const Dataset data = MakeDataset(12'000);
  RunThreeProcessesKillingOne(data);
  ExpectOutputs(data, Compute(data), /*exact_outbox=*/isolates_, /*restarts=*/1,
                /*exact_redis=*/isolates_);
}

// The same run where the broker isolates transactions: Redis and the outbox
// exactly once.
TEST_F(PipelineEndToEndTest, ThreeProcessesInClusterModeOneKilledKeepRedisExact) {
  if (!isolates_) GTEST_SKIP() << weir::kafka::testing::kNeedsTransactionIsolation;
  const Dataset data = MakeDataset(12'000);
  RunThreeProcessesKillingOne(data);
  ExpectOutputs(data, Compute(data), /*exact_outbox=*/true, /*restarts=*/1, /*exact_redis=*/true);
}

void PipelineEndToEndTest::KillTwiceThenFinish(const Dataset& data) {
  // The events go in three parts. The first two runs are unbounded, so
  // they cannot finish before they are killed however fast the machine is;
  // each is killed while the next part is being produced, after it
  // completed a checkpoint of its own. The third run is bounded and reads
  // to the end.
  //
  // Every content change goes first, with the first part: a content topic
  // that has caught up is idle and does not hold the join's watermark back
  // (see content_join.h), so content produced while the pipeline runs could
  // reach the join after events that postdate it, and the result would
  // depend on timing. Read up front, the join keeps each row's last 8
  // versions, which is all of them in this dataset:
  std::map<std::string, int> versions;
  for (const GeneratedRecord& r : data.records) {
    if (r.is_content() && r.value) {
      ASSERT_LE(++versions[std::get<Content>(r.row).id], 8) << "more versions than the join keeps";
    }
  }
  const size_t part = data.records.size() / 3;
  Produce(data, 0, SIZE_MAX, Topics::kContent);
  Produce(data, 0, part, Topics::kEvents);
  std::vector<std::string> argv = ProgramArgs();
  for (const char* flag : {"--parallelism=2", "--status-interval=200ms", "--http-port=0"}) {
    argv.push_back(flag);
  }
  const std::string log = dir_ + "/pipeline.log";
  // The checkpoint ids in this run's status lines, and the id it restored.
  auto checkpoints_in = [](const std::string& text) {
    std::vector<int64_t> ids;
    for (const char* marker : {"from checkpoint ", "last checkpoint "}) {
      for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + 1)) {
        int64_t id = 0;
        const size_t begin = at + std::strlen(marker);
        const size_t end = text.find_first_not_of("0123456789", begin);
        if (absl::SimpleAtoi(text.substr(begin, end - begin), &id)) ids.push_back(id);
      }
    }
    return ids;
  };
  for (int kill = 0; kill < 2; ++kill) {
    const size_t log_start = weir::testing::ReadFileOrEmpty(log).size();
    auto child = weir::testing::ChildProcess::Spawn(argv, {.log_path = log});
    ASSERT_TRUE(child.ok()) << child.status();
    // Until this run completed a checkpoint beyond the one it restored.
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    int64_t restored = -1;
    bool checkpointed = false;
    while (!checkpointed && (*child)->Running() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      const std::string text = weir::testing::ReadFileOrEmpty(log).substr(log_start);
      const size_t running = text.find("running (");
      if (restored < 0 && running != std::string::npos) {
        // A restore is logged before the run starts.
        const std::vector<int64_t> before = checkpoints_in(text.substr(0, running));
        restored = before.empty() ? 0 : before.front();
      }
      if (restored < 0) continue;
      for (int64_t id : checkpoints_in(text)) checkpointed |= id > restored;
    }
    ASSERT_TRUE(checkpointed) << "no checkpoint completed; log:\n"
                              << weir::testing::ReadFileOrEmpty(log);
    // The status line's first lag (records not yet read) comes down to 0
    // once this run has read everything produced so far.
    bool read_all = false;
    while (!read_all && (*child)->Running() && absl::Now() < deadline) {
      read_all = weir::testing::ReadFileOrEmpty(log).substr(log_start).find("lag 0 unread / ") !=
                 std::string::npos;
      if (!read_all) absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_TRUE(read_all) << "no status line with nothing left to read; log:\n"
                          << weir::testing::ReadFileOrEmpty(log);
    if (kill == 0) ExpectDashboard(weir::testing::ReadFileOrEmpty(log).substr(log_start));
    // The next part arrives while this run is reading, and the kill lands
    // once the run has written outbox records of it: it is then in the
    // middle of the part's 8000 events, with work after its last
    // checkpoint (records of an open transaction at least). More than a
    // commit's markers (one per partition) over what was there before.
    const int64_t outbox_before = OutboxHighWatermarks();
    Produce(data, part * (kill + 1), kill == 0 ? part * 2 : SIZE_MAX, Topics::kEvents);
    ASSERT_TRUE(weir::testing::WaitFor([&] {
      return OutboxHighWatermarks() > outbox_before + 4 * kOutPartitions || !(*child)->Running();
    })) << "the run wrote nothing of the new part";
    ASSERT_TRUE((*child)->Running()) << "the pipeline stopped by itself; log:\n"
                                     << weir::testing::ReadFileOrEmpty(log);
    (*child)->Kill();
  }
  argv.push_back("--bounded");
  auto child = weir::testing::ChildProcess::Spawn(argv, {.log_path = log});
  ASSERT_TRUE(child.ok()) << child.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(240);
  while ((*child)->Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_FALSE((*child)->Running()) << weir::testing::ReadFileOrEmpty(log);
  ASSERT_EQ((*child)->exit_status(), 0) << weir::testing::ReadFileOrEmpty(log);
  const std::string text = weir::testing::ReadFileOrEmpty(log);
  // Both restarts restored a checkpoint (the log says so).
  size_t restores = 0;
  for (size_t at = text.find("restoring job"); at != std::string::npos;
       at = text.find("restoring job", at + 1)) {
    ++restores;
  }
  EXPECT_EQ(restores, 2u) << text;
  const Reference ref = Compute(data);
  // The kills landed with work after the last checkpoint, which the
  // restored runs did again: the outbox, read uncommitted (aborted
  // transactions included), holds more records than there are enriched
  // events. (ClickHouse's raw count is no such sign: the sink inserts at
  // checkpoints, and merges collapse duplicates; it is printed only.)
  auto everything = weir::kafka::testing::ReadTopic(broker_->bootstrap(), OutboxTopicName(config_),
                                                    kOutPartitions, /*read_committed=*/false);
  ASSERT_TRUE(everything.ok()) << everything.status();
  const std::string raw_rows =
      Query(absl::StrCat("SELECT count() FROM ", kEnrichedTable, " FORMAT TSV"));
  std::printf(
      "outbox: %zu records written for %zu enriched events; ClickHouse: %s rows, %zu FINAL\n",
      everything->size(), ref.enriched.size(),
      std::string(absl::StripAsciiWhitespace(raw_rows)).c_str(), ref.enriched.size());
  EXPECT_GT(everything->size(), ref.enriched.size()) << "no kill left work to redo";
}

}  // namespace
}  // namespace engagement
