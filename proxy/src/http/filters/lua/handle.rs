//! The stream handle a script gets (Envoy's `StreamHandleWrapper` and its wrappers):
//! the Rust side of `headers()`, `body()`, `bodyChunks()`, `trailers()`, `metadata()`,
//! `streamInfo()`, `connection()`, the log calls, `respond()` and `httpCall()`.
//!
//! The handle works on [`Shared`], the filter's copy of what the script may see and
//! change; the filter moves heads and bodies in before it resumes the script and out
//! after it yields. A call the script makes out of turn (changing headers that already
//! went on, `respond()` in the response flow) is a Lua error, never a panic.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mlua::{AnyUserData, Lua, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value as LuaValue};
use sluice_config::metadata::{Struct, Value as MdValue};

use crate::http::HeaderMap;

/// An `httpCall` the script asked for.
#[derive(Debug)]
pub struct CallSpec {
    pub cluster: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
    /// `return_duplicate_headers`: repeated response headers come back as a table.
    pub duplicate_headers: bool,
}

/// A `respond()` the script asked for.
#[derive(Debug)]
pub struct Respond {
    pub status: u16,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// What the connection looks like to the script.
#[derive(Debug, Default, Clone)]
pub struct Info {
    pub protocol: &'static str,
    pub direct_remote: String,
    pub sni: String,
    pub ssl: bool,
    /// The route's `metadata.filter_metadata[<filter name>]`.
    pub route_metadata: Struct,
}

/// One direction's state between the filter and its script.
#[derive(Debug, Default)]
pub struct Shared {
    pub request: bool,
    /// The head as headers (pseudo-headers first).
    pub headers: HeaderMap,
    /// The headers have not gone on yet: the script may change them.
    pub headers_open: bool,
    pub headers_modified: bool,
    /// The whole body (`body()`), once `end_seen`.
    pub body: Vec<u8>,
    /// The script asked for the whole body: chunks are buffered here.
    pub buffering: bool,
    /// `setBytes` changed the buffered body.
    pub body_replaced: bool,
    pub end_seen: bool,
    /// The chunk `bodyChunks()` hands out next.
    pub chunk: Option<Vec<u8>>,
    /// The chunk it handed out (the script may `setBytes` it).
    pub current_chunk: Option<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
    pub respond: Option<Respond>,
    /// The `httpCall` the script waits for.
    pub call: Option<CallSpec>,
    /// Fire-and-forget `httpCall`s (`asynchronous`), in order, not sent yet.
    pub async_calls: Vec<CallSpec>,
    /// The answer to `call`, and whether repeated headers come back as tables.
    pub call_result: Option<(HeaderMap, Vec<u8>)>,
    pub call_duplicate_headers: bool,
    pub info: Info,
    /// `dynamicMetadata():set` calls, in order, for the filter callbacks.
    pub metadata_sets: Vec<(String, Struct)>,
    /// Everything this filter set, for `dynamicMetadata():get`.
    pub dynamic_metadata: sluice_config::metadata::Metadata,
}

pub type SharedRef = Rc<RefCell<Shared>>;

/// `stream_handle` (the userdata under the prelude's table).
pub struct StreamUd(pub SharedRef);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Headers,
    Trailers,
}

/// A header map object (`headers()`, `trailers()`).
struct HeadersUd(SharedRef, Which);

/// A body buffer object (`body()`, a `bodyChunks()` chunk).
struct BufferUd {
    shared: SharedRef,
    /// A streamed chunk (`current_chunk`), else the buffered body.
    chunk: bool,
}

fn rt(m: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(m.into())
}

impl HeadersUd {
    fn with<R>(&self, f: impl FnOnce(&mut HeaderMap) -> R, write: bool) -> mlua::Result<R> {
        let mut s = self.0.borrow_mut();
        if write && self.1 == Which::Headers && !s.headers_open {
            return Err(rt("object used outside of proper scope"));
        }
        if write && self.1 == Which::Headers {
            s.headers_modified = true;
        }
        match self.1 {
            Which::Headers => Ok(f(&mut s.headers)),
            Which::Trailers => match s.trailers.as_mut() {
                Some(t) => Ok(f(t)),
                None => Err(rt("object used outside of proper scope")),
            },
        }
    }
}

fn lower(k: &mlua::String) -> Vec<u8> {
    k.as_bytes().to_ascii_lowercase()
}

impl UserData for HeadersUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("get", |lua, this, k: mlua::String| {
            let k = lower(&k);
            let v = this.with(
                |h| {
                    let all: Vec<&[u8]> = h.get_all(&k).collect();
                    (!all.is_empty()).then(|| all.join(&b","[..]))
                },
                false,
            )?;
            v.map(|v| lua.create_string(&v)).transpose()
        });
        m.add_method("getAtIndex", |lua, this, (k, i): (mlua::String, i64)| {
            let k = lower(&k);
            let v =
                this.with(|h| usize::try_from(i).ok().and_then(|i| h.get_all(&k).nth(i).map(<[u8]>::to_vec)), false)?;
            v.map(|v| lua.create_string(&v)).transpose()
        });
        m.add_method("getNumValues", |_, this, k: mlua::String| {
            let k = lower(&k);
            this.with(|h| h.count(&k) as i64, false)
        });
        m.add_method("add", |_, this, (k, v): (mlua::String, mlua::String)| {
            let (k, v) = (lower(&k), v.as_bytes().to_vec());
            this.with(|h| h.append(&k, &v), true)
        });
        m.add_method("replace", |_, this, (k, v): (mlua::String, mlua::String)| {
            let (k, v) = (lower(&k), v.as_bytes().to_vec());
            this.with(|h| h.set(&k, &v), true)
        });
        m.add_method("remove", |_, this, k: mlua::String| {
            let k = lower(&k);
            this.with(|h| h.remove(&k), true).map(|_| ())
        });
        m.add_meta_method(MetaMethod::Pairs, |lua, this, ()| {
            let items: Vec<(Vec<u8>, Vec<u8>)> =
                this.with(|h| h.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(), false)?;
            let items = RefCell::new(items.into_iter());
            let next = lua.create_function(move |lua, _: MultiValue| match items.borrow_mut().next() {
                Some((n, v)) => {
                    Ok((LuaValue::String(lua.create_string(&n)?), LuaValue::String(lua.create_string(&v)?)))
                }
                None => Ok((LuaValue::Nil, LuaValue::Nil)),
            })?;
            Ok((next, LuaValue::Nil, LuaValue::Nil))
        });
    }
}

impl BufferUd {
    fn bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let s = self.shared.borrow();
        if self.chunk {
            f(s.current_chunk.as_deref().unwrap_or_default())
        } else {
            f(&s.body)
        }
    }
}

impl UserData for BufferUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("length", |_, this, ()| Ok(this.bytes(<[u8]>::len) as i64));
        m.add_method("getBytes", |lua, this, (start, len): (i64, i64)| {
            let bytes = this.bytes(|b| {
                let n = b.len() as i64;
                if start < 0 || len < 0 || start > n || start.saturating_add(len) > n {
                    return Err(rt("index out of bounds"));
                }
                Ok(b[start as usize..(start + len) as usize].to_vec())
            })?;
            lua.create_string(&bytes)
        });
        m.add_method("setBytes", |_, this, s: mlua::String| {
            let bytes = s.as_bytes().to_vec();
            let mut sh = this.shared.borrow_mut();
            if this.chunk {
                sh.current_chunk = Some(bytes);
            } else {
                sh.body = bytes;
                sh.body_replaced = true;
            }
            Ok(())
        });
    }
}

impl UserData for StreamUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("headers", |_, this, ()| Ok(HeadersUd(Rc::clone(&this.0), Which::Headers)));
        m.add_method("body_ready", |_, this, ()| {
            let mut s = this.0.borrow_mut();
            if !s.end_seen {
                s.buffering = true;
            }
            Ok(s.end_seen)
        });
        m.add_method("body", |_, this, always_wrap: Option<bool>| {
            let s = this.0.borrow();
            if s.body.is_empty() && !s.body_replaced && always_wrap != Some(true) {
                return Ok(None);
            }
            Ok(Some(BufferUd { shared: Rc::clone(&this.0), chunk: false }))
        });
        m.add_method("next_chunk", |_, this, ()| {
            let mut s = this.0.borrow_mut();
            let done = s.end_seen;
            let Some(c) = s.chunk.take() else { return Ok((None, done)) };
            s.current_chunk = Some(c);
            Ok((Some(BufferUd { shared: Rc::clone(&this.0), chunk: true }), done))
        });
        m.add_method("end_seen", |_, this, ()| Ok(this.0.borrow().end_seen));
        m.add_method("trailers", |_, this, ()| {
            Ok(this.0.borrow().trailers.is_some().then(|| HeadersUd(Rc::clone(&this.0), Which::Trailers)))
        });
        m.add_method("respond", |_, this, (headers, body): (Table, Option<mlua::String>)| {
            let mut s = this.0.borrow_mut();
            if !s.request || !s.headers_open {
                return Err(rt("respond() can only be called in the request flow before the headers continue"));
            }
            let mut status = None;
            let mut hs = Vec::new();
            for pair in headers.pairs::<mlua::String, mlua::String>() {
                let (k, v) = pair?;
                let k = lower(&k);
                if k == b":status" {
                    status = std::str::from_utf8(&v.as_bytes()).ok().and_then(|v| v.parse::<u16>().ok());
                } else {
                    hs.push((k, v.as_bytes().to_vec()));
                }
            }
            let Some(status) = status.filter(|s| (200..600).contains(s)) else {
                return Err(rt(":status must be specified and a valid integer"));
            };
            let body = body.map(|b| b.as_bytes().to_vec()).unwrap_or_default();
            s.respond = Some(Respond { status, headers: hs, body });
            Ok(())
        });
        m.add_method(
            "http_call",
            |_,
             this,
             (cluster, headers, body, options, asynchronous): (
                String,
                Table,
                Option<mlua::String>,
                LuaValue,
                Option<bool>,
            )| {
                let mut h = HeaderMap::default();
                for pair in headers.pairs::<mlua::String, LuaValue>() {
                    let (k, v) = pair?;
                    let k = lower(&k);
                    match v {
                        LuaValue::String(v) => h.append(&k, &v.as_bytes()),
                        LuaValue::Table(t) => {
                            for v in t.sequence_values::<mlua::String>() {
                                h.append(&k, &v?.as_bytes());
                            }
                        }
                        LuaValue::Integer(_) | LuaValue::Number(_) => {
                            let v = v.to_string()?;
                            h.append(&k, v.as_bytes());
                        }
                        _ => return Err(rt("header values must be strings or tables of strings")),
                    }
                }
                for p in [&b":method"[..], b":path", b":authority"] {
                    if h.get(p).is_none() {
                        return Err(rt(format!(
                            "http call headers must include ':path', ':method', and ':authority' (missing {})",
                            String::from_utf8_lossy(p)
                        )));
                    }
                }
                let o = call_options(&options, asynchronous)?;
                // The async client sets the `content-length` of the body.
                let body = body.map(|b| b.as_bytes().to_vec()).unwrap_or_default();
                let spec =
                    CallSpec { cluster, headers: h, body, timeout: o.timeout, duplicate_headers: o.duplicate_headers };
                let mut s = this.0.borrow_mut();
                if o.asynchronous {
                    s.async_calls.push(spec);
                } else {
                    s.call_duplicate_headers = spec.duplicate_headers;
                    s.call = Some(spec);
                }
                Ok(o.asynchronous)
            },
        );
        m.add_method("call_result", |lua, this, ()| {
            let (h, body, dup) = {
                let mut s = this.0.borrow_mut();
                let (h, body) = s.call_result.take().unwrap_or_default();
                (h, body, s.call_duplicate_headers)
            };
            let t = lua.create_table()?;
            for (n, v) in h.iter() {
                let key = lua.create_string(n)?;
                if dup && h.count(n) > 1 {
                    // Every value of a repeated header, in order (one table per name).
                    if t.raw_get::<Option<Table>>(key.clone())?.is_none() {
                        let all = lua.create_table()?;
                        for (i, v) in h.get_all(n).enumerate() {
                            all.raw_set(i + 1, lua.create_string(v)?)?;
                        }
                        t.set(key, all)?;
                    }
                } else {
                    t.set(key, lua.create_string(v)?)?;
                }
            }
            let body = if body.is_empty() { LuaValue::Nil } else { LuaValue::String(lua.create_string(&body)?) };
            Ok((t, body))
        });
        m.add_method("metadata", |lua, this, ()| {
            let md = this.0.borrow().info.route_metadata.clone();
            struct_to_lua(lua, &md)
        });
        m.add_method("stream_info", |_, this, ()| Ok(StreamInfoUd(Rc::clone(&this.0))));
        m.add_method("connection", |_, this, ()| Ok(ConnectionUd(this.0.borrow().info.ssl)));
        m.add_method("log", |_, _this, (level, msg): (u8, mlua::String)| {
            let msg = String::from_utf8_lossy(&msg.as_bytes()).into_owned();
            match level {
                0 => tracing::trace!(target: "lua", "script log: {msg}"),
                1 => tracing::debug!(target: "lua", "script log: {msg}"),
                2 => tracing::info!(target: "lua", "script log: {msg}"),
                3 => tracing::warn!(target: "lua", "script log: {msg}"),
                _ => tracing::error!(target: "lua", "script log: {msg}"),
            }
            Ok(())
        });
    }
}

/// `httpCall`'s options: the 4th argument as a timeout (with the 5th, `asynchronous`)
/// or as Envoy's options table.
struct CallOptions {
    timeout: Option<Duration>,
    asynchronous: bool,
    duplicate_headers: bool,
}

fn call_options(v: &LuaValue, asynchronous: Option<bool>) -> mlua::Result<CallOptions> {
    let timeout_of = |ms: i64| {
        if ms < 0 {
            return Err(rt("http call timeout must be >= 0"));
        }
        Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
    };
    let mut o = CallOptions { timeout: None, asynchronous: asynchronous.unwrap_or(false), duplicate_headers: false };
    match v {
        LuaValue::Integer(ms) => o.timeout = timeout_of(*ms)?,
        LuaValue::Number(ms) if ms.fract() == 0.0 => o.timeout = timeout_of(*ms as i64)?,
        LuaValue::Table(t) => {
            for pair in t.clone().pairs::<mlua::String, LuaValue>() {
                let (k, v) = pair?;
                let truthy = !matches!(v, LuaValue::Nil | LuaValue::Boolean(false));
                match &*k.to_str()? {
                    "asynchronous" => o.asynchronous = truthy,
                    "return_duplicate_headers" => o.duplicate_headers = truthy,
                    "timeout_ms" => match v {
                        LuaValue::Integer(ms) => o.timeout = timeout_of(ms)?,
                        LuaValue::Number(ms) if ms.fract() == 0.0 => o.timeout = timeout_of(ms as i64)?,
                        _ => return Err(rt("'timeout_ms' option must be an integer")),
                    },
                    k @ ("trace_sampled" | "send_xff") => {
                        return Err(rt(format!("the \"{k}\" httpCall() option is not supported by sluice")))
                    }
                    k => return Err(rt(format!("\"{k}\" is not valid key for httpCall() options"))),
                }
            }
        }
        _ => return Err(rt("httpCall() takes a timeout in milliseconds or an options table")),
    }
    Ok(o)
}

/// `streamInfo()`.
struct StreamInfoUd(SharedRef);

impl UserData for StreamInfoUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("protocol", |_, this, ()| Ok(this.0.borrow().info.protocol));
        m.add_method("downstreamDirectRemoteAddress", |_, this, ()| Ok(this.0.borrow().info.direct_remote.clone()));
        m.add_method("requestedServerName", |_, this, ()| Ok(this.0.borrow().info.sni.clone()));
        m.add_method("dynamicMetadata", |_, this, ()| Ok(DynamicMetadataUd(Rc::clone(&this.0))));
    }
}

/// `streamInfo():dynamicMetadata()`.
struct DynamicMetadataUd(SharedRef);

impl UserData for DynamicMetadataUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("get", |lua, this, ns: String| {
            let s = this.0.borrow();
            match s.dynamic_metadata.filter_metadata.get(&ns) {
                Some(st) => Ok(LuaValue::Table(struct_to_lua(lua, st)?)),
                None => Ok(LuaValue::Nil),
            }
        });
        m.add_method("set", |_, this, (ns, key, value): (String, String, LuaValue)| {
            let v = lua_to_value(&value, 0)?;
            let mut s = this.0.borrow_mut();
            s.dynamic_metadata.set(&ns, &key, v.clone());
            let mut st = Struct::new();
            st.insert(key, v);
            s.metadata_sets.push((ns, st));
            Ok(())
        });
        m.add_meta_method(MetaMethod::Pairs, |lua, this, ()| {
            let t = lua.create_table()?;
            for (ns, st) in &this.0.borrow().dynamic_metadata.filter_metadata {
                t.set(ns.as_str(), struct_to_lua(lua, st)?)?;
            }
            let next: mlua::Function = lua.globals().get("next")?;
            Ok((next, t, LuaValue::Nil))
        });
    }
}

/// `connection()`.
struct ConnectionUd(bool);

impl UserData for ConnectionUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // A TLS connection answers a (truthy) SSL object, a plaintext one nil.
        m.add_method("ssl", |_, this, ()| Ok(this.0.then_some(SslUd)));
    }
}

struct SslUd;

impl UserData for SslUd {}

fn struct_to_lua(lua: &Lua, s: &Struct) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (k, v) in s {
        t.set(k.as_str(), value_to_lua(lua, v)?)?;
    }
    Ok(t)
}

fn value_to_lua(lua: &Lua, v: &MdValue) -> mlua::Result<LuaValue> {
    Ok(match v {
        MdValue::Null => LuaValue::Nil,
        MdValue::Number(n) => LuaValue::Number(*n),
        MdValue::String(s) => LuaValue::String(lua.create_string(s)?),
        MdValue::Bool(b) => LuaValue::Boolean(*b),
        MdValue::Struct(s) => LuaValue::Table(struct_to_lua(lua, s)?),
        MdValue::List(l) => {
            let t = lua.create_table()?;
            for (i, v) in l.iter().enumerate() {
                t.set(i + 1, value_to_lua(lua, v)?)?;
            }
            LuaValue::Table(t)
        }
    })
}

/// A Lua value as metadata (Envoy: strings, numbers, booleans and tables; a table with
/// keys 1..n is a list).
fn lua_to_value(v: &LuaValue, depth: usize) -> mlua::Result<MdValue> {
    if depth > 32 {
        return Err(rt("metadata nested too deeply"));
    }
    Ok(match v {
        LuaValue::Nil => MdValue::Null,
        LuaValue::Boolean(b) => MdValue::Bool(*b),
        LuaValue::Integer(i) => MdValue::Number(*i as f64),
        LuaValue::Number(n) => MdValue::Number(*n),
        LuaValue::String(s) => MdValue::String(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        LuaValue::Table(t) => {
            let n = t.raw_len();
            if n > 0 {
                let mut l = Vec::with_capacity(n);
                for v in t.clone().sequence_values::<LuaValue>() {
                    l.push(lua_to_value(&v?, depth + 1)?);
                }
                MdValue::List(l)
            } else {
                let mut s = Struct::new();
                for pair in t.clone().pairs::<String, LuaValue>() {
                    let (k, v) = pair?;
                    s.insert(k, lua_to_value(&v, depth + 1)?);
                }
                MdValue::Struct(s)
            }
        }
        _ => return Err(rt("unsupported value type for metadata")),
    })
}

/// The script's handle for `shared` (the prelude's table around a [`StreamUd`]).
pub fn make_handle(make: &mlua::Function, lua: &Lua, shared: &SharedRef) -> mlua::Result<LuaValue> {
    let ud: AnyUserData = lua.create_userdata(StreamUd(Rc::clone(shared)))?;
    make.call(ud)
}
