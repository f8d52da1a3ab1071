#!/bin/sh
# test_entrypoint.sh — what the image's entrypoint (deploy/container/
# entrypoint.sh) derives from each environment, run on the host with
# `print-config` (no container needed). When bin/tidemark is built, each
# generated file is also handed to `tidemark format`, which parses and
# validates every setting the way start-up does.
# Prints "N passed, N failed"; exits 1 on any failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EP=$ROOT/deploy/container/entrypoint.sh
BIN=$ROOT/bin/tidemark
passed=0
failed=0
tmp=$(mktemp -d)
trap '[ -n "${TM_KEEP:-}" ] || rm -rf "$tmp"' EXIT
n=0
# A stand-in for tidemark that prints its arguments.
printf '#!/bin/sh\nprintf "%%s\\n" "$*"\n' > "$tmp/args"
chmod +x "$tmp/args"

# run NAME VAR=VALUE... -- ARGS: runs the entrypoint in a clean environment
# with TIDEMARK_HOME in a fresh folder; sets $out, $err, $rc, $home.
run() {
	n=$((n + 1))
	home=$tmp/case$n
	mkdir -p "$home"
	set -- "$@"
	vars=""
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		vars="$vars $(printf '%s' "$1" | sed "s/'/'\\\\''/g; s/^/'/; s/\$/'/")"
		shift
	done
	[ $# -gt 0 ] && shift
	eval "env -i PATH=\"\$PATH\" TIDEMARK_HOME=\"\$home\" TIDEMARK_BIN=\"\$BIN\" $vars sh \"\$EP\" \"\$@\"" \
		> "$home/out" 2> "$home/err"
	rc=$?
	out=$home/out
	err=$home/err
}
pass() {
	passed=$((passed + 1))
	echo "ok   $1"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
	echo "---- stdout"
	cat "$out"
	echo "---- stderr"
	cat "$err"
}
has() { grep -qx -- "$1" "$out"; }
lacks() { ! grep -q -- "^$1=" "$out"; }
said() { grep -q -- "$1" "$err"; }
# tidemark accepts the generated file (and the environment it ran with)
accepted() {
	[ -x "$BIN" ] || return 0
	conf=$home/server.properties
	eval "env -i PATH=\"\$PATH\" $vars \"\$BIN\" format \"\$conf\"" > "$home/format.out" 2>&1 ||
		{ cat "$home/format.out" >> "$err"; return 1; }
}

T="pod tidemark-2 of a 3-node StatefulSet"
run HOSTNAME=tidemark-2 TIDEMARK_CLUSTER_SIZE=3 TIDEMARK_PEER_DOMAIN=tm-headless.ns.svc.cluster.local -- print-config
if [ $rc = 0 ] && has node.id=2 &&
	has controller.quorum.voters=0@tidemark-0.tm-headless.ns.svc.cluster.local:9093,1@tidemark-1.tm-headless.ns.svc.cluster.local:9093,2@tidemark-2.tm-headless.ns.svc.cluster.local:9093 &&
	has listeners=PLAINTEXT://:9092,CONTROLLER://:9093 &&
	has advertised.listeners=PLAINTEXT://tidemark-2.tm-headless.ns.svc.cluster.local:9092 &&
	has inter.broker.listener.name=PLAINTEXT && has "log.dirs=$home/data" && has tidemark.http.port=9644 &&
	has default.replication.factor=3 && has offsets.topic.replication.factor=3 && [ -d "$home/data" ] && accepted; then
	pass "$T"
else fail "$T"; fi

T="TIDEMARK_NODE_ID_BASE=1 numbers nodes from 1"
run HOSTNAME=kafka-0 TIDEMARK_NODE_ID_BASE=1 TIDEMARK_CLUSTER_SIZE=3 -- print-config
if [ $rc = 0 ] && has node.id=1 && has controller.quorum.voters=1@kafka-0:9093,2@kafka-1:9093,3@kafka-2:9093 && accepted; then
	pass "$T"
else fail "$T"; fi

T="numbers with leading zeros are decimal"
run HOSTNAME=web-08 TIDEMARK_NODE_ID_BASE=010 -- print-config
if [ $rc = 0 ] && has node.id=18; then pass "$T"; else fail "$T"; fi

T="TIDEMARK_PEER_NAME names the peers when the hostname has no ordinal"
run HOSTNAME=box TIDEMARK_NODE_ID=1 TIDEMARK_CLUSTER_SIZE=2 TIDEMARK_PEER_NAME=tm -- print-config
if [ $rc = 0 ] && has node.id=1 && has controller.quorum.voters=0@tm-0:9093,1@tm-1:9093 &&
	has default.replication.factor=2 && accepted; then
	pass "$T"
else fail "$T"; fi

T="compose style: KAFKA_NODE_ID and KAFKA_CONTROLLER_QUORUM_VOTERS, an EXTERNAL listener"
run HOSTNAME=tidemark-1 KAFKA_NODE_ID=1 KAFKA_CONTROLLER_QUORUM_VOTERS=1@tidemark-1:9093,2@tidemark-2:9093,3@tidemark-3:9093 \
	TIDEMARK_EXTERNAL_ADVERTISED=localhost:9092 -- print-config
if [ $rc = 0 ] && lacks node.id && lacks controller.quorum.voters &&
	has listeners=PLAINTEXT://:9092,CONTROLLER://:9093,EXTERNAL://:9094 &&
	has advertised.listeners=PLAINTEXT://tidemark-1:9092,EXTERNAL://localhost:9092 &&
	has listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:PLAINTEXT &&
	has default.replication.factor=3 && said "node.id=1 (KAFKA_NODE_ID" && accepted; then
	pass "$T"
else fail "$T"; fi

T="a single node without TIDEMARK_CLUSTER_SIZE is its own quorum"
run HOSTNAME=solo TIDEMARK_NODE_ID=7 TIDEMARK_ADVERTISED_HOST=broker.example TIDEMARK_CLIENT_PORT=19092 -- print-config
if [ $rc = 0 ] && has node.id=7 && has controller.quorum.voters=7@localhost:9093 &&
	has advertised.listeners=PLAINTEXT://broker.example:19092 && has default.replication.factor=1 &&
	has offsets.topic.replication.factor=1 && accepted; then
	pass "$T"
else fail "$T"; fi

T="ports, data directory and HTTP port from the environment"
run HOSTNAME=tidemark-0 TIDEMARK_CLUSTER_SIZE=1 TIDEMARK_CONTROLLER_PORT=29093 TIDEMARK_HTTP_PORT=19644 \
	TIDEMARK_DATA_DIR="$tmp/elsewhere" -- print-config
if [ $rc = 0 ] && has controller.quorum.voters=0@tidemark-0:29093 && has listeners=PLAINTEXT://:9092,CONTROLLER://:29093 &&
	has tidemark.http.port=19644 && has "log.dirs=$tmp/elsewhere" && [ -d "$tmp/elsewhere" ]; then
	pass "$T"
else fail "$T"; fi

T="no node id anywhere is refused, naming the variables"
run HOSTNAME=box -- print-config
if [ $rc = 2 ] && said "set TIDEMARK_NODE_ID (or KAFKA_NODE_ID)" && said "'box'"; then
	pass "$T"
else fail "$T"; fi

T="TIDEMARK_NODE_ID and KAFKA_NODE_ID that disagree are refused"
run HOSTNAME=tidemark-0 TIDEMARK_NODE_ID=1 KAFKA_NODE_ID=2 -- print-config
if [ $rc = 2 ] && said "disagree"; then pass "$T"; else fail "$T"; fi

T="bad values are refused, naming the variable"
run HOSTNAME=tidemark-0 TIDEMARK_CLIENT_PORT=70000 -- print-config
r1=$rc
said "TIDEMARK_CLIENT_PORT must be a port" && s1=0 || s1=1
run HOSTNAME=tidemark-0 TIDEMARK_EXTERNAL_ADVERTISED=EXTERNAL://h:1 -- print-config
if [ $r1 = 2 ] && [ $s1 = 0 ] && [ $rc = 2 ] && said "TIDEMARK_EXTERNAL_ADVERTISED is host:port"; then
	pass "$T"
else fail "$T"; fi

T="Kubernetes service links for a Service named kafka are dropped, real KAFKA_ settings kept"
run HOSTNAME=tidemark-0 KAFKA_PORT=tcp://10.0.0.1:9092 KAFKA_SERVICE_HOST=10.0.0.1 KAFKA_SERVICE_PORT_KAFKA=9092 \
	KAFKA_PORT_9092_TCP=tcp://10.0.0.1:9092 KAFKA_PORT_9092_TCP_ADDR=10.0.0.1 KAFKA_BROKER_SERVICE_HOST=10.0.0.2 \
	KAFKA_NUM_PARTITIONS=6 -- env
if [ $rc = 0 ] && ! grep -q '^KAFKA_PORT' "$out" && ! grep -q '_SERVICE_' "$out" && grep -qx KAFKA_NUM_PARTITIONS=6 "$out" &&
	said "ignoring KAFKA_PORT "; then
	pass "$T"
else fail "$T"; fi

T="TIDEMARK_CONFIG_FILE: its settings stay, derived defaults it sets are left out, TIDEMARK_* values win"
cat > "$tmp/base.properties" <<'EOF'
node.id=5
num.partitions=6
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://fixed.example:9092
log.dirs=/somewhere/else
EOF
run HOSTNAME=tidemark-1 TIDEMARK_CONFIG_FILE="$tmp/base.properties" TIDEMARK_CLUSTER_SIZE=3 TIDEMARK_DATA_DIR="$tmp/d11" -- print-config
if [ $rc = 0 ] && has num.partitions=6 && [ "$(grep -c '^listeners=' "$out")" = 1 ] &&
	has advertised.listeners=PLAINTEXT://fixed.example:9092 && [ "$(grep -c '^node.id=' "$out")" = 1 ] &&
	[ "$(grep '^log.dirs=' "$out" | tail -1)" = "log.dirs=$tmp/d11" ] && said "node.id from"; then
	pass "$T"
else fail "$T"; fi

T="TIDEMARK_NODE_ID overrides the file's node.id (a later line wins)"
run HOSTNAME=tidemark-1 TIDEMARK_CONFIG_FILE="$tmp/base.properties" TIDEMARK_NODE_ID=1 TIDEMARK_CLUSTER_SIZE=3 -- print-config
if [ $rc = 0 ] && [ "$(grep '^node.id=' "$out" | tail -1)" = node.id=1 ]; then pass "$T"; else fail "$T"; fi

T="an unreadable TIDEMARK_CONFIG_FILE is refused"
run HOSTNAME=tidemark-1 TIDEMARK_CONFIG_FILE="$tmp/missing.properties" -- print-config
if [ $rc = 2 ] && said "cannot be read"; then pass "$T"; else fail "$T"; fi

T="arguments: --override reaches tidemark; another command and --version run without a node identity"
run HOSTNAME=tidemark-0 TIDEMARK_BIN="$tmp/args" -- --override num.partitions=4
if [ $rc = 0 ] && grep -qx "$home/server.properties --override num.partitions=4" "$out"; then
	run HOSTNAME=box -- sh -c 'echo hello'
	r1=$rc
	grep -qx hello "$out" && s1=0 || s1=1
	run HOSTNAME=box TIDEMARK_BIN="$tmp/args" -- --version
	if [ $r1 = 0 ] && [ $s1 = 0 ] && [ $rc = 0 ] && grep -qx -- --version "$out"; then pass "$T"; else fail "$T"; fi
else fail "$T"; fi

[ -x "$BIN" ] || echo "note: bin/tidemark is not built; generated files were not handed to tidemark format"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
