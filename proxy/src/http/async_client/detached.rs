//! Async requests that no downstream stream owns (Envoy's `Http::AsyncClient` used by
//! a component of the worker itself: a tracer's span reporter; later a JWKS prefetch
//! or a stats sink).
//!
//! Contract:
//! - One [`DetachedCalls`] per worker and config generation. Its requests run exactly
//!   like a filter's ([`AsyncCalls`]: the worker's balancers, pools, circuit breakers
//!   and `cluster.*` stats, on either stack backend), under a worker-owned key
//!   ([`detached_key`]) instead of a downstream connection's: upstream readiness, timers
//!   and "run again" requests for that key come back to the worker, which calls
//!   [`DetachedCalls::on_upstream_event`] and [`DetachedCalls::drive`].
//! - Each outcome goes to the [`Owner`] that started the request, exactly once, unless
//!   the calls are cancelled ([`DetachedCalls::cancel_all`]: worker stop, generation
//!   eviction).
//! - Nothing here blocks or reads the clock; a request without its own `timeout` can
//!   wait as long as the router lets it, so owners set one.

use std::time::Instant;

use sluice_stack::Stack;

use super::{AsyncCalls, Call, Outcome};
use crate::timer::TimerKey;
use crate::worker_ctx::{Ctx, MAX_GENERATIONS, POOL_TIMER_BIT};

/// The first index below the pool timer bit that is not a detached key (the accept
/// retry timer sits right under the bit).
const DETACHED_TOP: u32 = POOL_TIMER_BIT - 2;

/// The worker-owned key of generation `gen`'s detached requests: an index no
/// connection, pool slot or worker timer uses.
pub fn detached_key(gen: u8) -> TimerKey {
    TimerKey { index: DETACHED_TOP - (gen as u32 % MAX_GENERATIONS as u32), generation: 0 }
}

/// The generation whose detached key `key` is, if it is one.
pub fn decode_detached_key(key: TimerKey) -> Option<u8> {
    let low = DETACHED_TOP - (MAX_GENERATIONS as u32 - 1);
    (key.generation == 0 && (low..=DETACHED_TOP).contains(&key.index)).then(|| (DETACHED_TOP - key.index) as u8)
}

/// Who started a detached request and gets its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A tracer's span reporter on this worker, by the reporter's id.
    SpanReporter(u64),
    /// Nobody: a fire-and-forget request a stream's filter sent (Lua's asynchronous
    /// `httpCall`); its outcome is dropped.
    Nobody,
}

/// An outcome for `owner`, with the tag it chose.
#[derive(Debug)]
pub struct DetachedDone {
    pub owner: Owner,
    pub tag: u32,
    pub outcome: Outcome,
}

/// One worker generation's detached requests.
#[derive(Debug)]
pub struct DetachedCalls {
    key: TimerKey,
    calls: AsyncCalls,
    /// Owners by the index the calls carry (few: one per reporter of the config).
    owners: Vec<Owner>,
}

impl DetachedCalls {
    pub fn new(gen: u8) -> DetachedCalls {
        DetachedCalls { key: detached_key(gen), calls: AsyncCalls::default(), owners: Vec::new() }
    }

    /// The key the worker routes this generation's detached events by.
    pub fn key(&self) -> TimerKey {
        self.key
    }

    /// Nothing in flight and nothing to deliver.
    pub fn is_idle(&self) -> bool {
        self.calls.is_idle()
    }

    /// Start `call` for `owner` on `ctx`'s generation (the worker asks for a round).
    pub fn start<S: Stack>(&mut self, owner: Owner, call: Call, ctx: &mut Ctx<'_, S>) {
        let index = match self.owners.iter().position(|o| *o == owner) {
            Some(i) => i,
            None => {
                self.owners.push(owner);
                self.owners.len() - 1
            }
        };
        let key = std::mem::replace(&mut ctx.key, self.key);
        self.calls.start(index, call, ctx);
        ctx.key = key;
    }

    /// Readiness on an upstream connection a detached request holds.
    pub fn on_upstream_event(&mut self, slot: TimerKey, peer_closed: bool) {
        self.calls.on_upstream_event(slot, peer_closed);
    }

    /// Advance every request; the outcomes that are ready. Asks the worker for another
    /// round while something moved.
    pub fn drive<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Vec<DetachedDone> {
        if self.calls.is_idle() {
            return Vec::new();
        }
        let key = std::mem::replace(&mut ctx.key, self.key);
        let (done, progress) = self.calls.drive(ctx);
        if progress && !self.calls.is_idle() && !ctx.ready.contains(&self.key) {
            ctx.again();
        }
        ctx.key = key;
        let owners = &self.owners;
        done.into_iter()
            .filter_map(|c| owners.get(c.filter).map(|&owner| DetachedDone { owner, tag: c.tag, outcome: c.outcome }))
            .collect()
    }

    /// The earliest time a request must be looked at without an event.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.calls.next_deadline()
    }

    /// Reset every request; deliver nothing.
    pub fn cancel_all<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let key = std::mem::replace(&mut ctx.key, self.key);
        self.calls.cancel_all(ctx);
        ctx.key = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_keys_are_distinct_per_generation_and_decode() {
        for g in 0..MAX_GENERATIONS as u8 {
            let k = detached_key(g);
            assert_eq!(decode_detached_key(k), Some(g));
            assert!(k.index < POOL_TIMER_BIT - 1, "below the accept retry timer");
        }
        assert_eq!(decode_detached_key(TimerKey { index: 3, generation: 0 }), None);
        assert_eq!(decode_detached_key(TimerKey { index: POOL_TIMER_BIT - 1, generation: 0 }), None);
    }
}
