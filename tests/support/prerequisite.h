// What a test does when a program or server it needs is not installed: on a
// developer's machine it skips (ctest counts it, .ci/test lists it among
// what the run did not prove); in CI (CI=true), where .ci/setup installs
// everything the suite needs, it fails, so that a broken setup cannot pass
// as a green run.
//
// Example:
//   const std::string chromium = FindProgram("chromium", "WEIR_CHROMIUM");
//   if (chromium.empty()) {
//     WEIR_MISSING_PREREQUISITE("chromium is not installed (Debian package `chromium`)");
//   }

#ifndef WEIR_TESTS_SUPPORT_PREREQUISITE_H_
#define WEIR_TESTS_SUPPORT_PREREQUISITE_H_

#include <cstdlib>
#include <string_view>

#include "gtest/gtest.h"

namespace weir::testing {

// Whether the suite runs in CI: the environment variable CI is "true".
inline bool RunningInCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

}  // namespace weir::testing

// Skips the current test (or fails it under CI=true) with `message`, which
// says what is missing. Returns from the calling function, like GTEST_SKIP;
// in SetUp it stops the test before its body.
#define WEIR_MISSING_PREREQUISITE(message)                                                    \
  do {                                                                                        \
    if (::weir::testing::RunningInCi()) {                                                     \
      GTEST_FAIL() << message                                                                 \
                   << " -- CI=true, and .ci/setup installs it: the setup is broken, so this " \
                      "fails instead of skipping";                                            \
    } else {                                                                                  \
      GTEST_SKIP() << message;                                                                \
    }                                                                                         \
  } while (false)

#endif  // WEIR_TESTS_SUPPORT_PREREQUISITE_H_
