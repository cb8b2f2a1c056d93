// The ClickHouse sink against a real clickhouse-server (Debian's 18.16),
// started once per test binary on free loopback ports; failed and unanswered
// inserts come from a scripted HTTP front between the sink and the server.

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/stderr_capture.h"
#include "tests/support/wait_for.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "tests/unit/connectors/holding_proxy.h"
#include "tests/unit/window/scripted_source.h"
#include "weir/connectors/clickhouse.h"
#include "weir/pipeline.h"
#include "weir/testing.h"

namespace weir {
namespace {

using ::testing::HasSubstr;

// 2026-01-01 00:00:00 UTC.
constexpr int64_t kBaseMs = int64_t{1767225600} * 1000;

struct Row {
  uint64_t id = 0;
  int64_t ts_ms = 0;
  std::string text;
  double value = 0;
  bool flag = false;
  std::optional<int32_t> maybe;
  uint64_t version = 1;
};

clickhouse::Columns<Row> RowColumns() {
  return clickhouse::Columns<Row>()
      .Add("id", &Row::id)
      .AddDateTime("ts", &Row::ts_ms)
      .Add("text", &Row::text)
      .Add("value", &Row::value)
      .Add("flag", &Row::flag)
      .Add("maybe", &Row::maybe)
      .Add("version", [](const Row& row) { return row.version; });
}

std::string Text(uint64_t id) {
  switch (id % 5) {
    case 0:
      return absl::StrCat("plain ", id);
    case 1:
      return "quote \" backslash \\ slash / newline \n tab \t";
    case 2: {
      static constexpr char kControl[] = "control \x01\x1f and nul \0 end";
      return std::string(kControl, sizeof(kControl) - 1);
    }
    case 3:
      return "utf-8 \xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80";
    default:
      return "";
  }
}

std::vector<Row> Rows(int count, int64_t step_ms = 1000) {
  std::vector<Row> rows;
  for (int idx = 0; idx < count; ++idx) {
    Row row;
    row.id = static_cast<uint64_t>(idx);
    row.ts_ms = kBaseMs + idx * step_ms;
    row.text = Text(row.id);
    row.value = idx * 0.25;
    // JSON has no NaN or infinities: they travel quoted.
    if (idx == 7) row.value = std::numeric_limits<double>::quiet_NaN();
    if (idx == 8) row.value = std::numeric_limits<double>::infinity();
    if (idx == 9) row.value = -std::numeric_limits<double>::infinity();
    row.flag = idx % 2 == 0;
    if (idx % 3 != 0) row.maybe = -idx;
    rows.push_back(row);
  }
  return rows;
}

// A key whose row is updated (a running value) across batches.
struct Reading {
  uint64_t id = 0;
  int64_t value = 0;
};

clickhouse::Columns<Reading> ReadingColumns() {
  return clickhouse::Columns<Reading>().Add("id", &Reading::id).Add("value", &Reading::value);
}

// An HTTP front for the test's clickhouse-server (cpp-httplib on a free port
// of 127.0.0.1), for failures a real server does not produce on demand. It
// forwards every request to the server, except INSERTs, which it answers as
// scripted, each with the next action: forwarded; failed with the FailWith
// answer (not forwarded); or held unanswered, like a hung server, until
// ReleaseHeld() (then failed, never forwarded). It records the action and
// the body of every INSERT it receives. Thread-safety: any thread.
class ScriptedFront {
 public:
  enum class Action { kForward, kFail, kHold };
  struct Insert {
    Action action;
    std::string body;
  };

  explicit ScriptedFront(int upstream_port) : upstream_port_(upstream_port) {
    // A held request's client has gone when its answer is written: EPIPE,
    // not a SIGPIPE that ends the test.
    std::signal(SIGPIPE, SIG_IGN);
    server_.Post(".*", [this](const httplib::Request& request, httplib::Response& response) {
      Handle(request, response);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    EXPECT_GT(port_, 0);
    EXPECT_TRUE(testing::WaitFor([&] { return server_.is_running(); }));
  }
  ~ScriptedFront() {
    ReleaseHeld();
    server_.stop();
    thread_.join();
  }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }

  // The actions for the next INSERTs, in order; `then` for those after them.
  void Script(std::vector<Action> actions, Action then = Action::kForward) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(actions.begin(), actions.end());
    then_ = then;
  }
  // The answer of kFail (and of a released kHold).
  // Default: 503, "Service Unavailable"
  void FailWith(int status, std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_status_ = status;
    fail_body_ = std::move(body);
  }
  // Answers the INSERTs held so far; later kHold ones are held again.
  void ReleaseHeld() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++releases_;
    }
    cv_.notify_all();
  }
  std::vector<Insert> inserts() {
    std::lock_guard<std::mutex> lock(mu_);
    return inserts_;
  }

 private:
  void Handle(const httplib::Request& request, httplib::Response& response) {
    if (!absl::StartsWith(request.get_param_value("query"), "INSERT")) {
      Forward(request, response);
      return;
    }
    Action action;
    int status;
    std::string body;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (script_.empty()) {
        action = then_;
      } else {
        action = script_.front();
        script_.pop_front();
      }
      inserts_.push_back({action, request.body});
      if (action == Action::kHold) {
        const int arrived = releases_;
        cv_.wait(lock, [&] { return releases_ > arrived; });
      }
      status = fail_status_;
      body = fail_body_;
    }
    if (action == Action::kForward) {
      Forward(request, response);
      return;
    }
    response.status = status;
    response.set_content(body, "text/plain");
  }

  void Forward(const httplib::Request& request, httplib::Response& response) {
    httplib::Client upstream("127.0.0.1", upstream_port_);
    upstream.set_url_encode(false);  // the target is escaped already
    upstream.set_read_timeout(std::chrono::seconds(60));
    httplib::Headers headers;
    if (request.has_header("Authorization")) {
      headers.emplace("Authorization", request.get_header_value("Authorization"));
    }
    httplib::Result result = upstream.Post(request.target, headers, request.body,
                                           request.get_header_value("Content-Type"));
    if (!result) {
      response.status = 502;
      response.set_content(absl::StrCat("front: ", httplib::to_string(result.error())),
                           "text/plain");
      return;
    }
    response.status = result->status;
    response.set_content(result->body, "text/plain");
  }

  const int upstream_port_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Action> script_;
  Action then_ = Action::kForward;
  int fail_status_ = 503;
  std::string fail_body_ = "Service Unavailable";
  int releases_ = 0;
  std::vector<Insert> inserts_;
};

// Writes `rows` in one Write and flushes, on another thread; waits up to
// 60 s (a hang, not a slow machine), then releases what `front` holds so
// that a writer stuck on it returns. `took` is how long the writer took,
// `returned` whether it returned before the release.
struct Flushed {
  absl::Status status;
  absl::Duration took;
  bool returned = false;
};
Flushed WriteAndFlush(SinkWriter<Row>& writer, std::vector<Row> rows, ScriptedFront& front) {
  const absl::Time start = absl::Now();
  std::future<absl::Status> done = std::async(std::launch::async, [&] {
    std::vector<Timestamp> timestamps(rows.size(), 0);
    absl::Status status = writer.Write(std::span<Row>(rows), timestamps);
    if (status.ok()) status = writer.Flush();
    return status;
  });
  Flushed flushed;
  flushed.returned = done.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  flushed.took = absl::Now() - start;
  front.ReleaseHeld();
  flushed.status = done.get();
  return flushed;
}

testing::ClickHouseServer* g_server = nullptr;

class ServerEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    delete g_server;
    g_server = nullptr;
  }
};
::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ServerEnvironment);

class ClickHouseSinkTest : public ::testing::Test {
 protected:
  // Under ctest, every test of this binary uses one server (each in tables
  // of its own); see ClickHouseServer::Shared.
  static void SetUpTestSuite() {
    if (g_server != nullptr) return;
    absl::StatusOr<std::unique_ptr<testing::ClickHouseServer>> server =
        testing::ClickHouseServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    g_server = server->release();
  }

  void SetUp() override {
    ASSERT_NE(g_server, nullptr);
    table_ = absl::StrCat("t_", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                          "_", getpid());
    ASSERT_TRUE(clickhouse::CreateTable(g_server->Connection(), RowColumns(),
                                        {.table = table_,
                                         .order_by = {"id"},
                                         .version_column = "version",
                                         .partition_time_column = "ts"})
                    .ok());
    root_ = std::filesystem::temp_directory_path() / absl::StrCat("weir-ch-test-", table_);
    std::filesystem::remove_all(root_);
  }
  void TearDown() override {
    if (g_server != nullptr) {
      (void)clickhouse::Query(g_server->Connection(),
                              absl::StrCat("DROP TABLE IF EXISTS ", table_));
      (void)clickhouse::Query(g_server->Connection(),
                              absl::StrCat("DROP TABLE IF EXISTS ", PlainTable()));
    }
    std::filesystem::remove_all(root_);
  }

  std::string Query(const std::string& sql) {
    absl::StatusOr<std::string> answer = clickhouse::Query(g_server->Connection(), sql);
    EXPECT_TRUE(answer.ok()) << answer.status();
    if (!answer.ok()) return "";
    return std::string(absl::StripTrailingAsciiWhitespace(*answer));
  }

  // A MergeTree table of RowColumns(), which keeps every copy of a row
  // inserted twice (a ReplacingMergeTree may merge them away before a test
  // counts); dropped after the test.
  std::string PlainTable() const { return table_ + "_plain"; }
  void CreatePlainTable() {
    std::vector<std::string> columns;
    for (const clickhouse::ColumnDefinition& column : RowColumns().Definitions()) {
      columns.push_back(absl::StrCat("`", column.name, "` ", column.type));
    }
    Query(absl::StrCat("CREATE TABLE ", PlainTable(), " (", absl::StrJoin(columns, ", "),
                       ") ENGINE = MergeTree ORDER BY id"));
  }

  // Options that write into a new PlainTable() through `front`.
  clickhouse::SinkOptions PlainTableBehind(const ScriptedFront& front) {
    CreatePlainTable();
    clickhouse::SinkOptions options = Options();
    options.table = PlainTable();
    options.connection.url = front.url();
    return options;
  }

  clickhouse::SinkOptions Options() {
    clickhouse::SinkOptions options;
    options.connection = g_server->Connection();
    options.table = table_;
    return options;
  }

  std::unique_ptr<Pipeline> Build(std::vector<Row> rows, clickhouse::SinkOptions options,
                                  int parallelism, double rate, bool checkpoints = false) {
    PipelineOptions pipeline_options;
    pipeline_options.parallelism = parallelism;
    pipeline_options.job_name = "clickhouse-test";
    if (checkpoints) {
      // Long: the restart test triggers its checkpoints by hand.
      pipeline_options.checkpoints.interval = absl::Seconds(600);
      pipeline_options.checkpoints.storage_uri = "file://" + (root_ / "checkpoints").string();
    }
    testing::VectorSourceOptions source_options;
    source_options.splits = 4;
    source_options.records_per_poll = 64;
    source_options.records_per_second = rate;
    return Build(testing::VectorSource<Row>::Create(std::move(rows), source_options),
                 std::move(options), std::move(pipeline_options));
  }
  std::unique_ptr<Pipeline> Build(std::shared_ptr<Source<Row>> rows,
                                  clickhouse::SinkOptions options,
                                  PipelineOptions pipeline_options) {
    auto pipeline = std::make_unique<Pipeline>(pipeline_options);
    pipeline->Source(std::move(rows))
        .Uid("rows")
        .Sink(clickhouse::Sink<Row>(std::move(options), RowColumns()))
        .Uid("clickhouse");
    return pipeline;
  }

  std::string table_;
  std::filesystem::path root_;
};

TEST(ClickHouseTableTest, StatementIsAReplacingMergeTreeIn30MinutePartitions) {
  absl::StatusOr<std::string> sql = clickhouse::CreateTableStatement(
      RowColumns().Definitions(), {.table = "events",
                                   .order_by = {"id", "toStartOfHour(ts)"},
                                   .version_column = "version",
                                   .partition_time_column = "ts"});
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql,
            "CREATE TABLE IF NOT EXISTS `events` (`id` UInt64, `ts` DateTime, `text` String, "
            "`value` Float64, `flag` UInt8, `maybe` Nullable(Int32), `version` UInt64) "
            "ENGINE = ReplacingMergeTree(`version`) "
            "PARTITION BY toDateTime(intDiv(toUInt32(`ts`), 1800) * 1800) "
            "ORDER BY (`id`, toStartOfHour(ts))");
  EXPECT_EQ(clickhouse::CreateTableStatement(
                RowColumns().Definitions(),
                {.table = "events", .order_by = {"id"}, .version_column = "nope"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(clickhouse::CreateTableStatement(RowColumns().Definitions(), {.table = "events"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// weir's batch version: a UInt64 column of its own, the table's version.
TEST(ClickHouseTableTest, BatchVersionColumnIsAddedAsTheVersion) {
  absl::StatusOr<std::string> sql = clickhouse::CreateTableStatement(
      ReadingColumns().Definitions(),
      {.table = "readings", .order_by = {"id"}, .batch_version_column = "weir_version"});
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql,
            "CREATE TABLE IF NOT EXISTS `readings` (`id` UInt64, `value` Int64, `weir_version` "
            "UInt64) ENGINE = ReplacingMergeTree(`weir_version`) ORDER BY (`id`)");
  EXPECT_EQ(clickhouse::CreateTableStatement(ReadingColumns().Definitions(),
                                             {.table = "readings",
                                              .order_by = {"id"},
                                              .version_column = "value",
                                              .batch_version_column = "weir_version"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(clickhouse::CreateTableStatement(
                ReadingColumns().Definitions(),
                {.table = "readings", .order_by = {"id"}, .batch_version_column = "value"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// RowBinary's bytes, worked out here one by one: numbers little-endian, a
// string as its LEB128 length and its bytes, Nullable as a flag byte first,
// DateTime as UInt32 seconds. The strings' lengths go from empty to past the
// writer's 512-byte block, and across its end at different offsets, with
// lengths needing one, two and three LEB128 bytes.
TEST(ClickHouseRowBinaryTest, RowsAreTheBytesOfEachColumnInOrder) {
  auto little_endian = [](uint64_t value, size_t bytes, std::string& out) {
    for (size_t idx = 0; idx < bytes; ++idx) out.push_back(static_cast<char>(value >> (8 * idx)));
  };
  auto leb128 = [](uint64_t value, std::string& out) {
    do {
      const auto low = static_cast<uint8_t>(value & 0x7F);
      value >>= 7;
      out.push_back(static_cast<char>(value != 0 ? (low | 0x80) : low));
    } while (value != 0);
  };
  const clickhouse::Columns<Row> columns =
      RowColumns().Add("again", &Row::text).Add("small", [](const Row& row) {
        return static_cast<int16_t>(-static_cast<int64_t>(row.id));
      });
  std::string actual;
  std::string expected;
  int rows = 0;
  for (size_t length : {0, 1, 127, 128, 300, 505, 511, 512, 513, 700, 16383, 16384, 40000}) {
    for (uint64_t id : {uint64_t{1}, uint64_t{0x0102030405060708}}) {
      Row row;
      row.id = id + length;
      row.ts_ms = kBaseMs + static_cast<int64_t>(length) * 1500;
      for (size_t idx = 0; idx < length; ++idx) {
        row.text.push_back(static_cast<char>('a' + (idx + id) % 26));
      }
      row.value = static_cast<double>(length) / 3;
      row.flag = id == 1;
      if (length % 2 == 0) row.maybe = -static_cast<int32_t>(length);
      row.version = length * 7;
      columns.AppendRowBinary(row, actual);
      ++rows;

      little_endian(row.id, 8, expected);
      little_endian(static_cast<uint64_t>(row.ts_ms / 1000), 4, expected);
      leb128(row.text.size(), expected);
      expected += row.text;
      uint64_t value_bits = 0;
      std::memcpy(&value_bits, &row.value, sizeof(value_bits));
      little_endian(value_bits, 8, expected);
      expected.push_back(row.flag ? 1 : 0);
      if (row.maybe.has_value()) {
        expected.push_back(0);
        little_endian(static_cast<uint32_t>(*row.maybe), 4, expected);
      } else {
        expected.push_back(1);
      }
      little_endian(row.version, 8, expected);
      leb128(row.text.size(), expected);
      expected += row.text;
      little_endian(static_cast<uint16_t>(-static_cast<int64_t>(row.id)), 2, expected);
      ASSERT_EQ(actual.size(), expected.size()) << "after row " << rows << ", length " << length;
    }
  }
  EXPECT_EQ(rows, 26);
  EXPECT_TRUE(actual == expected)
      << "the bytes differ at offset "
      << std::mismatch(actual.begin(), actual.end(), expected.begin()).first - actual.begin();
}

TEST(ClickHouseSinkConfigTest, BadOptionsFailWhenThePipelineStarts) {
  Pipeline pipeline;
  clickhouse::SinkOptions options;
  options.connection.url = "127.0.0.1:8123";  // no scheme
  options.table = "t";
  pipeline.Source(testing::VectorSource<Row>::Create(Rows(3)))
      .Sink(clickhouse::Sink<Row>(options, RowColumns()));
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("clickhouse sink"));
}

TEST_F(ClickHouseSinkTest, RowsWrittenMatchWithEscapingTypesAndGzip) {
  constexpr int kRows = 2000;
  clickhouse::SinkOptions options = Options();
  options.compression = clickhouse::Compression::kGzip;
  options.max_batch_rows = 300;  // several inserts per worker
  options.connection.settings = {{"max_insert_block_size", "100000"}};
  auto pipeline = Build(Rows(kRows), options, 2, 0);
  absl::Status status = pipeline->Run();
  ASSERT_TRUE(status.ok()) << status;

  EXPECT_EQ(Query(absl::StrCat("SELECT count() FROM ", table_)), absl::StrCat(kRows));
  std::string actual =
      Query(absl::StrCat("SELECT id, toUInt32(ts), hex(text), value, flag, maybe FROM ", table_,
                         " WHERE id < 12 OR id >= 1995 ORDER BY id FORMAT TSV"));
  std::vector<std::string> expected;
  for (const Row& row : Rows(kRows)) {
    if (row.id >= 12 && row.id < 1995) continue;
    expected.push_back(absl::StrCat(row.id, "\t", row.ts_ms / 1000, "\t",
                                    absl::AsciiStrToUpper(absl::BytesToHexString(row.text)), "\t",
                                    row.value, "\t", row.flag ? 1 : 0, "\t",
                                    row.maybe ? absl::StrCat(*row.maybe) : "\\N"));
  }
  EXPECT_EQ(actual, absl::StrJoin(expected, "\n"));
}

// Rows are encoded during Write: the writer says it only reads, so a
// stream's other consumers share its batches.
TEST_F(ClickHouseSinkTest, TheWriterOnlyReadsItsInput) {
  auto sink = clickhouse::Sink<Row>(Options(), RowColumns());
  absl::StatusOr<std::unique_ptr<SinkWriter<Row>>> writer =
      sink->CreateWriter({.operator_name = "clickhouse"});
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE((*writer)->ReadsOnly());
}

TEST_F(ClickHouseSinkTest, RowBinaryWritesTheSameRows) {
  constexpr int kRows = 1000;
  clickhouse::SinkOptions options = Options();
  options.format = clickhouse::Format::kRowBinary;
  options.max_batch_rows = 128;
  ASSERT_TRUE(Build(Rows(kRows), options, 2, 0)->Run().ok());
  std::string actual =
      Query(absl::StrCat("SELECT id, toUInt32(ts), hex(text), value, flag, maybe, ",
                         "version FROM ", table_, " ORDER BY id FORMAT TSV"));
  std::vector<std::string> expected;
  for (const Row& row : Rows(kRows)) {
    expected.push_back(absl::StrCat(row.id, "\t", row.ts_ms / 1000, "\t",
                                    absl::AsciiStrToUpper(absl::BytesToHexString(row.text)), "\t",
                                    row.value, "\t", row.flag ? 1 : 0, "\t",
                                    row.maybe ? absl::StrCat(*row.maybe) : "\\N", "\t", 1));
  }
  EXPECT_EQ(actual, absl::StrJoin(expected, "\n"));
}

TEST_F(ClickHouseSinkTest, RowBinaryRefusesColumnTypesThatDifferFromTheTable) {
  Query(absl::StrCat("CREATE TABLE ", table_,
                     "_narrow (id UInt32, ts DateTime) ENGINE = MergeTree ORDER BY id"));
  clickhouse::SinkOptions options = Options();
  options.table = table_ + "_narrow";
  options.format = clickhouse::Format::kRowBinary;
  Pipeline pipeline;
  pipeline.Source(testing::VectorSource<Row>::Create(Rows(3)))
      .Sink(clickhouse::Sink<Row>(options, clickhouse::Columns<Row>()
                                               .Add("id", &Row::id)  // UInt64
                                               .AddDateTime("ts", &Row::ts_ms)));
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("column id is UInt32 in the table but UInt64"));

  // A type override cannot be checked: refused.
  Pipeline overridden;
  overridden.Source(testing::VectorSource<Row>::Create(Rows(3)))
      .Sink(
          clickhouse::Sink<Row>(options, clickhouse::Columns<Row>().Add("id", &Row::id, "UInt32")));
  EXPECT_EQ(overridden.Start().status().code(), absl::StatusCode::kInvalidArgument);
  Query(absl::StrCat("DROP TABLE ", table_, "_narrow"));
}

TEST_F(ClickHouseSinkTest, LingerInsertsWithoutCheckpointOrEndOfInput) {
  clickhouse::SinkOptions options = Options();
  options.max_linger = absl::Milliseconds(50);
  Pipeline pipeline;
  testing::VectorSourceOptions source_options;
  source_options.unbounded = true;  // never ends by itself
  pipeline.Source(testing::VectorSource<Row>::Create(Rows(10), source_options))
      .Sink(clickhouse::Sink<Row>(options, RowColumns()));
  absl::StatusOr<JobHandle> job = pipeline.Start();
  ASSERT_TRUE(job.ok()) << job.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string count;
  while (absl::Now() < deadline) {
    count = Query(absl::StrCat("SELECT count() FROM ", table_));
    if (count == "10") break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(count, "10");
  EXPECT_FALSE(job->done());
  job->Stop();
  EXPECT_TRUE(job->Wait().ok());
}

TEST_F(ClickHouseSinkTest, RestartFromCheckpointWithReplayCountsEachRowOnceUnderFinal) {
  constexpr int kRows = 4000;
  clickhouse::SinkOptions options = Options();
  options.max_linger = absl::Milliseconds(20);
  {
    // A checkpoint, then rows written after its barrier reach the table,
    // then a crash (cancel: no final checkpoint): a restart replays them.
    // Checkpoints are taken by hand (the periodic interval is long), so
    // no other checkpoint can cover those rows.
    auto pipeline = Build(Rows(kRows), options, 2, 400, /*checkpoints=*/true);
    absl::StatusOr<JobHandle> job = pipeline->Start();
    ASSERT_TRUE(job.ok()) << job.status();
    const std::string count_sql = absl::StrCat("SELECT count() FROM ", table_);
    auto wait_for_rows = [&](int64_t at_least) {
      const absl::Time deadline = absl::Now() + absl::Seconds(20);
      while (std::stoll(Query(count_sql)) < at_least && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(10));
      }
    };
    wait_for_rows(200);
    absl::StatusOr<int64_t> checkpoint = job->TriggerCheckpoint();
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    // Everything before the barrier is in the table once the checkpoint is
    // complete (PreCommit waits for it); wait for more rows after it.
    wait_for_rows(std::stoll(Query(count_sql)) + 200);
    ASSERT_FALSE(job->done()) << "the job ended before it could be interrupted";
    job->Cancel();
    EXPECT_EQ(job->Wait().code(), absl::StatusCode::kCancelled);
  }
  const int64_t before_restart = std::stoll(Query(absl::StrCat("SELECT count() FROM ", table_)));
  EXPECT_GT(before_restart, 0);
  EXPECT_LT(before_restart, kRows);

  auto pipeline = Build(Rows(kRows), options, 2, 0, /*checkpoints=*/true);
  testing::JobResult result = testing::RunToCompletion(*pipeline);
  ASSERT_TRUE(result.status.ok()) << result.status;

  // The restarted run inserted again rows that were in the table (the
  // replay; a plain count() cannot show it: ClickHouse may have merged the
  // copies already) ...
  EXPECT_GT(before_restart + result.RecordsIn("clickhouse"), kRows);
  // ... and they collapse under FINAL.
  const uint64_t expected_sum = uint64_t{kRows} * (kRows - 1) / 2;
  EXPECT_EQ(Query(absl::StrCat("SELECT count(), sum(id), uniqExact(id) FROM ", table_,
                               " FINAL FORMAT TSV")),
            absl::StrCat(kRows, "\t", expected_sum, "\t", kRows));
  // OPTIMIZE ... FINAL merges them for good.
  Query(absl::StrCat("OPTIMIZE TABLE ", table_, " FINAL"));
  EXPECT_EQ(Query(absl::StrCat("SELECT count() FROM ", table_)), absl::StrCat(kRows));
}

// A test that kills its server runs on a server of its own.
class ClickHouseOutageTest : public ClickHouseSinkTest {
 protected:
  static void SetUpTestSuite() {
    shared_ = g_server;
    absl::StatusOr<std::unique_ptr<testing::ClickHouseServer>> server =
        testing::ClickHouseServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    g_server = server->release();
  }
  static void TearDownTestSuite() {
    delete g_server;
    g_server = shared_;
    shared_ = nullptr;
  }
  static inline testing::ClickHouseServer* shared_ = nullptr;
};

TEST_F(ClickHouseOutageTest, ServerKilledMidRunAndRestartedLosesNothing) {
  constexpr int kRows = 3000;
  clickhouse::SinkOptions options = Options();
  options.max_linger = absl::Milliseconds(20);
  options.connection.max_attempts = 100;
  options.connection.initial_backoff = absl::Milliseconds(50);
  options.connection.max_backoff = absl::Milliseconds(250);
  // A quarter of the rows first; the rest comes while the server is down,
  // so the sink must insert into the outage, and the job cannot end before
  // the server is back.
  std::vector<testing::TimestampedValue<Row>> rows;
  for (Row& row : Rows(kRows)) rows.push_back({std::move(row), 0});
  auto source =
      testing::ScriptedSource<Row>::Create(std::move(rows), {.records_per_poll = 64}, kRows / 4);
  auto pipeline = Build(source, options, {.parallelism = 2, .job_name = "clickhouse-test"});
  testing::StderrCapture capture;
  absl::StatusOr<JobHandle> job = pipeline->Start();
  ASSERT_TRUE(job.ok()) << job.status();
  auto count = [&] {
    int64_t rows_now = -1;
    return absl::SimpleAtoi(Query(absl::StrCat("SELECT count() FROM ", table_)), &rows_now)
               ? rows_now
               : -1;
  };
  ASSERT_TRUE(testing::WaitFor([&] { return count() > 0; }));
  const int64_t before_kill = count();
  g_server->Kill();
  source->Release(kRows);
  // The server stays down until the sink has seen it go.
  ASSERT_TRUE(testing::WaitFor([&] {
    return absl::StrContains(capture.Text(), "no answer from ClickHouse");
  })) << capture.Text();
  ASSERT_FALSE(job->done()) << "the job ended before the server came back";
  ASSERT_TRUE(g_server->Restart().ok());
  absl::Status status = job->Wait();
  const std::string log = capture.Stop();
  ASSERT_TRUE(status.ok()) << status;
  // The outage is in the log when it starts and when it ends.
  EXPECT_THAT(log, ::testing::HasSubstr("no answer from ClickHouse")) << log;
  EXPECT_THAT(log, ::testing::HasSubstr("; retrying, up to 100 attempts")) << log;
  EXPECT_THAT(log, ::testing::HasSubstr("answers again after")) << log;
  EXPECT_GT(before_kill, 0);
  EXPECT_LT(before_kill, kRows);
  EXPECT_EQ(Query(absl::StrCat("SELECT count(), uniqExact(id) FROM ", table_, " FINAL FORMAT TSV")),
            absl::StrCat(kRows, "\t", kRows));
}

TEST_F(ClickHouseSinkTest, BadPasswordFailsTheJobNamingTheSink) {
  clickhouse::SinkOptions options = Options();
  options.connection.password = "not-the-password";
  auto pipeline = Build(Rows(10), options, 1, 0);
  const absl::Time start = absl::Now();
  absl::Status status = pipeline->Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("clickhouse sink 'default.", table_, "'")));
  EXPECT_THAT(status.message(), HasSubstr("Wrong password"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "an authentication error is not retried";
}

TEST_F(ClickHouseSinkTest, UnknownTableAndUnknownSettingAreNotRetried) {
  clickhouse::SinkOptions options = Options();
  options.table = "no_such_table";
  absl::Status status = Build(Rows(10), options, 1, 0)->Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr("no_such_table"));

  options = Options();
  options.connection.settings = {{"no_such_setting", "1"}};
  status = Build(Rows(10), options, 1, 0)->Run();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("no_such_setting"));
}

// A ReplacingMergeTree without a version keeps the last row inserted, which
// a late insert can make an old one (below): a writer refuses it unless the
// rows never change, and refuses a version column it does not write.
TEST_F(ClickHouseSinkTest, UpdatedRowsWithoutAVersionAreRefusedAtStart) {
  const std::string table = table_ + "_unversioned";
  ASSERT_TRUE(clickhouse::CreateTable(g_server->Connection(), ReadingColumns(),
                                      {.table = table, .order_by = {"id"}})
                  .ok());
  clickhouse::SinkOptions options = Options();
  options.table = table;
  absl::StatusOr<std::unique_ptr<SinkWriter<Reading>>> writer =
      clickhouse::Sink<Reading>(options, ReadingColumns())->CreateWriter({.operator_name = "x"});
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument) << writer.status();
  EXPECT_THAT(writer.status().message(), HasSubstr("without a version column"));
  EXPECT_THAT(writer.status().message(), HasSubstr(table));

  options.immutable_rows = true;  // a key's row never changes: any copy may win
  writer = clickhouse::Sink<Reading>(options, ReadingColumns())->CreateWriter({});
  EXPECT_TRUE(writer.ok()) << writer.status();

  // The table's version (RowColumns' "version") must be written.
  options = Options();
  writer = clickhouse::Sink<Reading>(options, ReadingColumns())->CreateWriter({});
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument) << writer.status();
  EXPECT_THAT(writer.status().message(), HasSubstr("version column version is not written"));
  (void)clickhouse::Query(g_server->Connection(), absl::StrCat("DROP TABLE IF EXISTS ", table));
}

// An insert that times out on the client but commits on the server after its
// retry and after the next batch must not win: the proxy holds the first
// attempt of batch 2 while the sink times out, retries batch 2 on a new
// connection and inserts batch 3 (a newer value for the same key); then it
// delivers attempt 1, which the server commits last. The records carry no
// version: the table's is weir's batch version.
TEST_F(ClickHouseSinkTest, AnInsertCommittedLateAfterItsRetryDoesNotWin) {
  for (clickhouse::Format format :
       {clickhouse::Format::kJsonEachRow, clickhouse::Format::kRowBinary}) {
    SCOPED_TRACE(format == clickhouse::Format::kRowBinary ? "RowBinary" : "JSONEachRow");
    const std::string table = absl::StrCat(table_, "_late", static_cast<int>(format));
    ASSERT_TRUE(clickhouse::CreateTable(
                    g_server->Connection(), ReadingColumns(),
                    {.table = table, .order_by = {"id"}, .batch_version_column = "weir_version"})
                    .ok());
    absl::StatusOr<std::unique_ptr<testing::HoldingProxy>> proxy =
        testing::HoldingProxy::Start(g_server->http_port());
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    clickhouse::SinkOptions options = Options();
    options.table = table;
    options.connection.url = absl::StrCat("http://127.0.0.1:", (*proxy)->port());
    options.connection.request_timeout = absl::Milliseconds(500);
    options.connection.initial_backoff = absl::Milliseconds(10);
    options.batch_version_column = "weir_version";
    options.format = format;
    auto sink = clickhouse::Sink<Reading>(options, ReadingColumns());
    absl::StatusOr<std::unique_ptr<SinkWriter<Reading>>> writer =
        sink->CreateWriter({.operator_name = "late"});
    ASSERT_TRUE(writer.ok()) << writer.status();
    const auto write = [&](int64_t value) {
      std::vector<Reading> readings = {{.id = 1, .value = value}};
      const std::vector<Timestamp> timestamps = {0};
      absl::Status status = (*writer)->Write(std::span<Reading>(readings), timestamps);
      if (status.ok()) status = (*writer)->Flush();
      return status;
    };
    const std::string latest = absl::StrCat("SELECT value FROM ", table, " FINAL WHERE id = 1");
    ASSERT_TRUE(write(1).ok());
    ASSERT_EQ(Query(latest), "1");

    (*proxy)->HoldNextSender();
    absl::Status status = write(2);  // attempt 1 held; the retry commits
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_GT((*proxy)->held_bytes(), 0u);
    ASSERT_EQ(Query(latest), "2");
    ASSERT_TRUE(write(3).ok());
    ASSERT_EQ(Query(latest), "3");

    ASSERT_TRUE((*proxy)->ReleaseAndWaitForAnswer(absl::Seconds(10)));
    EXPECT_EQ(Query(latest), "3") << "the late attempt of batch 2 won over batch 3";
    ASSERT_TRUE((*writer)->Close().ok());
    (void)clickhouse::Query(g_server->Connection(), absl::StrCat("DROP TABLE IF EXISTS ", table));
  }
}

// At a checkpoint barrier the writer hands the insert of the rows before it
// to its own thread (PreCommitAsync) and returns: while ClickHouse has not
// answered that insert (the proxy holds it), the worker writes the rows
// after the barrier, and the pre-commit completes only once the insert is in.
TEST_F(ClickHouseSinkTest, AnAsynchronousPreCommitLetsTheWorkerWriteWhileTheInsertIsHeld) {
  const std::string table = absl::StrCat(table_, "_async");
  ASSERT_TRUE(clickhouse::CreateTable(g_server->Connection(), ReadingColumns(),
                                      {.table = table, .order_by = {"id"}})
                  .ok());
  absl::StatusOr<std::unique_ptr<testing::HoldingProxy>> proxy =
      testing::HoldingProxy::Start(g_server->http_port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  clickhouse::SinkOptions options = Options();
  options.table = table;
  options.immutable_rows = true;
  options.connection.url = absl::StrCat("http://127.0.0.1:", (*proxy)->port());
  options.connection.request_timeout = absl::Seconds(60);  // the held insert waits
  options.max_linger = absl::Minutes(1);                   // rows wait for the barrier
  auto sink = clickhouse::Sink<Reading>(options, ReadingColumns());
  absl::StatusOr<std::unique_ptr<SinkWriter<Reading>>> writer =
      sink->CreateWriter({.operator_name = "async"});
  ASSERT_TRUE(writer.ok()) << writer.status();
  const auto write = [&](uint64_t first, uint64_t count) {
    std::vector<Reading> readings;
    std::vector<Timestamp> timestamps;
    for (uint64_t id = first; id < first + count; ++id) {
      readings.push_back({.id = id, .value = static_cast<int64_t>(id)});
      timestamps.push_back(0);
    }
    return (*writer)->Write(std::span<Reading>(readings), timestamps);
  };
  const std::string count = absl::StrCat("SELECT count() FROM ", table);
  ASSERT_TRUE(write(1, 100).ok());

  (*proxy)->HoldNextSender();
  std::promise<absl::StatusOr<std::string>> pre_committed;
  SinkWriter<Reading>::PreCommitDone done = [&](absl::StatusOr<std::string> committable) {
    pre_committed.set_value(std::move(committable));
  };
  const absl::Time barrier = absl::Now();
  ASSERT_TRUE((*writer)->PreCommitAsync(7, done));
  EXPECT_LT(absl::Now() - barrier, absl::Seconds(1)) << "PreCommitAsync waited for the insert";
  ASSERT_TRUE(testing::WaitFor([&] { return (*proxy)->held_bytes() > 0; }, absl::Seconds(10)));
  // The rows after the barrier are written while the insert is held.
  ASSERT_TRUE(write(101, 100).ok());
  std::future<absl::StatusOr<std::string>> result = pre_committed.get_future();
  EXPECT_EQ(result.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "the pre-commit completed before its insert was answered";
  EXPECT_EQ(Query(count), "0");

  ASSERT_TRUE((*proxy)->ReleaseAndWaitForAnswer(absl::Seconds(10)));
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(result.get().ok());
  EXPECT_EQ(Query(count), "100") << "the pre-commit's rows, and only those";
  ASSERT_TRUE((*writer)->Flush().ok());
  EXPECT_EQ(Query(count), "200");
  ASSERT_TRUE((*writer)->Close().ok());
  (void)clickhouse::Query(g_server->Connection(), absl::StrCat("DROP TABLE IF EXISTS ", table));
}

// Retries that never succeed fail the job with kUnavailable, naming the
// sink, the last answer and the attempts made; the server saw exactly
// max_attempts inserts, and nothing reached the table.
TEST_F(ClickHouseSinkTest, ExhaustedRetriesFailTheJobWithUnavailable) {
  ScriptedFront front(g_server->http_port());
  front.FailWith(503, "no healthy upstream");
  front.Script({}, ScriptedFront::Action::kFail);
  clickhouse::SinkOptions options = Options();
  options.connection.url = front.url();
  options.connection.max_attempts = 3;
  options.connection.initial_backoff = absl::Milliseconds(10);
  options.connection.max_backoff = absl::Milliseconds(20);
  absl::Status status = Build(Rows(10), options, 1, 0)->Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("clickhouse sink 'default.", table_, "'")))
      << status;
  EXPECT_THAT(status.message(), HasSubstr("rows: HTTP 503")) << status;
  EXPECT_THAT(status.message(), HasSubstr("no healthy upstream")) << status;
  EXPECT_THAT(status.message(), HasSubstr("(gave up after 3 attempts)")) << status;
  EXPECT_EQ(front.inserts().size(), 3u);
  EXPECT_EQ(Query(absl::StrCat("SELECT count() FROM ", table_)), "0");
}

// A transient server error (ClickHouse's 500 for too many parts, which the
// same insert survives a little later) is retried with the same rows, and
// they arrive once: the table is a plain MergeTree, where a second copy
// would stay and be counted.
TEST_F(ClickHouseSinkTest, ATransientServerErrorIsRetriedAndTheRowsArriveOnce) {
  constexpr int kRows = 100;
  ScriptedFront front(g_server->http_port());
  front.FailWith(500,
                 "Code: 252, e.displayText() = DB::Exception: Too many parts (300). Merges are "
                 "processing significantly slower than inserts., e.what() = DB::Exception\n");
  front.Script({ScriptedFront::Action::kFail});
  clickhouse::SinkOptions options = PlainTableBehind(front);
  options.connection.initial_backoff = absl::Milliseconds(10);
  testing::StderrCapture capture;
  absl::Status status = Build(Rows(kRows), options, 1, 0)->Run();
  const std::string log = capture.Stop();
  ASSERT_TRUE(status.ok()) << status;
  std::vector<ScriptedFront::Insert> inserts = front.inserts();
  ASSERT_GE(inserts.size(), 2u);
  EXPECT_EQ(inserts[0].action, ScriptedFront::Action::kFail);
  EXPECT_EQ(inserts[1].action, ScriptedFront::Action::kForward);
  EXPECT_EQ(inserts[1].body, inserts[0].body) << "the retry carries other rows";
  EXPECT_THAT(log, HasSubstr("Too many parts")) << log;
  EXPECT_THAT(log, HasSubstr("; retrying, up to 8 attempts")) << log;
  EXPECT_EQ(Query(absl::StrCat("SELECT count(), uniqExact(id), sum(id) FROM ", PlainTable(),
                               " FORMAT TSV")),
            absl::StrCat(kRows, "\t", kRows, "\t", kRows * (kRows - 1) / 2));
}

// request_timeout bounds one attempt. An insert the server does not answer
// is abandoned after it and retried: the retry succeeds, and the held
// attempt is never forwarded, so the rows arrive once. A server that
// answers no attempt in time fails the writer with kUnavailable after
// max_attempts. Only lower bounds on the time are asserted; the 60 s of
// WriteAndFlush fail the test instead of hanging it if a request is never
// abandoned.
TEST_F(ClickHouseSinkTest, RequestTimeoutAbandonsAnInsertTheServerDoesNotAnswer) {
  constexpr int kRows = 10;
  ScriptedFront front(g_server->http_port());
  clickhouse::SinkOptions options = PlainTableBehind(front);
  options.connection.request_timeout = absl::Milliseconds(500);
  options.connection.max_attempts = 2;
  options.connection.initial_backoff = absl::Milliseconds(10);
  options.max_linger = absl::Hours(1);  // only Flush inserts
  auto sink = clickhouse::Sink<Row>(options, RowColumns());
  absl::StatusOr<std::unique_ptr<SinkWriter<Row>>> writer =
      sink->CreateWriter({.operator_name = "clickhouse"});
  ASSERT_TRUE(writer.ok()) << writer.status();

  front.Script({ScriptedFront::Action::kHold});
  Flushed flushed = WriteAndFlush(**writer, Rows(kRows), front);
  ASSERT_TRUE(flushed.returned) << "an unanswered insert was not abandoned within 60 s";
  ASSERT_TRUE(flushed.status.ok()) << flushed.status;
  EXPECT_GE(flushed.took, options.connection.request_timeout);
  std::vector<ScriptedFront::Insert> inserts = front.inserts();
  ASSERT_EQ(inserts.size(), 2u);
  EXPECT_EQ(inserts[0].action, ScriptedFront::Action::kHold);
  EXPECT_EQ(inserts[1].action, ScriptedFront::Action::kForward);
  EXPECT_EQ(inserts[1].body, inserts[0].body);
  const std::string counts =
      absl::StrCat("SELECT count(), uniqExact(id) FROM ", PlainTable(), " FORMAT TSV");
  EXPECT_EQ(Query(counts), absl::StrCat(kRows, "\t", kRows));

  front.Script({ScriptedFront::Action::kHold, ScriptedFront::Action::kHold});
  flushed = WriteAndFlush(**writer, Rows(kRows), front);
  ASSERT_TRUE(flushed.returned) << "unanswered inserts were not abandoned within 60 s";
  EXPECT_EQ(flushed.status.code(), absl::StatusCode::kUnavailable) << flushed.status;
  EXPECT_THAT(flushed.status.message(), HasSubstr("no answer from ClickHouse")) << flushed.status;
  EXPECT_THAT(flushed.status.message(), HasSubstr("Timeout was reached")) << flushed.status;
  EXPECT_THAT(flushed.status.message(), HasSubstr("(gave up after 2 attempts)")) << flushed.status;
  EXPECT_GE(flushed.took, 2 * options.connection.request_timeout);
  EXPECT_EQ(front.inserts().size(), 4u);
  EXPECT_EQ(Query(counts), absl::StrCat(kRows, "\t", kRows)) << "a held insert was forwarded";
  EXPECT_TRUE((*writer)->Close().ok());
}

// max_batch_bytes splits the rows of one Write into inserts: each insert
// but the last reaches the size, none holds a row after the one that
// reached it, and together they carry every row once, in order.
TEST_F(ClickHouseSinkTest, MaxBatchBytesSplitsTheInserts) {
  constexpr int kRows = 500;  // about 110 bytes each
  constexpr size_t kMaxBatchBytes = 2048;
  ScriptedFront front(g_server->http_port());
  clickhouse::SinkOptions options = PlainTableBehind(front);
  options.max_batch_bytes = kMaxBatchBytes;
  options.max_linger = absl::Hours(1);  // only the size and Flush insert
  auto sink = clickhouse::Sink<Row>(options, RowColumns());
  absl::StatusOr<std::unique_ptr<SinkWriter<Row>>> writer =
      sink->CreateWriter({.operator_name = "clickhouse"});
  ASSERT_TRUE(writer.ok()) << writer.status();
  Flushed flushed = WriteAndFlush(**writer, Rows(kRows), front);
  ASSERT_TRUE(flushed.returned);
  ASSERT_TRUE(flushed.status.ok()) << flushed.status;

  std::string all_rows;  // JSONEachRow: one object per line
  for (const Row& row : Rows(kRows)) {
    RowColumns().AppendRow(row, all_rows);
    all_rows.push_back('\n');
  }
  ASSERT_GT(all_rows.size(), 10 * kMaxBatchBytes);
  std::vector<ScriptedFront::Insert> inserts = front.inserts();
  ASSERT_GE(inserts.size(), 10u);
  std::string joined;
  for (size_t insert_idx = 0; insert_idx < inserts.size(); ++insert_idx) {
    const std::string& body = inserts[insert_idx].body;
    ASSERT_TRUE(absl::EndsWith(body, "\n")) << "insert " << insert_idx;
    const size_t last_row_end = body.rfind('\n', body.size() - 2);
    const size_t before_last_row = last_row_end == std::string::npos ? 0 : last_row_end + 1;
    EXPECT_LT(before_last_row, kMaxBatchBytes)
        << "insert " << insert_idx << " went on after reaching max_batch_bytes";
    if (insert_idx + 1 < inserts.size()) {
      EXPECT_GE(body.size(), kMaxBatchBytes)
          << "insert " << insert_idx << " was sent before it reached max_batch_bytes";
    }
    joined += body;
  }
  EXPECT_TRUE(joined == all_rows) << "the inserts do not carry every row once, in order";
  EXPECT_EQ(Query(absl::StrCat("SELECT count(), uniqExact(id) FROM ", PlainTable(), " FORMAT TSV")),
            absl::StrCat(kRows, "\t", kRows));
  EXPECT_TRUE((*writer)->Close().ok());
}

TEST_F(ClickHouseSinkTest, PartitionsAreThirtyMinuteBuckets) {
  std::vector<Row> rows = Rows(6);
  const int64_t offsets_s[] = {0, 29 * 60 + 59, 30 * 60, 59 * 60 + 59, 60 * 60, 2 * 3600 + 15 * 60};
  for (size_t idx = 0; idx < rows.size(); ++idx) rows[idx].ts_ms = kBaseMs + offsets_s[idx] * 1000;
  ASSERT_TRUE(Build(rows, Options(), 1, 0)->Run().ok());
  EXPECT_EQ(Query(absl::StrCat("SELECT DISTINCT partition FROM system.parts WHERE database = "
                               "'default' AND table = '",
                               table_, "' AND active ORDER BY partition FORMAT TSV")),
            "2026-01-01 00:00:00\n2026-01-01 00:30:00\n2026-01-01 01:00:00\n"
            "2026-01-01 02:00:00");
}

}  // namespace
}  // namespace weir
