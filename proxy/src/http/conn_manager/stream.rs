//! One request/response exchange on a downstream connection (Envoy's `ActiveStream`).
//!
//! HTTP/1 carries one stream at a time, so an HTTP/1 connection keeps one `Stream` and
//! reuses its buffers (head strings, header arenas) from request to request; an HTTP/2
//! connection has one per open stream and reuses those of finished streams.

use std::time::{Instant, SystemTime};

use crate::http::async_client::AsyncCalls;
use crate::http::codec::{BodyDecoder, BodyEncoder, BodyFraming, RequestMeta};
use crate::http::conn_manager::upgrade::UpgradeKind;
use crate::http::filter_manager::FilterManager;
use crate::http::filters::router::RouterState;
use crate::http::filters::ActiveFilter;
use crate::http::response_flags::ResponseFlags;
use crate::http::tunnel::Tunnel;
use crate::http::{RequestHead, ResponseHead, Version};
use crate::router::internal_redirect::RedirectState;
use crate::router::RouteRef;
use crate::trace::span::StreamTrace;

/// Where the decoder-filter chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterPhase {
    /// The filters have the request headers (running, or stopped by one of them).
    Decoding,
    /// All decoder filters ran (or one answered); the router owns the request.
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
    /// The route forwards (Envoy's route entry; not a redirect or direct response).
    pub forwarding: bool,
    pub phase: FilterPhase,
    /// The stream's HTTP filter chain.
    pub filters: FilterManager<ActiveFilter>,
    /// The filters' async requests in flight.
    pub async_calls: AsyncCalls,
    /// The random value the encoder filters get (drawn when the decoders ran).
    pub encode_random: u64,
    /// Boxed: the router state is large and streams move it out and back on every turn.
    pub router: Option<Box<RouterState>>,
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
    /// The `grpc-status` of the response's trailers (`%GRPC_STATUS%`).
    pub resp_grpc_status: Option<u8>,
    /// The client address Envoy uses for this request (after XFF processing).
    pub remote: Option<std::net::SocketAddr>,
    /// Last time bytes moved for this stream (stream idle timeout).
    pub last_activity: Instant,
    /// The connection must close after this response.
    pub close_after: bool,
    /// An allowed upgrade or CONNECT, and its tunnel once the upstream switched.
    pub upgrade: UpgradeKind,
    pub tunnel: Option<Box<Tunnel>>,
    /// Internal redirects followed (Envoy's filter state, kept across the recreated
    /// streams of one request).
    pub redirects: RedirectState,
    /// The request body an internal redirect replays (the router's buffered copy).
    pub replay_body: Option<Vec<u8>>,
    /// The request's span and decorator (connection managers with `tracing`).
    pub trace: Option<Box<StreamTrace>>,
    /// What the filters hold between the router's calls (request bytes they rewrote,
    /// a response head they stopped).
    pub filter_io: crate::http::filter_stream::FilterIo,
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
            forwarding: false,
            phase: FilterPhase::Decoding,
            filters: FilterManager::new(0),
            async_calls: AsyncCalls::default(),
            encode_random: 0,
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
            resp_grpc_status: None,
            remote: None,
            last_activity: now,
            close_after: false,
            upgrade: UpgradeKind::None,
            tunnel: None,
            redirects: RedirectState::default(),
            replay_body: None,
            trace: None,
            filter_io: Default::default(),
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
        self.forwarding = false;
        self.phase = FilterPhase::Decoding;
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
        self.resp_grpc_status = None;
        self.remote = None;
        self.last_activity = now;
        self.close_after = !meta.keep_alive;
        self.upgrade = UpgradeKind::None;
        self.redirects = RedirectState::default();
        self.replay_body = None;
        self.trace = None;
        self.filter_io.clear();
    }

    /// The request's HTTP version.
    pub fn version(&self) -> Version {
        self.head.version.unwrap_or(Version::Http11)
    }
}
