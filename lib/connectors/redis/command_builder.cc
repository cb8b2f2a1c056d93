// CommandBuilder encodes commands straight into the layout the fenced-write
// script reads from ARGV (lib/connectors/redis/scripts.h): for each command
// its argument count, then its arguments, every item a RESP bulk string, so
// sealing a batch only prepends the EVALSHA header.

#include <charconv>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "lib/connectors/redis/command_batch.h"
#include "weir/connectors/redis.h"

namespace weir::redis {

void CommandBuilder::AppendBulk(std::string& out, std::string_view value) {
  // "$<length>\r\n<value>\r\n", grown once (the commands of a batch are
  // many small items; separate appends cost more than the bytes).
  char head[24];
  head[0] = '$';
  char* end = std::to_chars(head + 1, head + sizeof(head) - 2, value.size()).ptr;
  *end++ = '\r';
  *end++ = '\n';
  const auto head_size = static_cast<size_t>(end - head);
  const size_t at = out.size();
  out.append(head_size + value.size() + 2, '\n');
  char* p = out.data() + at;
  std::memcpy(p, head, head_size);
  if (!value.empty()) std::memcpy(p + head_size, value.data(), value.size());
  p[head_size + value.size()] = '\r';
}

void CommandBuilder::Add(std::initializer_list<std::string_view> args) {
  AppendBulk(body_, std::to_string(args.size()));
  for (std::string_view arg : args) AppendBulk(body_, arg);
  body_items_ += 1 + args.size();
}

void CommandBuilder::Add(std::span<const std::string> args) {
  AppendBulk(body_, std::to_string(args.size()));
  for (const std::string& arg : args) AppendBulk(body_, arg);
  body_items_ += 1 + args.size();
}

void CommandBuilder::AddOncePerBatch(std::initializer_list<std::string_view> args) {
  // Most calls repeat a command the batch has (each record of a key adds
  // its EXPIRE): encoded into a string that keeps its capacity, such a call
  // allocates nothing.
  std::string& encoded = once_scratch_;
  encoded.clear();
  AppendBulk(encoded, std::to_string(args.size()));
  for (std::string_view arg : args) AppendBulk(encoded, arg);
  if (!once_seen_.insert(encoded).second) return;
  once_body_ += encoded;
  once_items_ += 1 + args.size();
}

CommandBuilder& CommandBuilder::Begin(std::string_view name) {
  pending_.clear();
  pending_argc_ = 0;
  return Arg(name);
}

CommandBuilder& CommandBuilder::Arg(std::string_view value) {
  AppendBulk(pending_, value);
  ++pending_argc_;
  return *this;
}

void CommandBuilder::End() {
  if (pending_argc_ == 0) return;
  AppendBulk(body_, std::to_string(pending_argc_));
  body_ += pending_;
  body_items_ += 1 + static_cast<size_t>(pending_argc_);
  Drop();
}

void CommandBuilder::Drop() {
  pending_.clear();
  pending_argc_ = 0;
}

namespace internal {

absl::StatusOr<std::string> TtlMillis(absl::Duration ttl) {
  if (ttl < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a TTL must not be negative, got ", absl::FormatDuration(ttl)));
  }
  if (ttl == absl::ZeroDuration()) return std::string();
  const int64_t millis = absl::ToInt64Milliseconds(absl::Ceil(ttl, absl::Milliseconds(1)));
  return std::to_string(millis);
}

bool CommandBuilderAccess::empty(const CommandBuilder& builder) {
  return builder.body_items_ == 0 && builder.once_items_ == 0;
}

size_t CommandBuilderAccess::bytes(const CommandBuilder& builder) {
  return builder.body_.size() + builder.once_body_.size();
}

void CommandBuilderAccess::Seal(CommandBuilder& builder, std::string_view header,
                                size_t header_items, std::string& out) {
  const size_t items = header_items + builder.body_items_ + builder.once_items_;
  out.clear();
  out.reserve(header.size() + builder.body_.size() + builder.once_body_.size() + 32);
  absl::StrAppend(&out, "*", items, "\r\n");
  out.append(header.data(), header.size());
  out += builder.body_;
  out += builder.once_body_;
  builder.body_.clear();
  builder.body_items_ = 0;
  builder.once_body_.clear();
  builder.once_items_ = 0;
  builder.once_seen_.clear();
  builder.Drop();
}

}  // namespace internal

}  // namespace weir::redis
