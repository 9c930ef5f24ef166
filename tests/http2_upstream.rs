//! Upstream HTTP/2 end to end: clusters with `explicit_http_config.http2_protocol_options`,
//! `use_downstream_protocol_config` and the deprecated cluster-level
//! `http2_protocol_options`, to an HTTP/2 origin (the `h2` crate's server).
//!
//! On both datapaths: HTTP/1.1 clients to an HTTP/2 upstream (bodies both ways), HTTP/2
//! clients multiplexed onto one upstream connection, the cluster's and the peer's
//! stream limits opening more connections, REFUSED_STREAM and GOAWAY retried on
//! another connection, the upstream protocol following the downstream one, trailers
//! both ways between HTTP/2 peers. On loopback
//! only (real clients): curl over HTTP/1.1 and with HTTP/2 prior knowledge.

use std::process::Command;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::h2_origin::H2Origin;
use sluice_e2e::http_origin::pattern;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const H2_EXPLICIT: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#;

fn proxy_to<'n>(net: &'n Net, origin: &H2Origin, cluster_extra: &str) -> HttpProxy<'n> {
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: cluster_extra }];
    HttpProxy::start(net, &forward_all("web"), &clusters, "", "", 1)
}

fn h2(net: &Net, p: &HttpProxy<'_>) -> H2Client {
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
    H2Client::handshake(conn).expect("HTTP/2 handshake")
}

fn http1_client_to_http2_upstream(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let p = proxy_to(&net, &origin, H2_EXPLICIT);
    let mut c = p.client();
    let r = c.get("/hello");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin-protocol"), Some("HTTP/2"));
    assert_eq!(r.text(), "GET /hello\n");
    let seen = origin.seen();
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("http"));
    assert!(seen[0].header("connection").is_none() && seen[0].header("host").is_none());
    // The upload becomes DATA frames; 3 MB come back.
    let body = pattern(1 << 20);
    let r = c.request("POST", "/echo", &[], &body);
    assert_eq!(r.status, 200);
    assert!(r.body.ends_with(&body), "the request body arrived intact");
    assert!(r.body.starts_with(b"POST /echo\n"));
    let r = c.get("/bytes/3000000");
    assert!(r.body == pattern(3_000_000), "response body byte-exact");
    let r = c.get("/status/503");
    assert_eq!(r.status, 503);
    assert_eq!(origin.connections(), 1, "one upstream connection carried every request");
    // The cluster's max_headers_count (Envoy's default, 100) bounds HTTP/2 responses too.
    let r = c.get("/headers/90");
    assert_eq!((r.status, r.header("x-h-89")), (200, Some("v")));
    let r = c.get("/headers/120");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("x-h-0").is_none());
    assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 1);
    assert_eq!(p.counter("cluster.web.upstream_cx_http1_total"), 0);
    assert_eq!(p.counter("cluster.web.upstream_rq_total"), 6);
    assert_eq!(p.counter("cluster.web.upstream_rq_2xx"), 4);
    assert_eq!(p.counter("cluster.web.upstream_rq_5xx"), 1);
}

fn http2_streams_multiplex_on_one_upstream_connection(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let p = proxy_to(&net, &origin, H2_EXPLICIT);
    let mut c = h2(&net, &p);
    let started = Instant::now();
    let pending: Vec<_> = (0..50).map(|i| c.start("GET", &format!("/delay/300/s{i}"), &[], b"")).collect();
    for (i, pend) in pending.into_iter().enumerate() {
        let r = c.finish(pend).expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("GET /delay/300/s{i}\n"));
    }
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert_eq!(origin.connections(), 1, "all 50 streams on one upstream connection");
    assert!(origin.max_open_streams() >= 10, "concurrent upstream streams: {}", origin.max_open_streams());
    // 8 MiB up and back on one stream.
    let big = sluice_e2e::payload(8 << 20, 3);
    let r = c.request("POST", "/echo-big", &[], &big).expect("8 MiB POST");
    assert!(r.body.ends_with(&big), "8 MiB echoed intact");
    assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 1);
    assert_eq!(p.counter("cluster.web.upstream_rq_completed"), 51);
}

fn stream_limits_open_more_connections(backend: Backend) {
    let net = Net::new(backend);
    // The cluster's limit: 2 streams per connection.
    let origin = H2Origin::serve(net.listen(), "web", None);
    let extra =
        H2_EXPLICIT.replace("http2_protocol_options: {}", "http2_protocol_options: { max_concurrent_streams: 2 }");
    let p = proxy_to(&net, &origin, &extra);
    let mut c = h2(&net, &p);
    let pending: Vec<_> = (0..8).map(|i| c.start("GET", &format!("/delay/400/a{i}"), &[], b"")).collect();
    for pend in pending {
        assert_eq!(c.finish(pend).expect("response").status, 200);
    }
    assert_eq!(origin.max_open_streams(), 2, "never more than 2 streams on a connection");
    assert!(origin.connections() >= 4, "connections: {}", origin.connections());
    drop(p);
    // The peer's SETTINGS_MAX_CONCURRENT_STREAMS: 3.
    let origin = H2Origin::serve(net.listen(), "web", Some(3));
    let p = proxy_to(&net, &origin, H2_EXPLICIT);
    let mut c = h2(&net, &p);
    let _ = c.get("/warm");
    let pending: Vec<_> = (0..9).map(|i| c.start("GET", &format!("/delay/400/b{i}"), &[], b"")).collect();
    for pend in pending {
        assert_eq!(c.finish(pend).expect("response").status, 200);
    }
    assert!(origin.max_open_streams() <= 3, "the peer's limit: {}", origin.max_open_streams());
    assert!(origin.connections() >= 2, "connections: {}", origin.connections());
}

fn refused_and_goaway_streams_go_to_a_new_connection(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let p = proxy_to(&net, &origin, H2_EXPLICIT);
    let mut c = p.client();
    let r = c.get("/refuse-once/x");
    assert_eq!(r.status, 200, "the refused stream was tried again");
    assert_eq!(r.text(), "GET /refuse-once/x\n");
    let r = c.get("/goaway");
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let r = c.get("/after");
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    let last = seen.last().expect("seen");
    assert_eq!(last.path, "/after");
    assert!(origin.connections() >= 2, "a new connection after GOAWAY: {}", origin.connections());
}

fn upstream_protocol_follows_the_downstream(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let extra = H2_EXPLICIT
        .replace("explicit_http_config:\n          http2_protocol_options: {}", "use_downstream_protocol_config: {}");
    let p = proxy_to(&net, &origin, &extra);
    let r = h2(&net, &p).get("/via-h2");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin-protocol"), Some("HTTP/2"));
    // HTTP/1.1 downstream: HTTP/1.1 upstream, which this origin does not speak.
    let r = p.client().get("/via-h1");
    assert_eq!(r.status, 503);
    assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 1);
    assert_eq!(p.counter("cluster.web.upstream_cx_http1_total"), 1);
}

fn deprecated_cluster_http2_protocol_options_still_work(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let p = proxy_to(&net, &origin, "    http2_protocol_options: {}\n");
    let r = p.client().get("/old-style");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin-protocol"), Some("HTTP/2"));
}

fn trailers_travel_both_ways_between_http2_peers(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let p = proxy_to(&net, &origin, H2_EXPLICIT);
    let mut c = h2(&net, &p);
    let r = c.get("/trailers");
    assert_eq!(r.status, 200);
    let t = r.trailers.expect("response trailers reach the HTTP/2 client");
    assert_eq!(t.get("x-trailer").and_then(|v| v.to_str().ok()), Some("done"));
    let r = c.request_with_trailers("POST", "/up", b"body", &[("x-checksum", "abc")]).expect("POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "POST /up\nbody");
    assert_eq!(origin.trailers(), [vec![("x-checksum".to_string(), "abc".to_string())]]);
    // An HTTP/1.1 client gets the body; the trailers are dropped (Envoy's default).
    let r = p.client().get("/trailers");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "GET /trailers\n");
}

fn connect_timeout_of_an_http2_connection(backend: Backend) {
    let net = Net::new(backend);
    let hole = net.blackhole();
    let endpoints = [hole.addr];
    let extra = format!("    connect_timeout: 0.3s\n{H2_EXPLICIT}");
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: &extra }];
    let p = HttpProxy::start(&net, &forward_all("web"), &clusters, "", "", 1);
    let started = Instant::now();
    let r = p.client().get("/never");
    assert_eq!(r.status, 503);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(p.counter("cluster.web.upstream_cx_connect_timeout"), 1);
}

on_both_backends!(
    connect_timeout_of_an_http2_connection,
    trailers_travel_both_ways_between_http2_peers,
    http1_client_to_http2_upstream,
    http2_streams_multiplex_on_one_upstream_connection,
    stream_limits_open_more_connections,
    refused_and_goaway_streams_go_to_a_new_connection,
    upstream_protocol_follows_the_downstream,
    deprecated_cluster_http2_protocol_options_still_work,
);

/// curl, HTTP/1.1 and HTTP/2 prior knowledge, through to the HTTP/2 origin.
#[test]
fn curl_through_to_an_http2_upstream() {
    let net = Net::new(Backend::Kernel);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let p = proxy_to(&net, &origin, H2_EXPLICIT);
    let url = format!("http://{}/curl", p.listen_addr());
    for flag in ["--http1.1", "--http2-prior-knowledge"] {
        let out = Command::new("curl")
            .args(["-s", "-i", "--max-time", "10", flag, &url, "--data-binary", "payload"])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "curl {flag}: {text}");
        assert!(text.contains(" 200"), "curl {flag}: {text}");
        assert!(text.to_lowercase().contains("x-origin-protocol: http/2"), "{text}");
        assert!(text.ends_with("POST /curl\npayload"), "curl {flag}: {text}");
    }
    assert_eq!(origin.connections(), 1);
}
