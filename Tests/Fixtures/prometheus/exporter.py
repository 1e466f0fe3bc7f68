#!/usr/bin/env python3
"""A service's request and error counters, per node, for the analysis-gate tests (#43).

Serves /metrics on 127.0.0.1:PORT. Every node in STATE (a JSON file the test writes:
{"web-1-g2": 0.5, ...}, node name -> error ratio) serves 100 requests a second, of which that
ratio fail: app_requests_total{node=...} and app_errors_total{node=...} grow with wall time, so
rate() over them gives the ratio. Nothing here scrapes or reaches a VM.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
STATE = sys.argv[2]
started = time.monotonic()
counters = {}  # node -> [requests, errors, last time]


def snapshot():
    try:
        with open(STATE) as f:
            ratios = json.load(f)
    except (OSError, ValueError):
        ratios = {}
    now = time.monotonic()
    lines = ["# TYPE app_requests_total counter", "# TYPE app_errors_total counter"]
    for node, ratio in sorted(ratios.items()):
        c = counters.setdefault(node, [0.0, 0.0, now])
        dt = now - c[2]
        c[0] += 100 * dt
        c[1] += 100 * dt * float(ratio)
        c[2] = now
        lines.append('app_requests_total{node="%s"} %f' % (node, c[0]))
        lines.append('app_errors_total{node="%s"} %f' % (node, c[1]))
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = snapshot().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
