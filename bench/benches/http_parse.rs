//! HTTP/1.1 request head parsing: a minimal request, a typical browser request and a
//! 60-header request, parsed into a warm (reused) `RequestHead` as a connection would.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::http::codec::{Http1Settings, RequestParser, Status};
use sluice::http::RequestHead;

const SMALL: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

const BROWSER: &[u8] = b"GET /wiki/Hypertext_Transfer_Protocol?action=view&lang=en HTTP/1.1\r\n\
Host: en.wikipedia.org\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://en.wikipedia.org/wiki/Main_Page\r\n\
Connection: keep-alive\r\n\
Cookie: WMF-Last-Access=21-Nov-2025; GeoIP=US:CA:San_Francisco:37.77:-122.42:v4; enwikimwuser-sessionId=0123456789abcdef\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-User: ?1\r\n\
Priority: u=0, i\r\n\
\r\n";

fn sixty_headers() -> Vec<u8> {
    let mut wire = b"GET /api/v1/items/12345?fields=all HTTP/1.1\r\nHost: api.example.com\r\n".to_vec();
    for i in 1..60 {
        wire.extend_from_slice(
            format!("x-custom-header-{i:02}: value-{i:02}-abcdefghijklmnopqrstuvwxyz\r\n").as_bytes(),
        );
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

fn bench_parse(c: &mut Criterion) {
    let sixty = sixty_headers();
    let mut group = c.benchmark_group("http1_request_head");
    for (name, wire) in [("small", SMALL), ("browser", BROWSER), ("60_headers", &sixty[..])] {
        let mut parser = RequestParser::new(Arc::new(Http1Settings::default()), false);
        let mut head = RequestHead::default();
        // Warm the head's buffers and the parser's scratch, as on a kept-alive connection.
        assert!(matches!(parser.parse(wire, &mut head), Ok(Status::Complete(_))));
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = parser.parse(black_box(wire), &mut head);
                black_box(&head);
                r
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
