// The Debezium envelope decoder behind weir/formats/debezium.h.
//
// One pass of simdjson On-Demand over the message. With the schema/payload
// wrapper, the schema's and the payload's raw text are noted on the way and
// read afterwards from the same (padded) buffer: the schema first (or taken
// from the cache when its text is byte-identical to the previous message's,
// which is the normal case), then the payload with the schema at hand.

#include "weir/formats/debezium.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "lib/common/status.h"
#include "lib/formats/debezium_field.h"
#include "lib/formats/debezium_schema.h"
#include "lib/formats/decimal.h"
#include "lib/formats/json_reader.h"
#include "lib/formats/str_cat.h"
#include "simdjson.h"

namespace weir::debezium {

void WritePostgresSource(const SourceInfo& source, json::Writer& out) {
  out.BeginObject()
      .Member("version", source.version)
      .Member("connector", source.connector)
      .Member("name", source.name)
      .Member("ts_ms", source.ts_ms)
      .Member("snapshot", source.snapshot)
      .Member("db", source.db)
      .Member("schema", source.schema)
      .Member("table", source.table)
      .Member("txId", source.tx_id)
      .Member("lsn", source.lsn)
      .EndObject();
}

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kCreate:
      return "c";
    case Op::kUpdate:
      return "u";
    case Op::kDelete:
      return "d";
    case Op::kRead:
      return "r";
    case Op::kTruncate:
      return "t";
    case Op::kTombstone:
      return "tombstone";
    case Op::kMessage:
      return "m";
    case Op::kHeartbeat:
      return "heartbeat";
    case Op::kTransaction:
      return "transaction";
  }
  return "?";
}

namespace internal {
namespace {

using weir::internal::Cat;

namespace ondemand = simdjson::ondemand;
using weir::internal::CaptureObjectOrNull;
using weir::internal::CheckDocumentEnd;
using weir::internal::FieldKey;
using weir::internal::IsBlankOrNull;
using weir::internal::JsonError;
using weir::internal::ReadInt64;
using weir::internal::ReadNull;
using weir::internal::SkipValue;
using weir::internal::TypeOf;
using weir::internal::Unexpected;

absl::Status FieldError(std::string_view context, std::string_view field,
                        const absl::Status& status) {
  return weir::internal::Annotate(weir::internal::Annotate(status, Cat("field \"", field, "\"")),
                                  context);
}

// The envelope fields, and those of the records that are not row changes
// (messages, transaction markers); anything else is ignored.
enum class EnvelopeKey {
  kNone,
  kOp,
  kBefore,
  kAfter,
  kSource,
  kTsMs,
  kMessage,
  kStatus,
  kId,
  kEventCount,
  kDataCollections,
  kOther
};

EnvelopeKey ClassifyEnvelopeKey(std::string_view key) {
  if (key == "op") return EnvelopeKey::kOp;
  if (key == "before") return EnvelopeKey::kBefore;
  if (key == "after") return EnvelopeKey::kAfter;
  if (key == "source") return EnvelopeKey::kSource;
  if (key == "ts_ms") return EnvelopeKey::kTsMs;
  if (key == "message") return EnvelopeKey::kMessage;
  if (key == "status") return EnvelopeKey::kStatus;
  if (key == "id") return EnvelopeKey::kId;
  if (key == "event_count") return EnvelopeKey::kEventCount;
  if (key == "data_collections") return EnvelopeKey::kDataCollections;
  if (key == "ts_us" || key == "ts_ns" || key == "transaction") return EnvelopeKey::kOther;
  return EnvelopeKey::kNone;
}

std::optional<Op> ParseOp(std::string_view text) {
  if (text == "c") return Op::kCreate;
  if (text == "u") return Op::kUpdate;
  if (text == "d") return Op::kDelete;
  if (text == "r") return Op::kRead;
  if (text == "t") return Op::kTruncate;
  if (text == "m") return Op::kMessage;
  return std::nullopt;
}

// What the envelope said, collected while reading it.
struct EnvelopeState {
  std::optional<Op> op;
  bool has_before = false;
  bool has_after = false;
  bool has_source = false;
  std::optional<int64_t> ts_ms;
  std::optional<LogicalMessage> message;
  // Transaction metadata records.
  std::optional<std::string> status;
  std::optional<std::string> id;
  std::optional<int64_t> event_count;
  std::vector<std::pair<std::string, int64_t>> data_collections;
};

}  // namespace

class DecoderCore {
 public:
  DecoderCore(std::vector<FieldSpec> specs, absl::flat_hash_map<std::string, int> columns,
              DecoderOptions options)
      : specs_(std::move(specs)), columns_(std::move(columns)), options_(std::move(options)) {
    const std::string& placeholder = options_.unavailable_value_placeholder;
    if (!placeholder.empty()) {
      // Compared with raw string tokens, quotes included.
      placeholder_tokens_[0] = Cat("\"", placeholder, "\"");
      placeholder_tokens_[1] =
          Cat("\"", absl::Base64Escape(weir::internal::ToAbsl(placeholder)), "\"");
    }
  }

  absl::Status DecodeChange(std::string_view json, void* before, void* after, ChangeHeader& header,
                            SourceInfo& source);
  absl::Status DecodeRow(std::string_view json, void* row, bool& is_null);
  // Reads an envelope's "source" block (also for RowDecoder).
  static absl::Status ReadSource(ondemand::value& value, SourceInfo& source);
  bool Skips(Op op) const {
    switch (op) {
      case Op::kMessage:
        return options_.messages == NonRowPolicy::kSkip;
      case Op::kHeartbeat:
        return options_.heartbeats == NonRowPolicy::kSkip;
      case Op::kTransaction:
        return options_.transactions == NonRowPolicy::kSkip;
      default:
        return false;
    }
  }

 private:
  // The schema text last seen and what it resolved to.
  struct CachedSchema {
    bool valid = false;
    std::string text;
    ResolvedSchema resolved;
  };

  absl::Status Iterate(std::string_view inside, ondemand::document& document) {
    return json_.Iterate(inside, document);
  }
  absl::Status Resolve(std::string_view schema_text, bool envelope, CachedSchema& cache,
                       const ResolvedSchema*& resolved);

  absl::Status ReadEnvelopeField(EnvelopeKey key, ondemand::value& value,
                                 const ResolvedSchema* schema, void* before, void* after,
                                 EnvelopeState& state, SourceInfo& source);
  absl::Status ReadRow(ondemand::object& object, const ResolvedSchema* schema, void* row,
                       bool enforce_required, std::string_view context);
  absl::Status ReadArray(const FieldSpec& spec, const ColumnSchema* column, ondemand::value& value,
                         void* row);
  bool IsPlaceholder(ondemand::value& value) const;
  // The declared field named `key`, the `position`-th key of a row, or -1
  // when none is. Debezium writes a table's columns in the same order in
  // every row, so the key is first compared with the one last seen at that
  // position; only a new order costs a hash lookup.
  int ColumnAt(size_t position, std::string_view key) {
    if (position < row_order_.size() && row_order_[position].first == key) {
      return row_order_[position].second;
    }
    auto found = columns_.find(weir::internal::ToAbsl(key));
    const int idx = found == columns_.end() ? -1 : found->second;
    if (position < kRememberedColumns) {
      if (row_order_.size() <= position) row_order_.resize(position + 1);
      row_order_[position] = {std::string(key), idx};
    }
    return idx;
  }
  static absl::Status ReadMessage(ondemand::value& value, std::optional<LogicalMessage>& message);
  static absl::Status ReadDataCollections(ondemand::value& value, EnvelopeState& state);
  // Classifies a record without "op" (heartbeat, transaction marker) and
  // applies DecoderOptions to records that are not row changes.
  absl::Status FinishNonRow(EnvelopeState& state);

  std::vector<FieldSpec> specs_;
  absl::flat_hash_map<std::string, int> columns_;
  DecoderOptions options_;
  weir::internal::PaddedJson json_;
  CachedSchema envelope_schema_;
  CachedSchema row_schema_;
  // The unavailable-value placeholder as a JSON string token, as text and
  // as base64; empty when not checked.
  std::string placeholder_tokens_[2];
  FieldValue scratch_;
  std::vector<uint8_t> seen_;
  // ColumnAt's memory: the key last seen at each position of a row and the
  // field it named (-1: undeclared), for the first kRememberedColumns.
  static constexpr size_t kRememberedColumns = 256;
  std::vector<std::pair<std::string, int>> row_order_;
};

absl::Status DecoderCore::Resolve(std::string_view schema_text, bool envelope, CachedSchema& cache,
                                  const ResolvedSchema*& resolved) {
  if (cache.valid && cache.text == schema_text) {
    resolved = &cache.resolved;
    return absl::OkStatus();
  }
  cache.valid = false;
  ondemand::document document;
  if (absl::Status status = Iterate(schema_text, document); !status.ok()) return status;
  ondemand::object object;
  if (auto error = document.get_object().get(object)) return JsonError(error);
  if (absl::Status status = ResolveSchema(object, envelope, columns_, cache.resolved);
      !status.ok()) {
    return status;
  }
  cache.text.assign(schema_text);
  cache.valid = true;
  resolved = &cache.resolved;
  return absl::OkStatus();
}

absl::Status DecoderCore::ReadArray(const FieldSpec& spec, const ColumnSchema* column,
                                    ondemand::value& value, void* row) {
  if (column != nullptr && column->type != "array") {
    return absl::InvalidArgumentError(
        Cat("expected an array column, the schema says \"", column->type, "\""));
  }
  const ColumnSchema* element_schema =
      column != nullptr && !column->items.empty() ? &column->items.front() : nullptr;
  ondemand::array array;
  if (value.get_array().get(array)) return Unexpected("array", value);
  spec.begin_array(row);
  size_t element_idx = 0;
  for (auto element_result : array) {
    if (auto error = element_result.error()) return JsonError(error);
    ondemand::value& element = element_result.value_unsafe();
    const auto element_error = [element_idx](const absl::Status& status) {
      return weir::internal::Annotate(status, Cat("element [", element_idx, "]"));
    };
    absl::StatusOr<bool> is_null = ReadNull(element);
    if (!is_null.ok()) return is_null.status();
    if (*is_null) {
      if (!spec.nullable_elements) {
        return element_error(
            absl::InvalidArgumentError("null, but the member's elements are not std::optional"));
      }
      spec.append_null(row);
    } else if (!placeholder_tokens_[0].empty() && IsPlaceholder(element)) {
      return element_error(absl::InvalidArgumentError(
          "the value is Debezium's placeholder for an unchanged TOASTed column; set REPLICA "
          "IDENTITY FULL on the table to receive it"));
    } else {
      if (absl::Status status = ConvertField(spec, element_schema, element, scratch_);
          !status.ok()) {
        return element_error(status);
      }
      spec.assign(row, scratch_);
    }
    ++element_idx;
  }
  return absl::OkStatus();
}

bool DecoderCore::IsPlaceholder(ondemand::value& value) const {
  std::string_view token = value.raw_json_token();
  if (token.empty() || token.front() != '"') return false;
  while (!token.empty() && token.back() != '"') token.remove_suffix(1);  // trailing space
  return token == placeholder_tokens_[0] || token == placeholder_tokens_[1];
}

absl::Status DecoderCore::ReadRow(ondemand::object& object, const ResolvedSchema* schema, void* row,
                                  bool enforce_required, std::string_view context) {
  seen_.assign(specs_.size(), 0);
  size_t position = 0;
  for (auto field_result : object) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    ondemand::value& value = field.value();
    const int column_idx = ColumnAt(position++, key);
    if (column_idx < 0) {
      // Not declared (e.g. a column added after the job was written).
      if (absl::Status status = SkipValue(value, 2); !status.ok()) return status;
      continue;
    }
    const size_t idx = static_cast<size_t>(column_idx);
    const FieldSpec& spec = specs_[idx];
    seen_[idx] = 1;
    absl::StatusOr<bool> is_null = ReadNull(value);
    if (!is_null.ok()) return is_null.status();
    if (*is_null) {
      if (spec.required && enforce_required) {
        return FieldError(context, spec.name,
                          absl::InvalidArgumentError("required, but the value is null"));
      }
      spec.clear(row);
      continue;
    }
    if (!placeholder_tokens_[0].empty() && IsPlaceholder(value)) {
      return FieldError(context, spec.name,
                        absl::InvalidArgumentError(
                            "the value is Debezium's placeholder for an unchanged TOASTed "
                            "column; set REPLICA IDENTITY FULL on the table to receive it"));
    }
    const ColumnSchema* column = nullptr;
    if (schema != nullptr && (*schema)[idx].has_value()) column = &*(*schema)[idx];
    if (spec.is_array) {
      if (absl::Status status = ReadArray(spec, column, value, row); !status.ok()) {
        return FieldError(context, spec.name, status);
      }
      continue;
    }
    if (absl::Status status = ConvertField(spec, column, value, scratch_); !status.ok()) {
      return FieldError(context, spec.name, status);
    }
    spec.assign(row, scratch_);
  }
  if (enforce_required) {
    for (size_t idx = 0; idx < specs_.size(); ++idx) {
      if (specs_[idx].required && seen_[idx] == 0) {
        return FieldError(context, specs_[idx].name,
                          absl::InvalidArgumentError("required, but missing"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status DecoderCore::ReadSource(ondemand::value& value, SourceInfo& source) {
  absl::StatusOr<bool> is_null = ReadNull(value);
  if (!is_null.ok() || *is_null) return is_null.status();
  ondemand::object object;
  if (value.get_object().get(object)) {
    return FieldError("", "source", Unexpected("object or null", value));
  }
  for (auto field_result : object) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    ondemand::value& field_value = field.value();
    std::string* text = nullptr;
    std::optional<int64_t>* number = nullptr;
    if (key == "version") {
      text = &source.version;
    } else if (key == "connector") {
      text = &source.connector;
    } else if (key == "name") {
      text = &source.name;
    } else if (key == "db") {
      text = &source.db;
    } else if (key == "schema") {
      text = &source.schema;
    } else if (key == "table") {
      text = &source.table;
    } else if (key == "snapshot") {
      text = &source.snapshot;
    } else if (key == "lsn") {
      number = &source.lsn;
    } else if (key == "txId") {
      number = &source.tx_id;
    } else if (key == "file") {
      text = &source.file;
    } else if (key == "gtid") {
      text = &source.gtid;
    } else if (key == "pos") {
      number = &source.pos;
    } else if (key == "row") {
      number = &source.row;
    } else if (key == "server_id") {
      number = &source.server_id;
    }
    absl::StatusOr<bool> field_null = ReadNull(field_value);
    if (!field_null.ok()) return field_null.status();
    if (*field_null) continue;
    if (text != nullptr) {
      const char first = field_value.raw_json_token().front();
      if ((first == 't' || first == 'f') && key == "snapshot") {
        bool flag = false;
        if (auto error = field_value.get_bool().get(flag)) return JsonError(error);
        *text = flag ? "true" : "false";
        continue;
      }
      absl::StatusOr<std::string_view> read = weir::internal::ReadString(field_value);
      if (!read.ok()) return FieldError("source", key, read.status());
      text->assign(*read);
    } else if (number != nullptr || key == "ts_ms") {
      absl::StatusOr<int64_t> read = ReadInt64(field_value);
      if (!read.ok()) return FieldError("source", key, read.status());
      if (number != nullptr) {
        *number = *read;
      } else {
        source.ts_ms = *read;
      }
    } else if (absl::Status status = SkipValue(field_value, 3); !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status DecoderCore::ReadMessage(ondemand::value& value,
                                      std::optional<LogicalMessage>& message) {
  absl::StatusOr<bool> is_null = ReadNull(value);
  if (!is_null.ok() || *is_null) return is_null.status();
  ondemand::object object;
  if (value.get_object().get(object)) {
    return FieldError("", "message", Unexpected("object or null", value));
  }
  LogicalMessage read;
  for (auto field_result : object) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    ondemand::value& field_value = field.value();
    if (key != "prefix" && key != "content") {
      if (absl::Status status = SkipValue(field_value, 3); !status.ok()) return status;
      continue;
    }
    absl::StatusOr<bool> field_null = ReadNull(field_value);
    if (!field_null.ok()) return field_null.status();
    if (*field_null) continue;
    absl::StatusOr<std::string_view> text = weir::internal::ReadString(field_value);
    if (!text.ok()) return FieldError("message", key, text.status());
    (key == "prefix" ? read.prefix : read.content).assign(*text);
  }
  message = std::move(read);
  return absl::OkStatus();
}

absl::Status DecoderCore::ReadDataCollections(ondemand::value& value, EnvelopeState& state) {
  absl::StatusOr<bool> is_null = ReadNull(value);
  if (!is_null.ok() || *is_null) return is_null.status();
  ondemand::array array;
  if (value.get_array().get(array)) {
    return FieldError("", "data_collections", Unexpected("array or null", value));
  }
  for (auto element_result : array) {
    if (auto error = element_result.error()) return JsonError(error);
    ondemand::value& element = element_result.value_unsafe();
    ondemand::object object;
    if (element.get_object().get(object)) {
      return FieldError("", "data_collections", Unexpected("object", element));
    }
    std::pair<std::string, int64_t> entry;
    for (auto field_result : object) {
      if (auto error = field_result.error()) return JsonError(error);
      ondemand::field& field = field_result.value_unsafe();
      std::string_view key;
      if (auto error = FieldKey(field, key)) return JsonError(error);
      if (key == "data_collection") {
        absl::StatusOr<std::string_view> text = weir::internal::ReadString(field.value());
        if (!text.ok()) return FieldError("data_collections", key, text.status());
        entry.first.assign(*text);
      } else if (key == "event_count") {
        absl::StatusOr<int64_t> count = ReadInt64(field.value());
        if (!count.ok()) return FieldError("data_collections", key, count.status());
        entry.second = *count;
      } else if (absl::Status status = SkipValue(field.value(), 3); !status.ok()) {
        return status;
      }
    }
    state.data_collections.push_back(std::move(entry));
  }
  return absl::OkStatus();
}

absl::Status DecoderCore::FinishNonRow(EnvelopeState& state) {
  if (!state.op.has_value()) {
    if (state.status.has_value() && state.id.has_value() && !state.has_before && !state.has_after) {
      if (*state.status != "BEGIN" && *state.status != "END") {
        return absl::InvalidArgumentError(Cat("transaction metadata record with status ",
                                              weir::internal::QuoteForError(*state.status),
                                              " (expected BEGIN or END)"));
      }
      state.op = Op::kTransaction;
    } else if (state.ts_ms.has_value() && !state.has_before && !state.has_after &&
               !state.has_source && !state.status.has_value() && !state.id.has_value() &&
               !state.message.has_value()) {
      state.op = Op::kHeartbeat;
    } else {
      return absl::InvalidArgumentError("not a Debezium change event: no \"op\" field");
    }
  }
  std::string_view what;
  std::string_view option;
  NonRowPolicy policy = NonRowPolicy::kDeliver;
  switch (*state.op) {
    case Op::kMessage:
      if (!state.message.has_value()) {
        return absl::InvalidArgumentError("op \"m\" without a \"message\"");
      }
      if (state.has_before || state.has_after) {
        return absl::InvalidArgumentError("op \"m\" with a row");
      }
      what = "logical decoding message (op \"m\")";
      option = "messages";
      policy = options_.messages;
      break;
    case Op::kHeartbeat:
      what = "heartbeat";
      option = "heartbeats";
      policy = options_.heartbeats;
      break;
    case Op::kTransaction:
      what = "transaction metadata";
      option = "transactions";
      policy = options_.transactions;
      break;
    default:
      return absl::OkStatus();
  }
  if (policy == NonRowPolicy::kDeadLetter) {
    return absl::InvalidArgumentError(Cat("a ", what, " record, not a row change (DecoderOptions::",
                                          option, " is NonRowPolicy::kDeadLetter)"));
  }
  return absl::OkStatus();
}

absl::Status DecoderCore::ReadEnvelopeField(EnvelopeKey key, ondemand::value& value,
                                            const ResolvedSchema* schema, void* before, void* after,
                                            EnvelopeState& state, SourceInfo& source) {
  switch (key) {
    case EnvelopeKey::kOp: {
      absl::StatusOr<std::string_view> text = weir::internal::ReadString(value);
      if (!text.ok()) return FieldError("", "op", text.status());
      state.op = ParseOp(*text);
      if (!state.op.has_value()) {
        return FieldError("", "op",
                          absl::InvalidArgumentError(Cat("unknown operation ",
                                                         weir::internal::QuoteForError(*text),
                                                         " (expected c, u, d, r or t)")));
      }
      return absl::OkStatus();
    }
    case EnvelopeKey::kBefore:
    case EnvelopeKey::kAfter: {
      const bool is_after = key == EnvelopeKey::kAfter;
      const std::string_view name = is_after ? "after" : "before";
      bool& has_row = is_after ? state.has_after : state.has_before;
      absl::StatusOr<bool> is_null = ReadNull(value);
      if (!is_null.ok()) return is_null.status();
      if (*is_null) {
        has_row = false;
        return absl::OkStatus();
      }
      ondemand::object object;
      if (value.get_object().get(object)) {
        return FieldError("", name, Unexpected("object or null", value));
      }
      has_row = true;
      return ReadRow(object, schema, is_after ? after : before, is_after || options_.strict_before,
                     name);
    }
    case EnvelopeKey::kSource:
      state.has_source = true;
      return ReadSource(value, source);
    case EnvelopeKey::kMessage:
      return ReadMessage(value, state.message);
    case EnvelopeKey::kStatus:
    case EnvelopeKey::kId: {
      absl::StatusOr<bool> is_null = ReadNull(value);
      if (!is_null.ok() || *is_null) return is_null.status();
      absl::StatusOr<std::string_view> text = weir::internal::ReadString(value);
      if (!text.ok())
        return FieldError("", key == EnvelopeKey::kId ? "id" : "status", text.status());
      (key == EnvelopeKey::kId ? state.id : state.status).emplace(*text);
      return absl::OkStatus();
    }
    case EnvelopeKey::kEventCount: {
      absl::StatusOr<bool> is_null = ReadNull(value);
      if (!is_null.ok() || *is_null) return is_null.status();
      absl::StatusOr<int64_t> count = ReadInt64(value);
      if (!count.ok()) return FieldError("", "event_count", count.status());
      state.event_count = *count;
      return absl::OkStatus();
    }
    case EnvelopeKey::kDataCollections:
      return ReadDataCollections(value, state);
    case EnvelopeKey::kTsMs: {
      absl::StatusOr<bool> is_null = ReadNull(value);
      if (!is_null.ok()) return is_null.status();
      if (*is_null) {
        state.ts_ms.reset();
        return absl::OkStatus();
      }
      absl::StatusOr<int64_t> ts = ReadInt64(value);
      if (!ts.ok()) return FieldError("", "ts_ms", ts.status());
      state.ts_ms = *ts;
      return absl::OkStatus();
    }
    case EnvelopeKey::kOther:
    case EnvelopeKey::kNone:
      return SkipValue(value, 2);
  }
  return absl::OkStatus();
}

absl::Status DecoderCore::DecodeChange(std::string_view json, void* before, void* after,
                                       ChangeHeader& header, SourceInfo& source) {
  header = ChangeHeader();
  if (IsBlankOrNull(json)) return absl::OkStatus();  // a tombstone
  ondemand::document document;
  ondemand::object top;
  if (absl::Status status = json_.LoadObject(json, "not a Debezium change event", document, top);
      !status.ok()) {
    return status;
  }

  EnvelopeState state;
  std::optional<std::string_view> schema_text;
  std::optional<std::string_view> payload_text;
  bool saw_payload = false;
  bool saw_envelope = false;
  for (auto field_result : top) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    ondemand::value& value = field.value();
    if (key == "schema") {
      if (absl::Status status = CaptureObjectOrNull(value, "schema", schema_text); !status.ok()) {
        return status;
      }
    } else if (key == "payload") {
      saw_payload = true;
      if (absl::Status status = CaptureObjectOrNull(value, "payload", payload_text); !status.ok()) {
        return status;
      }
    } else if (EnvelopeKey envelope_key = ClassifyEnvelopeKey(key);
               envelope_key != EnvelopeKey::kNone) {
      saw_envelope = true;
      if (absl::Status status =
              ReadEnvelopeField(envelope_key, value, nullptr, before, after, state, source);
          !status.ok()) {
        return status;
      }
    } else if (absl::Status status = SkipValue(value, 1); !status.ok()) {
      return status;
    }
  }
  if (absl::Status status = CheckDocumentEnd(document); !status.ok()) return status;

  if (!saw_payload && schema_text.has_value()) {
    // A bare envelope with a stray "schema": unused, but validated all the same.
    if (absl::Status status = Iterate(*schema_text, document); !status.ok()) return status;
    ondemand::value root;
    if (auto error = document.get_value().get(root)) return JsonError(error);
    if (absl::Status status = SkipValue(root, 1); !status.ok()) return status;
  }
  if (saw_payload) {
    if (saw_envelope) {
      return absl::InvalidArgumentError(
          "not a Debezium change event: both \"payload\" and envelope fields at the top level");
    }
    if (!payload_text.has_value()) return absl::OkStatus();  // {"schema":..., "payload":null}
    const ResolvedSchema* schema = nullptr;
    if (schema_text.has_value()) {
      if (absl::Status status = Resolve(*schema_text, true, envelope_schema_, schema);
          !status.ok()) {
        return status;
      }
    }
    if (absl::Status status = Iterate(*payload_text, document); !status.ok()) return status;
    ondemand::object payload;
    if (auto error = document.get_object().get(payload)) return JsonError(error);
    for (auto field_result : payload) {
      if (auto error = field_result.error()) return JsonError(error);
      ondemand::field& field = field_result.value_unsafe();
      std::string_view key;
      if (auto error = FieldKey(field, key)) return JsonError(error);
      if (absl::Status status = ReadEnvelopeField(ClassifyEnvelopeKey(key), field.value(), schema,
                                                  before, after, state, source);
          !status.ok()) {
        return status;
      }
    }
  }

  if (absl::Status status = FinishNonRow(state); !status.ok()) return status;
  const Op op = *state.op;
  const std::string_view op_name = OpName(op);
  switch (op) {
    case Op::kCreate:
    case Op::kRead:
    case Op::kUpdate:
      if (!state.has_after) {
        return absl::InvalidArgumentError(Cat("op \"", op_name, "\" without an \"after\" row"));
      }
      break;
    case Op::kDelete:
      if (state.has_after) {
        return absl::InvalidArgumentError("op \"d\" with an \"after\" row");
      }
      break;
    case Op::kTruncate:
      if (state.has_before || state.has_after) {
        return absl::InvalidArgumentError("op \"t\" with a row");
      }
      break;
    case Op::kTombstone:
    case Op::kMessage:
    case Op::kHeartbeat:
      break;
    case Op::kTransaction: {
      TransactionMarker marker;
      marker.status = *state.status == "BEGIN" ? TransactionMarker::Status::kBegin
                                               : TransactionMarker::Status::kEnd;
      marker.id = std::move(*state.id);
      marker.event_count = state.event_count;
      marker.data_collections = std::move(state.data_collections);
      header.transaction = std::move(marker);
      break;
    }
  }
  header.op = op;
  header.has_before = state.has_before;
  header.has_after = state.has_after;
  header.ts_ms = state.ts_ms;
  header.message = std::move(state.message);
  return absl::OkStatus();
}

absl::Status DecoderCore::DecodeRow(std::string_view json, void* row, bool& is_null) {
  is_null = false;
  if (IsBlankOrNull(json)) {
    is_null = true;
    return absl::OkStatus();
  }
  json_.Load(json);
  const std::string_view whole = json_.whole();
  ondemand::document document;
  if (absl::Status status = Iterate(whole, document); !status.ok()) return status;
  ondemand::object top;
  if (auto error = document.get_object().get(top)) {
    if (error == simdjson::INCORRECT_TYPE) {
      return absl::InvalidArgumentError("expected a JSON object");
    }
    return JsonError(error);
  }
  // Is it {"schema": {...}|null, "payload": {...}|null}? Otherwise the
  // object is the row itself.
  std::optional<std::string_view> schema_text;
  std::optional<std::string_view> payload_text;
  bool saw_schema = false;
  bool saw_payload = false;
  bool saw_other = false;
  for (auto field_result : top) {
    if (auto error = field_result.error()) return JsonError(error);
    ondemand::field& field = field_result.value_unsafe();
    std::string_view key;
    if (auto error = FieldKey(field, key)) return JsonError(error);
    ondemand::value& value = field.value();
    const bool is_schema = key == "schema" && !saw_schema;
    const bool is_payload = key == "payload" && !saw_payload;
    if (is_schema || is_payload) {
      absl::StatusOr<ondemand::json_type> type = TypeOf(value);
      if (!type.ok()) return type.status();
      if (*type == ondemand::json_type::object || *type == ondemand::json_type::null) {
        if (absl::Status status =
                CaptureObjectOrNull(value, key, is_schema ? schema_text : payload_text);
            !status.ok()) {
          return status;
        }
        (is_schema ? saw_schema : saw_payload) = true;
        continue;
      }
    }
    saw_other = true;
    if (absl::Status status = SkipValue(value, 1); !status.ok()) return status;
  }
  if (absl::Status status = CheckDocumentEnd(document); !status.ok()) return status;

  const ResolvedSchema* schema = nullptr;
  std::string_view row_text = whole;
  if (saw_schema && saw_payload && !saw_other) {
    if (!payload_text.has_value()) {
      is_null = true;
      return absl::OkStatus();
    }
    if (schema_text.has_value()) {
      if (absl::Status status = Resolve(*schema_text, false, row_schema_, schema); !status.ok()) {
        return status;
      }
    }
    row_text = *payload_text;
  }
  if (absl::Status status = Iterate(row_text, document); !status.ok()) return status;
  ondemand::object object;
  if (auto error = document.get_object().get(object)) return JsonError(error);
  return ReadRow(object, schema, row, /*enforce_required=*/true, "");
}

absl::Status ReadSourceInfo(ondemand::value& value, SourceInfo& source) {
  return DecoderCore::ReadSource(value, source);
}

void DecoderCoreDeleter::operator()(DecoderCore* core) const { delete core; }

absl::StatusOr<DecoderCorePtr> NewDecoderCore(const std::vector<FieldSpec>& specs,
                                              const DecoderOptions& options) {
  absl::flat_hash_map<std::string, int> columns;
  for (size_t idx = 0; idx < specs.size(); ++idx) {
    const FieldSpec& spec = specs[idx];
    if (spec.name.empty()) {
      return absl::InvalidArgumentError(
          Cat("debezium::Fields: field #", idx, " has an empty name"));
    }
    if (!columns.emplace(spec.name, static_cast<int>(idx)).second) {
      return absl::InvalidArgumentError(
          Cat("debezium::Fields: field \"", spec.name, "\" is declared twice"));
    }
    if (spec.semantic == Semantic::kDecimal) {
      const bool integer_target = spec.target != TargetKind::kFloat &&
                                  spec.target != TargetKind::kDouble &&
                                  spec.target != TargetKind::kString;
      if (integer_target && !spec.decimal.scale.has_value()) {
        return absl::InvalidArgumentError(
            Cat("debezium::Fields: field \"", spec.name,
                "\": Decimal() into an integer member needs the scale of its units, e.g. "
                "Decimal(2) for cents"));
      }
      if (spec.decimal.scale.has_value() &&
          (*spec.decimal.scale > weir::internal::kMaxDecimalScale ||
           *spec.decimal.scale < -weir::internal::kMaxDecimalScale)) {
        return absl::InvalidArgumentError(
            Cat("debezium::Fields: field \"", spec.name, "\": decimal scale out of range"));
      }
    }
  }
  return DecoderCorePtr(new DecoderCore(specs, std::move(columns), options));
}

absl::Status DecodeChangeInto(DecoderCore& core, std::string_view json, void* before, void* after,
                              ChangeHeader& header, SourceInfo& source) {
  return core.DecodeChange(json, before, after, header, source);
}

absl::Status DecodeRowInto(DecoderCore& core, std::string_view json, void* row, bool& is_null) {
  return core.DecodeRow(json, row, is_null);
}

bool Skips(const DecoderCore& core, Op op) { return core.Skips(op); }

}  // namespace internal
}  // namespace weir::debezium
