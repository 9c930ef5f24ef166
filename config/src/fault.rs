//! `envoy.extensions.filters.http.fault.v3.HTTPFault`: delay and abort injection.
//!
//! Defaults follow Envoy: an absent `percentage` is 0 % (the runtime keys
//! `fault.http.delay.fixed_delay_percent` / `fault.http.abort.abort_percent`, or the
//! keys `delay_percent_runtime` / `abort_percent_runtime` name, override it); an absent
//! `max_active_faults` is unlimited. [`FaultRuntimeKeys`] holds the runtime keys. Header-controlled faults
//! (`x-envoy-fault-delay-request`, `x-envoy-fault-abort-request`) are enabled by
//! `header_delay: {}` / `header_abort: {}`.

use std::time::Duration;

use crate::core::FractionalPercent;
use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::HeaderMatcher;
use crate::node::Node;

/// Where a delay's duration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultDelayKind {
    Fixed(Duration),
    /// `header_delay`: milliseconds from `x-envoy-fault-delay-request`.
    Header,
}

/// `filters.common.fault.v3.FaultDelay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDelay {
    pub kind: FaultDelayKind,
    pub percentage: FractionalPercent,
}

impl Decode for FaultDelay {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let fixed: Option<Duration> = f.opt(d, "fixed_delay");
        let header = f.take("header_delay");
        let header_path = f.field_path("header_delay");
        let percentage = f.or(d, "percentage", FractionalPercent::NEVER);
        f.finish(d);
        if let Some(h) = header {
            if let Some(hf) = Fields::of(d, h, &header_path) {
                hf.finish(d);
            }
        }
        let kind = match (fixed, header) {
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, path, line, "set only one of `fixed_delay` and `header_delay`");
                return None;
            }
            (Some(t), None) if t.is_zero() => {
                d.error(ErrorKind::Invalid, &format!("{path}.fixed_delay"), line, "must be greater than 0");
                return None;
            }
            (Some(t), None) => FaultDelayKind::Fixed(t),
            (None, Some(_)) => FaultDelayKind::Header,
            (None, None) => {
                d.error(ErrorKind::Missing, path, line, "a delay needs `fixed_delay` or `header_delay`");
                return None;
            }
        };
        Some(FaultDelay { kind, percentage })
    }
}

/// What an abort answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAbortKind {
    /// 200..=599
    HttpStatus(u16),
    GrpcStatus(u32),
    /// `header_abort`: the status from `x-envoy-fault-abort-request`.
    Header,
}

/// `extensions.filters.http.fault.v3.FaultAbort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultAbort {
    pub kind: FaultAbortKind,
    pub percentage: FractionalPercent,
}

impl Decode for FaultAbort {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let http: Option<u32> = f.opt(d, "http_status");
        let grpc: Option<u32> = f.opt(d, "grpc_status");
        let header = f.take("header_abort");
        let header_path = f.field_path("header_abort");
        let percentage = f.or(d, "percentage", FractionalPercent::NEVER);
        f.finish(d);
        if let Some(h) = header {
            if let Some(hf) = Fields::of(d, h, &header_path) {
                hf.finish(d);
            }
        }
        let set = [http.is_some(), grpc.is_some(), header.is_some()].iter().filter(|b| **b).count();
        if set != 1 {
            d.error(ErrorKind::Invalid, path, line, "set exactly one of `http_status`, `grpc_status`, `header_abort`");
            return None;
        }
        let kind = if let Some(s) = http {
            if !(200..600).contains(&s) {
                d.error(ErrorKind::Invalid, &format!("{path}.http_status"), line, format!("{s} is not in 200..=599"));
                return None;
            }
            FaultAbortKind::HttpStatus(s as u16)
        } else if let Some(g) = grpc {
            FaultAbortKind::GrpcStatus(g)
        } else {
            FaultAbortKind::Header
        };
        Some(FaultAbort { kind, percentage })
    }
}

/// `extensions.filters.http.fault.v3.HTTPFault`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
    /// Only requests to this upstream cluster are faulted (empty: any).
    pub upstream_cluster: Option<String>,
    /// All must match for the fault to apply.
    pub headers: Vec<HeaderMatcher>,
    /// `x-envoy-downstream-service-node` values the fault applies to (empty: any).
    pub downstream_nodes: Vec<String>,
    /// `None`: unlimited.
    pub max_active_faults: Option<u32>,
    pub runtime: Box<FaultRuntimeKeys>,
}

/// The runtime keys that override the fault's settings (Envoy's `RuntimeKeys`, or the
/// `*_runtime` fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRuntimeKeys {
    pub delay_percent: String,
    pub abort_percent: String,
    pub delay_duration: String,
    pub abort_http_status: String,
    pub abort_grpc_status: String,
    pub max_active_faults: String,
}

impl Default for FaultRuntimeKeys {
    fn default() -> Self {
        FaultRuntimeKeys {
            delay_percent: "fault.http.delay.fixed_delay_percent".into(),
            abort_percent: "fault.http.abort.abort_percent".into(),
            delay_duration: "fault.http.delay.fixed_duration_ms".into(),
            abort_http_status: "fault.http.abort.http_status".into(),
            abort_grpc_status: "fault.http.abort.grpc_status".into(),
            max_active_faults: "fault.http.max_active_faults".into(),
        }
    }
}

impl HttpFault {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<HttpFault> {
        let delay: Option<FaultDelay> = f.opt(d, "delay");
        let abort: Option<FaultAbort> = f.opt(d, "abort");
        let upstream_cluster: String = f.or(d, "upstream_cluster", String::new());
        let headers = f.list(d, "headers");
        let downstream_nodes = f.list(d, "downstream_nodes");
        let max_active_faults: Option<u32> = f.opt(d, "max_active_faults");
        let mut runtime = Box::<FaultRuntimeKeys>::default();
        for (name, key) in [
            ("delay_percent_runtime", &mut runtime.delay_percent),
            ("abort_percent_runtime", &mut runtime.abort_percent),
            ("delay_duration_runtime", &mut runtime.delay_duration),
            ("abort_http_status_runtime", &mut runtime.abort_http_status),
            ("abort_grpc_status_runtime", &mut runtime.abort_grpc_status),
            ("max_active_faults_runtime", &mut runtime.max_active_faults),
        ] {
            // PROTOBUF_GET_STRING_OR_DEFAULT: an empty string keeps the default key.
            let v: String = f.or(d, name, String::new());
            if !v.is_empty() {
                *key = v;
            }
        }
        f.ignored(d, &["response_rate_limit_percent_runtime", "disable_downstream_cluster_stats"]);
        f.empty_only(d, "response_rate_limit", "response rate-limit faults are not supported yet; remove it");
        f.unsupported(d, &["filter_metadata"]);
        f.finish(d);
        Some(HttpFault {
            delay,
            abort,
            upstream_cluster: (!upstream_cluster.is_empty()).then_some(upstream_cluster),
            headers,
            downstream_nodes,
            max_active_faults,
            runtime,
        })
    }
}
