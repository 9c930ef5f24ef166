//! Timeouts of a request whose head is still arriving, and the client's close.
//!
//! Envoy's HTTP/1 codec creates the stream at the first byte of a request
//! (`onMessageBegin` → `newStream`), so from that byte on the stream's timers run and
//! the connection's `idle_timeout` does not: `request_headers_timeout`,
//! `request_timeout`, `max_stream_duration` and `stream_idle_timeout` all count from
//! the first byte. Bytes of an incomplete head are not stream events, so they do not
//! reset the stream idle timer: a client trickling a head one byte a second is answered
//! `408` once `stream_idle_timeout` (default 5 min) has passed since its first byte,
//! and the connection closes (Envoy's slowloris protection).
//!
//! A downstream FIN or reset is Envoy's `RemoteClose` (the HTTP connection manager does
//! not enable half-close): a stream still in progress is reset at once, its upstream
//! request with it, and the connection closes (`downstream_cx_destroy_remote_active_rq`,
//! response flag `DC`), whether or not the request was complete.

use std::time::Instant;

use sluice_stack::Stack;

use crate::http::local_reply;
use crate::http::response_flags::ResponseFlags;
use crate::tcp_proxy::Status;
use crate::worker_ctx::Ctx;

use super::HttpConnection;

/// Which timer ended an incomplete request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadTimeout {
    Headers,
    Request,
    Idle,
    MaxDuration,
}

impl HttpConnection {
    /// The first deadline of a request head still arriving, if one is.
    pub(super) fn head_deadline(&self) -> Option<Instant> {
        self.due_head_timeout(None).map(|(at, _)| at)
    }

    /// The earliest head timer, or with `now` the earliest one that is due.
    fn due_head_timeout(&self, now: Option<Instant>) -> Option<(Instant, HeadTimeout)> {
        if self.stream.active || self.closing.is_some() {
            return None;
        }
        let started = self.head_started?;
        let cfg = &self.cfg;
        [
            (cfg.request_headers_timeout, HeadTimeout::Headers),
            (cfg.request_timeout, HeadTimeout::Request),
            (cfg.stream_idle_timeout, HeadTimeout::Idle),
            (cfg.max_stream_duration, HeadTimeout::MaxDuration),
        ]
        .into_iter()
        .filter_map(|(t, which)| t.map(|t| (started + t, which)))
        .filter(|(at, _)| now.is_none_or(|n| n >= *at))
        .min_by_key(|(at, _)| *at)
    }

    /// A timer of the incomplete head fired: Envoy's `408` local reply, then close.
    pub(super) fn head_timeouts<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Option<Status> {
        let (_, which) = self.due_head_timeout(Some(ctx.now))?;
        let (body, flags) = match which {
            HeadTimeout::Headers => {
                self.stats.downstream_rq_header_timeout.inc();
                (local_reply::REQUEST_HEADER_TIMEOUT, ResponseFlags::NONE)
            }
            HeadTimeout::Request => {
                self.stats.downstream_rq_timeout.inc();
                (local_reply::REQUEST_TIMEOUT, ResponseFlags::NONE)
            }
            HeadTimeout::Idle => {
                self.stats.downstream_rq_idle_timeout.inc();
                (local_reply::STREAM_IDLE_TIMEOUT, ResponseFlags::STREAM_IDLE_TIMEOUT)
            }
            HeadTimeout::MaxDuration => {
                self.stats.downstream_rq_max_duration_reached.inc();
                (local_reply::REQUEST_TIMEOUT, ResponseFlags::DURATION_TIMEOUT)
            }
        };
        tracing::debug!(peer = %self.down.peer, ?which, "request head timed out");
        // The stream Envoy created at the first byte.
        self.stats.downstream_rq_total.inc();
        self.stats.downstream_rq_http1_total.inc();
        self.reply_without_stream(ctx, 408, body, flags);
        Some(self.process(ctx))
    }

    /// The client closed (FIN or reset) while a stream is in progress: Envoy's
    /// `RemoteClose` resets the stream and its upstream request and closes at once.
    pub(super) fn peer_closed_mid_stream(&self) -> bool {
        (self.down.read_eof || self.down.peer_closed) && self.stream.active && !self.stream.response_done
    }
}
