// Random histories of table changes for the mirror tests, as Debezium
// records (tests/support/debezium_envelopes.h), with a reference model of
// every table's final state.
//
// Three tables: PostgreSQL public.orders (int64 key, Decimal(12,2),
// int32, text, MicroTimestamp; a column `extra` is added after 40% of the
// history), PostgreSQL public.accounts (a two-column key, Decimal(38,10),
// boolean; truncated after 2/3 of the history), and MySQL shop.events
// (BIGINT UNSIGNED key as precise Decimal(20,0), a DOUBLE, a nullable DATE,
// a TIMESTAMP(6)). Inserts, updates and deletes at random.
//
// Example:
//   MirrorHistory history = MirrorHistory::Generate(/*seed=*/7, /*changes=*/2000);
//   for (const HistoryRecord& record : history.records) Produce(record);
//   // ... then compare each store's rows with history.tables.

#ifndef WEIR_TESTS_SUPPORT_MIRROR_HISTORY_H_
#define WEIR_TESTS_SUPPORT_MIRROR_HISTORY_H_

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "tests/support/debezium_envelopes.h"
#include "weir/formats/debezium_row.h"

namespace weir::testing {

// How a model value is rendered by a store.
enum class ModelKind { kInt, kDecimal, kString, kBool, kDate, kTimestampMicros, kDouble };

struct ModelColumn {
  std::string name;
  ModelKind kind = ModelKind::kInt;
  int scale = 0;  // kDecimal
};

// A value: NULL, or its canonical text (integers, decimals with exactly
// `scale` digits after the point, strings, "true"/"false", days since the
// epoch, microseconds since the epoch, doubles as JSON numbers).
using ModelValue = std::optional<std::string>;

struct ModelTable {
  std::string source;  // "public.orders"
  std::string target;  // "orders"
  std::string topic;
  std::vector<ModelColumn> columns;  // the final columns, in order
  std::vector<std::string> key;
  // The key's text -> the row's values, one per column.
  std::map<std::string, std::vector<ModelValue>> rows;
};

struct HistoryRecord {
  std::string topic;
  std::string key;
  std::string value;
};

inline std::string DecimalText(absl::int128 unscaled, int scale) {
  const bool negative = unscaled < 0;
  absl::uint128 magnitude = negative ? absl::uint128(0) - static_cast<absl::uint128>(unscaled)
                                     : static_cast<absl::uint128>(unscaled);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude != 0);
  if (scale > 0) {
    if (digits.size() <= static_cast<size_t>(scale)) {
      digits.insert(0, static_cast<size_t>(scale) + 1 - digits.size(), '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale), 1, '.');
  }
  return negative ? "-" + digits : digits;
}

// "YYYY-MM-DD" of `days` since 1970-01-01.
inline std::string DateText(int64_t days) {
  const absl::CivilDay day = absl::CivilDay(1970, 1, 1) + days;
  return absl::StrFormat("%04d-%02d-%02d", day.year(), day.month(), day.day());
}

// "2024-03-01T09:30:00.123456Z" for micros since the epoch.
inline std::string ZonedMicros(int64_t micros) {
  const int64_t seconds = micros / 1'000'000;
  const absl::CivilSecond civil = absl::CivilSecond(1970, 1, 1, 0, 0, 0) + seconds;
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", civil.year(), civil.month(),
                         civil.day(), civil.hour(), civil.minute(), civil.second(),
                         static_cast<int>(micros % 1'000'000));
}

class MirrorHistory {
 public:
  std::vector<HistoryRecord> records;
  std::map<std::string, ModelTable> tables;  // by target name
  // The index of the first record after which `orders` has `extra`, and of
  // the truncate of `accounts`.
  size_t column_added_at = 0;
  size_t truncated_at = 0;

  static MirrorHistory Generate(uint64_t seed, int changes) {
    MirrorHistory history;
    std::mt19937_64 random(seed);
    EnvelopeTable orders{
        .table = "orders",
        .columns =
            {{"id", R"("type":"int64","optional":false)"},
             {"total",
              R"("type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"})"},
             {"qty", R"("type":"int32","optional":false)"},
             {"note", R"("type":"string","optional":true)"},
             {"at",
              R"("type":"int64","optional":false,"name":"io.debezium.time.MicroTimestamp","version":1)"}},
        .key = {"id"}};
    EnvelopeTable accounts{
        .table = "accounts",
        .columns =
            {{"tenant", R"("type":"string","optional":false)"},
             {"id", R"("type":"int32","optional":false)"},
             {"balance",
              R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"10","connect.decimal.precision":"38"})"},
             {"active", R"("type":"boolean","optional":false)"}},
        .key = {"tenant", "id"}};
    EnvelopeTable events{
        .connector = Connector::kMySql,
        .db = "shop",
        .table = "events",
        .columns =
            {{"id",
              R"("type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"0","connect.decimal.precision":"20"})"},
             {"amount", R"("type":"double","optional":false)"},
             {"day",
              R"("type":"int32","optional":true,"name":"io.debezium.time.Date","version":1)"},
             {"seen",
              R"("type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1)"}},
        .key = {"id"}};
    ModelTable& model_orders = history.tables["orders"];
    model_orders = {"public.orders",
                    "orders",
                    "pg.public.orders",
                    {{"id"},
                     {"total", ModelKind::kDecimal, 2},
                     {"qty"},
                     {"note", ModelKind::kString},
                     {"at", ModelKind::kTimestampMicros},
                     {"extra", ModelKind::kString}},
                    {"id"},
                    {}};
    ModelTable& model_accounts = history.tables["accounts"];
    model_accounts = {"public.accounts",
                      "accounts",
                      "pg.public.accounts",
                      {{"tenant", ModelKind::kString},
                       {"id"},
                       {"balance", ModelKind::kDecimal, 10},
                       {"active", ModelKind::kBool}},
                      {"tenant", "id"},
                      {}};
    ModelTable& model_events = history.tables["events"];
    model_events = {"shop.events",
                    "events",
                    "mysql.shop.events",
                    {{"id", ModelKind::kDecimal, 0},
                     {"amount", ModelKind::kDouble},
                     {"day", ModelKind::kDate},
                     {"seen", ModelKind::kTimestampMicros}},
                    {"id"},
                    {}};

    history.column_added_at = static_cast<size_t>(changes) * 2 / 5;
    history.truncated_at = static_cast<size_t>(changes) * 2 / 3;
    int64_t lsn = 1000;
    int64_t pos = 4;
    const auto pick = [&](int64_t low, int64_t high) {
      return std::uniform_int_distribution<int64_t>(low, high)(random);
    };
    const auto text = [&]() {
      static const char* const kWords[] = {"alpha",       "beta",      "gamma",
                                           "delta \"q\"", "ε-unicode", "a b c"};
      return std::string(kWords[pick(0, 5)]);
    };
    const auto emit = [&](const EnvelopeTable& table, const std::string& op,
                          const std::optional<std::string>& before,
                          const std::optional<std::string>& after, const std::string& key) {
      LogPosition at{.lsn = lsn += 8, .pos = pos += 100};
      history.records.push_back(
          {table.Prefix(), key.empty() ? "" : table.Key(key), table.Value(op, before, after, at)});
    };

    for (int change_idx = 0; change_idx < changes; ++change_idx) {
      const size_t now = history.records.size();
      if (now == history.column_added_at) {
        orders.columns.push_back({"extra", R"("type":"string","optional":true)"});
      }
      if (now == history.truncated_at) {
        emit(accounts, "t", std::nullopt, std::nullopt, "");
        model_accounts.rows.clear();
        continue;
      }
      const int table_idx = static_cast<int>(pick(0, 2));
      ModelTable& model = table_idx == 0   ? model_orders
                          : table_idx == 1 ? model_accounts
                                           : model_events;
      // Pick an existing row (update/delete) or a new one.
      const int64_t roll = pick(0, 99);
      const bool existing = !model.rows.empty() && roll < 55;
      const bool remove = existing && roll < 15;
      std::string key_text;
      if (existing) {
        auto it = model.rows.begin();
        std::advance(it, pick(0, static_cast<int64_t>(model.rows.size()) - 1));
        key_text = it->first;
      }
      if (table_idx == 0) {
        const int64_t id = existing ? std::stoll(key_text) : pick(1, 1'000'000);
        key_text = absl::StrCat(id);
        const std::string key = absl::StrCat(R"({"id":)", id, "}");
        if (remove) {
          emit(orders, "d",
               absl::StrCat(R"({"id":)", id, R"(,"total":null,"qty":0,"note":null,"at":0)",
                            orders.columns.size() > 5 ? R"(,"extra":null})" : "}"),
               std::nullopt, key);
          model.rows.erase(key_text);
          continue;
        }
        const bool null_total = pick(0, 9) == 0;
        const absl::int128 total = pick(-99'999'999'999, 99'999'999'999);
        const int64_t qty = pick(INT32_MIN, INT32_MAX);
        const bool null_note = pick(0, 4) == 0;
        const std::string note = text();
        const int64_t at_micros = pick(0, 4'000'000'000'000'000);
        const bool has_extra = orders.columns.size() > 5;
        const std::string extra = has_extra ? text() : "";
        std::string after = absl::StrCat(
            R"({"id":)", id, R"(,"total":)",
            null_total ? "null" : absl::StrCat("\"", DecimalBase64(total), "\""), R"(,"qty":)", qty,
            R"(,"note":)", null_note ? "null" : JsonQuote(note), R"(,"at":)", at_micros);
        if (has_extra) absl::StrAppend(&after, R"(,"extra":)", JsonQuote(extra));
        after.append("}");
        emit(orders, existing ? "u" : "c", std::nullopt, after, key);
        model.rows[key_text] = {
            absl::StrCat(id),        null_total ? ModelValue() : ModelValue(DecimalText(total, 2)),
            absl::StrCat(qty),       null_note ? ModelValue() : ModelValue(note),
            absl::StrCat(at_micros), has_extra ? ModelValue(extra) : ModelValue()};
      } else if (table_idx == 1) {
        std::string tenant = text();
        int64_t id = pick(1, 50);
        if (existing) {
          const size_t bar = key_text.find('|');
          tenant = key_text.substr(0, bar);
          id = std::stoll(key_text.substr(bar + 1));
        }
        key_text = absl::StrCat(tenant, "|", id);
        const std::string key =
            absl::StrCat(R"({"tenant":)", JsonQuote(tenant), R"(,"id":)", id, "}");
        if (remove) {
          emit(accounts, "d",
               absl::StrCat(R"({"tenant":)", JsonQuote(tenant), R"(,"id":)", id,
                            R"(,"balance":"AA==","active":false})"),
               std::nullopt, key);
          model.rows.erase(key_text);
          continue;
        }
        // Up to 28 digits before the point, 10 after: beyond int64 and double.
        const absl::int128 balance = absl::MakeInt128(pick(-(int64_t{1} << 40), int64_t{1} << 40),
                                                      static_cast<uint64_t>(random()));
        const bool active = pick(0, 1) == 1;
        emit(accounts, existing ? "u" : "c", std::nullopt,
             absl::StrCat(R"({"tenant":)", JsonQuote(tenant), R"(,"id":)", id, R"(,"balance":")",
                          DecimalBase64(balance), R"(","active":)", active ? "true" : "false", "}"),
             key);
        model.rows[key_text] = {tenant, absl::StrCat(id), DecimalText(balance, 10),
                                active ? "true" : "false"};
      } else {
        // BIGINT UNSIGNED: ids above 2^63 as well.
        const absl::int128 id = existing ? absl::int128(std::stoull(key_text))
                                         : absl::int128(static_cast<uint64_t>(random()) |
                                                        (static_cast<uint64_t>(pick(0, 1)) << 63));
        key_text = DecimalText(id, 0);
        const std::string key = absl::StrCat(R"({"id":")", DecimalBase64(id), R"("})");
        if (remove) {
          emit(events, "d",
               absl::StrCat(R"({"id":")", DecimalBase64(id),
                            R"(","amount":0.0,"day":null,"seen":null})"),
               std::nullopt, key);
          model.rows.erase(key_text);
          continue;
        }
        const int64_t quarters = pick(-400'000, 400'000);
        const std::string amount = DoubleText(static_cast<double>(quarters) / 4.0);
        const bool null_day = pick(0, 3) == 0;  // zero dates arrive as null
        const int64_t day = pick(0, 40'000);
        const bool null_seen = pick(0, 3) == 0;
        const int64_t seen = pick(0, 2'000'000'000'000'000);
        emit(events, existing ? "u" : "c", std::nullopt,
             absl::StrCat(R"({"id":")", DecimalBase64(id), R"(","amount":)", amount, R"(,"day":)",
                          null_day ? "null" : absl::StrCat(day), R"(,"seen":)",
                          null_seen ? "null" : absl::StrCat("\"", ZonedMicros(seen), "\""), "}"),
             key);
        model.rows[key_text] = {key_text, amount,
                                null_day ? ModelValue() : ModelValue(absl::StrCat(day)),
                                null_seen ? ModelValue() : ModelValue(absl::StrCat(seen))};
      }
    }
    return history;
  }

  static std::string JsonQuote(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    return out + "\"";
  }

  // Quarters print exactly: "-12.25", "3", "0.5".
  static std::string DoubleText(double value) {
    std::string text = absl::StrFormat("%.2f", value);
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
    if (text == "-0") text = "0";
    return text;
  }
};

// The changes of `history`, decoded, with the Kafka offsets one partition
// would give them; empty (and the error in `error`) when one does not decode.
inline std::vector<debezium::RowChange> DecodeHistory(const MirrorHistory& history,
                                                      std::string* error = nullptr) {
  absl::StatusOr<debezium::RowDecoder> decoder = debezium::RowDecoder::Create();
  if (!decoder.ok()) {
    if (error != nullptr) *error = decoder.status().ToString();
    return {};
  }
  std::vector<debezium::RowChange> changes;
  for (size_t idx = 0; idx < history.records.size(); ++idx) {
    const HistoryRecord& record = history.records[idx];
    absl::StatusOr<debezium::RowChange> change =
        decoder->Decode(record.key, record.value, record.topic);
    if (!change.ok()) {
      if (error != nullptr) *error = absl::StrCat(change.status().ToString(), "\n", record.value);
      return {};
    }
    change->offset = static_cast<int64_t>(idx);
    changes.push_back(*std::move(change));
  }
  return changes;
}

}  // namespace weir::testing

#endif  // WEIR_TESTS_SUPPORT_MIRROR_HISTORY_H_
