#!/bin/sh
# statefulset.sh IMAGE PORT — runs deploy/k8s/statefulset.yaml's pods the way
# Kubernetes would, with Podman and no cluster, and checks that they form a
# cluster:
#   - one container per ordinal, hostname tidemark-<i> (the pod name), its
#     headless-Service DNS name tidemark-<i>.tidemark-headless.<ns>.svc.cluster.local
#     as a network alias, a volume of its own at the claim's mount path;
#   - the container's environment from the manifest (POD_NAMESPACE from the
#     "downward API", $(VAR) references expanded as the kubelet does);
#   - the manifest's security context: uid/gid, read-only root filesystem,
#     no capabilities, no privilege escalation, seccomp unconfined;
#   - ready: the readiness probe's /readyz answers 200 on every pod, the
#     liveness probe's /healthz too, and Metadata through pod 0 (published on
#     127.0.0.1:PORT) lists every pod as a broker at its DNS name.
# Prints one line per check and "N passed, N failed"; exits 1 on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=$1
PORT=$2
NS=tidemark-test
PREFIX=${TM_DEPLOY_PROJECT:-tmdeploy}-sts
LOGDIR=$ROOT/build/deploy-test
PY=/usr/bin/python3
passed=0
failed=0
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
	[ "$failed" = 0 ]
	exit $?
}

# The pod spec, as shell-friendly lines.
"$PY" - "$ROOT/deploy/k8s/statefulset.yaml" "$NS" > "$LOGDIR/sts.spec" <<'EOF'
import re, sys, yaml
sts = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "StatefulSet")
pod = sts["spec"]["template"]["spec"]
ct = next(c for c in pod["containers"] if c["name"] == "tidemark")
env = {}
for e in ct.get("env", []):
    if "value" in e:
        v = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
    elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
        v = sys.argv[2]
    else:
        raise SystemExit(f"env {e['name']}: no value this test can supply")
    env[e["name"]] = v
psc = pod.get("securityContext", {})
csc = ct.get("securityContext", {})
ports = {p["name"]: p["containerPort"] for p in ct["ports"]}
print(f"NAME={sts['metadata']['name']}")
print(f"SERVICE={sts['spec']['serviceName']}")
print(f"REPLICAS={sts['spec']['replicas']}")
print(f"USER={psc.get('runAsUser', 1000)}:{psc.get('runAsGroup', psc.get('runAsUser', 1000))}")
print(f"READONLY={1 if csc.get('readOnlyRootFilesystem') else 0}")
print(f"DROPALL={1 if 'ALL' in csc.get('capabilities', {}).get('drop', []) else 0}")
print(f"NONEWPRIVS={1 if csc.get('allowPrivilegeEscalation') is False else 0}")
print(f"SECCOMP={csc.get('seccompProfile', {}).get('type', 'RuntimeDefault')}")
print(f"MOUNT={ct['volumeMounts'][0]['mountPath']}")
print(f"KAFKA_PORT_NUM={ports['kafka']}")
print(f"HTTP_PORT_NUM={ports['http']}")
print(f"READY_PATH={ct['readinessProbe']['httpGet']['path']}")
print(f"LIVE_PATH={ct['livenessProbe']['httpGet']['path']}")
for k, v in env.items():
    print(f"ENV {k}={v}")
EOF
[ $? = 0 ] || { cat "$LOGDIR/sts.spec"; bad "read deploy/k8s/statefulset.yaml"; finish; }
val() { sed -n "s/^$1=//p" "$LOGDIR/sts.spec"; }
NAME=$(val NAME)
SERVICE=$(val SERVICE)
REPLICAS=$(val REPLICAS)
MOUNT=$(val MOUNT)
KPORT=$(val KAFKA_PORT_NUM)
HPORT=$(val HTTP_PORT_NUM)
opts="--user $(val USER)"
[ "$(val READONLY)" = 1 ] && opts="$opts --read-only"
[ "$(val DROPALL)" = 1 ] && opts="$opts --cap-drop ALL"
[ "$(val NONEWPRIVS)" = 1 ] && opts="$opts --security-opt no-new-privileges"
[ "$(val SECCOMP)" = Unconfined ] && opts="$opts --security-opt seccomp=unconfined"
envfile=$LOGDIR/sts.env
sed -n 's/^ENV //p' "$LOGDIR/sts.spec" > "$envfile"

names=""
teardown() {
	[ -z "$names" ] || podman stop -t 30 $names > /dev/null 2>&1
	for i in $(seq 0 $((REPLICAS - 1))); do
		podman rm -f -v "$PREFIX-$i" > /dev/null 2>&1
		podman volume rm -f "$PREFIX-data-$i" > /dev/null 2>&1
	done
	podman network rm -f "$PREFIX" > /dev/null 2>&1
}
trap teardown EXIT
teardown
podman network create "$PREFIX" > /dev/null || { bad "podman network create $PREFIX"; finish; }
for i in $(seq 0 $((REPLICAS - 1))); do
	pub=""
	[ "$i" = 0 ] && pub="-p 127.0.0.1:$PORT:$KPORT"
	# shellcheck disable=SC2086
	if podman run -d --name "$PREFIX-$i" --hostname "$NAME-$i" --network "$PREFIX" \
		--network-alias "$NAME-$i.$SERVICE.$NS.svc.cluster.local" $pub $opts \
		--env-file "$envfile" -v "$PREFIX-data-$i:$MOUNT" "$IMAGE" > "$LOGDIR/sts-run$i.out" 2>&1; then
		names="$names $PREFIX-$i"
	else
		cat "$LOGDIR/sts-run$i.out"
		bad "pod $NAME-$i started"
		finish
	fi
done
ok "$REPLICAS pods started with the manifest's environment and security context ($opts)"

# get I PATH: the HTTP status line of GET PATH on pod I's HTTP port
get() {
	podman exec "$PREFIX-$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/$HPORT && printf 'GET $2 HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3" 2> /dev/null
}
t0=$(date +%s)
for i in $(seq 0 $((REPLICAS - 1))); do
	until get "$i" "$(val READY_PATH)" | grep -q ' 200 '; do
		if [ $(($(date +%s) - t0)) -gt 90 ]; then
			podman logs "$PREFIX-$i" > "$LOGDIR/sts-pod$i.log" 2>&1
			bad "pod $NAME-$i ready within 90 s (log: $LOGDIR/sts-pod$i.log)"
			finish
		fi
		sleep 1
	done
done
ok "every pod's readiness probe ($(val READY_PATH)) answers 200 (after $(($(date +%s) - t0)) s)"
live=0
for i in $(seq 0 $((REPLICAS - 1))); do
	get "$i" "$(val LIVE_PATH)" | grep -q ' 200 ' && live=$((live + 1))
done
if [ $live = "$REPLICAS" ]; then ok "every pod's liveness probe ($(val LIVE_PATH)) answers 200"; else
	bad "every pod's liveness probe ($(val LIVE_PATH)) answers 200 (only $live)"
fi
for i in $(seq 0 $((REPLICAS - 1))); do
	podman logs "$PREFIX-$i" > "$LOGDIR/sts-pod$i.log" 2>&1
done
if grep -q "node.id=1 (hostname $NAME-1: ordinal 1" "$LOGDIR/sts-pod1.log"; then
	ok "pod $NAME-1 took node.id 1 from its hostname"
else
	bad "pod $NAME-1 took node.id 1 from its hostname"
fi
timeout 20 kcat -L -b "127.0.0.1:$PORT" -m 10 > "$LOGDIR/sts-meta.out" 2>&1
want=0
for i in $(seq 0 $((REPLICAS - 1))); do
	grep -q "broker $i at $NAME-$i.$SERVICE.$NS.svc.cluster.local:$KPORT" "$LOGDIR/sts-meta.out" && want=$((want + 1))
done
if [ $want = "$REPLICAS" ] && grep -q " $REPLICAS brokers:" "$LOGDIR/sts-meta.out"; then
	ok "Metadata through pod 0 lists the $REPLICAS pods as brokers at their DNS names"
else
	cat "$LOGDIR/sts-meta.out"
	bad "Metadata through pod 0 lists the $REPLICAS pods as brokers at their DNS names"
fi
finish
