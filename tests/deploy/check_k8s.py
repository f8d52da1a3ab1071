#!/usr/bin/env python3
"""check_k8s.py [DIR] — checks that Tidemark's Kubernetes manifests
(deploy/k8s/) fit together, without a cluster:

- every object parses, has apiVersion/kind/metadata.name, and names are unique per kind;
- the StatefulSet's selector matches its pod labels, and the Services' and
  the PodDisruptionBudget's selectors pick exactly those pods;
- serviceName is a headless Service (clusterIP None) that publishes
  not-ready addresses (nodes must find each other before any is ready);
- podManagementPolicy is Parallel (a node is ready only once a quorum forms);
- every Service targetPort and probe port names a containerPort, the probes
  use /readyz and /healthz on the port TIDEMARK_HTTP_PORT sets, and the
  client/controller ports agree with TIDEMARK_CLIENT_PORT/CONTROLLER_PORT;
- TIDEMARK_CLUSTER_SIZE equals replicas, and TIDEMARK_PEER_DOMAIN starts
  with the headless Service's name;
- every volumeMount is a volumeClaimTemplate or a pod volume;
- the PDB leaves a quorum majority up;
- enableServiceLinks is false.

Prints one line per check and a closing "N passed, N failed"; exits 1 when a
check fails. Needs PyYAML.
"""
import os
import sys

import yaml


def load(dirpath):
    docs = []
    for name in sorted(os.listdir(dirpath)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(dirpath, name)) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((name, d))
    return docs


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}{': ' + detail if detail else ''}")
        return ok


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main():
    dirpath = sys.argv[1] if len(sys.argv) > 1 else "deploy/k8s"
    c = Checker()
    docs = load(dirpath)
    c.check(len(docs) > 0, f"{dirpath} holds manifests", "no YAML documents found")

    seen = set()
    for fname, d in docs:
        md = d.get("metadata") or {}
        ok = bool(d.get("apiVersion")) and bool(d.get("kind")) and bool(md.get("name"))
        c.check(ok, f"{fname}: apiVersion, kind and metadata.name present")
        key = (d.get("kind"), md.get("name"))
        c.check(key not in seen, f"{fname}: {key[0]}/{key[1]} is defined once")
        seen.add(key)

    by_kind = {}
    for _, d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    stss = by_kind.get("StatefulSet", [])
    if not c.check(len(stss) == 1, "exactly one StatefulSet", f"found {len(stss)}"):
        return finish(c)
    sts = stss[0]
    spec = sts["spec"]
    tmpl = spec["template"]
    pod_labels = tmpl["metadata"].get("labels", {})
    sel = spec["selector"].get("matchLabels", {})
    c.check(matches(sel, pod_labels), "StatefulSet selector matches its pod labels", f"{sel} vs {pod_labels}")
    replicas = spec.get("replicas", 1)
    c.check(replicas % 2 == 1, f"replicas ({replicas}) is odd (a quorum of voters)")
    c.check(spec.get("podManagementPolicy") == "Parallel", "podManagementPolicy is Parallel",
            f"got {spec.get('podManagementPolicy')!r}")
    pod = tmpl["spec"]
    c.check(pod.get("enableServiceLinks") is False, "enableServiceLinks is false")

    containers = pod.get("containers", [])
    ct = next((x for x in containers if x.get("name") == "tidemark"), None)
    if not c.check(ct is not None, "a container named tidemark"):
        return finish(c)
    ports = {p["name"]: p["containerPort"] for p in ct.get("ports", []) if "name" in p}
    env = {e["name"]: e.get("value") for e in ct.get("env", [])}

    def env_port(var, default):
        v = env.get(var, default)
        return int(v) if v is not None and str(v).isdigit() else None

    client_port = env_port("TIDEMARK_CLIENT_PORT", "9092")
    ctl_port = env_port("TIDEMARK_CONTROLLER_PORT", "9093")
    http_port = env_port("TIDEMARK_HTTP_PORT", "9644")
    c.check(ports.get("kafka") == client_port, "containerPort kafka equals TIDEMARK_CLIENT_PORT",
            f"{ports.get('kafka')} vs {client_port}")
    c.check(ports.get("controller") == ctl_port, "containerPort controller equals TIDEMARK_CONTROLLER_PORT",
            f"{ports.get('controller')} vs {ctl_port}")
    c.check(ports.get("http") == http_port, "containerPort http equals TIDEMARK_HTTP_PORT",
            f"{ports.get('http')} vs {http_port}")

    def port_value(p):
        return ports.get(p) if isinstance(p, str) else p

    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        pr = ct.get(probe) or {}
        hg = pr.get("httpGet") or {}
        c.check(hg.get("path") == path, f"{probe} asks {path}", f"got {hg.get('path')!r}")
        c.check(port_value(hg.get("port")) == http_port, f"{probe} uses the HTTP port {http_port}",
                f"got {hg.get('port')!r}")

    size = env.get("TIDEMARK_CLUSTER_SIZE")
    c.check(size is not None and str(size) == str(replicas), "TIDEMARK_CLUSTER_SIZE equals replicas",
            f"{size!r} vs {replicas}")

    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    headless = services.get(spec.get("serviceName"))
    if c.check(headless is not None, f"serviceName {spec.get('serviceName')!r} is a Service here"):
        hs = headless["spec"]
        c.check(hs.get("clusterIP") == "None", "the governing Service is headless (clusterIP None)")
        c.check(hs.get("publishNotReadyAddresses") is True, "the governing Service publishes not-ready addresses")
        hports = {p.get("port") for p in hs.get("ports", [])}
        c.check(ctl_port in hports and client_port in hports,
                "the governing Service carries the client and controller ports", f"{sorted(hports)}")
        domain = env.get("TIDEMARK_PEER_DOMAIN") or ""
        c.check(domain.split(".")[0] == headless["metadata"]["name"],
                "TIDEMARK_PEER_DOMAIN names the governing Service", f"{domain!r}")
    for name, s in services.items():
        ssel = s["spec"].get("selector", {})
        c.check(matches(ssel, pod_labels), f"Service {name} selects the Tidemark pods", f"{ssel}")
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort", p.get("port"))
            c.check(port_value(tp) in ports.values(), f"Service {name} port {p.get('name')} targets a containerPort",
                    f"targetPort {tp!r}")
    c.check(any(s["spec"].get("clusterIP") != "None" for s in services.values()),
            "a client Service (not headless) exists")

    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    vols = {v["name"] for v in pod.get("volumes", [])}
    for m in ct.get("volumeMounts", []):
        c.check(m["name"] in claims | vols, f"volumeMount {m['name']} is a claim template or volume")
    c.check(any(m.get("mountPath") == "/var/lib/tidemark" for m in ct.get("volumeMounts", [])),
            "a volume is mounted at /var/lib/tidemark (TIDEMARK_HOME)")

    pdbs = by_kind.get("PodDisruptionBudget", [])
    if c.check(len(pdbs) == 1, "one PodDisruptionBudget"):
        ps = pdbs[0]["spec"]
        c.check(matches(ps["selector"].get("matchLabels", {}), pod_labels), "the PDB selects the Tidemark pods")
        majority = replicas // 2 + 1
        if "maxUnavailable" in ps:
            ok = isinstance(ps["maxUnavailable"], int) and ps["maxUnavailable"] <= replicas - majority
            c.check(ok, f"the PDB's maxUnavailable keeps a majority of {majority} up", f"{ps['maxUnavailable']!r}")
        else:
            ok = isinstance(ps.get("minAvailable"), int) and ps["minAvailable"] >= majority
            c.check(ok, f"the PDB's minAvailable keeps a majority of {majority} up", f"{ps.get('minAvailable')!r}")
    return finish(c)


def finish(c):
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
