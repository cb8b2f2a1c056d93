// ClickHouse sink: batched inserts over ClickHouse's HTTP interface.
//
// Records become rows through a typed column list (Columns<T>: each column a
// name, a member or getter, and a ClickHouse type derived from the C++ type),
// as JSONEachRow (the default) or RowBinary (faster; types must match the
// table exactly, checked at start). Each worker's writer buffers rows and
// inserts them as one `INSERT INTO <table> (<columns>) FORMAT ...` request
// when the batch reaches `max_batch_rows` or `max_batch_bytes`, or when its
// first row is `max_linger` old; inserts run on a background thread, one at a
// time per writer, while the worker encodes the next batch. Everything buffered is
// inserted at each checkpoint barrier and at the end of input, so a
// completed checkpoint never misses a row. At a barrier the worker does not
// wait: it goes on with the next records while the background thread
// inserts the rows before the barrier, and the checkpoint completes once
// they are in.
//
// Failures: connection errors and transient server errors (5xx other than
// errors in the data, e.g. too many parts or memory limits) are retried with
// exponential backoff and jitter; a batch that still fails, or is rejected
// (bad data, unknown table, wrong password), fails the job with the server's
// message and a canonical code (kUnauthenticated, kNotFound,
// kInvalidArgument, kUnavailable, ...). A batch is never dropped silently.
//
// Exactly-once: inserts are at-least-once (a job restarted from a checkpoint
// replays the rows written after it, and a retried insert may have landed).
// Write into a ReplacingMergeTree whose ORDER BY identifies a row (see
// CreateTable): replayed rows collapse in merges, and `SELECT ... FINAL`
// counts each once. Rows only collapse within a partition, so partition by a
// column that a replayed row has the same value of (the event time).
//
// Rows that are updated (running totals, early window firings) need a
// version: without one ReplacingMergeTree keeps the last row inserted, and
// an insert that timed out on the client but commits on the server after
// its retry and after the next batch puts the older value back. Each writer
// checks the table at start (system.tables): a ReplacingMergeTree without a
// version column is refused (kInvalidArgument) unless
// SinkOptions::immutable_rows says a key's row never changes, and a version
// column must be written (in Columns<T>, or SinkOptions::batch_version_column).
// The version can be the record's own (event time of the newest event, a
// running count) or weir's batch version (batch_version_column). ClickHouse
// 22.2+ also has insert_deduplication_token; 18.16 has no such setting and
// deduplicates inserts only on Replicated tables (by block hash), so the
// version is what holds there.
//
// Works with ClickHouse 18.16 (Debian 12) and newer.
//
// Example:
//
//   struct Enriched { uint64_t content_id; int64_t event_ts_ms; std::string title; double pct; };
//   auto columns = weir::clickhouse::Columns<Enriched>()
//                      .Add("content_id", &Enriched::content_id)        // UInt64
//                      .AddDateTime("event_ts", &Enriched::event_ts_ms)  // DateTime
//                      .Add("title", &Enriched::title)                   // String
//                      .Add("pct", [](const Enriched& e) { return e.pct * 100; });  // Float64
//   weir::clickhouse::ConnectionOptions connection{.url = "http://127.0.0.1:8123",
//                                                  .user = "app", .password = "..."};
//   absl::Status created = weir::clickhouse::CreateTable(
//       connection, columns,
//       {.table = "events", .order_by = {"content_id", "event_ts"},
//        .partition_time_column = "event_ts"});
//   enriched.Sink(weir::clickhouse::Sink<Enriched>(  // one row per event: never updated
//                     {.connection = connection, .table = "events", .immutable_rows = true},
//                     columns))
//       .Uid("clickhouse-events");

#ifndef WEIR_CONNECTORS_CLICKHOUSE_H_
#define WEIR_CONNECTORS_CLICKHOUSE_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "weir/formats/json.h"
#include "weir/sink.h"
#include "weir/time.h"

namespace weir::clickhouse {

// Where the server is and how to talk to it.
struct ConnectionOptions {
  // The HTTP interface: "http[s]://host:port".
  // Default: "http://127.0.0.1:8123"
  std::string url = "http://127.0.0.1:8123";
  // Sent with HTTP basic authentication.
  // Default: "default", no password
  std::string user = "default";
  std::string password;
  // The database of unqualified table names.
  // Default: "default"
  std::string database = "default";
  // Query-level settings, sent as URL parameters with every request
  // (e.g. {"insert_quorum", "2"}, {"max_insert_block_size", "1000000"}).
  // Default: none
  std::vector<std::pair<std::string, std::string>> settings;
  // Timeout of one request, and of connecting.
  // Default: 60 s, 10 s
  absl::Duration request_timeout = absl::Seconds(60);
  absl::Duration connect_timeout = absl::Seconds(10);
  // Attempts per request (1: no retries). Retries wait about
  // `initial_backoff`, then twice as long each time up to `max_backoff`,
  // with jitter.
  // Default: 8 attempts, 200 ms, 10 s (about 30 s of retrying in all)
  int max_attempts = 8;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
};

// How rows travel.
enum class Format {
  // Text, one JSON object per row: ClickHouse converts values to the
  // table's column types (an Int32 into an Int64 column is fine).
  kJsonEachRow,
  // ClickHouse's binary row format: about 3x less for the server to parse,
  // and 3x fewer bytes. The C++ types must match the table's column types
  // exactly: each writer checks them against system.columns when the
  // pipeline starts (kInvalidArgument on a mismatch), and columns added with
  // a type override are refused.
  kRowBinary,
};

// Request body compression. (No zstd: ClickHouse 18.16 accepts only gzip
// and deflate request bodies.)
enum class Compression {
  kNone,
  // Content-Encoding: gzip (less network, more CPU on both ends).
  kGzip,
};

struct SinkOptions {
  ConnectionOptions connection;
  // The target table, in `connection.database` (required). Must exist.
  std::string table;
  // A batch is inserted when it holds this many rows or bytes ...
  // Default: 100,000 rows, 16 MiB
  size_t max_batch_rows = 100'000;
  size_t max_batch_bytes = 16 << 20;
  // ... or when its first row has waited this long (0: insert at every
  // Write). Checkpoint barriers and the end of input insert at once.
  // Default: 1 s
  absl::Duration max_linger = absl::Seconds(1);
  // Default: kJsonEachRow
  Format format = Format::kJsonEachRow;
  // Default: kNone
  Compression compression = Compression::kNone;
  // A key's row is always written with the same values (an event, not a
  // running total): replays and late retries only duplicate it, so the
  // table needs no version. Required to write into a ReplacingMergeTree
  // without a version column (kInvalidArgument at start otherwise).
  // Default: false
  bool immutable_rows = false;
  // A UInt64 column of the table, not in Columns<T>, that the sink fills
  // with weir's batch version: the same for every row of a batch and every
  // attempt of its insert, strictly growing from batch to batch of a writer
  // (microseconds since the epoch when the batch opened, or the previous
  // batch's + 1). Make it the table's ReplacingMergeTree version
  // (TableOptions::batch_version_column) when records carry no version of
  // their own: a newer batch then wins over a late attempt of an older one,
  // and a restarted job's replay over the rows of the run before it (as
  // long as the clock does not go back by more than the restart took).
  // Rows of one key must come from one writer (a stream keyed by the
  // table's key), since writers' batches are not ordered among themselves.
  // Default: none
  std::string batch_version_column;
};

// The name and ClickHouse type of a column, e.g. {"content_id", "UInt64"}.
struct ColumnDefinition {
  std::string name;
  std::string type;
  // The column's RowBinary encoding is that of `type` (false when the type
  // was overridden).
  bool row_binary = true;
};

}  // namespace weir::clickhouse

namespace weir::clickhouse::internal {

// JSON text of a double: weir::json::AppendDouble, but NaN and infinities
// as the quoted strings ClickHouse parses ("nan", "inf", "-inf").
void AppendJsonDouble(double value, std::string& out);

// RowBinary's unsigned LEB128 length prefix.
inline void AppendVarUInt(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
// The bytes of a number as RowBinary has them: little-endian.
template <class V>
void AppendLittleEndian(V value, std::string& out) {
  static_assert(std::endian::native == std::endian::little,
                "weir::clickhouse RowBinary needs a little-endian host");
  char bytes[sizeof(V)];
  std::memcpy(bytes, &value, sizeof(V));
  out.append(bytes, sizeof(V));
}

// Appends one row's RowBinary bytes to a string. The values go into a block
// on the stack and reach the string an append per block: an append per value
// cost more than the value (the engagement pipeline's rows have 15).
// Finish() appends what the block holds; call it once the row is written.
class RowBinaryWriter {
 public:
  explicit RowBinaryWriter(std::string& out) : out_(out) {}
  RowBinaryWriter(const RowBinaryWriter&) = delete;
  RowBinaryWriter& operator=(const RowBinaryWriter&) = delete;

  void Byte(uint8_t value) {
    Reserve(1);
    *at_++ = static_cast<char>(value);
  }
  // The bytes of a number as RowBinary has them: little-endian.
  template <class V>
  void LittleEndian(V value) {
    static_assert(std::endian::native == std::endian::little,
                  "weir::clickhouse RowBinary needs a little-endian host");
    Reserve(sizeof(V));
    std::memcpy(at_, &value, sizeof(V));
    at_ += sizeof(V);
  }
  // A string: its length as an unsigned LEB128, then its bytes.
  void String(const char* data, size_t size) {
    Reserve(kMaxVarUIntBytes);
    uint64_t length = size;
    while (length >= 0x80) {
      *at_++ = static_cast<char>((length & 0x7F) | 0x80);
      length >>= 7;
    }
    *at_++ = static_cast<char>(length);
    if (size <= static_cast<size_t>(block_ + kBlockBytes - at_)) {
      std::memcpy(at_, data, size);
      at_ += size;
      return;
    }
    Finish();
    out_.append(data, size);
  }
  void Finish() {
    out_.append(block_, static_cast<size_t>(at_ - block_));
    at_ = block_;
  }

 private:
  static constexpr size_t kBlockBytes = 512;
  static constexpr size_t kMaxVarUIntBytes = 10;

  void Reserve(size_t bytes) {
    if (static_cast<size_t>(block_ + kBlockBytes - at_) < bytes) Finish();
  }

  std::string& out_;
  char block_[kBlockBytes];
  char* at_ = block_;
};

// How a C++ value becomes a JSONEachRow value (Append) and a RowBinary value
// (AppendBinary), and its ClickHouse type.
template <class V, class = void>
struct ClickHouseValue {
  static_assert(sizeof(V) == 0,
                "weir::clickhouse::Columns: unsupported column type; use bool, an integer, float, "
                "double, std::string, std::string_view, const char*, or std::optional of one of "
                "these (or convert in a getter)");
};
template <>
struct ClickHouseValue<bool> {
  static std::string Type() { return "UInt8"; }
  static void Append(bool value, std::string& out) { out.append(value ? "true" : "false"); }
  static void AppendBinary(bool value, RowBinaryWriter& out) { out.Byte(value ? 1 : 0); }
};
template <class V>
struct ClickHouseValue<V, std::enable_if_t<std::is_integral_v<V> && !std::is_same_v<V, bool> &&
                                           !std::is_same_v<V, char>>> {
  static std::string Type() {
    return absl::StrCat(std::is_signed_v<V> ? "Int" : "UInt", sizeof(V) * 8);
  }
  static void Append(V value, std::string& out) { absl::StrAppend(&out, value); }
  static void AppendBinary(V value, RowBinaryWriter& out) { out.LittleEndian(value); }
};
template <class V>
struct ClickHouseValue<V, std::enable_if_t<std::is_floating_point_v<V>>> {
  static std::string Type() { return sizeof(V) == 4 ? "Float32" : "Float64"; }
  static void Append(V value, std::string& out) {
    AppendJsonDouble(static_cast<double>(value), out);
  }
  static void AppendBinary(V value, RowBinaryWriter& out) { out.LittleEndian(value); }
};
template <class V>
struct ClickHouseValue<V, std::enable_if_t<std::is_convertible_v<const V&, std::string_view> ||
                                           std::is_same_v<V, absl::string_view>>> {
  static std::string Type() { return "String"; }
  static void Append(const V& value, std::string& out) {
    if constexpr (std::is_convertible_v<const V&, std::string_view>) {
      json::AppendString(value, out);
    } else {
      json::AppendString(std::string_view(value.data(), value.size()), out);
    }
  }
  static void AppendBinary(const V& value, RowBinaryWriter& out) {
    if constexpr (std::is_convertible_v<const V&, std::string_view>) {
      const std::string_view view = value;
      out.String(view.data(), view.size());
    } else {
      out.String(value.data(), value.size());
    }
  }
};
template <class V>
struct ClickHouseValue<std::optional<V>> {
  static std::string Type() { return absl::StrCat("Nullable(", ClickHouseValue<V>::Type(), ")"); }
  static void Append(const std::optional<V>& value, std::string& out) {
    if (value.has_value()) {
      ClickHouseValue<V>::Append(*value, out);
    } else {
      out.append("null");
    }
  }
  // A null flag byte (1: NULL), then the value.
  static void AppendBinary(const std::optional<V>& value, RowBinaryWriter& out) {
    out.Byte(value.has_value() ? 0 : 1);
    if (value.has_value()) ClickHouseValue<V>::AppendBinary(*value, out);
  }
};

// Inserts the rows of one sink writer (implemented in
// lib/connectors/clickhouse). Thread-safety: one caller thread.
class ClickHouseInserter {
 public:
  // kInvalidArgument for bad options. Connects to check the table: its
  // engine and version column (see the top), and for kRowBinary its column
  // types; kNotFound when it does not exist.
  static absl::StatusOr<std::unique_ptr<ClickHouseInserter>> Create(
      const clickhouse::SinkOptions& options,
      const std::vector<clickhouse::ColumnDefinition>& columns, const SinkContext& context);
  virtual ~ClickHouseInserter() = default;
  // Appends `rows` rows, `encode(i, out)` appending row i (a JSON object
  // without the newline, or its RowBinary bytes) to `out`. May block while earlier batches are
  // being inserted. Returns the error of a failed insert.
  virtual absl::Status Append(size_t rows,
                              absl::FunctionRef<void(size_t, std::string&)> encode) = 0;
  // Inserts everything appended so far.
  virtual absl::Status Flush() = 0;
  // Seals everything appended so far and returns at once; `done` is called
  // on the background thread once it is inserted (or with the error that
  // stopped it), in call order. Not called after Close().
  virtual void FlushAsync(std::function<void(absl::Status)> done) = 0;
  // Stops the background thread (without inserting what is buffered).
  virtual absl::Status Close() = 0;
};

// Runs `sql` (with `options`' database and settings) and returns the body of
// the answer.
absl::StatusOr<std::string> ClickHouseQuery(const clickhouse::ConnectionOptions& options,
                                            absl::string_view sql);

}  // namespace weir::clickhouse::internal

namespace weir::clickhouse {

// The columns a record type is written as: each a name, a way to get the
// value from a record, and its ClickHouse type. Supported C++ value types:
// bool (UInt8), integers (Int8..UInt64), float/double (Float32/64),
// strings (String) and std::optional of these (Nullable(...)).
template <class T>
class Columns {
 public:
  // A column read from `accessor` (a pointer to a data member, or a callable
  // taking const T&). `type` overrides the ClickHouse type derived from the
  // value's C++ type (e.g. "LowCardinality(String)", "Date" for a string,
  // "DateTime" for Unix seconds, "Enum8('a' = 1, 'b' = 2)").
  template <class Accessor>
  Columns& Add(std::string name, Accessor accessor, std::string type = "") {
    using V = std::remove_cvref_t<std::invoke_result_t<Accessor&, const T&>>;
    const bool row_binary = type.empty();
    if (type.empty()) type = internal::ClickHouseValue<V>::Type();
    columns_.push_back({std::move(name), std::move(type), row_binary,
                        [accessor](const T& record, std::string& out) {
                          internal::ClickHouseValue<V>::Append(std::invoke(accessor, record), out);
                        },
                        [accessor](const T& record, internal::RowBinaryWriter& out) {
                          internal::ClickHouseValue<V>::AppendBinary(std::invoke(accessor, record),
                                                                     out);
                        }});
    return *this;
  }
  // A DateTime column from a weir::Timestamp (ms since the epoch, any
  // integer): written as whole seconds, rounded down.
  // Seconds outside DateTime's range (1970 to 2106) are clamped to it.
  template <class Accessor>
  Columns& AddDateTime(std::string name, Accessor accessor) {
    auto seconds = [accessor](const T& record) -> uint32_t {
      const int64_t ms = static_cast<int64_t>(std::invoke(accessor, record));
      if (ms <= 0) return 0;
      return static_cast<uint32_t>(std::min<int64_t>(ms / 1000, UINT32_MAX));
    };
    columns_.push_back(
        {std::move(name), "DateTime", true,
         [seconds](const T& record, std::string& out) { absl::StrAppend(&out, seconds(record)); },
         [seconds](const T& record, internal::RowBinaryWriter& out) {
           out.LittleEndian(seconds(record));
         }});
    return *this;
  }

  std::vector<ColumnDefinition> Definitions() const {
    std::vector<ColumnDefinition> out;
    for (const Column& column : columns_) {
      out.push_back({column.name, column.type, column.row_binary});
    }
    return out;
  }
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    for (const Column& column : columns_) out.push_back(column.name);
    return out;
  }
  size_t size() const { return columns_.size(); }

  // Appends `record` as a JSON object (no newline): {"name":value,...}.
  void AppendRow(const T& record, std::string& out) const {
    char separator = '{';
    for (const Column& column : columns_) {
      out.push_back(separator);
      separator = ',';
      json::AppendString(column.name, out);
      out.push_back(':');
      column.append(record, out);
    }
    out.append(separator == '{' ? "{}" : "}");
  }
  // Appends `record` in RowBinary: the columns' values back to back.
  void AppendRowBinary(const T& record, std::string& out) const {
    internal::RowBinaryWriter writer(out);
    for (const Column& column : columns_) column.append_binary(record, writer);
    writer.Finish();
  }

 private:
  struct Column {
    std::string name;
    std::string type;
    bool row_binary;
    std::function<void(const T&, std::string&)> append;
    std::function<void(const T&, internal::RowBinaryWriter&)> append_binary;
  };
  std::vector<Column> columns_;
};

// How CreateTable makes the table idempotent for replays.
struct TableOptions {
  // The table name, in the connection's database (required).
  std::string table;
  // The sorting key that identifies a row: rows with equal ORDER BY values
  // (in one partition) collapse into one (required; names or expressions).
  std::vector<std::string> order_by;
  // The ReplacingMergeTree version column: of the rows that collapse, the
  // one with the highest version is kept (the last inserted when empty;
  // the sink then needs SinkOptions::immutable_rows, see the top).
  // Default: none
  std::string version_column;
  // Adds this UInt64 column (not in `columns`) and makes it the version:
  // for a sink with the same SinkOptions::batch_version_column. Not with
  // `version_column`.
  // Default: none
  std::string batch_version_column;
  // A DateTime (or UInt32 seconds) column to partition by, in buckets of
  // `partition_interval` aligned to the epoch (whole seconds).
  // Default: none (one partition)
  std::string partition_time_column;
  // Default: 30 minutes
  absl::Duration partition_interval = absl::Minutes(30);
  // Default: true (CREATE TABLE IF NOT EXISTS)
  bool if_not_exists = true;
};

// The CREATE TABLE statement for `columns` as a ReplacingMergeTree:
//
//   CREATE TABLE IF NOT EXISTS `events` (`content_id` UInt64, `event_ts` DateTime, ...)
//   ENGINE = ReplacingMergeTree(`version`)
//   PARTITION BY toDateTime(intDiv(toUInt32(`event_ts`), 1800) * 1800)
//   ORDER BY (`content_id`, `event_ts`)
//
// kInvalidArgument when a required option is missing or a named column is
// not among `columns`.
absl::StatusOr<std::string> CreateTableStatement(const std::vector<ColumnDefinition>& columns,
                                                 const TableOptions& options);

// Creates the table (see CreateTableStatement) on the server.
absl::Status CreateTable(const ConnectionOptions& connection,
                         const std::vector<ColumnDefinition>& columns, const TableOptions& options);
template <class T>
absl::Status CreateTable(const ConnectionOptions& connection, const Columns<T>& columns,
                         const TableOptions& options) {
  return CreateTable(connection, columns.Definitions(), options);
}

// Runs one statement (DDL, or a query whose answer you want as text: add
// "FORMAT TSV" or similar) with retries; returns the server's answer.
inline absl::StatusOr<std::string> Query(const ConnectionOptions& connection,
                                         std::string_view sql) {
  return internal::ClickHouseQuery(connection, absl::string_view(sql.data(), sql.size()));
}

// The sink. Thread-safety: writers are per worker; the sink is shared.
template <class T>
class ClickHouseSink final : public weir::Sink<T> {
 public:
  ClickHouseSink(SinkOptions options, Columns<T> columns)
      : options_(std::move(options)), columns_(std::move(columns)) {}

  absl::StatusOr<std::unique_ptr<SinkWriter<T>>> CreateWriter(const SinkContext& context) override {
    if (columns_.size() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("clickhouse sink '", options_.table, "': no columns"));
    }
    absl::StatusOr<std::unique_ptr<internal::ClickHouseInserter>> inserter =
        internal::ClickHouseInserter::Create(options_, columns_.Definitions(), context);
    if (!inserter.ok()) return inserter.status();
    return std::unique_ptr<SinkWriter<T>>(
        new Writer(&columns_, *std::move(inserter), options_.format == Format::kRowBinary));
  }

 private:
  class Writer final : public SinkWriter<T> {
   public:
    Writer(const Columns<T>* columns, std::unique_ptr<internal::ClickHouseInserter> inserter,
           bool row_binary)
        : columns_(columns), inserter_(std::move(inserter)), row_binary_(row_binary) {}
    absl::Status Write(std::span<T> values, std::span<const Timestamp>) override {
      if (row_binary_) {
        return inserter_->Append(values.size(), [&](size_t row, std::string& out) {
          columns_->AppendRowBinary(values[row], out);
        });
      }
      return inserter_->Append(values.size(), [&](size_t row, std::string& out) {
        columns_->AppendRow(values[row], out);
      });
    }
    bool ReadsOnly() const override { return true; }
    absl::Status Flush() override { return inserter_->Flush(); }
    // At a barrier, the rows before it are inserted while the worker goes on.
    bool PreCommitAsync(int64_t, typename SinkWriter<T>::PreCommitDone& done) override {
      inserter_->FlushAsync([done = std::move(done)](absl::Status status) {
        if (status.ok()) {
          done(std::string());
        } else {
          done(std::move(status));
        }
      });
      return true;
    }
    absl::Status Close() override { return inserter_->Close(); }

   private:
    const Columns<T>* columns_;
    std::unique_ptr<internal::ClickHouseInserter> inserter_;
    const bool row_binary_;
  };

  SinkOptions options_;
  Columns<T> columns_;
};

// A ClickHouse sink for records of type T (see the top of this file).
template <class T>
std::shared_ptr<weir::Sink<T>> Sink(SinkOptions options, Columns<T> columns) {
  return std::make_shared<ClickHouseSink<T>>(std::move(options), std::move(columns));
}

}  // namespace weir::clickhouse

#endif  // WEIR_CONNECTORS_CLICKHOUSE_H_
