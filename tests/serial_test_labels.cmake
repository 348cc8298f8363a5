# Included by CTest after gtest_discover_tests' own files (tests/CMakeLists.txt): the labels of the
# serial integration tests, whose names discovery left in relay_serial_tests.
foreach(test IN LISTS relay_serial_tests)
  set_tests_properties("${test}" PROPERTIES LABELS "integration;serial")
endforeach()
