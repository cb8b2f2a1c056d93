// Status helpers shared by every part of weir.

#ifndef WEIR_LIB_COMMON_STATUS_H_
#define WEIR_LIB_COMMON_STATUS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"

namespace weir::internal {

// `status` with `context` put in front of its message ("context: message"),
// the same code and payloads: what each layer adds as an error travels up
// (which operator, which record, which field). OK and an empty context give
// `status` back as it is.
inline absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok() || context.empty()) return status;
  std::string message(context);
  message.append(": ");
  const auto original = status.message();
  message.append(original.data(), original.size());
  absl::Status out(status.code(), message);
  status.ForEachPayload(
      [&](auto type_url, const absl::Cord& payload) { out.SetPayload(type_url, payload); });
  return out;
}

}  // namespace weir::internal

#endif  // WEIR_LIB_COMMON_STATUS_H_
