// The DuckDB mirror sink on a real DuckDB file (libduckdb from
// .ci/setup-duckdb): random histories end as the reference model value by
// value; checkpoints are applied exactly once across restores (a checkpoint
// completed but not committed before a crash is applied by the restore, one
// applied before a crash is not applied again, one not completed is dropped
// and replayed); MySQL types keep their exact DuckDB types; an incompatible
// change dead-letters the table's records. Without libduckdb every test
// skips (counted, "not proved here").

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/debezium_envelopes.h"
#include "tests/support/mirror_history.h"
#include "tests/support/prerequisite.h"
#include "weir/formats/debezium_row.h"
#include "weir/testing.h"
#ifdef WEIR_HAVE_DUCKDB
#include "weir/connectors/duckdb_mirror.h"
#endif

namespace weir {
namespace {

using ::testing::HasSubstr;
using weir::debezium::RowChange;
using weir::debezium::RowDecoder;
using weir::testing::MirrorHistory;
using weir::testing::ModelKind;
using weir::testing::ModelTable;

class DuckDbMirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef WEIR_HAVE_DUCKDB
    WEIR_MISSING_PREREQUISITE(
        "libduckdb is not installed (.ci/setup-duckdb; cmake finds it with FindDuckDB)");
#else
    directory_ = std::filesystem::temp_directory_path() /
                 absl::StrCat("weir-duckdb-",
                              ::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                              getpid());
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
    path_ = (directory_ / "mirror.duckdb").string();
#endif
  }
  void TearDown() override {
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }

  static std::vector<RowChange> Decode(const MirrorHistory& history) {
    std::string error;
    std::vector<RowChange> changes = testing::DecodeHistory(history, &error);
    EXPECT_EQ(error, "");
    return changes;
  }

  // The model's rows as the SELECT of Actual() renders them, sorted.
  static std::vector<std::string> Expected(const ModelTable& table) {
    std::vector<std::string> lines;
    for (const auto& [key, values] : table.rows) {
      std::vector<std::string> fields;
      for (size_t idx = 0; idx < values.size(); ++idx) {
        if (!values[idx].has_value()) {
          fields.push_back("NULL");
        } else if (table.columns[idx].kind == ModelKind::kDate) {
          fields.push_back(testing::DateText(std::stoll(*values[idx])));
        } else {
          fields.push_back(*values[idx]);
        }
      }
      lines.push_back(absl::StrJoin(fields, "|"));
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

#ifdef WEIR_HAVE_DUCKDB
  std::vector<std::string> Actual(const ModelTable& table) {
    std::vector<std::string> select;
    for (const testing::ModelColumn& column : table.columns) {
      switch (column.kind) {
        case ModelKind::kTimestampMicros:
          select.push_back(absl::StrCat("epoch_us(\"", column.name, "\")"));
          break;
        case ModelKind::kDouble:  // DuckDB writes 3.0; the model "3"
          select.push_back(
              absl::StrCat("regexp_replace(CAST(\"", column.name, "\" AS VARCHAR), '\\.0$', '')"));
          break;
        default:
          select.push_back(absl::StrCat("CAST(\"", column.name, "\" AS VARCHAR)"));
      }
    }
    auto rows = duckdb::Query(path_, absl::StrCat("SELECT ", absl::StrJoin(select, ", "),
                                                  " FROM \"", table.target, "\""));
    EXPECT_TRUE(rows.ok()) << rows.status();
    std::vector<std::string> lines;
    if (!rows.ok()) return lines;
    for (const auto& row : *rows) {
      std::vector<std::string> fields;
      for (const auto& value : row) fields.push_back(value.value_or("NULL"));
      lines.push_back(absl::StrJoin(fields, "|"));
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  std::unique_ptr<SinkWriter<RowChange>> Writer(duckdb::MirrorSinkOptions options,
                                                std::shared_ptr<duckdb::MirrorStats> stats,
                                                int64_t restored = 0, bool checkpointing = true) {
    options.path = path_;
    std::shared_ptr<Sink<RowChange>> sink = duckdb::MirrorSink(options, std::move(stats));
    absl::StatusOr<std::unique_ptr<SinkWriter<RowChange>>> writer =
        sink->CreateWriter({.operator_name = "mirror",
                            .operator_uid = "duckdb-mirror",
                            .checkpointing = checkpointing,
                            .restored_checkpoint = restored});
    EXPECT_TRUE(writer.ok()) << writer.status();
    return writer.ok() ? *std::move(writer) : nullptr;
  }

  std::string QueryOne(const std::string& sql) {
    auto rows = duckdb::Query(path_, sql);
    EXPECT_TRUE(rows.ok()) << rows.status();
    if (!rows.ok() || rows->empty() || rows->front().empty()) return "";
    return rows->front().front().value_or("NULL");
  }
#endif

  std::filesystem::path directory_;
  std::string path_;
};

#ifdef WEIR_HAVE_DUCKDB

TEST_F(DuckDbMirrorTest, RandomHistoriesEndAsTheReferenceModel) {
  const MirrorHistory history = MirrorHistory::Generate(21, 3000);
  std::vector<RowChange> changes = Decode(history);
  ASSERT_EQ(changes.size(), history.records.size());
  auto stats = std::make_shared<duckdb::MirrorStats>();
  std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, stats);
  ASSERT_NE(writer, nullptr);
  std::mt19937_64 random(21);
  int64_t checkpoint = 0;
  for (size_t at = 0; at < changes.size();) {
    const size_t size = std::min<size_t>(changes.size() - at, 1 + random() % 400);
    ASSERT_TRUE(writer->Write(std::span<RowChange>(changes).subspan(at, size), {}).ok());
    at += size;
    ++checkpoint;
    absl::StatusOr<std::string> committable = writer->PreCommit(checkpoint);
    ASSERT_TRUE(committable.ok()) << committable.status();
    absl::Status committed = writer->Commit(checkpoint, *committable);
    ASSERT_TRUE(committed.ok()) << committed;
  }
  for (const auto& [name, table] : history.tables) {
    SCOPED_TRACE(name);
    EXPECT_GT(table.rows.size(), 50u);
    EXPECT_EQ(Actual(table), Expected(table));
  }
  EXPECT_EQ(stats->columns_added.load(), 1);
  EXPECT_GT(stats->rows_deleted.load(), 10);
  EXPECT_EQ(QueryOne("SELECT checkpoint_id FROM _weir_mirror_checkpoints WHERE sink = "
                     "'duckdb-mirror' AND worker = 0"),
            absl::StrCat(checkpoint));
  EXPECT_EQ(QueryOne("SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, "
                     "', ' ORDER BY column_index) FROM duckdb_columns() WHERE table_name = "
                     "'events'"),
            "id DECIMAL(20,0) false, amount DOUBLE false, day DATE true, seen TIMESTAMP true");
}

// A job's life with two crashes, driven as the runtime drives a two-phase
// sink: PreCommit(n) at the barrier, Commit(n) once n is complete, and on
// restore from n, Commit(n) again with n's committable.
TEST_F(DuckDbMirrorTest, ARestoreNeitherAppliesACheckpointTwiceNorSkipsOne) {
  const MirrorHistory history = MirrorHistory::Generate(22, 1500);
  std::vector<RowChange> changes = Decode(history);
  ASSERT_EQ(changes.size(), history.records.size());
  std::span<RowChange> all(changes);
  // Write may move rows out of its input: a restored run decodes again.
  std::vector<RowChange> again = Decode(history);
  std::span<RowChange> replay(again);
  auto stats = std::make_shared<duckdb::MirrorStats>();
  std::string committable2;
  {
    std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, stats);
    ASSERT_NE(writer, nullptr);
    ASSERT_TRUE(writer->Write(all.subspan(0, 400), {}).ok());
    absl::StatusOr<std::string> c1 = writer->PreCommit(1);
    ASSERT_TRUE(c1.ok());
    ASSERT_TRUE(writer->Commit(1, *c1).ok());
    ASSERT_TRUE(writer->Write(all.subspan(400, 400), {}).ok());
    absl::StatusOr<std::string> c2 = writer->PreCommit(2);
    ASSERT_TRUE(c2.ok());
    committable2 = *c2;
    // Checkpoint 2 completes, but the process dies before Commit(2); a
    // third checkpoint is pre-committed and never completes.
    ASSERT_TRUE(writer->Write(all.subspan(800, 300), {}).ok());
    ASSERT_TRUE(writer->PreCommit(3).ok());
  }
  EXPECT_EQ(stats->checkpoints_applied.load(), 1);
  {
    // Restore from 2: the runtime commits 2's committable; the sources
    // replay from 2's offsets (record 800).
    std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, stats, /*restored=*/2);
    ASSERT_NE(writer, nullptr);
    absl::Status recommitted = writer->Commit(2, committable2);
    ASSERT_TRUE(recommitted.ok()) << recommitted;
    EXPECT_EQ(stats->checkpoints_applied.load(), 2);
    absl::Status replayed = writer->Write(replay.subspan(800, 500), {});
    ASSERT_TRUE(replayed.ok()) << replayed;
    absl::StatusOr<std::string> c3 = writer->PreCommit(3);
    ASSERT_TRUE(c3.ok());
    ASSERT_TRUE(writer->Commit(3, *c3).ok());
    // Checkpoint 4 is applied, then the process dies before the runtime
    // hears of it... and restores from 4, committing it again: skipped.
    ASSERT_TRUE(writer->Write(replay.subspan(1300), {}).ok());
    absl::StatusOr<std::string> c4 = writer->PreCommit(4);
    ASSERT_TRUE(c4.ok());
    std::filesystem::copy_file(c4->substr(c4->find(':') + 1), directory_ / "checkpoint-4.copy");
    ASSERT_TRUE(writer->Commit(4, *c4).ok());
    std::filesystem::copy_file(directory_ / "checkpoint-4.copy", c4->substr(c4->find(':') + 1));
    std::unique_ptr<SinkWriter<RowChange>> restored = Writer({}, stats, /*restored=*/4);
    ASSERT_NE(restored, nullptr);
    ASSERT_TRUE(restored->Commit(4, *c4).ok());
    EXPECT_EQ(stats->checkpoints_skipped.load(), 1);
    EXPECT_FALSE(std::filesystem::exists(c4->substr(c4->find(':') + 1)));
  }
  EXPECT_EQ(stats->checkpoints_applied.load(), 4);
  for (const auto& [name, table] : history.tables) {
    SCOPED_TRACE(name);
    EXPECT_EQ(Actual(table), Expected(table));
  }
  EXPECT_EQ(QueryOne("SELECT checkpoint_id FROM _weir_mirror_checkpoints"), "4");
  // Nothing staged is left behind.
  EXPECT_TRUE(std::filesystem::is_empty(path_ + ".weir-staging"));
}

TEST_F(DuckDbMirrorTest, WithoutCheckpointsTheChangesAreAppliedAtTheEndOfInput) {
  const MirrorHistory history = MirrorHistory::Generate(24, 600);
  std::vector<RowChange> changes = Decode(history);
  auto stats = std::make_shared<duckdb::MirrorStats>();
  std::unique_ptr<SinkWriter<RowChange>> writer =
      Writer({}, stats, /*restored=*/0, /*checkpointing=*/false);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(changes, {}).ok());
  EXPECT_EQ(stats->rows_upserted.load(), 0) << "nothing before the end of input";
  ASSERT_TRUE(writer->Flush().ok());
  for (const auto& [name, table] : history.tables) {
    SCOPED_TRACE(name);
    EXPECT_EQ(Actual(table), Expected(table));
  }
  EXPECT_EQ(QueryOne("SELECT count(*) FROM _weir_mirror_checkpoints"), "0");
}

TEST_F(DuckDbMirrorTest, ACompletedCheckpointWhoseStagedChangesAreGoneIsDataLoss) {
  const MirrorHistory history = MirrorHistory::Generate(23, 100);
  std::vector<RowChange> changes = Decode(history);
  std::unique_ptr<SinkWriter<RowChange>> writer = Writer({}, nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(changes, {}).ok());
  absl::StatusOr<std::string> c1 = writer->PreCommit(1);
  ASSERT_TRUE(c1.ok());
  std::filesystem::remove(c1->substr(c1->find(':') + 1));
  absl::Status status = writer->Commit(1, *c1);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("checkpoint 1 is complete but its staged changes"));
}

TEST_F(DuckDbMirrorTest, MySqlTypesAndAnIncompatibleChangeThatDeadLetters) {
  testing::EnvelopeTable table{
      .connector = testing::Connector::kMySql,
      .db = "shop",
      .table = "orders",
      .columns =
          {{"id",
            R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"0","connect.decimal.precision":"20"})"},
           {"price",
            R"("type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"})"},
           {"created",
            R"("type":"int64","optional":false,"name":"io.debezium.time.Timestamp","version":1)"},
           {"seen",
            R"("type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1)"},
           {"born", R"("type":"int32","optional":true,"name":"io.debezium.time.Date","version":1)"},
           {"at",
            R"("type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1)"}},
      .key = {"id"}};
  testing::EnvelopeTable other{
      .table = "other", .columns = {{"id", R"("type":"int32","optional":false)"}}, .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  std::vector<RowChange> changes;
  const auto add = [&](const testing::EnvelopeTable& source, const std::string& key,
                       const std::string& after) {
    absl::StatusOr<RowChange> change =
        decoder->Decode(source.Key(key), source.Value("c", std::nullopt, after));
    ASSERT_TRUE(change.ok()) << change.status();
    change->offset = static_cast<int64_t>(changes.size());
    changes.push_back(*std::move(change));
  };
  const std::string max_id = testing::DecimalBase64(absl::MakeInt128(0, UINT64_MAX));
  add(table, absl::StrCat(R"({"id":")", max_id, R"("})"),
      absl::StrCat(
          R"({"id":")", max_id, R"(","price":")", testing::DecimalBase64(-99999999),
          R"(","created":1709285400123,"seen":"2024-03-01T10:30:00.000001+01:00","born":-1,"at":45296000007})"));
  add(other, R"({"id":1})", R"({"id":1})");
  // The price's scale changes: DECIMAL(10,3) does not fit DECIMAL(10,2).
  table.columns[1].second =
      R"("type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"3","connect.decimal.precision":"10"})";
  add(table, R"({"id":"AQ=="})",
      R"({"id":"AQ==","price":null,"created":0,"seen":null,"born":null,"at":null})");
  add(other, R"({"id":2})", R"({"id":2})");

  auto dead_letters = testing::CollectingDeadLetterQueue::Create();
  std::unique_ptr<SinkWriter<RowChange>> writer =
      Writer({.mirror = {.on_incompatible = mirror::OnIncompatible::kDeadLetter,
                         .dead_letters = dead_letters}},
             nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(changes, {}).ok());
  absl::StatusOr<std::string> c1 = writer->PreCommit(1);
  ASSERT_TRUE(c1.ok());
  ASSERT_TRUE(writer->Commit(1, *c1).ok());
  EXPECT_EQ(QueryOne("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY "
                     "column_index) FROM duckdb_columns() WHERE table_name = 'orders'"),
            "id DECIMAL(20,0), price DECIMAL(10,2), created TIMESTAMP, seen TIMESTAMP, born "
            "DATE, at TIME");
  EXPECT_EQ(QueryOne("SELECT id || '|' || price || '|' || created || '|' || epoch_us(seen) || "
                     "'|' || born || '|' || \"at\" FROM orders"),
            "18446744073709551615|-999999.99|2024-03-01 09:30:00.123|1709285400000001|1969-12-31|"
            "12:34:56.000007");
  EXPECT_EQ(QueryOne("SELECT count(*) FROM other"), "2");
  ASSERT_EQ(dead_letters->size(), 1u);
  EXPECT_THAT(dead_letters->Letters()[0].error,
              HasSubstr("column \"price\" is now DECIMAL(10,3), but DuckDB table orders has "
                        "DECIMAL(10,2)"));
}

TEST_F(DuckDbMirrorTest, RenamedTablesAndColumnsAndLeftOutColumns) {
  testing::EnvelopeTable users{.table = "users",
                               .columns = {{"id", R"("type":"int32","optional":false)"},
                                           {"name", R"("type":"string","optional":false)"},
                                           {"password", R"("type":"string","optional":false)"}},
                               .key = {"id"}};
  absl::StatusOr<RowDecoder> decoder = RowDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  absl::StatusOr<RowChange> change = decoder->Decode(
      users.Key(R"({"id":1})"),
      users.Value("c", std::nullopt, R"({"id":1,"name":"ann","password":"secret"})"));
  ASSERT_TRUE(change.ok());
  std::unique_ptr<SinkWriter<RowChange>> writer =
      Writer({.mirror = {.tables = {{.source = "public.users",
                                     .target = "people",
                                     .rename_columns = {{"name", "full_name"}},
                                     .exclude_columns = {"password"}}}}},
             nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(std::span<RowChange>(&*change, 1), {}).ok());
  absl::StatusOr<std::string> c1 = writer->PreCommit(1);
  ASSERT_TRUE(c1.ok());
  ASSERT_TRUE(writer->Commit(1, *c1).ok());
  EXPECT_EQ(QueryOne("SELECT string_agg(column_name, ',' ORDER BY column_index) FROM "
                     "duckdb_columns() WHERE table_name = 'people'"),
            "id,full_name");
  EXPECT_EQ(QueryOne("SELECT id || ':' || full_name FROM people"), "1:ann");
}

#else

TEST_F(DuckDbMirrorTest, RenamedTablesAndColumnsAndLeftOutColumns) {}
TEST_F(DuckDbMirrorTest, RandomHistoriesEndAsTheReferenceModel) {}
TEST_F(DuckDbMirrorTest, ARestoreNeitherAppliesACheckpointTwiceNorSkipsOne) {}
TEST_F(DuckDbMirrorTest, WithoutCheckpointsTheChangesAreAppliedAtTheEndOfInput) {
  const MirrorHistory history = MirrorHistory::Generate(24, 600);
  std::vector<RowChange> changes = Decode(history);
  auto stats = std::make_shared<duckdb::MirrorStats>();
  std::unique_ptr<SinkWriter<RowChange>> writer =
      Writer({}, stats, /*restored=*/0, /*checkpointing=*/false);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Write(changes, {}).ok());
  EXPECT_EQ(stats->rows_upserted.load(), 0) << "nothing before the end of input";
  ASSERT_TRUE(writer->Flush().ok());
  for (const auto& [name, table] : history.tables) {
    SCOPED_TRACE(name);
    EXPECT_EQ(Actual(table), Expected(table));
  }
  EXPECT_EQ(QueryOne("SELECT count(*) FROM _weir_mirror_checkpoints"), "0");
}

TEST_F(DuckDbMirrorTest, WithoutCheckpointsTheChangesAreAppliedAtTheEndOfInput) {}
TEST_F(DuckDbMirrorTest, ACompletedCheckpointWhoseStagedChangesAreGoneIsDataLoss) {}
TEST_F(DuckDbMirrorTest, MySqlTypesAndAnIncompatibleChangeThatDeadLetters) {}

#endif

}  // namespace
}  // namespace weir
