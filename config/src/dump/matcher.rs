//! Dump of Envoy's value matchers: `StringMatcher`, `RegexMatcher`,
//! `RegexMatchAndSubstitute`, `HeaderMatcher` and `QueryParameterMatcher`.
//!
//! Header matchers are written in their modern form. The deprecated specifiers map onto
//! the `string_match` or `present_match` with exactly the behaviour of the original,
//! including Envoy's quirk that an empty `exact_match` matches any present header:
//! that one becomes `present_match: true` (and, when inverted, also
//! `treat_missing_header_as_empty: true`, since an inverted empty `exact_match` never
//! matches, present header or not).

use super::{Dump, Json};
use crate::matcher::{
    FullRegex, HeaderMatch, HeaderMatcher, QueryParameterMatch, QueryParameterMatcher, RegexRewrite, StringMatcher,
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
