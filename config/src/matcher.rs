//! Envoy's value matchers: `type.matcher.v3.StringMatcher`, `RegexMatcher`,
//! `RegexMatchAndSubstitute`, and the route matchers built on them,
//! `config.route.v3.HeaderMatcher` and `QueryParameterMatcher`.
//!
//! Every regex is compiled here, at load, so a bad pattern is a config error naming its
//! path and line, and the proxy never compiles anything per request. RE2 (Envoy's
//! engine) and Rust's `regex` share the syntax Envoy configs use; a `safe_regex` always
//! matches the WHOLE value (RE2 `FullMatch`), which we get by anchoring the pattern.
//! Header names are lower-cased at load, as Envoy's `LowerCaseString` does.

use crate::core::Int64Range;
use crate::decode::{scalar, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

mod metadata;
mod regex;

pub use self::metadata::{DoubleMatcher, MetadataMatcher, ValueMatcher};
pub use self::regex::{FullRegex, RegexRewrite, RewritePiece};

/// `type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub enum StringMatcher {
    /// `exact`; with `ignore_case` the pattern is stored lower-cased.
    Exact {
        value: String,
        ignore_case: bool,
    },
    Prefix {
        value: String,
        ignore_case: bool,
    },
    Suffix {
        value: String,
        ignore_case: bool,
    },
    Contains {
        value: String,
        ignore_case: bool,
    },
    SafeRegex(FullRegex),
}

impl StringMatcher {
    /// Whether `value` matches (Envoy's `StringMatcherImpl::match`).
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            StringMatcher::Exact { value: v, ignore_case } => eq(value, v.as_bytes(), *ignore_case),
            StringMatcher::Prefix { value: v, ignore_case } => {
                value.len() >= v.len() && eq(&value[..v.len()], v.as_bytes(), *ignore_case)
            }
            StringMatcher::Suffix { value: v, ignore_case } => {
                value.len() >= v.len() && eq(&value[value.len() - v.len()..], v.as_bytes(), *ignore_case)
            }
            StringMatcher::Contains { value: v, ignore_case } => contains(value, v.as_bytes(), *ignore_case),
            StringMatcher::SafeRegex(r) => r.is_full_match(value),
        }
    }

    /// The oneof name Envoy's router_check_tool prints (`exact`, `prefix`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            StringMatcher::Exact { .. } => "exact",
            StringMatcher::Prefix { .. } => "prefix",
            StringMatcher::Suffix { .. } => "suffix",
            StringMatcher::Contains { .. } => "contains",
            StringMatcher::SafeRegex(_) => "safe_regex",
        }
    }
}

fn eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

fn contains(hay: &[u8], needle: &[u8], ignore_case: bool) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len()).any(|w| eq(w, needle, ignore_case))
}

impl Decode for StringMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let exact: Option<String> = f.opt(d, "exact");
        let prefix: Option<String> = f.opt(d, "prefix");
        let suffix: Option<String> = f.opt(d, "suffix");
        let contains: Option<String> = f.opt(d, "contains");
        let regex: Option<FullRegex> = f.opt(d, "safe_regex");
        let has_regex = f.has("safe_regex");
        let ignore_case = f.or(d, "ignore_case", false);
        f.unsupported(d, &["custom"]);
        let line = f.line();
        f.finish(d);
        let set = [exact.is_some(), prefix.is_some(), suffix.is_some(), contains.is_some(), has_regex]
            .iter()
            .filter(|x| **x)
            .count();
        if set > 1 {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "set only one of `exact`, `prefix`, `suffix`, `contains`, `safe_regex`",
            );
            return None;
        }
        for (name, v) in [("prefix", &prefix), ("suffix", &suffix), ("contains", &contains)] {
            if v.as_deref() == Some("") {
                d.error(ErrorKind::Invalid, &format!("{path}.{name}"), line, "must not be empty");
                return None;
            }
        }
        // StringMatcherImpl: "ignore_case has no effect for safe_regex."
        if has_regex && ignore_case {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.ignore_case"),
                line,
                "ignore_case has no effect for safe_regex",
            );
            return None;
        }
        let fold = |s: String| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s
            }
        };
        if let Some(v) = exact {
            return Some(StringMatcher::Exact { value: fold(v), ignore_case });
        }
        if let Some(v) = prefix {
            return Some(StringMatcher::Prefix { value: fold(v), ignore_case });
        }
        if let Some(v) = suffix {
            return Some(StringMatcher::Suffix { value: fold(v), ignore_case });
        }
        if let Some(v) = contains {
            return Some(StringMatcher::Contains { value: fold(v), ignore_case });
        }
        if has_regex {
            return regex.map(StringMatcher::SafeRegex);
        }
        d.error(
            ErrorKind::Missing,
            path,
            line,
            "a string matcher needs one of `exact`, `prefix`, `suffix`, `contains`, `safe_regex`",
        );
        None
    }
}

/// How a [`HeaderMatcher`] tests the value (the `header_match_specifier` oneof).
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderMatch {
    /// Deprecated `exact_match`; an empty value matches any present header.
    ExactMatch(String),
    /// Deprecated `safe_regex_match`.
    SafeRegexMatch(FullRegex),
    /// `range_match`: the value parsed as an integer, in `[start, end)`.
    Range(Int64Range),
    /// `present_match` (also the default when no specifier is set: `Present(true)`).
    Present(bool),
    /// Deprecated `prefix_match` / `suffix_match` / `contains_match`.
    PrefixMatch(String),
    SuffixMatch(String),
    ContainsMatch(String),
    /// `string_match`.
    String(StringMatcher),
}

/// `config.route.v3.HeaderMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lower-cased; pseudo-headers (`:authority`, `:path`, `:method`, `:scheme`,
    /// `:status`) are addressed by their HTTP/2 names, as in Envoy.
    pub name: String,
    pub specifier: HeaderMatch,
    pub invert_match: bool,
    pub treat_missing_header_as_empty: bool,
    pub line: u32,
}

impl HeaderMatcher {
    /// Envoy's `HeaderUtility::matchHeaders` for one matcher, given the header's value
    /// (every value of a repeated header joined with `,`), or `None` when absent.
    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        let value = match value {
            Some(v) => v,
            None if self.treat_missing_header_as_empty => b"",
            None => {
                let present = matches!(self.specifier, HeaderMatch::Present(true));
                let absent = matches!(self.specifier, HeaderMatch::Present(false));
                return if self.invert_match { present } else { absent };
            }
        };
        let hit = match &self.specifier {
            HeaderMatch::ExactMatch(v) => v.is_empty() || value == v.as_bytes(),
            HeaderMatch::SafeRegexMatch(r) => r.is_full_match(value),
            HeaderMatch::Range(r) => parse_i64(value).is_some_and(|n| r.contains(n)),
            HeaderMatch::Present(p) => *p,
            HeaderMatch::PrefixMatch(p) => value.starts_with(p.as_bytes()),
            HeaderMatch::SuffixMatch(s) => value.ends_with(s.as_bytes()),
            HeaderMatch::ContainsMatch(c) => contains(value, c.as_bytes(), false),
            HeaderMatch::String(m) => m.matches(value),
        };
        hit != self.invert_match
    }

    /// The oneof name Envoy's router_check_tool prints for a failed match
    /// (`exact_match`, `string_match.prefix`, `present_match`, ...).
    pub fn kind_name(&self) -> String {
        match &self.specifier {
            HeaderMatch::ExactMatch(_) => "exact_match".into(),
            HeaderMatch::SafeRegexMatch(_) => "safe_regex_match".into(),
            HeaderMatch::Range(_) => "range_match".into(),
            HeaderMatch::Present(_) => "present_match".into(),
            HeaderMatch::PrefixMatch(_) => "prefix_match".into(),
            HeaderMatch::SuffixMatch(_) => "suffix_match".into(),
            HeaderMatch::ContainsMatch(_) => "contains_match".into(),
            HeaderMatch::String(m) => format!("string_match.{}", m.kind_name()),
        }
    }
}

/// `absl::SimpleAtoi` for int64: optional surrounding ASCII whitespace and sign.
fn parse_i64(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.trim_matches(|c: char| c.is_ascii_whitespace());
    s.parse::<i64>().ok()
}

/// RFC 9110 token characters, or a `:`-prefixed pseudo-header name.
pub fn is_header_name(name: &str) -> bool {
    let body = name.strip_prefix(':').unwrap_or(name);
    !body.is_empty() && body.bytes().all(crate::core::is_token_char)
}

impl Decode for HeaderMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name_path = f.field_path("name");
        let (name, name_line) = match f.take("name") {
            Some(n) => (String::decode(d, n, &name_path), n.line),
            None => {
                d.error(ErrorKind::Missing, &name_path, line, "required field is missing");
                (None, line)
            }
        };
        let mut specs: Vec<(&'static str, Option<HeaderMatch>)> = Vec::new();
        if let Some(v) = f.opt::<String>(d, "exact_match") {
            specs.push(("exact_match", Some(HeaderMatch::ExactMatch(v))));
        }
        if f.has("safe_regex_match") {
            let r: Option<FullRegex> = f.opt(d, "safe_regex_match");
            specs.push(("safe_regex_match", r.map(HeaderMatch::SafeRegexMatch)));
        }
        if f.has("range_match") {
            let r: Option<Int64Range> = f.opt(d, "range_match");
            specs.push(("range_match", r.map(HeaderMatch::Range)));
        }
        if let Some(v) = f.opt::<bool>(d, "present_match") {
            specs.push(("present_match", Some(HeaderMatch::Present(v))));
        }
        for (field, make) in [
            ("prefix_match", HeaderMatch::PrefixMatch as fn(String) -> HeaderMatch),
            ("suffix_match", HeaderMatch::SuffixMatch),
            ("contains_match", HeaderMatch::ContainsMatch),
        ] {
            if let Some(v) = f.opt::<String>(d, field) {
                if v.is_empty() {
                    d.error(ErrorKind::Invalid, &f.field_path(field), line, "must not be empty");
                    specs.push((field, None));
                } else {
                    specs.push((field, Some(make(v))));
                }
            }
        }
        if f.has("string_match") {
            let m: Option<StringMatcher> = f.opt(d, "string_match");
            specs.push(("string_match", m.map(HeaderMatch::String)));
        }
        let invert_match = f.or(d, "invert_match", false);
        let treat_missing_header_as_empty = f.or(d, "treat_missing_header_as_empty", false);
        f.finish(d);
        if specs.len() > 1 {
            let names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
            d.error(ErrorKind::Invalid, path, line, format!("set only one of {}", names.join(", ")));
            return None;
        }
        let specifier = match specs.pop() {
            Some((_, s)) => s?,
            // No specifier: a presence check (HeaderData's default).
            None => HeaderMatch::Present(true),
        };
        let name = name?;
        if !is_header_name(&name) {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.name"),
                name_line,
                format!("`{name}` is not a valid header name"),
            );
            return None;
        }
        Some(HeaderMatcher {
            name: name.to_ascii_lowercase(),
            specifier,
            invert_match,
            treat_missing_header_as_empty,
            line,
        })
    }
}

/// `config.route.v3.QueryParameterMatcher`. Only the first value of a repeated key is
/// considered, and keys and values are compared as sent (not percent-decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParameterMatcher {
    pub name: String,
    pub specifier: QueryParameterMatch,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryParameterMatch {
    /// `string_match`
    String(StringMatcher),
    /// `present_match`: matches when presence equals the flag.
    Present(bool),
    /// Neither set: the parameter must be present.
    Presence,
}

impl QueryParameterMatcher {
    /// Envoy's `QueryParameterMatcher::matches` given the first value of the key.
    pub fn matches(&self, first_value: Option<&[u8]>) -> bool {
        match (&self.specifier, first_value) {
            (QueryParameterMatch::Present(p), v) => v.is_some() == *p,
            (_, None) => false,
            (QueryParameterMatch::Presence, Some(_)) => true,
            (QueryParameterMatch::String(m), Some(v)) => m.matches(v),
        }
    }
}

impl Decode for QueryParameterMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name: Option<String> = f.req(d, "name");
        let has_string = f.has("string_match");
        let string: Option<StringMatcher> = f.opt(d, "string_match");
        let present: Option<bool> = f.opt(d, "present_match");
        let line = f.line();
        f.finish(d);
        let name = name?;
        if name.is_empty() || name.len() > 1024 {
            d.error(ErrorKind::Invalid, &format!("{path}.name"), line, "length must be 1..=1024");
            return None;
        }
        let specifier = match (has_string, present) {
            (true, Some(_)) => {
                d.error(ErrorKind::Invalid, path, line, "set only one of `string_match` and `present_match`");
                return None;
            }
            (true, None) => QueryParameterMatch::String(string?),
            (false, Some(p)) => QueryParameterMatch::Present(p),
            (false, None) => QueryParameterMatch::Presence,
        };
        Some(QueryParameterMatcher { name, specifier })
    }
}

/// Decode a plain string field that must be a valid header name; lower-cased.
pub fn decode_header_name(d: &mut Decoder, node: &Node, path: &str) -> Option<String> {
    let s = scalar(d, node, path, "a header name")?;
    if !is_header_name(s) {
        d.invalid(node, path, format!("`{s}` is not a valid header name"));
        return None;
    }
    Some(s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
