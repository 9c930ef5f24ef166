use super::*;
use crate::decode::Decoder;
use crate::node::parse;

fn decode<T: Decode>(yaml: &str) -> (Option<T>, Decoder) {
    let n = parse(yaml).unwrap();
    let mut d = Decoder::new();
    let v = T::decode(&mut d, &n, "m");
    (v, d)
}

fn ok<T: Decode>(yaml: &str) -> T {
    let (v, d) = decode::<T>(yaml);
    assert!(d.errors.is_empty(), "{yaml}: {:?}", d.errors);
    v.unwrap()
}

fn err<T: Decode + std::fmt::Debug>(yaml: &str) -> String {
    let (_, d) = decode::<T>(yaml);
    assert!(!d.errors.is_empty(), "{yaml} should fail");
    d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn string_matcher_kinds() {
    let m: StringMatcher = ok("exact: Foo");
    assert!(m.matches(b"Foo") && !m.matches(b"foo") && !m.matches(b"Foox"));
    let m: StringMatcher = ok("{exact: Foo, ignore_case: true}");
    assert!(m.matches(b"fOO"));
    let m: StringMatcher = ok("{prefix: /Ab, ignoreCase: true}");
    assert!(m.matches(b"/abc") && !m.matches(b"/a"));
    let m: StringMatcher = ok("suffix: .js");
    assert!(m.matches(b"a.js") && !m.matches(b"a.JS"));
    let m: StringMatcher = ok("{contains: mid, ignore_case: true}");
    assert!(m.matches(b"xxMIDxx") && !m.matches(b"mi"));
    let m: StringMatcher = ok("safe_regex: {google_re2: {}, regex: 'a.c'}");
    assert!(m.matches(b"abc") && !m.matches(b"xabc") && !m.matches(b"abcx"));
    assert_eq!(m.kind_name(), "safe_regex");
}

#[test]
fn string_matcher_errors() {
    assert!(err::<StringMatcher>("{exact: a, prefix: b}").contains("set only one"));
    assert!(err::<StringMatcher>("prefix: ''").contains("must not be empty"));
    assert!(err::<StringMatcher>("{safe_regex: {regex: a}, ignore_case: true}").contains("ignore_case has no effect"));
    let e = err::<StringMatcher>("safe_regex: {regex: '(a'}");
    assert!(e.contains("m.safe_regex.regex") && e.contains("invalid regex"), "{e}");
    assert!(err::<StringMatcher>("{}").contains("needs one of"));
}

#[test]
fn header_matcher_defaults_and_specifiers() {
    let m: HeaderMatcher = ok("name: X-Foo");
    assert_eq!(m.name, "x-foo");
    assert_eq!(m.specifier, HeaderMatch::Present(true));
    assert!(!m.invert_match && !m.treat_missing_header_as_empty);
    assert!(m.matches(Some(b"")) && !m.matches(None));

    let m: HeaderMatcher = ok("{name: a, exact_match: v}");
    assert!(m.matches(Some(b"v")) && !m.matches(Some(b"w")) && !m.matches(None));
    // Deprecated exact_match with an empty value matches any present value.
    let m: HeaderMatcher = ok("{name: a, exact_match: ''}");
    assert!(m.matches(Some(b"anything")) && !m.matches(None));

    let m: HeaderMatcher = ok("{name: a, range_match: {start: -10, end: 10}}");
    assert!(m.matches(Some(b"-10")) && m.matches(Some(b" 9 ")) && !m.matches(Some(b"10")) && !m.matches(Some(b"x")));

    let m: HeaderMatcher = ok("{name: a, prefix_match: ab, invertMatch: true}");
    assert!(!m.matches(Some(b"abc")) && m.matches(Some(b"xbc")));
    // Missing header with invert_match on a value matcher: no match.
    assert!(!m.matches(None));

    let m: HeaderMatcher = ok("{name: a, safe_regex_match: {regex: '\\d+'}}");
    assert!(m.matches(Some(b"123")) && !m.matches(Some(b"12a")));
    let m: HeaderMatcher = ok("{name: a, string_match: {suffix: Z, ignore_case: true}}");
    assert!(m.matches(Some(b"xz")));
    assert_eq!(m.kind_name(), "string_match.suffix");
}

#[test]
fn header_matcher_presence_rules() {
    // header_utility.cc: a missing header matches only `present_match: false`, or
    // `present_match: true` with invert_match.
    let present: HeaderMatcher = ok("{name: a, present_match: true}");
    let absent: HeaderMatcher = ok("{name: a, present_match: false}");
    let inv_present: HeaderMatcher = ok("{name: a, present_match: true, invert_match: true}");
    assert!(!present.matches(None) && present.matches(Some(b"x")));
    assert!(absent.matches(None) && !absent.matches(Some(b"x")));
    assert!(inv_present.matches(None) && !inv_present.matches(Some(b"x")));
}

#[test]
fn treat_missing_header_as_empty() {
    let m: HeaderMatcher = ok("{name: a, string_match: {exact: ''}, treat_missing_header_as_empty: true}");
    assert!(m.matches(None));
    let m: HeaderMatcher =
        ok("{name: a, string_match: {prefix: x}, treat_missing_header_as_empty: true, invert_match: true}");
    assert!(m.matches(None));
}

#[test]
fn header_matcher_errors() {
    assert!(err::<HeaderMatcher>("{name: a, exact_match: x, present_match: true}").contains("set only one"));
    assert!(err::<HeaderMatcher>("exact_match: x").contains("m.name"));
    assert!(err::<HeaderMatcher>("{name: 'a b'}").contains("not a valid header name"));
    assert!(err::<HeaderMatcher>("{name: a, contains_match: ''}").contains("must not be empty"));
    assert!(err::<HeaderMatcher>("{name: a, range_match: {start: 5, end: 1}}").contains("below its start"));
    // Pseudo-headers are valid names.
    let m: HeaderMatcher = ok("{name: ':authority', exact_match: x}");
    assert_eq!(m.name, ":authority");
}

#[test]
fn query_parameter_matcher() {
    let m: QueryParameterMatcher = ok("name: debug");
    assert_eq!(m.specifier, QueryParameterMatch::Presence);
    assert!(m.matches(Some(b"")) && !m.matches(None));
    let m: QueryParameterMatcher = ok("{name: debug, present_match: false}");
    assert!(m.matches(None) && !m.matches(Some(b"1")));
    let m: QueryParameterMatcher = ok("{name: v, string_match: {exact: '1'}}");
    assert!(m.matches(Some(b"1")) && !m.matches(Some(b"2")) && !m.matches(None));
    assert!(
        err::<QueryParameterMatcher>("{name: v, string_match: {exact: '1'}, present_match: true}").contains("only one")
    );
    assert!(err::<QueryParameterMatcher>("{name: ''}").contains("1..=1024"));
}

#[test]
fn regex_rewrite_re2_semantics() {
    let r: RegexRewrite = ok("{pattern: {regex: '^/service/([^/]+)(/.*)$'}, substitution: '\\2/instance/\\1'}");
    assert_eq!(r.replace_all("/service/foo/v1/api"), "/v1/api/instance/foo");
    // All matches are replaced.
    let r = RegexRewrite::new("one", "two").unwrap();
    assert_eq!(r.replace_all("/xxx/one/yyy/one/zzz"), "/xxx/two/yyy/two/zzz");
    // `\\` is a literal backslash, `\0` the whole match.
    let r = RegexRewrite::new("b+", "[\\0\\\\]").unwrap();
    assert_eq!(r.replace_all("abbc"), "a[bb\\]c");
    // Empty matches: RE2 GlobalReplace inserts between characters.
    let r = RegexRewrite::new("x*", "-").unwrap();
    assert_eq!(r.replace_all("abc"), "-a-b-c-");
    assert!(RegexRewrite::new("(a)", "\\2").unwrap_err().contains("group \\2"));
    assert!(RegexRewrite::new("a", "\\n").unwrap_err().contains("invalid substitution"));
    let e = err::<RegexRewrite>("{pattern: {regex: '['}, substitution: x}");
    assert!(e.contains("invalid regex"), "{e}");
    let e = err::<RegexRewrite>("substitution: x");
    assert!(e.contains("m.pattern"), "{e}");
}

#[test]
fn full_regex_is_anchored() {
    let r = FullRegex::new("a|b").unwrap();
    assert!(r.is_full_match(b"a") && r.is_full_match(b"b") && !r.is_full_match(b"ab"));
    assert_eq!(r.pattern(), "a|b");
}
