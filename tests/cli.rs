//! The command line: validate mode and its errors, help, argument errors.

use std::path::Path;
use std::process::Command;

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

/// [`VALID`] with its filter chain terminating TLS with `cert` and `key` (filenames,
/// YAML scalars); the `tls_certificates` entry is on line 7.
fn with_tls(cert: &str, key: &str) -> String {
    VALID.replace(
        "    filter_chains:\n    - filters:\n",
        &format!(
            "    filter_chains:\n    - transport_socket: {{ name: tls, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {{ tls_certificates: [ {{ certificate_chain: {{ filename: \"{cert}\" }}, private_key: {{ filename: \"{key}\" }} }} ] }} }} }}\n      filters:\n"
        ),
    )
}

/// Run `--mode validate` on `yaml` written to `dir/c.yaml`, from the working
/// directory `dir`.
fn validate_in(dir: &Path, yaml: &str) -> (i32, String) {
    let path = dir.join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    run(&["-c", path.to_str().unwrap(), "--mode", "validate"], Some(dir))
}

/// A self-signed X.509 v1 certificate and its key in `dir` (`name.pem`, `name.key`).
fn v1_certificate(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", "req.csr", "-subj", "/CN=x"]);
    run(&["x509", "-req", "-in", "req.csr", "-signkey", &key, "-out", &pem, "-days", "2"]);
}

#[test]
fn validate_reports_a_missing_file_with_its_line_and_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = validate_in(dir.path(), &with_tls("certs/servercert.pem", "certs/serverkey.pem"));
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("static_resources.listeners[0].filter_chains[0].transport_socket: certificate_chain (line 7): cannot read certs/servercert.pem: "),
        "{out}"
    );
    let cwd = dir.path().canonicalize().unwrap();
    assert!(out.contains(&format!("(a relative path is read from the working directory, {})", cwd.display())), "{out}");
}

#[test]
fn validate_reports_schema_file_and_certificate_errors_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_tls("missing.pem", "missing.key").replace("connect_timeout", "conect_timeout");
    let (code, out) = validate_in(dir.path(), &yaml);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("static_resources.clusters[0].conect_timeout"), "schema error: {out}");
    assert!(out.contains("certificate_chain (line 7): cannot read missing.pem"), "file error in the same pass: {out}");
}

#[test]
fn validate_names_the_real_cause_of_a_certificate_error() {
    let dir = tempfile::tempdir().unwrap();
    v1_certificate(dir.path(), "a");
    v1_certificate(dir.path(), "b");
    // Version 1 certificates with their own keys are fine...
    let (code, out) = validate_in(dir.path(), &with_tls("a.pem", "a.key"));
    assert_eq!(code, 0, "{out}");
    // ...with another's key they are not, and the error says so (not "unsupported
    // certificate version").
    let (code, out) = validate_in(dir.path(), &with_tls("a.pem", "b.key"));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("private_key (line 7) (file b.key) does not match certificate_chain (file a.pem)"), "{out}");
    assert!(!out.contains("UnsupportedCertVersion"), "{out}");
    // A certificate where the key should be.
    let (code, out) = validate_in(dir.path(), &with_tls("a.pem", "a.pem"));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("private_key (line 7) (file a.pem): no PEM PRIVATE KEY"), "{out}");
    assert!(out.contains("found; it holds CERTIFICATE"), "{out}");
}

#[test]
fn validate_does_no_dns_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = VALID
        .replace("    connect_timeout: 0.25s\n", "    connect_timeout: 0.25s\n    type: STRICT_DNS\n")
        .replace("address: 127.0.0.1, port_value: 2", "address: sluice-validate-probe.invalid, port_value: 2");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    ensure_strace();
    let trace = dir.path().join("trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,connect", "-o", trace.to_str().unwrap()])
        .arg(sluice_e2e::sluice_bin())
        .args(["-c", path.to_str().unwrap(), "--mode", "validate"])
        .output()
        .expect("run strace");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK"), "{text}");
    let trace = std::fs::read_to_string(trace).unwrap();
    assert!(trace.contains("c.yaml"), "strace saw the config being read:\n{trace}");
    for resolver in ["/etc/hosts", "resolv.conf", "nsswitch.conf", "htons(53)"] {
        assert!(!trace.contains(resolver), "validate touched the resolver ({resolver}):\n{trace}");
    }
}

/// strace, installed if missing (CI runs as root).
fn ensure_strace() {
    if Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return;
    }
    let _ = Command::new("apt-get").args(["install", "-y", "strace"]).status();
    assert!(Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()), "strace is needed");
}

#[test]
fn validate_warns_that_an_empty_config_listens_nowhere() {
    let (code, out) = validate("");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no listeners: nothing will listen"), "{out}");
}

#[test]
fn validate_points_a_yaml_syntax_error_at_its_start() {
    let (code, out) = validate("static_resources:\n  clusters: [ { name: a },\n\n\n  listeners: []\n");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("line 2: the `[` opened here is never closed"), "{out}");
}

#[test]
fn validate_reports_one_error_per_mistake() {
    let hcm = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 1 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { virtual_hosts: [] }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr }
"#;
    let (code, out) = validate(hcm);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("unsupported HTTP filter type `envoy.extensions.filters.http.router.v3.Routr`"), "{out}");
    assert!(!out.contains("http_filters is empty"), "a follow-on error: {out}");
}

#[test]
fn validate_accepts_enums_in_lower_case() {
    let yaml = VALID
        .replace(
            "    connect_timeout: 0.25s\n",
            "    connect_timeout: 0.25s\n    type: strict_dns\n    lb_policy: round_robin\n",
        )
        .replace("address: 127.0.0.1, port_value: 2", "address: backend.invalid, port_value: 2");
    let (code, out) = validate(&yaml);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("is not an IP address"), "{out}");
}
