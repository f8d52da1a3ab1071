#!/bin/sh
# run-suite.sh BIN... — runs each test binary (Check suites and simulations),
# prints its output, and ends with one "N passed, N failed" line over all of
# them.  Exits non-zero when any binary failed.
passed=0
failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	if "$bin"; then
		passed=$((passed + 1))
	else
		echo "FAILED: $name"
		failed=$((failed + 1))
	fi
done
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
