//! The HTTP stream filter contract (Envoy's `envoy/http/filter.h`).
//!
//! A filter sees one stream as request and response heads, body chunks and trailers —
//! never protocol bytes — so the same filter runs on HTTP/1 and HTTP/2 streams. Hooks
//! are named after the phase they run in: `decode_*` on the request (in config order),
//! `encode_*` on the response (in reverse order). Each hook answers whether iteration
//! goes on (`Continue`) or stops at this filter; a stopped filter resumes the chain
//! from [`StreamFilter::on_timer`] (a delay it asked for) or the connection manager
//! resumes it through [`crate::http::filter_manager::FilterManager::continue_decoding`].
//! A filter answers locally through [`FilterCallbacks::send_local_reply`]; the reply then
//! runs through the encoder filters as Envoy's `sendLocalReply` does. Filters mutate
//! the heads they are handed in place (add, modify, remove headers). A filter never
//! reads the clock (`now` is given), never blocks and never panics on input.

use std::net::SocketAddr;
use std::time::Instant;

use sluice_config::metadata::Struct;

use crate::http::response_flags::ResponseFlags;

/// `FilterHeadersStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersStatus {
    /// Go on to the next filter.
    Continue,
    /// Stop here; later filters see the headers once this one resumes. Body data that
    /// arrives meanwhile goes on to this filter's `decode_data`.
    StopIteration,
    /// Stop here and buffer every body chunk until this filter resumes (bounded by
    /// the connection's buffer limit: 413 on requests, 500 on responses).
    StopAllIterationAndBuffer,
}

/// `FilterDataStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    Continue,
    /// Keep this chunk (and later ones) buffered until the filter continues; the limit
    /// applies.
    StopIterationAndBuffer,
    /// Hold the chunk back from later filters without buffering more.
    StopIterationNoBuffer,
    /// Keep this chunk buffered (whatever the limit: it is the last one taken) and read
    /// no more of the request body until the filter continues: the rest waits in the
    /// codec, which pushes back on the client (Envoy's flow control instead of a 413).
    /// A filter that holds the headers and waits for an async answer returns this.
    StopIterationAndWatermark,
}

/// `FilterTrailersStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailersStatus {
    Continue,
    StopIteration,
}

/// What a filter may know of its stream besides the message (Envoy's `StreamInfo`
/// and connection, as far as our filters use them).
#[derive(Debug, Clone, Copy)]
pub struct StreamContext<'a> {
    pub now: Instant,
    /// The client address after XFF processing (`remote_ip`).
    pub remote: SocketAddr,
    /// The peer of the downstream connection (`direct_remote_ip`).
    pub direct_remote: SocketAddr,
    /// The downstream connection's local address (`destination_ip`/`destination_port`).
    pub local: SocketAddr,
    /// The SNI of a TLS connection.
    pub sni: Option<&'a str>,
    /// The verified client certificate's principal names (URI SANs, then DNS SANs,
    /// then the subject), empty without mTLS.
    pub peer_principals: &'a [String],
    /// The downstream connection is TLS.
    pub tls: bool,
    /// The route's cluster (`""` for a route without one).
    pub cluster: &'a str,
    /// Admin `/healthcheck/fail` is in force.
    pub health_check_failed: bool,
    /// The request matched a forwarding route (Envoy's route entry; CORS acts only
    /// on such requests).
    pub routed: bool,
    /// The runtime snapshot in force (fault percentages, ...).
    pub runtime: &'a crate::runtime::Snapshot,
}

impl StreamContext<'_> {
    /// Whether a `RuntimeFractionalPercent` hits for `random`: the runtime key's value
    /// when the runtime has one, else the default (Envoy's `featureEnabled`).
    pub fn enabled(&self, p: &sluice_config::core::RuntimeFractionalPercent, random: u64) -> bool {
        self.runtime.feature_enabled_fraction(&p.runtime_key, p.default_value, random)
    }
}

/// What the filters see of the downstream connection beyond its addresses, computed
/// once per connection on its first request (the TLS handshake is over by then).
#[derive(Debug, Clone, Default)]
pub struct PeerFacts {
    /// The SNI of a TLS connection.
    pub sni: Option<String>,
    /// The verified client certificate's principal names (parsed only when a filter
    /// needs them: RBAC).
    pub principals: Vec<String>,
    /// The downstream connection is TLS.
    pub tls: bool,
}

impl PeerFacts {
    /// No TLS, no client certificate (before the first request).
    pub const NONE: PeerFacts = PeerFacts { sni: None, principals: Vec::new(), tls: false };

    /// The facts of `transport`; principal names only `with_principals`.
    pub fn of(transport: &crate::transport::TransportSocket, with_principals: bool) -> PeerFacts {
        let sni = transport.server_name().map(str::to_string);
        let principals = if with_principals { principals(transport) } else { Vec::new() };
        PeerFacts { sni, principals, tls: transport.is_tls() }
    }
}

/// The names an mTLS client's certificate presents, in Envoy's `principal_name` order:
/// URI SANs, DNS SANs, then the subject; empty without a client certificate.
fn principals(transport: &crate::transport::TransportSocket) -> Vec<String> {
    let Some(chain) = transport.peer_certificates() else {
        return Vec::new();
    };
    let names = crate::tls::cert_info::CertNames::of(chain[0].as_ref());
    let mut out = names.uri_sans;
    out.extend(names.dns_sans);
    if !names.subject.is_empty() {
        out.push(names.subject);
    }
    out
}

/// A local reply asked for by a filter (`sendLocalReply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub body: Vec<u8>,
    /// Headers set on the reply, after the defaults.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub details: &'static str,
}

/// The callbacks a filter hook is handed (Envoy's `StreamDecoderFilterCallbacks`).
#[derive(Debug, Default)]
pub struct FilterCallbacks {
    pub(crate) local_reply: Option<LocalReply>,
    pub(crate) wake_at: Option<Instant>,
    pub(crate) flags: ResponseFlags,
    pub(crate) random: u64,
    /// `setDynamicMetadata` calls of this hook, in order.
    pub(crate) metadata: Vec<(String, Struct)>,
    /// `setDecoderBufferLimit`.
    pub(crate) decoder_buffer_limit: Option<usize>,
    /// Async requests this hook asked for (started by the connection manager).
    pub(crate) calls: Vec<crate::http::async_client::Call>,
    /// `clearRouteCache`: the route is picked again before the router runs.
    pub(crate) clear_route_cache: bool,
    /// `addEncodedData` from `encode_trailers`: body bytes that go on to the later
    /// encoder filters before the trailers.
    pub(crate) added_data: Vec<u8>,
    /// Changes to the response head this filter holds (it stopped `encode_headers`).
    pub(crate) head_edits: Vec<HeadEdit>,
    /// The request head as the filter holding it left it, from a data hook (applied
    /// when decoding continues past that filter).
    pub(crate) request_head: Option<crate::http::RequestHead>,
    /// `modifyDecodingBuffer` from `on_async_complete`: the request body the filter
    /// holds (it took it with `StopIterationAndWatermark`) is replaced by this.
    pub(crate) decoding_buffer: Option<Vec<u8>>,
    /// Fire-and-forget requests (started as the worker's own).
    pub(crate) detached: Vec<crate::http::async_client::Call>,
}

/// A change to a response head a filter stopped in `encode_headers` and edits later
/// (Envoy's filters keep a pointer to the held header map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadEdit {
    Status(u16),
    Set(&'static [u8], Vec<u8>),
    /// Replace every header (a script that rewrote the held head).
    Headers(crate::http::HeaderMap),
}

impl FilterCallbacks {
    /// Answer the stream locally. The hook should return a stop status; iteration ends.
    pub fn send_local_reply(
        &mut self,
        status: u16,
        body: &[u8],
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        details: &'static str,
    ) {
        self.local_reply = Some(LocalReply { status, body: body.to_vec(), headers, details });
    }

    /// Wake this filter's `on_timer` at `at` (a stopped filter's delay).
    pub fn wake_at(&mut self, at: Instant) {
        self.wake_at = Some(at);
    }

    /// Set a response flag (`%RESPONSE_FLAGS%`).
    pub fn set_flag(&mut self, flag: ResponseFlags) {
        self.flags.set(flag);
    }

    /// `StreamInfo::setDynamicMetadata(ns, fields)`: merge `fields` into the stream's
    /// dynamic metadata namespace `ns` (headers, trailers and timer hooks).
    pub fn set_dynamic_metadata(&mut self, ns: &str, fields: Struct) {
        self.metadata.push((ns.to_string(), fields));
    }

    /// `setDecoderBufferLimit`: the request body this stream's filters may hold (instead
    /// of the connection's limit). The connection manager then hands the request body
    /// to the filters while they hold the headers.
    pub fn set_decoder_buffer_limit(&mut self, limit: usize) {
        self.decoder_buffer_limit = Some(limit);
    }

    /// Send `request` through `client` (Envoy's `AsyncClient::send`); the outcome comes
    /// back to this filter's [`StreamFilter::on_async_complete`] with `tag`. The hook
    /// usually stops iteration until then.
    pub fn send_request(
        &mut self,
        client: &std::sync::Arc<crate::http::async_client::AsyncClient>,
        request: crate::http::async_client::Request,
        tag: u32,
    ) {
        self.calls.push(crate::http::async_client::Call { client: std::sync::Arc::clone(client), request, tag });
    }

    /// Send `request` through `client` and forget it: a worker-owned request that
    /// outlives the stream, whose answer nobody reads (Envoy's `AsyncClient::send`
    /// with no-op callbacks: Lua's asynchronous `httpCall`).
    pub fn send_request_detached(
        &mut self,
        client: &std::sync::Arc<crate::http::async_client::AsyncClient>,
        request: crate::http::async_client::Request,
    ) {
        let call = crate::http::async_client::Call { client: std::sync::Arc::clone(client), request, tag: 0 };
        self.detached.push(call);
    }

    /// `clearRouteCache`: the request's route is matched again (on the headers as the
    /// filters left them) before the router takes it.
    pub fn clear_route_cache(&mut self) {
        self.clear_route_cache = true;
    }

    /// `addEncodedData` from `encode_trailers`: `data` goes on to the later encoder
    /// filters (and the client) ahead of the trailers.
    pub fn add_encoded_data(&mut self, data: &[u8]) {
        self.added_data.extend_from_slice(data);
    }

    /// Edit the response head this filter holds (after `encode_headers` stopped), from
    /// its `encode_data` or `encode_trailers`.
    pub fn edit_held_response(&mut self, edit: HeadEdit) {
        self.head_edits.push(edit);
    }

    /// From `decode_data` of the filter that stopped the request headers: the head it
    /// held, changed, goes on in place of the one it stopped (Envoy's filters keep a
    /// pointer to the held request header map).
    pub fn replace_held_request(&mut self, head: crate::http::RequestHead) {
        self.request_head = Some(head);
    }

    /// From `on_async_complete` of the filter that took the request body with
    /// `StopIterationAndWatermark`: that body becomes `body` before it goes on (Envoy's
    /// `modifyDecodingBuffer`).
    pub fn modify_decoding_buffer(&mut self, body: Vec<u8>) {
        self.decoding_buffer = Some(body);
    }

    /// A uniform random number (drawn once per hook call by the connection manager).
    pub fn random(&self) -> u64 {
        self.random
    }
}

/// What a filter that held the response while an async request of its own ran lets
/// go once the answer came (Envoy's `continueEncoding` from the request's callbacks).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EncodeResume {
    /// The response ended while the filter held it: the end goes on after the bytes
    /// the filter adds ([`FilterCallbacks::add_encoded_data`]).
    pub end: bool,
    /// The response trailers the filter held (they end the response).
    pub trailers: Option<crate::http::HeaderMap>,
}

/// One filter instance on one stream. Every hook has Envoy's default (pass through).
pub trait StreamFilter {
    fn decode_headers(
        &mut self,
        _head: &mut crate::http::RequestHead,
        _end_stream: bool,
        _cx: &StreamContext<'_>,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        HeadersStatus::Continue
    }

    fn decode_data(&mut self, _data: &mut Vec<u8>, _end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        DataStatus::Continue
    }

    fn decode_trailers(&mut self, _trailers: &mut crate::http::HeaderMap, _cb: &mut FilterCallbacks) -> TrailersStatus {
        TrailersStatus::Continue
    }

    fn encode_headers(
        &mut self,
        _head: &mut crate::http::ResponseHead,
        _end_stream: bool,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        HeadersStatus::Continue
    }

    fn encode_data(&mut self, _data: &mut Vec<u8>, _end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        DataStatus::Continue
    }

    fn encode_trailers(&mut self, _trailers: &mut crate::http::HeaderMap, _cb: &mut FilterCallbacks) -> TrailersStatus {
        TrailersStatus::Continue
    }

    /// The time this filter asked for through [`FilterCallbacks::wake_at`] came;
    /// `Continue` resumes decoding after this filter.
    fn on_timer(&mut self, _cx: &StreamContext<'_>, _cb: &mut FilterCallbacks) -> HeadersStatus {
        HeadersStatus::Continue
    }

    /// The async request this filter sent with `tag` ended (see
    /// [`FilterCallbacks::send_request`]); `head` is the request's, to mutate before it
    /// goes on. `Continue` resumes decoding after this filter when it had stopped.
    fn on_async_complete(
        &mut self,
        _tag: u32,
        _outcome: crate::http::async_client::Outcome,
        _head: &mut crate::http::RequestHead,
        _cx: &StreamContext<'_>,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        HeadersStatus::Continue
    }

    /// An async request this filter sent with `tag` ended after the decoder filters
    /// were done (one sent from an encoder hook, while the filter holds the response).
    /// `Some` lets what it holds go on, from the next encoder filter: the held head (with
    /// its [`FilterCallbacks::edit_held_response`] edits), the bytes it adds through
    /// [`FilterCallbacks::add_encoded_data`], then the end of the response it held.
    /// `None`: it still holds (it may have sent another request).
    fn on_encode_async_complete(
        &mut self,
        _tag: u32,
        _outcome: crate::http::async_client::Outcome,
        _cb: &mut FilterCallbacks,
    ) -> Option<EncodeResume> {
        None
    }

    /// The stream ended (completed, reset or answered): release what it holds.
    fn on_destroy(&mut self) {}
}
