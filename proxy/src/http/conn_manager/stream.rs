//! One request/response exchange on a downstream connection (Envoy's `ActiveStream`).
//!
//! HTTP/1 carries one stream at a time, so an HTTP/1 connection keeps one `Stream` and
//! reuses its buffers (head strings, header arenas) from request to request; an HTTP/2
//! connection has one per open stream and reuses those of finished streams.

use std::time::{Instant, SystemTime};

use crate::http::codec::{BodyDecoder, BodyEncoder, BodyFraming, RequestMeta};
use crate::http::conn_manager::upgrade::UpgradeKind;
use crate::http::filters::router::RouterState;
use crate::http::response_flags::ResponseFlags;
use crate::http::tunnel::Tunnel;
use crate::http::{RequestHead, ResponseHead, Version};
use crate::router::RouteRef;

/// Where the decoder-filter chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterPhase {
    /// Run decoder filter `n` next.
    Decode(usize),
    /// A fault delay holds the request until `until`; then continue at filter `next`
    /// (aborting with `abort` if the fault also aborts).
    Delayed { until: Instant, next: usize },
    /// All decoder filters ran; the router owns the request.
    Routed,
}

#[derive(Debug)]
pub struct Stream {
    pub active: bool,
    pub head: RequestHead,
    pub meta: RequestMeta,
    /// Decodes the request body off the downstream input.
    pub body: BodyDecoder,
    /// The request body was read completely.
    pub request_done: bool,
    pub start: Instant,
    pub start_time: SystemTime,
    pub route: Option<RouteRef>,
    /// Cluster index of a forwarding route.
    pub cluster: Option<usize>,
    pub phase: FilterPhase,
    /// Fault decisions that hold an active-fault slot: (filter index, abort status,
    /// grpc status).
    pub faults: Vec<(usize, Option<u16>, Option<u32>)>,
    pub router: Option<RouterState>,
    pub response: ResponseHead,
    /// The response head was written downstream.
    pub response_started: bool,
    pub response_done: bool,
    pub response_encoder: BodyEncoder,
    pub flags: ResponseFlags,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Request body bytes (decoded) and response body bytes, as Envoy's
    /// `%BYTES_RECEIVED%` / `%BYTES_SENT%` count them.
    pub rq_body_bytes: u64,
    pub resp_body_bytes: u64,
    /// The last upstream host chosen for this request.
    pub upstream_host: Option<std::net::SocketAddr>,
    /// Upstream tries started (retries included).
    pub attempt_count: u32,
    /// The client address Envoy uses for this request (after XFF processing).
    pub remote: Option<std::net::SocketAddr>,
    /// Last time bytes moved for this stream (stream idle timeout).
    pub last_activity: Instant,
    /// The connection must close after this response.
    pub close_after: bool,
    /// An allowed upgrade or CONNECT, and its tunnel once the upstream switched.
    pub upgrade: UpgradeKind,
    pub tunnel: Option<Box<Tunnel>>,
}

impl Stream {
    pub fn new(now: Instant) -> Stream {
        Stream {
            active: false,
            head: RequestHead::default(),
            meta: RequestMeta {
                head_len: 0,
                framing: BodyFraming::None,
                keep_alive: true,
                expect_continue: false,
                is_head: false,
                is_connect: false,
                upgrade: false,
            },
            body: BodyDecoder::new(BodyFraming::None, 0),
            request_done: false,
            start: now,
            start_time: SystemTime::UNIX_EPOCH,
            route: None,
            cluster: None,
            phase: FilterPhase::Decode(0),
            faults: Vec::new(),
            router: None,
            response: ResponseHead::default(),
            response_started: false,
            response_done: false,
            response_encoder: BodyEncoder::None,
            flags: ResponseFlags::NONE,
            bytes_received: 0,
            bytes_sent: 0,
            rq_body_bytes: 0,
            resp_body_bytes: 0,
            upstream_host: None,
            attempt_count: 0,
            remote: None,
            last_activity: now,
            close_after: false,
            upgrade: UpgradeKind::None,
            tunnel: None,
        }
    }

    /// Start a new exchange (the head was already parsed into `self.head`).
    pub fn begin(&mut self, meta: RequestMeta, body: BodyDecoder, now: Instant, wall: SystemTime) {
        self.active = true;
        self.meta = meta;
        self.request_done = body.is_done();
        self.body = body;
        self.start = now;
        self.start_time = wall;
        self.route = None;
        self.cluster = None;
        self.phase = FilterPhase::Decode(0);
        self.faults.clear();
        self.router = None;
        self.response.clear();
        self.response_started = false;
        self.response_done = false;
        self.response_encoder = BodyEncoder::None;
        self.flags = ResponseFlags::NONE;
        self.bytes_received = meta.head_len as u64;
        self.bytes_sent = 0;
        self.rq_body_bytes = 0;
        self.resp_body_bytes = 0;
        self.upstream_host = None;
        self.attempt_count = 0;
        self.remote = None;
        self.last_activity = now;
        self.close_after = !meta.keep_alive;
        self.upgrade = UpgradeKind::None;
    }

    /// The request's HTTP version.
    pub fn version(&self) -> Version {
        self.head.version.unwrap_or(Version::Http11)
    }
}
