//! An HTTP/2 origin (h2c, prior knowledge) for tests on both backends: the `h2`
//! crate's server over a [`Conn`], one thread per connection polling all its streams.
//!
//! The path picks the behaviour, as for [`crate::http_origin`]:
//! - `/delay/MS/...` answers after MS milliseconds (other streams go on meanwhile);
//! - `/status/N` answers status N;
//! - `/bytes/N` answers N pattern bytes;
//! - `/trailers` answers with trailers `x-trailer: done`, `grpc-status: 0`;
//! - `/refuse-once/...` resets the stream with REFUSED_STREAM the first time;
//! - `/grpc-fail-once/N/...` answers a trailers-only gRPC status N the first time;
//! - `/grpc/N/...` answers as a gRPC server: `content-type: application/grpc`, the
//!   request body echoed in two DATA frames, trailers `grpc-status: N` (and
//!   `grpc-message: failed N` when N is not 0);
//! - `/headers/N` answers with N extra headers `x-h-0` .. `x-h-(N-1)`;
//! - `/goaway` answers, then sends GOAWAY (the connection ends after its streams);
//! - anything else echoes `METHOD PATH\n` then the request body.
//!
//! Every response carries `x-origin: NAME` and `x-origin-protocol: HTTP/2`. The origin
//! records each request (method, path, headers, body, trailers), counts connections,
//! tracks the most streams it ever had open at once, and stops on drop.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};

use crate::conn::{Acceptor, Conn, Listener};
use crate::h2_client::Blocking;
use crate::http_origin::{pattern, Seen};

struct Shared {
    name: String,
    seen: Mutex<Vec<Seen>>,
    trailers: Mutex<Vec<Vec<(String, String)>>>,
    max_open: AtomicUsize,
    stop: AtomicBool,
    refused: Mutex<std::collections::HashSet<String>>,
}

pub struct H2Origin {
    pub addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    acceptor: Acceptor,
}

impl H2Origin {
    /// An origin on `listener` advertising `max_concurrent_streams` (None: unlimited).
    pub fn serve(listener: Listener, name: &str, max_concurrent_streams: Option<u32>) -> H2Origin {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            seen: Mutex::new(Vec::new()),
            trailers: Mutex::new(Vec::new()),
            max_open: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            refused: Mutex::new(std::collections::HashSet::new()),
        });
        let sh = Arc::clone(&shared);
        let acceptor = Acceptor::start(listener, move |c, id| serve(c, id, Arc::clone(&sh), max_concurrent_streams));
        H2Origin { addr: acceptor.addr, shared, acceptor }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Request trailers received, per request with trailers.
    pub fn trailers(&self) -> Vec<Vec<(String, String)>> {
        self.shared.trailers.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.acceptor.accepted()
    }

    /// The most streams open at once on one connection.
    pub fn max_open_streams(&self) -> usize {
        self.shared.max_open.load(Ordering::Relaxed)
    }
}

impl Drop for H2Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

struct Task {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    recv: RecvStream,
    body: Vec<u8>,
    trailers: Option<Vec<(String, String)>>,
    respond: SendResponse<Bytes>,
    /// The request arrived whole at.
    done_at: Option<Instant>,
    connection: usize,
}

fn serve(conn: Conn, id: usize, sh: Arc<Shared>, max_streams: Option<u32>) {
    let _ = conn.set_nodelay(true);
    conn.set_read_timeout(Some(Duration::from_millis(2))).expect("read timeout");
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut b = h2::server::Builder::new();
    if let Some(n) = max_streams {
        b.max_concurrent_streams(n);
    }
    let mut hs = Box::pin(b.handshake::<_, Bytes>(Blocking::new(conn)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut h = loop {
        match hs.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(h)) => break h,
            Poll::Ready(Err(_)) => return,
            Poll::Pending if Instant::now() > deadline || sh.stop.load(Ordering::Relaxed) => return,
            Poll::Pending => {}
        }
    };
    let mut tasks: Vec<Task> = Vec::new();
    let mut goaway = false;
    while !sh.stop.load(Ordering::Relaxed) {
        match h.poll_accept(&mut cx) {
            Poll::Ready(Some(Ok((req, respond)))) => {
                let (parts, recv) = req.into_parts();
                sh.max_open.fetch_max(tasks.len() + 1, Ordering::Relaxed);
                let headers = parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                tasks.push(Task {
                    method: parts.method.to_string(),
                    path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                    headers,
                    recv,
                    body: Vec::new(),
                    trailers: None,
                    respond,
                    done_at: None,
                    connection: id,
                });
                continue;
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return,
            Poll::Pending => {}
        }
        let mut i = 0;
        while i < tasks.len() {
            match advance(&mut tasks[i], &sh, &mut cx) {
                Some(go) => {
                    goaway |= go;
                    tasks.swap_remove(i);
                }
                None => i += 1,
            }
        }
        if goaway {
            goaway = false;
            h.graceful_shutdown();
        }
    }
}

/// Read the request, answer once due; `Some(goaway)` when the stream is finished.
fn advance(t: &mut Task, sh: &Shared, cx: &mut Context<'_>) -> Option<bool> {
    if t.done_at.is_none() {
        loop {
            match t.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(d))) => {
                    let _ = t.recv.flow_control().release_capacity(d.len());
                    t.body.extend_from_slice(&d);
                }
                Poll::Ready(Some(Err(_))) => return Some(false),
                Poll::Ready(None) => {
                    match t.recv.poll_trailers(cx) {
                        Poll::Ready(Ok(tr)) => {
                            t.trailers = tr.map(|m| {
                                m.iter()
                                    .map(|(n, v)| {
                                        (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                                    })
                                    .collect()
                            });
                        }
                        Poll::Ready(Err(_)) => return Some(false),
                        Poll::Pending => return None,
                    }
                    t.done_at = Some(Instant::now());
                    sh.seen.lock().unwrap().push(Seen {
                        method: t.method.clone(),
                        path: t.path.clone(),
                        headers: t.headers.clone(),
                        body: t.body.clone(),
                        connection: t.connection,
                    });
                    if let Some(tr) = &t.trailers {
                        sh.trailers.lock().unwrap().push(tr.clone());
                    }
                    break;
                }
                Poll::Pending => return None,
            }
        }
    }
    let seg: Vec<&str> = t.path.split('/').collect();
    if seg.get(1) == Some(&"delay") {
        let ms: u64 = seg.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        if t.done_at.expect("set").elapsed() < Duration::from_millis(ms) {
            return None;
        }
    }
    if seg.get(1) == Some(&"refuse-once") && sh.refused.lock().unwrap().insert(t.path.clone()) {
        t.respond.send_reset(Reason::REFUSED_STREAM);
        return Some(false);
    }
    if seg.get(1) == Some(&"grpc-fail-once") && sh.refused.lock().unwrap().insert(t.path.clone()) {
        // A trailers-only gRPC response with grpc-status N.
        let resp = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", seg.get(2).copied().unwrap_or("2"))
            .header("x-origin", sh.name.as_str())
            .body(())
            .expect("response");
        let _ = t.respond.send_response(resp, true);
        return Some(false);
    }
    if seg.get(1) == Some(&"grpc") {
        let code = seg.get(2).copied().unwrap_or("0");
        let resp = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("x-origin", sh.name.as_str())
            .body(())
            .expect("response");
        let Ok(mut send) = t.respond.send_response(resp, false) else { return Some(false) };
        let (a, b) = t.body.split_at(t.body.len() / 2);
        let _ = send.send_data(Bytes::copy_from_slice(a), false);
        let _ = send.send_data(Bytes::copy_from_slice(b), false);
        let mut m = http::HeaderMap::new();
        m.insert("grpc-status", http::HeaderValue::from_str(code).expect("status"));
        if code != "0" {
            m.insert("grpc-message", http::HeaderValue::from_str(&format!("failed {code}")).expect("message"));
        }
        let _ = send.send_trailers(m);
        return Some(false);
    }
    let status: u16 = match seg.get(1) {
        Some(&"status") => seg.get(2).and_then(|s| s.parse().ok()).unwrap_or(200),
        _ => 200,
    };
    let body = match seg.get(1) {
        Some(&"bytes") => pattern(seg.get(2).and_then(|s| s.parse().ok()).unwrap_or(0)),
        _ => {
            let mut b = format!("{} {}\n", t.method, t.path).into_bytes();
            b.extend_from_slice(&t.body);
            b
        }
    };
    let trailers = seg.get(1) == Some(&"trailers");
    let mut resp = http::Response::builder()
        .status(status)
        .header("x-origin", sh.name.as_str())
        .header("x-origin-protocol", "HTTP/2");
    if seg.get(1) == Some(&"headers") {
        for i in 0..seg.get(2).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0) {
            resp = resp.header(format!("x-h-{i}"), "v");
        }
    }
    let resp = resp.body(()).expect("response");
    let Ok(mut send) = t.respond.send_response(resp, false) else { return Some(false) };
    let _ = send.send_data(Bytes::from(body), !trailers);
    if trailers {
        let mut m = http::HeaderMap::new();
        m.insert("x-trailer", http::HeaderValue::from_static("done"));
        m.insert("grpc-status", http::HeaderValue::from_static("0"));
        let _ = send.send_trailers(m);
    }
    Some(seg.get(1) == Some(&"goaway"))
}
