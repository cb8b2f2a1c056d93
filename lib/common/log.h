// Log lines of the runtime and the connectors, prefixed with "weir: ", to the
// sink the application set (weir/log.h; stderr by default). Used for what an
// operator must see without failing the job (a checkpoint that was
// abandoned, a corrupt checkpoint skipped on restore, an outage).

#ifndef WEIR_LIB_COMMON_LOG_H_
#define WEIR_LIB_COMMON_LOG_H_

#include <string>

#include "absl/strings/str_cat.h"

namespace weir::internal {

// Hands one line (no trailing newline) to the log sink.
void EmitLogLine(const std::string& line);

template <class... Args>
void Log(const Args&... args) {
  EmitLogLine(absl::StrCat("weir: ", args...));
}

}  // namespace weir::internal

#endif  // WEIR_LIB_COMMON_LOG_H_
