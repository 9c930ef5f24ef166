//! `sluice route-check` as users run it in CI: the binary, over every route table and
//! test file in tests/route_check/ (all pass) and the negative files (exit 1 with the
//! expected/actual difference printed).

use std::path::{Path, PathBuf};

use sluice_e2e::proxy::run;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("route_check")
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(routes: &Path, tests: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["route-check", "-c", routes.to_str().unwrap(), "-t", tests.to_str().unwrap()];
    args.extend_from_slice(extra);
    // Fixtures name body files relative to the repository root, as a CI job would.
    run(&args, Some(&repo_root()))
}

#[test]
fn every_fixture_passes_through_the_binary() {
    let dir = fixtures();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".test.yaml").or_else(|| name.strip_suffix(".test.json")) else {
            continue;
        };
        let routes = dir.join(format!("{stem}.yaml"));
        let (code, out) = check(&routes, &path, &["--details"]);
        assert_eq!(code, 0, "{name} failed:\n{out}");
        assert!(out.contains(" passed, 0 failed"), "{name}: {out}");
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} fixture pairs found");
}

/// Envoy's own router_check_tool test files (tests/route_check/envoy/, Apache-2.0):
/// runtime and dynamic_metadata inputs, the tool's local reply, a `.pb_text` test file.
#[test]
fn envoys_router_check_tool_tests_pass() {
    let dir = fixtures().join("envoy");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some((stem, _)) = name.split_once(".test.") else {
            continue;
        };
        let (code, out) = check(&dir.join(format!("{stem}.yaml")), &path, &["--details"]);
        assert_eq!(code, 0, "{name} failed:\n{out}");
        assert!(out.contains(" passed, 0 failed"), "{name}: {out}");
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        ["DirectResponse.test.json", "DynamicMetadata.test.json", "Runtime.test.json", "Weighted.test.pb_text"],
    );
}

/// A runtime_fraction route is on only for the test naming its key, and then only for
/// a `random_value` inside its fraction; other routes of the file still check.
#[test]
fn runtime_input_decides_runtime_fraction_routes() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        "virtual_hosts:
- name: vh
  domains: ['*']
  routes:
  - match: {prefix: /, runtime_fraction: {runtime_key: canary.on, default_value: {numerator: 30}}}
    route: {cluster: canary}
  - match: {prefix: /zero, runtime_fraction: {runtime_key: zero.on, default_value: {numerator: 0}}}
    route: {cluster: zero}
  - match: {prefix: /}
    route: {cluster: stable}
",
    )
    .unwrap();
    let tests = dir.path().join("t.yaml");
    std::fs::write(
        &tests,
        "tests:
- {test_name: no runtime, input: {authority: a, path: /, method: GET}, validate: {cluster_name: stable}}
- {test_name: key and random inside, input: {authority: a, path: /, method: GET, runtime: canary.on, random_value: 29}, validate: {cluster_name: canary}}
- {test_name: key and random outside, input: {authority: a, path: /, method: GET, runtime: canary.on, random_value: 30}, validate: {cluster_name: stable}}
- {test_name: another key, input: {authority: a, path: /, method: GET, runtime: other, random_value: 0}, validate: {cluster_name: stable}}
- {test_name: numerator 0 counts as 1, input: {authority: a, path: /zero, method: GET, runtime: zero.on, random_value: 100}, validate: {cluster_name: zero}}
- {test_name: numerator 0 counts as 1 only, input: {authority: a, path: /zero, method: GET, runtime: zero.on, random_value: 1}, validate: {cluster_name: stable}}
",
    )
    .unwrap();
    let (code, out) = check(&routes, &tests, &["--details"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("6 tests: 6 passed, 0 failed"), "{out}");
}

#[test]
fn negative_files_fail_with_the_difference_printed() {
    let dir = fixtures();
    let (code, out) = check(&dir.join("matching.yaml"), &dir.join("negative/mismatches.test.yaml"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("expected: [wrong], actual: ["), "{out}");
    let (code, out) = check(&dir.join("matching.yaml"), &dir.join("negative/unsupported.test.yaml"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("typed_value") && out.contains("unsupported"), "{out}");
    let (code, out) = check(&dir.join("negative/bad_routes.yaml"), &dir.join("matching.test.yaml"), &[]);
    assert_ne!(code, 0, "{out}");
    // A .pb_text test file is parsed as protobuf text: a YAML file under that name fails
    // with the parser's complaint; a .pb_text route table is refused outright.
    let tmp = tempfile::tempdir().unwrap();
    let yaml_as_text = tmp.path().join("t.pb_text");
    std::fs::copy(dir.join("matching.test.yaml"), &yaml_as_text).unwrap();
    let (code, out) = check(&dir.join("matching.yaml"), &yaml_as_text, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("t.pb_text"), "{out}");
    let routes_as_text = tmp.path().join("r.pb_text");
    std::fs::write(&routes_as_text, "virtual_hosts { name: \"v\" }").unwrap();
    let (code, out) = check(&routes_as_text, &dir.join("envoy/Weighted.test.pb_text"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("protobuf text format are not supported"), "{out}");
}

#[test]
fn result_json_is_written() {
    let dir = fixtures();
    let out_dir = tempfile::tempdir().unwrap();
    let result = out_dir.path().join("result.json");
    let (code, out) = check(
        &dir.join("matching.yaml"),
        &dir.join("negative/mismatches.test.yaml"),
        &["-o", result.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    let json = std::fs::read_to_string(&result).unwrap();
    assert!(
        json.contains("\"test_results\"") && json.contains("\"test_passed\": false")
            || json.contains("\"test_passed\":false"),
        "{json}"
    );
}

#[test]
fn the_example_in_the_readme_passes() {
    let ex = repo_root().join("examples/routes");
    let (code, out) = check(&ex.join("routes.yaml"), &ex.join("routes.test.yaml"), &[]);
    assert_eq!(code, 0, "{out}");
}
