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
//!
//! Stopping flushes: a drained worker, and one told to stop now (second signal,
//! `/quitquitquit`, drain time over: its connections reset first), sends every waiting
//! span before it exits (for at most [`EXIT_FLUSH_TIME`]), and an old generation whose last connection closed sends
//! its waiting spans at once instead of at its flush timer.

use std::time::{Duration, Instant};

use sluice_stack::Stack;

use super::Worker;
use crate::http::async_client::detached::{DetachedCalls, Owner};
use crate::timer::{earliest, TimerKey};
use crate::trace::span_buffer::{SpanBuffers, Wake};
use crate::worker_ctx::Ctx;

/// The longest a drained worker waits for its last tracing reports before exiting.
pub const EXIT_FLUSH_TIME: Duration = Duration::from_secs(2);

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

    /// Start a request nobody waits for, from a connection's round (a filter's
    /// fire-and-forget request): it runs as this generation's own and outlives the
    /// stream; a round is asked for so it is driven.
    pub fn fire<S: Stack>(ctx: &mut Ctx<'_, S>, call: crate::http::async_client::Call) {
        let gen = crate::http::async_client::detached::decode_detached_key(ctx.background.calls.key()).unwrap_or(0);
        let mut calls = std::mem::replace(&mut ctx.background.calls, DetachedCalls::new(gen));
        calls.start(Owner::Nobody, call, ctx);
        ctx.background.calls = calls;
        Background::wake(ctx, Wake::Now);
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
    /// start due reports (every waiting span when `flush`: the worker or the
    /// generation stops), and arm the timer for what is left.
    pub fn run<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, event: Option<(TimerKey, bool)>, flush: bool) {
        if let Some((slot, peer_closed)) = event {
            self.calls.on_upstream_event(slot, peer_closed);
        }
        for done in self.calls.drive(ctx) {
            match done.owner {
                Owner::SpanReporter(id) => self.spans.on_complete(id, done.outcome),
                Owner::Nobody => {}
            }
        }
        let due = if flush { self.spans.take_remaining() } else { self.spans.take_due(ctx.now) };
        for (id, call) in due {
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
        self.background_round(gen, now, event, false);
    }

    fn background_round(&mut self, gen: u8, now: Instant, event: Option<(TimerKey, bool)>, flush: bool) {
        let Some(g) = self.generations.get_mut(gen as usize).and_then(Option::as_mut) else { return };
        let mut bg = std::mem::replace(&mut g.background, Background::new(gen));
        let key = bg.calls.key();
        self.with_ctx(gen, key, now, |ctx| bg.run(ctx, event, flush));
        self.put_background(gen, bg);
    }

    /// An old generation without connections: its waiting spans go out now rather
    /// than at their flush timer, so that it can retire.
    pub(super) fn flush_old_generation(&mut self, gen: u8, now: Instant) {
        if self.generations[gen as usize].as_ref().is_some_and(|g| g.conns == 0 && g.background.spans.has_waiting()) {
            self.background_round(gen, now, None, true);
        }
    }

    /// A drained worker is about to exit: send every waiting span (Envoy flushes its
    /// tracers at shutdown), for at most [`EXIT_FLUSH_TIME`]. True once nothing waits
    /// or is in flight, or the time is up (what is left is cancelled, counted in
    /// `reports_failed`).
    pub(super) fn flush_before_exit(&mut self, now: Instant) -> bool {
        let deadline = *self.exit_flush_deadline.get_or_insert(now + EXIT_FLUSH_TIME);
        let mut idle = true;
        for gen in 0..self.generations.len() as u8 {
            if self.generations[gen as usize].as_ref().is_none_or(|g| g.background.is_idle()) {
                continue;
            }
            if now >= deadline {
                tracing::warn!(worker = self.id, "exiting with tracing reports unfinished");
                self.cancel_background(gen, now);
                continue;
            }
            self.background_round(gen, now, None, true);
            idle &= self.generations[gen as usize].as_ref().is_none_or(|g| g.background.is_idle());
        }
        idle || now >= deadline
    }

    /// Stop now (a second signal, `/quitquitquit`, the drain time over): close the
    /// listeners and reset every connection once, then flush the waiting spans as a
    /// drained worker does ([`Worker::flush_before_exit`], at most [`EXIT_FLUSH_TIME`])
    /// before the pools and what is left in flight go. `None` while the reports are
    /// still out; then the linger deadline.
    pub(super) fn stop(&mut self, clock: &dyn Fn() -> Instant) -> Option<Instant> {
        if !self.stopping {
            self.stopping = true;
            self.close_listeners();
            self.abort_connections(clock());
            self.end_batch();
        }
        if !self.flush_before_exit(clock()) {
            return None;
        }
        self.abort_all(clock());
        Some(clock() + super::ABORT_LINGER)
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
