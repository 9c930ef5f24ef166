//! The edge's trust decisions end to end on both datapaths (kernel sockets on loopback,
//! smol stacks on the in-memory network), as Envoy's "IP address detection" docs and
//! `ConnectionManagerUtility` have them: `x-forwarded-for` with `use_remote_address` and
//! `xff_num_trusted_hops` (the documented examples), the internal/external decision and
//! `internal_address_config`, `x-envoy-internal`, `x-envoy-external-address`, the
//! `x-envoy-*` control headers a client may not set, the `xff` and `custom_header`
//! original IP detection extensions (reject included), `via`,
//! `scheme_header_transformation`, and `x-forwarded-client-cert` on an mTLS listener
//! in every `forward_client_cert_details` mode.
//!
//! The origin echoes what it received; each route adds `x-client:
//! %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`, so the trusted client address the proxy
//! settled on is visible too. A loopback client is appended to XFF as the host's own
//! address (Envoy's `LocalInfo` address), which the test asks sluice for.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{http_at, ClusterAt};
use sluice_e2e::conn::Conn;
use sluice_e2e::http_client::Protocol;
use sluice_e2e::http_origin::{HttpOrigin, Seen};
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::tls::{client_config, downstream_tls_yaml, Pki};

on_both_backends!(
    documented_xff_examples,
    trusted_hops_beyond_the_list_fall_back_to_the_peer,
    spoofed_control_headers_only_count_on_internal_requests,
    internal_address_config_decides_internal,
    xff_extension_with_trusted_cidrs,
    custom_header_extension_detects_and_rejects,
    via_on_requests_and_responses,
    edge_requests_get_a_new_request_id,
    server_header_transformation_as_envoy,
    scheme_header_transformation_overwrites,
    scheme_follows_a_trusted_x_forwarded_proto,
    xfcc_in_every_mode_on_an_mtls_listener,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1). Not over HTTP/2:
// custom_header_extension_detects_and_rejects (raw bytes), xfcc_in_every_mode_on_an_mtls_listener
// (TLS listener, not prior knowledge). scheme_follows_a_trusted_x_forwarded_proto has its
// own HTTP/2 expectations (the client's `:scheme` is kept).
sluice_e2e::over_http2!(
    documented_xff_examples,
    trusted_hops_beyond_the_list_fall_back_to_the_peer,
    spoofed_control_headers_only_count_on_internal_requests,
    internal_address_config_decides_internal,
    xff_extension_with_trusted_cidrs,
    via_on_requests_and_responses,
    edge_requests_get_a_new_request_id,
    server_header_transformation_as_envoy,
    scheme_header_transformation_overwrites,
    scheme_follows_a_trusted_x_forwarded_proto,
);

/// One virtual host to cluster `web` that adds the trusted client address as `x-client`.
const ROUTES: &str = "- name: m\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n    request_headers_to_add:\n    - header: { key: x-client, value: \"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\" }\n";

struct Edge<'n> {
    proxy: HttpProxy<'n>,
    origin: HttpOrigin,
}

impl Edge<'_> {
    /// Send GET / with `headers`; returns the response status and what the origin saw
    /// (None when nothing reached it).
    fn send(&self, headers: &[(&str, &str)]) -> (u16, Option<Seen>) {
        let before = self.origin.requests();
        let r = self.proxy.client().request("GET", "/", headers, b"");
        let seen = (self.origin.requests() > before).then(|| self.origin.seen().pop().unwrap());
        (r.status, seen)
    }

    fn seen(&self, headers: &[(&str, &str)]) -> Seen {
        let (status, seen) = self.send(headers);
        assert_eq!(status, 200);
        seen.expect("the request reached the origin")
    }
}

fn edge<'n>(net: &'n Net, hcm_extra: &str) -> Edge<'n> {
    let origin = HttpOrigin::serve(net.listen(), "origin");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let proxy = HttpProxy::start(net, ROUTES, &clusters, hcm_extra, "", 1);
    Edge { proxy, origin }
}

/// The address sluice appends to XFF for this backend's clients.
fn appended(net: &Net) -> String {
    let ip = net.client_ip();
    if ip.is_loopback() {
        sluice::http::conn_manager::headers::local_address().to_string()
    } else {
        ip.to_string()
    }
}

/// `internal_address_config` holding just `cidr`.
fn internal(cidr: &str) -> String {
    let (prefix, len) = cidr.split_once('/').unwrap();
    format!("internal_address_config: {{ cidr_ranges: [{{ address_prefix: {prefix}, prefix_len: {len} }}] }}\n")
}

/// The client's own network as an internal range.
fn client_net(net: &Net) -> String {
    match net.client_ip() {
        IpAddr::V4(ip) if ip.is_loopback() => "127.0.0.0/8".to_string(),
        ip => format!("{ip}/32"),
    }
}

const XFF3: &str = "203.0.113.128, 203.0.113.10, 203.0.113.1";

fn documented_xff_examples(backend: Backend) {
    let net = Net::new(backend);
    let client = net.client_ip().to_string();
    let plus_client = format!("{XFF3},{}", appended(&net));

    // Example 1: edge proxy, no trusted proxy in front.
    let e = edge(&net, "use_remote_address: true\n");
    let s = e.seen(&[("x-forwarded-for", XFF3), ("x-envoy-internal", "true")]);
    assert_eq!(s.header("x-client"), Some(client.as_str()), "XFF is ignored");
    assert_eq!(s.header("x-envoy-external-address"), Some(client.as_str()));
    assert_eq!(s.header("x-forwarded-for"), Some(plus_client.as_str()));
    assert_eq!(s.header("x-envoy-internal"), None);

    // Example 2: internal proxy behind the edge of example 1.
    let e = edge(&net, "use_remote_address: false\n");
    let xff = "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5";
    let s =
        e.seen(&[("x-forwarded-for", xff), ("x-envoy-external-address", "192.0.2.5"), ("x-envoy-internal", "true")]);
    assert_eq!(s.header("x-client"), Some("192.0.2.5"), "the last address in XFF");
    assert_eq!(s.header("x-envoy-external-address"), Some("192.0.2.5"), "not modified");
    assert_eq!(s.header("x-forwarded-for"), Some(xff), "not appended");
    assert_eq!(s.header("x-envoy-internal"), None);

    // Example 3: edge proxy with two trusted proxies in front.
    let e = edge(&net, "use_remote_address: true\nxff_num_trusted_hops: 2\n");
    let s = e.seen(&[("x-forwarded-for", XFF3)]);
    assert_eq!(s.header("x-client"), Some("203.0.113.10"), "2nd to last address in XFF");
    assert_eq!(s.header("x-envoy-external-address"), Some("203.0.113.10"));
    assert_eq!(s.header("x-forwarded-for"), Some(plus_client.as_str()));

    // Example 4: internal proxy behind the edge of example 3.
    let e = edge(&net, "xff_num_trusted_hops: 2\n");
    let s = e.seen(&[("x-forwarded-for", xff)]);
    assert_eq!(s.header("x-client"), Some("203.0.113.10"));
    assert_eq!(s.header("x-envoy-external-address"), None, "not set off the edge");
    assert_eq!(s.header("x-forwarded-for"), Some(xff));

    // Examples 5 and 6 (with 10.20.30.0/24 internal): no XFF is external, a single
    // internal address in XFF is internal.
    let e = edge(&net, &internal("10.20.30.0/24"));
    let s = e.seen(&[]);
    assert_eq!(s.header("x-envoy-internal"), None);
    assert_eq!(s.header("x-client"), Some(client.as_str()));
    let s = e.seen(&[("x-forwarded-for", "10.20.30.40")]);
    assert_eq!(s.header("x-envoy-internal"), Some("true"));
    assert_eq!(s.header("x-client"), Some("10.20.30.40"));
    assert_eq!(s.header("x-envoy-external-address"), None);
}

fn trusted_hops_beyond_the_list_fall_back_to_the_peer(backend: Backend) {
    let net = Net::new(backend);
    let client = net.client_ip().to_string();
    // use_remote_address with N=3 and two addresses: the peer.
    let e = edge(&net, "use_remote_address: true\nxff_num_trusted_hops: 3\n");
    let s = e.seen(&[("x-forwarded-for", "203.0.113.1, 203.0.113.2")]);
    assert_eq!(s.header("x-envoy-external-address"), Some(client.as_str()));
    // Without it, N=2 needs three addresses: the peer again.
    let e = edge(&net, "xff_num_trusted_hops: 2\n");
    let s = e.seen(&[("x-forwarded-for", "203.0.113.1, 203.0.113.2")]);
    assert_eq!(s.header("x-client"), Some(client.as_str()));
    // skip_xff_append leaves XFF as the client sent it.
    let e = edge(&net, "use_remote_address: true\nskip_xff_append: true\n");
    assert_eq!(e.seen(&[("x-forwarded-for", "203.0.113.1")]).header("x-forwarded-for"), Some("203.0.113.1"));
    assert_eq!(e.seen(&[]).header("x-forwarded-for"), None);
}

fn spoofed_control_headers_only_count_on_internal_requests(backend: Backend) {
    let net = Net::new(backend);
    // The client's own network is internal: without XFF the request is internal, with
    // a client-sent XFF it is external (the reported bug: it was taken as internal).
    let e = edge(&net, &format!("use_remote_address: true\n{}", internal(&client_net(&net))));
    let spoof = [
        ("x-envoy-upstream-rq-timeout-ms", "1"),
        ("x-envoy-external-address", "6.6.6.6"),
        ("x-envoy-internal", "true"),
        ("x-envoy-max-retries", "7"),
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-force-trace", "true"),
        ("x-envoy-decorator-operation", "op"),
        ("x-envoy-downstream-service-cluster", "c"),
    ];
    let mut external: Vec<(&str, &str)> = spoof.to_vec();
    external.push(("x-forwarded-for", "10.0.0.1"));
    // The origin answers after 300 ms: a 1 ms timeout taken from the client would be a 504.
    let before = e.origin.requests();
    let r = e.proxy.client().request("GET", "/delay/300/x", &external, b"");
    assert_eq!(r.status, 200, "the client's x-envoy-upstream-rq-timeout-ms was obeyed");
    assert_eq!(e.origin.requests(), before + 1);
    let seen = e.origin.seen().pop();
    let s = seen.unwrap();
    for (name, _) in &spoof {
        let want = (*name == "x-envoy-external-address").then(|| net.client_ip().to_string());
        assert_eq!(s.header(name).map(str::to_string), want, "{name} on an external request");
    }
    // Internal: the control headers stay (and count), x-envoy-internal is Envoy's own.
    let s = e.seen(&spoof[1..]);
    assert_eq!(s.header("x-envoy-internal"), Some("true"));
    assert_eq!(s.header("x-envoy-external-address"), Some("6.6.6.6"), "not set or overwritten when internal");
    assert_eq!(s.header("x-envoy-force-trace"), Some("true"));
    assert_eq!(s.header("x-envoy-decorator-operation"), Some("op"));
    assert_eq!(s.header("x-envoy-downstream-service-cluster"), Some("c"));
    // ...and a client timeout header is obeyed: the origin delays, the proxy gives up.
    let r = e.proxy.client().request("GET", "/delay/3000/x", &[("x-envoy-upstream-rq-timeout-ms", "100")], b"");
    assert_eq!(r.status, 504, "an internal request's x-envoy-upstream-rq-timeout-ms counts");
}

fn internal_address_config_decides_internal(backend: Backend) {
    let net = Net::new(backend);
    // Unset: nothing is internal, not even loopback or RFC 1918 (Envoy 1.36+).
    let e = edge(&net, "use_remote_address: true\n");
    assert_eq!(e.seen(&[]).header("x-envoy-internal"), None);
    let e = edge(&net, "");
    assert_eq!(e.seen(&[("x-forwarded-for", "10.1.2.3")]).header("x-envoy-internal"), None);
    // A range that holds the address makes it internal; one that does not, not.
    let e = edge(&net, &format!("use_remote_address: true\n{}", internal(&client_net(&net))));
    assert_eq!(e.seen(&[]).header("x-envoy-internal"), Some("true"));
    let e = edge(&net, &internal("10.1.0.0/16"));
    assert_eq!(e.seen(&[("x-forwarded-for", "10.1.2.3")]).header("x-envoy-internal"), Some("true"));
    assert_eq!(e.seen(&[("x-forwarded-for", "10.2.2.3")]).header("x-envoy-internal"), None);
    // Two addresses are never internal.
    assert_eq!(e.seen(&[("x-forwarded-for", "10.1.2.3, 10.1.2.4")]).header("x-envoy-internal"), None);
}

const XFF_EXT: &str = "type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig";
const HEADER_EXT: &str =
    "type.googleapis.com/envoy.extensions.http.original_ip_detection.custom_header.v3.CustomHeaderConfig";

fn xff_extension_with_trusted_cidrs(backend: Backend) {
    let net = Net::new(backend);
    // The client is the trusted CDN (Envoy's examples 7 and 8).
    let cfg = format!(
        "original_ip_detection_extensions:\n- name: xff\n  typed_config:\n    \"@type\": {XFF_EXT}\n    xff_trusted_cidrs: {{ cidrs: [{{ address_prefix: {}, prefix_len: {} }}, {{ address_prefix: 198.51.100.0, prefix_len: 24 }}] }}\n    skip_xff_append: false\n",
        net.client_ip(),
        32
    );
    let e = edge(&net, &cfg);
    let s = e.seen(&[("x-forwarded-for", "203.0.113.128, 203.0.113.10, 198.51.100.1")]);
    assert_eq!(s.header("x-client"), Some("203.0.113.10"), "the last address not trusted");
    let want = format!("203.0.113.128, 203.0.113.10, 198.51.100.1,{}", appended(&net));
    assert_eq!(s.header("x-forwarded-for"), Some(want.as_str()), "skip_xff_append: false appends the peer");
    // A client outside the trusted CIDRs: its XFF is not believed.
    let cfg = format!(
        "original_ip_detection_extensions:\n- name: xff\n  typed_config:\n    \"@type\": {XFF_EXT}\n    xff_trusted_cidrs: {{ cidrs: [{{ address_prefix: 198.51.100.0, prefix_len: 24 }}] }}\n"
    );
    let e = edge(&net, &cfg);
    let s = e.seen(&[("x-forwarded-for", "203.0.113.10")]);
    assert_eq!(s.header("x-client"), Some(net.client_ip().to_string().as_str()));
    // The xff extension with hops, default skip_xff_append (true): not appended.
    let cfg = format!(
        "original_ip_detection_extensions:\n- name: xff\n  typed_config: {{ \"@type\": {XFF_EXT}, xff_num_trusted_hops: 1 }}\n"
    );
    let e = edge(&net, &cfg);
    let s = e.seen(&[("x-forwarded-for", "203.0.113.7, 203.0.113.8")]);
    assert_eq!(s.header("x-client"), Some("203.0.113.7"));
    assert_eq!(s.header("x-forwarded-for"), Some("203.0.113.7, 203.0.113.8"));
}

fn custom_header_extension_detects_and_rejects(backend: Backend) {
    let net = Net::new(backend);
    let cfg = format!(
        "original_ip_detection_extensions:\n- name: h\n  typed_config:\n    \"@type\": {HEADER_EXT}\n    header_name: x-real-ip\n    allow_extension_to_set_address_as_trusted: true\n    reject_with_status: {{ code: 401 }}\n{}",
        internal("10.9.0.0/16")
    );
    let e = edge(&net, &cfg);
    let s = e.seen(&[("x-real-ip", "10.9.8.7"), ("x-envoy-force-trace", "true")]);
    assert_eq!(s.header("x-client"), Some("10.9.8.7"));
    assert_eq!(s.header("x-envoy-internal"), Some("true"), "trusted by the extension, inside the range");
    assert_eq!(s.header("x-envoy-force-trace"), Some("true"), "kept on an internal request");
    let s = e.seen(&[("x-real-ip", "203.0.113.5"), ("x-envoy-force-trace", "true")]);
    assert_eq!(s.header("x-client"), Some("203.0.113.5"));
    assert_eq!(s.header("x-envoy-internal"), None);
    assert_eq!(s.header("x-envoy-force-trace"), None, "removed from an external request");
    // No header, or not an address: rejected with the configured status, nothing forwarded.
    let (status, seen) = e.send(&[]);
    assert_eq!((status, seen.is_none()), (401, true));
    let (status, seen) = e.send(&[("x-real-ip", "not-an-ip")]);
    assert_eq!((status, seen.is_none()), (401, true));
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_rejected_via_ip_detection"), 2);
    // A status outside 400..=511 means 403; without reject_with_status the request goes on.
    let cfg = format!(
        "original_ip_detection_extensions:\n- name: h\n  typed_config: {{ \"@type\": {HEADER_EXT}, header_name: x-real-ip, reject_with_status: {{ code: Found }} }}\n"
    );
    assert_eq!(edge(&net, &cfg).send(&[]).0, 403);
    let cfg = format!(
        "original_ip_detection_extensions:\n- name: h\n  typed_config: {{ \"@type\": {HEADER_EXT}, header_name: x-real-ip }}\n"
    );
    let e = edge(&net, &cfg);
    let s = e.seen(&[("x-real-ip", "10.9.8.7")]);
    assert_eq!(s.header("x-envoy-internal"), None, "not trusted without allow_extension_to_set_address_as_trusted");
    assert_eq!(e.seen(&[]).header("x-client"), Some(net.client_ip().to_string().as_str()));
}

fn via_on_requests_and_responses(backend: Backend) {
    let net = Net::new(backend);
    let e = edge(&net, "via: sluice-edge\n");
    let r = e.proxy.client().request("GET", "/", &[("via", "1.1 upstream-cdn")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(e.origin.seen().pop().unwrap().header("via"), Some("1.1 upstream-cdn, sluice-edge"));
    assert_eq!(r.header("via"), Some("sluice-edge"));
    let e = edge(&net, "");
    let r = e.proxy.client().request("GET", "/", &[("via", "1.1 a")], b"");
    assert_eq!(e.origin.seen().pop().unwrap().header("via"), Some("1.1 a"), "no via configured: untouched");
    assert_eq!(r.header("via"), None);
}

fn edge_requests_get_a_new_request_id(backend: Backend) {
    let net = Net::new(backend);
    let e = edge(&net, "use_remote_address: true\n");
    let id = e.seen(&[("x-request-id", "client-chosen")]).header("x-request-id").unwrap().to_string();
    assert_ne!(id, "client-chosen", "an edge request's x-request-id is replaced");
    assert_eq!(id.len(), 36);
    let e = edge(&net, "use_remote_address: true\npreserve_external_request_id: true\n");
    assert_eq!(e.seen(&[("x-request-id", "client-chosen")]).header("x-request-id"), Some("client-chosen"));
    // Not an edge request: kept.
    let e = edge(&net, "");
    assert_eq!(e.seen(&[("x-request-id", "client-chosen")]).header("x-request-id"), Some("client-chosen"));
}

fn server_header_transformation_as_envoy(backend: Backend) {
    let net = Net::new(backend);
    // One route answers with its own `server` header, one without.
    let routes = "- name: m\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/own\" }\n    direct_response: { status: 200 }\n    response_headers_to_add: [{ header: { key: server, value: app } }]\n  - match: { prefix: \"/\" }\n    direct_response: { status: 200 }\n";
    for (transformation, own, none) in [
        ("", Some("custom"), Some("custom")),
        ("server_header_transformation: OVERWRITE\n", Some("custom"), Some("custom")),
        ("server_header_transformation: APPEND_IF_ABSENT\n", Some("app"), Some("custom")),
        ("server_header_transformation: PASS_THROUGH\n", Some("app"), None),
    ] {
        let hcm = format!("server_name: custom\n{transformation}");
        let p = HttpProxy::start(&net, routes, &[], &hcm, "", 1);
        let mut c = p.client();
        assert_eq!(c.get("/own").header("server"), own, "{transformation}");
        assert_eq!(c.get("/").header("server"), none, "{transformation}");
    }
}

fn scheme_header_transformation_overwrites(backend: Backend) {
    let net = Net::new(backend);
    // Default: a plaintext edge overwrites the client's x-forwarded-proto.
    let e = edge(&net, "use_remote_address: true\n");
    assert_eq!(e.seen(&[("x-forwarded-proto", "https")]).header("x-forwarded-proto"), Some("http"));
    // A trusted hop's value is kept.
    let e = edge(&net, "use_remote_address: true\nxff_num_trusted_hops: 1\n");
    assert_eq!(e.seen(&[("x-forwarded-proto", "https")]).header("x-forwarded-proto"), Some("https"));
    // scheme_to_overwrite sets :scheme and x-forwarded-proto whatever the client said.
    let e = edge(&net, "scheme_header_transformation: { scheme_to_overwrite: https }\n");
    assert_eq!(e.seen(&[("x-forwarded-proto", "http")]).header("x-forwarded-proto"), Some("https"));
    assert_eq!(e.seen(&[]).header("x-forwarded-proto"), Some("https"));
    // match_upstream: a plaintext upstream keeps http.
    let e = edge(&net, "scheme_header_transformation: { match_upstream: true }\n");
    assert_eq!(e.seen(&[]).header("x-forwarded-proto"), Some("http"));
}

/// `:scheme` of an origin-form request comes from `x-forwarded-proto` when that header
/// is trusted (Envoy's mutateRequestHeaders: a valid XFP, else the transport), and from
/// the transport when sluice overwrote it. Over HTTP/2 the request carries its own
/// `:scheme`, which Envoy trusts and keeps ("For HTTP/2, and HTTP/3, incoming :scheme
/// headers are trusted", headers docs; mutateRequestHeaders only fills a missing one):
/// `x-forwarded-proto` does not change it, and `https` sent in plaintext stays `https`.
fn scheme_follows_a_trusted_x_forwarded_proto(backend: Backend) {
    let net = Net::new(backend);
    let routes = "- name: m\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\", headers: [{ name: \":scheme\", string_match: { exact: https } }] }\n    direct_response: { status: 200, body: { inline_string: https } }\n  - match: { prefix: \"/\" }\n    direct_response: { status: 200, body: { inline_string: other } }\n";
    let https = [("x-forwarded-proto", "https")];
    for (hcm, trusted) in [
        ("use_remote_address: true\n", false),
        ("use_remote_address: true\nxff_num_trusted_hops: 1\n", true),
        ("", true),
    ] {
        let p = HttpProxy::start(&net, routes, &[], hcm, "", 1);
        let mut c = p.client();
        let h2 = c.protocol() == Protocol::Http2;
        let want = if trusted && !h2 { "https" } else { "other" };
        assert_eq!(c.request("GET", "/", &https, b"").text(), want, "{hcm:?} with x-forwarded-proto: https");
        assert_eq!(c.get("/").text(), "other", "{hcm:?}: plaintext without x-forwarded-proto");
        if h2 {
            let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
            assert_eq!(h2_body_with_https_scheme(conn), "https", "{hcm:?}: the client's :scheme https is kept");
        }
    }
}

/// `GET /` over HTTP/2 with `:scheme: https` on a plaintext connection (raw frames: the
/// test's HTTP/2 client always sends `http` there); the response body.
fn h2_body_with_https_scheme(mut conn: Conn) -> String {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    const SETTINGS_ACK: &[u8] = &[0, 0, 0, 4, 1, 0, 0, 0, 0];
    // HPACK: `:method GET` (2), `:scheme https` (7), `:path /` (4), `:authority t`.
    let block = [0x82, 0x87, 0x84, 0x41, 0x01, b't'];
    let mut out = PREFACE.to_vec();
    out.extend_from_slice(SETTINGS_ACK);
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    conn.write_all(&out).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let (mut buf, mut body, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
    loop {
        let n = conn.read(&mut chunk).expect("frames");
        assert!(n > 0, "closed before the response ended");
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 9 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (ty, flags, stream) = (buf[3], buf[4], u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]));
            assert!(ty != 3 && ty != 7, "reset or GOAWAY: {:?}", &buf[..9 + len]);
            if ty == 0 && stream == 1 {
                body.extend_from_slice(&buf[9..9 + len]);
                if flags & 1 == 1 {
                    return String::from_utf8_lossy(&body).into_owned();
                }
            }
            buf.drain(..9 + len);
        }
    }
}

/// `%XX` for everything but unreserved characters.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A TLS client over a connection of the test's network.
fn tls_client(conn: Conn, config: &Arc<rustls::ClientConfig>) -> StreamOwned<ClientConnection, Conn> {
    let mut conn = conn;
    let name = ServerName::try_from("proxy.test").unwrap();
    let mut tls = ClientConnection::new(config.clone(), name).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut conn).expect("handshake");
    }
    StreamOwned::new(tls, conn)
}

/// GET / with an `x-forwarded-client-cert` header; the status.
fn get_with_xfcc(stream: &mut (impl Read + Write), xfcc: &str) -> u16 {
    let req = format!("GET / HTTP/1.1\r\nhost: proxy.test\r\nx-forwarded-client-cert: {xfcc}\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(stream.read(&mut b).unwrap(), 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let lower = head.to_ascii_lowercase();
    let length: usize =
        lower.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

fn xfcc_in_every_mode_on_an_mtls_listener(backend: Backend) {
    let net = Net::new(backend);
    let pki = Pki::new();
    let ca = pki.ca("edge");
    let server = ca.server_cert_with_uris(&pki, "proxy", &["proxy.test"], &["spiffe://mesh/proxy"]);
    let clients = pki.ca("clients");
    let alice =
        clients.client_cert_with_uris(&pki, "alice", &["alice.test", "alice.example"], &["spiffe://mesh/alice"]);
    let alice_pem = std::fs::read_to_string(&alice.chain_path).unwrap().replace("\r\n", "\n");
    let hash = sha256_hex(alice.der.as_ref());
    let element = format!(
        "By=spiffe://mesh/proxy;Hash={hash};Cert=\"{pem}\";Chain=\"{pem}\";Subject=\"CN=alice (clients)\";URI=spiffe://mesh/alice;DNS=alice.test;DNS=alice.example",
        pem = url_encode(&alice_pem)
    );
    let prior = "By=spiffe://mesh/front;Hash=00ff";
    let details = "set_current_client_cert_details: { subject: true, cert: true, chain: true, dns: true, uri: true }\n";
    let with_cert = client_config(&[&ca], &["http/1.1"], Some(&alice));
    let without_cert = client_config(&[&ca], &["http/1.1"], None);
    for (mode, mtls_want, plain_want) in [
        ("SANITIZE", None, None),
        ("FORWARD_ONLY", Some(prior.to_string()), None),
        ("APPEND_FORWARD", Some(format!("{prior},{element}")), None),
        ("SANITIZE_SET", Some(element.clone()), None),
        ("ALWAYS_FORWARD_ONLY", Some(prior.to_string()), Some(prior.to_string())),
    ] {
        let origin = HttpOrigin::serve(net.listen(), "origin");
        let listen = net.proxy_listen_addr();
        let tls = downstream_tls_yaml(&server, &["http/1.1"], Some(&clients.pem_path), false);
        let hcm = format!("forward_client_cert_details: {mode}\n{details}");
        let endpoints = [origin.addr];
        let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
        let yaml = http_at(listen, ROUTES, &clusters, &hcm, "")
            .replace("    - filters:\n", &format!("    - transport_socket: {tls}\n      filters:\n"));
        let proxy = net.start_proxy(&yaml, 1);
        let target: SocketAddr = proxy.target(listen);
        // A client with a certificate (mTLS), then one without (TLS only).
        for (config, want) in [(&with_cert, &mtls_want), (&without_cert, &plain_want)] {
            let mut s = tls_client(net.connect(target).unwrap(), config);
            assert_eq!(get_with_xfcc(&mut s, prior), 200, "{mode}");
            let seen = origin.seen().pop().unwrap();
            assert_eq!(
                seen.header("x-forwarded-client-cert").map(str::to_string),
                *want,
                "{mode}, client certificate: {}",
                std::ptr::eq(config, &with_cert)
            );
        }
    }
}
