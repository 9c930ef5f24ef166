//! `config.accesslog.v3.AccessLogFilter`: which finished requests are logged.
//!
//! Supported: `status_code_filter`, `duration_filter` (a `ComparisonFilter` with op
//! `EQ`/`GE`/`LE`/`NE` and a `RuntimeUInt32`: the runtime's integer at `runtime_key`,
//! else `default_value`), `not_health_check_filter`, `response_flag_filter` (short flag names;
//! an empty list matches any flag), `header_filter` and `and_filter` / `or_filter`.
//! The others (`runtime_filter`, `traceable_filter`, `grpc_status_filter`,
//! `metadata_filter`, `log_type_filter`, `extension_filter`) are reported unsupported.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::HeaderMatcher;
use crate::node::Node;
use crate::proto_enum;

/// The response flags' short names, as `%RESPONSE_FLAGS%` prints them.
pub const RESPONSE_FLAG_NAMES: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC", "URX", "SI", "IH",
    "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO",
];

proto_enum! {
    /// `ComparisonFilter.Op`.
    pub enum ComparisonOp {
        Eq = ("EQ", 0),
        Ge = ("GE", 1),
        Le = ("LE", 2),
        Ne = ("NE", 3),
    }
}

/// `config.accesslog.v3.ComparisonFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComparisonFilter {
    pub op: ComparisonOp,
    /// `value.default_value`.
    pub value: u32,
    /// `value.runtime_key` (empty: none).
    pub runtime_key: String,
}

impl ComparisonFilter {
    /// Compare `v` with the configured value.
    pub fn compare(&self, v: u64) -> bool {
        self.compare_with(v, u64::from(self.value))
    }

    /// Compare `v` with `x` (the runtime's value of `runtime_key`, or `value`).
    pub fn compare_with(&self, v: u64, x: u64) -> bool {
        match self.op {
            ComparisonOp::Eq => v == x,
            ComparisonOp::Ge => v >= x,
            ComparisonOp::Le => v <= x,
            ComparisonOp::Ne => v != x,
        }
    }
}

impl Decode for ComparisonFilter {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let op = f.or(d, "op", ComparisonOp::Eq);
        let value_path = f.field_path("value");
        let value = f.take("value");
        f.finish(d);
        let value = match value {
            Some(v) => {
                let mut vf = Fields::of(d, v, &value_path)?;
                let n: Option<u32> = vf.req(d, "default_value");
                let key: String = vf.or(d, "runtime_key", String::new());
                vf.finish(d);
                (n?, key)
            }
            None => (0, String::new()),
        };
        Some(ComparisonFilter { op, value: value.0, runtime_key: value.1 })
    }
}

/// One access log filter.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessLogFilter {
    StatusCode(ComparisonFilter),
    /// Compared with the request's duration in milliseconds.
    Duration(ComparisonFilter),
    /// True for every request: sluice has no health-check HTTP filter, so no
    /// downstream request is a health check.
    NotHealthCheck,
    /// Any of these flags is set; an empty list: any flag at all.
    ResponseFlag(Vec<String>),
    Header(HeaderMatcher),
    And(Vec<AccessLogFilter>),
    Or(Vec<AccessLogFilter>),
}

const ONEOF: &[&str] = &[
    "status_code_filter",
    "duration_filter",
    "not_health_check_filter",
    "traceable_filter",
    "runtime_filter",
    "and_filter",
    "or_filter",
    "header_filter",
    "response_flag_filter",
    "grpc_status_filter",
    "extension_filter",
    "metadata_filter",
    "log_type_filter",
];

impl Decode for AccessLogFilter {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let set: Vec<&str> = ONEOF.iter().copied().filter(|n| f.has(n)).collect();
        if set.len() != 1 {
            f.finish(d);
            let msg = if set.is_empty() {
                format!("a filter needs one of {}", ONEOF.join(", "))
            } else {
                format!("set only one of {}", set.join(", "))
            };
            d.error(ErrorKind::Invalid, path, line, msg);
            return None;
        }
        let which = set[0];
        let sub_path = f.field_path(which);
        let filter = match which {
            "status_code_filter" | "duration_filter" => {
                let sub = f.take(which)?;
                let mut sf = Fields::of(d, sub, &sub_path)?;
                let c: Option<ComparisonFilter> = sf.req(d, "comparison");
                sf.finish(d);
                let c = c?;
                if which == "status_code_filter" {
                    AccessLogFilter::StatusCode(c)
                } else {
                    AccessLogFilter::Duration(c)
                }
            }
            "not_health_check_filter" => {
                let sub = f.take(which)?;
                Fields::of(d, sub, &sub_path)?.finish(d);
                AccessLogFilter::NotHealthCheck
            }
            "and_filter" | "or_filter" => {
                let sub = f.take(which)?;
                let mut sf = Fields::of(d, sub, &sub_path)?;
                let filters: Vec<AccessLogFilter> = sf.list(d, "filters");
                sf.finish(d);
                if filters.len() < 2 {
                    d.error(ErrorKind::Invalid, &format!("{sub_path}.filters"), sub.line, "needs at least 2 filters");
                    return None;
                }
                if which == "and_filter" {
                    AccessLogFilter::And(filters)
                } else {
                    AccessLogFilter::Or(filters)
                }
            }
            "header_filter" => {
                let sub = f.take(which)?;
                let mut sf = Fields::of(d, sub, &sub_path)?;
                let h: Option<HeaderMatcher> = sf.req(d, "header");
                sf.finish(d);
                AccessLogFilter::Header(h?)
            }
            "response_flag_filter" => {
                let sub = f.take(which)?;
                let mut sf = Fields::of(d, sub, &sub_path)?;
                let flags: Vec<String> = sf.list(d, "flags");
                sf.finish(d);
                for (i, flag) in flags.iter().enumerate() {
                    if !RESPONSE_FLAG_NAMES.contains(&flag.as_str()) {
                        d.error(
                            ErrorKind::Invalid,
                            &format!("{sub_path}.flags[{i}]"),
                            sub.line,
                            format!(
                                "unknown response flag `{flag}`; expected one of {}",
                                RESPONSE_FLAG_NAMES.join(", ")
                            ),
                        );
                        return None;
                    }
                }
                AccessLogFilter::ResponseFlag(flags)
            }
            other => {
                let n = f.take(which)?;
                d.error(
                    ErrorKind::Unsupported,
                    &sub_path,
                    n.line,
                    format!("unsupported access log filter `{other}`: sluice does not implement it"),
                );
                return None;
            }
        };
        f.finish(d);
        Some(filter)
    }
}
