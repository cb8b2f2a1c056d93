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
execute_process(COMMAND "${WORK_DIR}/build/package_smoke" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "package_smoke failed: ${rc}")
endif()
