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

// --source=postgres: the connection string is required, the slots and
// publications are one per table, the snapshot mode is one of three.
TEST(PipelineConfigTest, PostgresSource) {
  absl::StatusOr<PipelineConfig> config = Parse({"--brokers=k:1"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->source, ChangeSource::kKafka);

  config = Parse({"--brokers=k:1", "--source=postgres", "--postgres-snapshot=never"},
                 {{"POSTGRES_URL", "host=db dbname=app"}, {"POSTGRES_SLOT", "job7"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->source, ChangeSource::kPostgres);
  const weir::postgres::CdcOptions content = ContentCdcOptions(*config);
  const weir::postgres::CdcOptions events = EventsCdcOptions(*config);
  EXPECT_EQ(content.connection, "host=db dbname=app");
  EXPECT_EQ(content.slot, "job7_content");
  EXPECT_EQ(events.slot, "job7_events");
  EXPECT_EQ(content.publication, "weir_engagement_content");
  EXPECT_EQ(events.publication, "weir_engagement_events");
  EXPECT_EQ(content.tables, std::vector<std::string>{"public.content"});
  EXPECT_EQ(events.tables, std::vector<std::string>{"public.engagement_events"});
  EXPECT_TRUE(content.create_publication);
  EXPECT_EQ(events.snapshot, weir::postgres::SnapshotMode::kNever);

  config = Parse({"--brokers=k:1", "--source=postgres", "--postgres=host=db",
                  "--postgres-create-publication=false", "--postgres-snapshot=initial_only"},
                 {{"SOURCE", "kafka"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(ContentCdcOptions(*config).create_publication);
  EXPECT_EQ(ContentCdcOptions(*config).snapshot, weir::postgres::SnapshotMode::kInitialOnly);

  absl::StatusOr<PipelineConfig> bad = Parse({"--brokers=k:1", "--source=postgres"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("POSTGRES_URL"));
  bad = Parse({"--brokers=k:1", "--source=mysql"});
  EXPECT_THAT(bad.status().message(), HasSubstr("neither kafka nor postgres"));
  bad = Parse({"--brokers=k:1", "--source=postgres", "--postgres=h", "--postgres-snapshot=all"});
  EXPECT_THAT(bad.status().message(), HasSubstr("postgres-snapshot"));
  bad = Parse({"--brokers=k:1", "--source=postgres", "--postgres=h", "--bounded"});
  EXPECT_THAT(bad.status().message(), HasSubstr("initial_only"));
  bad = Parse({"--brokers=k:1", "--source=postgres", "--postgres=h", "--cluster-job-id=j"});
  EXPECT_THAT(bad.status().message(), HasSubstr("--source=kafka"));
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
                           "--join-max-wait",
                           "--source",
                           "SOURCE",
                           "--postgres",
                           "POSTGRES_URL",
                           "--postgres-slot",
                           "POSTGRES_SLOT",
                           "--postgres-publication",
                           "POSTGRES_PUBLICATION",
                           "--postgres-create-publication",
                           "POSTGRES_CREATE_PUBLICATION",
                           "--postgres-snapshot",
                           "POSTGRES_SNAPSHOT",
                           "initial_only"}) {
    EXPECT_THAT(usage, HasSubstr(text));
  }
}

}  // namespace
}  // namespace engagement
