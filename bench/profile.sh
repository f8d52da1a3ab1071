#!/bin/sh
# bench/profile.sh — one broker, one workload, the broker's own costs.
#
#   sh bench/profile.sh BINARY produce|produce6|consume [SECONDS] [PERF_DATA]
#
# Starts BINARY (a bin/tidemark) on free loopback ports with a fresh data
# directory, drives it with tm-load (build/bench/tm-load, or $TM_LOAD) and
# prints one line: the client's throughput and p99, and from /proc/PID of the
# broker its peak RSS (VmHWM), CPU seconds (user + system) per GiB moved and
# minor page faults per GiB moved.  With PERF_DATA, `perf record -g` samples
# the broker (every thread, io_uring workers included) while the workload
# runs; PERF_CALLGRAPH (default -g) picks the unwinder, e.g.
# PERF_CALLGRAPH="--call-graph dwarf,16384" for a -O2 build without frame
# pointers.  Then: perf report -i PERF_DATA --no-children --sort symbol.
#
#   produce   1 KiB records, 1 partition, acks=1, unthrottled (workload 1)
#   produce6  100-byte records, 6 partitions, acks=1 (workload 2)
#   consume   a backlog of $BACKLOG records (default 524288, 512 MiB) of
#             1 KiB, produced first, then read from offset 0 (workload 3,
#             warm page cache); CPU and faults count the read only
#
# The broker is stopped by its pid; the data directory is removed.
set -eu
BIN=${1:?usage: profile.sh BINARY produce|produce6|consume [SECONDS] [PERF_DATA]}
MODE=${2:?mode}
SECS=${3:-8}
PERF_DATA=${4:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TM_LOAD=${TM_LOAD:-$ROOT/build/bench/tm-load}
BACKLOG=${BACKLOG:-524288}

if [ ! -x "$TM_LOAD" ]; then
	mkdir -p "$(dirname "$TM_LOAD")"
	cc -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE "$ROOT/bench/tm-load.c" \
		$(pkg-config --cflags --libs rdkafka) -pthread -o "$TM_LOAD"
fi

D=$(mktemp -d /tmp/tidemark-profile.XXXXXX)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PORT=$(port)
CPORT=$(port)
cat >"$D/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$D/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
EOF
"$BIN" "$D/server.properties" >"$D/broker.log" 2>&1 &
PID=$!
PERF_PID=""
cleanup() {
	[ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null || true
	kill "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

B="-b 127.0.0.1:$PORT"
if ! "$TM_LOAD" probe $B -t profile-probe -d 20 >/dev/null; then
	echo "profile: the broker did not answer; its log ends:" >&2
	tail -5 "$D/broker.log" >&2
	exit 1
fi
case $MODE in
produce) ARGS="produce -t w1 -s 1024 -P 1 -a 1 -d $SECS -w 1" ;;
produce6) ARGS="produce -t w2 -s 100 -P 6 -a 1 -d $SECS -w 1" ;;
consume)
	"$TM_LOAD" produce $B -t w3 -s 1024 -P 1 -a 1 -n "$BACKLOG" >/dev/null
	ARGS="consume -t w3 -n $BACKLOG -i 15000"
	;;
*)
	echo "profile: unknown mode $MODE" >&2
	exit 2
	;;
esac
if [ -n "$PERF_DATA" ]; then
	perf record -F 999 ${PERF_CALLGRAPH:--g} -o "$PERF_DATA" -p "$PID" >/dev/null 2>&1 &
	PERF_PID=$!
	sleep 0.3
fi
stat_field() { awk -v f="$1" '{ print $f }' "/proc/$PID/stat"; }
CPU0=$(($(stat_field 14) + $(stat_field 15)))
FLT0=$(stat_field 10)
"$TM_LOAD" $ARGS $B >"$D/out.json"
CPU1=$(($(stat_field 14) + $(stat_field 15)))
FLT1=$(stat_field 10)
if [ -n "$PERF_PID" ]; then
	kill -INT "$PERF_PID"
	wait "$PERF_PID" || true
	PERF_PID=""
fi
HWM=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
python3 - "$D/out.json" "$MODE" "$(basename "$BIN")" "$HWM" $((CPU1 - CPU0)) $((FLT1 - FLT0)) \
	"$(getconf CLK_TCK)" <<'EOF'
import json, sys
out, mode, name, hwm_kb, ticks, faults, hz = sys.argv[1:]
o = json.loads([ln for ln in open(out).read().splitlines() if ln.startswith("{")][-1])
gib = o.get("total_bytes", o.get("bytes", 0)) / 2.0 ** 30
p99 = o.get("latency_us", {}).get("p99")
print("%s %s: %.1f MB/s, %d msg/s, p99 %s ms, VmHWM %.1f MiB, %.2f CPU s/GiB, %d faults/GiB"
      % (name, mode, o.get("mb_per_s", 0), o.get("msgs_per_s", 0),
         "%.0f" % (p99 / 1000.0) if p99 else "-", int(hwm_kb) / 1024.0,
         int(ticks) / float(hz) / gib if gib else 0, int(faults) / gib if gib else 0))
EOF
