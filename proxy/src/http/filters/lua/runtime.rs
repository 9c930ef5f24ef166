//! The Lua interpreter behind the filter: LuaJIT 2.1, vendored and built from source
//! (mlua's `luajit52` + `vendored` features) with `LUAJIT_ENABLE_LUA52COMPAT`, which is
//! how Envoy builds it (Lua 5.1 semantics, `pairs()` honouring `__pairs` so header maps
//! iterate).
//!
//! A [`LuaCode`] is one script, compiled and run once at config load to check it (a
//! syntax error or a failing top level is a config error). Each worker gets a state of
//! its own per script the first time a stream of that worker needs it ([`LuaCode::worker`]:
//! a thread-local table keyed by the script's id, so nothing is shared between workers
//! and a script is compiled once per worker); states of configs that were replaced are
//! dropped on the next lookup.
//!
//! Limits, so a script cannot take its worker down: each state may allocate at most
//! [`MEMORY_LIMIT`] bytes (mlua's allocator limit; an allocation past it is a Lua memory
//! error, i.e. a script error), and each resumption of a script may run at most
//! [`INSTRUCTION_BUDGET`] VM instructions (a count hook). LuaJIT's compiled traces do
//! not check hooks, so the JIT compiler is off in these states (scripts run on LuaJIT's
//! interpreter) and the `jit` module is removed; a runaway loop is then always cut
//! short. The libraries are Lua's safe set (`ffi` and `debug` are not loaded). Time
//! spent inside one C library call (a huge `string.rep`) is bounded by the memory
//! limit, not by the instruction count.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use mlua::{Function, HookTriggers, Lua, VmState};

use crate::http::async_client::AsyncClient;

/// The most memory one worker's state of one script may hold.
pub const MEMORY_LIMIT: usize = 64 << 20;
/// The most VM instructions a script runs between two yields (hook granularity 10,000).
pub const INSTRUCTION_BUDGET: u64 = 50_000_000;
const HOOK_EVERY: u32 = 10_000;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The stream handle's Lua side: the calls that wait (body, trailers, httpCall, respond)
/// yield the script's coroutine with what they wait for; the filter resumes it.
const PRELUDE: &str = r#"
local yield = coroutine.yield
return function(ud)
  local h = {}
  function h:headers() return ud:headers() end
  function h:body(always_wrap)
    if not ud:body_ready() then yield("body") end
    return ud:body(always_wrap)
  end
  function h:bodyChunks()
    return function()
      while true do
        local c, done = ud:next_chunk()
        if c ~= nil then return c end
        if done then return nil end
        yield("chunk")
      end
    end
  end
  function h:trailers()
    if not ud:end_seen() then yield("trailers") end
    return ud:trailers()
  end
  function h:respond(headers, body)
    ud:respond(headers, body)
    yield("respond")
  end
  function h:httpCall(cluster, headers, body, timeout, asynchronous)
    if ud:http_call(cluster, headers, body, timeout, asynchronous) then return end
    yield("call")
    return ud:call_result()
  end
  -- Envoy's metadata object: get(key) and pairs(), over the route's metadata.
  function h:metadata()
    local t = ud:metadata()
    return setmetatable({}, {
      __index = {get = function(_, k) return t[k] end},
      __pairs = function() return next, t, nil end,
    })
  end
  function h:streamInfo() return ud:stream_info() end
  function h:connection() return ud:connection() end
  function h:logTrace(m) ud:log(0, m) end
  function h:logDebug(m) ud:log(1, m) end
  function h:logInfo(m) ud:log(2, m) end
  function h:logWarn(m) ud:log(3, m) end
  function h:logErr(m) ud:log(4, m) end
  function h:logCritical(m) ud:log(5, m) end
  return h
end
"#;

/// One script of a filter config.
#[derive(Debug)]
pub struct LuaCode {
    id: u64,
    code: String,
    /// The chunk name in Lua's error messages.
    name: String,
    pub has_on_request: bool,
    pub has_on_response: bool,
}

/// A worker's state of one script.
pub struct WorkerLua {
    pub lua: Lua,
    pub on_request: Option<Function>,
    pub on_response: Option<Function>,
    /// The prelude's handle constructor.
    pub make_handle: Function,
    /// Instructions left to the running resumption.
    budget: Rc<Cell<u64>>,
    /// `httpCall` clients by cluster name, made on first use.
    pub clients: RefCell<Vec<(String, Arc<AsyncClient>)>>,
}

impl std::fmt::Debug for WorkerLua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLua").finish_non_exhaustive()
    }
}

/// A worker's states: by script id, with the script (dropped with its config).
type WorkerStates = Vec<(Weak<LuaCode>, u64, Rc<WorkerLua>)>;

thread_local! {
    static STATES: RefCell<WorkerStates> = const { RefCell::new(Vec::new()) };
}

impl LuaCode {
    /// Compile `code` and run its top level once; the error is Lua's message.
    pub fn new(code: &str, name: &str) -> Result<Arc<LuaCode>, String> {
        let w = WorkerLua::new(code, name)?;
        Ok(Arc::new(LuaCode {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            code: code.to_string(),
            name: name.to_string(),
            has_on_request: w.on_request.is_some(),
            has_on_response: w.on_response.is_some(),
        }))
    }

    /// This worker's state of the script, made on first use.
    pub fn worker(self: &Arc<Self>) -> Result<Rc<WorkerLua>, String> {
        STATES.with(|s| {
            let mut s = s.borrow_mut();
            if let Some((_, _, w)) = s.iter().find(|(_, id, _)| *id == self.id) {
                return Ok(Rc::clone(w));
            }
            s.retain(|(code, _, _)| code.strong_count() > 0);
            let w = Rc::new(WorkerLua::new(&self.code, &self.name)?);
            s.push((Arc::downgrade(self), self.id, Rc::clone(&w)));
            Ok(w)
        })
    }
}

impl WorkerLua {
    fn new(code: &str, name: &str) -> Result<WorkerLua, String> {
        let lua = Lua::new();
        lua.set_memory_limit(MEMORY_LIMIT).map_err(|e| format!("cannot limit the Lua state's memory: {e}"))?;
        let budget = Rc::new(Cell::new(INSTRUCTION_BUDGET));
        let b = Rc::clone(&budget);
        lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |_, _| {
            let left = b.get();
            if left < u64::from(HOOK_EVERY) {
                return Err(mlua::Error::runtime("script exceeded its instruction budget"));
            }
            b.set(left - u64::from(HOOK_EVERY));
            Ok(VmState::Continue)
        })
        .map_err(|e| e.to_string())?;
        // Compiled traces do not check the count hook: the JIT compiler is turned off
        // (LuaJIT's interpreter runs the scripts), and its module removed so that a
        // script cannot turn it back on.
        lua.load("if jit then jit.off(); jit.flush() end; jit = nil; package.loaded.jit = nil")
            .exec()
            .map_err(|e| e.to_string())?;
        let make_handle: Function = lua.load(PRELUDE).set_name("=sluice_prelude").eval().map_err(|e| e.to_string())?;
        budget.set(INSTRUCTION_BUDGET);
        lua.load(code).set_name(format!("={name}")).exec().map_err(|e| e.to_string())?;
        let globals = lua.globals();
        let on_request = globals.get::<Option<Function>>("envoy_on_request").map_err(|e| e.to_string())?;
        let on_response = globals.get::<Option<Function>>("envoy_on_response").map_err(|e| e.to_string())?;
        Ok(WorkerLua { lua, on_request, on_response, make_handle, budget, clients: RefCell::new(Vec::new()) })
    }

    /// A fresh instruction budget for the next resumption.
    pub fn refill(&self) {
        self.budget.set(INSTRUCTION_BUDGET);
    }
}
