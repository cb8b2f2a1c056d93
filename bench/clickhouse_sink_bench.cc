// ClickHouse sink throughput (bench/README.md): rows/s of the enriched engagement row
// through a weir pipeline into a local clickhouse-server (started by the
// bench, as the tests do), against `curl --data-binary` of the same rows as
// one JSONEachRow file into the same table, in the same run.
//
// The rows are built before timing; each contender inserts into a freshly
// created ReplacingMergeTree (30-minute partitions) and the bench checks
// that the table holds every row afterwards. ClickHouse runs on the same
// machine, so the figures are of the whole system (encoding, HTTP, parsing,
// writing parts), read as a ratio to the baseline.
//
//   weir-bench-clickhouse [--events=1000000] [--json=ch.json] [--parallelism=1,2] [--repeat=2]

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "bench/workload_events.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "weir/connectors/clickhouse.h"
#include "weir/testing.h"
#include "weir/weir.h"

extern char** environ;

namespace weir::bench {
namespace {

constexpr char kTable[] = "enriched_events";
constexpr std::array<std::string_view, 4> kEventTypes = {"play", "pause", "finish", "click"};
constexpr std::array<std::string_view, 3> kContentTypes = {"video", "article", "podcast"};

// An engagement event joined with its content row, as the engagement
// pipeline writes it to ClickHouse.
struct Enriched {
  uint64_t content_id = 0;
  uint64_t user_id = 0;
  std::string_view event_type;
  int64_t event_ts = 0;  // ms
  int32_t duration_ms = 0;
  std::string_view device;
  double engagement_seconds = 0;
  double engagement_pct = 0;
  std::string slug;
  std::string title;
  std::string_view content_type;
  int32_t length_seconds = 0;
  int64_t publish_ts = 0;  // ms
};

clickhouse::Columns<Enriched> EnrichedColumns() {
  return clickhouse::Columns<Enriched>()
      .Add("content_id", &Enriched::content_id)
      .Add("user_id", &Enriched::user_id)
      .Add("event_type", &Enriched::event_type)
      .AddDateTime("event_ts", &Enriched::event_ts)
      .Add("duration_ms", &Enriched::duration_ms)
      .Add("device", &Enriched::device)
      .Add("engagement_seconds", &Enriched::engagement_seconds)
      .Add("engagement_pct", &Enriched::engagement_pct)
      .Add("slug", &Enriched::slug)
      .Add("title", &Enriched::title)
      .Add("content_type", &Enriched::content_type)
      .Add("length_seconds", &Enriched::length_seconds)
      .AddDateTime("publish_ts", &Enriched::publish_ts);
}

std::vector<testing::TimestampedValue<Enriched>> EnrichedRows(const std::vector<Event>& events) {
  std::vector<testing::TimestampedValue<Enriched>> rows;
  rows.reserve(events.size());
  for (const Event& e : events) {
    Enriched row;
    row.content_id = e.content_id;
    row.user_id = e.user_id;
    row.event_type = kEventTypes[static_cast<int>(e.event_type)];
    row.event_ts = e.event_ts;
    row.duration_ms = e.duration_ms;
    row.device = e.device;
    row.length_seconds = 60 + static_cast<int32_t>(e.content_id * 7919 % 3540);
    row.engagement_seconds = e.duration_ms / 1000.0;
    row.engagement_pct = std::min(1.0, row.engagement_seconds / row.length_seconds);
    row.slug = absl::StrCat("content-", e.content_id);
    row.title = absl::StrCat("The \"story\" of item ", e.content_id, " \xe2\x80\x94 part ",
                             e.content_id % 7);
    row.content_type = kContentTypes[e.content_id % kContentTypes.size()];
    row.publish_ts = 1'700'000'000'000 + static_cast<int64_t>(e.content_id) * 60'000;
    rows.push_back({std::move(row), e.event_ts});
  }
  return rows;
}

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

std::string QueryOrDie(const clickhouse::ConnectionOptions& connection, const std::string& sql) {
  absl::StatusOr<std::string> answer = clickhouse::Query(connection, sql);
  Check(answer.status(), sql.c_str());
  return std::string(absl::StripTrailingAsciiWhitespace(*answer));
}

void RecreateTable(const clickhouse::ConnectionOptions& connection) {
  QueryOrDie(connection, absl::StrCat("DROP TABLE IF EXISTS ", kTable));
  Check(clickhouse::CreateTable(connection, EnrichedColumns(),
                                {.table = kTable,
                                 .order_by = {"content_id", "event_ts", "user_id"},
                                 .partition_time_column = "event_ts"}),
        "CREATE TABLE");
}

void ExpectRows(const clickhouse::ConnectionOptions& connection, uint64_t events, const char* who) {
  std::string count = QueryOrDie(connection, absl::StrCat("SELECT count() FROM ", kTable));
  if (count != absl::StrCat(events)) {
    std::fprintf(stderr, "%s: the table holds %s rows, expected %llu\n", who, count.c_str(),
                 static_cast<unsigned long long>(events));
    std::exit(1);
  }
}

double RunWeir(const clickhouse::ConnectionOptions& connection,
               const std::shared_ptr<testing::VectorSource<Enriched>>& source, int parallelism,
               clickhouse::Format format, clickhouse::Compression compression, uint64_t events) {
  RecreateTable(connection);
  PipelineOptions pipeline_options;
  pipeline_options.parallelism = parallelism;
  Pipeline pipeline(pipeline_options);
  clickhouse::SinkOptions options;
  options.connection = connection;
  options.table = kTable;
  options.format = format;
  options.compression = compression;
  options.immutable_rows = true;  // one row per event: no version needed
  pipeline.Source(source).Sink(clickhouse::Sink<Enriched>(options, EnrichedColumns()));
  const auto start = std::chrono::steady_clock::now();
  Check(pipeline.Run(), "weir pipeline");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ExpectRows(connection, events, "weir");
  return seconds;
}

// curl --data-binary @file into the same table: one request, ClickHouse
// parses the whole file.
double RunCurl(const clickhouse::ConnectionOptions& connection, const std::string& file,
               uint64_t events) {
  RecreateTable(connection);
  std::vector<std::string> names = EnrichedColumns().Names();
  std::string query = absl::StrCat("INSERT INTO ", kTable, " FORMAT JSONEachRow");
  std::string url = absl::StrCat(connection.url, "/?query=");
  for (char c : query) absl::StrAppend(&url, c == ' ' ? "%20" : std::string(1, c));
  std::vector<std::string> args = {"curl",
                                   "-sS",
                                   "--fail-with-body",
                                   "-o",
                                   "/dev/null",
                                   "-u",
                                   absl::StrCat(connection.user, ":", connection.password),
                                   "--data-binary",
                                   absl::StrCat("@", file),
                                   url};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (::posix_spawnp(&pid, "curl", nullptr, nullptr, argv.data(), environ) != 0) {
    std::perror("posix_spawnp curl");
    std::exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "curl failed (status %d)\n", status);
    std::exit(1);
  }
  ExpectRows(connection, events, "curl");
  return seconds;
}

int Main(int argc, char** argv) {
  BenchFlags flags = ParseFlags(argc, argv, 1'000'000);
  if (flags.repeat == 3) flags.repeat = 2;  // each run moves the whole data set through ClickHouse
  GeneratorOptions gen;
  gen.events = flags.events;
  gen.zipf = flags.zipf;
  std::vector<testing::TimestampedValue<Enriched>> rows = EnrichedRows(GenerateEvents(gen));

  absl::StatusOr<std::unique_ptr<testing::ClickHouseServer>> server =
      testing::ClickHouseServer::Start();
  Check(server.status(), "starting clickhouse-server");
  const clickhouse::ConnectionOptions connection = (*server)->Connection();

  // The baseline's input: the same rows as a JSONEachRow file.
  ScratchDir scratch("weir-bench-clickhouse");
  const std::string file = scratch.path() + "/rows.json";
  double file_bytes = 0;
  {
    clickhouse::Columns<Enriched> columns = EnrichedColumns();
    std::string text;
    for (const auto& row : rows) {
      columns.AppendRow(row.value, text);
      text.push_back('\n');
    }
    file_bytes = static_cast<double>(text.size());
    std::ofstream out(file, std::ios::binary);
    out << text;
  }
  testing::VectorSourceOptions source_options;
  source_options.splits = 4;
  auto source = testing::VectorSource<Enriched>::Create(std::move(rows), source_options);

  struct Contender {
    std::string name;
    std::string variant;
    int parallelism;
    clickhouse::Format format;
    clickhouse::Compression compression;
    double best = 1e30;
  };
  using clickhouse::Compression;
  using clickhouse::Format;
  const int max_parallelism = *std::max_element(flags.parallelism.begin(), flags.parallelism.end());
  std::vector<Contender> contenders = {
      {"baseline", "curl --data-binary JSONEachRow", 1, Format::kJsonEachRow, Compression::kNone}};
  for (int p : flags.parallelism) {
    contenders.push_back({"weir", "JSONEachRow", p, Format::kJsonEachRow, Compression::kNone});
  }
  contenders.push_back(
      {"weir", "JSONEachRow+gzip", max_parallelism, Format::kJsonEachRow, Compression::kGzip});
  for (int p : flags.parallelism) {
    contenders.push_back({"weir", "RowBinary", p, Format::kRowBinary, Compression::kNone});
  }

  std::printf("ClickHouse sink: %llu enriched rows (%.0f MB of JSONEachRow), best of %d runs\n",
              static_cast<unsigned long long>(flags.events), file_bytes / 1e6, flags.repeat);
  // Contenders alternate so that machine noise hits all of them alike.
  for (int round = 0; round < flags.repeat; ++round) {
    for (Contender& c : contenders) {
      const double seconds = c.name == "baseline" ? RunCurl(connection, file, flags.events)
                                                  : RunWeir(connection, source, c.parallelism,
                                                            c.format, c.compression, flags.events);
      c.best = std::min(c.best, seconds);
    }
  }
  const double n = static_cast<double>(flags.events);
  std::vector<BenchResult> results;
  for (const Contender& c : contenders) {
    results.push_back(
        {c.name, c.variant, c.parallelism, n / c.best, c.best, {{"bytes", file_bytes}}});
  }
  for (const BenchResult& r : results) {
    std::printf("  %-8s %-32s p=%d  %10.0f rows/s  (%.3f s)  %.2fx baseline\n", r.name.c_str(),
                r.variant.c_str(), r.parallelism, r.events_per_sec, r.seconds,
                r.events_per_sec / results[0].events_per_sec);
  }
  WriteJson(flags.json, "clickhouse-sink", flags.events, results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
