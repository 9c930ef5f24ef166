//! `auto_config` (Envoy's mixed pool) on both datapaths: the cluster's TLS
//! origination offers ALPN `h2,http/1.1` and each connection speaks what the origin
//! picked. The origin here is rustls over the test network's own sockets (kernel
//! loopback, or the smol peer host of the in-memory network), so the same case runs on
//! both backends (tests/http2_upstream_tls.rs runs nginx, kernel only):
//! - an origin that picks `h2`: every request is an HTTP/2 stream on one connection,
//!   and an HTTP/2 client's concurrent streams share it;
//! - an origin that picks `http/1.1`, or negotiates no ALPN at all: HTTP/1.1 on one
//!   reused connection;
//!
//! each counted once in `upstream_cx_http2_total` or `upstream_cx_http1_total`.

use std::future::Future;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::conn::{Acceptor, Conn};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::tls::{server_config, upstream_tls_yaml, Pki};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const AUTO: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        auto_config: {}
"#;

type Tls = StreamOwned<ServerConnection, Conn>;

/// A TLS origin on the test network: after the handshake it speaks HTTP/2 when ALPN
/// picked `h2`, else HTTP/1.1. Every answer is 200 with `x-proto` (the protocol it
/// spoke), `x-conn` (the connection's index) and the body `origin METHOD PATH\n`.
struct AlpnOrigin {
    acceptor: Acceptor,
    /// The ALPN protocol each handshake picked (None: no ALPN), in accept order.
    negotiated: Arc<Mutex<Vec<Option<String>>>>,
}

impl AlpnOrigin {
    fn serve(net: &Net, config: Arc<ServerConfig>) -> AlpnOrigin {
        let negotiated = Arc::new(Mutex::new(Vec::new()));
        let n = Arc::clone(&negotiated);
        let acceptor = Acceptor::start(net.listen(), move |conn, id| {
            let _ = conn.set_nodelay(true);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
            let mut tls = ServerConnection::new(Arc::clone(&config)).expect("a server connection");
            let mut conn = conn;
            while tls.is_handshaking() {
                if tls.complete_io(&mut conn).is_err() {
                    return;
                }
            }
            let alpn = tls.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
            n.lock().unwrap().push(alpn.clone());
            let stream = StreamOwned::new(tls, conn);
            if alpn.as_deref() == Some("h2") {
                serve_h2(stream, id);
            } else {
                serve_http1(stream, id);
            }
        });
        AlpnOrigin { acceptor, negotiated }
    }

    fn negotiated(&self) -> Vec<Option<String>> {
        self.negotiated.lock().unwrap().clone()
    }
}

fn answer(method: &str, path: &str) -> String {
    format!("origin {method} {path}\n")
}

/// HTTP/1.1 keep-alive: bodiless requests, one answer each.
fn serve_http1(stream: Tls, id: usize) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let body = answer(method, path);
        let out = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-proto: HTTP/1.1\r\nx-conn: {id}\r\n\r\n{body}",
            body.len()
        );
        let tls = reader.get_mut();
        if tls.write_all(out.as_bytes()).and_then(|_| tls.flush()).is_err() {
            return;
        }
    }
}

/// The TLS stream as `h2`'s transport; reads time out into `Pending` (the loop below
/// polls again).
struct Io(Tls);

impl AsyncRead for Io {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.0.read(buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.0.write(data))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// HTTP/2: every stream answered at once (request bodies are not read), until the
/// connection ends.
fn serve_h2(stream: Tls, id: usize) {
    stream.sock.set_read_timeout(Some(Duration::from_millis(2))).expect("read timeout");
    let mut cx = Context::from_waker(Waker::noop());
    let mut hs = Box::pin(h2::server::handshake(Io(stream)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut h = loop {
        match hs.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(h)) => break h,
            Poll::Ready(Err(_)) => return,
            Poll::Pending if Instant::now() > deadline => return,
            Poll::Pending => {}
        }
    };
    loop {
        match h.poll_accept(&mut cx) {
            Poll::Ready(Some(Ok((req, mut respond)))) => {
                let body = answer(req.method().as_str(), req.uri().path());
                let response = http::Response::builder()
                    .status(200)
                    .header("x-proto", "HTTP/2")
                    .header("x-conn", id.to_string())
                    .body(())
                    .expect("a response");
                if let Ok(mut send) = respond.send_response(response, false) {
                    let _ = send.send_data(Bytes::from(body), true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return,
            Poll::Pending => {}
        }
    }
}

/// A one-worker proxy with cluster `web` (`auto_config`, TLS trusting the test CA) to
/// an origin with ALPN `alpn`.
struct Setup<'n> {
    proxy: HttpProxy<'n>,
    origin: AlpnOrigin,
    _pki: Pki,
}

fn setup<'n>(net: &'n Net, alpn: &[&str]) -> Setup<'n> {
    let pki = Pki::new();
    let ca = pki.ca("origin");
    let cert = ca.server_cert(&pki, "origin", &["origin.test"]);
    let origin = AlpnOrigin::serve(net, server_config(&cert, alpn));
    let extra = format!("{AUTO}    transport_socket: {}\n", upstream_tls_yaml("origin.test", Some(&ca.pem_path), true));
    let endpoints = [origin.acceptor.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: &extra }];
    let proxy = HttpProxy::start(net, &forward_all("web"), &clusters, "", "", 1);
    Setup { proxy, origin, _pki: pki }
}

/// Three requests: each 200 from the origin over `proto`, all on one connection.
fn three_over(s: &Setup<'_>, proto: &str) {
    let mut c = s.proxy.client();
    let mut conns = Vec::new();
    for i in 0..3 {
        let r = c.get(&format!("/n{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), answer("GET", &format!("/n{i}")));
        assert_eq!(r.header("x-proto"), Some(proto));
        conns.push(r.header("x-conn").map(str::to_string));
    }
    assert!(conns.iter().all(|c| c.is_some() && *c == conns[0]), "one upstream connection: {conns:?}");
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_total"), 1);
    assert_eq!(s.proxy.counter("cluster.web.upstream_rq_2xx"), 3);
}

fn auto_config_speaks_h2_when_the_origin_picks_it(backend: Backend) {
    let net = Net::new(backend);
    let s = setup(&net, &["h2", "http/1.1"]);
    three_over(&s, "HTTP/2");
    assert_eq!(s.origin.negotiated(), vec![Some("h2".to_string())]);
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_http2_total"), 1);
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_http1_total"), 0);
}

fn auto_config_speaks_http1_when_the_origin_picks_it(backend: Backend) {
    let net = Net::new(backend);
    let s = setup(&net, &["http/1.1"]);
    three_over(&s, "HTTP/1.1");
    assert_eq!(s.origin.negotiated(), vec![Some("http/1.1".to_string())]);
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_http1_total"), 1);
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_http2_total"), 0);
}

fn auto_config_speaks_http1_without_alpn(backend: Backend) {
    let net = Net::new(backend);
    let s = setup(&net, &[]);
    three_over(&s, "HTTP/1.1");
    assert_eq!(s.origin.negotiated(), vec![None]);
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_http1_total"), 1);
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_http2_total"), 0);
}

/// Once ALPN picked h2, an HTTP/2 client's 20 concurrent streams share the one
/// upstream connection (Envoy's mixed pool raises the connection's stream limit).
fn auto_config_multiplexes_once_h2_is_negotiated(backend: Backend) {
    let net = Net::new(backend);
    let s = setup(&net, &["h2", "http/1.1"]);
    let conn = net.connect(s.proxy.proxy().target(s.proxy.listen_addr())).expect("connect to the proxy");
    let mut c = H2Client::handshake(conn).expect("HTTP/2 handshake");
    let first = c.get("/first");
    assert_eq!((first.status, first.header("x-proto")), (200, Some("HTTP/2")));
    let pending: Vec<_> = (0..20).map(|i| c.start("GET", &format!("/s{i}"), &[], b"")).collect();
    for (i, pend) in pending.into_iter().enumerate() {
        let r = c.finish(pend).expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), answer("GET", &format!("/s{i}")));
        assert_eq!(r.header("x-conn"), first.header("x-conn"), "stream {i} on the negotiated connection");
    }
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_total"), 1);
    assert_eq!(s.proxy.counter("cluster.web.upstream_cx_http2_total"), 1);
    assert_eq!(s.origin.acceptor.accepted(), 1);
}

on_both_backends!(
    auto_config_speaks_h2_when_the_origin_picks_it,
    auto_config_speaks_http1_when_the_origin_picks_it,
    auto_config_speaks_http1_without_alpn,
    auto_config_multiplexes_once_h2_is_negotiated,
);
