// Debezium change events in the exact shape Kafka Connect's JsonConverter
// writes them (schemas.enable=true) for the PostgreSQL and MySQL connectors:
// {"schema": <envelope schema>, "payload": {"before", "after", "source",
// "op", "ts_ms", "transaction"}}, and the record key {"schema", "payload"}.
// Column schemas are given as Kafka Connect writes them, without "field".
//
// Example:
//   weir::testing::EnvelopeTable table{
//       .connector = weir::testing::Connector::kMySql, .db = "shop", .table = "orders",
//       .columns = {{"id", R"("type":"int64","optional":false)"}},
//       .key = {"id"}};
//   std::string value = table.Value("c", std::nullopt, R"({"id":1})", {.pos = 154});
//   std::string key = table.Key(R"({"id":1})");

#ifndef WEIR_TESTS_SUPPORT_DEBEZIUM_ENVELOPES_H_
#define WEIR_TESTS_SUPPORT_DEBEZIUM_ENVELOPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace weir::testing {

enum class Connector { kPostgres, kMySql };

// Where a change was in the database's log.
struct LogPosition {
  int64_t lsn = 0;                        // PostgreSQL
  std::string file = "mysql-bin.000003";  // MySQL
  int64_t pos = 0;
  int32_t row = 0;
  std::string gtid;
  int64_t ts_ms = 1'700'000'000'000;
};

struct EnvelopeTable {
  Connector connector = Connector::kPostgres;
  std::string db = "inventory";
  std::string schema = "public";  // PostgreSQL only
  std::string table;
  // name -> the column's schema members, e.g. R"("type":"int32","optional":false)".
  std::vector<std::pair<std::string, std::string>> columns;
  std::vector<std::string> key;

  std::string Prefix() const {
    return connector == Connector::kPostgres ? absl::StrCat("pg.", schema, ".", table)
                                             : absl::StrCat("mysql.", db, ".", table);
  }

  std::string RowSchema(const char* field) const {
    std::vector<std::string> fields;
    for (const auto& [name, members] : columns) {
      fields.push_back(absl::StrCat("{", members, ",\"field\":\"", name, "\"}"));
    }
    return absl::StrCat("{\"type\":\"struct\",\"fields\":[", absl::StrJoin(fields, ","),
                        "],\"optional\":true,\"name\":\"", Prefix(), ".Value\",\"field\":\"", field,
                        "\"}");
  }

  std::string SourceSchema() const {
    if (connector == Connector::kPostgres) {
      return R"({"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"})";
    }
    return R"({"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"string","optional":true,"field":"table"},{"type":"int64","optional":false,"field":"server_id"},{"type":"string","optional":true,"field":"gtid"},{"type":"string","optional":false,"field":"file"},{"type":"int64","optional":false,"field":"pos"},{"type":"int32","optional":false,"field":"row"},{"type":"int64","optional":true,"field":"thread"},{"type":"string","optional":true,"field":"query"}],"optional":false,"name":"io.debezium.connector.mysql.Source","field":"source"})";
  }

  std::string Source(const LogPosition& at) const {
    if (connector == Connector::kPostgres) {
      return absl::StrCat(
          R"({"version":"2.5.0.Final","connector":"postgresql","name":"pg","ts_ms":)", at.ts_ms,
          R"(,"snapshot":"false","db":")", db, R"(","sequence":"[null,\")", at.lsn,
          R"(\"]","schema":")", schema, R"(","table":")", table, R"(","txId":)", 500 + at.lsn % 97,
          R"(,"lsn":)", at.lsn, R"(,"xmin":null})");
    }
    return absl::StrCat(R"({"version":"2.5.0.Final","connector":"mysql","name":"mysql","ts_ms":)",
                        at.ts_ms, R"(,"snapshot":"false","db":")", db,
                        R"(","sequence":null,"table":")", table, R"(","server_id":223344,"gtid":)",
                        at.gtid.empty() ? "null" : absl::StrCat("\"", at.gtid, "\""),
                        R"(,"file":")", at.file, R"(","pos":)", at.pos, R"(,"row":)", at.row,
                        R"(,"thread":7,"query":null})");
  }

  // The record value for `op` ("c", "u", "d", "r", "t") with the rows' JSON
  // (or null).
  std::string Value(const std::string& op, const std::optional<std::string>& before,
                    const std::optional<std::string>& after, const LogPosition& at = {}) const {
    const std::string schema_json = absl::StrCat(
        R"({"type":"struct","fields":[)", RowSchema("before"), ",", RowSchema("after"), ",",
        SourceSchema(),
        R"(,{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}],"optional":false,"name":")",
        Prefix(), R"(.Envelope","version":1})");
    return absl::StrCat(R"({"schema":)", schema_json, R"(,"payload":{"before":)",
                        before.value_or("null"), R"(,"after":)", after.value_or("null"),
                        R"(,"source":)", Source(at), R"(,"op":")", op, R"(","ts_ms":)",
                        at.ts_ms + 5, R"(,"transaction":null}})");
  }

  // The record key: the key columns' values (`payload`, a JSON object).
  std::string Key(const std::string& payload) const {
    std::vector<std::string> fields;
    for (const std::string& name : key) {
      for (const auto& [column, members] : columns) {
        if (column == name) {
          fields.push_back(absl::StrCat("{", members, ",\"field\":\"", name, "\"}"));
        }
      }
    }
    return absl::StrCat(R"({"schema":{"type":"struct","fields":[)", absl::StrJoin(fields, ","),
                        R"(],"optional":false,"name":")", Prefix(), R"(.Key"},"payload":)", payload,
                        "}");
  }
};

// Kafka Connect's Decimal bytes, base64: the big-endian two's complement of
// `unscaled`, in as few bytes as hold it (BigInteger.toByteArray()).
inline std::string DecimalBase64(absl::int128 unscaled) {
  std::string bytes;
  const auto bits = static_cast<absl::uint128>(unscaled);
  for (int idx = 0; idx < 16; ++idx) {
    bytes.insert(bytes.begin(), static_cast<char>(absl::Uint128Low64(bits >> (8 * idx)) & 0xff));
  }
  while (bytes.size() > 1 && ((bytes[0] == 0 && (static_cast<uint8_t>(bytes[1]) & 0x80) == 0) ||
                              (static_cast<uint8_t>(bytes[0]) == 0xff &&
                               (static_cast<uint8_t>(bytes[1]) & 0x80) != 0))) {
    bytes.erase(bytes.begin());
  }
  return absl::Base64Escape(bytes);
}

}  // namespace weir::testing

#endif  // WEIR_TESTS_SUPPORT_DEBEZIUM_ENVELOPES_H_
