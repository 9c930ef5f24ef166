//! What a connection handler may touch while a worker processes one event: the
//! worker's stack, timers, clusters and scratch memory, lent for the duration of a call.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sluice_stack::{Stack, Token};

use crate::access_log::AccessLogBuffer;
use crate::http::date::DateCache;
use crate::rng::Rng;
use crate::stats::ClusterStats;
use crate::timer::{TimerKey, Timers};
use crate::upstream::cluster_manager::ThreadLocalClusterManager;
use crate::upstream::conn_pool::ConnPool;

/// Token sub-id of a connection's downstream socket.
pub const DOWNSTREAM_SUB: usize = 0;
/// Token sub-id of a tcp_proxy session's upstream socket.
pub const TCP_UPSTREAM_SUB: usize = 1;
/// Token sub-id of an upstream pool slot.
pub const POOL_SUB: usize = 2;
/// Timer keys of pool slots carry this bit in their index.
pub const POOL_TIMER_BIT: u32 = 1 << 31;
/// Config generations a worker keeps alive at once (each has its own pool).
pub const MAX_GENERATIONS: usize = 16;
/// Bits of a pool slot index (the rest of a pool timer key names the generation).
const POOL_INDEX_BITS: u32 = 27;

/// The token of pool slot `slot` of generation `gen`: `index << 6 | gen << 2 | POOL_SUB`.
pub fn pool_token(gen: u8, slot: TimerKey) -> Token {
    Token(((slot.index as usize) << 6) | ((gen as usize & (MAX_GENERATIONS - 1)) << 2) | POOL_SUB)
}

/// Decode a pool token into (generation, slot index).
pub fn decode_pool_token(t: Token) -> (u8, usize) {
    (((t.0 >> 2) & (MAX_GENERATIONS - 1)) as u8, t.0 >> 6)
}

/// The timer key of pool slot `slot` of generation `gen`.
pub fn pool_timer_key(gen: u8, slot: TimerKey) -> TimerKey {
    TimerKey { index: POOL_TIMER_BIT | ((gen as u32) << POOL_INDEX_BITS) | slot.index, generation: slot.generation }
}

/// Decode a pool timer key into (generation, slot key); `None` for other keys.
pub fn decode_pool_timer_key(key: TimerKey) -> Option<(u8, TimerKey)> {
    if key.index & POOL_TIMER_BIT == 0 {
        return None;
    }
    let gen = ((key.index & !POOL_TIMER_BIT) >> POOL_INDEX_BITS) as u8;
    let index = key.index & ((1 << POOL_INDEX_BITS) - 1);
    Some((gen, TimerKey { index, generation: key.generation }))
}

/// The token of socket `sub` of connection (or pool slot) `key`.
pub fn token(key: TimerKey, sub: usize) -> Token {
    Token(((key.index as usize) << 2) | sub)
}

/// Borrowed worker state for one handler call.
pub struct Ctx<'a, S: Stack> {
    pub stack: &'a mut S,
    pub timers: &'a mut Timers,
    pub clusters: &'a mut ThreadLocalClusterManager,
    /// This worker's stats block of each cluster, indexed like the clusters.
    pub cluster_stats: &'a [Arc<ClusterStats>],
    /// Per-worker read buffer: data is read here and written straight on.
    pub scratch: &'a mut [u8],
    /// Connections that still have work but used up their budget for this round.
    pub ready: &'a mut Vec<TimerKey>,
    pub rng: &'a mut Rng,
    /// This worker's upstream HTTP connections.
    pub pool: &'a mut ConnPool,
    pub date: &'a mut DateCache,
    /// This worker's access log lines, flushed once per event-loop round.
    pub access_log: &'a mut AccessLogBuffer,
    pub now: Instant,
    /// Wall-clock time of this round (access logs, `date`, formatters).
    pub wall: SystemTime,
    /// The connection being served.
    pub key: TimerKey,
    /// The worker is draining and this round's responses ask their connections to
    /// close (Envoy's `drainClose()`, see `worker::drain`).
    pub draining: bool,
    /// The overload manager's action states.
    pub overload: &'a crate::overload::OverloadState,
    /// The runtime snapshot in force (read lock-free; replaced between rounds).
    pub runtime: &'a crate::runtime::Snapshot,
    /// Admin `/healthcheck/fail` is in force.
    pub health_check_failed: bool,
    /// This generation's background work (detached requests, span buffers).
    pub background: &'a mut crate::worker::background::Background,
}

impl<S: Stack> Ctx<'_, S> {
    /// Make sure the connection is woken at `deadline` (if any). `scheduled` is the
    /// connection's record of its earliest pending timer.
    pub fn arm(&mut self, scheduled: &mut Option<Instant>, deadline: Option<Instant>) {
        let Some(d) = deadline else { return };
        let needed = match *scheduled {
            None => true,
            Some(s) => d < s || s <= self.now,
        };
        if needed {
            self.timers.schedule(self.key, d);
            *scheduled = Some(d);
        }
    }

    /// Ask for another round for this connection without waiting for an event.
    pub fn again(&mut self) {
        self.ready.push(self.key);
    }
}
