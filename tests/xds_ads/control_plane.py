"""A real xDS control plane for sluice's tests: grpcio serving Envoy's
AggregatedDiscoveryService (StreamAggregatedResources and DeltaAggregatedResources)
with messages built from the descriptors of Envoy's protos (argv[1], the
FileDescriptorSet sluice itself reads), versioned snapshots as go-control-plane's
snapshot cache serves them.

argv: descriptor-set port. Prints the port it listens on, then one JSON line per
request received ({"rpc", "type_url", "version_info", "nonce", "names", "error", "node"}).
After each response it prints {"sent": type_url, "version", "bytes", "t"} (t: Unix time;
bench/xds.sh times sluice from there). Reads snapshots from stdin, one JSON line each:
  {"version": "1", "listeners": [...], "clusters": [...], "endpoints": [...], "routes": [...],
   "secrets": [...]}
(resources in proto3 JSON with their "@type"; a resource's "@unknown_field": N is taken
out of the JSON and sent as a varint field number N appended to its wire bytes, a field
its message does not have). State of the world: a request whose
version_info differs from the snapshot's is answered at once; one that has it waits
for the next snapshot; a NACK of the version last sent waits too. Delta: each resource
carries a version (a hash of its JSON); a client is sent what it lacks and told what
was removed.
"""
import hashlib
import json
import sys
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

fds = descriptor_pb2.FileDescriptorSet()
with open(sys.argv[1], "rb") as f:
    fds.ParseFromString(f.read())
pool = descriptor_pool.DescriptorPool()
files = {f.name: f for f in fds.file}
added = set()


def add(name):
    if name in added:
        return
    f = files[name]
    for dep in f.dependency:
        add(dep)
    pool.Add(f)
    added.add(name)


for n in files:
    add(n)


def cls(name):
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


Request = cls("envoy.service.discovery.v3.DiscoveryRequest")
Response = cls("envoy.service.discovery.v3.DiscoveryResponse")
DeltaRequest = cls("envoy.service.discovery.v3.DeltaDiscoveryRequest")
DeltaResponse = cls("envoy.service.discovery.v3.DeltaDiscoveryResponse")

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINTS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTES = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRETS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
KEYS = {LISTENER: "listeners", CLUSTER: "clusters", ENDPOINTS: "endpoints", ROUTES: "routes",
        SECRETS: "secrets"}

cond = threading.Condition()
snapshot = {"version": "", "listeners": [], "clusters": [], "endpoints": [], "routes": []}
out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        print(json.dumps(obj), flush=True)


def name_of(type_url, r):
    return r["cluster_name"] if type_url == ENDPOINTS else r["name"]


def resources(type_url, names):
    items = snapshot.get(KEYS[type_url], [])
    if names:
        items = [r for r in items if name_of(type_url, r) in names]
    return items


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def split_unknown(items):
    """The resources without their "@unknown_field", and each one's field number (or None)."""
    clean, numbers = [], []
    for r in items:
        r = dict(r)
        numbers.append(r.pop("@unknown_field", None))
        clean.append(r)
    return clean, numbers


def add_unknown(any_msg, number):
    if number is not None:
        any_msg.value = any_msg.value + varint(number << 3) + varint(1)


def read_snapshots():
    global snapshot
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        with cond:
            snapshot = json.loads(line)
            cond.notify_all()


def request_reader(it, pending, rpc, parse):
    def run():
        try:
            for raw in it:
                req = parse(raw)
                with cond:
                    pending.append(req)
                    cond.notify_all()
        except Exception:
            pass
        with cond:
            pending.append(None)
            cond.notify_all()
    threading.Thread(target=run, daemon=True).start()


def sotw(request_iterator, context):
    pending = []
    request_reader(request_iterator, pending, "sotw", lambda raw: Request.FromString(raw))
    # type_url -> (names, version the client has, version last sent); a request whose
    # names changed is answered even at the current version (as go-control-plane does
    # for resources the client has not been sent).
    watches = {}
    nonce = 0
    while True:
        with cond:
            while not pending and not any(v[1] != snapshot["version"] and v[2] != snapshot["version"] for v in watches.values()):
                cond.wait(0.5)
                if not context.is_active():
                    return
            reqs, pending[:] = list(pending), []
            snap = snapshot
        for req in reqs:
            if req is None:
                return
            emit({"rpc": "sotw", "type_url": req.type_url, "version_info": req.version_info,
                  "nonce": req.response_nonce, "names": list(req.resource_names),
                  "error": req.error_detail.message if req.HasField("error_detail") else None,
                  "node": json_format.MessageToDict(req.node, preserving_proto_field_name=True)})
            old_names, _, last_sent = watches.get(req.type_url, (None, None, None))
            if old_names is not None and sorted(old_names) != sorted(req.resource_names):
                last_sent = None
                req_version = None
            else:
                req_version = req.version_info
            watches[req.type_url] = (list(req.resource_names), req_version, last_sent)
        for type_url, (names, has, sent) in list(watches.items()):
            if has == snap["version"] or sent == snap["version"]:
                continue
            nonce += 1
            items, unknown = split_unknown(resources(type_url, names))
            msg = {"version_info": snap["version"], "type_url": type_url, "nonce": str(nonce),
                   "resources": items}
            resp = json_format.ParseDict(msg, Response(), descriptor_pool=pool)
            for any_msg, number in zip(resp.resources, unknown):
                add_unknown(any_msg, number)
            watches[type_url] = (names, has, snap["version"])
            data = resp.SerializeToString()
            emit({"sent": type_url, "version": snap["version"], "bytes": len(data), "t": time.time()})
            yield data


def version_of(r):
    return hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]


def delta(request_iterator, context):
    pending = []
    request_reader(request_iterator, pending, "delta", lambda raw: DeltaRequest.FromString(raw))
    subs = {}  # type_url -> {"names": set or None (wildcard), "has": {name: version}}
    nonce = 0
    seen_version = None
    while True:
        with cond:
            while not pending and seen_version == snapshot["version"]:
                cond.wait(0.5)
                if not context.is_active():
                    return
            reqs, pending[:] = list(pending), []
            snap = snapshot
        for req in reqs:
            if req is None:
                return
            emit({"rpc": "delta", "type_url": req.type_url, "nonce": req.response_nonce,
                  "names": list(req.resource_names_subscribe),
                  "error": req.error_detail.message if req.HasField("error_detail") else None,
                  "node": json_format.MessageToDict(req.node, preserving_proto_field_name=True),
                  "initial": dict(req.initial_resource_versions)})
            s = subs.get(req.type_url)
            if s is None:
                wildcard = req.type_url in (LISTENER, CLUSTER) and not req.resource_names_subscribe
                s = {"names": None if wildcard else set(), "has": dict(req.initial_resource_versions)}
                subs[req.type_url] = s
            if s["names"] is not None:
                s["names"] |= set(req.resource_names_subscribe)
                s["names"] -= set(req.resource_names_unsubscribe)
                for n in req.resource_names_unsubscribe:
                    s["has"].pop(n, None)
        seen_version = snap["version"]
        for type_url, s in subs.items():
            items = resources(type_url, s["names"])
            changed = [r for r in items if s["has"].get(name_of(type_url, r)) != version_of(r)]
            present = {name_of(type_url, r) for r in items}
            removed = [n for n in s["has"] if n not in present]
            if not changed and not removed:
                continue
            nonce += 1
            items, unknown = split_unknown(changed)
            msg = {"system_version_info": snap["version"], "type_url": type_url, "nonce": str(nonce),
                   "resources": [{"name": name_of(type_url, r), "version": version_of(r), "resource": c}
                                 for r, c in zip(changed, items)],
                   "removed_resources": removed}
            resp = json_format.ParseDict(msg, DeltaResponse(), descriptor_pool=pool)
            for res, number in zip(resp.resources, unknown):
                add_unknown(res.resource, number)
            for r in changed:
                s["has"][name_of(type_url, r)] = version_of(r)
            for n in removed:
                del s["has"][n]
            data = resp.SerializeToString()
            emit({"sent": type_url, "version": snap["version"], "bytes": len(data), "t": time.time()})
            yield data


handler = grpc.method_handlers_generic_handler(
    "envoy.service.discovery.v3.AggregatedDiscoveryService",
    {"StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(sotw),
     "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(delta)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:%s" % sys.argv[2])
server.start()
print(port, flush=True)
threading.Thread(target=read_snapshots, daemon=True).start()
server.wait_for_termination()
