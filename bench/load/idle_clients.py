#!/usr/bin/env python3
"""Open many idle client connections and hold them until told to let go.

Used by bench/idle.sh (run inside the client namespace): opens COUNT TCP connections
to TARGET from kernel sockets spread over several source addresses (one
source/destination pair has fewer than 64k ports), at most INFLIGHT handshakes at a
time. With --request each connection then makes one HTTP/1.1 keep-alive request and
reads its whole response (so it is idle *after* carrying data, as a keep-alive
connection is). Prints one JSON line {"open": N, "failed": F, "seconds": S} when done,
then waits for a line on stdin (or EOF) and closes everything. One process holds at
most its hard RLIMIT_NOFILE of them (raised to it): bench/idle.sh starts several.

    idle_clients.py --target 10.99.53.2:8080 --sources 10.99.53.11,10.99.53.12 \
        --count 100000 [--request] [--inflight 1000] [--timeout 300]
"""

import argparse
import errno
import json
import resource
import select
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--sources", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--request", action="store_true")
    ap.add_argument("--inflight", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    target = (host, int(port))
    sources = a.sources.split(",")
    want = a.count + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        sys.exit(f"idle_clients.py: {a.count} connections need {want} descriptors; the hard limit is {hard}")
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    request = b"GET /idle HTTP/1.1\r\nhost: idle\r\n\r\n"
    ep = select.epoll()
    pending = {}  # fd -> [socket, phase, received bytes]
    done = []
    failed = 0
    reasons = {}
    started = 0
    t0 = time.monotonic()
    deadline = t0 + a.timeout

    def start():
        nonlocal started, failed
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((sources[started % len(sources)], 0))
        started += 1
        rc = s.connect_ex(target)
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            return
        pending[s.fileno()] = [s, "connect", b""]
        ep.register(s.fileno(), select.EPOLLOUT)

    def finish(fd, ok, why=""):
        nonlocal failed
        s = pending.pop(fd)[0]
        ep.unregister(fd)
        if ok:
            done.append(s)
        else:
            failed += 1
            reasons[why] = reasons.get(why, 0) + 1
            s.close()

    while len(done) + failed < a.count:
        if time.monotonic() > deadline:
            break
        while started < a.count and len(pending) < a.inflight:
            start()
        for fd, ev in ep.poll(1.0):
            entry = pending.get(fd)
            if entry is None:
                continue
            s = entry[0]
            if entry[1] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    finish(fd, False, "connect: " + errno.errorcode.get(err, str(err)))
                elif not a.request:
                    finish(fd, True)
                else:
                    s.send(request)
                    entry[1] = "response"
                    ep.modify(fd, select.EPOLLIN)
            else:
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    finish(fd, False, "recv: " + errno.errorcode.get(e.errno or 0, str(e)))
                    continue
                if not chunk:
                    finish(fd, False, "recv: end of stream")
                    continue
                entry[2] += chunk
                head, sep, body = entry[2].partition(b"\r\n\r\n")
                if sep:
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v.strip())
                    if len(body) >= length:
                        finish(fd, head.startswith(b"HTTP/1.1 200"), "status: " + head[:12].decode(errors="replace"))
    if pending:
        failed += len(pending)
        reasons["timed out"] = len(pending)
    summary = {"open": len(done), "failed": failed, "seconds": round(time.monotonic() - t0, 2), "reasons": reasons}
    print(json.dumps(summary), flush=True)
    sys.stdin.readline()
    for s in done:
        s.close()


if __name__ == "__main__":
    main()
