//! The HTTP/1.1 health check (Envoy's `HttpHealthCheckerImpl`).
//!
//! The request is built once at load: `METHOD path HTTP/1.1`, `host` (the configured
//! host, else the cluster name), `user-agent: Envoy/HC`, then
//! `request_headers_to_add` / `request_headers_to_remove` applied with their append
//! actions (values are sent as written: header formatters are not evaluated here). A
//! response passes when its status is in `expected_statuses` (default `[200, 201)`);
//! `x-envoy-degraded` marks the host degraded, and a failing response carrying
//! `x-envoy-immediate-health-check-fail` excludes the host at once. The response parser
//! is incremental and bounded: it frames the body (content-length, chunked, or until
//! close) only to find the end of the response so the connection can be reused.

use sluice_config::cluster::HttpHealthCheck;
use sluice_config::core::AppendAction;

/// Most bytes of a response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most headers in a response head.
const MAX_HEADERS: usize = 100;

/// A compiled HTTP check.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// The request, ready to write.
    pub request: Vec<u8>,
    /// `[start, end)` status ranges that pass.
    pub expected: Vec<(u16, u16)>,
    /// HEAD requests get no response body.
    pub head: bool,
}

impl HttpCheck {
    pub fn new(c: &HttpHealthCheck, cluster_name: &str) -> HttpCheck {
        let host = if c.host.is_empty() { cluster_name } else { &c.host };
        let mut headers: Vec<(String, String)> =
            vec![("host".into(), host.to_string()), ("user-agent".into(), "Envoy/HC".into())];
        for h in &c.request_headers_to_add {
            if h.value.is_empty() && !h.keep_empty_value {
                continue;
            }
            let exists = headers.iter().any(|(k, _)| *k == h.key);
            match h.append_action {
                AppendAction::AppendIfExistsOrAdd => headers.push((h.key.clone(), h.value.clone())),
                AppendAction::AddIfAbsent if !exists => headers.push((h.key.clone(), h.value.clone())),
                AppendAction::AddIfAbsent => {}
                AppendAction::OverwriteIfExistsOrAdd | AppendAction::OverwriteIfExists => {
                    if exists || h.append_action == AppendAction::OverwriteIfExistsOrAdd {
                        headers.retain(|(k, _)| *k != h.key);
                        headers.push((h.key.clone(), h.value.clone()));
                    }
                }
            }
        }
        for name in &c.request_headers_to_remove {
            let name = name.to_ascii_lowercase();
            if name != "host" {
                headers.retain(|(k, _)| *k != name);
            }
        }
        let method = if c.method.is_empty() { "GET" } else { c.method.as_str() };
        if matches!(method, "POST" | "PUT" | "PATCH") {
            headers.push(("content-length".into(), "0".into()));
        }
        let mut request = format!("{method} {} HTTP/1.1\r\n", c.path).into_bytes();
        for (k, v) in &headers {
            request.extend_from_slice(k.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(v.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        HttpCheck {
            request,
            expected: c
                .expected_statuses
                .iter()
                .map(|r| (r.start.clamp(0, 1000) as u16, r.end.clamp(0, 1000) as u16))
                .collect(),
            head: method == "HEAD",
        }
    }

    pub fn expected(&self, status: u16) -> bool {
        self.expected.iter().any(|&(s, e)| s <= status && status < e)
    }
}

/// A complete response, reduced to what the check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub degraded: bool,
    pub immediate_fail: bool,
    /// The server will close, or asked us to: do not reuse the connection.
    pub close: bool,
}

/// Why a response could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Malformed,
    HeadTooLarge,
    /// The connection closed before the response was complete.
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// An incremental HTTP/1.x response parser.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    head_request: bool,
    response: Option<Response>,
}

impl ResponseParser {
    pub fn new(head_request: bool) -> ResponseParser {
        ResponseParser { state: State::Head, head_request, response: None }
    }

    /// Consume bytes from the front of `buf`; `Ok(Some(..))` once the response is
    /// complete (bytes after it stay in `buf`).
    pub fn feed(&mut self, buf: &mut Vec<u8>) -> Result<Option<Response>, ParseError> {
        loop {
            match self.state {
                State::Head => {
                    let Some(n) = self.parse_head(buf)? else {
                        return Ok(None);
                    };
                    buf.drain(..n);
                    if self.state == State::Head {
                        // An interim 1xx answer: the real one follows.
                        continue;
                    }
                    if self.state == State::Length(0) {
                        return Ok(self.response.take());
                    }
                }
                State::Length(left) => {
                    let n = (buf.len() as u64).min(left);
                    buf.drain(..n as usize);
                    if n == left {
                        return Ok(self.response.take());
                    }
                    self.state = State::Length(left - n);
                    return Ok(None);
                }
                State::UntilClose => {
                    buf.clear();
                    return Ok(None);
                }
                State::Chunked(c) => {
                    if let Some(done) = self.chunk(c, buf)? {
                        return Ok(done);
                    }
                }
            }
        }
    }

    /// The connection reached end of stream.
    pub fn on_eof(&mut self) -> Result<Response, ParseError> {
        match self.state {
            State::UntilClose => self.response.take().ok_or(ParseError::Truncated),
            _ => Err(ParseError::Truncated),
        }
    }

    /// Parse a complete head from `buf`; returns its length.
    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(ParseError::HeadTooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::Malformed),
        };
        if n > MAX_HEAD {
            return Err(ParseError::HeadTooLarge);
        }
        let status = resp.code.ok_or(ParseError::Malformed)?;
        if (100..200).contains(&status) {
            return Ok(Some(n));
        }
        let http10 = resp.version == Some(0);
        let mut close = false;
        let mut keep_alive = false;
        let mut chunked = false;
        let mut length: Option<u64> = None;
        let mut degraded = false;
        let mut immediate_fail = false;
        for h in resp.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let t = token.trim_ascii();
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .split(|&b| b == b',')
                    .next_back()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value).map_err(|_| ParseError::Malformed)?;
                let v: u64 = v.trim().parse().map_err(|_| ParseError::Malformed)?;
                if length.is_some_and(|l| l != v) {
                    return Err(ParseError::Malformed);
                }
                length = Some(v);
            } else if name.eq_ignore_ascii_case("x-envoy-degraded") {
                degraded = true;
            } else if name.eq_ignore_ascii_case("x-envoy-immediate-health-check-fail") {
                immediate_fail = true;
            }
        }
        if http10 {
            close |= !keep_alive;
        }
        let no_body = self.head_request || status == 204 || status == 304;
        self.state = if no_body {
            State::Length(0)
        } else if chunked {
            State::Chunked(Chunk::Size)
        } else if let Some(l) = length {
            State::Length(l)
        } else {
            close = true;
            State::UntilClose
        };
        self.response = Some(Response { status, degraded, immediate_fail, close });
        Ok(Some(n))
    }

    /// Advance the chunked decoder; `Some(result)` to return from `feed`.
    #[allow(clippy::type_complexity)]
    fn chunk(&mut self, c: Chunk, buf: &mut Vec<u8>) -> Result<Option<Option<Response>>, ParseError> {
        match c {
            Chunk::Size | Chunk::Trailers | Chunk::DataEnd => {
                let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                    if buf.len() > MAX_HEAD {
                        return Err(ParseError::Malformed);
                    }
                    return Ok(Some(None));
                };
                let line = &buf[..eol];
                let next = match c {
                    Chunk::Size => {
                        let digits = line.split(|&b| b == b';').next().unwrap_or(b"");
                        let s = std::str::from_utf8(digits).map_err(|_| ParseError::Malformed)?;
                        let size = u64::from_str_radix(s.trim(), 16).map_err(|_| ParseError::Malformed)?;
                        if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        }
                    }
                    Chunk::DataEnd if !line.is_empty() => return Err(ParseError::Malformed),
                    Chunk::DataEnd => Chunk::Size,
                    _ if line.is_empty() => {
                        buf.drain(..eol + 2);
                        return Ok(Some(self.response.take()));
                    }
                    _ => Chunk::Trailers,
                };
                buf.drain(..eol + 2);
                self.state = State::Chunked(next);
                Ok(None)
            }
            Chunk::Data(left) => {
                let n = (buf.len() as u64).min(left);
                buf.drain(..n as usize);
                if n == left {
                    self.state = State::Chunked(Chunk::DataEnd);
                    Ok(None)
                } else {
                    self.state = State::Chunked(Chunk::Data(left - n));
                    Ok(Some(None))
                }
            }
        }
    }
}
