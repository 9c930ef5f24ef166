//! The Lua filter (`envoy.filters.http.lua`, Envoy's lua_filter.cc): a script's
//! `envoy_on_request(handle)` runs on each request and `envoy_on_response(handle)` on
//! each response, each as a coroutine, so a call that waits — `body()`,
//! `bodyChunks()`, `trailers()`, `httpCall()` — yields and the stream resumes the script
//! when what it waits for arrives ([`handle`] has the handle's API, [`runtime`] the
//! interpreter, its per-worker states and limits).
//!
//! - Which script: the route's `LuaPerRoute` (`name` of a `source_codes` entry, or a
//!   `source_code` of its own; `disabled` turns the filter off), else
//!   `default_source_code` (or the deprecated `inline_code`); without one the filter
//!   passes the stream on.
//! - Headers change in place while the filter holds them; with `clear_route_cache`
//!   (default) a script that changed the request headers has the route picked again.
//! - `body()` buffers the body in the filter, bounded by the connection's buffer limit
//!   (past it: 413 on a request, 500 on a response, as Envoy's buffering filters);
//!   `setBytes` replaces it and the `content-length` follows.
//! - `respond()` (request flow only) answers locally with the script's `:status`,
//!   headers and body; `httpCall()` sends a request to a cluster through the worker's
//!   async client and resumes with `(headers, body)` (`:status` 503 and body
//!   `upstream failure` when it fails or times out, as Envoy fakes it).
//! - A Lua error (a failed call, the memory or instruction limit) is logged, counted in
//!   `http.<stat_prefix>.lua[.<filter stat_prefix>].errors` and answered 500 while the
//!   headers are still held; once they went on, the script is just dropped.
//!
//! Not in sluice: `httpCall()` from `envoy_on_response`, and after `body()` in the
//! request flow (both Lua errors); `dynamicMetadata():get` sees what this filter set.

mod handle;
mod runtime;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use sluice_config::filters::lua::Lua;

use self::handle::{make_handle, Info, Shared, SharedRef};
use self::runtime::{LuaCode, WorkerLua};
use crate::http::async_client::{AsyncClient, Outcome, Request};
use crate::http::filter::{
    DataStatus, FilterCallbacks, HeadEdit, HeadersStatus, StreamContext, StreamFilter, TrailersStatus,
};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::CounterSet;
use crate::http::{HeaderMap, RequestHead, ResponseHead, Version};
use crate::stats::Counter;
use crate::upstream::cluster_manager::ClusterManager;

/// The filter's config, compiled once and shared by the workers.
#[derive(Debug)]
pub struct LuaConfig {
    default: Option<Arc<LuaCode>>,
    named: Vec<(String, Arc<LuaCode>)>,
    clusters: Arc<ClusterManager>,
    clear_route_cache: bool,
    buffer_limit: usize,
    /// The filter's name (the key of its route metadata).
    name: String,
    errors: Arc<Counter>,
}

impl LuaConfig {
    /// Compile every script (each runs its top level once); an error names the source.
    pub fn new(
        c: &Lua,
        name: &str,
        clusters: &Arc<ClusterManager>,
        buffer_limit: usize,
        prefix: &str,
        counters: &mut CounterSet,
    ) -> Result<LuaConfig, String> {
        let compile = |s: &sluice_config::filters::lua::LuaSource| {
            LuaCode::new(&s.code, &s.path).map_err(|e| format!("{}: {e}", s.path))
        };
        let default = c.default_source_code.as_ref().map(compile).transpose()?;
        let mut named = Vec::with_capacity(c.source_codes.len());
        for (n, s) in &c.source_codes {
            named.push((n.clone(), compile(s)?));
        }
        let stat = if c.stat_prefix.is_empty() {
            format!("{prefix}lua.errors")
        } else {
            format!("{prefix}lua.{}.errors", c.stat_prefix)
        };
        Ok(LuaConfig {
            default,
            named,
            clusters: Arc::clone(clusters),
            clear_route_cache: c.clear_route_cache,
            buffer_limit,
            name: name.to_string(),
            errors: counters.counter(stat),
        })
    }

    /// The script of `source_codes[name]`.
    pub fn named(&self, name: &str) -> Option<&Arc<LuaCode>> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// A route's own `source_code`, compiled.
    pub fn compile_route(s: &sluice_config::filters::lua::LuaSource) -> Result<Arc<LuaCode>, String> {
        LuaCode::new(&s.code, &s.path)
    }
}

/// A script's per-route choice, compiled.
pub type LuaRoute = Arc<LuaCode>;

/// What a suspended script waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Body,
    Chunk,
    Trailers,
    Call,
}

/// One running `envoy_on_request` / `envoy_on_response`.
struct Run {
    w: Rc<WorkerLua>,
    thread: mlua::Thread,
    shared: SharedRef,
    wait: Option<Wait>,
}

/// How a resumption ended.
enum Step {
    Finished,
    Waiting(Wait),
    Respond,
    Error(String),
}

/// The Lua filter on one stream, as the worker's stream holds it (`Send`): the script's
/// coroutines live in this worker's thread-local table under `slot`, made on the first
/// hook that runs a script and dropped with the filter.
#[derive(Debug)]
pub struct LuaFilter {
    config: Arc<LuaConfig>,
    code: Option<Arc<LuaCode>>,
    route_metadata: sluice_config::metadata::Struct,
    slot: Option<u64>,
}

thread_local! {
    static STREAMS: RefCell<Vec<(u64, LuaStream)>> = const { RefCell::new(Vec::new()) };
    static NEXT_SLOT: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

impl LuaFilter {
    pub fn new(config: Arc<LuaConfig>, route: &RouteView<'_>, k: usize) -> LuaFilter {
        let code = match route.most_specific(k) {
            Some(PerRouteFilter::Lua(c)) => Some(Arc::clone(c)),
            _ => config.default.clone(),
        };
        let route_metadata =
            route.route_metadata().and_then(|m| m.filter_metadata.get(&config.name)).cloned().unwrap_or_default();
        LuaFilter { config, code, route_metadata, slot: None }
    }

    /// Run `f` on this stream's script state (taken out of the table while it runs).
    fn with<R>(&mut self, f: impl FnOnce(&mut LuaStream) -> R) -> R {
        let taken = self.slot.and_then(|id| {
            STREAMS.with(|t| {
                let mut t = t.borrow_mut();
                let i = t.iter().position(|(k, _)| *k == id)?;
                Some(t.swap_remove(i).1)
            })
        });
        let mut s = taken.unwrap_or_else(|| LuaStream::new(self));
        let r = f(&mut s);
        let id = *self.slot.get_or_insert_with(|| {
            NEXT_SLOT.with(|n| {
                let v = n.get();
                n.set(v + 1);
                v
            })
        });
        STREAMS.with(|t| t.borrow_mut().push((id, s)));
        r
    }

    /// No script runs on this stream.
    fn idle(&self) -> bool {
        self.code.is_none()
    }
}

impl Drop for LuaFilter {
    fn drop(&mut self) {
        if let Some(id) = self.slot.take() {
            let _ = STREAMS.try_with(|t| {
                if let Ok(mut t) = t.try_borrow_mut() {
                    t.retain(|(k, _)| *k != id);
                }
            });
        }
    }
}

impl StreamFilter for LuaFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        if self.idle() {
            return HeadersStatus::Continue;
        }
        self.with(|s| s.decode_headers(head, end_stream, cx, cb))
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, cb: &mut FilterCallbacks) -> DataStatus {
        if self.slot.is_none() {
            return DataStatus::Continue;
        }
        self.with(|s| s.decode_data(data, end_stream, cb))
    }

    fn decode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        if self.slot.is_none() {
            return TrailersStatus::Continue;
        }
        self.with(|s| s.decode_trailers(trailers, cb))
    }

    fn on_async_complete(
        &mut self,
        tag: u32,
        outcome: Outcome,
        head: &mut RequestHead,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        if self.slot.is_none() {
            return HeadersStatus::Continue;
        }
        self.with(|s| s.on_async_complete(tag, outcome, head, cx, cb))
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, end_stream: bool, cb: &mut FilterCallbacks) -> HeadersStatus {
        if self.idle() {
            return HeadersStatus::Continue;
        }
        self.with(|s| s.encode_headers(head, end_stream, cb))
    }

    fn encode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, cb: &mut FilterCallbacks) -> DataStatus {
        if self.slot.is_none() {
            return DataStatus::Continue;
        }
        self.with(|s| s.encode_data(data, end_stream, cb))
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        if self.slot.is_none() {
            return TrailersStatus::Continue;
        }
        self.with(|s| s.encode_trailers(trailers, cb))
    }

    fn on_destroy(&mut self) {
        if let Some(id) = self.slot.take() {
            STREAMS.with(|t| t.borrow_mut().retain(|(k, _)| *k != id));
        }
    }
}

/// The script's side of one stream (not `Send`: it holds Lua values).
struct LuaStream {
    config: Arc<LuaConfig>,
    code: Option<Arc<LuaCode>>,
    info: Info,
    req: Option<Run>,
    resp: Option<Run>,
    /// The request head while the script holds it (edits from the data hooks).
    held_request: Option<RequestHead>,
    /// The dynamic metadata the scripts set on this stream.
    metadata: sluice_config::metadata::Metadata,
}

impl std::fmt::Debug for LuaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaStream").field("code", &self.code).finish_non_exhaustive()
    }
}

impl LuaStream {
    fn new(f: &LuaFilter) -> LuaStream {
        let info = Info { route_metadata: f.route_metadata.clone(), ..Info::default() };
        LuaStream {
            config: Arc::clone(&f.config),
            code: f.code.clone(),
            info,
            req: None,
            resp: None,
            held_request: None,
            metadata: Default::default(),
        }
    }

    /// Start `f` of the script with a handle on `shared`.
    fn start(&self, w: Rc<WorkerLua>, f: &mlua::Function, shared: Shared) -> Result<(Run, Step), String> {
        let shared = Rc::new(RefCell::new(shared));
        let thread = w.lua.create_thread(f.clone()).map_err(|e| e.to_string())?;
        let handle = make_handle(&w.make_handle, &w.lua, &shared).map_err(|e| e.to_string())?;
        let mut run = Run { w, thread, shared, wait: None };
        let step = resume(&mut run, Some(handle));
        Ok((run, step))
    }

    fn script_error(&self, e: &str, cb: &mut FilterCallbacks) {
        self.config.errors.inc();
        tracing::error!(target: "lua", "script error: {e}");
        cb.send_local_reply(500, b"", Vec::new(), "lua_script_error");
    }

    /// Pass the script's metadata sets to the stream.
    fn flush_metadata(md: &mut sluice_config::metadata::Metadata, shared: &SharedRef, cb: &mut FilterCallbacks) {
        for (ns, st) in shared.borrow_mut().metadata_sets.drain(..) {
            md.merge_namespace(&ns, st.clone());
            cb.set_dynamic_metadata(&ns, st);
        }
    }

    /// Act on a request-flow step; `head` is the request head when the hook has it.
    fn request_step(&mut self, step: Step, head: Option<&mut RequestHead>, cb: &mut FilterCallbacks) -> Flow {
        let Some(run) = self.req.as_mut() else { return Flow::Continue };
        Self::flush_metadata(&mut self.metadata, &run.shared, cb);
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
                // What the failed script held (up to the memory limit) goes now.
                let _ = w.lua.gc_collect();
                if held_open {
                    self.script_error(&e, cb);
                    return Flow::Stop;
                }
                self.config.errors.inc();
                tracing::error!(target: "lua", "script error: {e}");
                Flow::Continue
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
                self.fire_async(cb);
                self.req = None;
                Flow::Continue
            }
            Step::Waiting(Wait::Call) => {
                let spec = run.shared.borrow_mut().call.take();
                let Some(spec) = spec else { return Flow::Stop };
                match self.client(&spec.cluster) {
                    Ok(client) => {
                        cb.send_request(&client, call_request(spec), 0);
                        run_wait(&mut self.req, Wait::Call);
                        Flow::Stop
                    }
                    Err(e) => {
                        self.req = None;
                        self.script_error(&e, cb);
                        Flow::Stop
                    }
                }
            }
            Step::Waiting(w) => {
                self.fire_async(cb);
                run_wait(&mut self.req, w);
                Flow::Wait(w)
            }
        }
    }

    /// Fire-and-forget `httpCall`s the script made without waiting.
    fn fire_async(&mut self, cb: &mut FilterCallbacks) {
        let Some(run) = self.req.as_ref() else { return };
        let spec = run.shared.borrow_mut().call.take();
        if let Some(spec) = spec {
            match self.client(&spec.cluster) {
                Ok(client) => cb.send_request(&client, call_request(spec), 1),
                Err(e) => tracing::error!(target: "lua", "script error: {e}"),
            }
        }
    }

    /// This worker's async client for `cluster`.
    fn client(&self, cluster: &str) -> Result<Arc<AsyncClient>, String> {
        let Some(run) = self.req.as_ref() else { return Err("no script".into()) };
        let mut clients = run.w.clients.borrow_mut();
        if let Some((_, c)) = clients.iter().find(|(n, _)| n == cluster) {
            return Ok(Arc::clone(c));
        }
        if self.config.clusters.index_of(cluster).is_none() {
            return Err(format!("http call cluster invalid. Must be configured: {cluster}"));
        }
        let c = AsyncClient::new(cluster, &self.config.clusters)?;
        clients.push((cluster.to_string(), Arc::clone(&c)));
        Ok(c)
    }

    /// Act on a response-flow step.
    fn response_step(&mut self, step: Step, head: Option<&mut ResponseHead>, cb: &mut FilterCallbacks) -> Flow {
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
                let _ = w.lua.gc_collect();
                if held_open {
                    self.script_error(&e, cb);
                    return Flow::Stop;
                }
                self.config.errors.inc();
                tracing::error!(target: "lua", "script error: {e}");
                Flow::Continue
            }
            Step::Respond => {
                self.resp = None;
                self.script_error("respond() is only valid in the request flow", cb);
                Flow::Stop
            }
        }
    }

    /// The body so far exceeds the buffer limit.
    fn over_limit(&self, shared: &SharedRef) -> bool {
        shared.borrow().body.len() > self.config.buffer_limit
    }
}

/// What the hook answers after a step.
enum Flow {
    Continue,
    Stop,
    Wait(Wait),
}

fn run_wait(run: &mut Option<Run>, w: Wait) {
    if let Some(r) = run.as_mut() {
        r.wait = Some(w);
    }
}

/// Resume the script (with its handle the first time).
fn resume(run: &mut Run, first: Option<mlua::Value>) -> Step {
    run.w.refill();
    run.wait = None;
    let r = match first {
        Some(h) => run.thread.resume::<mlua::MultiValue>(h),
        None => run.thread.resume::<mlua::MultiValue>(()),
    };
    match r {
        Err(e) => Step::Error(e.to_string()),
        Ok(values) => {
            if run.thread.status() != mlua::ThreadStatus::Resumable {
                return Step::Finished;
            }
            let what = values.into_iter().next().and_then(|v| v.as_string().map(|s| s.to_string_lossy()));
            match what.as_deref() {
                Some("body") => Step::Waiting(Wait::Body),
                Some("chunk") => Step::Waiting(Wait::Chunk),
                Some("trailers") => Step::Waiting(Wait::Trailers),
                Some("call") => Step::Waiting(Wait::Call),
                Some("respond") => Step::Respond,
                _ => Step::Error("the script yielded outside of the stream handle's calls".into()),
            }
        }
    }
}

fn version_name(v: Option<Version>) -> &'static str {
    match v {
        Some(Version::Http2) => "HTTP/2",
        Some(Version::Http10) => "HTTP/1.0",
        Some(Version::Http09) => "HTTP/0.9",
        _ => "HTTP/1.1",
    }
}

fn request_headers(head: &RequestHead) -> HeaderMap {
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
fn headers_to_request(h: &HeaderMap, head: &mut RequestHead) {
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

fn response_headers(head: &ResponseHead) -> HeaderMap {
    let mut h = HeaderMap::default();
    h.append(b":status", head.status.to_string().as_bytes());
    for (n, v) in head.headers.iter() {
        h.append(n, v);
    }
    h
}

fn headers_to_response(h: &HeaderMap, head: &mut ResponseHead) {
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

/// An `httpCall`'s request for the async client.
fn call_request(spec: handle::CallSpec) -> Request {
    let mut head = RequestHead::default();
    headers_to_request(&spec.headers, &mut head);
    Request { head, body: spec.body, timeout: spec.timeout }
}

/// An async client outcome as `httpCall` returns it.
fn call_result(outcome: Outcome) -> (HeaderMap, Vec<u8>) {
    match outcome {
        Ok(r) => (response_headers(&r.head), r.body),
        Err(_) => {
            let mut h = HeaderMap::default();
            h.append(b":status", b"503");
            (h, b"upstream failure".to_vec())
        }
    }
}

impl StreamFilter for LuaStream {
    fn decode_headers(
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
        let Some(code) = self.code.clone().filter(|c| c.has_on_request) else {
            return HeadersStatus::Continue;
        };
        let w = match code.worker() {
            Ok(w) => w,
            Err(e) => {
                self.script_error(&e, cb);
                return HeadersStatus::StopIteration;
            }
        };
        let Some(f) = w.on_request.clone() else { return HeadersStatus::Continue };
        let shared = Shared {
            request: true,
            headers: request_headers(head),
            headers_open: true,
            end_seen: end_stream,
            info: self.info.clone(),
            dynamic_metadata: self.metadata.clone(),
            ..Shared::default()
        };
        let (run, step) = match self.start(w, &f, shared) {
            Ok(x) => x,
            Err(e) => {
                self.script_error(&e, cb);
                return HeadersStatus::StopIteration;
            }
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

    fn decode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, cb: &mut FilterCallbacks) -> DataStatus {
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
                        self.req = None;
                        self.script_error("httpCall() after body() in the request flow is not supported by sluice", cb);
                        DataStatus::StopIterationNoBuffer
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
                if let Flow::Stop = flow {
                    return DataStatus::StopIterationNoBuffer;
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

    fn decode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        let Some(run) = self.req.as_mut() else { return TrailersStatus::Continue };
        if run.wait != Some(Wait::Trailers) {
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

    fn on_async_complete(
        &mut self,
        tag: u32,
        outcome: Outcome,
        head: &mut RequestHead,
        _cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        if tag != 0 {
            return HeadersStatus::StopIteration;
        }
        let Some(run) = self.req.as_mut() else { return HeadersStatus::Continue };
        if run.wait != Some(Wait::Call) {
            return HeadersStatus::StopIteration;
        }
        run.shared.borrow_mut().call_result = Some(call_result(outcome));
        let step = resume(run, None);
        match self.request_step(step, Some(head), cb) {
            Flow::Continue => {
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

    fn encode_headers(&mut self, head: &mut ResponseHead, end_stream: bool, cb: &mut FilterCallbacks) -> HeadersStatus {
        let Some(code) = self.code.clone().filter(|c| c.has_on_response) else {
            return HeadersStatus::Continue;
        };
        let w = match code.worker() {
            Ok(w) => w,
            Err(e) => {
                self.script_error(&e, cb);
                return HeadersStatus::StopIteration;
            }
        };
        let Some(f) = w.on_response.clone() else { return HeadersStatus::Continue };
        let shared = Shared {
            request: false,
            headers: response_headers(head),
            headers_open: true,
            end_seen: end_stream,
            info: self.info.clone(),
            dynamic_metadata: self.metadata.clone(),
            ..Shared::default()
        };
        let (run, step) = match self.start(w, &f, shared) {
            Ok(x) => x,
            Err(e) => {
                self.script_error(&e, cb);
                return HeadersStatus::StopIteration;
            }
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

    fn encode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, cb: &mut FilterCallbacks) -> DataStatus {
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

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        let Some(run) = self.resp.as_mut() else { return TrailersStatus::Continue };
        let shared = Rc::clone(&run.shared);
        match run.wait {
            Some(Wait::Trailers) => {
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

    fn on_destroy(&mut self) {
        self.req = None;
        self.resp = None;
        self.held_request = None;
    }
}

impl LuaStream {
    /// The request headers went on: the script may no longer change them.
    fn close_request_headers(&mut self) {
        if let Some(r) = self.req.as_ref() {
            r.shared.borrow_mut().headers_open = false;
        }
        self.held_request = None;
    }

    /// The held request head goes on with the script's edits.
    fn release_request(&mut self, cb: &mut FilterCallbacks) {
        if let Some(h) = self.held_request.take() {
            cb.replace_held_request(h);
        }
        if let Some(r) = self.req.as_ref() {
            r.shared.borrow_mut().headers_open = false;
        }
    }

    fn close_response_headers(&mut self) {
        if let Some(r) = self.resp.as_ref() {
            r.shared.borrow_mut().headers_open = false;
        }
    }

    /// After the script saw the whole response body: its head edits, the body (with the
    /// `content-length` following a replaced one) handed to `put`.
    fn finish_response_body(
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
