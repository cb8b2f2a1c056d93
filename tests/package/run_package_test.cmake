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

# What each program loads (readelf -d: NEEDED): the core-only one none of the
# connectors' libraries, the umbrella one all of them (so the check can fail).
find_program(READELF readelf REQUIRED)
set(connector_libraries rdkafka hiredis curl)
foreach(program core_smoke package_smoke)
  execute_process(COMMAND ${READELF} -d "${WORK_DIR}/build/${program}" OUTPUT_VARIABLE dynamic
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "readelf -d ${program} failed: ${rc}")
  endif()
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[([^]]*)\\]" needed "${dynamic}")
  list(TRANSFORM needed REPLACE ".*\\[(.*)\\]" "\\1")
  message(STATUS "${program} NEEDED: ${needed}")
  foreach(library IN LISTS connector_libraries)
    list(FILTER needed INCLUDE REGEX "^lib${library}" OUTPUT_VARIABLE found)
    if(program STREQUAL "core_smoke" AND found)
      message(FATAL_ERROR "core_smoke, linked to weir::core only, needs ${found}")
    elseif(program STREQUAL "package_smoke" AND NOT found)
      message(FATAL_ERROR "package_smoke, linked to weir::weir, does not need lib${library}")
    endif()
  endforeach()
endforeach()
