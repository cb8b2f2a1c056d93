#include "examples/engagement/model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "examples/engagement/envelope.h"
#include "examples/engagement/generator.h"
#include "gtest/gtest.h"
#include "weir/formats/debezium.h"

namespace engagement {
namespace {

using weir::debezium::Decoder;
using weir::debezium::Op;

Content Podcast(std::optional<int32_t> length) {
  return Content{"6f1b2c3d-0000-4000-8000-000000000001",
                 "kafka-podcast",
                 "Kafka",
                 "podcast",
                 length,
                 1'764'000'000'000};
}

EngagementEvent Play(std::optional<int32_t> duration_ms) {
  return EngagementEvent{7,
                         "6f1b2c3d-0000-4000-8000-000000000001",
                         "9a9a9a9a-0000-4000-8000-000000000002",
                         "play",
                         1'764'028'800'123,
                         duration_ms,
                         "ios",
                         R"({"a":1})"};
}

TEST(EnrichTest, ComputesSecondsAndPercentAndCopiesContentFields) {
  const Enriched e = Enrich(Play(30'000), Podcast(600));
  ASSERT_TRUE(e.engagement_seconds.has_value());
  EXPECT_DOUBLE_EQ(*e.engagement_seconds, 30.0);
  ASSERT_TRUE(e.engagement_pct.has_value());
  EXPECT_DOUBLE_EQ(*e.engagement_pct, 5.0);
  EXPECT_EQ(e.slug, "kafka-podcast");
  EXPECT_EQ(e.title, "Kafka");
  EXPECT_EQ(e.content_type, "podcast");
  EXPECT_EQ(e.length_seconds, 600);
  EXPECT_EQ(e.publish_ts_ms, 1'764'000'000'000);
  EXPECT_EQ(e.event_id, 7);
  // Sub-second durations keep their fraction (duration_ms / 1000.0, not integer division).
  EXPECT_DOUBLE_EQ(*Enrich(Play(1'500), Podcast(600)).engagement_seconds, 1.5);
}

TEST(EnrichTest, PercentIsNullWhenDurationOrLengthIsNullOrLengthIsZero) {
  const Enriched no_duration = Enrich(Play(std::nullopt), Podcast(600));
  EXPECT_FALSE(no_duration.engagement_seconds.has_value());
  EXPECT_FALSE(no_duration.engagement_pct.has_value());
  const Enriched no_length = Enrich(Play(30'000), Podcast(std::nullopt));
  EXPECT_DOUBLE_EQ(*no_length.engagement_seconds, 30.0);
  EXPECT_FALSE(no_length.engagement_pct.has_value());
  EXPECT_FALSE(Enrich(Play(30'000), Podcast(0)).engagement_pct.has_value());
}

TEST(EnrichTest, JsonHasEveryFieldAndNulls) {
  EXPECT_EQ(ToJson(Enrich(Play(std::nullopt), Podcast(0))),
            R"({"event_id":7,"content_id":"6f1b2c3d-0000-4000-8000-000000000001",)"
            R"("user_id":"9a9a9a9a-0000-4000-8000-000000000002","event_type":"play",)"
            R"("event_ts_ms":1764028800123,"duration_ms":null,"device":"ios",)"
            R"("engagement_seconds":null,"engagement_pct":null,"slug":"kafka-podcast",)"
            R"("title":"Kafka","content_type":"podcast","length_seconds":0,)"
            R"("publish_ts_ms":1764000000000})");
}

TEST(EnvelopeTest, TopicsKeysAndTimestamps) {
  const EnvelopeOptions options{.server = "shop"};
  EXPECT_EQ(ContentTopic(options), "shop.public.content");
  EXPECT_EQ(EngagementTopic(options), "shop.public.engagement_events");
  EXPECT_EQ(EngagementKey(42, options), R"({"id":42})");
  EXPECT_EQ(ZonedTimestamp(1'764'028'800'123), "2025-11-25T00:00:00.123Z");
}

// Every record the generator writes decodes, with weir's Debezium decoder,
// into exactly the row it says it wrote; with and without the schema wrapper.
// The pipeline decodes events without raw_payload (no output carries it):
// the column is then left out, and everything else is read as before.
TEST(EngagementEventFieldsTest, WithoutRawPayloadTheColumnIsLeftOut) {
  EngagementEvent event{.id = 7,
                        .content_id = "5b6f0e0e-0000-4000-8000-0000000000aa",
                        .user_id = "5b6f0e0e-0000-4000-8000-0000000000bb",
                        .event_type = "play",
                        .event_ts_ms = 1'795'564'800'000,
                        .duration_ms = 1500,
                        .device = "web",
                        .raw_payload = std::string(R"({"ok":true})")};
  auto with = Decoder<EngagementEvent>::Create(EngagementEventFields());
  auto without = Decoder<EngagementEvent>::Create(EngagementEventFields(false));
  ASSERT_TRUE(with.ok()) << with.status();
  ASSERT_TRUE(without.ok()) << without.status();
  const std::string value =
      EngagementChange(Op::kCreate, nullptr, &event, SourcePosition{.ts_ms = 1}, {});
  auto full = with->Decode(value);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(*full->after, event);
  auto lean = without->Decode(value);
  ASSERT_TRUE(lean.ok()) << lean.status();
  EngagementEvent expected = event;
  expected.raw_payload.reset();
  EXPECT_EQ(*lean->after, expected);
}

class GeneratorRoundTripTest : public ::testing::TestWithParam<bool> {};

TEST_P(GeneratorRoundTripTest, EveryRecordDecodesToItsRow) {
  GeneratorOptions options;
  options.seed = 11;
  options.initial_contents = 50;
  options.content_change_share = 0.05;  // many content changes in a short run
  options.envelope.with_schema = GetParam();
  ChangeGenerator generator(options);
  auto contents = Decoder<Content>::Create(ContentFields());
  auto events = Decoder<EngagementEvent>::Create(EngagementEventFields());
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_TRUE(events.ok()) << events.status();
  std::map<Op, int> ops;
  for (int i = 0; i < 5000; ++i) {
    const GeneratedRecord record = generator.Next();
    if (record.is_content()) {
      const Content& row = std::get<Content>(record.row);
      ASSERT_EQ(record.topic, ContentTopic(options.envelope));
      auto change = contents->Decode(record.value ? *record.value : std::string());
      ASSERT_TRUE(change.ok()) << change.status() << "\n" << record.value.value_or("");
      ASSERT_EQ(change->op, record.op);
      ++ops[change->op];
      if (record.op == Op::kTombstone) continue;
      ASSERT_NE(change->row(), nullptr);
      EXPECT_EQ(*change->row(), row);
      EXPECT_EQ(change->source.table, "content");
      if (record.op == Op::kUpdate) {
        ASSERT_TRUE(change->before.has_value());
        EXPECT_NE(*change->before, row);
      }
    } else {
      const EngagementEvent& row = std::get<EngagementEvent>(record.row);
      auto change = events->Decode(*record.value);
      ASSERT_TRUE(change.ok()) << change.status() << "\n" << *record.value;
      ASSERT_EQ(change->op, Op::kCreate);
      ASSERT_TRUE(change->after.has_value());
      EXPECT_EQ(*change->after, row);
      EXPECT_EQ(record.ts_ms, row.event_ts_ms);
      ++ops[Op::kCreate];
    }
  }
  EXPECT_EQ(ops[Op::kRead], 50);
  EXPECT_GT(ops[Op::kUpdate], 0);
  EXPECT_GT(ops[Op::kDelete], 0);
  EXPECT_EQ(ops[Op::kDelete], ops[Op::kTombstone]);
}

INSTANTIATE_TEST_SUITE_P(Envelopes, GeneratorRoundTripTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "WithSchema" : "Bare";
                         });

TEST(GeneratorTest, DeterministicSkewedAndSomeEventsPrecedeTheirContent) {
  GeneratorOptions options;
  options.seed = 3;
  options.initial_contents = 200;
  options.content_change_share = 0.01;
  ChangeGenerator a(options);
  ChangeGenerator b(options);
  std::map<std::string, int> events_per_content;
  std::set<std::string> known;  // content ids whose row was written
  int events_before_row = 0;
  int null_durations = 0;
  for (int i = 0; i < 20000; ++i) {
    const GeneratedRecord ra = a.Next();
    const GeneratedRecord rb = b.Next();
    ASSERT_EQ(ra.value, rb.value);
    ASSERT_EQ(ra.key, rb.key);
    if (ra.is_content()) {
      known.insert(std::get<Content>(ra.row).id);
    } else {
      const auto& event = std::get<EngagementEvent>(ra.row);
      ++events_per_content[event.content_id];
      if (!known.contains(event.content_id)) ++events_before_row;
      if (!event.duration_ms) ++null_durations;
    }
  }
  std::vector<int> counts;
  for (const auto& [id, n] : events_per_content) counts.push_back(n);
  std::sort(counts.rbegin(), counts.rend());
  ASSERT_GT(counts.size(), 20u);
  // Zipf(1.1): the most popular content gets far more than the median one.
  EXPECT_GT(counts[0], 10 * counts[counts.size() / 2]);
  EXPECT_GT(events_before_row, 0);
  EXPECT_GT(null_durations, 0);
}

// Engagement (duration over the length of the content version the event
// happened on, as the pipeline computes it) looks like a real audience's:
// on average well under 100%, per content too, with few replays above it.
TEST(GeneratorTest, DurationsAreRealisticForTheContentsLength) {
  GeneratorOptions options;
  options.seed = 11;
  options.initial_contents = 300;
  options.content_change_share = 0.01;
  ChangeGenerator generator(options);
  std::map<std::string, std::optional<int32_t>> length;       // content id -> current length
  std::map<std::string, std::pair<double, int>> per_content;  // sum of pct, events
  std::map<std::string, std::pair<double, int>> per_type;
  int timed = 0;
  int over_100 = 0;
  double max_pct = 0;
  for (int i = 0; i < 100'000; ++i) {
    const GeneratedRecord record = generator.Next();
    if (record.is_content()) {
      const Content& row = std::get<Content>(record.row);
      if (record.op != weir::debezium::Op::kTombstone) length[row.id] = row.length_seconds;
      continue;
    }
    const auto& event = std::get<EngagementEvent>(record.row);
    // Early events precede their row: the row's length applies to them too
    // once it is written, but they are left out here.
    auto found = length.find(event.content_id);
    if (!event.duration_ms || found == length.end() || !found->second || *found->second <= 0) {
      continue;
    }
    const double pct = *event.duration_ms / 10.0 / *found->second;
    ++timed;
    if (pct > 100.0) ++over_100;
    max_pct = std::max(max_pct, pct);
    per_content[event.content_id].first += pct;
    ++per_content[event.content_id].second;
    per_type[event.event_type].first += pct;
    ++per_type[event.event_type].second;
  }
  ASSERT_GT(timed, 50'000);
  double sum = 0;
  for (const auto& [type, totals] : per_type) sum += totals.first;
  const double average = sum / timed;
  EXPECT_GT(average, 25.0);
  EXPECT_LT(average, 65.0);
  // Replays exist, rarely, and never much more than the content.
  EXPECT_GT(over_100, 0);
  EXPECT_LT(over_100, timed * 3 / 100);
  EXPECT_LE(max_pct, 150.0 + 1e-9);
  // A finish is near the end, a click early.
  EXPECT_GT(per_type["finish"].first / per_type["finish"].second, 85.0);
  EXPECT_LT(per_type["click"].first / per_type["click"].second, 5.0);
  // Every content with enough events averages well under 100%.
  int checked = 0;
  for (const auto& [id, totals] : per_content) {
    if (totals.second < 100) continue;
    ++checked;
    EXPECT_LT(totals.first / totals.second, 80.0) << id;
  }
  EXPECT_GT(checked, 10);
}

// FormatDouble writes what printf's "%.3f" does: exact and near ties at the
// third decimal, values from 1e-5 to the largest double, negatives, zeros,
// the non-finite.
TEST(FormatDoubleTest, WritesWhatPrintfWritesWithThreeDecimals) {
  std::vector<double> values = {0.0,
                                -0.0,
                                0.0005,
                                0.0015,
                                0.0025,
                                1.0005,
                                2.5,
                                -1.2345,
                                999.9995,
                                123456789.0625,
                                1e15 + 0.5,
                                std::numeric_limits<double>::max(),
                                -std::numeric_limits<double>::max(),
                                std::numeric_limits<double>::denorm_min(),
                                std::numeric_limits<double>::infinity(),
                                -std::numeric_limits<double>::infinity(),
                                std::numeric_limits<double>::quiet_NaN()};
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> exponent(-5, 18);
  std::uniform_real_distribution<double> mantissa(1, 10);
  for (int i = 0; i < 300000; ++i) {
    const double value = mantissa(rng) * std::pow(10.0, std::floor(exponent(rng)));
    values.push_back(i % 2 == 0 ? value : -value);
    // Thousandths and halves of them: ties and their neighbours.
    values.push_back(static_cast<double>(rng() % 10'000'000) / 2000.0);
  }
  // Exact ties: odd sixteenths are halves of a thousandth.
  for (int k = 0; k < 20000; ++k) {
    values.push_back(k / 16.0);
    values.push_back(-k / 32.0);
  }
  for (uint64_t bits = 0x3FF0000000000000; bits < 0x3FF0000000000000 + 100000; ++bits) {
    double value = 0;
    std::memcpy(&value, &bits, sizeof(value));
    values.push_back(value);
  }
  for (const double value : values) {
    ASSERT_EQ(FormatDouble(value), absl::StrFormat("%.3f", value))
        << absl::StrFormat("%.17g", value);
  }
}

}  // namespace
}  // namespace engagement
