//! A raw HTTP/1.1 client for tests: exact bytes out, parsed responses in, over a
//! connection on either backend (see [`crate::conn`]). On a thread that chose
//! [`Protocol::Http2`] (the cases of `over_http2!`) the same [`Client::request`] goes
//! out as an HTTP/2 stream (prior knowledge) and its response comes back in the same
//! [`Response`], with version `HTTP/2`.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::conn::Conn;
use crate::h2_client::H2Client;
use crate::localhost;

/// How long a read waits for the server.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub version: String,
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The protocol [`Client`]s speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge: requests become streams on one connection.
    Http2,
}

thread_local! {
    static PROTOCOL: Cell<Protocol> = const { Cell::new(Protocol::Http1) };
}

impl Protocol {
    /// Clients made on this thread (this test) from now on speak `self`.
    pub fn use_on_this_thread(self) {
        PROTOCOL.with(|p| p.set(self));
    }

    /// The protocol of this thread's clients.
    pub fn current() -> Protocol {
        PROTOCOL.with(Cell::get)
    }
}

/// HTTP/1-only framing headers an HTTP/2 request must not carry (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/// One client connection.
pub struct Client {
    pub stream: Conn,
    buf: Vec<u8>,
    /// The HTTP/2 connection, on a clone of `stream` ([`Protocol::Http2`]).
    h2: Option<Box<H2Client>>,
}

impl Client {
    /// A client on a fresh loopback connection to `port`.
    pub fn connect(port: u16) -> Client {
        Self::connect_to(localhost(port))
    }

    /// A client on a fresh kernel connection to any address (e.g. one an iptables rule
    /// redirects).
    pub fn connect_to(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Client::over(Conn::Kernel(stream))
    }

    /// A client on `stream` (e.g. from `backend::Net::connect`).
    /// Speaks this thread's [`Protocol`].
    pub fn over(stream: Conn) -> Client {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let h2 = (Protocol::current() == Protocol::Http2).then(|| {
            let conn = stream.try_clone().expect("a second handle on the connection");
            Box::new(H2Client::handshake(conn).expect("HTTP/2 handshake with the proxy"))
        });
        Client { stream, buf: Vec::new(), h2 }
    }

    /// The protocol this client speaks.
    pub fn protocol(&self) -> Protocol {
        if self.h2.is_some() {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        assert!(self.h2.is_none(), "raw HTTP/1 bytes on an HTTP/2 client: the case does not apply to HTTP/2");
        self.stream.write_all(raw).unwrap();
    }

    /// Send a request with `host: test` unless a host is given, and read the response.
    /// Over HTTP/2 the host is the `:authority` and connection-specific headers are left
    /// out; a reset stream panics as a closed HTTP/1 connection does.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        if let Some(h2) = self.h2.as_mut() {
            let authority =
                headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host")).map_or("test", |(_, v)| *v).to_string();
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .filter(|(n, _)| {
                    !n.eq_ignore_ascii_case("host") && !CONNECTION_SPECIFIC.iter().any(|c| n.eq_ignore_ascii_case(c))
                })
                .copied()
                .collect();
            let pending = h2.start_at(&authority, method, path, &headers, body);
            let r = h2.finish(pending).unwrap_or_else(|e| panic!("HTTP/2 response: {e}"));
            let headers = r
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()));
            return Response { version: "HTTP/2".into(), status: r.status, headers: headers.collect(), body: r.body };
        }
        let mut raw = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            raw.push_str("host: test\r\n");
        }
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        let chunked = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        if !body.is_empty() && !chunked && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
            raw.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        self.send(raw.as_bytes());
        if !body.is_empty() {
            self.send(body);
        }
        self.read_response(method == "HEAD").expect("response")
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Read one response (interim 1xx responses are returned too).
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        assert!(self.h2.is_none(), "HTTP/1 response parsing on an HTTP/2 client: the case does not apply to HTTP/2");
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed; got {:?}", String::from_utf8_lossy(&self.buf)),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts.next().unwrap_or("0").parse().unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        let no_body = head_request || status < 200 || status == 204 || status == 304;
        if no_body {
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if self.fill()? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                };
                let size = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {size:?}")))?;
                self.buf.drain(..line_end + 2);
                if n == 0 {
                    // Trailers (none expected) and the final CRLF.
                    loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            let empty = i == 0;
                            self.buf.drain(..i + 2);
                            if empty {
                                break;
                            }
                        } else if self.fill()? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                    break;
                }
                while self.buf.len() < n + 2 {
                    if self.fill()? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                body.extend_from_slice(&self.buf[..n]);
                self.buf.drain(..n + 2);
            }
        } else if let Some(cl) = get("content-length") {
            let n: usize = cl.parse().unwrap_or(0);
            while self.buf.len() < n {
                if self.fill()? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("body: {} of {n}", self.buf.len()),
                    ));
                }
            }
            body = self.buf.drain(..n).collect();
        } else {
            while self.fill()? > 0 {}
            body = std::mem::take(&mut self.buf);
        }
        Ok(Response { version, status, headers, body })
    }

    /// Whether the server closed the connection (EOF or reset) within `wait`.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 1];
        let r = self.stream.read(&mut b);
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        matches!(r, Ok(0) | Err(_))
            && !matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut)
    }

    /// Bytes read but not yet consumed by a response.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One GET on a fresh connection.
pub fn get(port: u16, path: &str) -> Response {
    Client::connect(port).get(path)
}
