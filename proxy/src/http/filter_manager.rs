//! One stream's filter chain (Envoy's `FilterManager`): decoder filters in config
//! order, encoder filters in reverse, stop and resume, local replies and the buffer
//! limits.
//!
//! The manager owns the stream's filter instances and where iteration stands; the
//! connection manager owns the protocol and hands it heads and body chunks. Decoding
//! the headers ends in one of three ways ([`Decoded`]): every filter continued (the
//! router takes the request), a filter stopped (a timer it asked for, or
//! [`FilterManager::continue_decoding`], resumes it), or a filter answered locally —
//! the connection manager then encodes that reply, which runs the encoder filters as
//! Envoy's `sendLocalReply` does. Body chunks held by a stopped filter are buffered up
//! to `limit` bytes; past it the request gets Envoy's 413 `Payload Too Large` and a
//! response Envoy's 500 `Internal Server Error`. Request trailers run through every
//! filter the headers reached; the filter that holds the stream gets them, and what it
//! held goes on (headers, body, trailers) from the next filter once it continues
//! ([`FilterManager::decode_trailers`]). Whatever a hook leaves in its callbacks
//! (metadata, a cleared route, async requests) counts the same from any hook. Nothing
//! here allocates per chunk except the bounded buffers, and nothing reads the clock.

use std::time::Instant;

use sluice_config::metadata::Metadata;

use crate::http::async_client::{Call, Outcome};
use crate::http::filter::{
    DataStatus, FilterCallbacks, HeadersStatus, LocalReply, StreamContext, StreamFilter, TrailersStatus,
};
use crate::http::response_flags::ResponseFlags;
use crate::http::{HeaderMap, RequestHead, ResponseHead};

/// How decoding (or encoding) the headers ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Every filter continued.
    Continue,
    /// A filter stopped iteration.
    Stopped,
    /// A filter answered locally.
    LocalReply(LocalReply),
}

/// What became of the request trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailersRun {
    /// They passed every filter (as the filters left them).
    Continue(HeaderMap),
    /// A filter holds the stream: they wait ([`FilterManager::resumed_trailers`]).
    Held,
    /// A filter answered.
    LocalReply(LocalReply),
}

/// What became of a body chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// Pass these bytes on (the chunk, with whatever a filter had buffered before it).
    Continue(Vec<u8>),
    /// Held by a filter (buffered, or taken).
    Held,
    /// The buffer limit was passed (413 decoding, 500 encoding) or a filter answered.
    LocalReply(LocalReply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iteration {
    /// Headers go to filter `n` next.
    Headers(usize),
    /// Filter `at` stopped the headers; `buffer`: StopAllIterationAndBuffer.
    Stopped { at: usize, buffer: bool },
    /// Headers passed every filter.
    Done,
    /// A local reply ended iteration.
    Answered,
}

/// One direction's iteration state and held body bytes.
#[derive(Debug)]
struct Side {
    iteration: Iteration,
    /// The filter that buffers body bytes (data StopIterationAndBuffer).
    data_stopped_at: Option<usize>,
    buffer: Vec<u8>,
    /// The filter that stopped the headers continued from its data hook: the headers
    /// go on from the next filter (Envoy resumes iteration then).
    resumable: bool,
    /// The request head the stopped filter changed from its data hook.
    replaced_head: Option<RequestHead>,
    /// The filter that holds the headers took its last chunk
    /// (`StopIterationAndWatermark`): no more body goes to the filters until it
    /// continues, and the body it held then goes on from the next filter.
    watermark: bool,
    /// An encoder filter stopped the trailers (it waits for an async request).
    trailers_held: bool,
    /// Request trailers waiting for the filter that holds the stream, with the index
    /// of the first filter they go to next.
    trailers: Option<(usize, HeaderMap)>,
}

impl Side {
    fn new() -> Side {
        Side {
            iteration: Iteration::Headers(0),
            data_stopped_at: None,
            buffer: Vec::new(),
            resumable: false,
            replaced_head: None,
            watermark: false,
            trailers_held: false,
            trailers: None,
        }
    }
}

/// A stream's filters and their iteration state.
#[derive(Debug)]
pub struct FilterManager<F> {
    filters: Vec<F>,
    decode: Side,
    encode: Side,
    wake_at: Option<Instant>,
    flags: ResponseFlags,
    metadata: Metadata,
    /// `per_connection_buffer_limit_bytes`.
    limit: usize,
    /// Async requests the filters asked for, by filter index, not started yet.
    calls: Vec<(usize, Call)>,
    /// A filter cleared the route cache since the last [`FilterManager::take_route_cleared`].
    route_cleared: bool,
    /// A filter's `setDecoderBufferLimit` (replaces `limit` on requests).
    decode_limit: Option<usize>,
    /// Fire-and-forget requests the filters asked for, not started yet.
    detached: Vec<Call>,
}

const PAYLOAD_TOO_LARGE: &str = "Payload Too Large";
const INTERNAL_ERROR: &str = "Internal Server Error";

impl<F: StreamFilter> FilterManager<F> {
    pub fn new(limit: usize) -> FilterManager<F> {
        FilterManager {
            filters: Vec::new(),
            decode: Side::new(),
            encode: Side::new(),
            wake_at: None,
            flags: ResponseFlags::NONE,
            metadata: Metadata::default(),
            limit,
            calls: Vec::new(),
            route_cleared: false,
            decode_limit: None,
            detached: Vec::new(),
        }
    }

    /// Start a stream with these filters (config order); the previous stream's filters
    /// must have been destroyed.
    pub fn start(&mut self, filters: impl IntoIterator<Item = F>, limit: usize) {
        self.filters.clear();
        self.filters.extend(filters);
        self.decode = Side::new();
        self.encode = Side::new();
        self.wake_at = None;
        self.flags = ResponseFlags::NONE;
        self.metadata.filter_metadata.clear();
        self.limit = limit;
        self.calls.clear();
        self.route_cleared = false;
        self.decode_limit = None;
        self.detached.clear();
    }

    /// The stream ended: every filter's `on_destroy`, once.
    pub fn destroy(&mut self) {
        for f in self.filters.iter_mut() {
            f.on_destroy();
        }
        self.filters.clear();
        self.wake_at = None;
        self.calls.clear();
    }

    /// The async requests the filters asked for since the last call, with the index of
    /// the filter each goes back to.
    pub fn take_calls(&mut self) -> Vec<(usize, Call)> {
        std::mem::take(&mut self.calls)
    }

    /// The fire-and-forget requests the filters asked for since the last call.
    pub fn take_detached(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.detached)
    }

    /// Whether a filter cleared the route cache (reset by the call).
    pub fn take_route_cleared(&mut self) -> bool {
        std::mem::take(&mut self.route_cleared)
    }

    /// The async request filter `at` sent with `tag` ended: its
    /// [`StreamFilter::on_async_complete`], and the chain goes on when that filter had
    /// stopped the headers and now continues. A filter that already let the headers
    /// pass only sees the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn on_async_complete(
        &mut self,
        at: usize,
        tag: u32,
        outcome: Outcome,
        head: &mut RequestHead,
        end: bool,
        cx: &StreamContext<'_>,
        random: u64,
    ) -> Decoded {
        if at >= self.filters.len() || self.decode.iteration == Iteration::Answered {
            return Decoded::Stopped;
        }
        let mut cb = Self::callbacks(random);
        let status = self.filters[at].on_async_complete(tag, outcome, head, cx, &mut cb);
        if let Some(body) = cb.decoding_buffer.take() {
            if self.decode.watermark && self.decode.data_stopped_at == Some(at) {
                self.decode.buffer = body;
            }
        }
        if let Some(r) = self.absorb(at, cb) {
            self.decode.iteration = Iteration::Answered;
            return Decoded::LocalReply(r);
        }
        match (self.decode.iteration, status) {
            (Iteration::Stopped { at: stopped, .. }, HeadersStatus::Continue) if stopped == at => {
                self.continue_decoding(head, end, cx, random)
            }
            (Iteration::Done, _) => Decoded::Continue,
            _ => Decoded::Stopped,
        }
    }

    /// The stream's dynamic metadata, as the filters set it (Envoy's
    /// `StreamInfo::dynamicMetadata`; access logs read it).
    pub fn dynamic_metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Response flags the filters set.
    pub fn flags(&self) -> ResponseFlags {
        self.flags
    }

    /// When a stopped filter wants its `on_timer`.
    pub fn wake_at(&self) -> Option<Instant> {
        self.wake_at
    }

    /// The headers passed every decoder filter.
    pub fn decoded(&self) -> bool {
        self.decode.iteration == Iteration::Done
    }

    pub fn filters(&self) -> &[F] {
        &self.filters
    }

    fn callbacks(random: u64) -> FilterCallbacks {
        FilterCallbacks { random, ..FilterCallbacks::default() }
    }

    /// Collect what filter `i`'s hook left in its callbacks; `Some` for a local reply.
    fn absorb(&mut self, i: usize, cb: FilterCallbacks) -> Option<LocalReply> {
        self.flags.set(cb.flags);
        self.calls.extend(cb.calls.into_iter().map(|c| (i, c)));
        self.detached.extend(cb.detached);
        self.route_cleared |= cb.clear_route_cache;
        for (ns, fields) in cb.metadata {
            self.metadata.merge_namespace(&ns, fields);
        }
        if let Some(t) = cb.wake_at {
            self.wake_at = Some(t);
        }
        if let Some(l) = cb.decoder_buffer_limit {
            self.decode_limit = Some(l);
        }
        cb.local_reply
    }

    /// `decodeHeaders` through the chain from the first filter.
    pub fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end_stream: bool,
        cx: &StreamContext<'_>,
        random: u64,
    ) -> Decoded {
        self.decode.iteration = Iteration::Headers(0);
        self.iterate_decode(head, end_stream, cx, random)
    }

    fn iterate_decode(&mut self, head: &mut RequestHead, end: bool, cx: &StreamContext<'_>, random: u64) -> Decoded {
        let Iteration::Headers(from) = self.decode.iteration else {
            return Decoded::Stopped;
        };
        for i in from..self.filters.len() {
            let mut cb = Self::callbacks(random.rotate_left(i as u32 * 7));
            let status = self.filters[i].decode_headers(head, end, cx, &mut cb);
            if let Some(r) = self.absorb(i, cb) {
                self.decode.iteration = Iteration::Answered;
                return Decoded::LocalReply(r);
            }
            match status {
                HeadersStatus::Continue => {}
                HeadersStatus::StopIteration => {
                    self.decode.iteration = Iteration::Stopped { at: i, buffer: false };
                    return Decoded::Stopped;
                }
                HeadersStatus::StopAllIterationAndBuffer => {
                    self.decode.iteration = Iteration::Stopped { at: i, buffer: true };
                    return Decoded::Stopped;
                }
            }
        }
        self.decode.iteration = Iteration::Done;
        Decoded::Continue
    }

    /// Envoy's `continueDecoding`: the stopped filter lets the headers go on.
    pub fn continue_decoding(
        &mut self,
        head: &mut RequestHead,
        end: bool,
        cx: &StreamContext<'_>,
        random: u64,
    ) -> Decoded {
        match self.decode.iteration {
            Iteration::Stopped { at, .. } => {
                if let Some(h) = self.decode.replaced_head.take() {
                    *head = h;
                }
                self.decode.iteration = Iteration::Headers(at + 1);
                let watermark = std::mem::take(&mut self.decode.watermark);
                if std::mem::take(&mut self.decode.resumable) || watermark {
                    // resume_data passes the held body on from the next filter.
                    self.decode.data_stopped_at = Some(at + 1);
                }
                self.iterate_decode(head, end, cx, random)
            }
            Iteration::Done => Decoded::Continue,
            _ => Decoded::Stopped,
        }
    }

    /// The time a stopped filter asked for came (`now >= wake_at`): its `on_timer`, and
    /// the chain goes on if it continues.
    pub fn on_timer(&mut self, head: &mut RequestHead, end: bool, cx: &StreamContext<'_>, random: u64) -> Decoded {
        let Iteration::Stopped { at, .. } = self.decode.iteration else {
            return Decoded::Stopped;
        };
        if self.wake_at.is_none_or(|t| cx.now < t) {
            return Decoded::Stopped;
        }
        self.wake_at = None;
        let mut cb = Self::callbacks(random);
        let status = self.filters[at].on_timer(cx, &mut cb);
        if let Some(r) = self.absorb(at, cb) {
            self.decode.iteration = Iteration::Answered;
            return Decoded::LocalReply(r);
        }
        match status {
            HeadersStatus::Continue => self.continue_decoding(head, end, cx, random),
            _ => Decoded::Stopped,
        }
    }

    /// `decodeData`: a request body chunk through the filters that passed the headers.
    pub fn decode_data(&mut self, chunk: Vec<u8>, end: bool, random: u64) -> DataOutcome {
        let limit = self.decode_limit.unwrap_or(self.limit);
        let Self { filters, decode, flags, calls, metadata, route_cleared, detached, .. } = self;
        let mut sink = Sink { flags, calls, metadata, route_cleared, detached };
        let r = run_data(filters, decode, chunk, end, limit, &mut sink, random, true);
        self.data_outcome(r, PAYLOAD_TOO_LARGE, 413, "request_payload_too_large")
    }

    /// A filter set its own request buffer limit while holding the headers: the
    /// request body goes to the filters now (Envoy's `decodeData` while stopped), not
    /// to the router later.
    pub fn wants_request_body(&self) -> bool {
        self.decode_limit.is_some()
            && !self.decode.watermark
            && matches!(self.decode.iteration, Iteration::Stopped { .. })
    }

    /// A filter holding the headers took the request body it wanted
    /// (`StopIterationAndWatermark`): when it continues, that body goes on through
    /// [`FilterManager::resume_data`].
    pub fn holds_request_body(&self) -> bool {
        self.decode.watermark
    }

    /// The filter that holds the headers continued from its data hook.
    pub fn resume_pending(&self) -> bool {
        self.decode.resumable
    }

    /// After the headers went on past a filter that resumed from its data hook: the
    /// body it held, through the filters after it (`None`: nothing was held).
    pub fn resume_data(&mut self, end: bool, random: u64) -> DataOutcome {
        let Iteration::Done = self.decode.iteration else {
            return DataOutcome::Held;
        };
        let Some(from) = self.decode.data_stopped_at.take() else {
            return DataOutcome::Continue(std::mem::take(&mut self.decode.buffer));
        };
        let mut chunk = std::mem::take(&mut self.decode.buffer);
        for i in from..self.filters.len() {
            let mut cb = Self::callbacks(random);
            let status = self.filters[i].decode_data(&mut chunk, end, &mut cb);
            if let Some(r) = self.absorb(i, cb) {
                self.decode.iteration = Iteration::Answered;
                return DataOutcome::LocalReply(r);
            }
            if status != DataStatus::Continue {
                // A later filter holds the body again: not supported on resume; pass it.
                tracing::debug!("a filter after a resumed one stopped the body; passing it on");
            }
        }
        DataOutcome::Continue(chunk)
    }

    /// Body bytes held while the headers were stopped, to pass on once decoding
    /// continued past every filter.
    pub fn take_decode_buffer(&mut self) -> Vec<u8> {
        if self.decode.data_stopped_at.is_some() {
            return Vec::new();
        }
        std::mem::take(&mut self.decode.buffer)
    }

    /// `decodeTrailers` (Envoy's `FilterManager::decodeTrailers`): the request's
    /// trailers, after its last body chunk, through every filter the headers reached,
    /// the one that holds them included. When that filter continues on its trailers (or
    /// had continued from its last data hook) or later (an async answer), the headers,
    /// the body it held and then the trailers go on from the next filter (Envoy's
    /// `commonContinue`): [`FilterManager::resumed_trailers`] hands them over once the
    /// chain went through. A filter that stops them past the headers is not resumed:
    /// they go on.
    pub fn decode_trailers(&mut self, mut trailers: HeaderMap, random: u64) -> TrailersRun {
        let (upto, stopped_at) = match self.decode.iteration {
            Iteration::Done => (self.filters.len(), None),
            // Stopped for all frames: the trailers wait before the filter.
            Iteration::Stopped { at, buffer: true } => (at, Some(at)),
            Iteration::Stopped { at, buffer: false } => (at + 1, Some(at)),
            Iteration::Headers(_) | Iteration::Answered => return TrailersRun::Held,
        };
        for i in 0..upto {
            let mut cb = Self::callbacks(random);
            let status = self.filters[i].decode_trailers(&mut trailers, &mut cb);
            if let Some(h) = cb.request_head.take() {
                self.decode.replaced_head = Some(h);
            }
            if let Some(body) = cb.decoding_buffer.take() {
                if self.decode.data_stopped_at == Some(i) {
                    self.decode.buffer = body;
                }
            }
            if let Some(r) = self.absorb(i, cb) {
                self.decode.iteration = Iteration::Answered;
                return TrailersRun::LocalReply(r);
            }
            if stopped_at == Some(i) {
                // The holding filter continues on its trailers, or keeps the whole
                // body until it continues (an async check): either way what it holds
                // goes on from the next filter.
                match status {
                    TrailersStatus::Continue => self.decode.resumable = true,
                    TrailersStatus::StopIteration => self.decode.watermark = true,
                }
            } else if status == TrailersStatus::StopIteration && stopped_at.is_none() {
                tracing::debug!("a filter stopped the request trailers after the headers went on; passing them");
            }
        }
        match stopped_at {
            None => TrailersRun::Continue(trailers),
            Some(at) => {
                let from = if upto == at { at } else { at + 1 };
                self.decode.trailers = Some((from, trailers));
                TrailersRun::Held
            }
        }
    }

    /// The trailers held while a filter held the stream, once the chain went past it:
    /// through the filters after it (call after [`FilterManager::resume_data`]).
    pub fn resumed_trailers(&mut self, random: u64) -> Option<TrailersRun> {
        if self.decode.iteration != Iteration::Done {
            return None;
        }
        let (from, mut trailers) = self.decode.trailers.take()?;
        for i in from..self.filters.len() {
            let mut cb = Self::callbacks(random);
            let _ = self.filters[i].decode_trailers(&mut trailers, &mut cb);
            if let Some(r) = self.absorb(i, cb) {
                self.decode.iteration = Iteration::Answered;
                return Some(TrailersRun::LocalReply(r));
            }
        }
        Some(TrailersRun::Continue(trailers))
    }

    /// `encodeHeaders`: the response (upstream's or a local reply) through the encoder
    /// filters in reverse config order. A local reply asked for while encoding replaces
    /// the response (the caller encodes it again, once).
    pub fn encode_headers(&mut self, head: &mut ResponseHead, end_stream: bool, random: u64) -> Decoded {
        if self.encode.iteration == Iteration::Answered {
            // Encoding a reply an encoder filter asked for: run the filters, no second reply.
            self.encode.iteration = Iteration::Headers(0);
            return self.iterate_encode(head, end_stream, random, false);
        }
        self.encode.iteration = Iteration::Headers(0);
        self.iterate_encode(head, end_stream, random, true)
    }

    fn iterate_encode(&mut self, head: &mut ResponseHead, end: bool, random: u64, may_reply: bool) -> Decoded {
        let n = self.filters.len();
        for k in 0..n {
            let i = n - 1 - k;
            let mut cb = Self::callbacks(random.rotate_left(k as u32 * 5));
            let status = self.filters[i].encode_headers(head, end, &mut cb);
            let reply = self.absorb(i, cb);
            if let Some(r) = reply.filter(|_| may_reply) {
                self.encode.iteration = Iteration::Answered;
                return Decoded::LocalReply(r);
            }
            match status {
                HeadersStatus::Continue => {}
                s => {
                    let buffer = s == HeadersStatus::StopAllIterationAndBuffer;
                    self.encode.iteration = Iteration::Stopped { at: k, buffer };
                    return Decoded::Stopped;
                }
            }
        }
        self.encode.iteration = Iteration::Done;
        Decoded::Continue
    }

    /// `encodeData`: a response body chunk through the encoder filters (reverse order).
    pub fn encode_data(&mut self, chunk: Vec<u8>, end: bool, random: u64) -> DataOutcome {
        let Self { filters, encode, flags, limit, calls, metadata, route_cleared, detached, .. } = self;
        let mut sink = Sink { flags, calls, metadata, route_cleared, detached };
        let r = run_data(filters, encode, chunk, end, *limit, &mut sink, random, false);
        self.data_outcome(r, INTERNAL_ERROR, 500, "response_payload_too_large")
    }

    /// `encodeTrailers` through the encoder filters.
    pub fn encode_trailers(&mut self, trailers: &mut HeaderMap, random: u64) -> Decoded {
        let n = self.filters.len();
        for k in 0..n {
            let mut cb = Self::callbacks(random);
            if self.filters[n - 1 - k].encode_trailers(trailers, &mut cb) == TrailersStatus::StopIteration {
                self.absorb(n - 1 - k, cb);
                return Decoded::Stopped;
            }
            self.absorb(n - 1 - k, cb);
        }
        Decoded::Continue
    }

    fn data_outcome(&mut self, r: DataRun, body: &str, status: u16, details: &'static str) -> DataOutcome {
        match r {
            DataRun::Pass(d) => DataOutcome::Continue(d),
            DataRun::Held => DataOutcome::Held,
            DataRun::Reply(r) => DataOutcome::LocalReply(r),
            DataRun::TooLarge => self.too_large(body, status, details),
        }
    }

    fn too_large(&mut self, body: &str, status: u16, details: &'static str) -> DataOutcome {
        DataOutcome::LocalReply(LocalReply { status, body: body.as_bytes().to_vec(), headers: Vec::new(), details })
    }
}

/// Where a data hook's callbacks go besides its reply and held head: the same
/// collection [`FilterManager::absorb`] makes for the other hooks, so a metadata set, a
/// cleared route cache or an async request from `decode_data` counts as from any hook.
struct Sink<'a> {
    flags: &'a mut ResponseFlags,
    calls: &'a mut Vec<(usize, Call)>,
    metadata: &'a mut Metadata,
    route_cleared: &'a mut bool,
    detached: &'a mut Vec<Call>,
}

impl Sink<'_> {
    fn take(&mut self, i: usize, cb: &mut FilterCallbacks) {
        self.flags.set(cb.flags);
        self.calls.extend(cb.calls.drain(..).map(|c| (i, c)));
        *self.route_cleared |= cb.clear_route_cache;
        self.detached.append(&mut cb.detached);
        for (ns, fields) in cb.metadata.drain(..) {
            self.metadata.merge_namespace(&ns, fields);
        }
    }
}

enum DataRun {
    Pass(Vec<u8>),
    Held,
    Reply(LocalReply),
    TooLarge,
}

/// Run a chunk through `filters` in iteration order (config order decoding, reverse
/// encoding), from the filter that buffers body bytes if one does, up to where the
/// headers stand; bytes that reach a filter still holding the headers are held.
#[allow(clippy::too_many_arguments)]
fn run_data<F: StreamFilter>(
    filters: &mut [F],
    side: &mut Side,
    mut chunk: Vec<u8>,
    end: bool,
    limit: usize,
    sink: &mut Sink<'_>,
    random: u64,
    decode: bool,
) -> DataRun {
    let n = filters.len();
    let (upto, hold) = match side.iteration {
        Iteration::Done => (n, false),
        Iteration::Stopped { at, buffer: false } => (at + 1, true),
        Iteration::Stopped { buffer: true, .. } | Iteration::Headers(_) => (0, true),
        // Answered: the stream's body is dropped.
        Iteration::Answered => return DataRun::Held,
    };
    let start = side.data_stopped_at.unwrap_or(0);
    for p in start..upto.max(start) {
        let i = if decode { p } else { n - 1 - p };
        let mut cb = FilterCallbacks { random, ..FilterCallbacks::default() };
        let status = if decode {
            filters[i].decode_data(&mut chunk, end, &mut cb)
        } else {
            filters[i].encode_data(&mut chunk, end, &mut cb)
        };
        sink.take(i, &mut cb);
        if let Some(h) = cb.request_head.take() {
            side.replaced_head = Some(h);
        }
        if let Some(r) = cb.local_reply {
            side.iteration = Iteration::Answered;
            return DataRun::Reply(r);
        }
        match status {
            DataStatus::Continue => {
                if decode && hold && p + 1 == upto && side.iteration != Iteration::Headers(0) {
                    side.resumable = true;
                }
                if side.data_stopped_at == Some(p) {
                    side.data_stopped_at = None;
                    let mut all = std::mem::take(&mut side.buffer);
                    all.extend_from_slice(&chunk);
                    chunk = all;
                }
            }
            DataStatus::StopIterationAndBuffer => {
                side.data_stopped_at = Some(p);
                return hold_bytes(side, chunk, limit);
            }
            DataStatus::StopIterationAndWatermark => {
                side.data_stopped_at = Some(p);
                side.watermark = true;
                side.buffer.extend_from_slice(&chunk);
                return DataRun::Held;
            }
            DataStatus::StopIterationNoBuffer => return DataRun::Held,
        }
    }
    if hold {
        return hold_bytes(side, chunk, limit);
    }
    DataRun::Pass(chunk)
}

/// Buffer `chunk`, bounded by `limit`.
fn hold_bytes(side: &mut Side, chunk: Vec<u8>, limit: usize) -> DataRun {
    if side.buffer.len() + chunk.len() > limit {
        side.iteration = Iteration::Answered;
        side.buffer = Vec::new();
        return DataRun::TooLarge;
    }
    side.buffer.extend_from_slice(&chunk);
    DataRun::Held
}

#[path = "filter_manager_encode.rs"]
mod encode;
pub use encode::Encoded;

#[cfg(test)]
#[path = "filter_manager_tests.rs"]
mod tests;
