//! HTTP upgrades and CONNECT end to end (Envoy's "HTTP upgrades" and "CONNECT support").
//!
//! The Python `websockets` client and server through sluice's kernel datapath: a text
//! message and a 1 MiB binary message echoed byte-exact and a clean close whose code
//! both ends see. On both datapaths (kernel sockets on loopback, smol stacks on the
//! in-memory network), with raw bytes: the websocket handshake and relay (bytes sent
//! before the 101 on both sides, a large payload, half-close both ways, the upstream
//! connection never pooled), Envoy's 403 for an upgrade that is not configured (nothing
//! reaches the origin), route-level `enabled` overriding the connection manager, a
//! non-101 answer forwarded as a normal response, CONNECT terminated (200, then raw
//! bytes to a TCP echo server, half-close) and proxied (CONNECT forwarded upstream),
//! CONNECT without a configured upgrade (403) or without a `connect_matcher` route
//! (404), and the stream idle timeout ending an idle tunnel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::conn::Conn;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::origin::{echo, TcpOrigin};
use sluice_e2e::payload;

on_both_backends!(
    websocket_handshake_and_relay_raw,
    unconfigured_upgrade_gets_403_and_reaches_nothing,
    route_upgrade_configs_override_the_hcm,
    non_101_answer_is_a_normal_response,
    connect_terminated_to_a_tcp_echo_server,
    connect_proxied_upstream_as_connect,
    connect_without_upgrade_config_or_route,
    idle_tunnel_ends_with_the_stream_idle_timeout,
    upgraded_stream_is_access_logged_once_it_ends,
);

const WS_HCM: &str = "upgrade_configs:\n- upgrade_type: websocket\n";

/// A websocket handshake request for `path` (raw bytes).
fn ws_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: ws.test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    )
}

/// Read up to the end of a head (`\r\n\r\n`); returns the head and the bytes after it.
fn read_head(c: &mut impl Read) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        let n = c.read(&mut tmp).expect("read a head");
        assert!(n > 0, "closed before the end of the head; got {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Read exactly `n` bytes, `have` first.
fn read_n(c: &mut impl Read, mut have: Vec<u8>, n: usize) -> Vec<u8> {
    let mut tmp = vec![0u8; 64 * 1024];
    while have.len() < n {
        let got = c.read(&mut tmp).expect("read");
        assert!(got > 0, "EOF after {} of {n} bytes", have.len());
        have.extend_from_slice(&tmp[..got]);
    }
    have
}

/// Whether the next read sees the end of the stream (not a timeout).
fn at_eof(c: &mut Conn) -> bool {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    matches!(c.read(&mut b), Ok(0))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An origin that answers a websocket handshake with a 101 (sending `early` right after
/// it), checks what the proxy forwarded, then echoes; at the client's FIN it sends `bye`
/// and closes. `heads` gets each request head it saw.
fn ws_origin(net: &Net, heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> TcpOrigin {
    TcpOrigin::serve(net.listen(), move |mut c| {
        let (head, rest) = read_head(&mut c);
        heads.lock().unwrap().push(head.clone());
        c.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nearly-from-origin",
        )
        .unwrap();
        c.write_all(&rest).unwrap();
        echo(&mut c);
        let _ = c.write_all(b"bye");
        let _ = c.shutdown(Shutdown::Write);
    })
}

fn websocket_handshake_and_relay_raw(backend: Backend) {
    let net = Net::new(backend);
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = ws_origin(&net, std::sync::Arc::clone(&heads));
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "ws", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, &forward_all("ws"), &clusters, WS_HCM, "", 1);
    let mut c = p.client();
    // Bytes right behind the head, before any 101: they go up after the switch.
    let mut first = ws_request("/chat").into_bytes();
    first.extend_from_slice(b"early-from-client");
    c.send(&first);
    let (head, rest) = read_head(&mut c.stream);
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    assert_eq!(header(&head, "upgrade"), Some("websocket"), "{head}");
    assert_eq!(header(&head, "connection"), Some("Upgrade"), "{head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_eq!(header(&head, "content-length"), None, "a 101 has no body framing: {head}");
    assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
    let early = b"early-from-originearly-from-client";
    let got = read_n(&mut c.stream, rest, early.len());
    assert_eq!(&got[..], &early[..], "the origin's early bytes, then the client's echoed");
    let seen = heads.lock().unwrap()[0].clone();
    assert!(seen.starts_with("GET /chat HTTP/1.1\r\n"), "{seen}");
    assert_eq!(header(&seen, "upgrade"), Some("websocket"), "the Upgrade header goes upstream: {seen}");
    assert!(
        header(&seen, "connection").is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "connection: upgrade goes upstream: {seen}"
    );
    assert_eq!(header(&seen, "sec-websocket-key"), Some("dGhlIHNhbXBsZSBub25jZQ=="));
    // A large payload both ways (backpressure bounded by the buffer limit).
    let data = payload(3 << 20, 7);
    let mut writer = c.stream.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        // Half-close: the origin still answers after it.
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_n(&mut c.stream, Vec::new(), data.len() + 3);
    w.join().unwrap();
    assert!(got[..data.len()] == data[..], "3 MiB echoed byte-exact");
    assert_eq!(&got[data.len()..], b"bye", "bytes after the client's FIN still arrive");
    assert!(at_eof(&mut c.stream), "the origin's FIN reaches the client");
    assert_eq!(p.counter("http.ingress.downstream_cx_upgrades_total"), 1);
    wait_for("the upgrade to end", || p.counter("http.ingress.downstream_cx_upgrades_active") == 0);
    assert_eq!(p.counter("http.ingress.downstream_rq_1xx"), 1);
    assert_eq!(p.counter("cluster.ws.upstream_cx_active"), 0, "the upstream connection is closed, not pooled");
    // A second upgrade needs (and gets) a new upstream connection.
    let mut c2 = p.client();
    c2.send(ws_request("/again").as_bytes());
    let (head, _) = read_head(&mut c2.stream);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(origin.accepted(), 2);
}

fn unconfigured_upgrade_gets_403_and_reaches_nothing(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "o");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = p.client();
    c.send(ws_request("/chat").as_bytes());
    let r = c.read_response(false).expect("a response");
    assert_eq!(r.status, 403);
    assert!(r.body.is_empty(), "Envoy's upgrade_failed reply has no body");
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("connection"), Some("close"), "the connection closes after a refused upgrade");
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(p.counter("http.ingress.downstream_rq_ws_on_non_ws_route"), 1);
    assert_eq!(p.counter("http.ingress.downstream_cx_upgrades_total"), 0);
    assert_eq!((origin.requests(), origin.connections()), (0, 0), "nothing reached the origin");
    // `enabled: false` in the connection manager is the same as no entry.
    drop(p);
    let p = HttpProxy::to(&net, &origin, "upgrade_configs:\n- { upgrade_type: WebSocket, enabled: false }\n", 1);
    let mut c = p.client();
    c.send(ws_request("/chat").as_bytes());
    assert_eq!(c.read_response(false).unwrap().status, 403);
    // A plain request is unaffected.
    let mut c = p.client();
    assert_eq!(c.get("/plain").status, 200);
    assert_eq!(origin.requests(), 1);
}

fn route_upgrade_configs_override_the_hcm(backend: Backend) {
    let net = Net::new(backend);
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = ws_origin(&net, std::sync::Arc::clone(&heads));
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "ws", endpoints: &endpoints, extra: "" }];
    let vhosts = r#"- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/off" }
    route: { cluster: ws, upgrade_configs: [{ upgrade_type: websocket, enabled: false }] }
  - match: { prefix: "/on" }
    route: { cluster: ws, upgrade_configs: [{ upgrade_type: WEBSOCKET }] }
  - match: { prefix: "/" }
    route: { cluster: ws }
"#;
    // The HCM allows websocket: the /off route forbids it.
    let p = HttpProxy::start(&net, vhosts, &clusters, WS_HCM, "", 1);
    let mut c = p.client();
    c.send(ws_request("/off").as_bytes());
    assert_eq!(c.read_response(false).unwrap().status, 403, "route enabled: false overrides the HCM");
    let mut c = p.client();
    c.send(ws_request("/other").as_bytes());
    let (head, _) = read_head(&mut c.stream);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    drop((c, p));
    // No HCM entry: only the /on route allows it. (A fresh network: on smol a second
    // proxy would reuse the first one's address and source ports.)
    let net = Net::new(backend);
    let origin = ws_origin(&net, std::sync::Arc::clone(&heads));
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "ws", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, vhosts, &clusters, "", "", 1);
    let mut c = p.client();
    c.send(ws_request("/on").as_bytes());
    let (head, _) = read_head(&mut c.stream);
    assert!(head.starts_with("HTTP/1.1 101"), "a route entry enables the upgrade by itself: {head}");
    let mut c = p.client();
    c.send(ws_request("/other").as_bytes());
    assert_eq!(c.read_response(false).unwrap().status, 403);
    assert_eq!(p.counter("http.ingress.downstream_rq_ws_on_non_ws_route"), 1);
    assert_eq!(heads.lock().unwrap().len(), 2, "only the allowed upgrades reached the origin");
}

fn non_101_answer_is_a_normal_response(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "o");
    let p = HttpProxy::to(&net, &origin, WS_HCM, 1);
    let mut c = p.client();
    c.send(ws_request("/not-a-websocket").as_bytes());
    let r = c.read_response(false).expect("the origin's answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("o"));
    assert!(r.text().contains("upgrade: websocket"), "the request went up with its Upgrade header: {}", r.text());
    assert!(c.closed_within(Duration::from_secs(5)), "the connection closes after a refused upgrade");
    assert_eq!(p.counter("http.ingress.downstream_cx_upgrades_total"), 1);
    wait_for("the upgrade to end", || p.counter("http.ingress.downstream_cx_upgrades_active") == 0);
    wait_for("the upstream connection to close", || p.counter("cluster.web.upstream_cx_active") == 0);
}

const CONNECT_ROUTES: &str = r#"- name: all
  domains: ["*"]
  routes:
  - match: { connect_matcher: {} }
    route: { cluster: tunnel, upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }] }
  - match: { prefix: "/" }
    direct_response: { status: 200, body: { inline_string: "plain" } }
"#;

fn connect_terminated_to_a_tcp_echo_server(backend: Backend) {
    let net = Net::new(backend);
    let echo_origin = TcpOrigin::echo_on(net.listen());
    let endpoints = [echo_origin.addr];
    let clusters = [ClusterAt { name: "tunnel", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, CONNECT_ROUTES, &clusters, "", "", 1);
    let mut c = p.client();
    c.send(b"CONNECT echo.test:443 HTTP/1.1\r\nhost: echo.test:443\r\n\r\nfirst-bytes");
    let (head, rest) = read_head(&mut c.stream);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "content-length"), None, "{head}");
    assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
    assert_eq!(read_n(&mut c.stream, rest, 11), b"first-bytes", "raw bytes, not HTTP, reached the echo server");
    let data = payload(1 << 20, 3);
    let mut writer = c.stream.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_n(&mut c.stream, Vec::new(), data.len());
    w.join().unwrap();
    assert!(got == data, "1 MiB echoed byte-exact through the CONNECT tunnel");
    assert!(at_eof(&mut c.stream), "half-close: the client's FIN reaches the echo server, whose FIN comes back");
    assert_eq!(echo_origin.accepted(), 1);
    assert_eq!(p.counter("http.ingress.downstream_cx_upgrades_total"), 1);
    wait_for("the tunnel to end", || p.counter("http.ingress.downstream_cx_upgrades_active") == 0);
    assert_eq!(p.counter("http.ingress.downstream_rq_2xx"), 1);
    // Plain requests still route by path.
    let mut c = p.client();
    assert_eq!(c.get("/").text(), "plain");
}

fn connect_proxied_upstream_as_connect(backend: Backend) {
    let net = Net::new(backend);
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = std::sync::Arc::clone(&heads);
    // An upstream proxy: answers CONNECT with 200, then echoes.
    let upstream = TcpOrigin::serve(net.listen(), move |mut c| {
        let (head, rest) = read_head(&mut c);
        h.lock().unwrap().push(head);
        c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
        c.write_all(&rest).unwrap();
        echo(&mut c);
        let _ = c.shutdown(Shutdown::Write);
    });
    let endpoints = [upstream.addr];
    let clusters = [ClusterAt { name: "tunnel", endpoints: &endpoints, extra: "" }];
    let routes = CONNECT_ROUTES.replace(", connect_config: {}", "");
    let p = HttpProxy::start(&net, &routes, &clusters, "", "", 1);
    let mut c = p.client();
    c.send(b"CONNECT origin.test:8443 HTTP/1.1\r\nhost: origin.test:8443\r\n\r\n");
    let (head, rest) = read_head(&mut c.stream);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let seen = heads.lock().unwrap()[0].clone();
    assert!(seen.starts_with("CONNECT origin.test:8443 HTTP/1.1\r\n"), "forwarded as CONNECT: {seen}");
    assert_eq!(header(&seen, "host"), Some("origin.test:8443"));
    c.send(b"ping through the upstream proxy");
    assert_eq!(read_n(&mut c.stream, rest, 31), b"ping through the upstream proxy");
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert!(at_eof(&mut c.stream));
    wait_for("the tunnel to end", || p.counter("http.ingress.downstream_cx_upgrades_active") == 0);
}

fn connect_without_upgrade_config_or_route(backend: Backend) {
    let net = Net::new(backend);
    let echo_origin = TcpOrigin::echo_on(net.listen());
    let endpoints = [echo_origin.addr];
    let clusters = [ClusterAt { name: "tunnel", endpoints: &endpoints, extra: "" }];
    // A connect_matcher route but no CONNECT upgrade: Envoy's 403.
    let routes = CONNECT_ROUTES.replace(", upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }]", "");
    let p = HttpProxy::start(&net, &routes, &clusters, "", "", 1);
    let mut c = p.client();
    c.send(b"CONNECT echo.test:443 HTTP/1.1\r\nhost: echo.test:443\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 403);
    assert!(r.body.is_empty());
    assert_eq!(p.counter("http.ingress.downstream_rq_ws_on_non_ws_route"), 1);
    drop((c, p));
    // CONNECT allowed, but no route takes a CONNECT (path matchers never do): 404.
    let p =
        HttpProxy::start(&net, &forward_all("tunnel"), &clusters, "upgrade_configs:\n- upgrade_type: CONNECT\n", "", 1);
    let mut c = p.client();
    c.send(b"CONNECT echo.test:443 HTTP/1.1\r\nhost: echo.test:443\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 404);
    assert_eq!(p.counter("http.ingress.no_route"), 1);
    assert_eq!(echo_origin.accepted(), 0, "nothing reached the upstream");
}

fn idle_tunnel_ends_with_the_stream_idle_timeout(backend: Backend) {
    let net = Net::new(backend);
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = ws_origin(&net, std::sync::Arc::clone(&heads));
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "ws", endpoints: &endpoints, extra: "" }];
    let hcm = format!("{WS_HCM}stream_idle_timeout: 0.5s\n");
    let p = HttpProxy::start(&net, &forward_all("ws"), &clusters, &hcm, "", 1);
    let mut c = p.client();
    c.send(ws_request("/idle").as_bytes());
    let (head, rest) = read_head(&mut c.stream);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let _ = read_n(&mut c.stream, rest, 17);
    // Traffic keeps it alive past the timeout.
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        c.send(b"tick");
        assert_eq!(read_n(&mut c.stream, Vec::new(), 4), b"tick", "tick {i}");
    }
    let started = Instant::now();
    assert!(c.closed_within(Duration::from_secs(10)), "an idle tunnel is closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(p.counter("http.ingress.downstream_rq_idle_timeout"), 1);
    wait_for("the upgrade to end", || p.counter("http.ingress.downstream_cx_upgrades_active") == 0);
    wait_for("the upstream connection to close", || p.counter("cluster.ws.upstream_cx_active") == 0);
}

fn upgraded_stream_is_access_logged_once_it_ends(backend: Backend) {
    let net = Net::new(backend);
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = ws_origin(&net, std::sync::Arc::clone(&heads));
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "ws", endpoints: &endpoints, extra: "" }];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let hcm = format!(
        "{WS_HCM}access_log:\n- name: f\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    log_format: {{ text_format_source: {{ inline_string: \"%REQ(:PATH)% %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS%\\n\" }} }}\n",
        path.display()
    );
    let p = HttpProxy::start(&net, &forward_all("ws"), &clusters, &hcm, "", 1);
    let mut c = p.client();
    let mut first = ws_request("/logged").into_bytes();
    first.extend_from_slice(b"12345");
    c.send(&first);
    let (head, rest) = read_head(&mut c.stream);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // early-from-origin (17), the echo of 12345 (5), then bye (3) after our FIN.
    let got = read_n(&mut c.stream, rest, 22);
    assert_eq!(&got[..], b"early-from-origin12345");
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_n(&mut c.stream, Vec::new(), 3), b"bye");
    assert!(at_eof(&mut c.stream));
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(l) = text.lines().next() {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no access log line");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(line, "/logged 101 5 25 -", "one line when the tunnel ends: its relayed bytes both ways");
}

// ---- the Python `websockets` client and server (kernel datapath) ----

/// Make `import websockets` work, installing it with pip when missing.
fn ensure_websockets() {
    let works = || Command::new("python3").args(["-c", "import websockets"]).status().is_ok_and(|s| s.success());
    if works() {
        return;
    }
    eprintln!("http_upgrade: installing python websockets with pip");
    let _ = Command::new("pip3").args(["install", "-q", "--break-system-packages", "websockets"]).status();
    assert!(works(), "python3 `websockets` missing and `pip3 install websockets` failed");
}

const PY_SERVER: &str = r#"
import asyncio, sys
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

async def handler(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except ConnectionClosed:
        pass
    print("server-close", ws.close_code, ws.close_reason, flush=True)

async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().create_future()

asyncio.run(main())
"#;

const PY_CLIENT: &str = r#"
import asyncio, hashlib, os, sys
from websockets.asyncio.client import connect

async def main():
    async with connect(sys.argv[1], max_size=None, compression=None) as ws:
        await ws.send("hello through sluice")
        assert await ws.recv() == "hello through sluice"
        print("text-ok", flush=True)
        data = os.urandom(1 << 20)
        await ws.send(data)
        got = await ws.recv()
        assert isinstance(got, bytes), type(got)
        print("binary", len(got), hashlib.sha256(data).hexdigest(), hashlib.sha256(got).hexdigest(), flush=True)
        await ws.close(code=4001, reason="done")
        print("client-close", ws.close_code, ws.close_reason, flush=True)

asyncio.run(main())
"#;

/// A child process killed (by PID) and reaped on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_websockets_echo_through_sluice() {
    ensure_websockets();
    let net = Net::new(Backend::Kernel);
    let mut server = Killed(
        Command::new("python3")
            .args(["-c", PY_SERVER])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the python websockets server"),
    );
    // The server's lines, read on a thread so that every wait for one is bounded.
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = server.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line.is_err() || tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next_line = || lines.recv_timeout(Duration::from_secs(20)).expect("a line from the python server");
    let port: u16 = next_line().trim().parse().unwrap();
    let endpoints = [sluice_e2e::localhost(port)];
    let clusters = [ClusterAt { name: "ws", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, &forward_all("ws"), &clusters, WS_HCM, "", 2);
    let listen = p.proxy().target(p.listen_addr());
    let out = Command::new("python3")
        .args(["-c", PY_CLIENT, &format!("ws://{listen}/echo")])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the python websockets client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "client failed: {text}");
    assert!(text.contains("text-ok"), "{text}");
    let binary = text.lines().find(|l| l.starts_with("binary ")).unwrap_or_else(|| panic!("{text}"));
    let f: Vec<&str> = binary.split(' ').collect();
    assert_eq!(f[1], "1048576", "{binary}");
    assert_eq!(f[2], f[3], "the 1 MiB message came back byte-exact: {binary}");
    assert!(text.contains("client-close 4001 done"), "the client saw the close code echoed: {text}");
    let server_close = next_line();
    assert_eq!(server_close, "server-close 4001 done", "the server saw the client's close code");
    assert_eq!(p.counter("http.ingress.downstream_cx_upgrades_total"), 1);
    wait_for("the upgrade to end", || p.counter("http.ingress.downstream_cx_upgrades_active") == 0);
    assert_eq!(p.counter("http.ingress.downstream_rq_1xx"), 1);
}

#[test]
fn python_websockets_client_is_refused_without_upgrade_config() {
    ensure_websockets();
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "o");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let listen = p.proxy().target(p.listen_addr());
    let script = r#"
import asyncio, sys
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
async def main():
    try:
        async with connect(sys.argv[1]):
            print("connected")
    except InvalidStatus as e:
        print("refused", e.response.status_code)
asyncio.run(main())
"#;
    let out = Command::new("python3").args(["-c", script, &format!("ws://{listen}/")]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.trim(), "refused 403", "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(origin.requests(), 0, "nothing reached the origin");
}
