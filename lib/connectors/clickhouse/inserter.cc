// The batching writer behind weir::clickhouse::Sink: the worker thread
// encodes rows into the open batch; a background thread inserts sealed
// batches one at a time, with retries, and seals the open batch when its
// first row has waited max_linger. At most one sealed batch waits while
// another is in flight (two right after a barrier: FlushAsync seals without
// waiting for room, so the worker goes on at once): a slow server blocks
// Append (backpressure), so memory stays at about three or four batches per
// writer.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "lib/common/http_client.h"
#include "lib/connectors/clickhouse/clickhouse_http.h"
#include "weir/connectors/clickhouse.h"

namespace weir::clickhouse::internal {

namespace {

constexpr size_t kMaxSealedBatches = 1;
constexpr int kGzipLevel = 1;

class Inserter final : public ClickHouseInserter {
 public:
  Inserter(const clickhouse::SinkOptions& options, std::string insert_url, std::string what,
           std::unique_ptr<weir::internal::HttpClient> client)
      : options_(options),
        insert_url_(std::move(insert_url)),
        what_(std::move(what)),
        client_(std::move(client)) {
    if (!options_.batch_version_column.empty()) {
      version_key_ = ",";
      json::AppendString(options_.batch_version_column, version_key_);
      version_key_.push_back(':');
    }
    sender_ = std::thread([this] { SendLoop(); });
  }
  ~Inserter() override { (void)Close(); }

  absl::Status Append(size_t rows, absl::FunctionRef<void(size_t, std::string&)> encode) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!error_.ok()) return error_;
    if (closing_) return absl::FailedPreconditionError(absl::StrCat(what_, ": closed"));
    for (size_t row = 0; row < rows; ++row) {
      if (open_rows_ == 0) {
        open_since_ = absl::Now();
        // Fixed when the batch opens, so every attempt of its insert carries
        // the same version, and later batches a larger one.
        open_version_ =
            std::max(open_version_ + 1, static_cast<uint64_t>(absl::ToUnixMicros(open_since_)));
      }
      encode(row, open_);
      if (!version_key_.empty()) AppendBatchVersion();
      if (!row_binary_) open_.push_back('\n');
      ++open_rows_;
      if (open_rows_ >= options_.max_batch_rows || open_.size() >= options_.max_batch_bytes) {
        if (absl::Status status = SealLocked(lock); !status.ok()) return status;
      }
    }
    if (open_rows_ > 0 && options_.max_linger <= absl::ZeroDuration()) {
      if (absl::Status status = SealLocked(lock); !status.ok()) return status;
    }
    cv_.notify_all();  // the sender's linger deadline may have changed
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    std::unique_lock<std::mutex> lock(mu_);
    if (open_rows_ > 0) {
      if (absl::Status status = SealLocked(lock); !status.ok()) return status;
    }
    cv_.wait(lock, [&] { return !error_.ok() || closing_ || (sealed_.empty() && !in_flight_); });
    if (!error_.ok()) return error_;
    if (closing_) return absl::FailedPreconditionError(absl::StrCat(what_, ": closed"));
    return absl::OkStatus();
  }

  void FlushAsync(std::function<void(absl::Status)> done) override {
    absl::Status now;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!error_.ok()) {
        now = error_;
      } else if (closing_) {
        now = absl::FailedPreconditionError(absl::StrCat(what_, ": closed"));
      } else {
        // Sealed without waiting for room: the worker goes on at once (one
        // batch more than usual may wait).
        if (open_rows_ > 0) SealOpenLocked();
        if (inserted_ < sealed_count_) {
          waiters_.push_back({sealed_count_, std::move(done)});
          cv_.notify_all();
          return;
        }
      }
    }
    done(now);  // nothing outstanding, or failed already
  }

  absl::Status Close() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_ && !sender_.joinable()) return absl::OkStatus();
      closing_ = true;
      cancel_ = true;
      waiters_.clear();  // never called after Close
    }
    cv_.notify_all();
    if (sender_.joinable()) sender_.join();
    return absl::OkStatus();
  }

 private:
  struct Batch {
    std::string rows;
    size_t count = 0;
  };
  // A FlushAsync waiting for the first `batches` sealed batches.
  struct Waiter {
    uint64_t batches = 0;
    std::function<void(absl::Status)> done;
  };

  // The batch version after the row just encoded: RowBinary's next column,
  // or one more member of the JSON object.
  void AppendBatchVersion() {
    if (row_binary_) {
      AppendLittleEndian(open_version_, open_);
      return;
    }
    open_.pop_back();  // the object's '}'
    absl::StrAppend(&open_, version_key_, open_version_, "}");
  }

  // Moves the open batch to the sealed queue, first waiting for room.
  absl::Status SealLocked(std::unique_lock<std::mutex>& lock) {
    cv_.wait(lock, [&] { return !error_.ok() || closing_ || sealed_.size() < kMaxSealedBatches; });
    if (!error_.ok()) return error_;
    if (closing_) return absl::FailedPreconditionError(absl::StrCat(what_, ": closed"));
    SealOpenLocked();
    cv_.notify_all();
    return absl::OkStatus();
  }

  // The open batch goes to the sealed queue; the next one starts in the
  // buffer of the last batch sent, if any: a batch of a few MB grown from
  // nothing costs a copy per doubling and fresh pages from the kernel.
  void SealOpenLocked() {
    ++sealed_count_;
    sealed_.push_back({std::move(open_), open_rows_});
    open_ = std::move(spare_);
    open_.clear();
    spare_ = std::string();
    open_rows_ = 0;
  }

  void SendLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!closing_) {
      if (sealed_.empty()) {
        if (open_rows_ > 0 && options_.max_linger > absl::ZeroDuration() &&
            absl::Now() >= open_since_ + options_.max_linger) {
          // The queue is empty, so sealing does not wait.
          SealOpenLocked();
          continue;
        }
        if (open_rows_ > 0 && options_.max_linger > absl::ZeroDuration()) {
          cv_.wait_until(lock, absl::ToChronoTime(open_since_ + options_.max_linger));
        } else {
          cv_.wait(lock);
        }
        continue;
      }
      Batch batch = std::move(sealed_.front());
      sealed_.pop_front();
      in_flight_ = true;
      cv_.notify_all();  // room for the next sealed batch
      lock.unlock();
      absl::Status status = Insert(batch);
      lock.lock();
      in_flight_ = false;
      spare_ = std::move(batch.rows);
      if (!status.ok() && error_.ok() && !closing_) {
        error_ = status;
        sealed_.clear();
      }
      ++inserted_;
      // Asynchronous flushes whose batches are all in (or that failed).
      std::vector<Waiter> ready;
      while (!waiters_.empty() && (!error_.ok() || waiters_.front().batches <= inserted_)) {
        ready.push_back(std::move(waiters_.front()));
        waiters_.pop_front();
      }
      cv_.notify_all();
      if (!ready.empty()) {
        const absl::Status result = error_;
        lock.unlock();
        for (Waiter& waiter : ready) waiter.done(result);
        lock.lock();
      }
    }
  }

  absl::Status Insert(const Batch& batch) {
    std::string compressed;
    absl::string_view body = batch.rows;
    if (options_.compression == clickhouse::Compression::kGzip) {
      absl::StatusOr<std::string> gzipped = GzipCompress(batch.rows, kGzipLevel);
      if (!gzipped.ok()) return gzipped.status();
      compressed = *std::move(gzipped);
      body = compressed;
    }
    auto wait = [this](absl::Duration delay) {
      std::unique_lock<std::mutex> lock(mu_);
      return !cv_.wait_for(lock, absl::ToChronoNanoseconds(delay), [&] { return closing_; });
    };
    absl::StatusOr<std::string> answer =
        SendToClickHouse(*client_, options_.connection,
                         {.url = insert_url_,
                          .body = body,
                          .gzip = options_.compression == clickhouse::Compression::kGzip,
                          .cancel = &cancel_,
                          .wait = wait},
                         absl::StrCat(what_, ": insert of ", batch.count, " rows"));
    return answer.status();
  }

  const clickhouse::SinkOptions options_;
  const bool row_binary_ = options_.format == clickhouse::Format::kRowBinary;
  const std::string insert_url_;
  const std::string what_;
  std::unique_ptr<weir::internal::HttpClient> client_;
  std::atomic<bool> cancel_ = false;
  // `,"<batch_version_column>":`; empty without a batch version.
  std::string version_key_;

  std::mutex mu_;
  std::condition_variable cv_;
  // All guarded by mu_.
  std::string open_;
  // The buffer of the batch sent last, for the next open batch to reuse.
  std::string spare_;
  size_t open_rows_ = 0;
  absl::Time open_since_;
  uint64_t open_version_ = 0;  // the open batch's batch version
  std::deque<Batch> sealed_;
  uint64_t sealed_count_ = 0;  // batches sealed so far
  uint64_t inserted_ = 0;      // batches whose insert ended so far
  std::deque<Waiter> waiters_;
  bool in_flight_ = false;
  bool closing_ = false;
  absl::Status error_;

  std::thread sender_;  // last: starts after the members above exist
};

// `value` as a ClickHouse string literal.
std::string QuoteString(absl::string_view value) {
  return absl::StrCat("'", absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"'", "\\'"}}), "'");
}

// RowBinary has no names or types in the data: every column's C++ encoding
// must be the table's column type, or the server reads garbage.
absl::Status CheckRowBinaryTypes(weir::internal::HttpClient& client,
                                 const clickhouse::SinkOptions& options,
                                 const std::vector<clickhouse::ColumnDefinition>& columns,
                                 const std::string& what) {
  for (const clickhouse::ColumnDefinition& column : columns) {
    if (!column.row_binary) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": column ", column.name, " has an overridden type (", column.type,
                       "), which RowBinary cannot encode: use Format::kJsonEachRow"));
    }
  }
  const std::string sql =
      absl::StrCat("SELECT name, type FROM system.columns WHERE database = ",
                   QuoteString(options.connection.database),
                   " AND table = ", QuoteString(options.table), " FORMAT TabSeparated");
  absl::StatusOr<std::string> answer = SendToClickHouse(
      client, options.connection, {.url = ClickHouseUrl(options.connection, ""), .body = sql},
      absl::StrCat(what, ": reading the table's column types"));
  if (!answer.ok()) return answer.status();
  absl::flat_hash_map<std::string, std::string> table_types;
  for (absl::string_view line : absl::StrSplit(*answer, '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, absl::MaxSplits('\t', 1));
    if (fields.size() == 2) table_types[fields[0]] = fields[1];
  }
  if (table_types.empty()) {
    return absl::NotFoundError(absl::StrCat(what, ": table ", options.connection.database, ".",
                                            options.table, " does not exist"));
  }
  for (const clickhouse::ColumnDefinition& column : columns) {
    auto found = table_types.find(column.name);
    if (found == table_types.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": the table has no column ", column.name));
    }
    if (found->second != column.type) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": column ", column.name, " is ", found->second, " in the table but ", column.type,
          " in Columns<T>; RowBinary needs the same type (or use "
          "Format::kJsonEachRow, which converts)"));
    }
  }
  return absl::OkStatus();
}

// The version column of a ReplacingMergeTree, from system.tables'
// engine_full ("ReplacingMergeTree(ver) ORDER BY ...", or the old syntax
// "ReplacingMergeTree(date, (key), 8192, ver)"; Replicated* first take two
// quoted strings): "" when it has none.
std::string ReplacingVersionColumn(absl::string_view engine_full) {
  const size_t open = engine_full.find('(');
  if (open == absl::string_view::npos) return "";
  std::vector<std::string> args;
  std::string arg;
  int depth = 0;
  bool quoted = false;
  for (size_t idx = open + 1; idx < engine_full.size(); ++idx) {
    const char c = engine_full[idx];
    if (quoted) {
      arg.push_back(c);
      if (c == '\\' && idx + 1 < engine_full.size()) {
        arg.push_back(engine_full[++idx]);
      } else if (c == '\'') {
        quoted = false;
      }
      continue;
    }
    if (c == '\'') quoted = true;
    if (c == '(') ++depth;
    if (c == ')' && depth-- == 0) break;
    if (c == ',' && depth == 0) {
      args.push_back(std::string(absl::StripAsciiWhitespace(arg)));
      arg.clear();
      continue;
    }
    arg.push_back(c);
  }
  if (!absl::StripAsciiWhitespace(arg).empty()) {
    args.push_back(std::string(absl::StripAsciiWhitespace(arg)));
  }
  // Replicated*: the ZooKeeper path and the replica name.
  while (!args.empty() && args.front().starts_with('\'')) args.erase(args.begin());
  // New syntax: no argument or the version. Old syntax: ends with the index
  // granularity, or with the version after it.
  if (args.empty() || std::all_of(args.back().begin(), args.back().end(),
                                  [](char c) { return c >= '0' && c <= '9'; })) {
    return "";
  }
  return std::string(absl::StripSuffix(absl::StripPrefix(args.back(), "`"), "`"));
}

// Rows that are updated need a version in a ReplacingMergeTree, or a late
// insert can put an older row back (see the header); the table must exist.
absl::Status CheckTable(weir::internal::HttpClient& client, const clickhouse::SinkOptions& options,
                        const std::vector<clickhouse::ColumnDefinition>& columns,
                        const std::string& what) {
  const std::string sql =
      absl::StrCat("SELECT engine, engine_full FROM system.tables WHERE database = ",
                   QuoteString(options.connection.database),
                   " AND name = ", QuoteString(options.table), " FORMAT TabSeparated");
  absl::StatusOr<std::string> answer = SendToClickHouse(
      client, options.connection, {.url = ClickHouseUrl(options.connection, ""), .body = sql},
      absl::StrCat(what, ": reading the table's engine"));
  if (!answer.ok()) return answer.status();
  std::vector<std::string> fields =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(*answer), absl::MaxSplits('\t', 1));
  if (fields.size() != 2) {
    return absl::NotFoundError(absl::StrCat(what, ": table ", options.connection.database, ".",
                                            options.table, " does not exist"));
  }
  const std::string& engine = fields[0];
  // Other engines (MergeTree keeps every copy; Distributed, Buffer, ...
  // hide the table that decides) are not checked.
  if (!absl::EndsWith(engine, "ReplacingMergeTree")) return absl::OkStatus();
  std::string engine_full;
  if (!absl::CUnescape(fields[1], &engine_full)) engine_full = fields[1];
  const std::string version = ReplacingVersionColumn(engine_full);
  if (version.empty()) {
    if (options.immutable_rows) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": the table is a ", engine,
        " without a version column, which keeps the last row inserted for a key: an insert "
        "that times out here but commits on the server after its retry and after the next "
        "batch would put an older row back. Give the table a version (TableOptions::"
        "version_column: the event time, a running count; or batch_version_column with "
        "SinkOptions::batch_version_column), or set SinkOptions::immutable_rows if a key's row "
        "never changes"));
  }
  const bool written =
      version == options.batch_version_column ||
      std::any_of(columns.begin(), columns.end(), [&](const clickhouse::ColumnDefinition& column) {
        return column.name == version;
      });
  if (!written) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": the table's version column ", version,
        " is not written (every row would get its default, and the last inserted would win): "
        "add it to Columns<T> or name it in SinkOptions::batch_version_column"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClickHouseInserter>> ClickHouseInserter::Create(
    const clickhouse::SinkOptions& options,
    const std::vector<clickhouse::ColumnDefinition>& columns, const SinkContext& context) {
  std::string what = absl::StrCat("clickhouse sink '", options.connection.database, ".",
                                  options.table, "' (worker ", context.worker_index, ")");
  if (absl::Status valid = ValidateConnection(options.connection, what); !valid.ok()) return valid;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
  };
  if (options.table.empty()) return bad("no table");
  if (columns.empty()) return bad("no columns");
  if (options.max_batch_rows == 0) return bad("max_batch_rows must be positive");
  if (options.max_batch_bytes == 0) return bad("max_batch_bytes must be positive");
  if (options.max_linger < absl::ZeroDuration()) return bad("max_linger must not be negative");
  std::vector<std::string> quoted;
  for (const clickhouse::ColumnDefinition& column : columns) {
    if (column.name == options.batch_version_column) {
      return bad(absl::StrCat("batch_version_column ", column.name,
                              " is also in Columns<T> (the sink fills it: leave it out)"));
    }
    quoted.push_back(QuoteIdentifier(column.name));
  }
  if (!options.batch_version_column.empty()) {
    quoted.push_back(QuoteIdentifier(options.batch_version_column));
  }
  const bool row_binary = options.format == clickhouse::Format::kRowBinary;
  std::string insert = absl::StrCat("INSERT INTO ", QuoteIdentifier(options.table), " (",
                                    absl::StrJoin(quoted, ", "), ") FORMAT ",
                                    row_binary ? "RowBinary" : "JSONEachRow");
  absl::StatusOr<std::unique_ptr<weir::internal::HttpClient>> client =
      weir::internal::HttpClient::Create();
  if (!client.ok()) return client.status();
  if (absl::Status status = CheckTable(**client, options, columns, what); !status.ok()) {
    return status;
  }
  if (row_binary) {
    std::vector<clickhouse::ColumnDefinition> written = columns;
    if (!options.batch_version_column.empty()) {
      written.push_back({options.batch_version_column, "UInt64"});
    }
    if (absl::Status status = CheckRowBinaryTypes(**client, options, written, what); !status.ok()) {
      return status;
    }
  }
  return std::unique_ptr<ClickHouseInserter>(new Inserter(
      options, ClickHouseUrl(options.connection, insert), std::move(what), *std::move(client)));
}

}  // namespace weir::clickhouse::internal
