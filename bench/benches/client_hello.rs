//! Listener-filter inspection of a connection's first bytes: the tls_inspector on a
//! real rustls ClientHello (whole, and split into small records), and the
//! http_inspector on a request line. Times are CPU time per operation (see
//! `sluice_bench::cpu_time`).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::listener::filters::http_inspector::HttpInspector;
use sluice::listener::filters::tls_inspector::{Inspect, TlsInspector, TlsInspectorConfig};
use sluice_bench::cpu_time::CpuTime;

/// The first flight of a rustls client: one record holding a TLS 1.3 ClientHello.
fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("valid name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("write to a Vec");
    out
}

/// The same handshake message re-framed into records of at most `size` bytes.
fn reframe(wire: &[u8], size: usize) -> Vec<u8> {
    let handshake = &wire[5..];
    let mut out = Vec::new();
    for chunk in handshake.chunks(size) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn bench(c: &mut Criterion<CpuTime>) {
    let wire = client_hello("www.example.com", &["h2", "http/1.1"]);
    let mut group = c.benchmark_group("tls_inspector");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("client_hello_one_record", |b| {
        b.iter(|| {
            let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
            let verdict = inspector.inspect(black_box(&wire));
            assert!(matches!(verdict, Inspect::Tls(_)));
            black_box(verdict.transport_protocol());
        })
    });
    let split = reframe(&wire, 64);
    group.bench_function("client_hello_64_byte_records", |b| {
        b.iter(|| {
            let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
            assert!(matches!(inspector.inspect(black_box(&split)), Inspect::Tls(_)));
        })
    });
    group.bench_function("plaintext_verdict", |b| {
        b.iter(|| {
            let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
            assert_eq!(inspector.inspect(black_box(b"GET / HTTP/1.1\r\n")), Inspect::NotTls);
        })
    });
    group.finish();

    let request = b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    c.bench_function("http_inspector/request_line", |b| {
        b.iter(|| {
            let mut inspector = HttpInspector::new();
            black_box(inspector.inspect(black_box(request)));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
