//! `type.matcher.v3.MetadataMatcher` and `ValueMatcher` (Envoy's
//! `common/common/matchers.cc`): does the value at `filter` / `path` in a stream's
//! dynamic metadata match? A missing value ("kind not set") matches only an inverted
//! matcher, since no value matcher accepts it.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::metadata::{Metadata, Value};
use crate::node::Node;

use super::StringMatcher;

/// `type.matcher.v3.MetadataMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataMatcher {
    /// The namespace (filter name).
    pub filter: String,
    /// `path[].key`, at least one.
    pub path: Vec<String>,
    pub value: ValueMatcher,
    pub invert: bool,
}

impl MetadataMatcher {
    /// `MetadataMatcher::match`: the value matcher on the looked-up value, XOR `invert`.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        self.value.matches(metadata.value(&self.filter, &self.path)) != self.invert
    }
}

impl Decode for MetadataMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let filter: Option<String> = f.req(d, "filter");
        let segments: Vec<PathSegment> = f.list(d, "path");
        let value: Option<ValueMatcher> = f.req(d, "value");
        let invert = f.or(d, "invert", false);
        f.finish(d);
        let filter = filter?;
        if filter.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.filter"), line, "must not be empty");
            return None;
        }
        if segments.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.path"), line, "needs at least one segment");
            return None;
        }
        Some(MetadataMatcher { filter, path: segments.into_iter().map(|s| s.0).collect(), value: value?, invert })
    }
}

/// `MetadataMatcher.PathSegment` (`key`, non-empty).
struct PathSegment(String);

impl Decode for PathSegment {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let key: Option<String> = f.req(d, "key");
        f.finish(d);
        let key = key?;
        if key.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.key"), line, "must not be empty");
            return None;
        }
        Some(PathSegment(key))
    }
}

/// `type.matcher.v3.DoubleMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub enum DoubleMatcher {
    /// `range`: `[start, end)`.
    Range {
        start: f64,
        end: f64,
    },
    Exact(f64),
}

/// `type.matcher.v3.ValueMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueMatcher {
    /// `null_match`: the value is `null`.
    Null,
    Double(DoubleMatcher),
    String(StringMatcher),
    Bool(bool),
    /// `present_match`: `true` matches any value; `false` matches nothing.
    Present(bool),
    /// `list_match.one_of`: a list with one element that matches.
    ListOneOf(Box<ValueMatcher>),
    /// `or_match.value_matchers`: any matches.
    Or(Vec<ValueMatcher>),
}

impl ValueMatcher {
    /// Whether `value` (`None`: no value) matches.
    pub fn matches(&self, value: Option<&Value>) -> bool {
        let Some(v) = value else {
            return false;
        };
        match (self, v) {
            (ValueMatcher::Null, Value::Null) => true,
            (ValueMatcher::Double(DoubleMatcher::Range { start, end }), Value::Number(n)) => start <= n && n < end,
            (ValueMatcher::Double(DoubleMatcher::Exact(e)), Value::Number(n)) => e == n,
            (ValueMatcher::String(m), Value::String(s)) => m.matches(s.as_bytes()),
            (ValueMatcher::Bool(b), Value::Bool(x)) => b == x,
            (ValueMatcher::Present(p), _) => *p,
            (ValueMatcher::ListOneOf(m), Value::List(items)) => items.iter().any(|i| m.matches(Some(i))),
            (ValueMatcher::Or(ms), v) => ms.iter().any(|m| m.matches(Some(v))),
            _ => false,
        }
    }
}

impl Decode for ValueMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let mut found: Vec<Option<ValueMatcher>> = Vec::new();
        if let Some(n) = f.take("null_match") {
            let g = Fields::of(d, n, &f.field_path("null_match"));
            found.push(g.map(|g| g.finish(d)).map(|_| ValueMatcher::Null));
        }
        if f.has("double_match") {
            found.push(f.opt::<DoubleMatcherNode>(d, "double_match").map(|m| ValueMatcher::Double(m.0)));
        }
        if f.has("string_match") {
            found.push(f.opt(d, "string_match").map(ValueMatcher::String));
        }
        if f.has("bool_match") {
            found.push(f.opt(d, "bool_match").map(ValueMatcher::Bool));
        }
        if f.has("present_match") {
            found.push(f.opt(d, "present_match").map(ValueMatcher::Present));
        }
        if f.has("list_match") {
            found.push(f.opt::<ListMatcher>(d, "list_match").map(|l| ValueMatcher::ListOneOf(Box::new(l.0))));
        }
        if f.has("or_match") {
            found.push(f.opt::<OrMatcher>(d, "or_match").map(|o| ValueMatcher::Or(o.0)));
        }
        f.finish(d);
        match found.len() {
            1 => found.pop()?,
            0 => {
                d.error(
                    ErrorKind::Missing,
                    path,
                    line,
                    "a value matcher needs one of `null_match`, `double_match`, `string_match`, `bool_match`, `present_match`, `list_match`, `or_match`",
                );
                None
            }
            _ => {
                d.error(ErrorKind::Invalid, path, line, "set only one value matcher");
                None
            }
        }
    }
}

struct DoubleMatcherNode(DoubleMatcher);

impl Decode for DoubleMatcherNode {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let range: Option<DoubleRange> = f.opt(d, "range");
        let has_range = f.has("range");
        let exact: Option<f64> = f.opt(d, "exact");
        f.finish(d);
        match (has_range, exact) {
            (true, None) => range.map(|r| DoubleMatcherNode(DoubleMatcher::Range { start: r.start, end: r.end })),
            (false, Some(e)) => Some(DoubleMatcherNode(DoubleMatcher::Exact(e))),
            _ => {
                d.error(ErrorKind::Invalid, path, line, "set exactly one of `range` and `exact`");
                None
            }
        }
    }
}

/// `type.v3.DoubleRange`.
struct DoubleRange {
    start: f64,
    end: f64,
}

impl Decode for DoubleRange {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let start = f.or(d, "start", 0.0);
        let end = f.or(d, "end", 0.0);
        f.finish(d);
        Some(DoubleRange { start, end })
    }
}

struct ListMatcher(ValueMatcher);

impl Decode for ListMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let one_of: Option<ValueMatcher> = f.req(d, "one_of");
        f.finish(d);
        one_of.map(ListMatcher)
    }
}

struct OrMatcher(Vec<ValueMatcher>);

impl Decode for OrMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let ms: Vec<ValueMatcher> = f.list(d, "value_matchers");
        f.finish(d);
        if ms.len() < 2 {
            d.error(ErrorKind::Invalid, &format!("{path}.value_matchers"), line, "needs at least two matchers");
            return None;
        }
        Some(OrMatcher(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Struct;

    fn matcher(yaml: &str) -> MetadataMatcher {
        let node = crate::node::parse(yaml).unwrap();
        let mut d = Decoder::new();
        let m = MetadataMatcher::decode(&mut d, &node, "m");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        m.unwrap()
    }

    fn md(ns: &str, key: &str, v: Value) -> Metadata {
        let mut m = Metadata::default();
        m.filter_metadata.insert(ns.into(), Struct::from([(key.to_string(), v)]));
        m
    }

    #[test]
    fn value_kinds() {
        let s = matcher("{filter: f, path: [{key: k}], value: {string_match: {prefix: ab}}}");
        assert!(s.matches(&md("f", "k", Value::String("abc".into()))));
        assert!(!s.matches(&md("f", "k", Value::Number(1.0))));
        assert!(!s.matches(&Metadata::default()));
        let r = matcher("{filter: f, path: [{key: k}], value: {double_match: {range: {start: 1, end: 2}}}}");
        assert!(r.matches(&md("f", "k", Value::Number(1.0))));
        assert!(!r.matches(&md("f", "k", Value::Number(2.0))));
        let b = matcher("{filter: f, path: [{key: k}], value: {bool_match: true}}");
        assert!(b.matches(&md("f", "k", Value::Bool(true))));
        let p = matcher("{filter: f, path: [{key: k}], value: {present_match: true}, invert: true}");
        assert!(!p.matches(&md("f", "k", Value::Null)));
        assert!(p.matches(&Metadata::default()));
        let n = matcher("{filter: f, path: [{key: k}], value: {null_match: {}}}");
        assert!(n.matches(&md("f", "k", Value::Null)));
        let l = matcher("{filter: f, path: [{key: k}], value: {list_match: {one_of: {bool_match: false}}}}");
        assert!(l.matches(&md("f", "k", Value::List(vec![Value::Bool(true), Value::Bool(false)]))));
        assert!(!l.matches(&md("f", "k", Value::Bool(false))));
    }

    #[test]
    fn bad_matchers_are_errors() {
        for yaml in [
            "{filter: f, path: [], value: {bool_match: true}}",
            "{filter: f, path: [{key: k}], value: {}}",
            "{filter: f, path: [{key: k}], value: {bool_match: true, present_match: true}}",
            "{filter: '', path: [{key: k}], value: {bool_match: true}}",
        ] {
            let node = crate::node::parse(yaml).unwrap();
            let mut d = Decoder::new();
            let _ = MetadataMatcher::decode(&mut d, &node, "m");
            assert!(!d.errors.is_empty(), "{yaml}");
        }
    }
}
