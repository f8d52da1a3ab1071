#!/bin/sh
# bench/run.sh — `make bench` (full: Tidemark beside Apache Kafka, ~30 min)
# and `make bench-quick` (QUICK=1: every workload for a few seconds against
# Tidemark alone, plus the harness's own tests; part of `make test`).
#
# Installs what it uses when missing (Kafka's jars, the venv, librdkafka via
# deploy/install-deps.sh test; iperf3, fio and matplotlib for a full run
# only), builds the broker (bin/tidemark; for a full run an -O3 one,
# build/bench-O3/tidemark, unless TIDEMARK_BIN names one) and
# build/bench/tm-load,
# then hands over to bench/bench.py, whose environment knobs it passes on.
# Exit status: 0 only when the harness worked and every workload ran.
set -eu
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
export QUICK
TM_CACHE=${TM_CACHE:-$HOME/.cache/tidemark}
VENV="$TM_CACHE/venv"

sh deploy/install-deps.sh test

if [ "$QUICK" = 0 ]; then
	missing=""
	for p in iperf3 fio; do
		command -v "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "bench: apt-get install$missing"
		SUDO=""
		[ "$(id -u)" = 0 ] || SUDO=sudo
		$SUDO apt-get update -qq || true
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null ||
			echo "bench: could not install$missing; the machine-limit rows will say so"
	fi
	if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
		echo "bench: pip install matplotlib (for the chart)"
		"$VENV/bin/pip" install -q matplotlib || echo "bench: no matplotlib: no chart"
	fi
	# An optimised broker, built apart (objects and binary) so that neither
	# the -O2 build in build/ nor bin/tidemark is touched, and a later
	# `make` cannot leave the benchmark with an -O2 binary.
	if [ -z "${TIDEMARK_BIN:-}" ]; then
		if make -j2 OPT=-O3 BUILD=build/bench-O3 build/bench-O3/tidemark; then
			TIDEMARK_BIN=$PWD/build/bench-O3/tidemark
			export TIDEMARK_BIN
		else
			echo "bench: the -O3 build failed; using bin/tidemark"
		fi
	fi
fi

mkdir -p build/bench
cc -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE bench/tm-load.c \
	$(pkg-config --cflags --libs rdkafka) -pthread -o build/bench/tm-load

PY="$VENV/bin/python"
[ -x "$PY" ] || PY=python3
if [ "$QUICK" != 0 ]; then
	# The harness's own tests first: the histogram, then parsing and ratios.
	./build/bench/tm-load selftest
	"$PY" -m pytest -q -p no:cacheprovider bench/test_report.py
fi
exec "$PY" bench/bench.py
