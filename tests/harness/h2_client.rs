//! A blocking HTTP/2 client for tests on both backends: the `h2` crate over a [`Conn`].
//!
//! `h2` is polled by hand on the test's thread: the transport's reads wait a few
//! milliseconds and then answer `Pending` (so that `h2` writes what it queued), and the
//! test's thread polls again until its request is answered, at most 20 s. Requests may be started several at a time
//! ([`H2Client::start`]) and then collected ([`H2Client::finish`]), so that streams are
//! concurrent on one connection.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::{Connection, ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::Conn;

/// How long a read waits before `h2` gets `Pending` (and may write what it queued).
const READ_SLICE: Duration = Duration::from_millis(5);
/// How long a test waits for the proxy before the request fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// The transport: reads wait a short slice, then answer `Pending`; writes block. A read
/// that follows one that returned bytes, or one asked to be skipped
/// ([`Blocking::skip_handle`]), answers `Pending` at once, so that the poller sees what
/// arrived, and `h2` writes what it queued, before a read waits (`h2` reads before it
/// writes: else every request and every answer would cost a slice).
pub struct Blocking {
    conn: Conn,
    skip_read: Arc<AtomicBool>,
}

impl Blocking {
    pub fn new(conn: Conn) -> Blocking {
        Blocking { conn, skip_read: Arc::default() }
    }

    /// Set it to make the next read answer `Pending` without waiting.
    pub fn skip_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.skip_read)
    }
}

impl AsyncRead for Blocking {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.skip_read.swap(false, Ordering::Relaxed) {
            return Poll::Pending;
        }
        match self.conn.read(buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                self.skip_read.store(n > 0, Ordering::Relaxed);
                Poll::Ready(Ok(()))
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Blocking {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.conn.write(data))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.conn.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// A response: status, headers, body, trailers; or how the stream ended without one.
#[derive(Debug, Clone)]
pub struct H2Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
}

impl H2Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request in flight.
pub struct Pending {
    response: ResponseFuture,
    body: Option<(SendStream<Bytes>, Vec<u8>)>,
}

/// One HTTP/2 connection (prior knowledge) to the proxy.
pub struct H2Client {
    conn: Connection<Blocking, Bytes>,
    send: SendRequest<Bytes>,
    waker: Waker,
    /// The transport's [`Blocking::skip_handle`].
    skip_read: Arc<AtomicBool>,
}

impl H2Client {
    /// Handshake on `conn` (HTTP/2 with prior knowledge, or after ALPN `h2`).
    pub fn handshake(conn: Conn) -> Result<H2Client, h2::Error> {
        let waker = Waker::from(Arc::new(NoopWake));
        let mut cx = Context::from_waker(&waker);
        conn.set_read_timeout(Some(READ_SLICE)).expect("read timeout");
        let io = Blocking::new(conn);
        let skip_read = io.skip_handle();
        let mut hs = Box::pin(h2::client::handshake(io));
        let deadline = Instant::now() + PATIENCE;
        let (send, conn) = loop {
            if let Poll::Ready(r) = hs.as_mut().poll(&mut cx) {
                break r?;
            }
            if Instant::now() > deadline {
                return Err(timed_out());
            }
        };
        Ok(H2Client { conn, send, waker, skip_read })
    }

    /// Poll `f` until it is ready, driving the connection (blocking reads) meanwhile.
    fn run<T>(&mut self, f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Result<T, h2::Error> {
        drive(&mut self.conn, &self.skip_read, &self.waker, f)
    }

    /// Start `method path` with `headers` and `body` (sent as the window allows when the
    /// request is finished).
    pub fn start(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Pending {
        self.start_at("sluice.test", method, path, headers, body)
    }

    /// [`H2Client::start`] with `:authority` `authority`.
    pub fn start_at(
        &mut self,
        authority: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Pending {
        let mut req = http::Request::builder().method(method).uri(format!("http://{authority}{path}"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(()).expect("a valid request");
        drive(&mut self.conn, &self.skip_read, &self.waker, |cx| self.send.poll_ready(cx))
            .expect("connection")
            .expect("ready for a request");
        let (response, stream) = self.send.send_request(req, body.is_empty()).expect("send_request");
        Pending { response, body: (!body.is_empty()).then(|| (stream, body.to_vec())) }
    }

    /// `method path` with a small `body` and then `trailers`, and its response.
    pub fn request_with_trailers(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        trailers: &[(&str, &str)],
    ) -> Result<H2Response, h2::Error> {
        self.request_with_headers_and_trailers(method, path, &[], body, trailers)
    }

    /// [`H2Client::request_with_trailers`] with request `headers` too.
    pub fn request_with_headers_and_trailers(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        trailers: &[(&str, &str)],
    ) -> Result<H2Response, h2::Error> {
        let mut req = http::Request::builder().method(method).uri(format!("http://sluice.test{path}"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(()).expect("a valid request");
        drive(&mut self.conn, &self.skip_read, &self.waker, |cx| self.send.poll_ready(cx))??;
        let (response, mut stream) = self.send.send_request(req, false)?;
        if !body.is_empty() {
            stream.send_data(Bytes::copy_from_slice(body), false)?;
        }
        let mut t = http::HeaderMap::new();
        for (n, v) in trailers {
            t.append(
                http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        stream.send_trailers(t)?;
        self.finish(Pending { response, body: None })
    }

    /// Send the rest of `p`'s body and read its response; `Err` when the stream or
    /// connection was reset.
    pub fn finish(&mut self, mut p: Pending) -> Result<H2Response, h2::Error> {
        if let Some((mut stream, body)) = p.body.take() {
            let mut sent = 0;
            while sent < body.len() {
                // `poll_capacity` only reports increases: use what is assigned first.
                stream.reserve_capacity(body.len() - sent);
                let mut n = stream.capacity();
                if n == 0 {
                    n = self.run(|cx| stream.poll_capacity(cx))?.expect("capacity")?;
                }
                let n = n.min(body.len() - sent);
                let end = sent + n >= body.len();
                stream.send_data(Bytes::copy_from_slice(&body[sent..sent + n]), end)?;
                sent += n;
            }
        }
        let response = &mut p.response;
        let resp = self.run(|cx| Pin::new(&mut *response).poll(cx))??;
        let (parts, mut recv) = resp.into_parts();
        let body = self.read_body(&mut recv)?;
        let trailers = self.run(|cx| recv.poll_trailers(cx))??;
        Ok(H2Response { status: parts.status.as_u16(), headers: parts.headers, body, trailers })
    }

    /// Read a whole body, releasing flow control as it goes.
    pub fn read_body(&mut self, recv: &mut RecvStream) -> Result<Vec<u8>, h2::Error> {
        let mut body = Vec::new();
        while let Some(chunk) = self.run(|cx| recv.poll_data(cx))? {
            let chunk = chunk?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// One request, start to end.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<H2Response, h2::Error> {
        let p = self.start(method, path, headers, body);
        self.finish(p)
    }

    /// `GET path`, which must get a response.
    pub fn get(&mut self, path: &str) -> H2Response {
        self.request("GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The response head of `p` only; its body is left unread (a slow reader).
    pub fn head_only(&mut self, mut p: Pending) -> Result<(u16, RecvStream), h2::Error> {
        let response = &mut p.response;
        let resp = self.run(|cx| Pin::new(&mut *response).poll(cx))??;
        let (parts, recv) = resp.into_parts();
        Ok((parts.status.as_u16(), recv))
    }

    /// Poll the connection once: frames queued by [`H2Client::start`] leave now.
    pub fn flush(&mut self) {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        let _ = Pin::new(&mut self.conn).poll(&mut cx);
    }

    /// Drive the connection until it ends (the server's GOAWAY and close), returning
    /// how: `Ok` for a graceful end.
    pub fn run_to_close(&mut self) -> Result<(), h2::Error> {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Poll::Ready(r) = Pin::new(&mut self.conn).poll(&mut cx) {
                return r;
            }
            if Instant::now() > deadline {
                return Err(timed_out());
            }
        }
    }
}

/// Poll `f` until it is ready, polling `conn` (which blocks in its reads) in between.
/// The first poll does not wait in a read: what the caller queued leaves first.
fn drive<T>(
    conn: &mut Connection<Blocking, Bytes>,
    skip_read: &AtomicBool,
    waker: &Waker,
    mut f: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Result<T, h2::Error> {
    let mut cx = Context::from_waker(waker);
    let deadline = Instant::now() + PATIENCE;
    let mut first = true;
    loop {
        if let Poll::Ready(t) = f(&mut cx) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(timed_out());
        }
        if std::mem::take(&mut first) {
            skip_read.store(true, Ordering::Relaxed);
        }
        if let Poll::Ready(r) = Pin::new(&mut *conn).poll(&mut cx) {
            r?;
            if let Poll::Ready(t) = f(&mut cx) {
                return Ok(t);
            }
            return Err(h2::Error::from(Reason::NO_ERROR));
        }
    }
}

/// The test waited [`PATIENCE`] for the proxy: reported as a CANCEL.
fn timed_out() -> h2::Error {
    h2::Error::from(Reason::CANCEL)
}
