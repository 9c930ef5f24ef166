//! Policies a route hands to the router filter: `RetryPolicy` (with `RetryBackOff`),
//! `RequestMirrorPolicy` and `HashPolicy`, typed at load.
//!
//! `retry_on` is parsed into [`RetryOn`] flags once; like Envoy's
//! `RetryStateImpl::parseRetryOn`, unknown tokens do not fail the load (we warn).

use std::time::Duration;

use crate::core::{FractionalPercent, RuntimeFractionalPercent};
use crate::decode::{Decode, Decoder, Fields};
use crate::error::{ErrorKind, Warning};
use crate::matcher::{decode_header_name, HeaderMatcher, RegexRewrite};
use crate::node::Node;

/// `retry_on` conditions, as flags (`x-envoy-retry-on` / `x-envoy-retry-grpc-on` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn(pub u32);

impl RetryOn {
    pub const FIVE_XX: RetryOn = RetryOn(1 << 0);
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    pub const RESET: RetryOn = RetryOn(1 << 2);
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 4);
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 5);
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    pub const RETRIABLE_HEADERS: RetryOn = RetryOn(1 << 7);
    pub const ENVOY_RATELIMITED: RetryOn = RetryOn(1 << 8);
    pub const RESET_BEFORE_REQUEST: RetryOn = RetryOn(1 << 9);
    pub const HTTP3_POST_CONNECT_FAILURE: RetryOn = RetryOn(1 << 10);
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 16);
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 17);
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 18);
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 19);
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 20);

    pub const NAMES: &'static [(&'static str, RetryOn)] = &[
        ("5xx", RetryOn::FIVE_XX),
        ("gateway-error", RetryOn::GATEWAY_ERROR),
        ("reset", RetryOn::RESET),
        ("reset-before-request", RetryOn::RESET_BEFORE_REQUEST),
        ("connect-failure", RetryOn::CONNECT_FAILURE),
        ("envoy-ratelimited", RetryOn::ENVOY_RATELIMITED),
        ("retriable-4xx", RetryOn::RETRIABLE_4XX),
        ("refused-stream", RetryOn::REFUSED_STREAM),
        ("retriable-status-codes", RetryOn::RETRIABLE_STATUS_CODES),
        ("retriable-headers", RetryOn::RETRIABLE_HEADERS),
        ("http3-post-connect-failure", RetryOn::HTTP3_POST_CONNECT_FAILURE),
        ("cancelled", RetryOn::GRPC_CANCELLED),
        ("deadline-exceeded", RetryOn::GRPC_DEADLINE_EXCEEDED),
        ("resource-exhausted", RetryOn::GRPC_RESOURCE_EXHAUSTED),
        ("unavailable", RetryOn::GRPC_UNAVAILABLE),
        ("internal", RetryOn::GRPC_INTERNAL),
    ];

    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parse a comma-separated list; returns the flags and the tokens not understood.
    /// Used for the config and for the `x-envoy-retry-on` request header alike.
    pub fn parse(list: &str) -> (RetryOn, Vec<&str>) {
        let mut flags = 0;
        let mut unknown = Vec::new();
        for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match RetryOn::NAMES.iter().find(|(n, _)| *n == token) {
                Some((_, f)) => flags |= f.0,
                None => unknown.push(token),
            }
        }
        (RetryOn(flags), unknown)
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = RetryOn;
    fn bitor(self, rhs: RetryOn) -> RetryOn {
        RetryOn(self.0 | rhs.0)
    }
}

/// `RetryPolicy.RetryBackOff`: fully jittered exponential back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackOff {
    pub base_interval: Duration,
    pub max_interval: Duration,
}

impl Default for RetryBackOff {
    /// Envoy: 25 ms base, 10 x base cap.
    fn default() -> Self {
        RetryBackOff { base_interval: Duration::from_millis(25), max_interval: Duration::from_millis(250) }
    }
}

impl Decode for RetryBackOff {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let base: Option<Duration> = f.req(d, "base_interval");
        let max: Option<Duration> = f.opt(d, "max_interval");
        let line = f.line();
        f.finish(d);
        let base = base?;
        if base.is_zero() {
            d.error(ErrorKind::Invalid, &format!("{path}.base_interval"), line, "must be greater than 0");
            return None;
        }
        let max = match max {
            Some(m) if m.is_zero() => {
                d.error(ErrorKind::Invalid, &format!("{path}.max_interval"), line, "must be greater than 0");
                return None;
            }
            Some(m) if m < base => {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.max_interval"),
                    line,
                    "max_interval must be greater than or equal to the base_interval",
                );
                return None;
            }
            Some(m) => m,
            None => base * 10,
        };
        Some(RetryBackOff { base_interval: base, max_interval: max })
    }
}

/// `config.route.v3.HedgePolicy`: with `hedge_on_per_try_timeout`, a try whose per-try
/// timeout fires is not cancelled: another try starts beside it (if the retry policy
/// allows a retry) and the first good response wins. Only one initial request and no
/// `additional_request_chance` are supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HedgePolicy {
    pub hedge_on_per_try_timeout: bool,
}

impl Decode for HedgePolicy {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let hedge_on_per_try_timeout = f.or(d, "hedge_on_per_try_timeout", false);
        let initial: Option<u32> = f.opt(d, "initial_requests");
        f.unsupported(d, &["additional_request_chance"]);
        f.finish(d);
        if initial.is_some_and(|n| n != 1) {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.initial_requests"),
                node.line,
                "only 1 initial request (the default) is supported",
            );
            return None;
        }
        Some(HedgePolicy { hedge_on_per_try_timeout })
    }
}

/// `config.route.v3.RetryPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// Envoy's default is 1.
    pub num_retries: u32,
    /// `None`: each try is bounded by the route timeout only.
    pub per_try_timeout: Option<Duration>,
    pub per_try_idle_timeout: Option<Duration>,
    pub retry_back_off: RetryBackOff,
    pub retriable_status_codes: Vec<u16>,
    pub retriable_headers: Vec<HeaderMatcher>,
    pub retriable_request_headers: Vec<HeaderMatcher>,
    /// `retry_host_predicate`: on a retry, a host a predicate rejects is picked again.
    pub retry_host_predicate: Vec<RetryHostPredicate>,
    /// How many times host selection is re-attempted on a retry before the last
    /// pick is used (Envoy's default 1).
    pub host_selection_retry_max_attempts: u32,
}

/// A `retry_host_predicate` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHostPredicate {
    /// `envoy.retry_host_predicates.previous_hosts`: rejects hosts this request
    /// already tried.
    PreviousHosts,
}

const PREVIOUS_HOSTS: &str = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";

impl RetryHostPredicate {
    pub fn name(self) -> &'static str {
        match self {
            RetryHostPredicate::PreviousHosts => "envoy.retry_host_predicates.previous_hosts",
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            RetryHostPredicate::PreviousHosts => PREVIOUS_HOSTS,
        }
    }
}

impl Decode for RetryHostPredicate {
    /// `{name, typed_config}`, chosen by the typed_config's type.
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let _name: String = f.or(d, "name", String::new());
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        let line = f.line();
        f.finish(d);
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, "a retry host predicate needs a typed_config with an `@type`");
            return None;
        };
        let t = crate::decode::typed_config(d, tc, &tc_path)?;
        let out = match t.type_name.as_str() {
            PREVIOUS_HOSTS => Some(RetryHostPredicate::PreviousHosts),
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!(
                        "unsupported retry host predicate `{other}` (sluice has previous_hosts; omit_canary_hosts and omit_host_metadata need endpoint metadata, which sluice does not keep)"
                    ),
                );
                None
            }
        };
        t.fields.finish(d);
        out
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retry_on: RetryOn::default(),
            num_retries: 1,
            per_try_timeout: None,
            per_try_idle_timeout: None,
            retry_back_off: RetryBackOff::default(),
            retriable_status_codes: Vec::new(),
            retriable_headers: Vec::new(),
            retriable_request_headers: Vec::new(),
            retry_host_predicate: Vec::new(),
            host_selection_retry_max_attempts: 1,
        }
    }
}

impl Decode for RetryPolicy {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let retry_on_text: String = f.or(d, "retry_on", String::new());
        let retry_on_line = f.take("retry_on").map(|n| n.line).unwrap_or(f.line());
        let num_retries = f.or(d, "num_retries", 1u32);
        let per_try_timeout: Option<Duration> = f.opt(d, "per_try_timeout");
        let per_try_idle_timeout: Option<Duration> = f.opt(d, "per_try_idle_timeout");
        let retry_back_off = f.or(d, "retry_back_off", RetryBackOff::default());
        let codes: Vec<u32> = f.list(d, "retriable_status_codes");
        let retriable_headers = f.list(d, "retriable_headers");
        let retriable_request_headers = f.list(d, "retriable_request_headers");
        let retry_host_predicate = f.list(d, "retry_host_predicate");
        let attempts_path = f.field_path("host_selection_retry_max_attempts");
        let attempts: i64 = f.or(d, "host_selection_retry_max_attempts", 1i64);
        f.empty_only(d, "retry_priority", "retry priority plugins are not supported; remove it");
        f.unsupported(d, &["retry_options_predicates", "rate_limited_retry_back_off"]);
        let line = f.line();
        f.finish(d);
        if !(0..=i64::from(u32::MAX)).contains(&attempts) {
            d.error(ErrorKind::Invalid, &attempts_path, line, "must be between 0 and 4294967295");
        }
        let host_selection_retry_max_attempts = attempts.clamp(0, i64::from(u32::MAX)) as u32;
        let (retry_on, unknown) = RetryOn::parse(&retry_on_text);
        if !unknown.is_empty() {
            d.warnings.push(Warning {
                path: format!("{path}.retry_on"),
                line: retry_on_line,
                message: format!("unknown retry_on value(s) {} ignored, as Envoy does", unknown.join(", ")),
            });
        }
        let mut retriable_status_codes = Vec::with_capacity(codes.len());
        for c in codes {
            if !(100..=599).contains(&c) {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.retriable_status_codes"),
                    line,
                    format!("{c} is not an HTTP status code"),
                );
                continue;
            }
            retriable_status_codes.push(c as u16);
        }
        Some(RetryPolicy {
            retry_on,
            num_retries,
            per_try_timeout: per_try_timeout.filter(|t| !t.is_zero()),
            per_try_idle_timeout: per_try_idle_timeout.filter(|t| !t.is_zero()),
            retry_back_off,
            retriable_status_codes,
            retriable_headers,
            retriable_request_headers,
            retry_host_predicate,
            host_selection_retry_max_attempts,
        })
    }
}

/// Where a mirrored request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorTarget {
    Cluster(String),
    /// The cluster named by the first value of this (lower-cased) request header.
    ClusterHeader(String),
}

/// `RouteAction.RequestMirrorPolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMirrorPolicy {
    pub target: MirrorTarget,
    /// No `runtime_fraction` means 100 %.
    pub fraction: RuntimeFractionalPercent,
    pub disable_shadow_host_suffix_append: bool,
    pub host_rewrite_literal: Option<String>,
    pub line: u32,
}

impl Decode for RequestMirrorPolicy {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let cluster: String = f.or(d, "cluster", String::new());
        let header = match f.take("cluster_header") {
            Some(n) => decode_header_name(d, n, &f.field_path("cluster_header")),
            None => None,
        };
        let fraction: Option<RuntimeFractionalPercent> = f.opt(d, "runtime_fraction");
        let disable_shadow_host_suffix_append = f.or(d, "disable_shadow_host_suffix_append", false);
        let host_rewrite_literal: String = f.or(d, "host_rewrite_literal", String::new());
        f.default_only(
            d,
            "trace_sampled",
            true,
            "a shadow request carries the request's trace context as it is (Envoy's default, true)",
        );
        f.unsupported(d, &["request_headers_mutations"]);
        f.finish(d);
        let target = match (cluster.is_empty(), header) {
            (false, None) => MirrorTarget::Cluster(cluster),
            (true, Some(h)) => MirrorTarget::ClusterHeader(h),
            (false, Some(h)) => {
                d.error(
                    ErrorKind::Invalid,
                    path,
                    line,
                    format!("Only one of cluster '{cluster}' or cluster_header '{h}' in request mirror policy can be specified"),
                );
                return None;
            }
            (true, None) => {
                d.error(
                    ErrorKind::Missing,
                    path,
                    line,
                    "Exactly one of cluster or cluster_header in request mirror policy need to be specified",
                );
                return None;
            }
        };
        Some(RequestMirrorPolicy {
            target,
            fraction: fraction.unwrap_or(RuntimeFractionalPercent::fixed(FractionalPercent::ALWAYS)),
            disable_shadow_host_suffix_append,
            host_rewrite_literal: (!host_rewrite_literal.is_empty()).then_some(host_rewrite_literal),
            line,
        })
    }
}

/// What one `RouteAction.HashPolicy` hashes.
#[derive(Debug, Clone, PartialEq)]
pub enum HashPolicyKind {
    /// Every value of the (lower-cased) header, optionally rewritten.
    Header {
        name: String,
        regex_rewrite: Option<RegexRewrite>,
    },
    /// A cookie; with `ttl` Envoy generates the cookie when absent.
    Cookie {
        name: String,
        ttl: Option<Duration>,
        path: String,
    },
    /// `connection_properties.source_ip`.
    SourceIp,
    QueryParameter {
        name: String,
    },
}

/// `RouteAction.HashPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct HashPolicy {
    pub kind: HashPolicyKind,
    /// Stop evaluating further policies once this one produced a hash.
    pub terminal: bool,
}

impl Decode for HashPolicy {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let mut kinds: Vec<Option<HashPolicyKind>> = Vec::new();
        if let Some(n) = f.take("header") {
            kinds.push(decode_header_hash(d, n, &f.field_path("header")));
        }
        if let Some(n) = f.take("cookie") {
            kinds.push(decode_cookie_hash(d, n, &f.field_path("cookie")));
        }
        if let Some(n) = f.take("connection_properties") {
            let p = f.field_path("connection_properties");
            let kind = Fields::of(d, n, &p).and_then(|mut c| {
                let source_ip = c.or(d, "source_ip", false);
                c.finish(d);
                if !source_ip {
                    d.invalid(n, &p, "connection_properties needs `source_ip: true`");
                }
                source_ip.then_some(HashPolicyKind::SourceIp)
            });
            kinds.push(kind);
        }
        if let Some(n) = f.take("query_parameter") {
            let p = f.field_path("query_parameter");
            let kind = Fields::of(d, n, &p).and_then(|mut q| {
                let name: Option<String> = q.req(d, "name");
                q.finish(d);
                let name = name?;
                if name.is_empty() {
                    d.invalid(n, &format!("{p}.name"), "must not be empty");
                    return None;
                }
                Some(HashPolicyKind::QueryParameter { name })
            });
            kinds.push(kind);
        }
        let terminal = f.or(d, "terminal", false);
        f.unsupported(d, &["filter_state"]);
        f.finish(d);
        if kinds.len() != 1 {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "a hash policy needs exactly one of `header`, `cookie`, `connection_properties`, `query_parameter`",
            );
            return None;
        }
        Some(HashPolicy { kind: kinds.pop()??, terminal })
    }
}

fn decode_header_hash(d: &mut Decoder, n: &Node, p: &str) -> Option<HashPolicyKind> {
    let mut h = Fields::of(d, n, p)?;
    let name = match h.take("header_name") {
        Some(v) => decode_header_name(d, v, &h.field_path("header_name")),
        None => {
            d.error(ErrorKind::Missing, &h.field_path("header_name"), h.line(), "required field is missing");
            None
        }
    };
    let regex_rewrite: Option<RegexRewrite> = h.opt(d, "regex_rewrite");
    h.finish(d);
    Some(HashPolicyKind::Header { name: name?, regex_rewrite })
}

fn decode_cookie_hash(d: &mut Decoder, n: &Node, p: &str) -> Option<HashPolicyKind> {
    let mut c = Fields::of(d, n, p)?;
    let name: Option<String> = c.req(d, "name");
    let ttl: Option<Duration> = c.opt(d, "ttl");
    let path: String = c.or(d, "path", String::new());
    c.unsupported(d, &["attributes"]);
    c.finish(d);
    let name = name?;
    if name.is_empty() {
        d.invalid(n, &format!("{p}.name"), "must not be empty");
        return None;
    }
    Some(HashPolicyKind::Cookie { name, ttl, path })
}
