"""Driver of bench/xds.sh: one large snapshot pushed by the tests' control plane
(tests/xds_ads/control_plane.py) to a sluice binary over ADS, timed until sluice serves
it, with sluice's RSS before and after. See bench/xds.sh for usage."""
import argparse
import http.server
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINTS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTES = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-port", str(self.server.server_address[1]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def origins(n):
    servers = []
    for _ in range(n):
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
    return servers


def bootstrap(admin, xds, api):
    return f"""node: {{ id: bench, cluster: bench }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
dynamic_resources:
  ads_config:
    api_type: {api}
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds_cluster }} }}]
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds_cluster
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {xds} }} }} }} }}] }}]
"""


def snapshot(version, port, clusters, ports, routes):
    listener = {
        "@type": LISTENER, "name": "ingress",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress",
            "rds": {"config_source": {"ads": {}, "resource_api_version": "V3"}, "route_config_name": "routes"},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}
    cs = [{"@type": CLUSTER, "name": f"c{i}", "type": "EDS", "connect_timeout": "1s",
           "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}} for i in range(clusters)]
    eps = [{"@type": ENDPOINTS, "cluster_name": f"c{i}", "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}} for p in ports]}]}
        for i in range(clusters)]
    rs = [{"match": {"prefix": f"/r{i}/"}, "route": {"cluster": f"c{i % clusters}"}} for i in range(routes)]
    rc = {"@type": ROUTES, "name": "routes", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": rs}]}
    return {"version": version, "listeners": [listener], "clusters": cs, "endpoints": eps, "routes": [rc]}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stat(admin, name):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats", timeout=2).read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(name + ": "):
            return int(line.split(": ", 1)[1])
    return None


def get(port, path):
    """The x-port header of a 200 answer, or None."""
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2)
        return r.headers.get("x-port") if r.status == 200 else None
    except OSError:
        return None


def wait(what, cond, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.005)
    sys.exit(f"xds bench: timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--routes", type=int, default=1000)
    ap.add_argument("--api", default="GRPC", choices=["GRPC", "DELTA_GRPC"])
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    first, second = origins(a.endpoints), origins(a.endpoints)
    ports1 = [s.server_address[1] for s in first]
    ports2 = [s.server_address[1] for s in second]
    tmp = tempfile.mkdtemp(prefix="sluice-xds-bench-")
    procs = []
    try:
        cp = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/xds_ads/control_plane.py"),
                               os.path.join(ROOT, "proxy/proto/xds/xds-descriptors.bin"), "0"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(cp)
        xds_port = int(cp.stdout.readline())
        sent = queue.Queue()

        def read():
            for line in cp.stdout:
                v = json.loads(line)
                if "sent" in v:
                    sent.put(v)
        threading.Thread(target=read, daemon=True).start()

        admin, port = free_port(), free_port()
        cfg = os.path.join(tmp, "bootstrap.yaml")
        with open(cfg, "w") as f:
            f.write(bootstrap(admin, xds_port, a.api))
        log = open(os.path.join(tmp, "sluice.log"), "w")
        sl = subprocess.Popen([a.bin, "-c", cfg, "--concurrency", str(a.concurrency)], stdout=log, stderr=log)
        procs.append(sl)
        wait("the ADS stream", lambda: stat(admin, "control_plane.connected_state") == 1, 30)
        time.sleep(0.5)
        rss0 = rss_kib(sl.pid)

        def push(snap):
            while not sent.empty():
                sent.get()
            line = json.dumps(snap)
            t = time.time()
            cp.stdin.write(line + "\n")
            cp.stdin.flush()
            return t, len(line)

        def last_sent(before):
            t = 0.0
            size = 0
            while not sent.empty():
                v = sent.get()
                if v["t"] <= before:
                    t, size = max(t, v["t"]), size + v["bytes"]
            return t, size

        last = f"/r{a.routes - 1}/x"
        s1 = snapshot("1", port, a.clusters, ports1, a.routes)
        t0, json_bytes = push(s1)
        wait("the first snapshot", lambda: get(port, last) in map(str, ports1), 120)
        t1 = time.time()
        ts1, proto_bytes = last_sent(t1)
        rss1 = rss_kib(sl.pid)

        s2 = snapshot("2", port, a.clusters, ports2, a.routes)
        t2, _ = push(s2)
        wait("the second snapshot", lambda: get(port, last) in map(str, ports2), 120)
        t3 = time.time()
        ts2, _ = last_sent(t3)
        rss2 = rss_kib(sl.pid)

        rows = [
            ("clusters x endpoints, routes", f"{a.clusters} x {a.endpoints}, {a.routes}"),
            ("api_type, workers", f"{a.api}, {a.concurrency}"),
            ("snapshot size (JSON in, protobuf sent)", f"{json_bytes / 1e6:.1f} MB, {proto_bytes / 1e6:.1f} MB"),
            ("first snapshot: push -> served", f"{t1 - t0:.2f} s"),
            ("first snapshot: last response sent -> served", f"{t1 - ts1:.2f} s"),
            ("all endpoints moved: push -> served", f"{t3 - t2:.2f} s"),
            ("all endpoints moved: last response sent -> served", f"{t3 - ts2:.2f} s"),
            ("RSS before / after first / after second", f"{rss0 / 1024:.1f} / {rss1 / 1024:.1f} / {rss2 / 1024:.1f} MiB"),
        ]
        width = max(len(r[0]) for r in rows)
        text = "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)
        print(text)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
