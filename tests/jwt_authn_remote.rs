//! jwt_authn's `remote_jwks` end to end on both backends: the keys are fetched from a
//! real HTTP origin (an HTTP/1.1 server in this file that serves the JWKS it is given and
//! counts its requests) through the cluster `http_uri.cluster` names; tokens are minted by
//! PyJWT. A fetch that works lets good tokens in (`jwks_fetch_success`); the keys are then
//! cached per worker (many requests, one fetch) until `cache_duration` passes, after
//! which rotated keys are fetched; a fetch that fails (the origin is down, or answers
//! 503) gets 401 "Jwks remote fetch is failed" and `jwks_fetch_failed`, and is tried
//! again by the next request; with `retry_policy` it is retried first.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::conn::{Acceptor, Conn, Listener};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// Two EC keys (`a`, `b`), a JWKS of each, and a token each signs.
const MINT: &str = r#"
import json, time, jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

now = int(time.time())
for kid in ["a", "b"]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg="ES256")
    print("jwks_" + kid, json.dumps({"keys": [jwk]}))
    claims = {"iss": "https://idp.example", "sub": "alice", "aud": "api", "exp": now + 600}
    print("token_" + kid, jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid}))
"#;

struct Minted(std::collections::HashMap<String, String>);

fn mint() -> Minted {
    crate::jwt_authn::ensure_pyjwt();
    let out = Command::new("timeout").args(["60", "python3", "-c", MINT]).output().expect("run python3");
    assert!(out.status.success(), "minting failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    Minted(text.lines().filter_map(|l| l.split_once(' ')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

impl Minted {
    fn bearer(&self, kid: &str) -> String {
        format!("Bearer {}", self.0[&format!("token_{kid}")])
    }

    fn jwks(&self, kid: &str) -> String {
        self.0[&format!("jwks_{kid}")].clone()
    }
}

/// An HTTP/1.1 origin answering every request with `200` and the JWKS it holds (or
/// the status forced on it), `connection: close`; it records the paths asked for.
struct JwksOrigin {
    addr: std::net::SocketAddr,
    jwks: Arc<Mutex<String>>,
    status: Arc<Mutex<u16>>,
    paths: Arc<Mutex<Vec<String>>>,
    hits: Arc<AtomicUsize>,
    /// The next this many requests get 503.
    fail_next: Arc<AtomicUsize>,
    _acceptor: Acceptor,
}

impl JwksOrigin {
    fn serve(listener: Listener, jwks: String) -> JwksOrigin {
        let jwks = Arc::new(Mutex::new(jwks));
        let status = Arc::new(Mutex::new(200));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let fail_next = Arc::new(AtomicUsize::new(0));
        let (j, s, p, h) = (Arc::clone(&jwks), Arc::clone(&status), Arc::clone(&paths), Arc::clone(&hits));
        let f = Arc::clone(&fail_next);
        let acceptor = Acceptor::start(listener, move |c: Conn, _| {
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let mut writer = c.try_clone().unwrap();
            let mut reader = BufReader::new(c);
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim_end().is_empty() {
                    break;
                }
            }
            p.lock().unwrap().push(line.split(' ').nth(1).unwrap_or("").to_string());
            h.fetch_add(1, Ordering::SeqCst);
            let failing = f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            let status = if failing { 503 } else { *s.lock().unwrap() };
            let body = if status == 200 { j.lock().unwrap().clone() } else { "unavailable".to_string() };
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(body.as_bytes()));
            let _ = writer.flush();
        });
        JwksOrigin { addr: acceptor.addr, jwks, status, paths, hits, fail_next, _acceptor: acceptor }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Provider `idp` with its keys at `http://idp.example/.well-known/jwks.json` through
/// cluster `idp`, kept for `cache_duration`.
fn filters(cache_duration: &str) -> String {
    format!(
        r#"- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      idp:
        issuer: https://idp.example
        audiences: [api]
        remote_jwks:
          http_uri: {{ uri: "http://idp.example/.well-known/jwks.json", cluster: idp, timeout: 2s }}
          cache_duration: {cache_duration}
    rules:
    - match: {{ prefix: /public }}
    - match: {{ prefix: / }}
      requires: {{ provider_name: idp }}
"#
    )
}

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn the_keys_are_fetched_once_and_cached(backend: Backend) {
    let m = mint();
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let idp = JwksOrigin::serve(net.listen(), m.jwks("a"));
    let (web, keys) = ([origin.addr], [idp.addr]);
    let clusters =
        [ClusterAt { name: "web", endpoints: &web, extra: "" }, ClusterAt { name: "idp", endpoints: &keys, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters("300s"), 1);
    let mut c = p.client();
    assert_eq!(c.get("/public").status, 200, "no token needed, nothing fetched");
    assert_eq!(idp.hits(), 0);
    for i in 0..10 {
        let r = c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    assert_eq!(idp.hits(), 1, "one fetch for ten requests");
    assert_eq!(idp.paths.lock().unwrap().as_slice(), ["/.well-known/jwks.json"]);
    let r = c.request("GET", "/api", &[("authorization", &m.bearer("b"))], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwks doesn't have key to match kid or alg from Jwt"));
    assert_eq!(idp.hits(), 1, "fresh keys are not fetched again for an unknown kid");
    let r = c.get("/api");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwt is missing"), "no token: no fetch");
    assert_eq!(origin.requests(), 11);
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_success"), 1);
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_failed"), 0);
    assert_eq!(p.counter("http.ingress.jwt_authn.allowed"), 11);
}

fn rotated_keys_are_fetched_after_cache_duration(backend: Backend) {
    let m = mint();
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let idp = JwksOrigin::serve(net.listen(), m.jwks("a"));
    let (web, keys) = ([origin.addr], [idp.addr]);
    let clusters =
        [ClusterAt { name: "web", endpoints: &web, extra: "" }, ClusterAt { name: "idp", endpoints: &keys, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters("1s"), 1);
    let mut c = p.client();
    assert_eq!(c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"").status, 200);
    *idp.jwks.lock().unwrap() = m.jwks("b");
    assert_eq!(c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"").status, 200, "cached keys");
    assert_eq!(idp.hits(), 1);
    std::thread::sleep(Duration::from_millis(1200));
    let r = c.request("GET", "/api", &[("authorization", &m.bearer("b"))], b"");
    assert_eq!(r.status, 200, "the rotated key, fetched: {}", r.text());
    assert_eq!(idp.hits(), 2);
    let r = c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwks doesn't have key to match kid or alg from Jwt"));
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_success"), 2);
}

fn a_failed_fetch_is_refused_and_tried_again(backend: Backend) {
    let m = mint();
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let idp = JwksOrigin::serve(net.listen(), m.jwks("a"));
    *idp.status.lock().unwrap() = 503;
    let down = [net.refused_addr()];
    let (web, keys) = ([origin.addr], [idp.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "idp", endpoints: &keys, extra: "" },
        ClusterAt { name: "down", endpoints: &down, extra: "" },
    ];
    // The origin answers 503: the fetch fails, and so does the request.
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters("300s"), 1);
    let mut c = p.client();
    let r = c.request("GET", "/api", &[("authorization", &m.bearer("a")), ("host", "shop.example")], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwks remote fetch is failed"));
    let www = "Bearer realm=\"http://shop.example/api\", error=\"invalid_token\"";
    assert_eq!(r.header("www-authenticate"), Some(www));
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_failed"), 1);
    // A failure is not remembered: the next request fetches again, and gets the keys.
    *idp.status.lock().unwrap() = 200;
    let r = c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.hits(), 2);
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_success"), 1);
    assert_eq!(origin.requests(), 1);
    drop(c);
    drop(p);
    // The origin is down (nothing listens on the cluster's address).
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters("300s").replace("cluster: idp", "cluster: down"), 1);
    let mut c = p.client();
    for _ in 0..2 {
        let r = c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"");
        assert_eq!((r.status, r.text().as_str()), (401, "Jwks remote fetch is failed"));
    }
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_failed"), 2);
    assert_eq!(p.counter("http.ingress.jwt_authn.denied"), 2);
    assert_eq!(origin.requests(), 1, "no refused request reaches the origin");
}

/// `remote_jwks.retry_policy`: a fetch answered 503 is retried (Envoy retries it on
/// 5xx, gateway-error, connect-failure and reset, with the jittered back-off) up to
/// `num_retries` times; within them the request gets in, past them it gets 401
/// "Jwks remote fetch is failed".
fn a_failed_fetch_is_retried_as_the_retry_policy_says(backend: Backend) {
    let m = mint();
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let idp = JwksOrigin::serve(net.listen(), m.jwks("a"));
    let (web, keys) = ([origin.addr], [idp.addr]);
    let clusters =
        [ClusterAt { name: "web", endpoints: &web, extra: "" }, ClusterAt { name: "idp", endpoints: &keys, extra: "" }];
    let filters = filters("300s").replace(
        "          cache_duration: 300s\n",
        "          cache_duration: 300s\n          retry_policy: { num_retries: 2, retry_back_off: { base_interval: 0.01s, max_interval: 0.05s } }\n",
    );
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters, 1);
    let mut c = p.client();
    // Three failures: the first try and both retries.
    idp.fail_next.store(3, Ordering::SeqCst);
    let r = c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwks remote fetch is failed"));
    assert_eq!(idp.hits(), 3, "one try and num_retries retries");
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_failed"), 1);
    // Two failures: the second retry gets the keys.
    idp.fail_next.store(2, Ordering::SeqCst);
    let r = c.request("GET", "/api", &[("authorization", &m.bearer("a"))], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.hits(), 6);
    assert_eq!(p.counter("http.ingress.jwt_authn.jwks_fetch_success"), 1);
    assert_eq!(p.counter("cluster.idp.upstream_rq_retry"), 4);
    assert_eq!(origin.requests(), 1);
}

on_both_backends!(
    a_failed_fetch_is_retried_as_the_retry_policy_says,
    the_keys_are_fetched_once_and_cached,
    rotated_keys_are_fetched_after_cache_duration,
    a_failed_fetch_is_refused_and_tried_again
);
