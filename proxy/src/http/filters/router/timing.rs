//! The router's view of a stream for verbose tracing (`crate::trace::timing`): after
//! each round the router reports which of Envoy's timing events its request and
//! response have passed. A stream without a verbose, sampled span pays one branch.

use std::time::Instant;

use super::{Phase, RouterState};
use crate::http::conn_manager::stream::Stream;
use crate::trace::timing::Progress;

impl RouterState {
    /// Record the timing events this round made happen, at `now`.
    pub(super) fn observe_timing(&self, stream: &mut Stream, now: Instant) {
        if stream.trace.as_ref().is_none_or(|t| t.timing.is_none()) {
            return;
        }
        let head_received = self.resp_meta.is_some();
        // HTTP/1.1: the head is written into a connection as soon as it is connected
        // (or taken from the pool); HTTP/2: the try's stream was opened with it.
        let head_sent = self.request_sent
            || head_received
            || (self.phase == Phase::Active && self.client.as_ref().is_some_and(|c| c.connected))
            || self.h2.as_ref().is_some_and(|t| t.head_sent());
        let p = Progress {
            attempt: stream.attempt_count,
            request_done: stream.request_done,
            upstream_head_sent: head_sent,
            upstream_request_sent: self.request_sent,
            upstream_head_received: head_received,
            upstream_response_done: head_received && stream.response_done,
            response_started: stream.response_started,
            response_done: stream.response_done,
        };
        if let Some(t) = stream.trace.as_deref_mut() {
            t.observe(&p, now);
        }
    }
}
