//! `config.route.v3.RateLimit`: the `rate_limits` of a route action or a virtual host,
//! which the global rate limit filter (`envoy.filters.http.ratelimit`) turns into
//! descriptors for the rate limit service (Envoy's router_ratelimit.cc).
//!
//! Supported: `stage` (0..=10), `disable_key`, and the actions `source_cluster`,
//! `destination_cluster`, `request_headers` (`header_name`, `descriptor_key`,
//! `skip_if_absent`), `remote_address`, `generic_key` (`descriptor_value`,
//! `descriptor_key`) and `header_value_match` (`descriptor_value`, `descriptor_key`,
//! `expect_match`, `headers`). Every other action or field is refused with its path.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::HeaderMatcher;
use crate::node::Node;

/// Envoy's highest rate limit stage.
pub const MAX_STAGE: u32 = 10;

/// One `RateLimit.Action`.
#[derive(Debug, Clone, PartialEq)]
pub enum RateLimitAction {
    /// `("source_cluster", <the node's cluster>)`.
    SourceCluster,
    /// `("destination_cluster", <the route's cluster>)`.
    DestinationCluster,
    /// `(descriptor_key, <the header's value>)`; an absent header skips the action
    /// with `skip_if_absent`, else the whole descriptor.
    RequestHeaders { header_name: String, descriptor_key: String, skip_if_absent: bool },
    /// `("remote_address", <the client's address>)`.
    RemoteAddress,
    /// `(descriptor_key or "generic_key", descriptor_value)`.
    GenericKey { descriptor_key: String, descriptor_value: String },
    /// `(descriptor_key or "header_match", descriptor_value)` when the headers match
    /// (`expect_match`) or do not (`!expect_match`); else the descriptor is dropped.
    HeaderValueMatch {
        descriptor_key: String,
        descriptor_value: String,
        expect_match: bool,
        headers: Vec<HeaderMatcher>,
    },
}

const ACTIONS: &[&str] = &[
    "source_cluster",
    "destination_cluster",
    "request_headers",
    "remote_address",
    "generic_key",
    "header_value_match",
];

const OTHER_ACTIONS: &[&str] = &[
    "dynamic_metadata",
    "metadata",
    "extension",
    "masked_remote_address",
    "query_parameter_value_match",
    "query_parameters",
];

fn empty_message(d: &mut Decoder, node: &Node, path: &str) {
    if let Some(f) = Fields::of(d, node, path) {
        f.finish(d);
    }
}

impl Decode for RateLimitAction {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let before = d.errors.len();
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let set: Vec<&str> = ACTIONS.iter().copied().filter(|a| f.has(a)).collect();
        let mut action = None;
        if let Some(n) = f.take("source_cluster") {
            empty_message(d, n, &format!("{path}.source_cluster"));
            action = Some(RateLimitAction::SourceCluster);
        }
        if let Some(n) = f.take("destination_cluster") {
            empty_message(d, n, &format!("{path}.destination_cluster"));
            action = Some(RateLimitAction::DestinationCluster);
        }
        if let Some(n) = f.take("remote_address") {
            empty_message(d, n, &format!("{path}.remote_address"));
            action = Some(RateLimitAction::RemoteAddress);
        }
        if let Some(n) = f.take("request_headers") {
            let p = format!("{path}.request_headers");
            let mut r = Fields::of(d, n, &p)?;
            let header_name: Option<String> = r.req(d, "header_name");
            let descriptor_key: Option<String> = r.req(d, "descriptor_key");
            let skip_if_absent = r.or(d, "skip_if_absent", false);
            r.finish(d);
            let (header_name, descriptor_key) = (header_name?, descriptor_key?);
            if header_name.is_empty() || !crate::matcher::is_header_name(header_name.trim_start_matches(':')) {
                d.error(ErrorKind::Invalid, &format!("{p}.header_name"), n.line, "must be a header name");
                return None;
            }
            if descriptor_key.is_empty() {
                d.error(ErrorKind::Invalid, &format!("{p}.descriptor_key"), n.line, "must not be empty");
                return None;
            }
            action = Some(RateLimitAction::RequestHeaders {
                header_name: header_name.to_ascii_lowercase(),
                descriptor_key,
                skip_if_absent,
            });
        }
        if let Some(n) = f.take("generic_key") {
            let p = format!("{path}.generic_key");
            let mut r = Fields::of(d, n, &p)?;
            let descriptor_value: Option<String> = r.req(d, "descriptor_value");
            let descriptor_key: String = r.or(d, "descriptor_key", String::new());
            r.finish(d);
            let descriptor_value = descriptor_value?;
            if descriptor_value.is_empty() {
                d.error(ErrorKind::Invalid, &format!("{p}.descriptor_value"), n.line, "must not be empty");
                return None;
            }
            let descriptor_key = if descriptor_key.is_empty() { "generic_key".to_string() } else { descriptor_key };
            action = Some(RateLimitAction::GenericKey { descriptor_key, descriptor_value });
        }
        if let Some(n) = f.take("header_value_match") {
            let p = format!("{path}.header_value_match");
            let mut r = Fields::of(d, n, &p)?;
            let descriptor_value: Option<String> = r.req(d, "descriptor_value");
            let descriptor_key: String = r.or(d, "descriptor_key", String::new());
            let expect_match = r.or(d, "expect_match", true);
            let headers: Vec<HeaderMatcher> = r.list(d, "headers");
            r.finish(d);
            let descriptor_value = descriptor_value?;
            if descriptor_value.is_empty() {
                d.error(ErrorKind::Invalid, &format!("{p}.descriptor_value"), n.line, "must not be empty");
                return None;
            }
            if headers.is_empty() {
                d.error(ErrorKind::Invalid, &format!("{p}.headers"), n.line, "must have at least 1 item");
                return None;
            }
            let descriptor_key = if descriptor_key.is_empty() { "header_match".to_string() } else { descriptor_key };
            action =
                Some(RateLimitAction::HeaderValueMatch { descriptor_key, descriptor_value, expect_match, headers });
        }
        f.unsupported(d, OTHER_ACTIONS);
        f.finish(d);
        if set.len() > 1 {
            d.error(ErrorKind::Invalid, path, line, format!("set only one action; found {}", set.join(", ")));
            return None;
        }
        if action.is_none() && d.errors.len() == before {
            d.error(ErrorKind::Missing, path, line, format!("a rate limit action needs one of {}", ACTIONS.join(", ")));
        }
        action
    }
}

/// `config.route.v3.RateLimit`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub stage: u32,
    /// `ratelimit.<disable_key>.http_filter_enabled` (runtime, default 100%) turns
    /// this entry off.
    pub disable_key: String,
    pub actions: Vec<RateLimitAction>,
}

impl Decode for RateLimit {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let stage: u32 = f.or(d, "stage", 0);
        let disable_key: String = f.or(d, "disable_key", String::new());
        let before = d.errors.len();
        let actions: Vec<RateLimitAction> = f.list(d, "actions");
        f.default_only(
            d,
            "apply_on_stream_done",
            false,
            "sluice asks the rate limit service when the request starts only; remove it",
        );
        f.unsupported(d, &["limit", "hits_addend"]);
        f.finish(d);
        if stage > MAX_STAGE {
            d.error(ErrorKind::Invalid, &format!("{path}.stage"), line, format!("must be at most {MAX_STAGE}"));
            return None;
        }
        if actions.is_empty() {
            if d.errors.len() != before {
                return None;
            }
            d.error(ErrorKind::Invalid, &format!("{path}.actions"), line, "must have at least 1 item");
            return None;
        }
        Some(RateLimit { stage, disable_key, actions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse;

    fn decode(yaml: &str) -> (Option<Vec<RateLimit>>, String) {
        let n = parse(yaml).unwrap();
        let mut d = Decoder::new();
        let r = d.decode::<Vec<RateLimit>>(&n, "rate_limits");
        (r, d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
    }

    #[test]
    fn every_supported_action_decodes() {
        let (r, e) = decode(
            "- stage: 2\n  disable_key: k\n  actions:\n  - source_cluster: {}\n  - destination_cluster: {}\n  - request_headers: {header_name: X-User, descriptor_key: user, skip_if_absent: true}\n  - remote_address: {}\n  - generic_key: {descriptor_value: v}\n  - header_value_match: {descriptor_value: get, expect_match: false, headers: [{name: ':method', string_match: {exact: GET}}]}\n",
        );
        assert!(e.is_empty(), "{e}");
        let r = &r.unwrap()[0];
        assert_eq!((r.stage, r.disable_key.as_str(), r.actions.len()), (2, "k", 6));
        assert_eq!(
            r.actions[2],
            RateLimitAction::RequestHeaders {
                header_name: "x-user".into(),
                descriptor_key: "user".into(),
                skip_if_absent: true
            }
        );
        assert_eq!(
            r.actions[4],
            RateLimitAction::GenericKey { descriptor_key: "generic_key".into(), descriptor_value: "v".into() }
        );
        let RateLimitAction::HeaderValueMatch { descriptor_key, expect_match, headers, .. } = &r.actions[5] else {
            panic!()
        };
        assert_eq!((descriptor_key.as_str(), *expect_match, headers.len()), ("header_match", false, 1));
    }

    #[test]
    fn unsupported_and_invalid_entries_are_refused_with_their_path() {
        let (_, e) = decode("- actions: [{masked_remote_address: {}}]\n");
        assert!(e.contains("rate_limits[0].actions[0].masked_remote_address"), "{e}");
        let (_, e) = decode("- actions: [{generic_key: {descriptor_value: v}}]\n  limit: {dynamic_metadata: {}}\n");
        assert!(e.contains("rate_limits[0].limit"), "{e}");
        let (_, e) = decode("- actions: [{remote_address: {}, source_cluster: {}}]\n");
        assert!(e.contains("set only one action"), "{e}");
        let (_, e) = decode("- actions: []\n");
        assert!(e.contains("rate_limits[0].actions"), "{e}");
        let (_, e) = decode("- stage: 11\n  actions: [{remote_address: {}}]\n");
        assert!(e.contains("rate_limits[0].stage"), "{e}");
        let (_, e) = decode("- actions: [{request_headers: {header_name: x}}]\n");
        assert!(e.contains("descriptor_key"), "{e}");
        let (_, e) = decode("- actions: [{}]\n");
        assert!(e.contains("needs one of"), "{e}");
    }
}
