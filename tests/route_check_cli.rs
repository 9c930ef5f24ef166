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

#[test]
fn negative_files_fail_with_the_difference_printed() {
    let dir = fixtures();
    let (code, out) = check(&dir.join("matching.yaml"), &dir.join("negative/mismatches.test.yaml"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("expected: [wrong], actual: ["), "{out}");
    let (code, out) = check(&dir.join("matching.yaml"), &dir.join("negative/unsupported.test.yaml"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.to_lowercase().contains("unsupported"), "{out}");
    let (code, out) = check(&dir.join("negative/bad_routes.yaml"), &dir.join("matching.test.yaml"), &[]);
    assert_ne!(code, 0, "{out}");
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
