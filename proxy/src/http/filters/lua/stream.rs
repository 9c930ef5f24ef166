//! One stream's script state (`LuaStream`, not `Send`: it holds Lua values) and what
//! both flows share: starting a hook's coroutine with its handle ([`LuaStream::start_hook`]),
//! resuming it, answering a script error (500 while the headers are held, else a count
//! and a log line), passing metadata sets on, and the worker's async clients for
//! `httpCall()`. Nothing here panics on what a script does.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::handle::{make_handle, Info, Shared, SharedRef};
use super::runtime::{LuaCode, WorkerLua};
use super::{request, LuaConfig, LuaFilter};
use crate::http::async_client::AsyncClient;
use crate::http::filter::FilterCallbacks;
use crate::http::{HeaderMap, RequestHead, Version};

/// What a suspended script waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    Body,
    Chunk,
    Trailers,
    Call,
}

/// One running `envoy_on_request` / `envoy_on_response`.
pub(super) struct Run {
    pub(super) w: Rc<WorkerLua>,
    pub(super) thread: mlua::Thread,
    pub(super) shared: SharedRef,
    pub(super) wait: Option<Wait>,
}

/// How a resumption ended.
pub(super) enum Step {
    Finished,
    Waiting(Wait),
    Respond,
    Error(String),
}

/// The script's side of one stream (not `Send`: it holds Lua values).
pub(super) struct LuaStream {
    pub(super) config: Arc<LuaConfig>,
    pub(super) code: Option<Arc<LuaCode>>,
    pub(super) info: Info,
    pub(super) req: Option<Run>,
    pub(super) resp: Option<Run>,
    /// The request head while the script holds it (edits from the data hooks).
    pub(super) held_request: Option<RequestHead>,
    /// The dynamic metadata the scripts set on this stream.
    pub(super) metadata: sluice_config::metadata::Metadata,
    /// Response input that came while `envoy_on_response` waited for its `httpCall()`
    /// (Envoy holds it with `StopIterationAndWatermark`), not seen by the script yet.
    pub(super) resp_pending: Pending,
}

/// Body bytes, the end and trailers held for a script that waits for an `httpCall()`.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Chunks the script saw, to go on ahead of `data`.
    pub(super) seen: Vec<u8>,
    pub(super) data: Vec<u8>,
    pub(super) end: bool,
    pub(super) trailers: Option<HeaderMap>,
}

/// The tag of `envoy_on_request`'s `httpCall()` answer.
pub(super) const TAG_REQUEST_CALL: u32 = 0;
/// The tag of `envoy_on_response`'s.
pub(super) const TAG_RESPONSE_CALL: u32 = 2;

impl std::fmt::Debug for LuaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaStream").field("code", &self.code).finish_non_exhaustive()
    }
}

impl LuaStream {
    pub(super) fn new(f: &LuaFilter) -> LuaStream {
        let info = Info { route_metadata: f.route_metadata.clone(), ..Info::default() };
        LuaStream {
            config: Arc::clone(&f.config),
            code: f.code.clone(),
            info,
            req: None,
            resp: None,
            held_request: None,
            metadata: Default::default(),
            resp_pending: Pending::default(),
        }
    }

    /// Start the script's `envoy_on_request` (`request`) or `envoy_on_response` as a
    /// coroutine with a handle on `headers()` (made only when the script has that
    /// function) and resume it once. A worker state or coroutine that cannot be made is
    /// a script error, answered here.
    pub(super) fn start_hook(
        &mut self,
        request: bool,
        headers: impl FnOnce() -> HeaderMap,
        end_stream: bool,
        cb: &mut FilterCallbacks,
    ) -> Start {
        let Some(code) = self.code.clone().filter(|c| if request { c.has_on_request } else { c.has_on_response })
        else {
            return Start::NoScript;
        };
        let w = match code.worker() {
            Ok(w) => w,
            Err(e) => {
                self.script_error(&e, cb);
                return Start::Failed;
            }
        };
        let Some(f) = (if request { w.on_request.clone() } else { w.on_response.clone() }) else {
            return Start::NoScript;
        };
        let shared = Rc::new(RefCell::new(Shared {
            request,
            headers: headers(),
            headers_open: true,
            end_seen: end_stream,
            info: self.info.clone(),
            dynamic_metadata: self.metadata.clone(),
            ..Shared::default()
        }));
        let made = w.lua.create_thread(f).and_then(|t| Ok((t, make_handle(&w.make_handle, &w.lua, &shared)?)));
        match made {
            Ok((thread, handle)) => {
                let mut run = Run { w, thread, shared, wait: None };
                let step = resume(&mut run, Some(handle));
                Start::Started(run, step)
            }
            Err(e) => {
                self.script_error(&e.to_string(), cb);
                Start::Failed
            }
        }
    }

    pub(super) fn script_error(&self, e: &str, cb: &mut FilterCallbacks) {
        self.config.errors.inc();
        tracing::error!(target: "lua", "script error: {e}");
        cb.send_local_reply(500, b"", Vec::new(), "lua_script_error");
    }

    /// Pass the script's metadata sets to the stream.
    pub(super) fn flush_metadata(
        md: &mut sluice_config::metadata::Metadata,
        shared: &SharedRef,
        cb: &mut FilterCallbacks,
    ) {
        for (ns, st) in shared.borrow_mut().metadata_sets.drain(..) {
            md.merge_namespace(&ns, st.clone());
            cb.set_dynamic_metadata(&ns, st);
        }
    }

    /// A script failed (its run is dropped by the caller): what it held goes now; while
    /// the headers are held the stream is answered 500, after that only counted.
    pub(super) fn failed(&self, w: &Rc<WorkerLua>, held_open: bool, e: &str, cb: &mut FilterCallbacks) -> Flow {
        let _ = w.lua.gc_collect();
        if held_open {
            self.script_error(e, cb);
            return Flow::Stop;
        }
        self.config.errors.inc();
        tracing::error!(target: "lua", "script error: {e}");
        Flow::Continue
    }

    /// Fire-and-forget `httpCall`s (`asynchronous`) the script made since the last
    /// step: each goes out as a worker-owned request (Envoy sends them with no-op
    /// callbacks, so they outlive the stream); the answer is dropped.
    pub(super) fn fire_async(&self, run: &Run, cb: &mut FilterCallbacks) {
        let specs = std::mem::take(&mut run.shared.borrow_mut().async_calls);
        for spec in specs {
            match self.client(&run.w, &spec.cluster) {
                Ok(client) => cb.send_request_detached(&client, request::call_request(spec)),
                Err(e) => {
                    self.config.errors.inc();
                    tracing::error!(target: "lua", "script error: {e}");
                }
            }
        }
    }

    /// This worker's async client for `cluster`.
    pub(super) fn client(&self, w: &WorkerLua, cluster: &str) -> Result<Arc<AsyncClient>, String> {
        let mut clients = w.clients.borrow_mut();
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

    /// The body so far exceeds the buffer limit.
    pub(super) fn over_limit(&self, shared: &SharedRef) -> bool {
        shared.borrow().body.len() > self.config.buffer_limit
    }
}

/// What the hook answers after a step.
pub(super) enum Flow {
    Continue,
    Stop,
    Wait(Wait),
}

pub(super) fn run_wait(run: &mut Option<Run>, w: Wait) {
    if let Some(r) = run.as_mut() {
        r.wait = Some(w);
    }
}

/// Resume the script (with its handle the first time).
pub(super) fn resume(run: &mut Run, first: Option<mlua::Value>) -> Step {
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

pub(super) fn version_name(v: Option<Version>) -> &'static str {
    match v {
        Some(Version::Http2) => "HTTP/2",
        Some(Version::Http10) => "HTTP/1.0",
        Some(Version::Http09) => "HTTP/0.9",
        _ => "HTTP/1.1",
    }
}

/// How a hook's coroutine start went.
pub(super) enum Start {
    /// The script has no function for this hook.
    NoScript,
    /// It could not start; the stream was answered 500.
    Failed,
    Started(Run, Step),
}
