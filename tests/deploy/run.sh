#!/bin/sh
# tests/deploy/run.sh — the deployment test (`make test-deploy`): builds the
# Tidemark container image, runs deploy/compose/compose.yaml's three-node
# cluster with podman-compose, and checks with kcat what a user would:
#
#   1. the entrypoint's derivations, the Kubernetes manifests, and the
#      compose file as docker compose's loader reads it (test_entrypoint.sh,
#      check-k8s.sh, check-compose.sh; no containers needed);
#   2. every node answers Metadata listing all three brokers at the
#      addresses published on the host, and /readyz (the compose healthcheck)
#      says ready;
#   3. a topic created with 3 partitions and replication factor 3 shows three
#      replicas per partition on every node; records produced to each
#      partition through a different node are all read back, in order,
#      through each of the three nodes;
#   4. every node holds every partition's records (replication, read from
#      each node's /metrics); with partition 0's leader stopped, partition 0
#      still takes writes and everything reads back through a survivor; the
#      restarted node catches up;
#   5. `compose down` + `up` recreates the containers, and the records are
#      still there (named volumes); nodes stopped with SIGTERM exit 0;
#   6. `compose down -v` leaves no container or volume behind;
#   7. the Kubernetes StatefulSet's three pods, run as Podman containers
#      with the manifest's environment, hostnames, DNS names and security
#      context (tests/deploy/statefulset.sh), all become ready, and Metadata
#      lists them at their headless-Service DNS names.
#
# Without a registry: the Debian base image is made with debootstrap and
# `podman import` (tests/deploy/base-image.sh; cached, so reruns skip it).
# Network traffic goes to the Debian mirror (packages) and to the containers
# this test starts, through ports it publishes on 127.0.0.1.
#
# Environment:
#   TM_DEPLOY_SRC=worktree|head  build from the working tree (default) or
#                                from the last commit (git archive HEAD)
#   TM_DEPLOY_PORT=39092         first of three host ports for the nodes (the
#                                StatefulSet check uses the fourth)
#   TM_DEPLOY_PROJECT=tmdeploy   compose project name
#   TM_DEPLOY_KEEP=1             leave the cluster running at the end
#   TM_CACHE                     cache folder (default ~/.cache/tidemark)
# Logs: build/deploy-test/ (image build, each node's log at teardown).
# Closes with "N passed, N failed"; exits 1 on any failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TM_CACHE=${TM_CACHE:-$HOME/.cache/tidemark}
export TM_CACHE
SRC=${TM_DEPLOY_SRC:-worktree}
PROJECT=${TM_DEPLOY_PROJECT:-tmdeploy}
P1=${TM_DEPLOY_PORT:-39092}
P2=$((P1 + 1))
P3=$((P1 + 2))
BASE_IMAGE=localhost/tidemark-debian-base:bookworm-slim
IMAGE=localhost/tidemark:deploy-test
COMPOSE_FILE=$ROOT/deploy/compose/compose.yaml
LOGDIR=$ROOT/build/deploy-test
TOPIC=deploy-check
COUNT=25 # records per partition
PY=/usr/bin/python3

passed=0
failed=0
t0=$(date +%s)
log() { echo "deploy: [$(($(date +%s) - t0))s] $*"; }
ok() {
	passed=$((passed + 1))
	echo "ok   $*"
}
bad() {
	failed=$((failed + 1))
	echo "FAIL $*"
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ] && exit 0
	exit 1
}
die() {
	bad "$*"
	finish
}
port_of() { eval "echo \$P$1"; }

mkdir -p "$LOGDIR" "$TM_CACHE"
rm -f "$LOGDIR"/*.log

# ---- 0. tools ------------------------------------------------------------------
need=""
for p in podman podman-compose debootstrap runc kcat python3-confluent-kafka git; do
	dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'ok installed' || need="$need $p"
done
if [ -n "$need" ]; then
	log "apt-get install$need"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq > "$LOGDIR/apt.log" 2>&1
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >> "$LOGDIR/apt.log" 2>&1 ||
		die "apt-get install$need (see $LOGDIR/apt.log)"
fi
# podman on this kind of machine: runc, cgroupfs (no systemd), no default ulimits.
if [ ! -e /etc/containers/containers.conf ]; then
	log "writing /etc/containers/containers.conf (runc, cgroupfs, no default ulimits)"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO mkdir -p /etc/containers
	printf '[containers]\ndefault_ulimits=[]\n\n[engine]\nruntime="runc"\ncgroup_manager="cgroupfs"\n' |
		$SUDO tee /etc/containers/containers.conf > /dev/null
fi

# ---- 1. checks without containers ----------------------------------------------
for t in test_entrypoint.sh check-k8s.sh check-compose.sh; do
	sh "$ROOT/tests/deploy/$t" > "$LOGDIR/$t.log" 2>&1
	line=$(tail -1 "$LOGDIR/$t.log")
	if echo "$line" | grep -q ' 0 failed'; then
		ok "$t: $line"
	else
		grep -v '^ok' "$LOGDIR/$t.log"
		bad "$t: $line"
	fi
done

# ---- 2. images --------------------------------------------------------------
log "base image"
sh "$ROOT/tests/deploy/base-image.sh" "$BASE_IMAGE" > "$LOGDIR/base-image.log" 2>&1 ||
	{ cat "$LOGDIR/base-image.log"; die "Debian base image (debootstrap + podman import)"; }
if [ "$SRC" = head ]; then
	ctx=$(mktemp -d)
	git -C "$ROOT" archive HEAD | tar -x -C "$ctx" || die "git archive HEAD"
	ignore=""
	log "building $IMAGE from HEAD ($(git -C "$ROOT" rev-parse --short HEAD))"
else
	ctx=$ROOT
	ignore="--ignorefile $ROOT/deploy/container/Containerfile.dockerignore"
	log "building $IMAGE from the working tree"
fi
# shellcheck disable=SC2086
if podman build $ignore -f "$ctx/deploy/container/Containerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
	--build-arg MAKE_JOBS=2 -t "$IMAGE" "$ctx" > "$LOGDIR/build.log" 2>&1; then
	ok "image $IMAGE built ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1 / 1e6}'))"
else
	tail -30 "$LOGDIR/build.log"
	die "image build (see $LOGDIR/build.log)"
fi
[ "$SRC" = head ] && rm -rf "$ctx"
podman image prune -f > /dev/null 2>&1

# ---- 3. the compose cluster -------------------------------------------------
compose() {
	TIDEMARK_IMAGE=$IMAGE TIDEMARK_PORT_1=$P1 TIDEMARK_PORT_2=$P2 TIDEMARK_PORT_3=$P3 \
		podman-compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@" >> "$LOGDIR/compose.log" 2>&1
}
container() { # container N: the name podman-compose gave node N's container
	podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
		--filter "label=com.docker.compose.service=tidemark-$1" --format '{{.Names}}' | head -1
}
save_logs() {
	for n in 1 2 3; do
		c=$(container $n)
		[ -z "$c" ] || podman logs "$c" > "$LOGDIR/node$n.$1.log" 2>&1
	done
}
# ports_free: none of the three host ports is listened on. Podman's conmon
# holds a published port for a moment after its container is removed.
ports_free() {
	command -v ss > /dev/null 2>&1 || return 0
	for p in $P1 $P2 $P3; do
		ss -ltnH "sport = :$p" | grep -q . && return 1
	done
	return 0
}
wait_ports_free() {
	i=0
	until ports_free || [ $i -ge 30 ]; do
		sleep 1
		i=$((i + 1))
	done
	ports_free
}
# stop_all: SIGTERM to every node at once, SIGKILL after 30 s (podman-compose
# stops one container after another, and a node whose peers are gone can
# stall resolving their names: see docs/deployment.md).
stop_all() {
	names=$(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}')
	[ -z "$names" ] || podman stop -t 30 $names > /dev/null 2>&1
}
# up WHAT: podman-compose up, and all three containers running
up() {
	compose up -d --no-build || { tail -20 "$LOGDIR/compose.log"; die "$1: podman-compose up"; }
	for n in 1 2 3; do
		state=$(podman inspect --format '{{.State.Status}}' "$(container $n)" 2> /dev/null)
		[ "$state" = running ] || { tail -20 "$LOGDIR/compose.log"; die "$1: node $n's container is ${state:-missing}, not running"; }
	done
}
teardown() {
	stop_all
	compose down -v
	podman network rm -f "${PROJECT}_default" > /dev/null 2>&1
	for n in 1 2 3; do podman volume rm -f "${PROJECT}_tidemark-$n" > /dev/null 2>&1; done
}
cleanup() {
	trap - EXIT INT TERM
	if [ -n "${TM_DEPLOY_KEEP:-}" ]; then
		log "TM_DEPLOY_KEEP: the cluster stays up (podman-compose -p $PROJECT -f $COMPOSE_FILE down -v)"
		return
	fi
	save_logs final
	teardown
}
trap 'cleanup; finish' INT TERM
trap cleanup EXIT

teardown # leftovers of an interrupted run
wait_ports_free || die "a port of $P1 $P2 $P3 is taken on this machine; set TM_DEPLOY_PORT"
log "podman-compose up (ports $P1 $P2 $P3 on 127.0.0.1)"
up "first start"

# metadata_ok N: node N answers Metadata listing the three brokers at their host ports
metadata_ok() {
	timeout 15 kcat -L -b "127.0.0.1:$(port_of "$1")" -m 5 > "$LOGDIR/meta$1.out" 2>&1 &&
		grep -q ' 3 brokers:' "$LOGDIR/meta$1.out" &&
		grep -q "broker 1 at localhost:$P1" "$LOGDIR/meta$1.out" &&
		grep -q "broker 2 at localhost:$P2" "$LOGDIR/meta$1.out" &&
		grep -q "broker 3 at localhost:$P3" "$LOGDIR/meta$1.out"
}
wait_cluster() { # wait_cluster WHAT: up to 90 s for all three nodes
	tw=$(date +%s)
	for n in 1 2 3; do
		until metadata_ok $n; do
			if [ $(($(date +%s) - tw)) -gt 90 ]; then
				cat "$LOGDIR/meta$n.out"
				save_logs failed
				die "$1: node $n does not list the 3 brokers after 90 s (logs: $LOGDIR/node$n.failed.log)"
			fi
			sleep 1
		done
	done
	ok "$1: every node lists brokers 1,2,3 at localhost:$P1,$P2,$P3 (after $(($(date +%s) - tw)) s)"
}
wait_cluster "cluster formed"

for n in 1 2 3; do
	c=$(container $n)
	if podman healthcheck run "$c" > /dev/null 2>&1; then
		ok "node $n healthy (compose healthcheck: /readyz answers 200)"
	else
		bad "node $n healthy (compose healthcheck: /readyz answers 200)"
	fi
done
if podman logs "$(container 2)" 2>&1 | grep -q 'tidemark-entrypoint: node.id=2 (KAFKA_NODE_ID'; then
	ok "the entrypoint took node 2's id from KAFKA_NODE_ID"
else
	bad "the entrypoint took node 2's id from KAFKA_NODE_ID"
fi

# ---- 4. a topic with replication factor 3 -------------------------------------
log "creating $TOPIC: 3 partitions, replication factor 3"
"$PY" - "127.0.0.1:$P2" "$TOPIC" > "$LOGDIR/create.out" 2>&1 <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for t, f in a.create_topics([NewTopic(sys.argv[2], 3, 3)], request_timeout=20).items():
    f.result(timeout=30)
    print("created", t)
EOF
if [ $? = 0 ]; then ok "CreateTopics $TOPIC (3 partitions, RF 3) through node 2"; else
	cat "$LOGDIR/create.out"
	die "CreateTopics $TOPIC (3 partitions, RF 3) through node 2"
fi
# topic_ok N: node N's Metadata shows the topic with 3 partitions of 3 replicas
topic_ok() {
	timeout 15 kcat -L -b "127.0.0.1:$(port_of "$1")" -t "$TOPIC" -m 5 > "$LOGDIR/topic$1.out" 2>&1 &&
		grep -q "topic \"$TOPIC\" with 3 partitions" "$LOGDIR/topic$1.out" &&
		[ "$(grep -cE 'partition [0-2], leader [1-3], replicas: [1-3],[1-3],[1-3],' "$LOGDIR/topic$1.out")" = 3 ]
}
for n in 1 2 3; do
	i=0
	until topic_ok $n || [ $i -ge 20 ]; do
		sleep 0.5
		i=$((i + 1))
	done
	if topic_ok $n; then
		ok "node $n: $TOPIC has 3 partitions, 3 replicas each ($(grep -o 'partition [0-2], leader [1-3]' "$LOGDIR/topic$n.out" | tr '\n' ';'))"
	else
		cat "$LOGDIR/topic$n.out"
		bad "node $n: $TOPIC has 3 partitions, 3 replicas each"
	fi
done

# in$p.txt holds what partition p should read back, one record a line;
# expected.txt all of it as "<partition> <record>", partition by partition.
expected=$LOGDIR/expected.txt
rebuild_expected() {
	: > "$expected"
	for p in 0 1 2; do sed "s/^/$p /" "$LOGDIR/in$p.txt" >> "$expected"; done
}
# produce P VIA FILE: appends FILE's lines to partition P through node VIA, acks=all
produce() {
	timeout 30 kcat -P -b "127.0.0.1:$(port_of "$2")" -t "$TOPIC" -p "$1" -X acks=all \
		< "$3" > "$LOGDIR/produce$1.out" 2>&1 && cat "$3" >> "$LOGDIR/in$1.txt"
}
for p in 0 1 2; do
	via=$(((p + 1) % 3 + 1)) # a node other than the usual leader p+1
	: > "$LOGDIR/in$p.txt"
	seq 1 $COUNT | sed "s/^/p$p-r/" > "$LOGDIR/batch.txt"
	if produce $p $via "$LOGDIR/batch.txt"; then
		ok "produced $COUNT records to partition $p (bootstrap node $via)"
	else
		cat "$LOGDIR/produce$p.out"
		bad "produced $COUNT records to partition $p (bootstrap node $via)"
	fi
done
rebuild_expected
total() { wc -l < "$expected" | tr -d ' '; }
# consume_ok N: everything produced reads back through node N, in order per partition
consume_ok() {
	timeout 20 kcat -C -b "127.0.0.1:$(port_of "$1")" -t "$TOPIC" -o beginning -e -q -f '%p %s\n' \
		> "$LOGDIR/consumed$1.out" 2> "$LOGDIR/consumed$1.err" || return 1
	# A stable sort by partition keeps each partition's order as read.
	sort -s -k1,1 "$LOGDIR/consumed$1.out" | cmp -s - "$expected"
}
# check_consume N WHAT [TRIES]: consume_ok, retried up to TRIES times a second apart
check_consume() {
	i=1
	until consume_ok "$1"; do
		if [ $i -ge "${3:-1}" ]; then
			diff "$expected" "$LOGDIR/consumed$1.out" | head -10
			cat "$LOGDIR/consumed$1.err"
			bad "$2"
			return 1
		fi
		sleep 1
		i=$((i + 1))
	done
	ok "$2"
}
for n in 1 2 3; do
	check_consume $n "all $(total) records read back in order through node $n"
done

# replicas_ok: every node's /metrics shows every partition's log ending
# where the records produced to it end (the log end offset).
replicas_ok() {
	have=0
	for n in 1 2 3; do
		podman exec "$(container $n)" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9644 &&
			printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' > "$LOGDIR/metrics$n.out" 2>&1
		for p in 0 1 2; do
			want=$(wc -l < "$LOGDIR/in$p.txt" | tr -d ' ')
			grep -qx "tidemark_partition_log_end_offset{topic=\"$TOPIC\",partition=\"$p\"} $want" \
				"$LOGDIR/metrics$n.out" && have=$((have + 1))
		done
	done
	[ $have = 9 ]
}
check_replicas() { # check_replicas WHAT: up to 30 s for followers to catch up
	i=0
	until replicas_ok || [ $i -ge 30 ]; do
		sleep 1
		i=$((i + 1))
	done
	if replicas_ok; then
		ok "$1: all 3 nodes hold every record of all 3 partitions (log end offsets in /metrics)"
	else
		grep -h "log_end_offset{topic=\"$TOPIC\"" "$LOGDIR"/metrics?.out
		bad "$1: only $have of 9 partition replicas hold every record"
	fi
}
check_replicas "replication"

# ---- 5. a node down -------------------------------------------------------------
down=$(sed -n 's/.*partition 0, leader \([1-3]\),.*/\1/p' "$LOGDIR/topic1.out")
[ -n "$down" ] || down=1
survivor=$((down % 3 + 1))
log "stopping node $down (leader of partition 0)"
podman stop -t 30 "$(container "$down")" > /dev/null 2>&1
echo "p0-while-node-$down-down" > "$LOGDIR/batch.txt"
i=0
until produce 0 $survivor "$LOGDIR/batch.txt" || [ $i -ge 30 ]; do
	sleep 1
	i=$((i + 1))
done
rebuild_expected
if grep -q "while-node-$down-down" "$expected"; then
	ok "node $down (partition 0's leader) stopped: partition 0 takes writes through node $survivor (after $i s)"
else
	cat "$LOGDIR/produce0.out"
	bad "node $down (partition 0's leader) stopped: partition 0 takes writes through node $survivor"
fi
check_consume $survivor "node $down stopped: all $(total) records read back through node $survivor" 20
log "starting node $down again"
podman start "$(container "$down")" > /dev/null 2>&1
wait_cluster "node $down back"
check_replicas "node $down back, caught up"

# ---- 6. SIGTERM, and containers recreated on the same named volumes -----------
log "stopping the three nodes (SIGTERM), podman-compose down (volumes kept), up again"
stop_all
for n in 1 2 3; do
	c=$(container $n)
	code=$(podman inspect --format '{{.State.ExitCode}}' "$c")
	if [ "$code" = 0 ] && podman logs "$c" 2>&1 | grep -q 'received SIGTERM; shutting down'; then
		ok "node $n stopped by SIGTERM: tidemark logged it and exited 0"
	else
		bad "node $n stopped by SIGTERM: tidemark logged it and exited 0 (exit code $code; 137 is SIGKILL after 30 s: see \"Known limits\" in docs/deployment.md, log $LOGDIR/node$n.first.log)"
	fi
done
save_logs first
compose down
kept=0
for n in 1 2 3; do
	[ -z "$(container $n)" ] && podman volume exists "${PROJECT}_tidemark-$n" && kept=$((kept + 1))
done
if [ $kept = 3 ]; then
	ok "down: the containers are gone, the 3 named volumes stay"
else
	bad "down: the containers are gone, the 3 named volumes stay (only $kept)"
fi
wait_ports_free || die "after down: a port of $P1 $P2 $P3 is still taken"
up "second start"
wait_cluster "after down and up"
for n in 1 2 3; do
	check_consume $n "after down and up: all $(total) records read back through node $n" 20
done
if podman logs "$(container 1)" 2>&1 | grep -q 'formatted'; then
	bad "after down and up: node 1 formatted its storage again"
else
	ok "after down and up: node 1 reopened its storage (no new format)"
fi


# ---- 7. teardown --------------------------------------------------------------
if [ -z "${TM_DEPLOY_KEEP:-}" ]; then
	cleanup
	left=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | wc -l)
	vols=0
	for n in 1 2 3; do podman volume exists "${PROJECT}_tidemark-$n" && vols=$((vols + 1)); done
	if [ "$left" = 0 ] && [ "$vols" = 0 ]; then
		ok "down -v: no container or volume of project $PROJECT left"
	else
		bad "down -v: $left containers and $vols volumes of project $PROJECT left"
	fi
fi

# ---- 8. the Kubernetes StatefulSet's pods, run by Podman -----------------------
log "the StatefulSet's pods as containers (tests/deploy/statefulset.sh)"
sh "$ROOT/tests/deploy/statefulset.sh" "$IMAGE" $((P1 + 3)) > "$LOGDIR/statefulset.sh.log" 2>&1
sed '$d' "$LOGDIR/statefulset.sh.log" | sed 's/^\(ok  \|FAIL\) /\1 statefulset: /'
line=$(tail -1 "$LOGDIR/statefulset.sh.log")
sp=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
sf=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -n "$sp" ] && [ -n "$sf" ]; then
	passed=$((passed + sp))
	failed=$((failed + sf))
else
	bad "statefulset.sh ended without a summary (see $LOGDIR/statefulset.sh.log)"
fi
log "done"
finish
