// W6, mirroring a table (bench/README.md): N Debezium changes of a
// 10-column table (75% inserts, 20% updates, 5% deletes) in the local broker
// (librdkafka's mock cluster, in-process), then in one run:
//
//   1. weir-mirror (mirror_app::RunMirror, bounded) into ClickHouse, RowBinary;
//   2. the same final rows as one RowBinary file, `curl --data-binary` into the
//      same kind of table (the server's own ceiling; the ClickHouse sink bench's
//      baseline, over HTTP as clickhouse-client would be over its native port);
//   3. weir-mirror into a DuckDB file.
//
// Each run's copy is checked against the final rows (count and a checksum).
// ClickHouse runs on this machine (started by the bench, as the tests do).
//
//   weir-bench-w6 [--changes=1000000] [--partitions=128] [--parallelism=2]
//                 [--with-schema] [--no-duckdb] [--json=w6.json]

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "bench/workload_events.h"
#include "examples/mirror/mirror_app.h"
#include "tests/support/debezium_envelopes.h"
#include "tests/unit/connectors/clickhouse/clickhouse_server.h"
#include "tests/unit/connectors/kafka/kafka_test_broker.h"
#include "weir/connectors/clickhouse.h"
#ifdef WEIR_MIRROR_DUCKDB
#include "weir/connectors/duckdb_mirror.h"
#endif

extern char** environ;

namespace weir::bench {
namespace {

constexpr char kTopic[] = "bench.public.items";

struct Item {
  int64_t id = 0;
  int32_t account = 0;
  int32_t qty = 0;
  int64_t price_cents = 0;  // Decimal(12,2)
  int64_t total_units = 0;  // Decimal(18,4)
  std::string_view status;
  std::optional<std::string> note;
  bool active = false;
  int64_t updated_us = 0;
  double score = 0;
};

constexpr std::string_view kStatuses[] = {"new", "paid", "shipped", "returned"};

const testing::EnvelopeTable& Table() {
  static const testing::EnvelopeTable table{
      .table = "items",
      .columns =
          {{"id", R"("type":"int64","optional":false)"},
           {"account", R"("type":"int32","optional":false)"},
           {"qty", R"("type":"int32","optional":false)"},
           {"price",
            R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"})"},
           {"total",
            R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"4","connect.decimal.precision":"18"})"},
           {"status", R"("type":"string","optional":false)"},
           {"note", R"("type":"string","optional":true)"},
           {"active", R"("type":"boolean","optional":false)"},
           {"updated",
            R"("type":"int64","optional":false,"name":"io.debezium.time.MicroTimestamp","version":1)"},
           {"score", R"("type":"double","optional":false)"}},
      .key = {"id"}};
  return table;
}

// The schemaless records' declared schema (RowTable).
debezium::RowTable Declared() {
  return {
      .table = "public.items",
      .columns = {{.name = "id", .type = ColumnType::kInt64},
                  {.name = "account", .type = ColumnType::kInt32},
                  {.name = "qty", .type = ColumnType::kInt32},
                  {.name = "price", .type = ColumnType::kDecimal, .precision = 12, .scale = 2},
                  {.name = "total", .type = ColumnType::kDecimal, .precision = 18, .scale = 4},
                  {.name = "status", .type = ColumnType::kString},
                  {.name = "note", .type = ColumnType::kString, .nullable = true},
                  {.name = "active", .type = ColumnType::kBool},
                  {.name = "updated", .type = ColumnType::kTimestamp, .unit = RowTimeUnit::kMicros},
                  {.name = "score", .type = ColumnType::kFloat64}},
      .key = {"id"},
      .decimal_mode = debezium::DecimalMode::kPrecise};
}

std::string RowJson(const Item& item) {
  return absl::StrCat(R"({"id":)", item.id, R"(,"account":)", item.account, R"(,"qty":)", item.qty,
                      R"(,"price":")", testing::DecimalBase64(item.price_cents), R"(","total":")",
                      testing::DecimalBase64(item.total_units), R"(","status":")",
                      std::string(item.status), R"(","note":)",
                      item.note ? absl::StrCat("\"", *item.note, "\"") : "null", R"(,"active":)",
                      item.active ? "true" : "false", R"(,"updated":)", item.updated_us,
                      R"(,"score":)", absl::StrCat(item.score), "}");
}

// Generates the changes in order, keeping the final rows.
class History {
 public:
  History(int partitions, bool with_schema) : partitions_(partitions), with_schema_(with_schema) {}

  kafka::testing::TestRecord Next() {
    const int64_t roll = static_cast<int64_t>(random_() % 100);
    std::string op = "c";
    Item item;
    if (live_.empty() || roll < 75) {
      item.id = next_id_++;
    } else {
      const size_t at = random_() % live_.size();
      item.id = live_[at];
      if (roll >= 95) {
        live_[at] = live_.back();
        live_.pop_back();
        final_.erase(item.id);
        ++deletes_;
        const std::string key = Key(item.id);
        const std::string before = absl::StrCat(
            R"({"id":)", item.id,
            R"(,"account":0,"qty":0,"price":"AA==","total":"AA==","status":"","note":null,"active":false,"updated":0,"score":0})");
        return Record(item.id, key, Value("d", before, std::nullopt));
      }
      op = "u";
      ++updates_;
    }
    item.account = static_cast<int32_t>(random_() % 100'000);
    item.qty = static_cast<int32_t>(random_() % 1000);
    item.price_cents = static_cast<int64_t>(random_() % 10'000'000'000);
    item.total_units = static_cast<int64_t>(random_() % 100'000'000'000'000);
    item.status = kStatuses[random_() % 4];
    if (random_() % 3 != 0) item.note = absl::StrCat("note ", random_() % 1'000'000);
    item.active = random_() % 2 == 0;
    item.updated_us = 1'700'000'000'000'000 + static_cast<int64_t>(random_() % 1'000'000'000'000);
    item.score = static_cast<double>(random_() % 1'000'000) / 64.0;
    if (op == "c") {
      live_.push_back(item.id);
      ++inserts_;
    }
    final_[item.id] = item;
    return Record(item.id, Key(item.id), Value(op, std::nullopt, RowJson(item)));
  }

  const std::unordered_map<int64_t, Item>& final_rows() const { return final_; }
  int64_t inserts() const { return inserts_; }
  int64_t updates() const { return updates_; }
  int64_t deletes() const { return deletes_; }

 private:
  std::string Key(int64_t id) const {
    return with_schema_ ? Table().Key(absl::StrCat(R"({"id":)", id, "}"))
                        : absl::StrCat(R"({"id":)", id, "}");
  }
  std::string Value(const std::string& op, const std::optional<std::string>& before,
                    const std::optional<std::string>& after) {
    ++position_;
    if (with_schema_) return Table().Value(op, before, after, {.lsn = position_ * 8});
    return absl::StrCat(
        R"({"before":)", before.value_or("null"), R"(,"after":)", after.value_or("null"),
        R"(,"source":{"version":"2.5.0.Final","connector":"postgresql","name":"bench","ts_ms":1700000000000,"db":"shop","schema":"public","table":"items","lsn":)",
        position_ * 8, R"(},"op":")", op, R"(","ts_ms":1700000000005})");
  }
  kafka::testing::TestRecord Record(int64_t id, std::string key, std::string value) const {
    return {.key = std::move(key),
            .value = std::move(value),
            .partition = static_cast<int32_t>(id % partitions_)};
  }

  const int partitions_;
  const bool with_schema_;
  std::mt19937_64 random_{6};
  int64_t next_id_ = 1;
  int64_t position_ = 0;
  std::vector<int64_t> live_;
  std::unordered_map<int64_t, Item> final_;
  int64_t inserts_ = 0;
  int64_t updates_ = 0;
  int64_t deletes_ = 0;
};

template <class V>
void AppendLe(V value, std::string& out) {
  char bytes[sizeof(V)];
  std::memcpy(bytes, &value, sizeof(V));
  out.append(bytes, sizeof(V));
}

void AppendString(std::string_view text, std::string& out) {
  clickhouse::internal::AppendVarUInt(text.size(), out);
  out.append(text);
}

// The final rows as the mirror's ClickHouse table holds them, in RowBinary.
std::string RowBinary(const History& history) {
  std::string out;
  uint64_t version = 0;
  for (const auto& [id, item] : history.final_rows()) {
    AppendLe(item.id, out);
    AppendLe(item.account, out);
    AppendLe(item.qty, out);
    AppendLe(item.price_cents, out);
    AppendLe(item.total_units, out);
    AppendString(item.status, out);
    out.push_back(item.note ? 0 : 1);
    if (item.note) AppendString(*item.note, out);
    out.push_back(item.active ? 1 : 0);
    AppendLe(item.updated_us, out);
    AppendLe(item.score, out);
    AppendLe(++version, out);
    out.push_back(0);
  }
  return out;
}

// sum(id * qty) of the final rows: a checksum each copy must have.
int64_t Checksum(const History& history) {
  int64_t sum = 0;
  for (const auto& [id, item] : history.final_rows()) sum += id * item.qty;
  return sum;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "weir-bench-w6: %s\n", what.c_str());
  return 1;
}

int Main(int argc, char** argv) {
  int64_t changes = 1'000'000;
  int partitions = 128;
  int parallelism = 2;
  bool with_schema = false;
  bool run_duckdb = true;
  std::string json;
  for (int idx = 1; idx < argc; ++idx) {
    const std::string_view arg = argv[idx];
    const auto value = [&](std::string_view flag) -> std::optional<std::string> {
      if (!arg.starts_with(flag)) return std::nullopt;
      return std::string(arg.substr(flag.size()));
    };
    if (auto changes_v = value("--changes=")) {
      if (!absl::SimpleAtoi(*changes_v, &changes)) return Fail("--changes=N");
    } else if (auto partitions_v = value("--partitions=")) {
      if (!absl::SimpleAtoi(*partitions_v, &partitions)) return Fail("--partitions=N");
    } else if (auto parallelism_v = value("--parallelism=")) {
      if (!absl::SimpleAtoi(*parallelism_v, &parallelism)) return Fail("--parallelism=N");
    } else if (auto json_v = value("--json=")) {
      json = *json_v;
    } else if (arg == "--with-schema") {
      with_schema = true;
    } else if (arg == "--no-duckdb") {
      run_duckdb = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--changes=N] [--partitions=N] [--parallelism=N] [--with-schema] "
                   "[--no-duckdb] [--json=FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  auto broker = kafka::testing::KafkaTestBroker::Start();
  if (!broker.ok()) return Fail(broker.status().ToString());
  if (absl::Status s = (*broker)->CreateTopic(kTopic, partitions); !s.ok()) {
    return Fail(s.ToString());
  }
  History history(partitions, with_schema);
  const auto produce_start = std::chrono::steady_clock::now();
  if (absl::Status s = kafka::testing::ProduceGenerated((*broker)->bootstrap(), kTopic, changes,
                                                        [&](int64_t) { return history.Next(); });
      !s.ok()) {
    return Fail(s.ToString());
  }
  std::printf(
      "W6: %lld changes (%lld inserts, %lld updates, %lld deletes; %zu final rows) of a "
      "10-column table, %s, %d partitions; produced in %.1f s\n",
      static_cast<long long>(changes), static_cast<long long>(history.inserts()),
      static_cast<long long>(history.updates()), static_cast<long long>(history.deletes()),
      history.final_rows().size(), with_schema ? "with schema" : "schemaless", partitions,
      Seconds(produce_start));

  auto server = testing::ClickHouseServer::Start();
  if (!server.ok()) return Fail(server.status().ToString());
  const clickhouse::ConnectionOptions connection = (*server)->Connection();
  ScratchDir scratch("weir-bench-w6");
  const std::atomic<bool> never{false};
  mirror_app::MirrorConfig base;
  base.brokers = (*broker)->bootstrap();
  base.topics = {kTopic};
  base.bounded = true;
  base.parallelism = parallelism;
  base.status_interval = absl::Hours(1);
  base.checkpoint_interval = absl::Seconds(10);
  if (!with_schema) base.decoder.tables = {Declared()};
  std::vector<BenchResult> results;
  const double total_changes = static_cast<double>(changes);
  const int64_t checksum = Checksum(history);
  const size_t rows = history.final_rows().size();

  // 1. weir-mirror into ClickHouse.
  {
    mirror_app::MirrorConfig config = base;
    config.clickhouse_url = (*server)->url();
    config.clickhouse_user = connection.user;
    config.clickhouse_password = connection.password;
    config.checkpoint_uri = absl::StrCat("file://", scratch.path(), "/ch-checkpoints");
    const double cpu = ProcessCpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = mirror_app::RunMirror(config, never); !s.ok()) return Fail(s.ToString());
    const double seconds = Seconds(start);
    auto check =
        clickhouse::Query(connection, "SELECT count(), sum(id * qty) FROM items_live FORMAT TSV");
    if (!check.ok()) return Fail(check.status().ToString());
    if (std::string(absl::StripAsciiWhitespace(*check)) != absl::StrCat(rows, "\t", checksum)) {
      return Fail(absl::StrCat("ClickHouse copy differs: ", *check));
    }
    std::printf("weir-mirror -> ClickHouse (RowBinary): %.2f s, %.0f changes/s, %.1f CPU s\n",
                seconds, total_changes / seconds, ProcessCpuSeconds() - cpu);
    results.push_back({.name = "weir-mirror-clickhouse",
                       .variant = "RowBinary",
                       .parallelism = parallelism,
                       .events_per_sec = total_changes / seconds,
                       .seconds = seconds});
  }
  // 2. The final rows by curl, one RowBinary request.
  {
    if (auto s = clickhouse::Query(connection, "CREATE TABLE items_baseline AS items"); !s.ok()) {
      return Fail(s.status().ToString());
    }
    const std::string file = absl::StrCat(scratch.path(), "/items.rowbinary");
    std::ofstream(file, std::ios::binary) << RowBinary(history);
    const std::string url = absl::StrCat(
        (*server)->url(), "/?query=INSERT%20INTO%20items_baseline%20FORMAT%20RowBinary");
    std::vector<std::string> args = {"curl",
                                     "-sS",
                                     "--fail",
                                     "-u",
                                     absl::StrCat(connection.user, ":", connection.password),
                                     "--data-binary",
                                     "@" + file,
                                     url};
    std::vector<char*> curl_argv;
    for (std::string& arg : args) curl_argv.push_back(arg.data());
    curl_argv.push_back(nullptr);
    const auto start = std::chrono::steady_clock::now();
    pid_t pid = 0;
    if (::posix_spawnp(&pid, "curl", nullptr, nullptr, curl_argv.data(), environ) != 0) {
      return Fail("cannot run curl");
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    const double seconds = Seconds(start);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return Fail("curl failed");
    auto check = clickhouse::Query(connection,
                                   "SELECT count(), sum(id * qty) FROM items_baseline FORMAT TSV");
    if (!check.ok() ||
        std::string(absl::StripAsciiWhitespace(*check)) != absl::StrCat(rows, "\t", checksum)) {
      return Fail("baseline table differs");
    }
    std::printf(
        "curl RowBinary of the %zu final rows -> ClickHouse: %.2f s, %.0f rows/s "
        "(%.0f changes/s equivalent)\n",
        rows, seconds, static_cast<double>(rows) / seconds, total_changes / seconds);
    results.push_back({.name = "curl-rowbinary-final-rows",
                       .variant = "baseline",
                       .parallelism = 1,
                       .events_per_sec = total_changes / seconds,
                       .seconds = seconds,
                       .fields = {{"rows_per_sec", static_cast<double>(rows) / seconds}}});
  }
#ifdef WEIR_MIRROR_DUCKDB
  // 3. weir-mirror into DuckDB.
  if (run_duckdb) {
    mirror_app::MirrorConfig config = base;
    config.duckdb_path = absl::StrCat(scratch.path(), "/items.duckdb");
    config.checkpoint_uri = absl::StrCat("file://", scratch.path(), "/duckdb-checkpoints");
    const double cpu = ProcessCpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = mirror_app::RunMirror(config, never); !s.ok()) return Fail(s.ToString());
    const double seconds = Seconds(start);
    auto check = duckdb::Query(config.duckdb_path, "SELECT count(*), sum(id * qty) FROM items");
    if (!check.ok()) return Fail(check.status().ToString());
    const std::string got =
        absl::StrCat((*check)[0][0].value_or(""), "\t", (*check)[0][1].value_or(""));
    if (got != absl::StrCat(rows, "\t", checksum)) return Fail("DuckDB copy differs: " + got);
    std::printf("weir-mirror -> DuckDB: %.2f s, %.0f changes/s, %.1f CPU s\n", seconds,
                total_changes / seconds, ProcessCpuSeconds() - cpu);
    results.push_back({.name = "weir-mirror-duckdb",
                       .variant = "appender",
                       .parallelism = parallelism,
                       .events_per_sec = total_changes / seconds,
                       .seconds = seconds});
  }
#else
  std::printf("weir-mirror -> DuckDB: not run (built without libduckdb: .ci/setup-duckdb)\n");
#endif
  std::printf("ratio weir-mirror ClickHouse / curl baseline (time): %.2f\n",
              results[0].seconds / results[1].seconds);
  WriteJson(json, "w6", static_cast<uint64_t>(changes), results);
  return 0;
}

}  // namespace
}  // namespace weir::bench

int main(int argc, char** argv) { return weir::bench::Main(argc, argv); }
