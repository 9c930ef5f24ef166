//! `sluice route-check` against the fixture suite in tests/route_check/: every route
//! table with its test file passes; the negative files fail with the expected/actual
//! difference printed, in Envoy router_check_tool's format.

use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, UNIX_EPOCH};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Fixtures name files relative to the repository root (a `filename` body), as a CI
/// job would run the check from there.
fn in_repo_root() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_current_dir(root()).unwrap());
}

fn fixture(name: &str) -> String {
    root().join("tests/route_check").join(name).to_string_lossy().into_owned()
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn run(args: &[&str]) -> Run {
    in_repo_root();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let code = sluice::route_check::run(&args, now, &mut out, &mut err);
    Run { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
}

fn check(routes: &str, tests: &str, extra: &[&str]) -> Run {
    let (r, t) = (fixture(routes), fixture(tests));
    let mut args = vec!["-c", r.as_str(), "-t", t.as_str()];
    args.extend_from_slice(extra);
    run(&args)
}

fn assert_all_pass(routes: &str, tests: &str) {
    let r = check(routes, tests, &["--details"]);
    assert_eq!(r.code, 0, "{routes} / {tests}\nstdout:\n{}\nstderr:\n{}", r.out, r.err);
    assert!(r.out.contains(" failed") && r.out.contains(", 0 failed"), "{}", r.out);
    assert!(r.out.contains("Current route coverage: "), "{}", r.out);
}

#[test]
fn domains_in_all_four_forms() {
    assert_all_pass("domains.yaml", "domains.test.yaml");
    assert_all_pass("domains_ignore_port.yaml", "domains_ignore_port.test.yaml");
}

#[test]
fn every_match_kind() {
    assert_all_pass("matching.yaml", "matching.test.yaml");
}

#[test]
fn rewrites() {
    assert_all_pass("rewrites.yaml", "rewrites.test.yaml");
}

#[test]
fn redirects() {
    assert_all_pass("redirects.yaml", "redirects.test.yaml");
}

#[test]
fn direct_responses() {
    assert_all_pass("direct.yaml", "direct.test.yaml");
}

#[test]
fn weighted_clusters_json_with_trailing_commas() {
    assert_all_pass("weighted.yaml", "weighted.test.json");
}

#[test]
fn header_mutations() {
    assert_all_pass("headers.yaml", "headers.test.yaml");
    assert_all_pass("headers_most_specific.yaml", "headers_most_specific.test.yaml");
}

#[test]
fn bootstrap_routes() {
    assert_all_pass("bootstrap.yaml", "bootstrap.test.yaml");
}

#[test]
fn details_lists_passing_tests() {
    let r = check("bootstrap.yaml", "bootstrap.test.yaml", &["--details"]);
    assert!(r.out.contains("static assets\neverything else\n"), "{}", r.out);
    assert!(r.out.contains("2 tests: 2 passed, 0 failed"), "{}", r.out);
    let r = check("bootstrap.yaml", "bootstrap.test.yaml", &[]);
    assert!(!r.out.contains("static assets"), "{}", r.out);
    // Two of the two routes had a field checked.
    assert!(r.out.contains("Current route coverage: 100%"), "{}", r.out);
}

#[test]
fn mismatches_print_expected_and_actual() {
    let r = check("matching.yaml", "negative/mismatches.test.yaml", &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    for line in [
        "wrong cluster and virtual host",
        "expected: [wrong], actual: [exact], test type: cluster_name",
        "expected: [nope], actual: [api], test type: virtual_host_name",
        "expected: [/rewritten], actual: [/exact], test type: path_rewrite",
        "expected: [other.example.com], actual: [api.example.com], test type: host_rewrite",
        "expected: [https://api.example.com/exact], actual: [], test type: path_redirect",
        "expected: [301], actual: [0], test type: code_redirect",
        "expected: [x-tenant: globex], actual: [x-tenant: acme], test type: request_header_matches.string_match.exact",
        "expected: [x-tenant: acme], actual: NOT [x-tenant: acme], test type: request_header_matches.string_match.exact",
        "actual: [x-version: 5], test type: request_header_matches.range_match",
        "expected: [has(x-missing):true], actual: [has(x-missing):false], test type: request_header_matches.present_match",
        "expected: [has(x-tenant):false], actual: [has(x-tenant):true], test type: request_header_matches.present_match",
        "actual: [x-tenant: acme], test type: request_header_matches.string_match.prefix",
        "expected: [initech], actual: [acme], test type: request_header_fields",
    ] {
        assert!(r.err.lines().any(|l| l == line), "missing line `{line}` in:\n{}", r.err);
    }
    assert!(!r.err.contains("this one passes"), "{}", r.err);
    assert!(r.out.contains("5 tests: 1 passed, 4 failed"), "{}", r.out);
    assert!(!r.out.contains("coverage"), "{}", r.out);
}

#[test]
fn only_show_failures() {
    let r = check("matching.yaml", "negative/mismatches.test.yaml", &["--details", "--only-show-failures"]);
    assert_eq!(r.code, 1);
    assert!(!r.out.contains("this one passes") && !r.err.contains("this one passes"));
    assert!(r.err.contains("wrong cluster and virtual host"));
}

#[test]
fn validation_result_json() {
    let dir = std::env::temp_dir().join(format!("sluice-route-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("result.json");
    let o = out.to_string_lossy().into_owned();
    let r = check("matching.yaml", "negative/mismatches.test.yaml", &["-o", &o]);
    assert_eq!(r.code, 1);
    let json = std::fs::read_to_string(&out).unwrap();
    assert!(json.starts_with("{\"test_results\":[{\"test_name\":\"wrong cluster and virtual host\",\"test_passed\":false,\"failure\":{\"expected_cluster_name\":\"wrong\",\"actual_cluster_name\":\"exact\",\"expected_virtual_host_name\":\"nope\",\"actual_virtual_host_name\":\"api\"}}"), "{json}");
    assert!(json.contains("\"expected_code_redirect\":301,\"actual_code_redirect\":0"), "{json}");
    assert!(json.contains("{\"header_matcher\":{\"name\":\"x-tenant\",\"string_match\":{\"exact\":\"globex\"}},\"actual_header_value\":\"acme\"}"), "{json}");
    assert!(json.contains("{\"header_matcher\":{\"name\":\"x-version\",\"range_match\":{\"start\":\"10\",\"end\":\"20\"}},\"actual_header_value\":\"5\"}"), "{json}");
    assert!(
        json.contains(
            "{\"header_matcher\":{\"name\":\"x-missing\",\"present_match\":true},\"actual_header_value\":\"\"}"
        ),
        "{json}"
    );
    assert!(json.contains("{\"test_name\":\"this one passes\",\"test_passed\":true}"), "{json}");
    // --only-show-failures leaves passing tests out of the file too.
    let r = check("matching.yaml", "negative/mismatches.test.yaml", &["-o", &o, "--only-show-failures"]);
    assert_eq!(r.code, 1);
    let json = std::fs::read_to_string(&out).unwrap();
    assert!(!json.contains("this one passes"), "{json}");
    // A passing run writes every result.
    let r = check("bootstrap.yaml", "bootstrap.test.yaml", &["--output-path", &o]);
    assert_eq!(r.code, 0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "{\"test_results\":[{\"test_name\":\"static assets\",\"test_passed\":true},{\"test_name\":\"everything else\",\"test_passed\":true}]}\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_typed_dynamic_metadata_input_is_refused_with_its_path() {
    // The runtime and dynamic_metadata inputs are supported (tests/route_check_cli.rs);
    // `typed_value` is not, and the file is refused rather than the field ignored.
    let r = check("matching.yaml", "negative/unsupported.test.yaml", &[]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("tests[0].input.dynamic_metadata[0].typed_value (line 11)"), "{}", r.err);
    assert!(r.err.contains("unsupported field `typed_value`"), "{}", r.err);
}

#[test]
fn bad_files_and_arguments() {
    let r = check("matching.yaml", "negative/bad_field.test.yaml", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains(
            "tests[0].validate.clustername (line 4): unknown field `clustername` (did you mean `cluster_name`?)"
        ),
        "{}",
        r.err
    );
    let r = check("matching.yaml", "negative/empty.test.yaml", &[]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("at least one test"), "{}", r.err);
    let r = check("negative/bad_routes.yaml", "matching.test.yaml", &[]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("virtual_hosts[0].routes[0].match.safe_regex.regex"), "{}", r.err);
    assert!(r.err.contains("Only a single wildcard domain is permitted"), "{}", r.err);
    assert!(r.err.contains("virtual_hosts[1].domains[0]"), "{}", r.err);
    let r = check("does-not-exist.yaml", "matching.test.yaml", &[]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("cannot read"), "{}", r.err);
    let r = run(&["-c", "x.yaml"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("Both --config-path/c and --test-path/t are mandatory"), "{}", r.err);
    let r = run(&["--bogus"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("unknown argument `--bogus`"), "{}", r.err);
    assert_eq!(run(&["--help"]).code, 0);
}

#[test]
fn coverage_threshold() {
    // Only one of bootstrap.yaml's two routes is checked.
    let r = check("bootstrap.yaml", "negative/partial_coverage.test.yaml", &["-f", "100"]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(r.out.contains("Current route coverage: 50%"), "{}", r.out);
    assert!(r.err.contains("Failed to meet coverage requirement: 100%"), "{}", r.err);
    let r = check("bootstrap.yaml", "negative/partial_coverage.test.yaml", &["--fail-under=50"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
}

#[test]
fn main_entry_point_skips_the_subcommand() {
    let (r, t) = (fixture("bootstrap.yaml"), fixture("bootstrap.test.yaml"));
    let args: Vec<String> = ["route-check", "-c", &r, "-t", &t].iter().map(|s| s.to_string()).collect();
    assert_eq!(sluice::route_check::main(&args), 0);
}
