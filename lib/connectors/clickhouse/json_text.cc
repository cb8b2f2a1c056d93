// JSON text of JSONEachRow values that weir::json writes differently.

#include <cmath>
#include <string>

#include "weir/connectors/clickhouse.h"
#include "weir/formats/json.h"

namespace weir::clickhouse::internal {

void AppendJsonDouble(double value, std::string& out) {
  // JSON has no NaN or infinities (weir::json writes null); ClickHouse parses
  // them quoted.
  if (std::isnan(value)) {
    out.append("\"nan\"");
  } else if (std::isinf(value)) {
    out.append(value > 0 ? "\"inf\"" : "\"-inf\"");
  } else {
    json::AppendDouble(value, out);
  }
}

}  // namespace weir::clickhouse::internal
