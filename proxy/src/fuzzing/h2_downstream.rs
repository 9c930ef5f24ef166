//! The `h2_downstream` target: any bytes from a client, fed in fuzzer-chosen splits
//! into a downstream connection of a whole worker (listener, connection manager with
//! its HTTP/2 codec, filters, router, an in-memory HTTP/1.1 origin).
//!
//! Input: `[ctl][split][client bytes...]`. `ctl` bit 0: the harness sends the client
//! preface first; bit 1: the listener is `codec_type: HTTP2` (else AUTO, where bytes
//! without the preface are HTTP/1.1); bit 2: the client does not read until the end (a
//! slow reader); bit 3: the client never sends FIN (the proxy's timeouts must end the
//! connection); bit 4: 100 ms pass between pieces. `split` picks the piece sizes
//! ([`Splits`]). Routes: `/direct` is a direct response, everything else goes to the
//! origin, which answers each request head with a small `connection: close` response.
//!
//! Properties: no panic; the connection's buffers stay under [`memory_bound`]; after
//! the client's last byte (and FIN, unless bit 3), within 30 s of virtual time, the
//! proxy has closed the connection and holds no connection at all; the worker still
//! serves: a new HTTP/1.1 request to `/direct` gets its 200.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::wire::{self, Block, PREFACE};
use super::{listener, ConnId, Harness, PipeNet, Splits};
use crate::listener::manager::Snapshot;

/// `per_connection_buffer_limit_bytes` of the listeners.
pub const BUFFER_LIMIT: usize = 32 * 1024;
/// `max_concurrent_streams`.
pub const MAX_STREAMS: usize = 16;
/// `max_request_headers_kb`.
pub const MAX_HEADERS_KB: usize = 16;

/// The listeners' HttpConnectionManager, `{codec}` AUTO or HTTP2.
const HCM: &str = r#"
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: fuzz
          codec_type: {codec}
          max_request_headers_kb: 16
          request_headers_timeout: 5s
          stream_idle_timeout: 10s
          common_http_protocol_options: { idle_timeout: 10s }
          http2_protocol_options:
            max_concurrent_streams: 16
            initial_stream_window_size: 65535
            initial_connection_window_size: 131072
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/direct" }
                direct_response: { status: 200, body: { inline_string: "direct" } }
              - match: { prefix: "/" }
                route: { cluster: origin, timeout: 5s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
"#;

const CONFIG: &str = r#"
static_resources:
  listeners:
  - name: auto
    address: { socket_address: { address: 10.98.0.1, port_value: 80 } }
    per_connection_buffer_limit_bytes: 32768
    filter_chains:
    - filters:{auto}
  - name: h2only
    address: { socket_address: { address: 10.98.0.1, port_value: 81 } }
    per_connection_buffer_limit_bytes: 32768
    filter_chains:
    - filters:{h2only}
  clusters:
  - name: origin
    connect_timeout: 1s
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.98.0.9, port_value: 80 } } }
"#;

fn compiled() -> &'static Arc<Snapshot> {
    static SNAPSHOT: OnceLock<Arc<Snapshot>> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let yaml = CONFIG
            .replace("{auto}", &HCM.replace("{codec}", "AUTO"))
            .replace("{h2only}", &HCM.replace("{codec}", "HTTP2"));
        super::snapshot(&yaml)
    })
}

#[cfg(test)]
pub(super) fn compiled_for_tests() -> Arc<Snapshot> {
    Arc::clone(compiled())
}

/// The most buffer one downstream connection may hold, from the limits it runs
/// under: the socket's input (one 64 KiB read over what it holds) and output (the
/// buffer limit, at least 64 KiB, plus what one write adds), `h2`'s input and output
/// (the same), and per stream its request body (buffer limit plus one DATA frame) and
/// response queue (buffer limit plus one 256 KiB hand-off at most); every vector may
/// have up to twice the capacity it needs (growth by doubling).
pub fn memory_bound() -> usize {
    let read = 64 * 1024;
    let out = BUFFER_LIMIT.max(64 * 1024);
    let socket = (read + BUFFER_LIMIT) + (out + read);
    let codec = (2 * read) + (out + 16 * 1024);
    let stream = (BUFFER_LIMIT + 16 * 1024) + (BUFFER_LIMIT + 256 * 1024);
    2 * (socket + codec + MAX_STREAMS * stream)
}

/// The origin: answers each request head on each connection once, then closes.
#[derive(Default)]
struct Origin {
    conns: Vec<(ConnId, Vec<u8>, bool)>,
}

impl Origin {
    fn serve(&mut self, net: &PipeNet) {
        while let Some((c, _)) = net.take_upstream() {
            self.conns.push((c, Vec::new(), false));
        }
        for (c, seen, answered) in &mut self.conns {
            net.read(*c, seen, usize::MAX);
            if !*answered && seen.windows(4).any(|w| w == b"\r\n\r\n") {
                net.write(*c, b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\norigin");
                net.shutdown(*c);
                *answered = true;
            }
            if *answered {
                seen.clear();
            }
        }
    }
}

/// Run one input (see the module docs); panics when a property does not hold.
pub fn run(data: &[u8]) {
    let [ctl, split, client @ ..] = data else { return };
    let mut h = Harness::new(compiled());
    let mut origin = Origin::default();
    let port = if ctl & 2 != 0 { 81 } else { 80 };
    let c = h.net.connect(listener(port)).expect("the listener accepts");
    let mut bytes = Vec::with_capacity(client.len() + PREFACE.len());
    if ctl & 1 != 0 {
        bytes.extend_from_slice(PREFACE);
    }
    bytes.extend_from_slice(client);
    let reads = ctl & 4 == 0;
    let bound = memory_bound();
    let mut splits = Splits::new(*split);
    let mut got = Vec::new();
    let mut pos = 0;
    let mut stalled = 0;
    while pos < bytes.len() && stalled < 4 {
        let n = splits.next_len().min(bytes.len() - pos);
        let w = h.net.write(c, &bytes[pos..pos + n]);
        pos += w;
        stalled = if w == 0 { stalled + 1 } else { 0 };
        h.run(&mut |net| origin.serve(net));
        if reads {
            h.net.read(c, &mut got, usize::MAX);
        }
        check_memory(&h, bound);
        if ctl & 16 != 0 {
            h.advance(Duration::from_millis(100));
        }
        if h.net.worker_done(c) {
            break;
        }
    }
    if ctl & 8 == 0 {
        h.net.shutdown(c);
    }
    for _ in 0..60 {
        h.run(&mut |net| origin.serve(net));
        h.net.read(c, &mut got, usize::MAX);
        check_memory(&h, bound);
        if h.net.worker_done(c) && h.connections().0 == 0 {
            break;
        }
        h.advance(Duration::from_millis(500));
    }
    assert!(h.net.worker_done(c), "the proxy neither closed the connection nor timed it out");
    assert_eq!(h.connections().0, 0, "a connection outlived its client");
    h.still_serves(&mut |net| origin.serve(net));
}

fn check_memory(h: &Harness, bound: usize) {
    let (_, held) = h.connections();
    assert!(held <= bound, "a connection holds {held} bytes of buffer, over the bound of {bound}");
}

/// Seed inputs: `(name, bytes)`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let get = Block::request(false, b"/direct");
    let up = Block::request(false, b"/up");
    let post = Block::request(true, b"/up").literal(b"content-length", b"5");
    let empty = wire::settings(&[]);
    let seed = |ctl: u8, split: u8, parts: &[Vec<u8>]| {
        let mut v = vec![ctl, split];
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    };
    vec![
        ("get_direct", seed(1, 3, &[empty.clone(), wire::headers(1, &get, true)])),
        (
            "get_with_preface",
            seed(0, 0, &[PREFACE.to_vec(), empty.clone(), wire::headers(1, &up, true), wire::headers(3, &get, true)]),
        ),
        ("continuation", seed(1, 1, &[empty.clone(), wire::headers_continued(1, &up, true, 4, 5)])),
        (
            "settings_window_ping",
            seed(
                1,
                2,
                &[
                    wire::settings(&[(1, 4096), (3, 100), (4, 65535)]),
                    wire::window_update(0, 1 << 20),
                    wire::frame(wire::PING, 0, 0, b"12345678"),
                    wire::frame(wire::SETTINGS, wire::ACK, 0, b""),
                    wire::headers(1, &post, false),
                    wire::window_update(1, 4096),
                    wire::data(1, b"hello", true),
                    wire::frame(wire::PING, 0, 0, b"abcdefgh"),
                ],
            ),
        ),
        (
            "reset_and_goaway",
            seed(
                1,
                7,
                &[
                    empty.clone(),
                    wire::headers(1, &up, false),
                    wire::rst_stream(1, 8),
                    wire::frame(wire::PRIORITY, 0, 3, &[0, 0, 0, 1, 16]),
                    wire::headers(5, &get, true),
                    wire::goaway(0, 0),
                ],
            ),
        ),
        (
            "http1_on_auto",
            seed(4, 5, &[b"GET /direct HTTP/1.1\r\nhost: x\r\n\r\nGET /up HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()]),
        ),
        (
            "h2only_slow_reader",
            seed(1 | 2 | 4 | 8, 11, &[empty, wire::headers(1, &get, true), wire::headers(3, &up, true)]),
        ),
    ]
}
