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
//!   headers and body.
//! - `httpCall(cluster, headers, body, timeout_ms[, asynchronous])` or
//!   `httpCall(cluster, headers, body, options)` (`timeout_ms`, `asynchronous`,
//!   `return_duplicate_headers`; `trace_sampled` and `send_xff` are Lua errors here),
//!   from either hook, before or after `body()`: the request goes to the cluster
//!   through the worker's async client and the script resumes with `(headers, body)`
//!   (`:status` 503 and body `upstream failure` when it fails or times out, as Envoy
//!   fakes it). Meanwhile the stream holds: the request body the script took waits
//!   for it (`StopIterationAndWatermark`, then `modify_decoding_buffer`), and on the
//!   response the head, body and trailers that come wait unseen in the filter, handed
//!   to the script as it asks for them once the answer came
//!   ([`StreamFilter::on_encode_async_complete`]). An asynchronous call goes out as a
//!   worker-owned request that outlives the stream; its answer is dropped.
//! - `metadata()` is Envoy's metadata object (`get(key)`, `pairs()`) over the route's
//!   `metadata.filter_metadata[<filter name>]`, else `[envoy.filters.http.lua]`.
//! - A Lua error (a failed call, the memory or instruction limit) is logged, counted in
//!   `http.<stat_prefix>.lua[.<filter stat_prefix>].errors` and answered 500 while the
//!   headers are still held; once they went on, the script is just dropped.
//!
//! The files: [`stream`] holds one stream's script state and the one place a hook's
//! coroutine starts ([`stream::LuaStream::start_hook`]) and a script error is answered;
//! [`request`] runs `envoy_on_request` over the decoder hooks, [`response`]
//! `envoy_on_response` over the encoder hooks.
//!
//! Trailers end a `bodyChunks()` loop (the iterator stops, `trailers()` answers).
//!
//! Not in sluice: `httpCall()` inside a request-flow `bodyChunks()` loop (a Lua error);
//! request trailers changed after an `httpCall()` made once they came (they go on as
//! they were at the call); `dynamicMetadata():get` sees what this filter set.

mod handle;
mod request;
mod response;
mod runtime;
mod stream;

use std::cell::RefCell;
use std::sync::Arc;

use sluice_config::filters::lua::Lua;

use self::runtime::LuaCode;
use self::stream::LuaStream;
use crate::http::async_client::Outcome;
use crate::http::filter::{
    DataStatus, EncodeResume, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter, TrailersStatus,
};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::CounterSet;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::stats::SharedCounter;
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
    errors: Arc<SharedCounter>,
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
        // Envoy: by the filter's name, else by its canonical name.
        let route_metadata = route
            .route_metadata()
            .and_then(|m| {
                m.filter_metadata.get(&config.name).or_else(|| m.filter_metadata.get("envoy.filters.http.lua"))
            })
            .cloned()
            .unwrap_or_default();
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

    fn on_encode_async_complete(
        &mut self,
        tag: u32,
        outcome: Outcome,
        cb: &mut FilterCallbacks,
    ) -> Option<EncodeResume> {
        self.slot?;
        self.with(|s| s.on_encode_async_complete(tag, outcome, cb))
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
