//! One runtime value, parsed as Envoy's `SnapshotImpl::createEntry` parses it.
//!
//! Every value keeps its raw text (what `GET /runtime` shows and `get` returns) and the
//! typed readings that text allows, decided once when the layer is loaded, never on the
//! request path (`resolveEntryType` in Envoy's runtime_impl.h):
//! 1. the text, trimmed of ASCII whitespace, is an unsigned integer: its boolean reading
//!    is "not zero" (and parsing goes on); `true` / `false` (any case) are booleans and
//!    nothing else;
//! 2. the text is a double in `0..=u64::MAX`: it is also an integer, floored (`3.9`
//!    reads 3); a negative double is a double only;
//! 3. otherwise the text may be a `type.v3.FractionalPercent` in YAML
//!    (`{numerator: 5, denominator: TEN_THOUSAND}`), strictly validated.

use crate::core::FractionalPercent;
use crate::decode::{Decode, Decoder};

/// A runtime value with its typed readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub raw: String,
    pub bool_value: Option<bool>,
    pub double_value: Option<f64>,
    pub uint_value: Option<u64>,
    pub fractional_percent: Option<FractionalPercent>,
}

impl Entry {
    /// Parse a value given as text (disk layer, admin layer, a static-layer string).
    pub fn parse(raw: &str) -> Entry {
        let mut e = Entry {
            raw: raw.to_string(),
            bool_value: None,
            double_value: None,
            uint_value: None,
            fractional_percent: None,
        };
        let stripped = raw.trim_ascii();
        if let Ok(n) = stripped.parse::<u64>() {
            // An integer: a boolean too, and parsing goes on.
            e.bool_value = Some(n != 0);
        } else if stripped.eq_ignore_ascii_case("true") {
            e.bool_value = Some(true);
            return e;
        } else if stripped.eq_ignore_ascii_case("false") {
            e.bool_value = Some(false);
            return e;
        }
        if let Some(d) = parse_double(stripped) {
            e.double_value = Some(d);
            if d >= 0.0 && d <= u64::MAX as f64 {
                e.uint_value = Some(d as u64);
                return e;
            }
        }
        e.fractional_percent = parse_fractional_percent(raw);
        e
    }

    /// A static-layer struct with `numerator` / `denominator` (or an empty one): a
    /// fractional percent, whose raw text is its flow-style YAML.
    pub fn fractional(p: Option<FractionalPercent>, raw: String) -> Entry {
        Entry { raw, bool_value: None, double_value: None, uint_value: None, fractional_percent: p }
    }
}

/// absl's `SimpleAtod`: a decimal or exponent form, `inf`, `nan`; nothing else.
fn parse_double(s: &str) -> Option<f64> {
    if s.is_empty() || s.bytes().any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// The text as a YAML `FractionalPercent`, strictly (unknown fields or a bad
/// denominator: none).
fn parse_fractional_percent(raw: &str) -> Option<FractionalPercent> {
    let node = crate::node::parse(raw).ok()?;
    if !matches!(node.value, crate::node::Value::Map(_)) {
        return None;
    }
    let mut d = Decoder::new();
    let p = FractionalPercent::decode(&mut d, &node, "")?;
    d.errors.is_empty().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Denominator;

    #[test]
    fn integers_are_booleans_doubles_and_integers() {
        let e = Entry::parse("42");
        assert_eq!((e.bool_value, e.double_value, e.uint_value), (Some(true), Some(42.0), Some(42)));
        let e = Entry::parse(" 0 \n");
        assert_eq!((e.bool_value, e.uint_value), (Some(false), Some(0)));
        // A double floors to an integer and is no boolean.
        let e = Entry::parse("3.9");
        assert_eq!((e.bool_value, e.double_value, e.uint_value), (None, Some(3.9), Some(3)));
        // A negative double is a double only.
        let e = Entry::parse("-2.5");
        assert_eq!((e.double_value, e.uint_value, e.fractional_percent), (Some(-2.5), None, None));
    }

    #[test]
    fn booleans_are_only_booleans() {
        for (text, v) in [("true", true), ("FALSE", false), (" True ", true)] {
            let e = Entry::parse(text);
            assert_eq!((e.bool_value, e.uint_value, e.double_value), (Some(v), None, None), "{text}");
        }
        let e = Entry::parse("yes");
        assert_eq!((e.bool_value, e.uint_value, e.fractional_percent), (None, None, None));
        assert_eq!(e.raw, "yes");
    }

    #[test]
    fn fractional_percents_from_yaml() {
        let e = Entry::parse("{numerator: 5, denominator: TEN_THOUSAND}");
        assert_eq!(
            e.fractional_percent,
            Some(FractionalPercent { numerator: 5, denominator: Denominator::TenThousand })
        );
        assert_eq!(e.uint_value, None);
        let e = Entry::parse("numerator: 7\n");
        assert_eq!(e.fractional_percent, Some(FractionalPercent { numerator: 7, denominator: Denominator::Hundred }));
        // Strict: an unknown field or a bad denominator is no fractional percent.
        assert_eq!(Entry::parse("{numerator: 5, bogus: 1}").fractional_percent, None);
        assert_eq!(Entry::parse("{numerator: 5, denominator: HALF}").fractional_percent, None);
        assert_eq!(Entry::parse("5/100").fractional_percent, None);
    }
}
