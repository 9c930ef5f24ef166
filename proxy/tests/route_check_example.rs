//! The route table and tests shipped in examples/routes/ pass, as its README promises.

use std::path::PathBuf;
use std::time::SystemTime;

#[test]
fn example_route_tests_pass() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/routes");
    let args: Vec<String> = vec![
        "-c".into(),
        dir.join("routes.yaml").to_string_lossy().into_owned(),
        "-t".into(),
        dir.join("routes.test.yaml").to_string_lossy().into_owned(),
        "--details".into(),
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = sluice::route_check::run(&args, SystemTime::now(), &mut out, &mut err);
    let (out, err) = (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("12 tests: 12 passed, 0 failed"), "{out}");
    assert!(out.contains("Current route coverage: 100%"), "{out}");
}
