//! Watermark flow control on the HTTP path, end to end on both datapaths: a client
//! that does not read a large response from a fast origin makes the proxy stop reading
//! the origin once its buffers reach `per_connection_buffer_limit_bytes` (Envoy's high
//! watermark), so what it holds is bounded by the limits, not by the response size; the
//! body still arrives byte-exact once the client reads.
//!
//! What the proxy holds is measured exactly from its own stats: bytes read from the
//! upstream (`cluster.web.upstream_cx_rx_bytes_total`) minus bytes written downstream
//! (`http.ingress.downstream_cx_tx_bytes_total`), plus the response head's size.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, http_at, ClusterAt};
use sluice_e2e::on_both_backends;
use sluice_e2e::origin::TcpOrigin;

/// The listener's and the cluster's `per_connection_buffer_limit_bytes`.
const LIMIT: usize = 64 * 1024;
/// The response body: far above anything the limits allow to be held.
const BODY: usize = 16 << 20;
/// The proxy's floor for an upstream input buffer (a whole response head must fit).
const MIN_UPSTREAM_INPUT: usize = 96 * 1024;

fn body_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// An origin answering any request with a `BODY`-byte response, as fast as it can.
fn big_origin(net: &Net) -> TcpOrigin {
    TcpOrigin::serve(net.listen(), |mut c| {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n");
        if c.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < BODY {
            let n = chunk.len().min(BODY - sent);
            for (j, b) in chunk[..n].iter_mut().enumerate() {
                *b = body_byte(sent + j);
            }
            if c.write_all(&chunk[..n]).is_err() {
                return;
            }
            sent += n;
        }
        let _ = c.flush();
    })
}

fn slow_reader_is_bounded_by_buffer_limits(backend: Backend) {
    let net = Net::new(backend);
    let origin = big_origin(&net);
    let listen = net.proxy_listen_addr();
    let endpoints = [origin.addr];
    let cluster_extra = format!("    per_connection_buffer_limit_bytes: {LIMIT}\n");
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: &cluster_extra }];
    let yaml = http_at(listen, &forward_all("web"), &clusters, "", "");
    let yaml = yaml.replacen(
        "  - name: http\n",
        &format!("  - name: http\n    per_connection_buffer_limit_bytes: {LIMIT}\n"),
        1,
    );
    assert!(yaml.contains("    per_connection_buffer_limit_bytes: 65536\n    address"), "{yaml}");
    let proxy = net.start_proxy(&yaml, 1);
    let stat = |name: &str| proxy.stats().get(name).unwrap_or_else(|| panic!("no stat named {name}"));

    let mut client = net.connect(proxy.target(listen)).expect("connect to the proxy");
    client.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();

    // The client reads nothing: wait until the proxy stops reading the origin (its
    // upstream byte count holds still), bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = -1;
    let mut still_since = Instant::now();
    loop {
        let rx = stat("cluster.web.upstream_cx_rx_bytes_total");
        if rx != last {
            last = rx;
            still_since = Instant::now();
        } else if rx > 0 && still_since.elapsed() >= Duration::from_millis(500) {
            break;
        }
        assert!(Instant::now() < deadline, "the proxy kept reading the origin: {rx} bytes");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rx = stat("cluster.web.upstream_cx_rx_bytes_total");
    let tx = stat("http.ingress.downstream_cx_tx_bytes_total");
    let held = rx + 512 - tx; // the response head leaves as a few hundred bytes
    let bound = (2 * LIMIT + 2 * MIN_UPSTREAM_INPUT) as i64;
    assert!(held <= bound, "the proxy holds {held} bytes (read {rx}, written {tx}); bound {bound}");
    assert!((rx as usize) < BODY / 2, "the origin was read well before the client read: {rx}");
    assert!(stat("cluster.web.upstream_flow_control_paused_reading_total") >= 1);

    // Now the client reads: the body arrives whole and byte-exact.
    client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::with_capacity(BODY + 1024);
    let mut buf = vec![0u8; 256 * 1024];
    let body_start = loop {
        let n = client.read(&mut buf).expect("read the response");
        assert!(n > 0, "EOF before the response head");
        got.extend_from_slice(&buf[..n]);
        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&got[..body_start]));
    while got.len() - body_start < BODY {
        let n = client.read(&mut buf).expect("read the body");
        assert!(n > 0, "EOF after {} body bytes", got.len() - body_start);
        got.extend_from_slice(&buf[..n]);
    }
    let body = &got[body_start..];
    assert_eq!(body.len(), BODY);
    let first_bad = body.iter().enumerate().position(|(i, b)| *b != body_byte(i));
    assert_eq!(first_bad, None, "the body differs from the origin's");
    assert!(stat("cluster.web.upstream_flow_control_resumed_reading_total") >= 1);
    drop(client);
    drop(proxy);
    drop(origin);
}

/// The upload body: far above the listener's buffer limit, and above what the kernel's
/// socket buffers between the proxy and the origin absorb on loopback (several MiB).
const UPLOAD: usize = 32 << 20;

/// An origin that reads a request head, waits until `go` is set (at most 30 s), then reads the
/// `UPLOAD`-byte body and answers with the number of body bytes it got.
fn held_origin(net: &Net, go: std::sync::Arc<std::sync::atomic::AtomicBool>) -> TcpOrigin {
    use std::sync::atomic::Ordering;
    TcpOrigin::serve(net.listen(), move |mut c| {
        let mut got = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let body_start = loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        // Bounded: a failed test must not leave this thread waiting for ever.
        let give_up = Instant::now() + Duration::from_secs(30);
        while !go.load(Ordering::Acquire) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut body = got.len() - body_start;
        while body < UPLOAD {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => body += n,
            }
        }
        let text = body.to_string();
        let _ = c.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}", text.len()).as_bytes());
    })
}

/// An upload to an origin that does not read: the proxy stops reading the client at
/// the listener's buffer limit (`downstream_flow_control_paused_reading_total`, Envoy's
/// HCM stat), holds a bounded amount, and resumes (`..._resumed_reading_total`) once
/// the origin reads; the origin gets every byte.
fn slow_origin_pauses_the_upload(backend: Backend) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let net = Net::new(backend);
    let go = Arc::new(AtomicBool::new(false));
    let origin = held_origin(&net, Arc::clone(&go));
    let listen = net.proxy_listen_addr();
    let endpoints = [origin.addr];
    let cluster_extra = format!("    per_connection_buffer_limit_bytes: {LIMIT}\n");
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: &cluster_extra }];
    let yaml = http_at(listen, &forward_all("web"), &clusters, "", "");
    let yaml = yaml.replacen(
        "  - name: http\n",
        &format!("  - name: http\n    per_connection_buffer_limit_bytes: {LIMIT}\n"),
        1,
    );
    let proxy = net.start_proxy(&yaml, 1);
    let stat = |name: &str| proxy.stats().get(name).unwrap_or_else(|| panic!("no stat named {name}"));

    let mut client = net.connect(proxy.target(listen)).expect("connect to the proxy");
    let mut writer = client.try_clone().expect("clone the client");
    let upload = std::thread::spawn(move || {
        let head = format!("POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: {UPLOAD}\r\n\r\n");
        writer.write_all(head.as_bytes())?;
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < UPLOAD {
            let n = chunk.len().min(UPLOAD - sent);
            writer.write_all(&chunk[..n])?;
            sent += n;
        }
        Ok::<_, std::io::Error>(())
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    // The HCM's stats exist once its first connection is accepted.
    let paused = || proxy.stats().get("http.ingress.downstream_flow_control_paused_reading_total").unwrap_or(0);
    while paused() < 1 {
        assert!(Instant::now() < deadline, "the proxy never paused reading the upload");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Until the origin's socket buffer is full the proxy may drain below the low
    // watermark and resume more than once; wait for the steady state, where it has
    // stopped reading: paused one more time than resumed, and no byte read since.
    let resumed = || stat("http.ingress.downstream_flow_control_resumed_reading_total");
    let mut rx = stat("http.ingress.downstream_cx_rx_bytes_total");
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = stat("http.ingress.downstream_cx_rx_bytes_total");
        if now == rx && paused() == resumed() + 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the proxy never stopped reading the upload ({now} bytes read)");
        rx = now;
    }
    assert!((rx as usize) < UPLOAD / 2, "the proxy read {rx} bytes of an upload nobody consumed");
    let resumed_while_held = resumed();

    go.store(true, Ordering::Release);
    client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !(got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(UPLOAD.to_string().as_bytes())) {
        let n = client.read(&mut buf).expect("read the response");
        assert!(n > 0, "EOF before the response: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&got));
    upload.join().unwrap().expect("the upload was written whole");
    assert!(resumed() > resumed_while_held, "the proxy never resumed reading once the origin read");
    drop(client);
    drop(proxy);
    drop(origin);
}

on_both_backends!(slow_reader_is_bounded_by_buffer_limits, slow_origin_pauses_the_upload);
// Not over HTTP/2: both cases drive raw HTTP/1.1 sockets and the connection-level
// watermarks; HTTP/2's per-stream windows have their own cases in tests/http2.rs
// (slow_reader_pauses_the_upstream_and_gets_every_byte,
// reader_that_never_opens_its_window_is_reset) and tests/http2_attacks.rs
// (zero_window_readers_do_not_pin_memory).
