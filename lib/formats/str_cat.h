// absl::StrCat that also takes std::string_view. Debian's Abseil is built
// with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), while
// simdjson and weir's public headers speak std::string_view.

#ifndef WEIR_LIB_FORMATS_STR_CAT_H_
#define WEIR_LIB_FORMATS_STR_CAT_H_

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace weir::internal {

inline absl::string_view ToAbsl(std::string_view text) { return {text.data(), text.size()}; }

inline absl::string_view CatArg(std::string_view text) { return ToAbsl(text); }
template <class T>
const T& CatArg(const T& value) {
  return value;
}

template <class... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(CatArg(args)...);
}

}  // namespace weir::internal

#endif  // WEIR_LIB_FORMATS_STR_CAT_H_
