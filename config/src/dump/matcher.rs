//! Dump of Envoy's value matchers: `StringMatcher`, `RegexMatcher`,
//! `RegexMatchAndSubstitute`, `HeaderMatcher`, `QueryParameterMatcher`, `MetadataMatcher` and `ValueMatcher`.
//!
//! Header matchers are written in their modern form. The deprecated specifiers map onto
//! the `string_match` or `present_match` with exactly the behaviour of the original,
//! including Envoy's quirk that an empty `exact_match` matches any present header:
//! that one becomes `present_match: true` (and, when inverted, also
//! `treat_missing_header_as_empty: true`, since an inverted empty `exact_match` never
//! matches, present header or not).

use super::{list, Dump, Json};
use crate::matcher::{
    DoubleMatcher, FullRegex, HeaderMatch, HeaderMatcher, MetadataMatcher, QueryParameterMatch, QueryParameterMatcher,
    RegexRewrite, StringMatcher, ValueMatcher,
};

/// `type.matcher.v3.RegexMatcher`.
impl Dump for FullRegex {
    fn dump(&self) -> Json {
        Json::obj().with("regex", self.pattern())
    }
}

/// `type.matcher.v3.RegexMatchAndSubstitute`.
impl Dump for RegexRewrite {
    fn dump(&self) -> Json {
        Json::obj().with("pattern", Json::obj().with("regex", self.pattern())).with("substitution", self.substitution())
    }
}

impl Dump for StringMatcher {
    fn dump(&self) -> Json {
        let (kind, value, ignore_case) = match self {
            StringMatcher::Exact { value, ignore_case } => ("exact", value, *ignore_case),
            StringMatcher::Prefix { value, ignore_case } => ("prefix", value, *ignore_case),
            StringMatcher::Suffix { value, ignore_case } => ("suffix", value, *ignore_case),
            StringMatcher::Contains { value, ignore_case } => ("contains", value, *ignore_case),
            // `ignore_case` has no effect on (and is rejected with) a regex.
            StringMatcher::SafeRegex(r) => return Json::obj().with("safe_regex", r.dump()),
        };
        Json::obj().with(kind, value).with("ignore_case", ignore_case)
    }
}

/// A case-sensitive `string_match`, the modern form of the deprecated specifiers.
fn case_sensitive(kind: &str, value: &str) -> Json {
    Json::obj().with(kind, value).with("ignore_case", false)
}

impl Dump for HeaderMatcher {
    fn dump(&self) -> Json {
        let mut treat_missing_header_as_empty = self.treat_missing_header_as_empty;
        let (field, value) = match &self.specifier {
            HeaderMatch::ExactMatch(v) if v.is_empty() => {
                if self.invert_match {
                    treat_missing_header_as_empty = true;
                }
                ("present_match", Json::Bool(true))
            }
            HeaderMatch::ExactMatch(v) => ("string_match", case_sensitive("exact", v)),
            HeaderMatch::PrefixMatch(v) => ("string_match", case_sensitive("prefix", v)),
            HeaderMatch::SuffixMatch(v) => ("string_match", case_sensitive("suffix", v)),
            HeaderMatch::ContainsMatch(v) => ("string_match", case_sensitive("contains", v)),
            HeaderMatch::SafeRegexMatch(r) => ("string_match", Json::obj().with("safe_regex", r.dump())),
            HeaderMatch::Range(r) => ("range_match", r.dump()),
            HeaderMatch::Present(p) => ("present_match", Json::Bool(*p)),
            HeaderMatch::String(m) => ("string_match", m.dump()),
        };
        Json::obj()
            .with("name", &self.name)
            .with(field, value)
            .with("invert_match", self.invert_match)
            .with("treat_missing_header_as_empty", treat_missing_header_as_empty)
    }
}

impl Dump for QueryParameterMatcher {
    fn dump(&self) -> Json {
        let j = Json::obj().with("name", &self.name);
        match &self.specifier {
            QueryParameterMatch::String(m) => j.with("string_match", m.dump()),
            QueryParameterMatch::Present(p) => j.with("present_match", *p),
            // Neither specifier: the parameter must be present.
            QueryParameterMatch::Presence => j.with("present_match", true),
        }
    }
}

impl Dump for MetadataMatcher {
    fn dump(&self) -> Json {
        let path: Vec<Json> = self.path.iter().map(|k| Json::obj().with("key", k)).collect();
        Json::obj()
            .with("filter", &self.filter)
            .with("path", Json::Arr(path))
            .with("value", self.value.dump())
            .with("invert", self.invert)
    }
}

impl Dump for ValueMatcher {
    fn dump(&self) -> Json {
        let num = |n: f64| Json::Num(format!("{n}"));
        match self {
            ValueMatcher::Null => Json::obj().with("null_match", Json::obj()),
            ValueMatcher::Double(DoubleMatcher::Exact(e)) => {
                Json::obj().with("double_match", Json::obj().with("exact", num(*e)))
            }
            ValueMatcher::Double(DoubleMatcher::Range { start, end }) => Json::obj().with(
                "double_match",
                Json::obj().with("range", Json::obj().with("start", num(*start)).with("end", num(*end))),
            ),
            ValueMatcher::String(m) => Json::obj().with("string_match", m.dump()),
            ValueMatcher::Bool(b) => Json::obj().with("bool_match", *b),
            ValueMatcher::Present(p) => Json::obj().with("present_match", *p),
            ValueMatcher::ListOneOf(m) => Json::obj().with("list_match", Json::obj().with("one_of", m.dump())),
            ValueMatcher::Or(ms) => Json::obj().with("or_match", Json::obj().with("value_matchers", list(ms))),
        }
    }
}
