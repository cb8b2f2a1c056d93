# cmake -DCLANG_FORMAT=... -DSOURCE_DIR=... -P CheckFormat.cmake
# Fails, listing the files, when any C++ file in the tree is not clang-formatted.
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
