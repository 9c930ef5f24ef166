//! The JWT authentication filter end to end on both backends, with tokens minted by a
//! real JOSE library (Python PyJWT with `cryptography`, installed with pip when
//! missing): RS256/PS384/ES256/EdDSA/HS512 tokens verified against a local JWKS;
//! missing, expired, not-yet-valid, wrong-issuer, wrong-audience and forged tokens get
//! Envoy's 401/403 bodies and `WWW-Authenticate`; `allow_missing`, `requires_any`, a
//! route's `PerRouteConfig` (`disabled`, `requirement_name`, an unknown name),
//! `forward_payload_header`, `claim_to_headers`, `forward`, `payload_in_metadata` (in
//! the access log); `jwt_cache_config` (a cached token still expires);
//! `http.<prefix>.jwt_authn.*`.

use std::collections::HashMap;
use std::process::Command;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// Make `import jwt, cryptography` work, installing PyJWT[crypto] with pip when missing.
pub(crate) fn ensure_pyjwt() {
    let works = || Command::new("python3").args(["-c", "import jwt, cryptography"]).status().is_ok_and(|s| s.success());
    if works() {
        return;
    }
    eprintln!("jwt_authn: installing PyJWT[crypto] with pip");
    let _ = Command::new("pip3").args(["install", "-q", "--break-system-packages", "PyJWT[crypto]"]).status();
    assert!(works(), "python3 `jwt` missing and `pip3 install PyJWT[crypto]` failed");
}

/// Fresh keys, their JWKS and tokens: one `name token` line each, and `jwks <json>`.
const MINT: &str = r#"
import json, time, jwt
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519
from jwt.algorithms import RSAAlgorithm, ECAlgorithm, OKPAlgorithm

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
ed_key = ed25519.Ed25519PrivateKey.generate()
secret = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

def jwk(alg_cls, key, kid, **extra):
    d = json.loads(alg_cls.to_jwk(key.public_key()))
    d.update(kid=kid, **extra)
    return d

keys = [jwk(RSAAlgorithm, rsa_key, "rsa"), jwk(ECAlgorithm, ec_key, "ec"), jwk(OKPAlgorithm, ed_key, "ed"),
        {"kty": "oct", "kid": "hs", "alg": "HS512", "k": jwt.utils.base64url_encode(secret).decode()}]
print("jwks", json.dumps({"keys": keys}))

now = int(time.time())
def claims(**over):
    c = {"iss": "https://issuer.example", "sub": "alice", "aud": "api", "exp": now + 600, "iat": now,
         "org": {"id": "acme"}, "level": 3}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}

def mint(name, key, alg, kid, **over):
    print(name, jwt.encode(claims(**over), key, algorithm=alg, headers={"kid": kid}))

mint("rs256", rsa_key, "RS256", "rsa")
mint("ps384", rsa_key, "PS384", "rsa")
mint("es256", ec_key, "ES256", "ec")
mint("eddsa", ed_key, "EdDSA", "ed")
mint("hs512", secret, "HS512", "hs")
mint("expired", rsa_key, "RS256", "rsa", exp=now - 3600)
mint("not_yet", rsa_key, "RS256", "rsa", nbf=now + 3600)
mint("wrong_iss", rsa_key, "RS256", "rsa", iss="https://evil.example")
mint("wrong_aud", rsa_key, "RS256", "rsa", aud="web")
mint("forged", other_rsa, "RS256", "rsa")
mint("partner", ec_key, "ES256", "ec", iss="partner", aud=None)
mint("short", rsa_key, "RS256", "rsa", exp=now + 6)
print("short_exp", now + 6)
"#;

struct Minted {
    jwks: String,
    tokens: HashMap<String, String>,
}

fn mint() -> Minted {
    ensure_pyjwt();
    let out = Command::new("timeout").args(["60", "python3", "-c", MINT]).output().expect("run python3");
    assert!(out.status.success(), "minting failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut jwks = String::new();
    let mut tokens = HashMap::new();
    for line in text.lines() {
        let (name, value) = line.split_once(' ').unwrap();
        if name == "jwks" {
            jwks = value.to_string();
        } else {
            tokens.insert(name.to_string(), value.to_string());
        }
    }
    Minted { jwks, tokens }
}

impl Minted {
    fn bearer(&self, name: &str) -> String {
        format!("Bearer {}", self.tokens[name])
    }
}

/// Provider `main` (the default locations; payload and claims forwarded) and
/// `partner` (its own header, token forwarded); rules by path; a requirement map.
fn filters(jwks_path: &str) -> String {
    format!(
        r#"- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      main:
        issuer: https://issuer.example
        audiences: [api]
        local_jwks: {{ filename: "{jwks_path}" }}
        forward_payload_header: x-jwt-payload
        payload_in_metadata: jwt_payload
        claim_to_headers:
        - {{ header_name: x-jwt-sub, claim_name: sub }}
        - {{ header_name: x-jwt-org, claim_name: org.id }}
        - {{ header_name: x-jwt-level, claim_name: level }}
      partner:
        issuer: partner
        local_jwks: {{ filename: "{jwks_path}" }}
        from_headers: [{{ name: x-partner-token, value_prefix: "Token " }}]
        forward: true
    rules:
    - match: {{ prefix: /public }}
    - match: {{ prefix: /optional }}
      requires: {{ allow_missing: {{}} }}
    - match: {{ prefix: /either }}
      requires: {{ requires_any: {{ requirements: [{{ provider_name: main }}, {{ provider_name: partner }}] }} }}
    - match: {{ prefix: / }}
      requires: {{ provider_name: main }}
    requirement_map:
      partner_only: {{ provider_name: partner }}
"#
    )
}

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/health" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn: { "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig, disabled: true }
  - match: { prefix: "/partners" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn: { "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig, requirement_name: partner_only }
  - match: { prefix: "/misnamed" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn: { "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig, requirement_name: nope }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn setup(backend: Backend) -> (Minted, tempfile::NamedTempFile, Net) {
    let m = mint();
    let jwks = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(jwks.path(), &m.jwks).unwrap();
    (m, jwks, Net::new(backend))
}

fn good_tokens_pass_and_their_claims_are_forwarded(backend: Backend) {
    let (m, jwks, net) = setup(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters(jwks.path().to_str().unwrap()), 1);
    let mut c = p.client();
    for alg in ["rs256", "ps384", "es256", "eddsa", "hs512"] {
        let auth = m.bearer(alg);
        let r = c.request("GET", "/api", &[("authorization", &auth), ("x-jwt-sub", "mallory")], b"");
        assert_eq!(r.status, 200, "{alg}: {}", r.text());
        let seen = origin.seen().pop().unwrap();
        assert_eq!(seen.header("authorization"), None, "{alg}: the token is not forwarded");
        assert_eq!(seen.header("x-jwt-sub"), Some("alice"), "{alg}: the client's x-jwt-sub is replaced");
        assert_eq!(seen.header("x-jwt-org"), Some("acme"), "{alg}: a nested claim");
        assert_eq!(seen.header("x-jwt-level"), Some("3"));
        let payload = m.tokens[alg].split('.').nth(1).unwrap();
        assert_eq!(seen.header("x-jwt-payload"), Some(payload), "{alg}: forward_payload_header");
    }
    let r = c.request("GET", &format!("/api?x=1&access_token={}", m.tokens["es256"]), &[], b"");
    assert_eq!(r.status, 200, "the access_token parameter: {}", r.text());
    assert_eq!(origin.seen().pop().unwrap().path, "/api?x=1", "and it is removed");
    let partner = format!("Token {}", m.tokens["partner"]);
    assert_eq!(c.request("GET", "/either", &[("x-partner-token", &partner)], b"").status, 200);
    assert_eq!(origin.seen().pop().unwrap().header("x-partner-token"), Some(partner.as_str()), "forward: true");
    assert_eq!(p.counter("http.ingress.jwt_authn.allowed"), 7);
    assert_eq!(p.counter("http.ingress.jwt_authn.denied"), 0);
}

fn bad_or_missing_tokens_are_refused_as_envoy_does(backend: Backend) {
    let (m, jwks, net) = setup(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters(jwks.path().to_str().unwrap()), 1);
    let mut c = p.client();
    let r = c.request("GET", "/api/items?page=2", &[("host", "shop.example")], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwt is missing"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"http://shop.example/api/items\""));
    let cases = [
        ("expired", 401, "Jwt is expired"),
        ("not_yet", 401, "Jwt not yet valid"),
        ("wrong_iss", 401, "Jwt issuer is not configured"),
        ("wrong_aud", 403, "Audiences in Jwt are not allowed"),
        ("forged", 401, "Jwt verification fails"),
    ];
    for (name, status, body) in cases {
        let auth = m.bearer(name);
        let r = c.request("GET", "/api", &[("authorization", &auth), ("host", "shop.example")], b"");
        assert_eq!((r.status, r.text().as_str()), (status, body), "{name}");
        let www = "Bearer realm=\"http://shop.example/api\", error=\"invalid_token\"";
        assert_eq!(r.header("www-authenticate"), Some(www), "{name}");
    }
    let r = c.request("GET", "/api", &[("authorization", "Bearer abc")], b"");
    assert_eq!(r.text(), "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections");
    let r = c.request("GET", "/either", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwt is missing"), "requires_any, nothing given");
    assert_eq!(origin.requests(), 0, "no refused request reaches the origin");
    assert_eq!(p.counter("http.ingress.jwt_authn.denied"), 8);
    assert_eq!(p.counter("http.ingress.jwt_authn.allowed"), 0);
}

fn rules_allow_missing_and_per_route_configs(backend: Backend) {
    let (m, jwks, net) = setup(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters(jwks.path().to_str().unwrap()), 1);
    let mut c = p.client();
    assert_eq!(c.get("/public/logo.png").status, 200, "a rule without requires");
    assert_eq!(c.get("/optional").status, 200, "allow_missing, no token");
    let r = c.request("GET", "/optional", &[("authorization", &m.bearer("expired"))], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwt is expired"), "allow_missing, a bad token");
    assert_eq!(c.request("GET", "/optional", &[("authorization", &m.bearer("rs256"))], b"").status, 200);
    assert_eq!(c.get("/health").status, 200, "PerRouteConfig disabled");
    let r = c.request("GET", "/partners", &[("authorization", &m.bearer("rs256"))], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwt is missing"), "requirement_name partner_only");
    let partner = format!("Token {}", m.tokens["partner"]);
    assert_eq!(c.request("GET", "/partners", &[("x-partner-token", &partner)], b"").status, 200);
    let r = c.get("/misnamed");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "Failed JWT authentication: Wrong requirement_name: nope. It should be one of [partner_only]");
    assert_eq!(origin.requests(), 5);
    assert_eq!(p.counter("http.ingress.jwt_authn.allowed"), 5);
    assert_eq!(p.counter("http.ingress.jwt_authn.denied"), 3);
    assert_eq!(p.counter("http.ingress.jwt_authn.jwt_cache_miss"), 1, "one token verified for a named provider");
}

/// The access log's lines, once there are `n` of them (or after 5 s).
fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `payload_in_metadata`: a verified payload is the stream's dynamic metadata under
/// `envoy.filters.http.jwt_authn`, which the access log prints.
fn the_payload_is_dynamic_metadata(backend: Backend) {
    let (m, jwks, net) = setup(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let access_log = format!(
        "access_log:\n- name: file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    log_format:\n      text_format_source:\n        inline_string: \"%REQ(:PATH)% %RESPONSE_CODE% %DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:sub)% %DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:org:id)%\\n\"\n",
        log.to_string_lossy()
    );
    let p = HttpProxy::start(&net, VHOSTS, &clusters, &access_log, &filters(jwks.path().to_str().unwrap()), 1);
    let mut c = p.client();
    assert_eq!(c.request("GET", "/api", &[("authorization", &m.bearer("es256"))], b"").status, 200);
    assert_eq!(c.get("/public").status, 200);
    assert_eq!(lines(&log, 2), ["/api 200 alice acme", "/public 200 - -"]);
}

/// `jwt_cache_config`: a token verified once is a cache hit after, and once past its
/// `exp` (plus the provider's 1 s of skew) it is refused although still cached (the
/// cache keeps entries 60 s past `exp`, as Envoy's): a hit still has its times checked.
fn a_cached_token_is_refused_once_expired(backend: Backend) {
    let (m, jwks, net) = setup(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let filters = format!(
        r#"- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      main:
        issuer: https://issuer.example
        audiences: [api]
        local_jwks: {{ filename: "{}" }}
        clock_skew_seconds: 1
        jwt_cache_config: {{ jwt_cache_size: 10 }}
    rules:
    - match: {{ prefix: / }}
      requires: {{ provider_name: main }}
"#,
        jwks.path().to_str().unwrap()
    );
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters, 1);
    let mut c = p.client();
    let short = m.bearer("short");
    for _ in 0..3 {
        let r = c.request("GET", "/api", &[("authorization", &short)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(p.counter("http.ingress.jwt_authn.jwt_cache_miss"), 1);
    assert_eq!(p.counter("http.ingress.jwt_authn.jwt_cache_hit"), 2);
    // With 1 s of skew the token is refused from exp + 2 s (whole seconds).
    let exp: u64 = m.tokens["short_exp"].parse().unwrap();
    let refused_from = std::time::UNIX_EPOCH + std::time::Duration::from_millis(exp * 1000 + 2100);
    if let Ok(wait) = refused_from.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let r = c.request("GET", "/api", &[("authorization", &short)], b"");
    assert_eq!((r.status, r.text().as_str()), (401, "Jwt is expired"));
    assert_eq!(p.counter("http.ingress.jwt_authn.jwt_cache_hit"), 3, "refused on a cache hit");
    assert_eq!(p.counter("http.ingress.jwt_authn.denied"), 1);
    assert_eq!(origin.requests(), 3);
}

on_both_backends!(
    a_cached_token_is_refused_once_expired,
    the_payload_is_dynamic_metadata,
    good_tokens_pass_and_their_claims_are_forwarded,
    bad_or_missing_tokens_are_refused_as_envoy_does,
    rules_allow_missing_and_per_route_configs
);

/// Envoy's jwt_authn example config (its docs' `jwt-authn-filter.yaml`, copied
/// unchanged as tests/envoy_examples/jwt_authn.yaml; `envoy_example_filter_configs_validate`
/// validates it): a `remote_jwks` provider and no `rules`, so, as in Envoy, no request is
/// required to carry a token: every request (with or without a JWT) gets the route's
/// direct response, and the JWKS cluster (a DNS name nobody resolves here) is never asked.
#[test]
fn envoy_jwt_authn_example_behaves_as_its_doc() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/jwt_authn.yaml");
    let port = sluice_e2e::free_port();
    let text = std::fs::read_to_string(path).unwrap();
    let text = text
        .replace("port_value: 10000", &format!("port_value: {port}"))
        .replace("port_value: 9901", &format!("port_value: {}", sluice_e2e::free_port()))
        .replace("address: 0.0.0.0", "address: 127.0.0.1");
    let _proxy = sluice_e2e::proxy::Proxy::start(&text, &[]);
    let r = sluice_e2e::http_client::get(port, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    let mut c = sluice_e2e::http_client::Client::connect(port);
    let r = c.request("GET", "/any", &[("authorization", "Bearer not.a.jwt")], b"");
    assert_eq!(r.status, 200, "no rule requires a token: {}", r.text());
    assert_eq!(r.text(), "OK");
}
