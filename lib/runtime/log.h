// Log lines of the runtime: to stderr, prefixed with "weir: ". Used for what
// an operator must see without failing the job (a checkpoint that was
// abandoned, a corrupt checkpoint skipped on restore).

#ifndef WEIR_LIB_RUNTIME_LOG_H_
#define WEIR_LIB_RUNTIME_LOG_H_

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace weir::internal {

template <class... Args>
void Log(const Args&... args) {
  const std::string line = absl::StrCat("weir: ", args..., "\n");
  std::fputs(line.c_str(), stderr);
}

}  // namespace weir::internal

#endif  // WEIR_LIB_RUNTIME_LOG_H_
