#!/usr/bin/env python3
"""kube_stub.py PORTFILE — a stand-in for a Kubernetes API server on
127.0.0.1, just enough for `kubectl apply --dry-run=client` when there is
no cluster: kubectl still asks the server which kinds exist (discovery) and
whether each object exists already. This answers discovery for the built-in
kinds deploy/k8s/ uses (v1, apps/v1, policy/v1) and "404 not found" for every
object, so kubectl maps each manifest to its resource and prints what it
would create. It checks nothing of its own: objects are never sent to it.

Listens on an ephemeral port, writes the port number to PORTFILE, serves
until killed.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def res(name, kind, namespaced=True, short=()):
    return {
        "name": name,
        "singularName": kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortNames": list(short),
    }


GROUPS = {
    "/api/v1": ("v1", [res("services", "Service", short=["svc"]), res("pods", "Pod", short=["po"]),
                       res("configmaps", "ConfigMap", short=["cm"]), res("secrets", "Secret"),
                       res("persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"]),
                       res("serviceaccounts", "ServiceAccount", short=["sa"]),
                       res("namespaces", "Namespace", namespaced=False, short=["ns"])]),
    "/apis/apps/v1": ("apps/v1", [res("statefulsets", "StatefulSet", short=["sts"]),
                                  res("deployments", "Deployment", short=["deploy"])]),
    "/apis/policy/v1": ("policy/v1", [res("poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"])]),
}


class Handler(BaseHTTPRequestHandler):
    def send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = []
            for g in ("apps", "policy"):
                gv = {"groupVersion": f"{g}/v1", "version": "v1"}
                groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
            return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path in GROUPS:
            gv, resources = GROUPS[path]
            return self.send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                   "resources": resources})
        if path == "/version":
            return self.send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        return self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": "not found", "reason": "NotFound", "code": 404})

    def log_message(self, *args):
        pass


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()


if __name__ == "__main__":
    main()
