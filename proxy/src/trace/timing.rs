//! Verbose span logs (`HttpConnectionManager.Tracing.verbose`, Envoy's
//! `annotateVerbose` in `source/common/tracing/tracer_impl.cc`): a sampled stream of a
//! verbose tracer remembers when each of Envoy's seven timing events happened, and its
//! span carries one log per event that happened, in Envoy's order, named as Envoy's
//! `Tracing::Logs`. The OpenTelemetry tracer exports them as span events, Zipkin as
//! annotations.
//!
//! Times are the worker loop's `now`, taken where the stream's state is observed
//! ([`StreamTiming::observe`]: the router after each round, the connection manager at
//! the span's start and the stream's end); nothing here reads a clock. A stream's
//! upstream events are those of its last try, as Envoy's downstream span reports the
//! upstream info of the last upstream request.

use std::time::{Duration, Instant, SystemTime};

/// Envoy's timing events, in `annotateVerbose`'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LastDownstreamRxByteReceived,
    FirstUpstreamTxByteSent,
    LastUpstreamTxByteSent,
    FirstUpstreamRxByteReceived,
    LastUpstreamRxByteReceived,
    FirstDownstreamTxByteSent,
    LastDownstreamTxByteSent,
}

impl Event {
    const ALL: [Event; 7] = [
        Event::LastDownstreamRxByteReceived,
        Event::FirstUpstreamTxByteSent,
        Event::LastUpstreamTxByteSent,
        Event::FirstUpstreamRxByteReceived,
        Event::LastUpstreamRxByteReceived,
        Event::FirstDownstreamTxByteSent,
        Event::LastDownstreamTxByteSent,
    ];

    /// The log's name (Envoy's `TracingLogValues`).
    pub fn name(self) -> &'static str {
        match self {
            Event::LastDownstreamRxByteReceived => "last_downstream_rx_byte_received",
            Event::FirstUpstreamTxByteSent => "first_upstream_tx_byte_sent",
            Event::LastUpstreamTxByteSent => "last_upstream_tx_byte_sent",
            Event::FirstUpstreamRxByteReceived => "first_upstream_rx_byte_received",
            Event::LastUpstreamRxByteReceived => "last_upstream_rx_byte_received",
            Event::FirstDownstreamTxByteSent => "first_downstream_tx_byte_sent",
            Event::LastDownstreamTxByteSent => "last_downstream_tx_byte_sent",
        }
    }

    fn upstream(self) -> bool {
        matches!(
            self,
            Event::FirstUpstreamTxByteSent
                | Event::LastUpstreamTxByteSent
                | Event::FirstUpstreamRxByteReceived
                | Event::LastUpstreamRxByteReceived
        )
    }
}

/// One log of a finished span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanLog {
    /// Nanoseconds since the Unix epoch.
    pub unix_nanos: u64,
    pub event: &'static str,
}

/// What a stream has done so far, as the code that drives it sees it (a flag left
/// false records nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// The upstream try (1 for the first, 0 before any): a new try forgets the
    /// previous one's upstream events.
    pub attempt: u32,
    pub request_done: bool,
    pub upstream_head_sent: bool,
    pub upstream_request_sent: bool,
    pub upstream_head_received: bool,
    pub upstream_response_done: bool,
    pub response_started: bool,
    pub response_done: bool,
}

/// When each event happened, for one stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamTiming {
    at: [Option<Instant>; 7],
    attempt: u32,
}

impl StreamTiming {
    /// Record, at `now`, each event `p` shows that has no time yet.
    pub fn observe(&mut self, p: &Progress, now: Instant) {
        if p.attempt > self.attempt {
            self.attempt = p.attempt;
            for (e, t) in Event::ALL.iter().zip(self.at.iter_mut()) {
                if e.upstream() {
                    *t = None;
                }
            }
        }
        let flags = [
            p.request_done,
            p.upstream_head_sent,
            p.upstream_request_sent,
            p.upstream_head_received,
            p.upstream_response_done,
            p.response_started,
            p.response_done,
        ];
        for (t, happened) in self.at.iter_mut().zip(flags) {
            if happened && t.is_none() {
                *t = Some(now);
            }
        }
    }

    /// When `event` happened.
    pub fn at(&self, event: Event) -> Option<Instant> {
        self.at[event as usize]
    }

    /// The span's logs: each event's time as the stream's start time (`start_time`,
    /// taken at `start`) plus its offset from the start.
    pub fn logs(&self, start: Instant, start_time: SystemTime) -> Vec<SpanLog> {
        let base = start_time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Event::ALL
            .iter()
            .zip(self.at.iter())
            .filter_map(|(e, t)| {
                let t = (*t)?;
                let nanos = (base + t.saturating_duration_since(start)).as_nanos();
                Some(SpanLog { unix_nanos: u64::try_from(nanos).unwrap_or(u64::MAX), event: e.name() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_envoys_order_and_a_retry_forgets_the_first_try() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = StreamTiming::default();
        t.observe(&Progress { request_done: true, ..Default::default() }, ms(1));
        let first = Progress { attempt: 1, request_done: true, upstream_head_sent: true, ..Default::default() };
        t.observe(&first, ms(2));
        assert_eq!(t.at(Event::FirstUpstreamTxByteSent), Some(ms(2)));
        let retry = Progress { attempt: 2, upstream_head_sent: true, upstream_request_sent: true, ..first };
        t.observe(&retry, ms(5));
        let done = Progress {
            upstream_head_received: true,
            upstream_response_done: true,
            response_started: true,
            response_done: true,
            ..retry
        };
        t.observe(&done, ms(7));
        // Already recorded: not moved.
        t.observe(&done, ms(9));
        let logs = t.logs(t0, wall);
        let names: Vec<_> = logs.iter().map(|l| l.event).collect();
        assert_eq!(
            names,
            [
                "last_downstream_rx_byte_received",
                "first_upstream_tx_byte_sent",
                "last_upstream_tx_byte_sent",
                "first_upstream_rx_byte_received",
                "last_upstream_rx_byte_received",
                "first_downstream_tx_byte_sent",
                "last_downstream_tx_byte_sent",
            ]
        );
        let ms_after = |l: &SpanLog| (l.unix_nanos - 100_000_000_000) / 1_000_000;
        let at: Vec<u64> = logs.iter().map(ms_after).collect();
        assert_eq!(at, [1, 5, 5, 7, 7, 7, 7]);
        // A stream that never went upstream logs only its downstream events.
        let mut local = StreamTiming::default();
        local.observe(
            &Progress { request_done: true, response_started: true, response_done: true, ..Default::default() },
            ms(3),
        );
        assert_eq!(local.logs(t0, wall).len(), 3);
    }
}
