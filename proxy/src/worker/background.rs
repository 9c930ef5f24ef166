//! Work a worker does for itself rather than for a downstream connection, per config
//! generation: its detached async requests ([`DetachedCalls`]) and the tracers' span
//! buffers ([`SpanBuffers`]) whose reports those requests carry.
//!
//! Connections reach it through [`Ctx::background`] (a finished span is buffered
//! there and, when a flush is due, the generation's detached key is put on the ready
//! list or its timer armed); the worker runs [`Background::run`] when that key is
//! ready, its timer fires, or an upstream connection it holds has an event. A round
//! delivers finished reports, starts the due ones and re-arms the timer. It never
//! blocks: a slow collector holds one request per reporter and fills a bounded buffer.

use std::time::Instant;

use sluice_stack::Stack;

use super::Worker;
use crate::http::async_client::detached::{DetachedCalls, Owner};
use crate::timer::{earliest, TimerKey};
use crate::trace::span_buffer::{SpanBuffers, Wake};
use crate::worker_ctx::Ctx;

/// One generation's background work.
#[derive(Debug)]
pub struct Background {
    pub calls: DetachedCalls,
    pub spans: SpanBuffers,
    /// The earliest timer armed for the detached key and not yet fired.
    timer_at: Option<Instant>,
}

impl Background {
    pub fn new(gen: u8) -> Background {
        Background { calls: DetachedCalls::new(gen), spans: SpanBuffers::default(), timer_at: None }
    }

    /// Nothing in flight, nothing buffered.
    pub fn is_idle(&self) -> bool {
        self.calls.is_idle() && self.spans.is_idle()
    }

    /// Act on what [`SpanBuffers::push`] asked for, from a connection's round.
    pub fn wake<S: Stack>(ctx: &mut Ctx<'_, S>, wake: Wake) {
        let key = ctx.background.calls.key();
        match wake {
            Wake::None => {}
            Wake::Now => {
                if !ctx.ready.contains(&key) {
                    ctx.ready.push(key);
                }
            }
            Wake::At(at) => Background::arm(&mut ctx.background.timer_at, ctx.timers, key, at, ctx.now),
        }
    }

    fn arm(
        timer_at: &mut Option<Instant>,
        timers: &mut crate::timer::Timers,
        key: TimerKey,
        at: Instant,
        now: Instant,
    ) {
        if timer_at.is_none_or(|t| t <= now || at < t) {
            timers.schedule(key, at);
            *timer_at = Some(at);
        }
    }

    /// One round: an upstream `event` (slot, peer closed) first, then deliver outcomes,
    /// start due reports, and arm the timer for what is left.
    pub fn run<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, event: Option<(TimerKey, bool)>) {
        if let Some((slot, peer_closed)) = event {
            self.calls.on_upstream_event(slot, peer_closed);
        }
        for done in self.calls.drive(ctx) {
            match done.owner {
                Owner::SpanReporter(id) => self.spans.on_complete(id, done.outcome),
            }
        }
        for (id, call) in self.spans.take_due(ctx.now) {
            self.calls.start(Owner::SpanReporter(id), call, ctx);
        }
        if let Some(at) = earliest([self.calls.next_deadline(), self.spans.next_deadline()]) {
            Background::arm(&mut self.timer_at, ctx.timers, self.calls.key(), at, ctx.now);
        }
    }

    /// The worker stops or the generation is evicted: reset the requests.
    pub fn cancel<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        self.calls.cancel_all(ctx);
        self.spans.cancelled();
    }
}

impl<S: Stack> Worker<S> {
    /// Run generation `gen`'s background round (see [`Background::run`]).
    pub(super) fn run_background(&mut self, gen: u8, now: Instant, event: Option<(TimerKey, bool)>) {
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        let mut bg = std::mem::replace(&mut g.background, Background::new(gen));
        let key = bg.calls.key();
        self.with_ctx(gen, key, now, |ctx| bg.run(ctx, event));
        self.put_background(gen, bg);
    }

    /// Cancel generation `gen`'s background requests.
    pub(super) fn cancel_background(&mut self, gen: u8, now: Instant) {
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        let mut bg = std::mem::replace(&mut g.background, Background::new(gen));
        let key = bg.calls.key();
        self.with_ctx(gen, key, now, |ctx| bg.cancel(ctx));
        self.put_background(gen, bg);
    }

    fn put_background(&mut self, gen: u8, bg: Background) {
        if let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) {
            // A round buffers no spans of its own: the stand-in stayed empty.
            g.background = bg;
        }
    }
}
