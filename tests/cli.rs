//! The command line: validate mode and its errors, help, argument errors.

use sluice_e2e::proxy::run;

const VALID: &str = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 1 } }
    filter_chains:
    - filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          statPrefix: t
          cluster: c
  clusters:
  - name: c
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: c
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 2 } } } }] }]
"#;

fn validate(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    run(&["-c", path.to_str().unwrap(), "--mode", "validate"], None)
}

#[test]
fn validate_accepts_a_valid_config_and_binds_nothing() {
    // Port 1 needs root to bind and may be taken: validate must not try.
    let (code, out) = validate(VALID);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn validate_names_a_misspelled_field_with_its_path_and_line() {
    let (code, out) = validate(&VALID.replace("connect_timeout", "conect_timeout"));
    assert_ne!(code, 0);
    assert!(out.contains("static_resources.clusters[0].conect_timeout"), "{out}");
    assert!(out.contains("line 15"), "{out}");
    assert!(out.contains("did you mean `connect_timeout`"), "{out}");
}

#[test]
fn validate_reports_every_error() {
    let yaml = VALID.replace("cluster: c\n", "cluster: nope\n").replace("0.25s", "fast");
    let (code, out) = validate(&yaml);
    assert_ne!(code, 0);
    assert!(out.contains("static_resources.clusters[0].connect_timeout"), "{out}");
    assert!(out.contains("duration"), "{out}");
}

#[test]
fn validate_rejects_unknown_cluster_and_unsupported_fields() {
    let (code, out) = validate(&VALID.replace("cluster: c\n", "cluster: nope\n"));
    assert_ne!(code, 0);
    assert!(out.contains("unknown cluster `nope`"), "{out}");
    let (code, out) = validate(&VALID.replace("  - name: c\n", "  - name: c\n    lb_subset_config: {}\n"));
    assert_ne!(code, 0);
    assert!(out.contains("static_resources.clusters[0].lb_subset_config") && out.contains("unsupported"), "{out}");
}

#[test]
fn help_and_bad_arguments() {
    let (code, out) = run(&["--help"], None);
    assert_eq!(code, 0);
    assert!(out.contains("--concurrency") && out.contains("--mode serve|validate"), "{out}");
    let (code, out) = run(&["-c", "x.yaml", "--datapath", "dpdk"], None);
    assert_ne!(code, 0);
    assert!(out.contains("kernel or xdp"), "{out}");
    let (code, out) = run(&["-c", "/nonexistent/sluice.yaml"], None);
    assert_ne!(code, 0);
    assert!(out.contains("cannot read /nonexistent/sluice.yaml"), "{out}");
}

#[test]
fn every_example_config_validates() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (code, out) = run(&["-c", path.to_str().unwrap(), "--mode", "validate"], None);
            assert_eq!(code, 0, "{}: {out}", path.display());
            assert!(out.contains("OK"), "{out}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "examples/*.yaml: {checked} found");
}

#[test]
fn version_names_the_commit_and_the_build_profile() {
    let (code, out) = run(&["--version"], None);
    assert_eq!(code, 0, "{out}");
    let line = out.trim();
    let rest = line
        .strip_prefix(&format!("sluice {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, profile) = rest.split_once(", ").unwrap_or_else(|| panic!("{line}"));
    assert!(commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{line}");
    // Built from this checkout: the commit is HEAD's (when git can tell).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Ok(head) =
        std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(&root).output()
    {
        if head.status.success() && std::env::var_os("SLUICE_BIN").is_none() {
            assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim(), "{line}");
        }
    }
    assert!(profile == "debug profile)" || profile == "release profile)", "{line}");
}
