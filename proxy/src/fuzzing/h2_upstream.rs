//! The `h2_upstream_response` target: any bytes from an origin, fed in fuzzer-chosen
//! splits to the worker's upstream HTTP/2 client (`upstream/h2_client.rs`, through the
//! pool and the router) while it carries one to four streams, one per HTTP/1.1
//! client.
//!
//! Input: `[ctl][split][origin bytes...]`. `ctl` bits 0-1: streams (1 to 4); bit 2: the
//! requests are POSTs with a body; bit 3: the origin sends FIN after its bytes (else it
//! stays silent and the route's timeout must end what is left); bit 4: 100 ms pass
//! between pieces; bit 5: the harness sends the server's SETTINGS first. The stream IDs
//! the client uses are 1, 3, 5, 7 in the order the clients connected. Further
//! connections the pool opens (after a GOAWAY or a reset) are refused.
//!
//! Properties: no panic; every stream ends with a response or a reset: each client
//! gets a status line (the origin's, or the proxy's local reply) within 30 s of
//! virtual time; the worker still serves: a new request to `/direct` gets its 200.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::wire::{self, Block};
use super::{listener, ConnId, Harness, PipeNet, Splits};
use crate::listener::manager::Snapshot;

const CONFIG: &str = r#"
static_resources:
  listeners:
  - name: http1
    address: { socket_address: { address: 10.98.0.1, port_value: 80 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: fuzz
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
  clusters:
  - name: origin
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: { initial_stream_window_size: 65535 }
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.98.0.9, port_value: 80 } } }
"#;

fn compiled() -> &'static Arc<Snapshot> {
    static SNAPSHOT: OnceLock<Arc<Snapshot>> = OnceLock::new();
    SNAPSHOT.get_or_init(|| super::snapshot(CONFIG))
}

/// The origin's side: the first connection gets the fuzz bytes, later ones are reset.
#[derive(Default)]
struct Origin {
    first: Option<ConnId>,
    sink: Vec<u8>,
}

impl Origin {
    fn serve(&mut self, net: &PipeNet) {
        while let Some((c, _)) = net.take_upstream() {
            if self.first.is_none() {
                self.first = Some(c);
            } else {
                net.reset(c);
            }
        }
        if let Some(c) = self.first {
            // What the proxy sends (preface, SETTINGS, requests) is read and dropped.
            net.read(c, &mut self.sink, usize::MAX);
            self.sink.clear();
        }
    }
}

/// Run one input (see the module docs); panics when a property does not hold.
pub fn run(data: &[u8]) {
    let [ctl, split, from_origin @ ..] = data else { return };
    let mut h = Harness::new(compiled());
    let mut origin = Origin::default();
    let streams = 1 + usize::from(ctl & 3);
    let mut clients = Vec::with_capacity(streams);
    for i in 0..streams {
        let c = h.net.connect(listener(80)).expect("the listener accepts");
        let request = if ctl & 4 != 0 {
            format!("POST /up/{i} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        } else {
            format!("GET /up/{i} HTTP/1.1\r\nhost: x\r\n\r\n")
        };
        h.net.write(c, request.as_bytes());
        // One client at a time, so that the stream IDs follow the clients' order.
        h.run(&mut |net| origin.serve(net));
        clients.push((c, Vec::new()));
    }
    let mut bytes = Vec::with_capacity(from_origin.len() + 9);
    if ctl & 32 != 0 {
        bytes.extend(wire::settings(&[]));
    }
    bytes.extend_from_slice(from_origin);
    let mut splits = Splits::new(*split);
    let mut pos = 0;
    let mut stalled = 0;
    while pos < bytes.len() && stalled < 4 {
        let Some(up) = origin.first else { break };
        let n = splits.next_len().min(bytes.len() - pos);
        let w = h.net.write(up, &bytes[pos..pos + n]);
        pos += w;
        stalled = if w == 0 { stalled + 1 } else { 0 };
        h.run(&mut |net| origin.serve(net));
        for (c, got) in &mut clients {
            h.net.read(*c, got, usize::MAX);
        }
        if ctl & 16 != 0 {
            h.advance(Duration::from_millis(100));
        }
    }
    if ctl & 8 != 0 {
        if let Some(up) = origin.first {
            h.net.shutdown(up);
        }
    }
    for _ in 0..60 {
        h.run(&mut |net| origin.serve(net));
        for (c, got) in &mut clients {
            h.net.read(*c, got, usize::MAX);
        }
        if clients.iter().all(|(_, got)| wire::http1_status(got).is_some()) {
            break;
        }
        h.advance(Duration::from_millis(500));
    }
    for (i, (c, got)) in clients.iter().enumerate() {
        let status = wire::http1_status(got);
        assert!(
            status.is_some() || h.net.worker_reset(*c),
            "stream {i} ended with neither a response nor a reset: {:?}",
            String::from_utf8_lossy(got)
        );
    }
    h.still_serves(&mut |net| origin.serve(net));
}

/// Seed inputs: `(name, bytes)`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ok = Block::response(b"200").literal(b"content-type", b"text/plain");
    let seed = |ctl: u8, split: u8, parts: &[Vec<u8>]| {
        let mut v = vec![ctl, split];
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    };
    let settings = wire::settings(&[]);
    let ack = wire::frame(wire::SETTINGS, wire::ACK, 0, b"");
    vec![
        (
            "one_response",
            seed(0, 3, &[settings.clone(), ack.clone(), wire::headers(1, &ok, false), wire::data(1, b"hello", true)]),
        ),
        (
            "two_streams_trailers",
            seed(
                1 | 8,
                1,
                &[
                    settings.clone(),
                    ack.clone(),
                    wire::headers(3, &ok, false),
                    wire::headers(1, &Block::response(b"404"), true),
                    wire::data(3, b"part", false),
                    wire::headers(3, &Block::default().literal(b"grpc-status", b"0"), true),
                ],
            ),
        ),
        (
            "continuation_response",
            seed(
                32 | 4,
                2,
                &[
                    ack.clone(),
                    wire::headers_continued(1, &ok.clone().literal(b"x-long", b"0123456789"), false, 3, 6),
                    wire::data(1, b"", true),
                ],
            ),
        ),
        (
            "reset_and_goaway",
            seed(
                3,
                0,
                &[
                    settings.clone(),
                    wire::rst_stream(1, 7),
                    wire::headers(3, &ok, true),
                    wire::goaway(3, 0),
                    wire::data(5, b"late", true),
                ],
            ),
        ),
        (
            "settings_ping_window",
            seed(
                2 | 16,
                5,
                &[
                    wire::settings(&[(3, 1), (4, 1 << 20), (5, 16384)]),
                    wire::frame(wire::PING, 0, 0, b"12345678"),
                    wire::window_update(0, 65535),
                    ack,
                    wire::headers(1, &Block::response(b"100"), false),
                    wire::headers(1, &ok, false),
                    wire::data(1, b"body", true),
                    wire::headers(3, &ok, true),
                ],
            ),
        ),
        ("silent_origin", seed(1, 4, &[settings])),
    ]
}
