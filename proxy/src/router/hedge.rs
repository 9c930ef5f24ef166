//! Hedging on per-try timeout (Envoy's `hedge_policy.hedge_on_per_try_timeout` and
//! the `x-envoy-hedge-on-per-try-timeout` request header; router.cc
//! `onSoftPerTryTimeout`).
//!
//! When a try's per-try timeout fires and hedging is on, the try is not cancelled: the
//! timeout is reported to outlier detection, and if the retry policy allows a retry,
//! the try becomes a [`HedgedTry`] that keeps running beside the next one. Whichever
//! answers first with a response head the router keeps; the other is reset. A hedged
//! try that fails is reset and forgotten; one whose sibling fails without a retry left
//! becomes the router's try again (its response is awaited). Every per-try timeout
//! of a hedging request is soft; at most one try is hedged at a time (Envoy may start
//! a third try when the second times out too and retries are left; sluice waits for
//! the two). Nothing here allocates per event.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use sluice_stack::Stack;

use crate::http::codec::{ResponseMeta, Status as ParseStatus};
use crate::http::codec_client::{CodecClient, ReadOutcome};
use crate::http::ResponseHead;
use crate::timer::TimerKey;
use crate::upstream::conn_pool::close_client;
use crate::upstream::host::Host;
use crate::worker_ctx::Ctx;

/// Whether a request hedges: the route's (else the virtual host's) policy, unless the
/// request's `x-envoy-hedge-on-per-try-timeout` says `true` or `false` (the header is
/// consumed either way).
pub fn hedge_on_per_try_timeout(policy: bool, head: &mut crate::http::RequestHead) -> bool {
    let header = head.headers.get_str(b"x-envoy-hedge-on-per-try-timeout").map(str::trim).map(str::to_owned);
    head.headers.remove(b"x-envoy-hedge-on-per-try-timeout");
    match header.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => policy,
    }
}

/// A try whose per-try timeout fired and that keeps running beside the next one.
#[derive(Debug)]
pub struct HedgedTry {
    pub slot: TimerKey,
    pub client: CodecClient,
    pub host: Arc<Host>,
    pub started: Instant,
}

/// What a hedged try did on a [`HedgedTry::poll`].
#[derive(Debug)]
pub enum HedgeEvent {
    Nothing,
    /// Its final response head arrived (parsed into the head given to `poll`).
    Head(ResponseMeta),
    /// The connection failed or the response could not be parsed.
    Failed,
}

impl HedgedTry {
    /// Flush what the request still owes, read, and parse the response head into
    /// `head` (interim 1xx responses are skipped).
    pub fn poll<S: Stack>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        in_limit: usize,
        is_head: bool,
        head: &mut ResponseHead,
    ) -> HedgeEvent {
        let client = &mut self.client;
        client.flush(ctx.stack);
        let mut failed = client.dead;
        while client.readable && !failed {
            match client.read(ctx.stack, in_limit, ctx.scratch) {
                ReadOutcome::Data => {}
                ReadOutcome::WouldBlock | ReadOutcome::Full => break,
                ReadOutcome::Eof | ReadOutcome::Error => failed = true,
            }
        }
        loop {
            if client.pending_input().is_empty() {
                break;
            }
            let input = &client.input[client.input_pos..];
            match client.parser.parse(input, is_head, head) {
                Ok(ParseStatus::Partial) => break,
                Err(_) => return HedgeEvent::Failed,
                Ok(ParseStatus::Complete(meta)) => {
                    client.consume_input(meta.head_len);
                    if meta.interim.is_some() {
                        head.clear();
                        continue;
                    }
                    return HedgeEvent::Head(meta);
                }
            }
        }
        if failed || client.read_eof {
            HedgeEvent::Failed
        } else {
            HedgeEvent::Nothing
        }
    }

    /// Reset the hedged try: close its connection and release what it held.
    pub fn reset<S: Stack>(mut self, ctx: &mut Ctx<'_, S>) {
        self.host.rq_active.fetch_sub(1, Ordering::Relaxed);
        if let Some(stats) = ctx.cluster_stats.get(self.client.cluster) {
            stats.upstream_cx_destroy_local.inc();
        }
        close_client(ctx, &mut self.client);
        ctx.pool.remove(self.slot);
    }
}
