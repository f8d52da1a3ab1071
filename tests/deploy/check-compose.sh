#!/bin/sh
# check-compose.sh — checks deploy/compose/compose.yaml as `docker compose`
# reads it, without a Docker engine: tests/deploy/composecheck (Go) loads the
# file with compose-go, the library docker compose is built on (schema
# validation, ${VAR:-default} interpolation, anchors and merge keys), and the
# result must describe the intended cluster, both with the defaults and with
# the variables tests/deploy/run.sh sets:
#   three services tidemark-1..3, hostname = service name, one image built
#   from deploy/container/Containerfile; KAFKA_NODE_ID = N; one voter list
#   naming every service at :9093; the EXTERNAL listener advertised at the
#   port published for it on 127.0.0.1; a named volume each at
#   /var/lib/tidemark; the /readyz healthcheck; seccomp unconfined (io_uring).
# The Go module comes from the Go module proxy on first use (cached by Go).
# Prints "N passed, N failed"; exits 1 on any failure.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC=$ROOT/tests/deploy/composecheck
OUT=$ROOT/build/deploy-test
BIN=$OUT/composecheck
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT"
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

if ! command -v go > /dev/null 2>&1; then
	echo "compose-go check not run: no Go toolchain"
	echo "$passed passed, $failed failed"
	exit 0
fi
if [ ! -x "$BIN" ] || [ -n "$(find "$SRC" -newer "$BIN" -type f)" ]; then
	(cd "$SRC" && go build -o "$BIN" .) > "$OUT/composecheck-build.log" 2>&1 ||
		{ cat "$OUT/composecheck-build.log"; bad "build tests/deploy/composecheck"; echo "$passed passed, $failed failed"; exit 1; }
fi

# check NAME PORT1 PORT2 PORT3 [VAR=VALUE...]: load with those variables, check
check() {
	name=$1 p1=$2 p2=$3 p3=$4
	shift 4
	if env -u TIDEMARK_IMAGE -u TIDEMARK_HOST -u TIDEMARK_BIND_ADDRESS -u TIDEMARK_PORT_1 -u TIDEMARK_PORT_2 \
		-u TIDEMARK_PORT_3 -u TIDEMARK_BASE_IMAGE "$@" "$BIN" "$ROOT/deploy/compose/compose.yaml" \
		> "$OUT/compose.$name.json" 2> "$OUT/compose.$name.err"; then
		ok "$name: compose-go (docker compose's loader) accepts compose.yaml"
	else
		cat "$OUT/compose.$name.err"
		bad "$name: compose-go (docker compose's loader) accepts compose.yaml"
		return
	fi
	if "$PY" - "$OUT/compose.$name.json" "$p1" "$p2" "$p3" > "$OUT/compose.$name.check" 2>&1 <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
ports = sys.argv[2:5]
errs = []
def want(cond, msg):
    if not cond:
        errs.append(msg)
svcs = {s["name"]: s for s in c["services"]}
want(sorted(svcs) == ["tidemark-1", "tidemark-2", "tidemark-3"], f"services {sorted(svcs)}")
want(len({s["image"] for s in c["services"]}) == 1, "one image for all services")
voters = {s["environment"].get("KAFKA_CONTROLLER_QUORUM_VOTERS") for s in c["services"]}
want(voters == {"1@tidemark-1:9093,2@tidemark-2:9093,3@tidemark-3:9093"}, f"voter lists {voters}")
vols = set()
for n in (1, 2, 3):
    s = svcs.get(f"tidemark-{n}")
    if not s:
        continue
    e = s["environment"]
    want(s["hostname"] == s["name"], f"{s['name']}: hostname {s['hostname']!r}")
    want(s["build"], f"{s['name']}: no build section")
    want(e.get("KAFKA_NODE_ID") == str(n), f"{s['name']}: KAFKA_NODE_ID {e.get('KAFKA_NODE_ID')!r}")
    target = int(e.get("TIDEMARK_EXTERNAL_PORT", "9094"))
    want(len(s["ports"] or []) == 1, f"{s['name']}: ports {s['ports']}")
    for p in s["ports"] or []:
        want(p["host_ip"] == "127.0.0.1", f"{s['name']}: published on {p['host_ip']!r}")
        want(p["published"] == ports[n - 1], f"{s['name']}: published {p['published']} not {ports[n - 1]}")
        want(p["target"] == target, f"{s['name']}: target {p['target']} not the EXTERNAL port {target}")
        want(e.get("TIDEMARK_EXTERNAL_ADVERTISED") == f"localhost:{p['published']}",
             f"{s['name']}: advertised {e.get('TIDEMARK_EXTERNAL_ADVERTISED')!r} vs published {p['published']}")
    data = [v for v in s["volumes"] or [] if v["target"] == "/var/lib/tidemark"]
    want(len(data) == 1 and data[0]["type"] == "volume" and data[0]["source"] in c["volumes"],
         f"{s['name']}: no named volume at /var/lib/tidemark ({s['volumes']})")
    vols.update(v["source"] for v in data)
    want("seccomp=unconfined" in (s["security_opt"] or []), f"{s['name']}: seccomp not unconfined")
    hc = " ".join(s["healthcheck"] or [])
    want("/readyz" in hc and "9644" in hc, f"{s['name']}: healthcheck {hc!r}")
want(len(vols) == 3, f"volumes shared between services: {sorted(vols)}")
for m in errs:
    print(m)
sys.exit(1 if errs else 0)
PYEOF
	then
		ok "$name: three nodes, ids 1-3, one voter list, EXTERNAL advertised at its published port, a named volume each"
	else
		cat "$OUT/compose.$name.check"
		bad "$name: three nodes, ids 1-3, one voter list, EXTERNAL advertised at its published port, a named volume each"
	fi
}
check defaults 9092 9093 9094
check test-ports 39092 39093 39094 TIDEMARK_PORT_1=39092 TIDEMARK_PORT_2=39093 TIDEMARK_PORT_3=39094 \
	TIDEMARK_IMAGE=localhost/tidemark:deploy-test
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
