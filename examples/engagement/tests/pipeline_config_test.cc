// engagement-pipeline's configuration: flags over environment variables
// over defaults, errors that name the flag or variable, and --help listing
// every flag with its variable.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "examples/engagement/pipeline_app.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace engagement {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<PipelineConfig> Parse(std::vector<std::string> args,
                                     std::map<std::string, std::string> env = {},
                                     bool* help = nullptr) {
  args.insert(args.begin(), "engagement-pipeline");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  bool ignored = false;
  return ParseConfig(
      static_cast<int>(argv.size()), argv.data(),
      [&env](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      help != nullptr ? help : &ignored);
}

TEST(PipelineConfigTest, Defaults) {
  absl::StatusOr<PipelineConfig> config = Parse({"--brokers=k:9092"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->brokers, "k:9092");
  EXPECT_EQ(config->topic_prefix, "engagement");
  EXPECT_EQ(config->checkpoint_interval, absl::Seconds(10));
  EXPECT_EQ(config->parallelism, 2);
  EXPECT_EQ(config->http_port, -1);
  EXPECT_EQ(config->http_address, "127.0.0.1");
  EXPECT_FALSE(config->bounded);
  const weir::PipelineOptions options = PipelineOptionsFor(*config);
  EXPECT_EQ(options.http_port, -1);
  EXPECT_EQ(options.checkpoints.interval, absl::Seconds(10));
  EXPECT_EQ(ContentTopicName(*config), "engagement.public.content");
  EXPECT_EQ(EventsTopicName(*config), "engagement.public.engagement_events");
  EXPECT_EQ(OutboxTopicName(*config), "engagement.engagement_enriched");
  EXPECT_EQ(DeadLetterTopicName(*config), "engagement.dlq");
}

TEST(PipelineConfigTest, FlagsBeatEnvironmentVariables) {
  absl::StatusOr<PipelineConfig> config =
      Parse({"--parallelism=4", "--http-port=0", "--bounded"}, {{"KAFKA_BROKERS", "a:1,b:2"},
                                                                {"TOPIC_PREFIX", "shop"},
                                                                {"PARALLELISM", "3"},
                                                                {"HTTP_PORT", "9249"},
                                                                {"HTTP_ADDRESS", "0.0.0.0"},
                                                                {"REDIS_PORT", "6380"},
                                                                {"CHECKPOINT_INTERVAL", "2s"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->brokers, "a:1,b:2");
  EXPECT_EQ(config->topic_prefix, "shop");
  EXPECT_EQ(config->parallelism, 4);
  EXPECT_EQ(config->http_port, 0);
  EXPECT_EQ(config->http_address, "0.0.0.0");
  EXPECT_EQ(config->redis_port, 6380);
  EXPECT_EQ(config->checkpoint_interval, absl::Seconds(2));
  EXPECT_TRUE(config->bounded);
  const weir::PipelineOptions options = PipelineOptionsFor(*config);
  EXPECT_EQ(options.http_port, 0);
  EXPECT_EQ(options.http_address, "0.0.0.0");
  EXPECT_EQ(options.parallelism, 4);
  EXPECT_EQ(OutboxTopicName(*config), "shop.engagement_enriched");
}

TEST(PipelineConfigTest, ErrorsNameTheFlagOrVariable) {
  absl::StatusOr<PipelineConfig> bad = Parse({"--brokers=k:1", "--http-port=web"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("http-port"));
  bad = Parse({"--brokers=k:1"}, {{"CHECKPOINT_INTERVAL", "often"}});
  EXPECT_THAT(bad.status().message(), HasSubstr("CHECKPOINT_INTERVAL"));
  bad = Parse({"--brokers=k:1", "--no-such-flag=1"});
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown flag --no-such-flag"));
  bad = Parse({"--brokers=k:1", "--parallelism"});
  EXPECT_THAT(bad.status().message(), HasSubstr("needs a value"));
  bad = Parse({});
  EXPECT_THAT(bad.status().message(), HasSubstr("KAFKA_BROKERS"));
}

// Properties for every client, consumers only and producers only, each
// kept apart so a consumer setting never reaches a producer.
TEST(PipelineConfigTest, KafkaPropertiesPerKindOfClient) {
  absl::StatusOr<PipelineConfig> config =
      Parse({"--brokers=k:1", "--kafka-properties=client.id=x,security.protocol=plaintext",
             "--kafka-consumer-properties=fetch.wait.max.ms=10"},
            {{"KAFKA_PRODUCER_PROPERTIES", "linger.ms=5"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->kafka_properties, (std::map<std::string, std::string>{
                                          {"client.id", "x"}, {"security.protocol", "plaintext"}}));
  EXPECT_EQ(config->kafka_consumer_properties,
            (std::map<std::string, std::string>{{"fetch.wait.max.ms", "10"}}));
  EXPECT_EQ(config->kafka_producer_properties,
            (std::map<std::string, std::string>{{"linger.ms", "5"}}));
  absl::StatusOr<PipelineConfig> bad = Parse({"--brokers=k:1", "--kafka-consumer-properties=oops"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("kafka-consumer-properties: \"oops\""));
}

TEST(PipelineConfigTest, SinkFlushIsAsyncOrSync) {
  absl::StatusOr<PipelineConfig> config = Parse({"--brokers=k:1"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->synchronous_sink_flush);
  EXPECT_TRUE(PipelineOptionsFor(*config).checkpoints.asynchronous_sink_flush);
  config = Parse({"--brokers=k:1", "--sink-flush=sync"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->synchronous_sink_flush);
  EXPECT_FALSE(PipelineOptionsFor(*config).checkpoints.asynchronous_sink_flush);
  absl::StatusOr<PipelineConfig> bad = Parse({"--brokers=k:1", "--sink-flush=later"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("sink-flush: \"later\""));
}

TEST(PipelineConfigTest, HelpListsEveryFlagAndVariable) {
  bool help = false;
  ASSERT_TRUE(Parse({"--help"}, {}, &help).ok());  // no brokers needed
  EXPECT_TRUE(help);
  const std::string usage = Usage("engagement-pipeline");
  for (const char* text : {"--brokers",
                           "KAFKA_BROKERS",
                           "--topic-prefix",
                           "TOPIC_PREFIX",
                           "--redis-host",
                           "REDIS_HOST",
                           "--redis-port",
                           "REDIS_PORT",
                           "--redis-password",
                           "REDIS_PASSWORD",
                           "--clickhouse-url",
                           "CLICKHOUSE_URL",
                           "--clickhouse-user",
                           "CLICKHOUSE_USER",
                           "--clickhouse-password",
                           "CLICKHOUSE_PASSWORD",
                           "--checkpoint-uri",
                           "CHECKPOINT_URI",
                           "--checkpoint-interval",
                           "CHECKPOINT_INTERVAL",
                           "--sink-flush",
                           "SINK_FLUSH",
                           "--parallelism",
                           "PARALLELISM",
                           "--kafka-properties",
                           "--bounded",
                           "--kafka-consumer-properties",
                           "KAFKA_CONSUMER_PROPERTIES",
                           "--kafka-producer-properties",
                           "KAFKA_PRODUCER_PROPERTIES",
                           "--http-port",
                           "HTTP_PORT",
                           "--http-address",
                           "HTTP_ADDRESS",
                           "--status-interval",
                           "--out-of-orderness",
                           "--join-max-wait"}) {
    EXPECT_THAT(usage, HasSubstr(text));
  }
}

}  // namespace
}  // namespace engagement
