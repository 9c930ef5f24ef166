//! The filter on requests built by hand, with tokens signed here (HS256 with a shared
//! secret, ES256 and EdDSA with keys ring generates); RSA is covered end to end with
//! tokens a Python JOSE library mints.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sluice_config::hcm::{HttpFilter, HttpFilterKind};

use super::*;
use crate::http::filters::per_route::RouteFilterTable;

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

struct Keys {
    jwks: String,
    hs: EncodingKey,
    es: EncodingKey,
    ed: EncodingKey,
}

fn keys() -> Keys {
    let rng = SystemRandom::new();
    let es_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let es = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, es_pkcs8.as_ref(), &rng).unwrap();
    let point = es.public_key().as_ref();
    let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).unwrap();
    let ed_x = b64(ed.public_key().as_ref());
    let secret = b"a shared secret of at least 32 bytes!!";
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","kid":"hs","alg":"HS256","k":"{}"}},{{"kty":"EC","kid":"es","crv":"P-256","x":"{x}","y":"{y}"}},{{"kty":"OKP","kid":"ed","crv":"Ed25519","x":"{ed_x}"}}]}}"#,
        b64(secret)
    );
    Keys {
        jwks,
        hs: EncodingKey::from_secret(secret),
        es: EncodingKey::from_ec_der(es_pkcs8.as_ref()),
        ed: EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn mint(k: &Keys, alg: Algorithm, kid: &str, claims: serde_json::Value) -> String {
    let key = match alg {
        Algorithm::HS256 => &k.hs,
        Algorithm::ES256 => &k.es,
        _ => &k.ed,
    };
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

fn claims(iss: &str, aud: &str, exp_in: i64) -> serde_json::Value {
    serde_json::json!({"iss": iss, "sub": "alice", "aud": aud, "exp": unix_now() as i64 + exp_in, "n": 7, "scope": "read  write"})
}

fn config(k: &Keys, rest: &str) -> (Arc<JwtAuthnConfig>, CounterSet) {
    let jwks = k.jwks.replace('\'', "''");
    let yaml = format!(
        "name: jwt\ntyped_config:\n  '@type': type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n  providers:\n    p1:\n      issuer: https://issuer.example\n      audiences: [api]\n      local_jwks: {{inline_string: '{jwks}'}}\n      forward_payload_header: x-jwt-payload\n      payload_in_metadata: my_payload\n      normalize_payload_in_metadata: {{space_delimited_claims: [scope]}}\n      claim_to_headers: [{{header_name: x-sub, claim_name: sub}}, {{header_name: x-n, claim_name: n}}]\n    p2:\n      issuer: other\n      local_jwks: {{inline_string: '{jwks}'}}\n      from_headers: [{{name: x-token}}]\n      forward: true\n{rest}"
    );
    let n = sluice_config::node::parse(&yaml).unwrap();
    let mut d = sluice_config::decode::Decoder::new();
    let f: HttpFilter = d.decode(&n, "f").unwrap_or_else(|| panic!("{:?}", d.errors));
    let HttpFilterKind::JwtAuthn(j) = f.kind else { panic!() };
    let mut counters = CounterSet::default();
    let clusters = Arc::new(crate::upstream::cluster_manager::ClusterManager::new(Vec::new(), |_| Vec::new()));
    let c = JwtAuthnConfig::new(&j, &clusters, "http.in.", &mut counters).unwrap();
    (Arc::new(c), counters)
}

struct Run {
    status: Option<u16>,
    body: Vec<u8>,
    www: Option<String>,
    head: RequestHead,
    metadata: Vec<(String, sluice_config::metadata::Struct)>,
}

fn run(config: &Arc<JwtAuthnConfig>, method: &str, path: &str, headers: &[(&str, &str)]) -> Run {
    run_at(config, Instant::now(), method, path, headers)
}

fn run_at(config: &Arc<JwtAuthnConfig>, now: Instant, method: &str, path: &str, headers: &[(&str, &str)]) -> Run {
    let table = RouteFilterTable::default();
    let mut f = JwtAuthnFilter::new(Arc::clone(config), &table.view(None), 0);
    let mut head = RequestHead {
        method: method.into(),
        path: path.into(),
        authority: "api.example".into(),
        ..RequestHead::default()
    };
    head.headers.append(b"x-forwarded-proto", b"http");
    for (n, v) in headers {
        head.headers.append(n.as_bytes(), v.as_bytes());
    }
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    let runtime = crate::runtime::Snapshot::default();
    let cx = StreamContext {
        now,
        remote: a("10.0.0.1:1"),
        direct_remote: a("10.0.0.1:1"),
        local: a("10.0.0.2:80"),
        sni: None,
        peer_principals: &[],
        tls: false,
        cluster: "c",
        routed: true,
        health_check_failed: false,
        runtime: &runtime,
    };
    let mut cb = FilterCallbacks::default();
    let s = f.decode_headers(&mut head, true, &cx, &mut cb);
    let reply = cb.local_reply.take();
    assert_eq!(s == HeadersStatus::Continue, reply.is_none());
    let www = reply
        .as_ref()
        .and_then(|r| r.headers.iter().find(|(n, _)| n == b"www-authenticate"))
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap());
    Run {
        status: reply.as_ref().map(|r| r.status),
        body: reply.map(|r| r.body).unwrap_or_default(),
        www,
        head,
        metadata: cb.metadata,
    }
}

fn count(c: &CounterSet, name: &str) -> u64 {
    c.0.iter().find(|(n, _)| n == name).map(|(_, c)| c.get()).unwrap_or(0)
}

const RULES: &str = "  rules:\n  - match: {prefix: /open}\n  - match: {prefix: /any}\n    requires: {requires_any: {requirements: [{provider_name: p1}, {provider_name: p2}]}}\n  - match: {prefix: /opt}\n    requires: {allow_missing: {}}\n  - match: {prefix: /}\n    requires: {provider_name: p1}\n";

#[test]
fn good_tokens_of_each_algorithm_pass_and_are_forwarded_as_configured() {
    let k = keys();
    let (c, counters) = config(&k, RULES);
    for (alg, kid) in [(Algorithm::HS256, "hs"), (Algorithm::ES256, "es"), (Algorithm::EdDSA, "ed")] {
        let t = mint(&k, alg, kid, claims("https://issuer.example", "https://api/", 600));
        let r = run(&c, "GET", "/x", &[("authorization", &format!("Bearer {t}")), ("x-sub", "spoofed")]);
        assert_eq!(r.status, None, "{alg:?}: {}", String::from_utf8_lossy(&r.body));
        assert!(!r.head.headers.contains(b"authorization"), "forward: false removes the token");
        assert_eq!(r.head.headers.get_str(b"x-sub"), Some("alice"), "the client's x-sub is replaced");
        assert_eq!(r.head.headers.get_str(b"x-n"), Some("7"));
        let payload = r.head.headers.get_str(b"x-jwt-payload").unwrap();
        assert_eq!(payload, t.split('.').nth(1).unwrap());
        let (ns, m) = &r.metadata[0];
        assert_eq!(ns, METADATA_NAMESPACE);
        let Some(sluice_config::metadata::Value::Struct(p)) = m.get("my_payload") else { panic!("{m:?}") };
        use sluice_config::metadata::Value as V;
        assert_eq!(p.get("sub"), Some(&V::String("alice".into())));
        let scope = V::List(vec![V::String("read".into()), V::String("write".into())]);
        assert_eq!(p.get("scope"), Some(&scope), "normalize_payload_in_metadata");
    }
    let t = mint(&k, Algorithm::HS256, "hs", claims("https://issuer.example", "api", 600));
    let r = run(&c, "GET", "/x?access_token=", &[]);
    assert_eq!(
        r.body, b"Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        "an empty parameter is a token"
    );
    let r = run(&c, "GET", &format!("/x?a=1&access_token={t}"), &[]);
    assert_eq!(r.status, None, "the default query parameter");
    assert_eq!(r.head.path, "/x?a=1", "and it is removed");
    assert_eq!(count(&counters, "http.in.jwt_authn.allowed"), 4);
    assert_eq!(count(&counters, "http.in.jwt_authn.denied"), 1);
}

#[test]
fn failures_get_envoys_status_body_and_www_authenticate() {
    let k = keys();
    let (c, counters) = config(&k, RULES);
    let r = run(&c, "GET", "/x?q=1", &[]);
    assert_eq!((r.status, r.body.as_slice()), (Some(401), &b"Jwt is missing"[..]));
    assert_eq!(r.www.as_deref(), Some("Bearer realm=\"http://api.example/x\""));
    let cases = [
        (claims("https://issuer.example", "api", -120), 401, "Jwt is expired"),
        (claims("https://wrong.example", "api", 600), 401, "Jwt issuer is not configured"),
        (claims("https://issuer.example", "web", 600), 403, "Audiences in Jwt are not allowed"),
    ];
    for (cl, status, body) in cases {
        let t = mint(&k, Algorithm::ES256, "es", cl);
        let r = run(&c, "GET", "/x", &[("authorization", &format!("Bearer {t}"))]);
        assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (Some(status), body));
        assert_eq!(r.www.as_deref(), Some("Bearer realm=\"http://api.example/x\", error=\"invalid_token\""));
    }
    let t = mint(&k, Algorithm::ES256, "es", claims("https://issuer.example", "api", 600));
    let mut forged = t.clone();
    forged.pop();
    forged.push(if t.ends_with('A') { 'B' } else { 'A' });
    let r = run(&c, "GET", "/x", &[("authorization", &format!("Bearer {forged}"))]);
    assert_eq!(r.body, b"Jwt verification fails");
    let hs_as_es = mint(&k, Algorithm::HS256, "es", claims("https://issuer.example", "api", 600));
    let r = run(&c, "GET", "/x", &[("authorization", &format!("Bearer {hs_as_es}"))]);
    assert_eq!(r.body, b"Jwt verification fails", "an EC key never checks an HMAC");
    let unknown_kid = mint(&k, Algorithm::ES256, "nope", claims("https://issuer.example", "api", 600));
    let r = run(&c, "GET", "/x", &[("authorization", &format!("Bearer {unknown_kid}"))]);
    assert_eq!(r.body, b"Jwks doesn't have key to match kid or alg from Jwt");
    let r = run(&c, "GET", "/x", &[("authorization", "Bearer not-a-jwt")]);
    assert_eq!(r.body, b"Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections");
    assert_eq!(count(&counters, "http.in.jwt_authn.denied"), 8);
    assert_eq!(count(&counters, "http.in.jwt_authn.allowed"), 0);
}

#[test]
fn rules_any_allow_missing_and_cors_preflight() {
    let k = keys();
    let (c, counters) = config(&k, &format!("{RULES}  bypass_cors_preflight: true\n"));
    assert_eq!(run(&c, "GET", "/open", &[]).status, None, "a rule without requires");
    let p2 = mint(&k, Algorithm::HS256, "hs", claims("other", "x", 600));
    let r = run(&c, "GET", "/any", &[("x-token", &p2)]);
    assert_eq!(r.status, None, "requires_any: p2's header");
    assert_eq!(r.head.headers.get_str(b"x-token"), Some(p2.as_str()), "p2 forwards its token");
    assert_eq!(run(&c, "GET", "/any", &[]).body, b"Jwt is missing");
    assert_eq!(run(&c, "GET", "/opt", &[]).status, None, "allow_missing without a token");
    let bad = mint(&k, Algorithm::HS256, "hs", claims("other", "x", -3600));
    assert_eq!(run(&c, "GET", "/opt", &[("x-token", &bad)]).body, b"Jwt is expired", "but not with a bad one");
    assert_eq!(run(&c, "GET", "/opt", &[("x-token", &p2)]).status, None);
    let pre = [("origin", "https://web"), ("access-control-request-method", "GET")];
    assert_eq!(run(&c, "OPTIONS", "/x", &pre).status, None);
    assert_eq!(count(&counters, "http.in.jwt_authn.cors_preflight_bypassed"), 1);
    assert_eq!(run(&c, "OPTIONS", "/x", &pre[..1]).status, Some(401), "not a preflight");
}

#[test]
fn max_lifetime_requires_a_near_exp() {
    let k = keys();
    let (c, _) = config(&k, "  rules:\n  - match: {prefix: /}\n    requires: {provider_name: p1}\n");
    let mut j = c.providers[0].config.clone();
    j.max_lifetime = Some(Duration::from_secs(300));
    let p = Provider::new(&j, Jwks::parse(k.jwks.as_bytes()).ok());
    let t = mint(&k, Algorithm::HS256, "hs", claims("https://issuer.example", "api", 600));
    let ok = mint(&k, Algorithm::HS256, "hs", claims("https://issuer.example", "api", 200));
    let providers = [p];
    let v = Verifier::new(&sluice_config::filters::jwt_authn::JwtRequirement::ProviderName("p1".into()), &providers);
    let (hit, miss) = (SharedCounter::default(), SharedCounter::default());
    let mut worker = super::worker::WorkerState::new(&providers);
    for (tok, want) in [(t, Status::JwtExpired), (ok, Status::Ok)] {
        let mut ctx = Context {
            providers: &providers,
            now: unix_now(),
            instant: Instant::now(),
            fetch_failed: &[],
            jwt_cache_hit: &hit,
            jwt_cache_miss: &miss,
            worker: &mut worker,
            extracted: Default::default(),
        };
        let mut head = RequestHead::default();
        head.headers.append(b"authorization", format!("Bearer {tok}").as_bytes());
        assert_eq!(ctx.verify(&v, &mut head), want);
    }
    assert_eq!(miss.get(), 2);
}

#[test]
fn invalid_jwks_fails_every_token_with_no_valid_key() {
    let mut k = keys();
    k.jwks = "{\"keys\": 3}".into();
    let (c, _) = config(&k, "  rules:\n  - match: {prefix: /}\n    requires: {provider_name: p1}\n");
    let t = mint(&k, Algorithm::HS256, "hs", claims("https://issuer.example", "api", 600));
    let r = run(&c, "GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    assert_eq!(r.body, b"Jwks doesn't have any valid public key");
}

const CACHED: &str = "    p3:\n      issuer: cached\n      audiences: [api]\n      local_jwks: {inline_string: 'JWKS'}\n      forward: true\n      jwt_cache_config: {jwt_cache_size: 2}\n  rules:\n  - match: {prefix: /web}\n    requires: {provider_and_audiences: {provider_name: p3, audiences: [web]}}\n  - match: {prefix: /any}\n    requires: {allow_missing: {}}\n  - match: {prefix: /}\n    requires: {provider_name: p3}\n";

#[test]
fn jwt_cache_config_skips_the_signature_not_the_claims() {
    let k = keys();
    let (c, counters) = config(&k, &CACHED.replace("JWKS", &k.jwks.replace('\'', "''")));
    let t = mint(&k, Algorithm::ES256, "es", claims("cached", "api", 120));
    let bearer = format!("Bearer {t}");
    let now = Instant::now();
    for _ in 0..3 {
        let r = run_at(&c, now, "GET", "/x", &[("authorization", &bearer)]);
        assert_eq!(r.status, None, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_miss"), 1);
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_hit"), 2);
    let r = run_at(&c, now, "GET", "/web", &[("authorization", &bearer)]);
    assert_eq!(r.status, Some(403), "a cache hit still has its audiences checked");
    assert_eq!(r.body, b"Audiences in Jwt are not allowed");
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_hit"), 3);
    // A token with the same claims and a forged signature is another key: verified, refused.
    let mut forged = t.clone();
    forged.pop();
    forged.push(if t.ends_with('A') { 'B' } else { 'A' });
    let r = run_at(&c, now, "GET", "/x", &[("authorization", &format!("Bearer {forged}"))]);
    assert_eq!(r.body, b"Jwt verification fails");
    // allow_missing has no provider of its own: Envoy neither looks up nor fills the cache.
    let r = run_at(&c, now, "GET", "/any", &[("authorization", &bearer)]);
    assert_eq!(r.status, None);
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_hit"), 3);
    // Past exp (and the 60 s of skew) the cached token is expired like any other.
    let later = now + Duration::from_secs(120 + 62);
    let r = run_at(&c, later, "GET", "/x", &[("authorization", &bearer)]);
    assert_eq!((r.status, r.body.as_slice()), (Some(401), &b"Jwt is expired"[..]));
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_hit"), 3, "the expired entry was dropped");
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_miss"), 3);
}

#[test]
fn the_token_cache_is_per_worker() {
    let k = keys();
    let (c, counters) = config(&k, &CACHED.replace("JWKS", &k.jwks.replace('\'', "''")));
    let bearer = format!("Bearer {}", mint(&k, Algorithm::ES256, "es", claims("cached", "api", 600)));
    assert_eq!(run(&c, "GET", "/x", &[("authorization", &bearer)]).status, None);
    let (c2, b2) = (Arc::clone(&c), bearer.clone());
    std::thread::spawn(move || assert_eq!(run(&c2, "GET", "/x", &[("authorization", &b2)]).status, None))
        .join()
        .unwrap();
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_miss"), 2, "another worker verifies it again");
    assert_eq!(run(&c, "GET", "/x", &[("authorization", &bearer)]).status, None);
    assert_eq!(count(&counters, "http.in.jwt_authn.jwt_cache_hit"), 1);
}

/// A config whose provider `r` fetches its keys through cluster `idp`, kept 60 s.
fn remote_config() -> (Arc<JwtAuthnConfig>, CounterSet) {
    let bootstrap = "static_resources:\n  clusters:\n  - name: idp\n    load_assignment: {cluster_name: idp, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]}\n";
    let loaded = sluice_config::load_str(bootstrap).unwrap_or_else(|e| panic!("{e}"));
    let clusters =
        Arc::new(crate::upstream::cluster_manager::ClusterManager::new(loaded.bootstrap.clusters.clone(), |_| {
            Vec::new()
        }));
    let yaml = "name: jwt\ntyped_config:\n  '@type': type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n  providers:\n    r:\n      issuer: https://issuer.example\n      remote_jwks: {http_uri: {uri: 'https://idp.example/keys', cluster: idp, timeout: 1s}, cache_duration: 60s}\n  rules:\n  - match: {prefix: /}\n    requires: {provider_name: r}\n";
    let n = sluice_config::node::parse(yaml).unwrap();
    let mut d = sluice_config::decode::Decoder::new();
    let f: HttpFilter = d.decode(&n, "f").unwrap_or_else(|| panic!("{:?}", d.errors));
    let HttpFilterKind::JwtAuthn(j) = f.kind else { panic!() };
    let mut counters = CounterSet::default();
    (Arc::new(JwtAuthnConfig::new(&j, &clusters, "http.in.", &mut counters).unwrap()), counters)
}

fn context(now: Instant, runtime: &crate::runtime::Snapshot) -> StreamContext<'_> {
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    StreamContext {
        now,
        remote: a("10.0.0.1:1"),
        direct_remote: a("10.0.0.1:1"),
        local: a("10.0.0.2:80"),
        sni: None,
        peer_principals: &[],
        tls: false,
        cluster: "c",
        routed: true,
        health_check_failed: false,
        runtime,
    }
}

/// A request with `token` through a fresh filter: its status, the fetches it asked for,
/// and the filter (to hand it their outcomes).
fn start(
    c: &Arc<JwtAuthnConfig>,
    now: Instant,
    token: &str,
) -> (HeadersStatus, FilterCallbacks, JwtAuthnFilter, RequestHead) {
    let table = RouteFilterTable::default();
    let mut f = JwtAuthnFilter::new(Arc::clone(c), &table.view(None), 0);
    let mut head =
        RequestHead { method: "GET".into(), path: "/x".into(), authority: "api".into(), ..Default::default() };
    head.headers.append(b"authorization", format!("Bearer {token}").as_bytes());
    let runtime = crate::runtime::Snapshot::default();
    let mut cb = FilterCallbacks::default();
    let s = f.decode_headers(&mut head, true, &context(now, &runtime), &mut cb);
    (s, cb, f, head)
}

fn answer(status: u16, body: &str) -> crate::http::async_client::Outcome {
    Ok(crate::http::async_client::Response {
        head: crate::http::ResponseHead { status, ..Default::default() },
        body: body.as_bytes().to_vec(),
        trailers: None,
    })
}

#[test]
fn remote_keys_are_fetched_per_worker_and_kept_for_cache_duration() {
    let k = keys();
    let (c, counters) = remote_config();
    let t = mint(&k, Algorithm::ES256, "es", claims("https://issuer.example", "api", 600));
    let now = Instant::now();
    let runtime = crate::runtime::Snapshot::default();
    let (s, mut cb, mut f, mut head) = start(&c, now, &t);
    assert_eq!(s, HeadersStatus::StopIteration, "the request waits for the keys");
    assert_eq!(cb.calls.len(), 1);
    let call = cb.calls.pop().unwrap();
    assert_eq!(call.client.cluster_name(), "idp");
    let h = &call.request.head;
    assert_eq!(
        (h.method.as_str(), h.scheme.as_str(), h.authority.as_str(), h.path.as_str()),
        ("GET", "https", "idp.example", "/keys")
    );
    assert_eq!(call.request.timeout, Some(Duration::from_secs(1)));
    let mut cb = FilterCallbacks::default();
    let s = f.on_async_complete(call.tag, answer(200, &k.jwks), &mut head, &context(now, &runtime), &mut cb);
    assert_eq!(s, HeadersStatus::Continue, "{:?}", cb.local_reply);
    assert!(!head.headers.contains(b"authorization"), "verified, then removed (forward: false)");
    // The keys are this worker's now: no fetch until cache_duration has passed.
    let (s, cb, _, _) = start(&c, now + Duration::from_secs(59), &t);
    assert_eq!((s, cb.calls.len()), (HeadersStatus::Continue, 0));
    let (s, cb, _, _) = start(&c, now + Duration::from_secs(60), &t);
    assert_eq!((s, cb.calls.len()), (HeadersStatus::StopIteration, 1), "expired keys are fetched again");
    // Another worker fetches its own.
    let c2 = Arc::clone(&c);
    let t2 = t.clone();
    let fetched = std::thread::spawn(move || start(&c2, now, &t2).1.calls.len()).join().unwrap();
    assert_eq!(fetched, 1);
    assert_eq!(count(&counters, "http.in.jwt_authn.jwks_fetch_success"), 1);
}

#[test]
fn a_failed_fetch_fails_the_token_with_envoys_status() {
    let k = keys();
    let (c, counters) = remote_config();
    let t = mint(&k, Algorithm::ES256, "es", claims("https://issuer.example", "api", 600));
    let runtime = crate::runtime::Snapshot::default();
    let failures = [
        answer(503, "no healthy upstream"),
        answer(200, ""),
        answer(200, "{\"keys\": 7}"),
        Err(crate::http::async_client::Failure::Timeout),
    ];
    for (i, outcome) in failures.into_iter().enumerate() {
        let now = Instant::now();
        let (s, mut cb, mut f, mut head) = start(&c, now, &t);
        assert_eq!(s, HeadersStatus::StopIteration, "{i}: a failure is not remembered");
        let tag = cb.calls.pop().unwrap().tag;
        let mut cb = FilterCallbacks::default();
        let s = f.on_async_complete(tag, outcome, &mut head, &context(now, &runtime), &mut cb);
        assert_eq!(s, HeadersStatus::StopIteration);
        let reply = cb.local_reply.expect("a local reply");
        assert_eq!((reply.status, reply.body.as_slice()), (401, &b"Jwks remote fetch is failed"[..]), "{i}");
        assert_eq!(reply.details, "jwt_authn_access_denied{Jwks_remote_fetch_is_failed}");
    }
    assert_eq!(count(&counters, "http.in.jwt_authn.jwks_fetch_failed"), 4);
    assert_eq!(count(&counters, "http.in.jwt_authn.denied"), 4);
    // A token that fails before its signature needs no keys: refused without a fetch.
    let expired = mint(&k, Algorithm::ES256, "es", claims("https://issuer.example", "api", -3600));
    let (s, cb, _, _) = start(&c, Instant::now(), &expired);
    assert_eq!((s, cb.calls.len()), (HeadersStatus::StopIteration, 0));
    assert_eq!(cb.local_reply.map(|r| r.body), Some(b"Jwt is expired".to_vec()));
}
