//! `/config_dump` end to end: the dump a running sluice serves is strict JSON in
//! Envoy's `ConfigDump` shape, its `bootstrap` is a config that `sluice --mode validate`
//! accepts and that, served again, dumps the same; TLS keys referenced by filename stay
//! filenames, and an inline private key never leaves the process (`[redacted]`).

use std::path::{Path, PathBuf};

use sluice_e2e::config::{http, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::get;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::{run, Proxy};

/// A self-signed P-256 test certificate (CN sluice-test, SAN localhost) and its key.
/// Test material only: generated for this test, never used anywhere else.
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg19eJu6Rnh84eHVQO
ZeOBaaTsqjsPgGwR2vMdpcPoIsyhRANCAAR1IlyiT6FWbGtVKUs4zdt9AG+GplKF
7KeaSOe/soYzbDXpA/QLp6/2MkVCHaAes+jGFwqXGoOiq9q0IFdtSY4u
-----END PRIVATE KEY-----
";
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAT+gAwIBAgIUb8+yhNMNEiiof/ZvATa1U5Culc8wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLc2x1aWNlLXRlc3QwIBcNMjYxMTIxMDgyMTA5WhgPMjEyNjEw
MjgwODIxMDlaMBYxFDASBgNVBAMMC3NsdWljZS10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEdSJcok+hVmxrVSlLOM3bfQBvhqZSheynmkjnv7KGM2w16QP0
C6ev9jJFQh2gHrPoxhcKlxqDoqvatCBXbUmOLqNpMGcwHQYDVR0OBBYEFKWeVphk
9xEl9SiR6/TI2nhAkAGBMB8GA1UdIwQYMBaAFKWeVphk9xEl9SiR6/TI2nhAkAGB
MA8GA1UdEwEB/wQFMAMBAf8wFAYDVR0RBA0wC4IJbG9jYWxob3N0MAoGCCqGSM49
BAMCA0kAMEYCIQD3ryjWeem3qILIsOw0okKK101KpIw34zwsa2bwPjqEmAIhANW9
6ALLsrsIaJtx1yrLBC1PFEYLq4hy/4aupRznc1od
-----END CERTIFICATE-----
";

fn with_admin(yaml: String, admin: u16) -> String {
    format!("admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\n{yaml}")
}

/// GET `/config_dump`, check Envoy's envelope, and return the body and its bootstrap.
fn config_dump(admin: u16) -> (String, json::Value) {
    let r = get(admin, "/config_dump");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("application/json")), "{:?}", r.headers);
    let body = r.text();
    let dump = json::parse(&body).unwrap_or_else(|e| panic!("/config_dump is not JSON: {e}\n{body}"));
    let configs = dump.at("configs");
    let json::Value::Arr(items) = configs else { panic!("configs is not a list: {configs:?}") };
    assert_eq!(items.len(), 1);
    assert_eq!(
        dump.at("configs[0].@type"),
        &json::Value::Str("type.googleapis.com/envoy.admin.v3.BootstrapConfigDump".into())
    );
    let bootstrap = dump.at("configs[0].bootstrap").clone();
    (body, bootstrap)
}

/// Write `bootstrap` to `dir/name` and run `sluice -c FILE --mode validate`.
fn validate(dir: &Path, name: &str, bootstrap: &json::Value) -> (i32, String, PathBuf) {
    let path = dir.join(name);
    std::fs::write(&path, bootstrap.render()).unwrap();
    let (code, out) = run(&["-c", path.to_str().unwrap(), "--mode", "validate"], None);
    (code, out, path)
}

fn str_at<'a>(v: &'a json::Value, path: &str) -> &'a str {
    match v.at(path) {
        json::Value::Str(s) => s,
        other => panic!("{path} is not a string: {other:?}"),
    }
}

const ROUTES: &str = r#"- name: api
  domains: ["api.example.com", "*.api.example.com"]
  retry_policy: { retry_on: "5xx,connect-failure", num_retries: 2, retry_back_off: { base_interval: 0.01s } }
  request_headers_to_add: [{ header: { key: x-vhost, value: api }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }]
  routes:
  - match: { prefix: "/v1", case_sensitive: false, headers: [{ name: x-version, exact_match: "1" }], query_parameters: [{ name: debug }] }
    route: { cluster: web, prefix_rewrite: "/", timeout: 0s, idle_timeout: 30s }
  - match: { safe_regex: { regex: "/users/[0-9]+" } }
    route:
      weighted_clusters:
        clusters:
        - { name: web, weight: 3, host_rewrite_literal: users.local, request_headers_to_add: [{ header: { key: x-pick, value: web } }] }
        - { name: other, weight: 1 }
- name: all
  domains: ["*"]
  response_headers_to_add: [{ header: { key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" } }]
  routes:
  - match: { path: "/redirect" }
    redirect: { https_redirect: true, response_code: TEMPORARY_REDIRECT }
  - match: { path: "/hello" }
    direct_response: { status: 200, body: { inline_string: "hello\n" } }
  - match: { prefix: "/" }
    route:
      cluster: web
      retry_policy: { retry_on: gateway-error, per_try_timeout: 2s }
      request_mirror_policies: [{ cluster: other, runtime_fraction: { default_value: { numerator: 50 } } }]
      hash_policy: [{ header: { header_name: x-user } }]
"#;

const HCM_EXTRA: &str = "stream_idle_timeout: 0s
request_timeout: 30s
common_http_protocol_options: { idle_timeout: 120s, max_headers_count: 80 }
http_protocol_options: { accept_http_10: true }
";

const FILTERS: &str = r#"- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    delay: { fixed_delay: 0.001s, percentage: { numerator: 0 } }
    max_active_faults: 10
"#;

#[test]
fn http_config_dump_validates_and_serves_the_same_dump() {
    let web = HttpOrigin::start("web");
    let other = HttpOrigin::start("other");
    let (port, admin) = (free_port(), free_port());
    let clusters = [
        Cluster { name: "web", ports: &[web.port()], extra: "" },
        Cluster { name: "other", ports: &[other.port()], extra: "    lb_policy: RING_HASH\n" },
    ];
    let yaml = with_admin(http(port, ROUTES, &clusters, HCM_EXTRA, FILTERS), admin);
    let proxy = Proxy::start(&yaml, &["--concurrency", "1"]);
    // The config is live: a direct response and a forwarded request.
    assert_eq!(get(port, "/hello").text(), "hello\n");
    let r = get(port, "/anything");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("web")));

    let (body, bootstrap) = config_dump(admin);
    // The effective config, defaults included.
    let hcm = bootstrap.at("static_resources.listeners[0].filter_chains[0].filters[0].typed_config");
    assert_eq!(str_at(hcm, "stream_idle_timeout"), "0s", "disabled is written 0s");
    assert_eq!(str_at(hcm, "drain_timeout"), "5s", "Envoy's default");
    assert_eq!(str_at(hcm, "common_http_protocol_options.idle_timeout"), "120s");
    let all = hcm.at("route_config.virtual_hosts[1]");
    assert_eq!(str_at(all, "routes[2].route.timeout"), "15s", "Envoy's default route timeout");
    assert_eq!(str_at(all, "routes[2].route.retry_policy.retry_back_off.base_interval"), "0.025s");
    assert_eq!(str_at(all, "routes[1].direct_response.body.inline_string"), "hello\n");
    let api = hcm.at("route_config.virtual_hosts[0].routes[0]");
    assert_eq!(str_at(api, "route.timeout"), "0s");
    assert_eq!(str_at(api, "match.headers[0].string_match.exact"), "1", "deprecated exact_match in modern form");
    assert_eq!(api.at("match.query_parameters[0].present_match"), &json::Value::Bool(true));
    assert_eq!(str_at(hcm, "http_filters[0].typed_config.delay.fixed_delay"), "0.001s");

    // The bootstrap is a config sluice accepts.
    let dir = tempfile::tempdir().unwrap();
    let (code, out, path) = validate(dir.path(), "dumped.json", &bootstrap);
    assert_eq!(code, 0, "the dumped bootstrap does not validate:\n{out}\n{}", bootstrap.render());
    assert!(out.contains("OK"), "{out}");

    // And served again, it dumps exactly the same.
    drop(proxy);
    let dumped = std::fs::read_to_string(&path).unwrap();
    let _again = Proxy::start(&dumped, &["--concurrency", "1"]);
    assert_eq!(get(port, "/hello").text(), "hello\n");
    let (body_again, _) = config_dump(admin);
    assert_eq!(body_again, body, "the dump of the dumped config differs");
}

fn tls_listener(port: u16, cert: &str, key: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: https
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [http/1.1]
            tls_certificates: [{{ certificate_chain: {cert}, private_key: {key} }}]
      filters:
      - name: tcp
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tls, cluster: web }}
  clusters:
  - name: web
    load_assignment: {{ cluster_name: web, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9 }} }} }} }}] }}] }}
"#
    )
}

#[test]
fn inline_private_key_is_redacted() {
    let (port, admin) = (free_port(), free_port());
    let key = format!("{{ inline_string: {TEST_KEY:?} }}");
    let cert = format!("{{ inline_string: {TEST_CERT:?} }}");
    let _p = Proxy::start(&with_admin(tls_listener(port, &cert, &key), admin), &["--concurrency", "1"]);
    let (body, bootstrap) = config_dump(admin);
    let tls = bootstrap.at("static_resources.listeners[0].filter_chains[0].transport_socket.typed_config");
    assert_eq!(str_at(tls, "common_tls_context.tls_certificates[0].private_key.inline_string"), "[redacted]");
    assert_eq!(str_at(tls, "common_tls_context.tls_certificates[0].certificate_chain.inline_string"), TEST_CERT);
    assert!(!body.contains("PRIVATE KEY"), "{body}");
    for line in TEST_KEY.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!body.contains(line), "the dump leaks key material `{line}`");
    }
    // This dump is deliberately not validated: `[redacted]` is not a key, so a TLS
    // context built from it fails (an operator restores the key before reusing it).
}

#[test]
fn tls_files_are_dumped_as_filenames_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_path, TEST_CERT).unwrap();
    std::fs::write(&key_path, TEST_KEY).unwrap();
    let (port, admin) = (free_port(), free_port());
    let cert = format!("{{ filename: {:?} }}", cert_path.display().to_string());
    let key = format!("{{ filename: {:?} }}", key_path.display().to_string());
    let _p = Proxy::start(&with_admin(tls_listener(port, &cert, &key), admin), &["--concurrency", "1"]);
    let (body, bootstrap) = config_dump(admin);
    let certs = bootstrap
        .at("static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0]");
    assert_eq!(str_at(certs, "certificate_chain.filename"), cert_path.to_str().unwrap());
    assert_eq!(str_at(certs, "private_key.filename"), key_path.to_str().unwrap());
    assert!(!body.contains("[redacted]") && !body.contains("PRIVATE KEY"), "{body}");
    let (code, out, _) = validate(dir.path(), "dumped.json", &bootstrap);
    assert_eq!(code, 0, "the dumped TLS bootstrap does not validate:\n{out}\n{}", bootstrap.render());
    assert!(out.contains("OK"), "{out}");
}

/// A strict JSON (RFC 8259) reader and writer, independent of sluice's own YAML-based
/// config parser, so that "the dump is JSON" is checked by something that accepts
/// nothing else.
mod json {
    use std::fmt::Write as _;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Num(String),
        Str(String),
        Arr(Vec<Value>),
        Obj(Vec<(String, Value)>),
    }

    impl Value {
        /// The value at `path` (`a.b[2].c`; keys may hold `@`).
        pub fn at(&self, path: &str) -> &Value {
            let mut cur = self;
            for part in path.split('.') {
                let (key, index) = match part.split_once('[') {
                    Some((k, i)) => (k, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
                    None => (part, None),
                };
                if !key.is_empty() {
                    let Value::Obj(fields) = cur else { panic!("`{key}` of a non-object in {path}") };
                    cur = &fields.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no `{key}` in {path}")).1;
                }
                if let Some(i) = index {
                    let Value::Arr(items) = cur else { panic!("index of a non-list in {path}") };
                    cur = items.get(i).unwrap_or_else(|| panic!("no [{i}] in {path}"));
                }
            }
            cur
        }

        /// Compact JSON.
        pub fn render(&self) -> String {
            let mut out = String::new();
            self.write(&mut out);
            out
        }

        fn write(&self, out: &mut String) {
            match self {
                Value::Null => out.push_str("null"),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Num(n) => out.push_str(n),
                Value::Str(s) => write_str(out, s),
                Value::Arr(items) => {
                    out.push('[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        v.write(out);
                    }
                    out.push(']');
                }
                Value::Obj(fields) => {
                    out.push('{');
                    for (i, (k, v)) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write_str(out, k);
                        out.push(':');
                        v.write(out);
                    }
                    out.push('}');
                }
            }
        }
    }

    fn write_str(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser { b: text.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        fn err<T>(&self, what: &str) -> Result<T, String> {
            Err(format!("{what} at byte {}", self.i))
        }

        fn eat(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.b.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                self.err(&format!("expected `{}`", c as char))
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.b.get(self.i) {
                Some(b'{') => self.object(),
                Some(b'[') => self.array(),
                Some(b'"') => self.string().map(Value::Str),
                Some(b't') => self.literal("true", Value::Bool(true)),
                Some(b'f') => self.literal("false", Value::Bool(false)),
                Some(b'n') => self.literal("null", Value::Null),
                Some(b'-' | b'0'..=b'9') => self.number(),
                _ => self.err("expected a value"),
            }
        }

        fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
            if self.b[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(v)
            } else {
                self.err("bad literal")
            }
        }

        fn digits(&mut self) -> usize {
            let start = self.i;
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            self.i - start
        }

        fn number(&mut self) -> Result<Value, String> {
            let start = self.i;
            if self.b[self.i] == b'-' {
                self.i += 1;
            }
            let int_start = self.i;
            if self.digits() == 0 || (self.b[int_start] == b'0' && self.i - int_start > 1) {
                return self.err("bad number");
            }
            if self.b.get(self.i) == Some(&b'.') {
                self.i += 1;
                if self.digits() == 0 {
                    return self.err("bad fraction");
                }
            }
            if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                if self.digits() == 0 {
                    return self.err("bad exponent");
                }
            }
            Ok(Value::Num(String::from_utf8(self.b[start..self.i].to_vec()).unwrap()))
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let h = self.b.get(self.i..self.i + 4).and_then(|h| std::str::from_utf8(h).ok());
            let v = h.and_then(|h| u32::from_str_radix(h, 16).ok()).ok_or_else(|| format!("bad \\u at {}", self.i))?;
            self.i += 4;
            Ok(v)
        }

        fn string(&mut self) -> Result<String, String> {
            self.i += 1;
            let mut out = Vec::new();
            loop {
                let Some(&c) = self.b.get(self.i) else { return self.err("unterminated string") };
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                    b'\\' => {
                        let Some(&e) = self.b.get(self.i) else { return self.err("bad escape") };
                        self.i += 1;
                        let ch = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hi = self.hex4()?;
                                let code = if (0xd800..0xdc00).contains(&hi) {
                                    if !self.b[self.i..].starts_with(b"\\u") {
                                        return self.err("lone surrogate");
                                    }
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                                } else {
                                    hi
                                };
                                char::from_u32(code).ok_or_else(|| format!("bad code point {code:x}"))?
                            }
                            _ => return self.err("bad escape"),
                        };
                        let mut buf = [0; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    c if c < 0x20 => return self.err("raw control character in a string"),
                    c => out.push(c),
                }
            }
        }

        fn array(&mut self) -> Result<Value, String> {
            self.i += 1;
            let mut items = Vec::new();
            self.ws();
            if self.b.get(self.i) == Some(&b']') {
                self.i += 1;
                return Ok(Value::Arr(items));
            }
            loop {
                items.push(self.value()?);
                self.ws();
                match self.b.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b']') => {
                        self.i += 1;
                        return Ok(Value::Arr(items));
                    }
                    _ => return self.err("expected `,` or `]`"),
                }
            }
        }

        fn object(&mut self) -> Result<Value, String> {
            self.i += 1;
            let mut fields: Vec<(String, Value)> = Vec::new();
            self.ws();
            if self.b.get(self.i) == Some(&b'}') {
                self.i += 1;
                return Ok(Value::Obj(fields));
            }
            loop {
                self.ws();
                if self.b.get(self.i) != Some(&b'"') {
                    return self.err("expected a key");
                }
                let key = self.string()?;
                if fields.iter().any(|(k, _)| *k == key) {
                    return self.err(&format!("duplicate key `{key}`"));
                }
                self.eat(b':')?;
                fields.push((key, self.value()?));
                self.ws();
                match self.b.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        return Ok(Value::Obj(fields));
                    }
                    _ => return self.err("expected `,` or `}`"),
                }
            }
        }
    }
}
