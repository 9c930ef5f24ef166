//! `envoy_on_response` over the encoder hooks: the script starts on the response
//! headers, gets the body (`body()`, buffered up to the buffer limit, then 500), chunks
//! and trailers as they come; its header edits reach a held response head through the
//! callbacks. `respond()` is a script error here, as in Envoy.

use std::rc::Rc;

use super::handle::SharedRef;
use super::request::{call_request, call_result};
use super::stream::{
    resume, run_wait, Flow, LuaStream, Pending, Start, Step, Wait, TAG_REQUEST_CALL, TAG_RESPONSE_CALL,
};
use crate::http::async_client::Outcome;
use crate::http::filter::{DataStatus, EncodeResume, FilterCallbacks, HeadEdit, HeadersStatus, TrailersStatus};
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
        let Some(run) = self.resp.as_ref() else { return Flow::Continue };
        self.fire_async(run, cb);
        let Some(run) = self.resp.as_mut() else { return Flow::Continue };
        let held_open = run.shared.borrow().headers_open;
        if held_open && run.shared.borrow().body_replaced && run.shared.borrow().end_seen {
            // The length of a body the script replaced.
            let mut s = run.shared.borrow_mut();
            let n = s.body.len().to_string();
            if s.headers.contains(b"content-length") {
                s.headers.set(b"content-length", n.as_bytes());
            }
        }
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
            Step::Waiting(Wait::Call) => {
                let spec = run.shared.borrow_mut().call.take();
                let w = Rc::clone(&run.w);
                let Some(spec) = spec else { return Flow::Stop };
                match self.client(&w, &spec.cluster) {
                    Ok(client) => {
                        cb.send_request(&client, call_request(spec), TAG_RESPONSE_CALL);
                        run_wait(&mut self.resp, Wait::Call);
                        Flow::Wait(Wait::Call)
                    }
                    Err(e) => {
                        self.resp = None;
                        self.failed(&w, held_open, &e, cb)
                    }
                }
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
            Some(Wait::Call) => {
                // The script waits for its httpCall(): the body waits here, unseen.
                self.resp_pending.data.append(data);
                self.resp_pending.end |= end_stream;
                if self.resp_pending.data.len() > self.config.buffer_limit {
                    self.resp = None;
                    self.resp_pending = Pending::default();
                    cb.send_local_reply(500, b"Internal Server Error", Vec::new(), "response_payload_too_large");
                }
                DataStatus::StopIterationNoBuffer
            }
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
                // The chunk the script saw goes on (also when it now waits for an
                // httpCall(): what comes next waits for the answer).
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
            Some(Wait::Call) => {
                // They wait with the body for the answer.
                self.resp_pending.trailers = Some(std::mem::take(trailers));
                self.resp_pending.end = true;
                return TrailersStatus::StopIteration;
            }
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
                let status = self.finish_response_body(step, &shared, cb, |b| body = b);
                if self.waits_for_call() {
                    // httpCall() after body(): body and trailers (the script's) wait.
                    self.resp_pending.end = true;
                    return TrailersStatus::StopIteration;
                }
                if status != DataStatus::Continue {
                    return TrailersStatus::Continue;
                }
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
        match self.response_step(step, None, cb) {
            Flow::Stop => return DataStatus::StopIterationNoBuffer,
            Flow::Wait(Wait::Call) => {
                // httpCall() after body(): the body stays with the script until the
                // answer ([`LuaStream::on_encode_async_complete`] lets it go).
                self.resp_pending.end = true;
                return DataStatus::StopIterationNoBuffer;
            }
            _ => {}
        }
        // Chunks the script saw before it asked for the body go first.
        let mut body = std::mem::take(&mut self.resp_pending.seen);
        body.append(&mut shared.borrow_mut().body);
        put(body);
        self.close_response_headers();
        DataStatus::Continue
    }
}

impl LuaStream {
    fn waits_for_call(&self) -> bool {
        self.resp.as_ref().is_some_and(|r| r.wait == Some(Wait::Call))
    }

    /// The answer to an `httpCall()` of either script came after the decoder filters
    /// were done. `envoy_on_response`'s resumes, and is handed what came meanwhile as
    /// it asks for it (the body, chunks, trailers); once it no longer holds the
    /// response, that goes on. `envoy_on_request`'s only runs on (the request went).
    pub(super) fn on_encode_async_complete(
        &mut self,
        tag: u32,
        outcome: Outcome,
        cb: &mut FilterCallbacks,
    ) -> Option<EncodeResume> {
        if tag == TAG_REQUEST_CALL {
            let run = self.req.as_mut().filter(|r| r.wait == Some(Wait::Call))?;
            run.shared.borrow_mut().call_result = Some(call_result(outcome));
            let step = resume(run, None);
            let _ = self.request_step(step, None, cb);
            return None;
        }
        if tag != TAG_RESPONSE_CALL || !self.waits_for_call() {
            return None;
        }
        let run = self.resp.as_mut()?;
        let shared = Rc::clone(&run.shared);
        shared.borrow_mut().call_result = Some(call_result(outcome));
        let mut step = resume(run, None);
        // What came while the script waited, and the bytes it saw (chunks) that go on
        // ahead of the rest.
        let mut pending = std::mem::take(&mut self.resp_pending);
        let mut seen = std::mem::take(&mut pending.seen);
        loop {
            if let Some(c) = shared.borrow_mut().current_chunk.take() {
                seen.extend_from_slice(&c);
            }
            let flow = self.response_step(step, None, cb);
            let wait = match flow {
                Flow::Stop => return None,
                Flow::Continue => {
                    // Done (or failed after the head went): everything goes on.
                    let mut data = seen;
                    data.append(&mut shared.borrow_mut().body);
                    data.append(&mut pending.data);
                    let trailers = shared.borrow_mut().trailers.take().or(pending.trailers);
                    cb.add_encoded_data(&data);
                    self.close_response_headers();
                    return Some(EncodeResume { end: pending.end, trailers });
                }
                Flow::Wait(w) => w,
            };
            let mut s = shared.borrow_mut();
            match wait {
                Wait::Call => {
                    // Another httpCall(): everything keeps waiting.
                    drop(s);
                    pending.seen = seen;
                    self.resp_pending = pending;
                    return None;
                }
                Wait::Body => {
                    s.body.append(&mut pending.data);
                    if !pending.end {
                        // The rest of the body comes through `encode_data`.
                        drop(s);
                        pending.seen = seen;
                        self.resp_pending = pending;
                        return None;
                    }
                    s.end_seen = true;
                    s.trailers = pending.trailers.take();
                }
                Wait::Chunk => {
                    if pending.data.is_empty() && !pending.end {
                        // The next chunks come through `encode_data`.
                        drop(s);
                        cb.add_encoded_data(&seen);
                        self.close_response_headers();
                        return Some(EncodeResume::default());
                    }
                    if !pending.data.is_empty() {
                        s.chunk = Some(std::mem::take(&mut pending.data));
                    }
                    s.end_seen = pending.end;
                    if pending.end {
                        s.trailers = pending.trailers.take();
                    }
                }
                Wait::Trailers => {
                    // The body passes the script as it is.
                    seen.append(&mut pending.data);
                    if !pending.end {
                        drop(s);
                        cb.add_encoded_data(&seen);
                        self.close_response_headers();
                        return Some(EncodeResume::default());
                    }
                    s.end_seen = true;
                    s.trailers = pending.trailers.take();
                }
            }
            drop(s);
            let run = self.resp.as_mut()?;
            step = resume(run, None);
        }
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
