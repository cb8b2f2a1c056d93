# cmake -DCLANG_FORMAT=... -DSOURCE_DIR=... -P CheckFormat.cmake
# Fails, listing the files, when any C++ file in the tree is not clang-formatted.
# Without clang-format (CLANG_FORMAT empty or -NOTFOUND) it prints gtest's skip
# marker, which the test's SKIP_REGULAR_EXPRESSION turns into a skip; under
# CI=true, where .ci/setup installs clang-format, it fails instead.
if(NOT CLANG_FORMAT)
  set(missing "clang-format is not installed (Debian package clang-format, which .ci/setup installs)")
  if("$ENV{CI}" STREQUAL "true")
    message(FATAL_ERROR "${missing} -- CI=true: the setup is broken, so this fails instead of skipping")
  endif()
  message(STATUS "[  SKIPPED ] ${missing}")
  return()
endif()
file(GLOB_RECURSE files RELATIVE "${SOURCE_DIR}"
     "${SOURCE_DIR}/include/*.h" "${SOURCE_DIR}/lib/*.h" "${SOURCE_DIR}/lib/*.cc"
     "${SOURCE_DIR}/tests/*.h" "${SOURCE_DIR}/tests/*.cc" "${SOURCE_DIR}/bench/*.h" "${SOURCE_DIR}/bench/*.cc"
     "${SOURCE_DIR}/examples/*.h" "${SOURCE_DIR}/examples/*.cc")
set(bad "")
foreach(file IN LISTS files)
  execute_process(COMMAND "${CLANG_FORMAT}" --dry-run -Werror "${SOURCE_DIR}/${file}"
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(rc)
    list(APPEND bad "${file}")
  endif()
endforeach()
if(bad)
  list(JOIN bad "\n  " listing)
  message(FATAL_ERROR "not clang-formatted (run clang-format -i on them):\n  ${listing}")
endif()
list(LENGTH files count)
message(STATUS "${count} files are clang-formatted")
