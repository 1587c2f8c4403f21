# Run one example and compare its standard output with the expected text:
#   cmake -DPROG=<exe> -DEXPECTED=<file> [-DEMULATOR=a|b|c] -P check_output.cmake
# Fails if the program exits non-zero or prints anything else on stdout.
# EMULATOR is CMAKE_CROSSCOMPILING_EMULATOR with ';' written as '|'.
string(REPLACE "|" ";" emulator "${EMULATOR}")
execute_process(COMMAND ${emulator} ${PROG}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
file(READ ${EXPECTED} want)
if(NOT err STREQUAL "")
  message(NOTICE "--- stderr\n${err}")
endif()
if(NOT rc STREQUAL "0")
  message(NOTICE "--- stdout\n${out}")
  message(FATAL_ERROR "${PROG} exited with ${rc}")
endif()
if(NOT out STREQUAL want)
  message(NOTICE "--- expected\n${want}--- got\n${out}---")
  message(FATAL_ERROR "${PROG}: unexpected output")
endif()
