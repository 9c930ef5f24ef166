//! HTTP access logs against real peers. On both datapaths (kernel sockets and smol
//! stacks on an in-memory network, see `sluice_e2e::backend`): Envoy's default format
//! in a file (status, `%RESPONSE_FLAGS%`, body byte counts, upstream host) for a proxied
//! request, a missing route, a refused upstream connection and a malformed request, and
//! a JSON logger with a status-code filter. On the binary: the JSON logger on stdout,
//! and a rotated file reopened on SIGUSR1.

use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{http, Cluster, ClusterAt};
use sluice_e2e::free_port;
use sluice_e2e::http_client::{Client, Protocol};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::proxy::Proxy;

const VHOSTS: &str = "- name: app\n  domains: [\"app\"]\n  routes:\n  - match: { prefix: \"/dead\" }\n    route: { cluster: dead }\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n";

/// A file logger with Envoy's default format at `path`, and a JSON logger of the
/// requests with status >= 400 on `errors` (a `StdoutAccessLog` without a path).
fn access_log_yaml(path: &str, errors: Option<&str>) -> String {
    let errors = match errors {
        Some(p) => format!(
            "\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {p}"
        ),
        None => "\"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog".to_string(),
    };
    format!(
        "access_log:\n- name: file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {path}\n- name: errors\n  filter: {{ status_code_filter: {{ comparison: {{ op: GE, value: {{ default_value: 400, runtime_key: errors }} }} }} }}\n  typed_config:\n    {errors}\n    log_format:\n      json_format: {{ status: \"%RESPONSE_CODE%\", flags: \"%RESPONSE_FLAGS%\", path: \"%REQ(:PATH)%\", upstream: \"%UPSTREAM_HOST%\" }}\n"
    )
}

/// Wait until the file holds `n` lines.
fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn default_format_file_and_filtered_json(backend: Backend) {
    let net = Net::new(backend);
    let web = HttpOrigin::serve(net.listen(), "web");
    let dead = net.refused_addr();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let errors_path = dir.path().join("errors.log");
    let (we, de) = ([web.addr], [dead]);
    let clusters =
        [ClusterAt { name: "web", endpoints: &we, extra: "" }, ClusterAt { name: "dead", endpoints: &de, extra: "" }];
    let loggers = access_log_yaml(&log_path.to_string_lossy(), Some(&errors_path.to_string_lossy()));
    let p = HttpProxy::start(&net, VHOSTS, &clusters, &loggers, "", 1);

    let mut c = p.client();
    // %PROTOCOL%: what the client spoke (Envoy's "HTTP/1.1" or "HTTP/2").
    let (h2, proto) = match c.protocol() {
        Protocol::Http1 => (false, "HTTP/1.1"),
        Protocol::Http2 => (true, "HTTP/2"),
    };
    let r =
        c.request("POST", "/ok?x=1", &[("host", "app"), ("user-agent", "e2e/1"), ("x-request-id", "rid-7")], b"hello");
    assert_eq!(r.status, 200);
    let body_len = r.body.len();
    assert_eq!(c.request("GET", "/nothing", &[("host", "elsewhere")], b"").status, 404);
    assert_eq!(c.request("GET", "/dead/1", &[("host", "app")], b"").status, 503);
    // A malformed HTTP/1.1 head (raw bytes; not over HTTP/2, whose client cannot send one).
    if !h2 {
        let mut bad = p.client();
        bad.send(b"POST /bad HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(bad.read_response(false).unwrap().status, 400);
    }

    let n = if h2 { 3 } else { 4 };
    let got = lines(&log_path, n);
    assert_eq!(got.len(), n, "{got:#?}");
    // [START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS RX TX DURATION SERVICE-TIME "XFF" "UA" "RID" "AUTHORITY" "UPSTREAM"
    let ok = &got[0];
    assert!(ok.starts_with('[') && ok.as_bytes()[24] == b'Z', "{ok}");
    let rest = &ok[ok.find("] ").unwrap() + 2..];
    let want_prefix = format!("\"POST /ok?x=1 {proto}\" 200 - 5 {body_len} ");
    assert!(rest.starts_with(&want_prefix), "{rest}\nwanted prefix {want_prefix}");
    assert!(rest.ends_with(&format!("\"-\" \"e2e/1\" \"rid-7\" \"app\" \"{}\"", web.addr)), "{rest}");
    assert!(got[1].contains(&format!("\"GET /nothing {proto}\" 404 NR 0 0 ")), "{}", got[1]);
    assert!(got[1].ends_with("\"elsewhere\" \"-\""), "{}", got[1]);
    assert!(got[2].contains(&format!("\"GET /dead/1 {proto}\" 503 UF 0 91 ")), "{}", got[2]);
    assert!(got[2].ends_with(&format!("\"app\" \"{dead}\"")), "{}", got[2]);
    if !h2 {
        assert!(got[3].contains(" 400 DPE 0 "), "{}", got[3]);
    }

    // The JSON logger only saw the errors.
    let json = lines(&errors_path, n - 1);
    assert_eq!(json.len(), n - 1, "{json:#?}");
    assert_eq!(json[0], "{\"status\":404,\"flags\":\"NR\",\"path\":\"/nothing\",\"upstream\":null}");
    assert_eq!(json[1], format!("{{\"status\":503,\"flags\":\"UF\",\"path\":\"/dead/1\",\"upstream\":\"{dead}\"}}"));
    if !h2 {
        // The head was rejected before its path was taken: Envoy's codec has none either.
        assert_eq!(json[2], "{\"status\":400,\"flags\":\"DPE\",\"path\":null,\"upstream\":null}");
    }
}

/// The binary's own loggers: JSON errors on its stdout, and a file renamed away
/// reopened on SIGUSR1.
#[test]
fn stdout_json_and_sigusr1_reopens_a_rotated_file() {
    let web = HttpOrigin::start("web");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let clusters = [
        Cluster { name: "web", ports: &[web.port()], extra: "" },
        Cluster { name: "dead", ports: &[free_port()], extra: "" },
    ];
    let yaml = http(port, VHOSTS, &clusters, &access_log_yaml(&log_path.to_string_lossy(), None), "");
    let mut p = Proxy::start(&yaml, &["--concurrency", "2"]);
    let mut c = Client::connect(port);
    assert_eq!(c.request("GET", "/before", &[("host", "app")], b"").status, 200);
    assert_eq!(lines(&log_path, 1).len(), 1);
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log_path, &rotated).unwrap();
    p.signal("USR1");
    p.wait_for_log("access logs reopened", Duration::from_secs(5));
    assert_eq!(c.request("GET", "/after", &[("host", "app")], b"").status, 200);
    let after = lines(&log_path, 1);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].contains("GET /after"), "{after:?}");
    let before = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(before.lines().count(), 1);
    assert!(before.contains("GET /before"));
    // Only the error reached the JSON logger on stdout.
    assert_eq!(c.request("GET", "/nothing", &[("host", "elsewhere")], b"").status, 404);
    p.wait_for_log("{\"status\":404", Duration::from_secs(5));
    let log = p.log();
    let json: Vec<&str> = log.lines().filter(|l| l.starts_with("{\"status\"")).collect();
    assert_eq!(json, ["{\"status\":404,\"flags\":\"NR\",\"path\":\"/nothing\",\"upstream\":null}"], "{log}");
}

on_both_backends!(default_format_file_and_filtered_json);
// Over HTTP/2 as well: %PROTOCOL% is HTTP/2 and the byte counts are the bodies' (the
// malformed-head part is HTTP/1.1 only).
sluice_e2e::over_http2!(default_format_file_and_filtered_json);
