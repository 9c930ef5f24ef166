//! `envoy_on_response` over the encoder hooks: the script starts on the response
//! headers, gets the body (`body()`, buffered up to the buffer limit, then 500), chunks
//! and trailers as they come; its header edits reach a held response head through the
//! callbacks. `respond()` is a script error here, as in Envoy.

use std::rc::Rc;

use super::handle::SharedRef;
use super::stream::{resume, run_wait, Flow, LuaStream, Start, Step, Wait};
use crate::http::filter::{DataStatus, FilterCallbacks, HeadEdit, HeadersStatus, TrailersStatus};
use crate::http::{HeaderMap, ResponseHead};

impl LuaStream {
    /// Act on a response-flow step.
    pub(super) fn response_step(
        &mut self,
        step: Step,
        head: Option<&mut ResponseHead>,
        cb: &mut FilterCallbacks,
    ) -> Flow {
        let Some(run) = self.resp.as_mut() else { return Flow::Continue };
        Self::flush_metadata(&mut self.metadata, &run.shared, cb);
        let held_open = run.shared.borrow().headers_open;
        if held_open {
            let s = run.shared.borrow();
            match head {
                Some(h) => headers_to_response(&s.headers, h),
                None => {
                    let mut h = ResponseHead::default();
                    headers_to_response(&s.headers, &mut h);
                    if h.status != 0 {
                        cb.edit_held_response(HeadEdit::Status(h.status));
                    }
                    cb.edit_held_response(HeadEdit::Headers(h.headers));
                }
            }
        }
        match step {
            Step::Finished => {
                self.resp = None;
                Flow::Continue
            }
            Step::Waiting(w) => {
                run_wait(&mut self.resp, w);
                Flow::Wait(w)
            }
            Step::Error(e) => {
                let w = Rc::clone(&run.w);
                self.resp = None;
                self.failed(&w, held_open, &e, cb)
            }
            Step::Respond => {
                self.resp = None;
                self.script_error("respond() is only valid in the request flow", cb);
                Flow::Stop
            }
        }
    }

    pub(super) fn encode_headers(
        &mut self,
        head: &mut ResponseHead,
        end_stream: bool,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let (run, step) = match self.start_hook(false, || response_headers(head), end_stream, cb) {
            Start::NoScript => return HeadersStatus::Continue,
            Start::Failed => return HeadersStatus::StopIteration,
            Start::Started(run, step) => (run, step),
        };
        self.resp = Some(run);
        match self.response_step(step, Some(head), cb) {
            Flow::Continue => {
                self.close_response_headers();
                HeadersStatus::Continue
            }
            _ => HeadersStatus::StopIteration,
        }
    }

    pub(super) fn encode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, cb: &mut FilterCallbacks) -> DataStatus {
        let Some(run) = self.resp.as_mut() else { return DataStatus::Continue };
        match run.wait {
            Some(Wait::Body) => {
                let shared = Rc::clone(&run.shared);
                shared.borrow_mut().body.extend_from_slice(data);
                data.clear();
                if !end_stream {
                    if self.over_limit(&shared) {
                        self.resp = None;
                        cb.send_local_reply(500, b"Internal Server Error", Vec::new(), "response_payload_too_large");
                        return DataStatus::StopIterationNoBuffer;
                    }
                    return DataStatus::StopIterationAndBuffer;
                }
                shared.borrow_mut().end_seen = true;
                let step = resume(run, None);
                self.finish_response_body(step, &shared, cb, |body| *data = body)
            }
            Some(Wait::Chunk) => {
                let shared = Rc::clone(&run.shared);
                {
                    let mut s = shared.borrow_mut();
                    s.chunk = Some(std::mem::take(data));
                    s.end_seen = end_stream;
                }
                let step = resume(run, None);
                if let Flow::Stop = self.response_step(step, None, cb) {
                    return DataStatus::StopIterationNoBuffer;
                }
                *data = shared.borrow_mut().current_chunk.take().unwrap_or_default();
                self.close_response_headers();
                DataStatus::Continue
            }
            Some(Wait::Trailers) if end_stream => {
                let shared = Rc::clone(&run.shared);
                shared.borrow_mut().end_seen = true;
                let step = resume(run, None);
                if let Flow::Stop = self.response_step(step, None, cb) {
                    return DataStatus::StopIterationNoBuffer;
                }
                self.close_response_headers();
                DataStatus::Continue
            }
            _ => {
                self.close_response_headers();
                DataStatus::Continue
            }
        }
    }

    pub(super) fn encode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        let Some(run) = self.resp.as_mut() else { return TrailersStatus::Continue };
        let shared = Rc::clone(&run.shared);
        match run.wait {
            // In `trailers()`, or in `bodyChunks()` past the last chunk.
            Some(Wait::Trailers | Wait::Chunk) => {
                {
                    let mut s = shared.borrow_mut();
                    s.trailers = Some(std::mem::take(trailers));
                    s.end_seen = true;
                }
                let step = resume(run, None);
                let _ = self.response_step(step, None, cb);
                *trailers = shared.borrow_mut().trailers.take().unwrap_or_default();
            }
            Some(Wait::Body) => {
                {
                    let mut s = shared.borrow_mut();
                    s.trailers = Some(trailers.clone());
                    s.end_seen = true;
                }
                let step = resume(run, None);
                let mut body = Vec::new();
                let _ = self.finish_response_body(step, &shared, cb, |b| body = b);
                cb.add_encoded_data(&body);
                if let Some(t) = shared.borrow_mut().trailers.take() {
                    *trailers = t;
                }
            }
            _ => {}
        }
        TrailersStatus::Continue
    }

    pub(super) fn close_response_headers(&mut self) {
        if let Some(r) = self.resp.as_ref() {
            r.shared.borrow_mut().headers_open = false;
        }
    }

    /// After the script saw the whole response body: its head edits, the body (with the
    /// `content-length` following a replaced one) handed to `put`.
    pub(super) fn finish_response_body(
        &mut self,
        step: Step,
        shared: &SharedRef,
        cb: &mut FilterCallbacks,
        put: impl FnOnce(Vec<u8>),
    ) -> DataStatus {
        if shared.borrow().body_replaced {
            let n = shared.borrow().body.len().to_string();
            let mut s = shared.borrow_mut();
            if s.headers.contains(b"content-length") {
                s.headers.set(b"content-length", n.as_bytes());
            }
        }
        if let Flow::Stop = self.response_step(step, None, cb) {
            return DataStatus::StopIterationNoBuffer;
        }
        let body = std::mem::take(&mut shared.borrow_mut().body);
        put(body);
        self.close_response_headers();
        DataStatus::Continue
    }
}

pub(super) fn response_headers(head: &ResponseHead) -> HeaderMap {
    let mut h = HeaderMap::default();
    h.append(b":status", head.status.to_string().as_bytes());
    for (n, v) in head.headers.iter() {
        h.append(n, v);
    }
    h
}

pub(super) fn headers_to_response(h: &HeaderMap, head: &mut ResponseHead) {
    let mut regular = HeaderMap::default();
    for (n, v) in h.iter() {
        match n {
            b":status" => {
                if let Some(s) = std::str::from_utf8(v).ok().and_then(|s| s.parse::<u16>().ok()) {
                    head.status = s;
                }
            }
            n if n.starts_with(b":") => {}
            n => regular.append(n, v),
        }
    }
    head.headers = regular;
}
