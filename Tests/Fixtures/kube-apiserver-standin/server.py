#!/usr/bin/env python3
"""A Kubernetes API server STAND-IN for Drover's drain tests (#42): no real API server can run on
this machine, so the tests drive the real kubectl against this one, which answers exactly the calls
kubectl makes for cordon, drain and uncordon, the way the API server does:

- discovery: /api, /apis, /api/v1, /apis/policy/v1, /apis/policy/v1beta1, /apis/apps/v1;
- nodes: get, and patch (strategic merge / merge / JSON merge) of spec.unschedulable;
- pods: listed across namespaces by the field selector spec.nodeName=NODE, got and deleted by name;
- the eviction subresource (policy/v1 and policy/v1beta1 bodies alike): 201 when allowed, 429
  TooManyRequests with the DisruptionBudget cause while a pod's PodDisruptionBudget forbids it
  (forever, or until a time), the evicted pod gone after its grace;
- daemonsets get (kubectl looks up the owner of a DaemonSet pod it ignores).

The test drives the world through /__standin/state (PUT a JSON document: nodes, pods, pdbs) and
reads it back (GET), with every request kubectl made in /__standin/requests.

Usage: server.py PORT_FILE  (binds 127.0.0.1 on a free port, writes it to PORT_FILE)
"""
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"nodes": {}, "pods": {}, "pdbs": {}, "eviction_versions": ["v1", "v1beta1"]}
REQUESTS = []


def status(code, reason, message, causes=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if causes:
        body["details"] = {"causes": causes}
    return code, body


def node_json(name):
    node = STATE["nodes"][name]
    spec = {}
    if node.get("unschedulable"):
        spec["unschedulable"] = True
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "uid": "uid-node-" + name, "resourceVersion": str(node.get("rv", 1)), "labels": {"kubernetes.io/hostname": name}},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod_json(key):
    pod = STATE["pods"][key]
    namespace, name = key.split("/", 1)
    owner = pod.get("owner", "ReplicaSet")
    meta = {"name": name, "namespace": namespace, "uid": "uid-pod-" + name, "resourceVersion": "1", "labels": pod.get("labels", {})}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": pod.get("owner_name", name + "-owner"), "uid": "uid-owner-" + name, "controller": True}]
    if pod.get("deleting_since"):
        meta["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pod["deleting_since"]))
        meta["deletionGracePeriodSeconds"] = 0
    return {
        "kind": "Pod", "apiVersion": "v1", "metadata": meta,
        "spec": {"nodeName": pod["node"], "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": pod.get("phase", "Running"), "conditions": [{"type": "Ready", "status": "True"}]},
    }


def reap():
    """Pods whose deletion grace has passed are gone."""
    now = time.time()
    for key in [k for k, p in STATE["pods"].items() if p.get("deleting_since") is not None and now >= p["deleting_since"] + p.get("grace", 0)]:
        del STATE["pods"][key]


def blocking_pdb(key):
    """The PDB that forbids evicting pod `key` now, if any."""
    pod = STATE["pods"][key]
    namespace = key.split("/", 1)[0]
    for name, pdb in STATE["pdbs"].items():
        if pdb.get("namespace", "default") != namespace:
            continue
        selector = pdb.get("selector", {})
        if all(pod.get("labels", {}).get(k) == v for k, v in selector.items()):
            until = pdb.get("blocks_until")
            if until is None or time.time() < until:
                return name
    return None


RESOURCES_V1 = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node", "verbs": ["get", "list", "patch", "update", "watch"], "shortNames": ["no"]},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["delete", "get", "list", "watch"], "shortNames": ["po"]},
    ],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def handle_any(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        payload = self.body() if method in ("POST", "PUT", "PATCH") else None
        with LOCK:
            if parts[:1] != ["__standin"]:
                REQUESTS.append({"method": method, "path": url.path, "query": url.query, "body": payload, "content_type": self.headers.get("Content-Type")})
            reap()
            code, body = self.route(method, parts, query, payload)
        self.reply(code, body)

    def route(self, method, parts, query, payload):
        if parts == ["__standin", "state"]:
            if method == "PUT":
                STATE.update(payload)
                return 200, {}
            return 200, STATE
        if parts == ["__standin", "requests"]:
            return 200, REQUESTS
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.headers.get("Host", "")}]}
        if parts == ["apis"]:
            versions = [{"groupVersion": "policy/" + v, "version": v} for v in STATE["eviction_versions"]]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
                {"name": "policy", "versions": versions, "preferredVersion": versions[0]},
            ]}
        if parts == ["api", "v1"]:
            resources = json.loads(json.dumps(RESOURCES_V1))
            resources["resources"].append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy", "version": STATE["eviction_versions"][0], "kind": "Eviction", "verbs": ["create"]})
            return 200, resources
        if parts[:2] == ["apis", "policy"] and len(parts) == 3:
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "policy/" + parts[2], "resources": [
                {"name": "poddisruptionbudgets", "singularName": "poddisruptionbudget", "namespaced": True, "kind": "PodDisruptionBudget", "verbs": ["get", "list"], "shortNames": ["pdb"]}]}
        if parts == ["apis", "apps", "v1"]:
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
                {"name": "daemonsets", "singularName": "daemonset", "namespaced": True, "kind": "DaemonSet", "verbs": ["get", "list"], "shortNames": ["ds"]}]}
        if parts[:4] == ["apis", "apps", "v1", "namespaces"] and len(parts) == 7 and parts[5] == "daemonsets":
            return 200, {"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": parts[6], "namespace": parts[4], "uid": "uid-ds-" + parts[6]}}
        if parts[:3] == ["api", "v1", "nodes"]:
            if len(parts) == 3:
                return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [node_json(n) for n in sorted(STATE["nodes"])]}
            name = parts[3]
            if name not in STATE["nodes"]:
                return status(404, "NotFound", 'nodes "%s" not found' % name)
            if method == "PATCH":
                spec = (payload or {}).get("spec", {})
                if "unschedulable" in spec:
                    STATE["nodes"][name]["unschedulable"] = bool(spec["unschedulable"])
                    STATE["nodes"][name]["rv"] = STATE["nodes"][name].get("rv", 1) + 1
            return 200, node_json(name)
        if parts == ["api", "v1", "pods"]:
            selector = (query.get("fieldSelector") or [""])[0]
            wanted = selector.split("=", 1)[1] if selector.startswith("spec.nodeName=") else None
            items = [pod_json(k) for k in sorted(STATE["pods"]) if wanted is None or STATE["pods"][k]["node"] == wanted]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 6 and parts[4] == "pods":
            key = parts[3] + "/" + parts[5]
            if key not in STATE["pods"]:
                return status(404, "NotFound", 'pods "%s" not found' % parts[5])
            if len(parts) == 7 and parts[6] == "eviction" and method == "POST":
                pdb = blocking_pdb(key)
                if pdb:
                    return status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                                  [{"reason": "DisruptionBudget", "message": "The disruption budget %s needs 1 healthy pods and has 1 currently" % pdb}])
                STATE["pods"][key]["deleting_since"] = time.time()
                return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            if len(parts) == 6 and method == "DELETE":
                STATE["pods"][key]["deleting_since"] = time.time()
                return 200, pod_json(key)
            if len(parts) == 6:
                return 200, pod_json(key)
        return status(404, "NotFound", "the server could not find the requested resource")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
