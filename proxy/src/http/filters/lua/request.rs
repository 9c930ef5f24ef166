//! `envoy_on_request` over the decoder hooks: the script starts on the request headers
//! (held while it may still change them), gets the body (`body()`, buffered up to the
//! buffer limit, then 413), chunks (`bodyChunks()`) and trailers as they come, and
//! resumes from an `httpCall()` when the async client answers. `respond()` answers
//! locally; the route is picked again when the script changed the headers.

use std::rc::Rc;

use super::handle;
use super::response::response_headers;
use super::stream::{resume, run_wait, version_name, Flow, LuaStream, Start, Step, Wait, TAG_REQUEST_CALL};
use crate::http::async_client::{Outcome, Request};
use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, TrailersStatus};
use crate::http::{HeaderMap, RequestHead};

impl LuaStream {
    /// Act on a request-flow step; `head` is the request head when the hook has it.
    pub(super) fn request_step(
        &mut self,
        step: Step,
        head: Option<&mut RequestHead>,
        cb: &mut FilterCallbacks,
    ) -> Flow {
        let Some(run) = self.req.as_mut() else { return Flow::Continue };
        Self::flush_metadata(&mut self.metadata, &run.shared, cb);
        let Some(run) = self.req.as_ref() else { return Flow::Continue };
        self.fire_async(run, cb);
        let Some(run) = self.req.as_mut() else { return Flow::Continue };
        // The head as the script left it.
        let held_open = run.shared.borrow().headers_open;
        if held_open {
            let s = run.shared.borrow();
            match head {
                Some(h) => headers_to_request(&s.headers, h),
                None => {
                    if let Some(h) = self.held_request.as_mut() {
                        headers_to_request(&s.headers, h);
                    }
                }
            }
            if s.headers_modified && self.config.clear_route_cache {
                cb.clear_route_cache();
            }
        }
        match step {
            Step::Error(e) => {
                let w = Rc::clone(&run.w);
                self.req = None;
                self.failed(&w, held_open, &e, cb)
            }
            Step::Respond => {
                let r = run.shared.borrow_mut().respond.take();
                self.req = None;
                if let Some(r) = r {
                    cb.send_local_reply(r.status, &r.body, r.headers, "lua_respond");
                }
                Flow::Stop
            }
            Step::Finished => {
                self.req = None;
                Flow::Continue
            }
            Step::Waiting(Wait::Call) => {
                let spec = run.shared.borrow_mut().call.take();
                let w = Rc::clone(&run.w);
                let Some(spec) = spec else { return Flow::Stop };
                match self.client(&w, &spec.cluster) {
                    Ok(client) => {
                        cb.send_request(&client, call_request(spec), TAG_REQUEST_CALL);
                        run_wait(&mut self.req, Wait::Call);
                        Flow::Wait(Wait::Call)
                    }
                    Err(e) => {
                        self.req = None;
                        self.failed(&w, held_open, &e, cb)
                    }
                }
            }
            Step::Waiting(w) => {
                run_wait(&mut self.req, w);
                Flow::Wait(w)
            }
        }
    }

    pub(super) fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        self.info.protocol = version_name(head.version);
        self.info.direct_remote = cx.direct_remote.to_string();
        self.info.sni = cx.sni.unwrap_or("").to_string();
        self.info.ssl = cx.tls;
        let (run, step) = match self.start_hook(true, || request_headers(head), end_stream, cb) {
            Start::NoScript => return HeadersStatus::Continue,
            Start::Failed => return HeadersStatus::StopIteration,
            Start::Started(run, step) => (run, step),
        };
        self.req = Some(run);
        match self.request_step(step, Some(head), cb) {
            Flow::Continue => {
                self.close_request_headers();
                HeadersStatus::Continue
            }
            Flow::Stop => HeadersStatus::StopIteration,
            Flow::Wait(w) => {
                if w != Wait::Call {
                    // The body comes to this filter while it holds the headers.
                    cb.set_decoder_buffer_limit(self.config.buffer_limit);
                    self.held_request = Some(head.clone());
                }
                HeadersStatus::StopIteration
            }
        }
    }

    pub(super) fn decode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, cb: &mut FilterCallbacks) -> DataStatus {
        let Some(run) = self.req.as_mut() else { return DataStatus::Continue };
        let wait = run.wait;
        match wait {
            Some(Wait::Body) => {
                let shared = Rc::clone(&run.shared);
                shared.borrow_mut().body.extend_from_slice(data);
                data.clear();
                if !end_stream {
                    if self.over_limit(&shared) {
                        self.req = None;
                        cb.send_local_reply(413, b"Payload Too Large", Vec::new(), "request_payload_too_large");
                        return DataStatus::StopIterationNoBuffer;
                    }
                    return DataStatus::StopIterationAndBuffer;
                }
                shared.borrow_mut().end_seen = true;
                let step = resume(run, None);
                let flow = self.request_step(step, None, cb);
                let (body, replaced) = {
                    let mut s = shared.borrow_mut();
                    (std::mem::take(&mut s.body), s.body_replaced)
                };
                match flow {
                    Flow::Stop => DataStatus::StopIterationNoBuffer,
                    Flow::Wait(Wait::Call) => {
                        // httpCall() after body(): the script keeps the body (it may
                        // still change it) and the stream holds its place until the
                        // answer (Envoy: StopIterationAndWatermark); the body goes on
                        // from `on_async_complete`.
                        shared.borrow_mut().body = body;
                        shared.borrow_mut().body_replaced = replaced;
                        DataStatus::StopIterationAndWatermark
                    }
                    _ => {
                        if replaced {
                            if let Some(h) = self.held_request.as_mut() {
                                if h.headers.contains(b"content-length") {
                                    h.headers.set(b"content-length", body.len().to_string().as_bytes());
                                }
                            }
                        }
                        *data = body;
                        self.release_request(cb);
                        DataStatus::Continue
                    }
                }
            }
            Some(Wait::Chunk) => {
                let shared = Rc::clone(&run.shared);
                {
                    let mut s = shared.borrow_mut();
                    s.chunk = Some(std::mem::take(data));
                    s.end_seen = end_stream;
                }
                let step = resume(run, None);
                let flow = self.request_step(step, None, cb);
                match flow {
                    Flow::Stop => return DataStatus::StopIterationNoBuffer,
                    Flow::Wait(Wait::Call) => {
                        self.req = None;
                        self.script_error(
                            "httpCall() inside bodyChunks() in the request flow is not supported by sluice",
                            cb,
                        );
                        return DataStatus::StopIterationNoBuffer;
                    }
                    _ => {}
                }
                *data = shared.borrow_mut().current_chunk.take().unwrap_or_default();
                self.release_request(cb);
                DataStatus::Continue
            }
            Some(Wait::Trailers) if end_stream => {
                let shared = Rc::clone(&run.shared);
                shared.borrow_mut().end_seen = true;
                let step = resume(run, None);
                if let Flow::Stop = self.request_step(step, None, cb) {
                    return DataStatus::StopIterationNoBuffer;
                }
                self.release_request(cb);
                DataStatus::Continue
            }
            _ => {
                self.release_request(cb);
                DataStatus::Continue
            }
        }
    }

    pub(super) fn decode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        let Some(run) = self.req.as_mut() else { return TrailersStatus::Continue };
        if run.wait == Some(Wait::Body) {
            return self.body_then_trailers(trailers, cb);
        }
        // A script in `trailers()`, or in `bodyChunks()` waiting for a chunk that the
        // trailers tell it will not come (the iterator ends; `trailers()` then answers).
        if !matches!(run.wait, Some(Wait::Trailers | Wait::Chunk)) {
            return TrailersStatus::Continue;
        }
        let shared = Rc::clone(&run.shared);
        {
            let mut s = shared.borrow_mut();
            s.trailers = Some(std::mem::take(trailers));
            s.end_seen = true;
        }
        let step = resume(run, None);
        let _ = self.request_step(step, None, cb);
        *trailers = shared.borrow_mut().trailers.take().unwrap_or_default();
        TrailersStatus::Continue
    }

    pub(super) fn on_async_complete(
        &mut self,
        tag: u32,
        outcome: Outcome,
        head: &mut RequestHead,
        _cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        if tag != TAG_REQUEST_CALL {
            return HeadersStatus::StopIteration;
        }
        let Some(run) = self.req.as_mut() else { return HeadersStatus::Continue };
        if run.wait != Some(Wait::Call) {
            return HeadersStatus::StopIteration;
        }
        let shared = Rc::clone(&run.shared);
        shared.borrow_mut().call_result = Some(call_result(outcome));
        // After body(): the script holds the whole body and the head it edited.
        let after_body = self.held_request.is_some() && shared.borrow().end_seen;
        if let Some(h) = self.held_request.as_ref().filter(|_| after_body) {
            *head = h.clone();
        }
        let step = resume(run, None);
        match self.request_step(step, Some(head), cb) {
            Flow::Continue => {
                if after_body {
                    let (body, replaced) = {
                        let mut s = shared.borrow_mut();
                        (std::mem::take(&mut s.body), s.body_replaced)
                    };
                    if replaced && head.headers.contains(b"content-length") {
                        head.headers.set(b"content-length", body.len().to_string().as_bytes());
                    }
                    cb.modify_decoding_buffer(body);
                }
                self.close_request_headers();
                HeadersStatus::Continue
            }
            Flow::Stop => HeadersStatus::StopIteration,
            Flow::Wait(w) => {
                if w != Wait::Call {
                    cb.set_decoder_buffer_limit(self.config.buffer_limit);
                    self.held_request = Some(head.clone());
                }
                HeadersStatus::StopIteration
            }
        }
    }

    /// Trailers end the body a script in `body()` waits for: it resumes with the whole
    /// body and the trailers; the body as it left it goes on in the stream's place
    /// (`modify_decoding_buffer`), with the held head. After an `httpCall()` there, the
    /// stream waits for the answer ([`LuaStream::on_async_complete`] lets it go).
    fn body_then_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        let Some(run) = self.req.as_mut() else { return TrailersStatus::Continue };
        let shared = Rc::clone(&run.shared);
        {
            let mut s = shared.borrow_mut();
            s.trailers = Some(std::mem::take(trailers));
            s.end_seen = true;
        }
        let step = resume(run, None);
        let flow = self.request_step(step, None, cb);
        *trailers = shared.borrow_mut().trailers.take().unwrap_or_default();
        match flow {
            Flow::Stop => TrailersStatus::StopIteration,
            Flow::Wait(Wait::Call) => TrailersStatus::StopIteration,
            _ => {
                let (body, replaced) = {
                    let mut s = shared.borrow_mut();
                    (std::mem::take(&mut s.body), s.body_replaced)
                };
                if let Some(h) = self.held_request.as_mut().filter(|_| replaced) {
                    if h.headers.contains(b"content-length") {
                        h.headers.set(b"content-length", body.len().to_string().as_bytes());
                    }
                }
                cb.modify_decoding_buffer(body);
                self.release_request(cb);
                TrailersStatus::Continue
            }
        }
    }

    /// The request headers went on: the script may no longer change them.
    pub(super) fn close_request_headers(&mut self) {
        if let Some(r) = self.req.as_ref() {
            r.shared.borrow_mut().headers_open = false;
        }
        self.held_request = None;
    }

    /// The held request head goes on with the script's edits.
    pub(super) fn release_request(&mut self, cb: &mut FilterCallbacks) {
        if let Some(h) = self.held_request.take() {
            cb.replace_held_request(h);
        }
        if let Some(r) = self.req.as_ref() {
            r.shared.borrow_mut().headers_open = false;
        }
    }
}

pub(super) fn request_headers(head: &RequestHead) -> HeaderMap {
    let mut h = HeaderMap::default();
    h.append(b":authority", head.authority.as_bytes());
    h.append(b":path", head.path.as_bytes());
    h.append(b":method", head.method.as_bytes());
    h.append(b":scheme", head.scheme.as_bytes());
    for (n, v) in head.headers.iter() {
        h.append(n, v);
    }
    h
}

/// Write the script's headers back into `head` (pseudo-headers into their fields, `host`
/// into the authority).
pub(super) fn headers_to_request(h: &HeaderMap, head: &mut RequestHead) {
    let mut regular = HeaderMap::default();
    for (n, v) in h.iter() {
        let v = String::from_utf8_lossy(v);
        match n {
            b":authority" | b"host" => head.authority = v.into_owned(),
            b":path" => head.path = v.into_owned(),
            b":method" => head.method = v.into_owned(),
            b":scheme" => head.scheme = v.into_owned(),
            n if n.starts_with(b":") => {}
            n => regular.append(n, v.as_bytes()),
        }
    }
    head.headers = regular;
}

/// An `httpCall`'s request for the async client.
pub(super) fn call_request(spec: handle::CallSpec) -> Request {
    let mut head = RequestHead::default();
    headers_to_request(&spec.headers, &mut head);
    Request { head, body: spec.body, timeout: spec.timeout }
}

/// An async client outcome as `httpCall` returns it.
pub(super) fn call_result(outcome: Outcome) -> (HeaderMap, Vec<u8>) {
    match outcome {
        Ok(r) => (response_headers(&r.head), r.body),
        Err(_) => {
            let mut h = HeaderMap::default();
            h.append(b":status", b"503");
            (h, b"upstream failure".to_vec())
        }
    }
}
