#!/bin/sh
# run.sh — builds the libFuzzer target for the request decoder
# (tests/fuzz/fuzz_request.c) with ASan + UBSan and runs it for
# FUZZ_SECONDS (default 60) from the committed seed corpus
# (tests/fuzz/corpus/: real request frames of every API).  New inputs go
# to build/fuzz/corpus, so the committed corpus stays as it is.
# Exits 0 when no crash was found; the last line says which.
set -u
cd "$(dirname "$0")/../.."
out=build/fuzz
secs=${FUZZ_SECONDS:-60}
mkdir -p "$out/corpus" "$out/artifacts"
if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: FAILED: clang is not installed"
	exit 1
fi
if [ "${1:-}" = "--make-corpus" ]; then
	clang -std=c11 -I. -Itests/unit -D_GNU_SOURCE tests/fuzz/make_corpus.c common/*.c \
		protocol/*.c -o "$out/make_corpus" || exit 1
	rm -f tests/fuzz/corpus/*
	"$out/make_corpus" tests/fuzz/corpus || exit 1
	echo "fuzz: wrote $(ls tests/fuzz/corpus | wc -l) seed inputs to tests/fuzz/corpus"
	exit 0
fi
echo "fuzz: building $out/fuzz_request"
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-std=c11 -I. -D_GNU_SOURCE common/*.c protocol/*.c tests/fuzz/fuzz_request.c \
	-o "$out/fuzz_request"; then
	echo "fuzz: FAILED: build error"
	exit 1
fi
echo "fuzz: running for ${secs}s"
"$out/fuzz_request" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=1024 \
	-timeout=10 -print_final_stats=1 -artifact_prefix="$out/artifacts/" \
	"$out/corpus" tests/fuzz/corpus >"$out/fuzz.log" 2>&1
rc=$?
tail -n 20 "$out/fuzz.log"
if [ "$rc" -eq 0 ]; then
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz.log" | grep -o '[0-9]*$')
	echo "fuzz: OK: no crash in ${secs}s (${runs:-?} inputs)"
	exit 0
fi
echo "fuzz: FAILED: crash found (exit $rc); reproducer in $out/artifacts/, log in $out/fuzz.log"
exit 1
