//! Small shared messages from `envoy.config.core.v3` and `envoy.type.v3`.

use std::time::Duration;

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;

proto_enum! {
    /// `HeaderValueOption.HeaderAppendAction`.
    pub enum AppendAction {
        AppendIfExistsOrAdd = ("APPEND_IF_EXISTS_OR_ADD", 0),
        AddIfAbsent = ("ADD_IF_ABSENT", 1),
        OverwriteIfExistsOrAdd = ("OVERWRITE_IF_EXISTS_OR_ADD", 2),
        OverwriteIfExists = ("OVERWRITE_IF_EXISTS", 3),
    }
}

/// `core.v3.HeaderValueOption`: a header to add, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValueOption {
    /// Lower-cased header name.
    pub key: String,
    /// The value as written; may hold `%FORMATTER%` commands.
    pub value: String,
    pub append_action: AppendAction,
    pub keep_empty_value: bool,
}

impl Decode for HeaderValueOption {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let header = f.take("header");
        let header_path = f.field_path("header");
        let append: Option<bool> = f.opt(d, "append");
        let action: Option<AppendAction> = f.opt(d, "append_action");
        let keep_empty_value = f.or(d, "keep_empty_value", false);
        let line = f.line();
        f.finish(d);
        let Some(header) = header else {
            d.error(ErrorKind::Missing, &header_path, line, "required field is missing");
            return None;
        };
        let mut h = Fields::of(d, header, &header_path)?;
        let key: Option<String> = h.req(d, "key");
        let value: String = h.or(d, "value", String::new());
        h.unsupported(d, &["raw_value"]);
        h.finish(d);
        let key = key?;
        if key.is_empty() || !key.bytes().all(is_token_char) {
            d.invalid(header, &format!("{header_path}.key"), format!("`{key}` is not a valid header name"));
            return None;
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            d.invalid(header, &format!("{header_path}.value"), "header values may not hold CR, LF or NUL");
            return None;
        }
        // `append` (deprecated BoolValue, default true) maps onto append_action.
        let append_action = match (append, action) {
            (Some(_), Some(_)) => {
                d.invalid(node, path, "set only one of `append` and `append_action`");
                return None;
            }
            (Some(false), None) => AppendAction::OverwriteIfExistsOrAdd,
            (_, Some(a)) => a,
            (_, None) => AppendAction::AppendIfExistsOrAdd,
        };
        Some(HeaderValueOption { key: key.to_ascii_lowercase(), value, append_action, keep_empty_value })
    }
}

/// RFC 9110 token characters (header names).
pub fn is_token_char(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

proto_enum! {
    /// `type.v3.FractionalPercent.DenominatorType`.
    pub enum Denominator {
        Hundred = ("HUNDRED", 0),
        TenThousand = ("TEN_THOUSAND", 1),
        Million = ("MILLION", 2),
    }
}

impl Denominator {
    pub fn value(self) -> u32 {
        match self {
            Denominator::Hundred => 100,
            Denominator::TenThousand => 10_000,
            Denominator::Million => 1_000_000,
        }
    }
}

/// `type.v3.FractionalPercent`. Envoy caps the numerator at the denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FractionalPercent {
    pub numerator: u32,
    pub denominator: Denominator,
}

impl FractionalPercent {
    pub const NEVER: FractionalPercent = FractionalPercent { numerator: 0, denominator: Denominator::Hundred };
    pub const ALWAYS: FractionalPercent = FractionalPercent { numerator: 100, denominator: Denominator::Hundred };

    /// Whether a uniform random `r` (any u64) falls inside the fraction.
    pub fn hits(self, r: u64) -> bool {
        let den = self.denominator.value() as u64;
        (r % den) < (self.numerator as u64).min(den)
    }
}

impl Decode for FractionalPercent {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let numerator = f.or(d, "numerator", 0u32);
        let denominator = f.or(d, "denominator", Denominator::Hundred);
        f.finish(d);
        Some(FractionalPercent { numerator, denominator })
    }
}

/// `core.v3.RuntimeFractionalPercent`: `default_value` unless the runtime holds
/// `runtime_key` (an integer percent, or a fractional percent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFractionalPercent {
    pub default_value: FractionalPercent,
    /// Empty: no key, `default_value` is final.
    pub runtime_key: String,
}

impl RuntimeFractionalPercent {
    /// The fraction that is always the same (no runtime key).
    pub const fn fixed(default_value: FractionalPercent) -> RuntimeFractionalPercent {
        RuntimeFractionalPercent { default_value, runtime_key: String::new() }
    }
}

impl Decode for RuntimeFractionalPercent {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let v: Option<FractionalPercent> = f.req(d, "default_value");
        let runtime_key: String = f.or(d, "runtime_key", String::new());
        f.finish(d);
        v.map(|default_value| RuntimeFractionalPercent { default_value, runtime_key })
    }
}

/// `type.v3.Percent` (`{value: 50.0}`), 0..=100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl Decode for Percent {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let v: f64 = f.or(d, "value", 0.0);
        f.finish(d);
        if !(0.0..=100.0).contains(&v) {
            d.invalid(node, path, format!("percent {v} is not in 0..=100"));
            return None;
        }
        Some(Percent(v))
    }
}

/// `type.v3.Int64Range`: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int64Range {
    pub start: i64,
    pub end: i64,
}

impl Int64Range {
    pub fn contains(&self, v: i64) -> bool {
        self.start <= v && v < self.end
    }
}

impl Decode for Int64Range {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let start = f.or(d, "start", 0i64);
        let end = f.or(d, "end", 0i64);
        f.finish(d);
        if end < start {
            d.invalid(node, path, "range end is below its start");
            return None;
        }
        Some(Int64Range { start, end })
    }
}

/// A `Duration` where `0s` means "disabled" (Envoy's convention for many timeouts).
pub fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}
