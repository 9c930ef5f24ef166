//! route-check output: the console report (as Envoy's router_check_tool prints it, plus
//! a summary) and the `-o` file, a `ValidationResult` as JSON:
//! `{"test_results":[{"test_name":..,"test_passed":..,"failure":{..}}]}`.

use std::io::{self, Write};

use sluice_config::matcher::{HeaderMatch, HeaderMatcher, StringMatcher};

use super::check::{Failure, HeaderMatchFailure, TestResult};

/// Console options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    pub details: bool,
    pub only_show_failures: bool,
}

/// Print the per-test lines: every failing test (its name on stderr, then its failure
/// lines); with `--details` also the names of passing tests (stdout), unless
/// `--only-show-failures`.
pub fn print_tests(results: &[TestResult], opts: Report, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<()> {
    for r in results {
        if r.passed {
            if opts.details && !opts.only_show_failures {
                writeln!(out, "{}", r.test_name)?;
            }
        } else {
            writeln!(err, "{}", r.test_name)?;
            for m in &r.messages {
                writeln!(err, "{m}")?;
            }
        }
    }
    Ok(())
}

/// The summary line.
pub fn summary(results: &[TestResult]) -> String {
    let passed = results.iter().filter(|r| r.passed).count();
    let failed = results.len() - passed;
    format!("{} tests: {passed} passed, {failed} failed", results.len())
}

/// A percentage printed like C++'s default `ostream << double` (6 significant digits).
pub fn percent(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = 6 - (v.abs().log10().floor() as i32 + 1);
    let s = format!("{:.*}", digits.max(0) as usize, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn json_str(out: &mut String, s: &str) {
    sluice_config::dump::write_str(out, s);
}

/// A JSON object under construction: `"key": value` pairs.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json_str(self.out, k);
        self.out.push(':');
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        let out = self.key(k);
        json_str(out, v);
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k).push_str(v);
    }

    fn end(self) {
        self.out.push('}');
    }
}

fn string_matcher_json(out: &mut String, m: &StringMatcher) {
    let mut o = Obj::new(out);
    match m {
        StringMatcher::Exact { value, ignore_case }
        | StringMatcher::Prefix { value, ignore_case }
        | StringMatcher::Suffix { value, ignore_case }
        | StringMatcher::Contains { value, ignore_case } => {
            o.str(m.kind_name(), value);
            if *ignore_case {
                o.raw("ignore_case", "true");
            }
        }
        StringMatcher::SafeRegex(r) => {
            let mut inner = String::new();
            let mut ro = Obj::new(&mut inner);
            ro.str("regex", r.pattern());
            ro.end();
            o.raw("safe_regex", &inner);
        }
    }
    o.end();
}

/// A `HeaderMatcher` as proto3 JSON (snake_case names).
pub fn header_matcher_json(out: &mut String, m: &HeaderMatcher) {
    let mut o = Obj::new(out);
    o.str("name", &m.name);
    match &m.specifier {
        HeaderMatch::ExactMatch(v) => o.str("exact_match", v),
        HeaderMatch::PrefixMatch(v) => o.str("prefix_match", v),
        HeaderMatch::SuffixMatch(v) => o.str("suffix_match", v),
        HeaderMatch::ContainsMatch(v) => o.str("contains_match", v),
        HeaderMatch::SafeRegexMatch(r) => {
            let mut inner = String::new();
            let mut ro = Obj::new(&mut inner);
            ro.str("regex", r.pattern());
            ro.end();
            o.raw("safe_regex_match", &inner);
        }
        HeaderMatch::Range(r) => {
            // int64 is a JSON string in proto3.
            o.raw("range_match", &format!("{{\"start\":\"{}\",\"end\":\"{}\"}}", r.start, r.end));
        }
        HeaderMatch::Present(p) => o.raw("present_match", if *p { "true" } else { "false" }),
        HeaderMatch::String(sm) => {
            let mut inner = String::new();
            string_matcher_json(&mut inner, sm);
            o.raw("string_match", &inner);
        }
    }
    if m.invert_match {
        o.raw("invert_match", "true");
    }
    if m.treat_missing_header_as_empty {
        o.raw("treat_missing_header_as_empty", "true");
    }
    o.end();
}

fn header_failures_json(list: &[HeaderMatchFailure]) -> String {
    let mut out = String::from("[");
    for (i, f) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut matcher = String::new();
        header_matcher_json(&mut matcher, &f.matcher);
        let mut o = Obj::new(&mut out);
        o.raw("header_matcher", &matcher);
        o.str("actual_header_value", &f.actual);
        o.end();
    }
    out.push(']');
    out
}

fn failure_json(out: &mut String, f: &Failure) {
    let mut o = Obj::new(out);
    let pairs = [
        ("cluster_name", &f.cluster_name),
        ("virtual_cluster_name", &f.virtual_cluster_name),
        ("virtual_host_name", &f.virtual_host_name),
        ("path_rewrite", &f.path_rewrite),
        ("host_rewrite", &f.host_rewrite),
        ("path_redirect", &f.path_redirect),
    ];
    for (name, pair) in pairs {
        if let Some((expected, actual)) = pair {
            o.str(&format!("expected_{name}"), expected);
            o.str(&format!("actual_{name}"), actual);
        }
    }
    if let Some((expected, actual)) = f.code_redirect {
        o.raw("expected_code_redirect", &expected.to_string());
        o.raw("actual_code_redirect", &actual.to_string());
    }
    if !f.request_header_match_failures.is_empty() {
        o.raw("request_header_match_failures", &header_failures_json(&f.request_header_match_failures));
    }
    if !f.response_header_match_failures.is_empty() {
        o.raw("response_header_match_failures", &header_failures_json(&f.response_header_match_failures));
    }
    o.end();
}

/// The `ValidationResult` JSON. With `--only-show-failures` only failing tests are
/// listed, as in Envoy.
pub fn validation_result_json(results: &[TestResult], only_failures: bool) -> String {
    let mut out = String::from("{\"test_results\":[");
    let mut first = true;
    for r in results.iter().filter(|r| !(only_failures && r.passed)) {
        if !first {
            out.push(',');
        }
        first = false;
        let mut o = Obj::new(&mut out);
        o.str("test_name", &r.test_name);
        o.raw("test_passed", if r.passed { "true" } else { "false" });
        if !r.passed {
            let mut failure = String::new();
            failure_json(&mut failure, &r.failure);
            o.raw("failure", &failure);
        }
        o.end();
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_like_cpp() {
        assert_eq!(percent(100.0), "100");
        assert_eq!(percent(7.448_634_5), "7.44863");
        assert_eq!(percent(50.0), "50");
        assert_eq!(percent(0.0), "0");
        assert_eq!(percent(33.333_333_3), "33.3333");
    }

    #[test]
    fn json_escapes() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\n\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
