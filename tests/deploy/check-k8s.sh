#!/bin/sh
# check-k8s.sh — checks deploy/k8s/ without a cluster:
#   1. tests/deploy/check_k8s.py: the manifests fit together (selectors,
#      ports, probes, governing Service, PDB, TIDEMARK_CLUSTER_SIZE ...);
#   2. the entrypoint, given each pod's hostname and the StatefulSet's
#      environment, derives the node id and a voter list naming every pod by
#      its headless-Service DNS name;
#   3. `kubectl apply --dry-run=client --validate=false -f deploy/k8s/`, with
#      tests/deploy/kube_stub.py on 127.0.0.1 answering kubectl's discovery
#      questions (skipped when kubectl is not installed);
#   4. kubernetes-validate --strict (from PyPI, in a venv under $TM_CACHE)
#      against the oldest and newest Kubernetes API schemas it carries.
# Prints "N passed, N failed"; exits 1 on any failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
K8S=$ROOT/deploy/k8s
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
tmp=$(mktemp -d)
stub_pid=""
cleanup() {
	[ -z "$stub_pid" ] || kill "$stub_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# 1. consistency
if "$PY" "$ROOT/tests/deploy/check_k8s.py" "$K8S" > "$tmp/consistency.out" 2>&1; then
	ok "manifests are consistent ($(tail -1 "$tmp/consistency.out"))"
else
	grep -v '^ok' "$tmp/consistency.out"
	bad "manifests are consistent"
fi

# 2. the entrypoint with the StatefulSet's environment, for each ordinal
"$PY" - "$K8S/statefulset.yaml" > "$tmp/sts.env" <<'PYEOF'
import re, sys, yaml
sts = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "StatefulSet")
ct = sts["spec"]["template"]["spec"]["containers"][0]
env = {"POD_NAMESPACE": "tidemark-test"}
for e in ct.get("env", []):
    if "value" in e:
        env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
print(f"NAME={sts['metadata']['name']}")
print(f"REPLICAS={sts['spec']['replicas']}")
print(f"SERVICE={sts['spec']['serviceName']}")
for k, v in env.items():
    print(f"ENV {k}={v}")
PYEOF
NAME=$(sed -n 's/^NAME=//p' "$tmp/sts.env")
REPLICAS=$(sed -n 's/^REPLICAS=//p' "$tmp/sts.env")
SERVICE=$(sed -n 's/^SERVICE=//p' "$tmp/sts.env")
set --
while IFS= read -r line; do
	case $line in "ENV "*) set -- "$@" "${line#ENV }" ;; esac
done < "$tmp/sts.env"
want_voters=""
i=0
while [ "$i" -lt "$REPLICAS" ]; do
	want_voters="$want_voters${want_voters:+,}$i@$NAME-$i.$SERVICE.tidemark-test.svc.cluster.local:9093"
	i=$((i + 1))
done
i=0
while [ "$i" -lt "$REPLICAS" ]; do
	h="$tmp/pod$i"
	mkdir -p "$h"
	if env -i PATH="$PATH" HOSTNAME="$NAME-$i" TIDEMARK_HOME="$h" "$@" \
		sh "$ROOT/deploy/container/entrypoint.sh" print-config > "$h/out" 2> "$h/err" &&
		grep -qx "node.id=$i" "$h/out" &&
		grep -qx "controller.quorum.voters=$want_voters" "$h/out" &&
		grep -qx "advertised.listeners=PLAINTEXT://$NAME-$i.$SERVICE.tidemark-test.svc.cluster.local:9092" "$h/out"; then
		ok "pod $NAME-$i: node.id $i, $REPLICAS voters by DNS name, advertised by DNS name"
	else
		cat "$h/err" "$h/out"
		bad "pod $NAME-$i: node.id $i, $REPLICAS voters by DNS name, advertised by DNS name"
	fi
	i=$((i + 1))
done

# 3. kubectl client-side dry run
if command -v kubectl > /dev/null 2>&1; then
	"$PY" "$ROOT/tests/deploy/kube_stub.py" "$tmp/port" &
	stub_pid=$!
	n=0
	while [ ! -s "$tmp/port" ] && [ $n -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	cat > "$tmp/kubeconfig" <<KEOF
apiVersion: v1
kind: Config
clusters:
- name: stub
  cluster:
    server: http://127.0.0.1:$(cat "$tmp/port")
contexts:
- name: stub
  context:
    cluster: stub
    namespace: tidemark-test
current-context: stub
users: []
KEOF
	if KUBECONFIG="$tmp/kubeconfig" HOME="$tmp" timeout 60 kubectl apply --dry-run=client --validate=false \
		-f "$K8S/" > "$tmp/kubectl.out" 2>&1; then
		count=$(grep -c 'created (dry run)' "$tmp/kubectl.out")
		objs=$(grep -c '^kind:' "$K8S"/*.yaml | awk -F: '{s += $2} END {print s}')
		if [ "$count" = "$objs" ]; then
			ok "kubectl apply --dry-run=client: $count objects ($(sed 's/ created (dry run)//' "$tmp/kubectl.out" | tr '\n' ' '))"
		else
			cat "$tmp/kubectl.out"
			bad "kubectl apply --dry-run=client: $count of $objs objects"
		fi
	else
		cat "$tmp/kubectl.out"
		bad "kubectl apply --dry-run=client"
	fi
else
	echo "skip kubectl apply --dry-run=client (kubectl not installed)"
fi

# 4. schema validation: kubernetes-validate (PyPI) carries the API schemas of
# each Kubernetes release; --strict also refuses fields a release does not have.
KV_VENV=${TM_CACHE:-$HOME/.cache/tidemark}/venv-k8s-validate
if [ ! -x "$KV_VENV/bin/kubernetes-validate" ]; then
	{ python3 -m venv "$KV_VENV" || /usr/bin/python3 -m venv "$KV_VENV"; } > "$tmp/venv.out" 2>&1 &&
		"$KV_VENV/bin/pip" install -q kubernetes-validate >> "$tmp/venv.out" 2>&1 ||
		{ cat "$tmp/venv.out"; bad "install kubernetes-validate from PyPI into $KV_VENV"; }
fi
if [ -x "$KV_VENV/bin/kubernetes-validate" ]; then
	versions=$(ls "$("$KV_VENV/bin/python" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')/kubernetes-json-schema" |
		sed -n 's/^v\([0-9.]*\)-local-strict$/\1/p' | sort -t. -k1,1n -k2,2n | sed -n '1p;$p')
	for v in $versions; do
		if "$KV_VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$K8S"/*.yaml > "$tmp/kv.out" 2>&1; then
			ok "kubernetes-validate --strict: every object fits Kubernetes $v's API schema"
		else
			cat "$tmp/kv.out"
			bad "kubernetes-validate --strict: every object fits Kubernetes $v's API schema"
		fi
	done
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
