# ctest driver: installs the build tree into a scratch prefix, then configures,
# builds and runs tests/package against it with find_package(weir).
# Variables: WEIR_BINARY_DIR, WEIR_PACKAGE_SOURCE_DIR, WORK_DIR.
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${WEIR_BINARY_DIR}" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${WEIR_PACKAGE_SOURCE_DIR}" -B "${WORK_DIR}/build"
                        -G Ninja -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the package consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the package consumer failed: ${rc}")
endif()
foreach(program package_smoke core_smoke)
  execute_process(COMMAND "${WORK_DIR}/build/${program}" RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${program} failed: ${rc}")
  endif()
endforeach()
# weir::duckdb, when weir was built with DuckDB (and so installed it).
if(EXISTS "${WORK_DIR}/prefix/lib/cmake/weir/weir-duckdb-targets.cmake"
   AND NOT EXISTS "${WORK_DIR}/build/duckdb_smoke")
  message(FATAL_ERROR "weir::duckdb is installed but find_package(weir OPTIONAL_COMPONENTS duckdb) did not find it")
endif()
if(EXISTS "${WORK_DIR}/build/duckdb_smoke")
  execute_process(COMMAND "${WORK_DIR}/build/duckdb_smoke" RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "duckdb_smoke failed: ${rc}")
  endif()
endif()

# What each program links (its link command) and loads (readelf -d: NEEDED): the core-only
# one none of the connectors' libraries. The umbrella one links them all and, the linker
# dropping unused shared libraries, loads libcurl (s3:// storage is registered), so the
# checks can fail.
find_program(READELF readelf REQUIRED)
set(connector_libraries rdkafka hiredis curl)
foreach(program core_smoke package_smoke)
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" --target ${program}
                          -- -t commands ${program}
                  OUTPUT_VARIABLE commands RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "the link command of ${program}: ${rc}")
  endif()
  string(REGEX MATCH "[^\n]* -o ${program} [^\n]*" link "${commands}")
  execute_process(COMMAND ${READELF} -d "${WORK_DIR}/build/${program}" OUTPUT_VARIABLE dynamic
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "readelf -d ${program} failed: ${rc}")
  endif()
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[([^]]*)\\]" needed "${dynamic}")
  list(TRANSFORM needed REPLACE ".*\\[(.*)\\]" "\\1")
  message(STATUS "${program} links: ${link}")
  message(STATUS "${program} NEEDED: ${needed}")
  foreach(library IN LISTS connector_libraries)
    set(loads ${needed})
    list(FILTER loads INCLUDE REGEX "^lib${library}")
    string(REGEX MATCH "lib${library}|-l${library}" links "${link}")
    if(program STREQUAL "core_smoke" AND (loads OR links))
      message(FATAL_ERROR "core_smoke, on weir::core only, links or needs lib${library}")
    elseif(program STREQUAL "package_smoke" AND NOT links)
      message(FATAL_ERROR "package_smoke, on weir::weir, does not link lib${library}")
    endif()
  endforeach()
endforeach()
string(REGEX MATCH "libcurl" curl "${needed}")
if(NOT curl)
  message(FATAL_ERROR "package_smoke, with s3:// storage registered, does not need libcurl")
endif()
