//! The compressor, decompressor and buffer filters end to end on both backends:
//! `Accept-Encoding` negotiation (q-values) between gzip, brotli and zstd compressors
//! in one chain, every body decoded and compared byte for byte with what the origin
//! sent (fixed-length and chunked origins); Envoy's skip rules (minimum length, content
//! types, `ETag` under `disable_on_etag_header`, `Cache-Control: no-transform`), a strong
//! `ETag` weakened, `Vary`; curl `--compressed`; the decompressor on requests and
//! responses; the buffer filter's 413 and its per-route disabling; stats by Envoy's
//! names.

use std::io::{Read, Write};
use std::process::Command;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::{pattern, HttpOrigin};
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const THREE: &str = r#"- name: envoy.filters.http.compressor
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
    response_direction_config: {}
    compressor_library:
      name: gz
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
        compression_level: BEST_COMPRESSION
        window_bits: 10
- name: brotli
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
    response_direction_config: {}
    compressor_library:
      name: b
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli
        quality: 5
- name: zstd
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
    response_direction_config: {}
    compressor_library:
      name: z
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd
        compression_level: 5
        enable_checksum: true
"#;

fn forward(extra_routes: &str) -> String {
    format!(
        r#"- name: app
  domains: ["*"]
  routes:
{extra_routes}  - match: {{ prefix: "/" }}
    route: {{ cluster: web }}
"#
    )
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).expect("a gzip body");
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096).read_to_end(&mut out).expect("a brotli body");
    out
}

fn unzstd(b: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(b).expect("a zstd body")
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn accept_encoding_picks_the_compressor(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, &forward(""), &clusters, "", THREE, 1);
    let mut c = p.client();
    let want = pattern(20000);
    let r = c.request("GET", "/bytes/20000", &[("accept-encoding", "gzip")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), None, "a compressed response has no length");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < want.len() / 4);
    assert_eq!(gunzip(&r.body), want);
    let r = c.request("GET", "/bytes/20000", &[("accept-encoding", "br")], b"");
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&r.body), want);
    let r = c.request("GET", "/bytes/20000", &[("accept-encoding", "zstd")], b"");
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert_eq!(unzstd(&r.body), want);
    // The highest q wins; equal q: the first listed; `*`: the chain's first.
    let r = c.request("GET", "/bytes/20000", &[("accept-encoding", "gzip;q=0.5, br;q=0.8, zstd;q=0.1")], b"");
    assert_eq!(r.header("content-encoding"), Some("br"));
    let r = c.request("GET", "/bytes/20000", &[("accept-encoding", "*")], b"");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), want);
    let r = c.request("GET", "/bytes/20000", &[("accept-encoding", "gzip;q=0, deflate")], b"");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, want);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"), "could have been compressed");
    // A chunked origin body streams compressed.
    let r = c.request("GET", "/chunked/100000", &[("accept-encoding", "zstd")], b"");
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert_eq!(unzstd(&r.body), pattern(100000));
    // No Accept-Encoding: as the origin sent it.
    let r = c.request("GET", "/bytes/20000", &[], b"");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-length"), Some("20000"));
    assert_eq!(r.body, want);
    let gz = "http.ingress.compressor.gz.gzip.response.";
    assert_eq!(p.counter(&format!("{gz}compressed")), 2);
    assert_eq!(p.counter(&format!("{gz}header_gzip")), 1);
    assert_eq!(p.counter(&format!("{gz}header_wildcard")), 1);
    assert_eq!(p.counter(&format!("{gz}header_compressor_overshadowed")), 4);
    assert_eq!(p.counter(&format!("{gz}no_accept_header")), 1);
    assert_eq!(p.counter(&format!("{gz}total_uncompressed_bytes")), 40000);
    assert_eq!(p.counter("http.ingress.compressor.b.brotli.response.compressed"), 2);
    assert_eq!(p.counter("http.ingress.compressor.z.zstd.response.compressed"), 2);
    assert!(p.counter(&format!("{gz}total_compressed_bytes")) < 10000);
}

const GZIP_RULES: &str = r#"- name: envoy.filters.http.compressor
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
    response_direction_config:
      common_config:
        min_content_length: 100
        content_type: [text/plain, application/json]
      disable_on_etag_header: true
    compressor_library:
      name: text
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
"#;

fn routes_with(headers: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    for (prefix, name, value) in headers {
        let ct = if *name == "content-type" {
            String::new()
        } else {
            "{ header: { key: content-type, value: \"text/plain; charset=utf-8\" } }, ".to_string()
        };
        out.push_str(&format!(
            "  - match: {{ prefix: \"/{prefix}/\" }}\n    route: {{ cluster: web, prefix_rewrite: \"/bytes/\" }}\n    response_headers_to_add: [{ct}{{ header: {{ key: \"{name}\", value: '{value}' }} }}]\n"
        ));
    }
    out
}

fn envoys_skip_rules(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let routes = routes_with(&[
        ("text", "x-kind", "plain"),
        ("json", "content-type", "application/json"),
        ("png", "content-type", "image/png"),
        ("etag", "etag", "\"v1\""),
        ("nt", "cache-control", "public, no-transform"),
    ]);
    let p = HttpProxy::start(&net, &forward(&routes), &clusters, "", GZIP_RULES, 1);
    let mut c = p.client();
    let ae = [("accept-encoding", "gzip")];
    let r = c.request("GET", "/text/5000", &ae, b"");
    assert_eq!(r.header("content-encoding"), Some("gzip"), "text/plain with a charset");
    assert_eq!(gunzip(&r.body), pattern(5000));
    let r = c.request("GET", "/text/99", &ae, b"");
    assert_eq!(r.header("content-encoding"), None, "under min_content_length");
    assert_eq!(r.body, pattern(99));
    let r = c.request("GET", "/json/5000", &ae, b"");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = c.request("GET", "/png/5000", &ae, b"");
    assert_eq!(r.header("content-encoding"), None, "image/png is not listed");
    assert_eq!(r.header("vary"), None, "never compressible: no Vary");
    let r = c.request("GET", "/etag/5000", &ae, b"");
    assert_eq!(r.header("content-encoding"), None, "disable_on_etag_header");
    assert_eq!(r.header("etag"), Some("\"v1\""));
    let r = c.request("GET", "/nt/5000", &ae, b"");
    assert_eq!(r.header("content-encoding"), None, "Cache-Control: no-transform");
    assert_eq!(r.body, pattern(5000));
    let s = "http.ingress.compressor.text.gzip.response.";
    assert_eq!(p.counter(&format!("{s}compressed")), 2);
    assert_eq!(p.counter(&format!("{s}not_compressed")), 4);
    assert_eq!(p.counter(&format!("{s}content_length_too_small")), 1);
    assert_eq!(p.counter(&format!("{s}not_compressed_etag")), 1);
}

const WEAKEN: &str = r#"- name: envoy.filters.http.compressor
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
    compressor_library:
      name: legacy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
"#;

fn a_strong_etag_becomes_weak_and_routes_disable(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let mut routes = routes_with(&[("etag", "etag", "\"v1\"")]);
    routes.push_str(
        r#"  - match: { prefix: "/off/" }
    route: { cluster: web, prefix_rewrite: "/bytes/" }
    typed_per_filter_config:
      envoy.filters.http.compressor:
        "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute
        disabled: true
"#,
    );
    let p = HttpProxy::start(&net, &forward(&routes), &clusters, "", WEAKEN, 1);
    let mut c = p.client();
    let r = c.request("GET", "/etag/3000", &[("accept-encoding", "gzip")], b"");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert_eq!(gunzip(&r.body), pattern(3000));
    let r = c.request("GET", "/off/3000", &[("accept-encoding", "gzip")], b"");
    assert_eq!(r.header("content-encoding"), None, "CompressorPerRoute.disabled");
    assert_eq!(r.body, pattern(3000));
    // Without response_direction_config the stats keep Envoy's legacy tree.
    assert_eq!(p.counter("http.ingress.compressor.legacy.gzip.compressed"), 1);
}

/// curl reaches the proxy through the kernel's stack (as the CORS preflight test).
#[test]
fn curl_compressed_decodes_every_encoding() {
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, &forward(""), &clusters, "", THREE, 1);
    let addr = p.proxy().target(p.listen_addr());
    for enc in ["gzip", "br", "zstd"] {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--compressed", "-D", "-", "-H", &format!("Accept-Encoding: {enc}")])
            .arg(format!("http://{addr}/chunked/30000"))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
        let text = out.stdout;
        let split = text.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        let head = String::from_utf8_lossy(&text[..split]).to_ascii_lowercase();
        assert!(head.contains(&format!("content-encoding: {enc}\r\n")), "{head}");
        assert_eq!(&text[split..], &pattern(30000)[..], "{enc}");
    }
}

const DECOMPRESS: &str = r#"- name: envoy.filters.http.decompressor
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor
    decompressor_library:
      name: up
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip
- name: envoy.filters.http.compressor
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
    response_direction_config: {}
    compressor_library:
      name: gz
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
"#;

fn the_decompressor_works_both_ways(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, &forward(""), &clusters, "", DECOMPRESS, 1);
    let mut c = p.client();
    // Request: a gzip body reaches the origin decoded, without Content-Encoding.
    let plain = pattern(8000);
    let r = c.request("POST", "/echo", &[("content-encoding", "gzip")], &gzip(&plain));
    assert_eq!(r.status, 200);
    let seen = origin.seen().pop().unwrap();
    assert_eq!(seen.body, plain, "the origin gets the decoded body");
    assert_eq!(seen.header("content-encoding"), None);
    // The decompressor advertises gzip upstream; the compressor after it compresses
    // the response and the decompressor undoes it on the way out.
    assert_eq!(seen.header("accept-encoding"), Some("gzip"));
    let r = c.request("GET", "/bytes/20000", &[], b"");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, pattern(20000));
    let d = "http.ingress.decompressor.up.gzip.";
    assert_eq!(p.counter(&format!("{d}request.decompressed")), 1);
    // Both responses (the echo and the bytes) were compressed and decoded again.
    assert_eq!(p.counter(&format!("{d}response.decompressed")), 2);
    assert_eq!(p.counter(&format!("{d}request.total_uncompressed_bytes")), 8000);
    assert_eq!(p.counter("http.ingress.compressor.gz.gzip.response.compressed"), 2);
    // A body that is not gzip: what decoded so far goes on, and the error is counted.
    let _ = c.request("POST", "/echo", &[("content-encoding", "gzip")], b"this is not gzip at all");
    assert_eq!(p.counter(&format!("{d}decompressor_library.zlib_data_error")), 1);
}

const BUFFER: &str = r#"- name: envoy.filters.http.buffer
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
    max_request_bytes: 4096
"#;

fn the_buffer_filter_bounds_requests(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let routes = r#"  - match: { prefix: "/nobuf" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.buffer:
        "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
        disabled: true
"#;
    let p = HttpProxy::start(&net, &forward(routes), &clusters, "", BUFFER, 1);
    let mut c = p.client();
    // A chunked body under the limit arrives whole, with a Content-Length added.
    let body = pattern(3000);
    let mut raw = b"POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(1000) {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.send(&raw);
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    let seen = origin.seen().pop().unwrap();
    assert_eq!(seen.body, body);
    assert_eq!(seen.header("content-length"), Some("3000"));
    // Past max_request_bytes: 413 and nothing upstream.
    let mut c = p.client();
    let r = c.request("POST", "/up", &[], &pattern(10000));
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "Payload Too Large");
    assert_eq!(origin.requests(), 1);
    // A route that disables the filter passes the same body.
    let mut c = p.client();
    let r = c.request("POST", "/nobuf", &[], &pattern(10000));
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen().pop().unwrap().body, pattern(10000));
}

on_both_backends!(
    accept_encoding_picks_the_compressor,
    envoys_skip_rules,
    a_strong_etag_becomes_weak_and_routes_disable,
    the_decompressor_works_both_ways,
    the_buffer_filter_bounds_requests
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1). Not over HTTP/2:
// the_buffer_filter_bounds_requests (it writes a raw HTTP/1.1 request).
sluice_e2e::over_http2!(
    accept_encoding_picks_the_compressor,
    envoys_skip_rules,
    a_strong_etag_becomes_weak_and_routes_disable,
    the_decompressor_works_both_ways,
);
