//! `envoy.filters.listener.http_inspector`: tell HTTP/1.0, HTTP/1.1 and prior-knowledge
//! HTTP/2 (`h2c`) apart from the first bytes of a plaintext connection, without
//! consuming them, so that filter chains can match on `application_protocols`.
//!
//! Sans-IO, like the tls_inspector: the connection layer passes the whole peeked prefix
//! after every readable event; the inspector keeps its place, so every byte is examined
//! once. The rules are Envoy's `http_inspector.cc`: a prefix of the HTTP/2 connection
//! preface waits for the full 24 bytes (`h2c`); otherwise the request line, up to the
//! first LF, goes through an HTTP/1 request-line parser (Envoy's http-parser: a known
//! method, one space, a request target, then `HTTP/d.d` and CRLF or LF, or CR/LF right
//! after the target for HTTP/0.9). `HTTP/1.1` is `http/1.1`; every other version is
//! `http/1.0`. A parse error is "not HTTP" (the connection continues without an
//! application protocol); 64 KiB without the end of the request line closes it.
//! The inspector only runs on plaintext: see [`applies`]. It never allocates or panics.

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
pub const HTTP2_CONNECTION_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Envoy's `MAX_INSPECT_SIZE`: the most the inspector peeks.
pub const MAX_INSPECT_SIZE: usize = 64 * 1024;
/// Envoy's `DEFAULT_INITIAL_BUFFER_SIZE`: the first peek size, doubled as needed.
pub const DEFAULT_INITIAL_BUFFER_SIZE: usize = 8 * 1024;

/// The request methods of Envoy's HTTP/1 parser (http-parser 2.9).
const METHODS: [&[u8]; 34] = [
    b"DELETE",
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"COPY",
    b"LOCK",
    b"MKCOL",
    b"MOVE",
    b"PROPFIND",
    b"PROPPATCH",
    b"SEARCH",
    b"UNLOCK",
    b"BIND",
    b"REBIND",
    b"UNBIND",
    b"ACL",
    b"REPORT",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"MERGE",
    b"M-SEARCH",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PATCH",
    b"PURGE",
    b"MKCALENDAR",
    b"LINK",
    b"UNLINK",
    b"SOURCE",
];

/// Whether the http_inspector inspects a connection with this transport protocol:
/// only when none was detected or it is `raw_buffer` (Envoy skips TLS connections).
pub fn applies(transport_protocol: &str) -> bool {
    transport_protocol.is_empty() || transport_protocol == "raw_buffer"
}

/// What the inspector detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpProtocol {
    Http10,
    Http11,
    /// HTTP/2 with prior knowledge.
    Http2,
}

impl HttpProtocol {
    /// The application protocol recorded on the connection (Envoy's ALPN names).
    pub fn application_protocol(self) -> &'static str {
        match self {
            HttpProtocol::Http10 => "http/1.0",
            HttpProtocol::Http11 => "http/1.1",
            HttpProtocol::Http2 => "h2c",
        }
    }
}

/// The inspector's verdict on the bytes peeked so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// Wait for more bytes.
    NeedMore,
    /// Set the application protocol and continue.
    Http(HttpProtocol),
    /// Continue without an application protocol.
    NotHttp,
    /// 64 KiB peeked without the end of the request line: close (`read_error`).
    Close,
}

/// Where the request-line parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Method,
    SpacesBeforeTarget {
        connect: bool,
    },
    Target,
    SpacesBeforeVersion,
    /// Matched this many bytes of `HTTP/`.
    Http(usize),
    Major,
    Dot,
    Minor,
    End,
    /// Saw CR; LF must follow.
    AlmostDone,
}

/// Per-connection inspection state.
#[derive(Debug, Clone)]
pub struct HttpInspector {
    line: Line,
    /// Bytes fed to the request-line parser.
    parsed: usize,
    version: (u8, u8),
    verdict: Option<Detect>,
    requested: usize,
}

impl Default for HttpInspector {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpInspector {
    pub fn new() -> HttpInspector {
        HttpInspector {
            line: Line::Method,
            parsed: 0,
            version: (0, 9),
            verdict: None,
            requested: DEFAULT_INITIAL_BUFFER_SIZE,
        }
    }

    /// How many bytes the connection layer should peek next time.
    pub fn max_read_bytes(&self) -> usize {
        self.requested
    }

    /// Examine the peeked prefix (all of it). A verdict other than `NeedMore` repeats.
    pub fn inspect(&mut self, peeked: &[u8]) -> Detect {
        if let Some(verdict) = self.verdict {
            return verdict;
        }
        let data = &peeked[..peeked.len().min(MAX_INSPECT_SIZE)];
        let verdict = self.detect(data);
        if verdict == Detect::NeedMore {
            if data.len() >= MAX_INSPECT_SIZE {
                self.verdict = Some(Detect::Close);
                return Detect::Close;
            }
            if data.len() >= self.requested {
                self.requested = (2 * self.requested).min(MAX_INSPECT_SIZE);
            }
            return Detect::NeedMore;
        }
        self.verdict = Some(verdict);
        verdict
    }

    fn detect(&mut self, data: &[u8]) -> Detect {
        if data.is_empty() {
            return Detect::NeedMore;
        }
        let n = data.len().min(HTTP2_CONNECTION_PREFACE.len());
        if data[..n] == HTTP2_CONNECTION_PREFACE[..n] {
            return if n < HTTP2_CONNECTION_PREFACE.len() {
                Detect::NeedMore
            } else {
                Detect::Http(HttpProtocol::Http2)
            };
        }
        if data[0] == b'\r' || data[0] == b'\n' {
            return Detect::NotHttp;
        }
        while let Some(&b) = data.get(self.parsed) {
            match self.step(&data[..self.parsed], b) {
                Ok(false) => self.parsed += 1,
                Ok(true) => {
                    let protocol = if self.version == (1, 1) { HttpProtocol::Http11 } else { HttpProtocol::Http10 };
                    return Detect::Http(protocol);
                }
                Err(()) => return Detect::NotHttp,
            }
        }
        Detect::NeedMore
    }

    /// Feed one byte; `before` is everything fed so far. `Ok(true)`: the request line
    /// ended with this byte (its LF).
    fn step(&mut self, before: &[u8], b: u8) -> Result<bool, ()> {
        self.line = match self.line {
            Line::Method if b == b' ' => match METHODS.iter().find(|m| **m == before) {
                Some(m) => Line::SpacesBeforeTarget { connect: *m == b"CONNECT" },
                None => return Err(()),
            },
            Line::Method => {
                let i = before.len();
                if !METHODS.iter().any(|m| m.len() > i && m[..i] == *before && m[i] == b) {
                    return Err(());
                }
                Line::Method
            }
            Line::SpacesBeforeTarget { .. } if b == b' ' => self.line,
            Line::SpacesBeforeTarget { connect: true } if is_userinfo(b) || matches!(b, b'[' | b']' | b'/' | b'?') => {
                Line::Target
            }
            Line::SpacesBeforeTarget { connect: false } if b == b'/' || b == b'*' || b.is_ascii_alphabetic() => {
                Line::Target
            }
            Line::SpacesBeforeTarget { .. } => return Err(()),
            Line::Target if b == b' ' => Line::SpacesBeforeVersion,
            // No version after the target: HTTP/0.9.
            Line::Target if b == b'\r' => Line::AlmostDone,
            Line::Target if b == b'\n' => return Ok(true),
            Line::Target if is_url_char(b) => Line::Target,
            Line::Target => return Err(()),
            Line::SpacesBeforeVersion if b == b' ' => self.line,
            Line::SpacesBeforeVersion if b == b'H' => Line::Http(1),
            Line::Http(i) if b == b"HTTP/"[i] => {
                if i + 1 == 5 {
                    Line::Major
                } else {
                    Line::Http(i + 1)
                }
            }
            Line::Major if b.is_ascii_digit() => {
                self.version.0 = b - b'0';
                Line::Dot
            }
            Line::Dot if b == b'.' => Line::Minor,
            Line::Minor if b.is_ascii_digit() => {
                self.version.1 = b - b'0';
                Line::End
            }
            Line::End if b == b'\r' => Line::AlmostDone,
            Line::End | Line::AlmostDone if b == b'\n' => return Ok(true),
            _ => return Err(()),
        };
        Ok(false)
    }
}

/// http-parser's URL characters (non-strict build): printable ASCII, TAB, FF and any
/// byte with the high bit set.
fn is_url_char(b: u8) -> bool {
    matches!(b, b'\t' | 0x0c | 0x21..=0x7e) || b >= 0x80
}

/// RFC 3986 userinfo characters, as http-parser accepts them at the start of an
/// authority-form target.
fn is_userinfo(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()%;:&=+$,".contains(&b)
}

/// Envoy's `http_inspector.*` counters, per worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpInspectorStats {
    pub read_error: u64,
    pub http10_found: u64,
    pub http11_found: u64,
    pub http2_found: u64,
    pub http_not_found: u64,
}

impl HttpInspectorStats {
    /// Count a final verdict (once per connection).
    pub fn record(&mut self, verdict: Detect) {
        match verdict {
            Detect::NeedMore => {}
            Detect::Http(HttpProtocol::Http10) => self.http10_found += 1,
            Detect::Http(HttpProtocol::Http11) => self.http11_found += 1,
            Detect::Http(HttpProtocol::Http2) => self.http2_found += 1,
            Detect::NotHttp => self.http_not_found += 1,
            Detect::Close => self.read_error += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(data: &[u8]) -> Detect {
        HttpInspector::new().inspect(data)
    }

    #[test]
    fn http11_and_http10() {
        assert_eq!(detect(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Detect::Http(HttpProtocol::Http11));
        assert_eq!(detect(b"POST /x?y=1 HTTP/1.0\r\n"), Detect::Http(HttpProtocol::Http10));
        assert_eq!(detect(b"GET / HTTP/1.1\n"), Detect::Http(HttpProtocol::Http11), "bare LF");
        assert_eq!(detect(b"GET /\r\n"), Detect::Http(HttpProtocol::Http10), "HTTP/0.9");
        assert_eq!(detect(b"GET / HTTP/2.0\r\n"), Detect::Http(HttpProtocol::Http10), "not 1.1 is 1.0");
        assert_eq!(detect(b"OPTIONS * HTTP/1.1\r\n"), Detect::Http(HttpProtocol::Http11));
        assert_eq!(detect(b"GET http://a.b/c HTTP/1.1\r\n"), Detect::Http(HttpProtocol::Http11));
        assert_eq!(detect(b"CONNECT a.b:443 HTTP/1.1\r\n"), Detect::Http(HttpProtocol::Http11));
        assert_eq!(detect(b"M-SEARCH * HTTP/1.1\r\n"), Detect::Http(HttpProtocol::Http11));
        assert_eq!(detect(b"GET   /   HTTP/1.1\r\n"), Detect::Http(HttpProtocol::Http11), "extra spaces");
        assert_eq!(HttpProtocol::Http11.application_protocol(), "http/1.1");
        assert_eq!(HttpProtocol::Http10.application_protocol(), "http/1.0");
    }

    #[test]
    fn h2c_preface() {
        assert_eq!(detect(HTTP2_CONNECTION_PREFACE), Detect::Http(HttpProtocol::Http2));
        assert_eq!(HttpProtocol::Http2.application_protocol(), "h2c");
        let mut i = HttpInspector::new();
        for n in 1..HTTP2_CONNECTION_PREFACE.len() {
            assert_eq!(i.inspect(&HTTP2_CONNECTION_PREFACE[..n]), Detect::NeedMore);
        }
        let mut with_frames = HTTP2_CONNECTION_PREFACE.to_vec();
        with_frames.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(i.inspect(&with_frames), Detect::Http(HttpProtocol::Http2));
        // Diverging from the preface falls back to HTTP/1 parsing: PRI is no method.
        assert_eq!(detect(b"PRI * HTTP/1.1\r\n"), Detect::NotHttp);
    }

    #[test]
    fn byte_at_a_time() {
        let req = b"DELETE /items/42 HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut i = HttpInspector::new();
        let end = req.iter().position(|&b| b == b'\n').unwrap();
        for n in 0..=end {
            assert_eq!(i.inspect(&req[..n]), Detect::NeedMore, "{n}");
        }
        assert_eq!(i.inspect(&req[..end + 1]), Detect::Http(HttpProtocol::Http11));
        assert_eq!(i.inspect(&req[..2]), Detect::Http(HttpProtocol::Http11), "verdict repeats");
        let mut i = HttpInspector::new();
        assert_eq!(i.inspect(b"GE"), Detect::NeedMore);
        assert_eq!(i.inspect(b"GET"), Detect::NeedMore);
        assert_eq!(i.inspect(b"GET / HTTP/1."), Detect::NeedMore);
        assert_eq!(i.inspect(b"GET / HTTP/1.0\r"), Detect::NeedMore);
        assert_eq!(i.inspect(b"GET / HTTP/1.0\r\n"), Detect::Http(HttpProtocol::Http10));
    }

    #[test]
    fn not_http() {
        for data in [
            &b"\r\nGET / HTTP/1.1\r\n"[..],
            b"\nGET",
            b"get / HTTP/1.1\r\n",
            b"FOO / HTTP/1.1\r\n",
            b"GETX / HTTP/1.1\r\n",
            b"GET  \r\n",
            b"GET / \r\n",
            b"GET / HTTP/11.1\r\n",
            b"GET / HTTP/1.1\rX\n",
            b"GET / HTTP/1.1 \r\n",
            b"GET / FTP/1.1\r\n",
            b"GET a\x01b HTTP/1.1\r\n",
            b"GET \x7f HTTP/1.1\r\n",
            b"CONNECT @host HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00\x01",
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ] {
            assert_eq!(detect(data), Detect::NotHttp, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn request_line_over_64k_closes() {
        let mut req = b"GET /".to_vec();
        req.resize(MAX_INSPECT_SIZE + 10, b'a');
        let mut i = HttpInspector::new();
        assert_eq!(i.max_read_bytes(), DEFAULT_INITIAL_BUFFER_SIZE);
        assert_eq!(i.inspect(&req[..DEFAULT_INITIAL_BUFFER_SIZE]), Detect::NeedMore);
        assert_eq!(i.max_read_bytes(), 2 * DEFAULT_INITIAL_BUFFER_SIZE);
        assert_eq!(i.inspect(&req[..MAX_INSPECT_SIZE - 1]), Detect::NeedMore);
        assert_eq!(i.max_read_bytes(), 4 * DEFAULT_INITIAL_BUFFER_SIZE);
        assert_eq!(i.inspect(&req), Detect::Close);
        // A long but complete line under the limit is fine.
        let mut ok = b"GET /".to_vec();
        ok.resize(60_000, b'a');
        ok.extend_from_slice(b" HTTP/1.1\r\n");
        assert_eq!(detect(&ok), Detect::Http(HttpProtocol::Http11));
    }

    #[test]
    fn applies_only_to_plaintext() {
        assert!(applies(""));
        assert!(applies("raw_buffer"));
        assert!(!applies("tls"));
    }

    #[test]
    fn stats() {
        let mut s = HttpInspectorStats::default();
        for v in [
            Detect::Http(HttpProtocol::Http11),
            Detect::Http(HttpProtocol::Http10),
            Detect::Http(HttpProtocol::Http2),
            Detect::NotHttp,
            Detect::Close,
            Detect::NeedMore,
        ] {
            s.record(v);
        }
        assert_eq!(
            s,
            HttpInspectorStats { read_error: 1, http10_found: 1, http11_found: 1, http2_found: 1, http_not_found: 1 }
        );
    }
}
