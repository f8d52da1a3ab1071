#!/bin/sh
# run.sh [PYTEST-ARGS...] — the end-to-end suite: real Kafka clients (kafka-python,
# confluent-kafka, kcat, Kafka's Java tools) against a real broker process.
#   TM_E2E_TARGET=tidemark (default)  bin/tidemark
#   TM_E2E_TARGET=kafka               Apache Kafka 4.1, for differential runs
#   TM_E2E_TEST_TIMEOUT=240           wall-clock bound per test, seconds
#   TM_E2E_SEED=N                     payload seed (printed in the header)
#   TM_E2E_KEEP=1                     keep broker directories and logs
# Needs `sh deploy/install-deps.sh test` (the venv and Kafka's jars).
# Exits non-zero when any test failed; pytest's summary line ends the output.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
TM_CACHE=${TM_CACHE:-$HOME/.cache/tidemark}
py="$TM_CACHE/venv/bin/python"
if [ ! -x "$py" ]; then
	echo "e2e: $py missing: run 'sh deploy/install-deps.sh test'" >&2
	exit 2
fi
if [ "${TM_E2E_TARGET:-tidemark}" = tidemark ] && [ ! -x "$root/bin/tidemark" ]; then
	echo "e2e: $root/bin/tidemark missing: run 'make bin/tidemark'" >&2
	exit 2
fi
cd "$root"
[ $# -gt 0 ] || set -- "$here"
exec "$py" -m pytest -p no:cacheprovider -rfE -W ignore::DeprecationWarning --durations=15 "$@"
