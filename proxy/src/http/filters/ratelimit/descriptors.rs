//! A route's and a virtual host's `rate_limits`, compiled, and the descriptors they
//! make of one request (Envoy's router_ratelimit.cc).
//!
//! An entry applies at the filter's `stage` unless its `disable_key` is off in the
//! runtime (`ratelimit.<disable_key>.http_filter_enabled`, 100% by default). Its
//! actions run in order, each adding one `(key, value)` to the descriptor; an action
//! that cannot produce its entry drops the whole descriptor (a `request_headers`
//! action with `skip_if_absent` only skips itself), and an empty descriptor is not
//! sent. Nothing here allocates beyond the descriptors it returns.

use sluice_config::route::rate_limit::{RateLimit, RateLimitAction};

use super::proto::{Entry, RateLimitDescriptor};
use crate::http::filter::StreamContext;
use crate::http::RequestHead;
use crate::router::route_match::{request_header_first, request_header_value};

/// One `RateLimit` entry, compiled.
#[derive(Debug)]
struct PolicyEntry {
    stage: u32,
    /// `ratelimit.<disable_key>.http_filter_enabled`.
    runtime_key: Option<String>,
    actions: Vec<RateLimitAction>,
}

/// The `rate_limits` of a route or a virtual host.
#[derive(Debug, Default)]
pub struct RateLimitPolicy {
    entries: Vec<PolicyEntry>,
}

impl RateLimitPolicy {
    pub fn new(limits: &[RateLimit]) -> RateLimitPolicy {
        let entries = limits
            .iter()
            .map(|r| PolicyEntry {
                stage: r.stage,
                runtime_key: (!r.disable_key.is_empty())
                    .then(|| format!("ratelimit.{}.http_filter_enabled", r.disable_key)),
                actions: r.actions.clone(),
            })
            .collect();
        RateLimitPolicy { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Add the descriptors of `stage`'s entries for this request to `out`; `random`
    /// draws the `disable_key` runtime check; `local_cluster` is the node's cluster.
    pub fn populate(
        &self,
        stage: u32,
        head: &RequestHead,
        cx: &StreamContext<'_>,
        local_cluster: &str,
        random: u64,
        out: &mut Vec<RateLimitDescriptor>,
    ) {
        for e in self.entries.iter().filter(|e| e.stage == stage) {
            if let Some(key) = &e.runtime_key {
                if !cx.runtime.feature_enabled(key, 100, random) {
                    continue;
                }
            }
            if let Some(d) = descriptor(&e.actions, head, cx, local_cluster) {
                out.push(d);
            }
        }
    }
}

/// The descriptor of one entry's actions, `None` when an action drops it.
fn descriptor(
    actions: &[RateLimitAction],
    head: &RequestHead,
    cx: &StreamContext<'_>,
    local_cluster: &str,
) -> Option<RateLimitDescriptor> {
    let mut entries = Vec::with_capacity(actions.len());
    for a in actions {
        let entry = |k: &str, v: String| Entry { key: k.to_string(), value: v };
        match a {
            RateLimitAction::SourceCluster => entries.push(entry("source_cluster", local_cluster.to_string())),
            RateLimitAction::DestinationCluster => entries.push(entry("destination_cluster", cx.cluster.to_string())),
            RateLimitAction::RequestHeaders { header_name, descriptor_key, skip_if_absent } => {
                match request_header_first(head, header_name) {
                    Some(v) => entries.push(entry(descriptor_key, String::from_utf8_lossy(v).into_owned())),
                    None if *skip_if_absent => {}
                    None => return None,
                }
            }
            RateLimitAction::RemoteAddress => entries.push(entry("remote_address", cx.remote.ip().to_string())),
            RateLimitAction::GenericKey { descriptor_key, descriptor_value } => {
                entries.push(entry(descriptor_key, descriptor_value.clone()))
            }
            RateLimitAction::HeaderValueMatch { descriptor_key, descriptor_value, expect_match, headers } => {
                let matched = headers.iter().all(|m| m.matches(request_header_value(head, &m.name).as_deref()));
                if matched != *expect_match {
                    return None;
                }
                entries.push(entry(descriptor_key, descriptor_value.clone()));
            }
        }
    }
    (!entries.is_empty()).then_some(RateLimitDescriptor { entries })
}
