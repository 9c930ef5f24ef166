//! Timers of an HTTP/2 connection: each stream's `request_timeout`,
//! `stream_idle_timeout` (or the route's `idle_timeout`) and `max_stream_duration`, as
//! on HTTP/1 (a `408` local reply before the response started, RST_STREAM after), and
//! the connection's `idle_timeout` (no stream open: GOAWAY, then close) and
//! `max_connection_duration` (the drain sequence). A response the client has not taken
//! yet keeps its stream's timers: a reader that never opens its window is reset.

use std::time::Instant;

use h2::Reason;
use sluice_config::overload::TimerType;
use sluice_stack::Stack;

use crate::http::local_reply;
use crate::http::response_flags::ResponseFlags;
use crate::worker_ctx::Ctx;

use super::super::stream::{FilterPhase, Stream};
use super::super::HttpConnection;
use super::{H2Stream, State};

impl HttpConnection {
    /// HTTP/2 timers: each stream's request, idle and duration timeouts, and the
    /// connection's idle timeout (a GOAWAY when no stream is open).
    pub(in crate::http::conn_manager) fn h2_timeouts<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let Some(mut h2) = self.h2.take() else {
            return;
        };
        let now = ctx.now;
        // Only the streams whose armed deadline is due; each is visited in the next
        // turn (its filters' and router's own deadlines, then the next one armed).
        while let Some(i) = h2.streams.pop_due(now) {
            h2.streams.mark(i);
            let Some(st) = h2.streams.get_mut(i) else {
                continue;
            };
            // A response not yet taken by the client still has its timers (a reader
            // that never opens its window is reset by stream_idle_timeout).
            if (st.s.response_done && st.io.finished) || st.io.reset {
                continue;
            }
            let Some((status, body, flags)) = self.h2_due_timeout(ctx, &st.s) else {
                continue;
            };
            let mut scx = self.h2_cx(&mut st.s, &mut st.io);
            if let Some(mut r) = scx.stream.router.take() {
                r.cancel(ctx);
            }
            scx.stream.flags.set(flags);
            if scx.stream.response_started {
                self.stats.http2_tx_reset.inc();
                scx.io.send_reset(Reason::INTERNAL_ERROR);
            } else {
                scx.send_local_reply(ctx, status, body.as_bytes(), &[]);
            }
        }
        if h2.streams.is_empty() && !h2.goaway {
            if let Some(t) =
                self.cfg.idle_timeout.map(|t| ctx.overload.scaled_timeout(TimerType::HttpDownstreamConnectionIdle, t))
            {
                if now >= h2.idle_since + t {
                    self.stats.downstream_cx_idle_timeout.inc();
                    if h2.start_goaway(now) {
                        self.stats.http2_goaway_sent.inc();
                    } else {
                        // No HTTP/2 session to say GOAWAY on (the handshake never
                        // finished, or h2 is done): close.
                        h2.state = State::Closed;
                        h2.close_now = true;
                    }
                }
            }
        }
        // Envoy's drain timer (`startDrainSequence` → `onDrainTimeout`): `drain_timeout`
        // after the first GOAWAY the final one goes out, whether or not the client
        // answered the PING; then the connection closes once its streams are done. A
        // client that never acknowledges would otherwise hold it open for ever.
        if let Some(at) = h2.goaway_started {
            if now >= at + self.cfg.drain_timeout && h2.streams.is_empty() {
                if let State::Open(conn) = &mut h2.state {
                    conn.abrupt_shutdown(Reason::NO_ERROR);
                } else {
                    h2.close_now = true;
                }
                h2.goaway_started = None;
            }
        }
        if let Some(t) = self.cfg.max_connection_duration {
            if now >= self.created + t && !self.draining {
                self.stats.downstream_cx_max_duration_reached.inc();
                self.draining = true;
            }
        }
        self.h2 = Some(h2);
    }

    /// A stream timeout that is due: the reply's status, body and response flag (each
    /// counted as Envoy counts it).
    fn h2_due_timeout<S: Stack>(&self, ctx: &mut Ctx<'_, S>, s: &Stream) -> Option<(u16, &'static str, ResponseFlags)> {
        let now = ctx.now;
        if let Some(t) = self.cfg.request_timeout {
            if !s.request_done && now >= s.start + t {
                self.stats.downstream_rq_timeout.inc();
                return Some((408, local_reply::REQUEST_TIMEOUT, ResponseFlags::NONE));
            }
        }
        let idle = match s.router.as_ref().and_then(|r| r.idle_timeout_override()) {
            Some(o) => o,
            None => self.cfg.stream_idle_timeout,
        };
        if let Some(t) = idle.map(|t| ctx.overload.scaled_timeout(TimerType::HttpDownstreamStreamIdle, t)) {
            if now >= s.last_activity + t {
                self.stats.downstream_rq_idle_timeout.inc();
                return Some((408, local_reply::STREAM_IDLE_TIMEOUT, ResponseFlags::STREAM_IDLE_TIMEOUT));
            }
        }
        let duration = match s.router.as_ref().and_then(|r| r.max_stream_duration_override()) {
            Some(o) => o,
            None => self.cfg.max_stream_duration,
        };
        if let Some(t) = duration {
            if now >= s.start + t {
                self.stats.downstream_rq_max_duration_reached.inc();
                return Some((408, local_reply::REQUEST_TIMEOUT, ResponseFlags::DURATION_TIMEOUT));
            }
        }
        None
    }

    /// The earliest deadline of one stream: its filters' wake-up, request, idle and
    /// duration timeouts, its router's and its async calls' deadlines.
    pub(super) fn h2_stream_deadline<S: Stack>(&self, ctx: &Ctx<'_, S>, st: &H2Stream) -> Option<Instant> {
        let s = &st.s;
        let mut next: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        if s.phase == FilterPhase::Decoding {
            consider(s.filters.wake_at());
        }
        if (s.response_done && st.io.finished) || st.io.reset {
            return next;
        }
        if !s.request_done {
            consider(self.cfg.request_timeout.map(|t| s.start + t));
        }
        let idle = match s.router.as_ref().and_then(|r| r.idle_timeout_override()) {
            Some(o) => o,
            None => self.cfg.stream_idle_timeout,
        };
        consider(idle.map(|t| s.last_activity + ctx.overload.scaled_timeout(TimerType::HttpDownstreamStreamIdle, t)));
        let duration = match s.router.as_ref().and_then(|r| r.max_stream_duration_override()) {
            Some(o) => o,
            None => self.cfg.max_stream_duration,
        };
        consider(duration.map(|t| s.start + t));
        if let Some(r) = &s.router {
            consider(r.next_deadline());
        }
        consider(s.async_calls.next_deadline());
        next
    }

    /// The earliest deadline of the HTTP/2 connection and its streams (the top of the
    /// streams' deadline heap: perhaps one that moved later, which then finds nothing
    /// to do).
    pub(in crate::http::conn_manager) fn h2_next_deadline<S: Stack>(&self, ctx: &Ctx<'_, S>) -> Option<Instant> {
        let h2 = self.h2.as_ref()?;
        let mut next: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        consider(h2.streams.next_deadline());
        if let Some(at) = h2.closed_at {
            consider(Some(at + self.cfg.delayed_close_timeout.unwrap_or(super::CLOSE_GRACE)));
        }
        if let Some(at) = h2.goaway_started {
            consider(Some(at + self.cfg.drain_timeout));
        }
        if h2.streams.is_empty() && !h2.goaway {
            consider(
                self.cfg
                    .idle_timeout
                    .map(|t| h2.idle_since + ctx.overload.scaled_timeout(TimerType::HttpDownstreamConnectionIdle, t)),
            );
        }
        next
    }
}
