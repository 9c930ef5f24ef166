//! The fault filter (`envoy.extensions.filters.http.fault.v3.HTTPFault`): delay and/or
//! abort a share of requests, as Envoy's fault_filter.cc does.
//!
//! A request is eligible when its route's cluster is `upstream_cluster` (if set), its
//! `x-envoy-downstream-service-node` is one of `downstream_nodes` (if set) and every
//! `headers` matcher matches. Then, bounded by `max_active_faults` across all workers:
//! a delay (fixed, or the milliseconds of `x-envoy-fault-delay-request` with
//! `header_delay`) hits with its percentage (a header
//! `x-envoy-fault-delay-request-percentage` may lower it), and after the delay an abort
//! (fixed status, or `x-envoy-fault-abort-request` with `header_abort`) hits with its
//! percentage. [`FaultConfig::decide`] is pure; [`FaultFilter`] runs it on the filter
//! contract: a delay stops the chain until its timer, an abort is a local reply.
//! Several fault filters in one chain decide independently.
//!
//! The runtime overrides the configuration as in Envoy (keys from
//! [`sluice_config::fault::FaultRuntimeKeys`]): the delay and abort percentages
//! (`featureEnabled(key, configured percentage)`: an integer percent or a fractional
//! percent), the fixed delay's milliseconds, the abort's HTTP or gRPC status and
//! `max_active_faults`; with an `x-envoy-downstream-service-cluster` header, the
//! `fault.http.<cluster>.*` keys as well (a percentage hits when either key hits; a
//! duration or status from the cluster's key wins).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_config::core::FractionalPercent;
use sluice_config::fault::{FaultAbortKind, FaultDelayKind, HttpFault};
use sluice_config::matcher::HeaderMatcher;

use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::CounterSet;
use crate::http::local_reply;
use crate::http::response_flags::ResponseFlags;
use crate::http::RequestHead;
use crate::router::route_match::request_header_value;
use crate::runtime::Snapshot;
use crate::stats::SharedCounter;
use crate::upstream::cluster_manager::ClusterManager;
use std::sync::Arc;

const DELAY_HEADER: &[u8] = b"x-envoy-fault-delay-request";
const DELAY_PERCENT_HEADER: &[u8] = b"x-envoy-fault-delay-request-percentage";
const ABORT_HEADER: &[u8] = b"x-envoy-fault-abort-request";
const ABORT_PERCENT_HEADER: &[u8] = b"x-envoy-fault-abort-request-percentage";
const NODE_HEADER: &[u8] = b"x-envoy-downstream-service-node";
const DOWNSTREAM_CLUSTER_HEADER: &[u8] = b"x-envoy-downstream-service-cluster";

#[derive(Debug)]
pub struct FaultConfig {
    pub config: HttpFault,
    /// Faults in progress across all workers (for `max_active_faults`).
    active: AtomicU64,
    /// `http.<stat_prefix>.fault.*`.
    pub delays_injected: Arc<SharedCounter>,
    pub aborts_injected: Arc<SharedCounter>,
    pub faults_overflow: Arc<SharedCounter>,
}

/// What the filter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultDecision {
    pub delay: Option<Duration>,
    /// Abort status, applied after the delay (if any).
    pub abort: Option<u16>,
    /// For a gRPC abort: the `grpc-status` of the reply (HTTP status 200).
    pub grpc_status: Option<u32>,
    /// The request holds an active-fault slot; release it when the stream ends.
    pub counted: bool,
}

impl FaultConfig {
    /// `prefix`: the connection manager's stats prefix (`http.<stat_prefix>.`).
    pub fn new(
        config: &HttpFault,
        clusters: &ClusterManager,
        prefix: &str,
        counters: &mut CounterSet,
    ) -> Result<FaultConfig, String> {
        if let Some(c) = &config.upstream_cluster {
            if clusters.index_of(c).is_none() {
                // Envoy accepts unknown names here (the fault then never matches);
                // name it in the log rather than fail.
                tracing::warn!(cluster = %c, "fault filter: upstream_cluster is not a configured cluster");
            }
        }
        Ok(FaultConfig {
            config: config.clone(),
            active: AtomicU64::new(0),
            delays_injected: counters.counter(format!("{prefix}fault.delays_injected")),
            aborts_injected: counters.counter(format!("{prefix}fault.aborts_injected")),
            faults_overflow: counters.counter(format!("{prefix}fault.faults_overflow")),
        })
    }

    pub fn active_faults(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Decide for a request routed to `cluster` (`""` when the route does not forward).
    /// `random` yields uniform random numbers.
    pub fn decide(
        &self,
        head: &RequestHead,
        cluster: &str,
        runtime: &Snapshot,
        mut random: impl FnMut() -> u64,
    ) -> FaultDecision {
        let c = &self.config;
        let keys = &c.runtime;
        if let Some(up) = &c.upstream_cluster {
            if up != cluster {
                return FaultDecision::default();
            }
        }
        if !c.downstream_nodes.is_empty() {
            let node = head.headers.get_str(NODE_HEADER).unwrap_or("");
            if !c.downstream_nodes.iter().any(|n| n == node) {
                return FaultDecision::default();
            }
        }
        if !matchers_match(&c.headers, head) {
            return FaultDecision::default();
        }
        let downstream = head.headers.get_str(DOWNSTREAM_CLUSTER_HEADER).map(DownstreamKeys::new);
        let enabled = |key: &str, cluster_key: Option<&String>, pct: FractionalPercent, r: u64| {
            runtime.feature_enabled_fraction(key, pct, r)
                || cluster_key.is_some_and(|k| runtime.feature_enabled_fraction(k, pct, r))
        };
        let mut delay = None;
        if let Some(d) = &c.delay {
            let duration = match d.kind {
                FaultDelayKind::Fixed(t) => Some(t),
                FaultDelayKind::Header => header_u64(head, DELAY_HEADER).map(Duration::from_millis),
            };
            let pct = effective(d.percentage, head, DELAY_PERCENT_HEADER);
            if enabled(&keys.delay_percent, downstream.as_ref().map(|k| &k.delay_percent), pct, random()) {
                delay = duration.and_then(|t| {
                    let mut ms = runtime.get_integer(&keys.delay_duration, t.as_millis() as u64);
                    if let Some(k) = &downstream {
                        ms = runtime.get_integer(&k.delay_duration, ms);
                    }
                    (ms > 0).then(|| Duration::from_millis(ms))
                });
            }
        }
        let mut abort = None;
        let mut grpc_status = None;
        if let Some(a) = &c.abort {
            // Envoy's `abortHttpStatus` / `abortGrpcStatus`: the configured (or
            // header's) status, replaced by the runtime key's, or by the downstream
            // cluster's key (whose default is the configured status). A status outside
            // 200..=599 is no abort.
            let runtime_status = |base: u64, key: &str, cluster_key: Option<&String>| match cluster_key {
                Some(k) => runtime.get_integer(k, base),
                None => runtime.get_integer(key, base),
            };
            let status = match a.kind {
                FaultAbortKind::GrpcStatus(g) => {
                    let g = runtime_status(
                        u64::from(g),
                        &keys.abort_grpc_status,
                        downstream.as_ref().map(|k| &k.abort_grpc_status),
                    );
                    // A gRPC abort is an HTTP 200 carrying `grpc-status` (Envoy).
                    grpc_status = Some(g.min(u64::from(u32::MAX)) as u32);
                    Some(200)
                }
                FaultAbortKind::HttpStatus(_) | FaultAbortKind::Header => {
                    let base = match a.kind {
                        FaultAbortKind::HttpStatus(s) => Some(u64::from(s)),
                        _ => header_u64(head, ABORT_HEADER),
                    };
                    base.map(|b| {
                        runtime_status(b, &keys.abort_http_status, downstream.as_ref().map(|k| &k.abort_http_status))
                    })
                    .filter(|s| (200..600).contains(s))
                    .map(|s| s as u16)
                }
            };
            let pct = effective(a.percentage, head, ABORT_PERCENT_HEADER);
            if let Some(s) = status {
                if enabled(&keys.abort_percent, downstream.as_ref().map(|k| &k.abort_percent), pct, random()) {
                    abort = Some(s);
                } else {
                    grpc_status = None;
                }
            }
        }
        if delay.is_none() && abort.is_none() {
            return FaultDecision::default();
        }
        let max = runtime.get_integer(&keys.max_active_faults, c.max_active_faults.map_or(u64::MAX, u64::from));
        if max != u64::MAX {
            let taken =
                self.active.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| (v < max).then_some(v + 1)).is_ok();
            if !taken {
                self.faults_overflow.inc();
                return FaultDecision::default();
            }
        } else {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        if delay.is_some() {
            self.delays_injected.inc();
        }
        FaultDecision { delay, abort, grpc_status, counted: true }
    }

    /// The abort after a delay happened (counted when it is actually sent).
    pub fn count_abort(&self) {
        self.aborts_injected.inc();
    }

    /// A faulted request finished.
    pub fn release(&self) {
        let _ = self.active.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
    }
}

/// The `fault.http.<downstream cluster>.*` keys of one request.
struct DownstreamKeys {
    delay_percent: String,
    abort_percent: String,
    delay_duration: String,
    abort_http_status: String,
    abort_grpc_status: String,
}

impl DownstreamKeys {
    fn new(cluster: &str) -> DownstreamKeys {
        DownstreamKeys {
            delay_percent: format!("fault.http.{cluster}.delay.fixed_delay_percent"),
            abort_percent: format!("fault.http.{cluster}.abort.abort_percent"),
            delay_duration: format!("fault.http.{cluster}.delay.fixed_duration_ms"),
            abort_http_status: format!("fault.http.{cluster}.abort.http_status"),
            abort_grpc_status: format!("fault.http.{cluster}.abort.grpc_status"),
        }
    }
}

/// The fault filter on one stream.
#[derive(Debug)]
pub struct FaultFilter {
    config: Arc<FaultConfig>,
    decision: FaultDecision,
}

impl FaultFilter {
    pub fn new(config: Arc<FaultConfig>) -> FaultFilter {
        FaultFilter { config, decision: FaultDecision::default() }
    }

    fn abort(&mut self, status: u16, cb: &mut FilterCallbacks) -> HeadersStatus {
        self.config.count_abort();
        cb.set_flag(ResponseFlags::FAULT_INJECTED);
        // A gRPC abort is a 200 with `grpc-status` and no body (Envoy).
        let (body, headers): (&[u8], _) = match self.decision.grpc_status {
            Some(g) => (
                b"",
                vec![
                    (b"grpc-status".to_vec(), g.to_string().into_bytes()),
                    (b"content-type".to_vec(), b"application/grpc".to_vec()),
                ],
            ),
            None => (local_reply::FAULT_ABORT.as_bytes(), Vec::new()),
        };
        cb.send_local_reply(status, body, headers, "fault_filter_abort");
        HeadersStatus::StopIteration
    }
}

impl StreamFilter for FaultFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let mut r = cb.random();
        self.decision = self.config.decide(head, cx.cluster, cx.runtime, || {
            r = crate::http::filters::mix(r);
            r
        });
        if let Some(delay) = self.decision.delay {
            cb.set_flag(ResponseFlags::DELAY_INJECTED);
            cb.wake_at(cx.now + delay);
            return HeadersStatus::StopIteration;
        }
        match self.decision.abort {
            Some(status) => self.abort(status, cb),
            None => HeadersStatus::Continue,
        }
    }

    /// The delay is over: the same fault's abort (if any) comes now.
    fn on_timer(&mut self, _cx: &StreamContext<'_>, cb: &mut FilterCallbacks) -> HeadersStatus {
        match self.decision.abort {
            Some(status) => self.abort(status, cb),
            None => HeadersStatus::Continue,
        }
    }

    fn on_destroy(&mut self) {
        if std::mem::take(&mut self.decision.counted) {
            self.config.release();
        }
    }
}

fn matchers_match(matchers: &[HeaderMatcher], head: &RequestHead) -> bool {
    matchers.iter().all(|m| m.matches(request_header_value(head, &m.name).as_deref()))
}

fn header_u64(head: &RequestHead, name: &[u8]) -> Option<u64> {
    head.headers.get_str(name)?.trim().parse().ok()
}

/// The configured percentage, lowered by the request's percentage header (Envoy: the
/// header's numerator, over the config's denominator, capped at the config's).
fn effective(p: FractionalPercent, head: &RequestHead, header: &[u8]) -> FractionalPercent {
    match header_u64(head, header) {
        Some(n) => FractionalPercent {
            numerator: (n.min(u32::MAX as u64) as u32).min(p.numerator),
            denominator: p.denominator,
        },
        None => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::core::Denominator;
    use sluice_config::fault::{FaultAbort, FaultDelay};

    fn fault(delay: Option<FaultDelay>, abort: Option<FaultAbort>) -> FaultConfig {
        let c = HttpFault {
            delay,
            abort,
            upstream_cluster: None,
            headers: Vec::new(),
            downstream_nodes: Vec::new(),
            max_active_faults: Some(1),
            runtime: Default::default(),
        };
        FaultConfig::new(&c, &ClusterManager::default(), "http.t.", &mut CounterSet::default()).unwrap()
    }

    #[test]
    fn abort_always_and_never() {
        let hundred = FractionalPercent { numerator: 100, denominator: Denominator::Hundred };
        let f = fault(None, Some(FaultAbort { kind: FaultAbortKind::HttpStatus(503), percentage: hundred }));
        let head = RequestHead::default();
        let d = f.decide(&head, "c", &Snapshot::default(), || 12345);
        assert_eq!(d.abort, Some(503));
        assert!(d.counted);
        // max_active_faults 1: a second concurrent fault overflows.
        assert_eq!(f.decide(&head, "c", &Snapshot::default(), || 1), FaultDecision::default());
        assert_eq!(f.faults_overflow.get(), 1);
        f.release();
        assert_eq!(f.decide(&head, "c", &Snapshot::default(), || 1).abort, Some(503));
        let never = fault(
            None,
            Some(FaultAbort { kind: FaultAbortKind::HttpStatus(503), percentage: FractionalPercent::NEVER }),
        );
        assert_eq!(never.decide(&head, "c", &Snapshot::default(), || 0), FaultDecision::default());
    }

    #[test]
    fn header_controlled_delay_and_percentage() {
        let all = FractionalPercent { numerator: 1_000_000, denominator: Denominator::Million };
        let f = fault(Some(FaultDelay { kind: FaultDelayKind::Header, percentage: all }), None);
        let mut head = RequestHead::default();
        assert_eq!(f.decide(&head, "c", &Snapshot::default(), || 0), FaultDecision::default(), "no header, no delay");
        head.headers.append(DELAY_HEADER, b"250");
        assert_eq!(f.decide(&head, "c", &Snapshot::default(), || 0).delay, Some(Duration::from_millis(250)));
        f.release();
        head.headers.append(DELAY_PERCENT_HEADER, b"0");
        assert_eq!(f.decide(&head, "c", &Snapshot::default(), || 0).delay, None, "header lowers the percentage to 0");
    }
}
