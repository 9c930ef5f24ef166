//! The encoder side of a stream's filter chain as the codec sees it (Envoy's
//! `FilterManager::encodeHeaders/encodeData/encodeTrailers` with `addEncodedData` and
//! `continueEncoding`): what the filters let out, in order, for each response event.
//!
//! A filter that stops `encode_headers` holds the head: body chunks still reach it (and
//! the filters before it), and it lets the head go on by continuing a later hook —
//! `encode_data` (Envoy: Continue after StopIteration resumes the headers) or
//! `encode_trailers`. Meanwhile it may edit the held head through
//! [`FilterCallbacks::edit_held_response`](crate::http::filter::FilterCallbacks). A
//! filter buffering body chunks (data `StopIterationAndBuffer`) passes them on, ahead of
//! the chunk it continues on, or when the trailers reach it; bytes a filter adds from
//! `encode_trailers` go on to the later filters ahead of the trailers. The buffer is
//! bounded by the stream's limit (Envoy's 500 while the head is still held). Every
//! filter sees every chunk once, in order.
//!
//! A filter may also hold the response for an async request of its own (Lua's
//! `httpCall()` from `envoy_on_response`): it keeps what comes meanwhile (or lets the
//! filters buffer it), stops the trailers if they come, and when the answer arrives
//! [`FilterManager::encode_async_complete`] lets the held head, its bytes, then the end
//! or trailers go on from the next filter (Envoy's `continueEncoding`); until then
//! [`FilterManager::encoding_held`] keeps the stream from ending.

use super::{FilterManager, Iteration};
use crate::http::filter::{
    DataStatus, FilterCallbacks, HeadEdit, HeadersStatus, LocalReply, StreamFilter, TrailersStatus,
};
use crate::http::{HeaderMap, ResponseHead};

/// What passed every encoder filter in one call, in wire order: the head (when it went
/// through in this call), body bytes, then the end of the stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    /// The response head passed the last filter now.
    pub headers: bool,
    /// The head ends the stream (no body will follow).
    pub headers_end: bool,
    pub data: Vec<u8>,
    /// The stream ends after `data` (with `trailers` when some are left).
    pub end: bool,
    pub trailers: Option<HeaderMap>,
    /// A filter answered, or the buffer limit was passed while the head was held.
    pub reply: Option<LocalReply>,
}

impl<F: StreamFilter> FilterManager<F> {
    /// `encodeHeaders` from the first encoder filter.
    pub fn encode_head(&mut self, head: &mut ResponseHead, end: bool, random: u64) -> Encoded {
        let mut out = Encoded::default();
        let may_reply = self.encode.iteration != Iteration::Answered;
        self.encode = super::Side::new();
        self.run_headers(0, head, end, random, may_reply, &mut out);
        out
    }

    /// `encodeData`: a response body chunk from the first encoder filter.
    pub fn encode_body(&mut self, head: &mut ResponseHead, chunk: Vec<u8>, end: bool, random: u64) -> Encoded {
        let mut out = Encoded::default();
        if self.encode.iteration == Iteration::Answered {
            return out;
        }
        self.run_body(0, head, chunk, end, random, &mut out);
        out
    }

    /// `encodeTrailers` (possibly empty: the end of the stream) through every filter
    /// the head reached; held and buffered bytes go on as the filters continue.
    pub fn encode_end(&mut self, head: &mut ResponseHead, trailers: HeaderMap, random: u64) -> Encoded {
        let mut out = Encoded::default();
        if self.encode.iteration == Iteration::Answered {
            return out;
        }
        self.encode_end_from(0, head, trailers, random, &mut out);
        out
    }

    /// The response is held by a filter waiting for its async request, or by a body
    /// or trailers it stopped: the stream is not over when the router is.
    pub fn encoding_held(&self) -> bool {
        matches!(self.encode.iteration, Iteration::Stopped { .. })
            || self.encode.data_stopped_at.is_some()
            || self.encode.trailers_held
    }

    /// The async request encoder filter `i` sent ended: its
    /// [`StreamFilter::on_encode_async_complete`], and what it lets go continues from
    /// the next encoder filter (the held head, its bytes, the end it held).
    pub fn encode_async_complete(
        &mut self,
        i: usize,
        tag: u32,
        outcome: crate::http::async_client::Outcome,
        head: &mut ResponseHead,
        random: u64,
    ) -> Encoded {
        let mut out = Encoded::default();
        let n = self.filters.len();
        if i >= n || self.encode.iteration == Iteration::Answered {
            return out;
        }
        let p = n - 1 - i;
        let mut cb = FilterCallbacks { random, ..FilterCallbacks::default() };
        let resume = self.filters[i].on_encode_async_complete(tag, outcome, &mut cb);
        let added = std::mem::take(&mut cb.added_data);
        if self.absorb_encode(i, cb, head, &mut out) {
            return out;
        }
        let Some(resume) = resume else { return out };
        self.encode.trailers_held = false;
        let mut chunk = Vec::new();
        if self.encode.data_stopped_at == Some(p) {
            self.encode.data_stopped_at = None;
            chunk = std::mem::take(&mut self.encode.buffer);
        }
        chunk.extend_from_slice(&added);
        let body_end = resume.end && resume.trailers.is_none();
        if matches!(self.encode.iteration, Iteration::Stopped { at, .. } if at == p) {
            let head_end = body_end && chunk.is_empty();
            self.run_headers(p + 1, head, head_end, random, true, &mut out);
            if out.reply.is_some() || head_end {
                out.end |= head_end && out.headers;
                return out;
            }
        }
        if !chunk.is_empty() || body_end {
            self.run_body(p + 1, head, chunk, body_end, random, &mut out);
            if out.reply.is_some() {
                return out;
            }
        }
        if let Some(t) = resume.trailers {
            self.encode_end_from(p + 1, head, t, random, &mut out);
        }
        out
    }

    /// `encodeTrailers` from encoder filter position `from` on; a filter that stops
    /// them holds them (it lets them go through [`FilterManager::encode_async_complete`]).
    fn encode_end_from(
        &mut self,
        from: usize,
        head: &mut ResponseHead,
        mut trailers: HeaderMap,
        random: u64,
        out: &mut Encoded,
    ) {
        let n = self.filters.len();
        for p in from..n {
            let mut cb = FilterCallbacks { random, ..FilterCallbacks::default() };
            let status = self.filters[n - 1 - p].encode_trailers(&mut trailers, &mut cb);
            let added = std::mem::take(&mut cb.added_data);
            if self.absorb_encode(n - 1 - p, cb, head, out) {
                return;
            }
            if status == TrailersStatus::StopIteration {
                self.encode.trailers_held = true;
                return;
            }
            let mut chunk = Vec::new();
            if self.encode.data_stopped_at == Some(p) {
                self.encode.data_stopped_at = None;
                chunk = std::mem::take(&mut self.encode.buffer);
            }
            chunk.extend_from_slice(&added);
            if matches!(self.encode.iteration, Iteration::Stopped { at, .. } if at == p) {
                self.run_headers(p + 1, head, false, random, true, out);
            }
            if !chunk.is_empty() {
                self.run_body(p + 1, head, chunk, false, random, out);
                if out.reply.is_some() {
                    return;
                }
            }
        }
        out.end = true;
        out.trailers = Some(trailers);
    }

    /// Apply a hook's callbacks; true when it (or the buffer) ended the stream with a
    /// local reply.
    fn absorb_encode(&mut self, i: usize, mut cb: FilterCallbacks, head: &mut ResponseHead, out: &mut Encoded) -> bool {
        for e in cb.head_edits.drain(..) {
            match e {
                HeadEdit::Status(s) => head.status = s,
                HeadEdit::Set(n, v) => head.headers.set(n, &v),
                HeadEdit::Headers(h) => head.headers = h,
            }
        }
        if let Some(r) = self.absorb(i, cb) {
            self.encode.iteration = Iteration::Answered;
            out.reply = Some(r);
            return true;
        }
        false
    }

    fn run_headers(
        &mut self,
        from: usize,
        head: &mut ResponseHead,
        end: bool,
        random: u64,
        may_reply: bool,
        out: &mut Encoded,
    ) {
        let n = self.filters.len();
        for p in from..n {
            let mut cb = Self::callbacks(random.rotate_left(p as u32 * 5));
            let status = self.filters[n - 1 - p].encode_headers(head, end, &mut cb);
            if !may_reply {
                cb.local_reply = None;
            }
            if self.absorb_encode(n - 1 - p, cb, head, out) {
                return;
            }
            if status != HeadersStatus::Continue {
                // StopAllIterationAndBuffer holds the head the same way here.
                self.encode.iteration = Iteration::Stopped { at: p, buffer: false };
                return;
            }
        }
        self.encode.iteration = Iteration::Done;
        out.headers = true;
        out.headers_end = end;
    }

    fn run_body(
        &mut self,
        from: usize,
        head: &mut ResponseHead,
        mut chunk: Vec<u8>,
        end: bool,
        random: u64,
        out: &mut Encoded,
    ) {
        let n = self.filters.len();
        for p in from..n {
            let held_at = match self.encode.iteration {
                Iteration::Stopped { at, .. } => Some(at),
                _ => None,
            };
            if held_at.is_some_and(|at| p > at) {
                // The head has not reached this filter: the bytes wait with it.
                self.hold(p.saturating_sub(1), chunk, out);
                return;
            }
            let mut cb = FilterCallbacks { random, ..FilterCallbacks::default() };
            let status = self.filters[n - 1 - p].encode_data(&mut chunk, end, &mut cb);
            if self.absorb_encode(n - 1 - p, cb, head, out) {
                return;
            }
            match status {
                DataStatus::Continue => {
                    if self.encode.data_stopped_at == Some(p) {
                        self.encode.data_stopped_at = None;
                        let mut all = std::mem::take(&mut self.encode.buffer);
                        all.extend_from_slice(&chunk);
                        chunk = all;
                    }
                    if held_at == Some(p) {
                        let head_end = end && chunk.is_empty();
                        self.run_headers(p + 1, head, head_end, random, true, out);
                        if out.reply.is_some() || (head_end && out.headers) {
                            out.end |= head_end;
                            return;
                        }
                    }
                }
                DataStatus::StopIterationAndBuffer | DataStatus::StopIterationAndWatermark => {
                    self.hold(p, chunk, out);
                    return;
                }
                DataStatus::StopIterationNoBuffer => return,
            }
        }
        out.data.extend_from_slice(&chunk);
        out.end |= end;
    }

    /// Buffer `chunk` at filter `p`, bounded by the limit.
    fn hold(&mut self, p: usize, chunk: Vec<u8>, out: &mut Encoded) {
        if self.encode.buffer.len() + chunk.len() > self.limit {
            self.encode.iteration = Iteration::Answered;
            self.encode.buffer = Vec::new();
            out.reply = Some(LocalReply {
                status: 500,
                body: super::INTERNAL_ERROR.as_bytes().to_vec(),
                headers: Vec::new(),
                details: "response_payload_too_large",
            });
            return;
        }
        self.encode.data_stopped_at = Some(p);
        self.encode.buffer.extend_from_slice(&chunk);
    }
}
