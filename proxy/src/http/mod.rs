//! HTTP: message heads, the HTTP/1.1 codec, the connection manager and its filters.

pub mod codec;
pub mod headers;

pub use headers::HeaderMap;

/// HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http09,
    Http10,
    Http11,
    Http2,
}

/// A request head as the connection manager, routing and filters see it.
///
/// For HTTP/1.1 `authority` is the `Host` header (Envoy's `:authority`); `path` is the
/// request target in origin form (path and query). Reused across requests of a
/// connection: `clear` keeps the allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// Method as sent (`GET`, `POST`, ...); methods are case-sensitive.
    pub method: String,
    /// `:scheme`: `http` or `https` (x-forwarded-proto decides upstream).
    pub scheme: String,
    pub authority: String,
    /// Path and query, e.g. `/a/b?x=1`.
    pub path: String,
    pub version: Option<Version>,
    /// Regular headers; `host` is kept out of here (it is `authority`).
    pub headers: HeaderMap,
}

impl RequestHead {
    pub fn clear(&mut self) {
        self.method.clear();
        self.scheme.clear();
        self.authority.clear();
        self.path.clear();
        self.version = None;
        self.headers.clear();
    }

    /// The path without the query string.
    pub fn path_only(&self) -> &str {
        match self.path.find('?') {
            Some(i) => &self.path[..i],
            None => &self.path,
        }
    }

    /// The query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.path.find('?').map(|i| &self.path[i + 1..])
    }
}

/// A response head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Reason phrase as received (we send the canonical one for our own responses).
    pub reason: String,
    pub version: Option<Version>,
    pub headers: HeaderMap,
}

impl ResponseHead {
    pub fn clear(&mut self) {
        self.status = 0;
        self.reason.clear();
        self.version = None;
        self.headers.clear();
    }
}

pub mod async_client;
pub mod codec_client;
pub mod conn_manager;
pub mod date;
pub mod filter;
pub mod filter_manager;
pub mod filter_stream;
pub mod filters;
pub mod flow_control;
pub mod grpc;
pub mod grpc_stats;
pub mod local_reply;
pub mod path;
pub mod request_id;
pub mod response_flags;
pub mod stream_encoder;
pub mod tunnel;
