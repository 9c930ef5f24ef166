#!/usr/bin/env python3
"""A tiny HTTP/1.1 origin for examples/front_proxy.yaml: python3 http_origin.py HOST PORT NAME.

Answers every request with a plain-text echo of what it received (method, path,
headers), and an `x-origin: NAME` header, so you can see what sluice forwarded."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "origin"

    def handle_one_request_body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self):
        body = self.handle_one_request_body()
        lines = [f"{self.command} {self.path} {self.request_version}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append(f"(request body: {len(body)} bytes)")
        out = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(out)))
        self.send_header("x-origin", self.server.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer

    def log_message(self, fmt, *args):
        pass


def main():
    host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    srv = ThreadingHTTPServer((host, port), Echo)
    srv.name = name
    srv.serve_forever()


if __name__ == "__main__":
    main()
