# cmake -DREADME=... -DTEST_SOURCE=... -P readme_example.cmake
# Fails when the README's first ```cpp block is not, character for character, the code between
# "// README example begins" and "// README example ends" in TEST_SOURCE (the test that compiles
# and runs it).
file(READ "${README}" readme)
file(READ "${TEST_SOURCE}" test_source)

string(FIND "${readme}" "```cpp\n" block_start)
if(block_start EQUAL -1)
  message(FATAL_ERROR "${README} has no ```cpp block")
endif()
math(EXPR block_start "${block_start} + 7")
string(SUBSTRING "${readme}" ${block_start} -1 readme_rest)
string(FIND "${readme_rest}" "```\n" block_length)
string(SUBSTRING "${readme_rest}" 0 ${block_length} readme_code)

set(begin_marker "// README example begins\n")
string(FIND "${test_source}" "${begin_marker}" code_start)
string(FIND "${test_source}" "// README example ends\n" code_end)
if(code_start EQUAL -1 OR code_end EQUAL -1)
  message(FATAL_ERROR "${TEST_SOURCE} has no README example markers")
endif()
string(LENGTH "${begin_marker}" marker_length)
math(EXPR code_start "${code_start} + ${marker_length}")
math(EXPR code_length "${code_end} - ${code_start}")
string(SUBSTRING "${test_source}" ${code_start} ${code_length} test_code)

if(NOT readme_code STREQUAL test_code)
  message(FATAL_ERROR "the README's first ```cpp block differs from the example in "
                      "${TEST_SOURCE}: make them equal (the test compiles and runs that code)")
endif()
message(STATUS "the README example is the one the test compiles")
